"""Gaussian smoothing of piecewise polynomials and the conditional route for 2-D moments, against
adaptive mpmath quadrature at 30 digits written here (nested for the 2-D integrals, split at
every kink of the inner and outer integrands)."""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.gaussian.moments import Method, moment_2d, moments_of
from derive.gaussian.piecewise_polynomial import TERM_ROUNDING, PiecewisePolynomial
from derive.symbols import x, y

DPS = 30
HARD_TANH = sp.Piecewise((-1, x < -1), (x, x < 1), (1, True))
BUMP = sp.Piecewise((x**2, x < sp.Rational(1, 2)), (1 - x, x < 3), (-2, True))  # degree 2, a jump


def hard_tanh_mp(t):
    return max(-1, min(1, t))


def bump_mp(t):
    return t * t if t < mp.mpf(1) / 2 else (1 - t if t < 3 else mp.mpf(-2))


def smoothed_mp(g, kinks, m, s):
    """E g(m + sZ) by mp.quad split where m + sZ crosses a kink."""
    m, s = mp.mpf(m), mp.mpf(s)
    points = sorted({(k - m) / s for k in kinks} | {mp.mpf(0), -mp.inf, mp.inf})
    return mp.quad(lambda z: g(m + s * z) * mp.npdf(z), points)


def test_pieces_recognised():
    p = PiecewisePolynomial.of(HARD_TANH, x)
    assert p.ends == (-np.inf, -1.0, 1.0, np.inf)
    assert p.coefficients == ((-1.0,), (0.0, 1.0), (1.0,))
    np.testing.assert_array_equal(p(np.array([-3.0, -0.5, 0.25, 2.0])), [-1.0, -0.5, 0.25, 1.0])
    assert PiecewisePolynomial.of(sp.tanh(x), x) is None  # not polynomial
    assert PiecewisePolynomial.of(x**3, x) is None  # one piece: nothing to smooth
    assert PiecewisePolynomial.of(sp.Max(x - sp.Symbol("a"), 0), x) is None  # kink not a number
    assert PiecewisePolynomial.of(sp.Piecewise((sp.exp(x), x < 0), (1, True)), x) is None


@pytest.mark.parametrize("expr, g, kinks", [(HARD_TANH, hard_tanh_mp, (-1, 1)),
                                            (BUMP, bump_mp, (mp.mpf(1) / 2, 3))])
@pytest.mark.parametrize("m, s", [(0.3, 1.0), (-0.999, 1e-4), (5.0, 0.1), (40.0, 3.0), (0.5, 30.0),
                                  (2.9, 0.05), (-7.0, 2.0)])
def test_smoothed_against_mpmath(expr, g, kinks, m, s):
    p = PiecewisePolynomial.of(expr, x)
    value, scale = p.smoothed(m, s)
    with mp.workdps(DPS):
        reference = smoothed_mp(g, [mp.mpf(k) for k in kinks], m, s)
        assert abs(mp.mpf(float(value)) - reference) <= TERM_ROUNDING * float(scale) + 1e-300


CUT = 12  # |z| beyond 12: Gaussian mass < 1e-32, below the 30 digits checked


def _points(points):
    return sorted({min(max(p, -CUT), CUT) for p in points} | {mp.mpf(-CUT), mp.mpf(CUT)})


def expectation_mp(f, kf, inner, kg, q1, q2, c):
    """E f(u) g(v) = E_z1[f(√q1 z1) inner(m, s)] (m, s the mean and spread of v given z1) by
    Gauss–Legendre mp.quad split at f's kinks and where m crosses g's kinks."""
    with mp.workdps(DPS):
        q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
        r1, r2, r = mp.sqrt(q1), mp.sqrt(q2), mp.sqrt(1 - c * c)
        # where the inner mean crosses g's kinks the outer integrand turns on the scale r/|c|
        crossings = {k / (r2 * c) + j * r / abs(c) for k in kg for j in (-16, -4, -1, 0, 1, 4, 16)}
        points = _points({k / r1 for k in kf} | crossings | {mp.mpf(0)})
        return mp.quad(lambda z1: f(r1 * z1) * inner(r2 * c * z1, r2 * r) * mp.npdf(z1), points,
                       method="gauss-legendre")


def nested(g, kinks):
    """inner(m, s) = E g(m + sZ) by mp.quad split at the kinks (the fully nested reference)."""
    return lambda m, s: mp.quad(lambda z: g(m + s * z) * mp.npdf(z), _points({(k - m) / s for k in kinks}),
                                method="gauss-legendre")


def hard_tanh_smoothed_mp(m, s):
    """E hardtanh(m + sZ) by hand: −Φ(α) + m(Φ(β) − Φ(α)) + s(ϕ(α) − ϕ(β)) + 1 − Φ(β), α = (−1 − m)/s,
    β = (1 − m)/s (itself checked against mp.quad in test_smoothed_against_mpmath's cases)."""
    a, b = (-1 - m) / s, (1 - m) / s
    return -mp.ncdf(a) + m * (mp.ncdf(b) - mp.ncdf(a)) + s * (mp.npdf(a) - mp.npdf(b)) + mp.ncdf(-b)


def test_hand_smoothing_is_quadrature():
    with mp.workdps(DPS):
        for m, s in [(0.3, 1.0), (2.0, 0.2), (-1.5, 3.0)]:
            m, s = mp.mpf(m), mp.mpf(s)
            assert abs(hard_tanh_smoothed_mp(m, s) - nested(hard_tanh_mp, [-1, 1])(m, s)) < mp.mpf(10) ** -28


def indicator_mp(t):
    return mp.mpf(1) if -1 < t < 1 else mp.mpf(0)


HT = (-1, 1)
CASES = [  # (integrand, outer f, its kinks, (u, v) swapped, (q1, q2, c)): the reference's inner is hard tanh
    (HARD_TANH * HARD_TANH.subs(x, y), hard_tanh_mp, HT, False, (1.0, 2.0, 0.5)),
    (HARD_TANH * HARD_TANH.subs(x, y), hard_tanh_mp, HT, False, (0.7, 0.7, -0.97)),
    (sp.tanh(x) * HARD_TANH.subs(x, y), mp.tanh, (), False, (2.0, 0.5, 0.8)),
    (HARD_TANH * sp.tanh(y), mp.tanh, (), True, (0.5, 2.0, 0.3)),  # the polynomial is u's factor
]


@pytest.mark.parametrize("integrand, f, kf, swapped, point", CASES)
def test_conditional_route_against_mpmath(integrand, f, kf, swapped, point):
    moment = moment_2d(integrand, (x, y))
    assert moment.method is Method.CONDITIONAL
    e = moment.evaluate(*(np.array([v]) for v in point))
    q1, q2, c = point
    reference = expectation_mp(f, [mp.mpf(k) for k in kf], hard_tanh_smoothed_mp, [mp.mpf(k) for k in HT],
                               *((q2, q1, c) if swapped else (q1, q2, c)))
    with mp.workdps(DPS):
        error = abs(mp.mpf(float(e.value[0])) - reference)
    assert error <= e.error[0], (float(error), e.error[0])  # the bound is a promise
    assert e.error[0] <= 1e-13


def test_conditional_route_against_nested_mpmath():
    """One point against the fully nested 2-D quadrature (no hand formula anywhere)."""
    C = moments_of(derive.activation("hard_tanh")).C
    e = C.evaluate(np.array([1.0]), np.array([2.0]), np.array([0.5]))
    ks = [mp.mpf(k) for k in HT]
    reference = expectation_mp(hard_tanh_mp, ks, nested(hard_tanh_mp, ks), ks, 1.0, 2.0, 0.5)
    with mp.workdps(DPS):
        assert abs(mp.mpf(float(e.value[0])) - reference) <= e.error[0]


def test_hard_tanh_derivative_moment_against_mpmath():
    """C_d of hard tanh: E 1[|u| < 1] 1[|v| < 1] (the derivative is an indicator)."""
    moments = moments_of(derive.activation("hard_tanh"))
    assert moments.methods["Cd"] is Method.CONDITIONAL
    point = (1.5, 1.5, 0.9)
    e = moments.Cd.evaluate(*(np.array([v]) for v in point))
    ks = [mp.mpf(k) for k in HT]
    reference = expectation_mp(indicator_mp, ks, nested(indicator_mp, ks), ks, *point)
    with mp.workdps(DPS):
        assert abs(mp.mpf(float(e.value[0])) - reference) <= e.error[0]


def test_correlation_one_is_the_one_dimensional_moment():
    """At c = 1 and equal variances, C is V (the degenerate path): within C's own error bound and
    the closed form's rounding."""
    moments = moments_of(derive.activation("hard_tanh"))
    q = np.array([0.3, 1.0, 4.0])
    e, V = moments.C.evaluate(q, q, np.ones(3)), moments.V.evaluate(q)
    assert np.all(np.abs(e.value - V.value) <= e.error + V.error)


def test_divided_difference_next_to_c_equal_one_against_mpmath():
    """G = (V − C)/(1 − c) of hard tanh at 1 − c = 1e-3 and 1e-6 (16-point Gauss–Legendre over the
    mean of C_d, no subtraction in float64) against (V − C)/(1 − c) at 40 digits, where the
    subtraction is harmless; the error the tables promise (``error``) bounds the difference."""
    from derive.gaussian.equal_variances import equal_variances

    ev = equal_variances(derive.activation("hard_tanh"))
    q, ks = 1.3, [mp.mpf(k) for k in HT]
    for s in ("1e-3", "1e-6"):
        value = float(ev.g(np.array([q]), np.array([1 - float(s)]))[0])
        with mp.workdps(40):
            qm, cm = mp.mpf(str(q)), 1 - mp.mpf(s)
            V = smoothed_mp(lambda t: hard_tanh_mp(t) ** 2, ks, 0, mp.sqrt(qm))
            C = expectation_mp(hard_tanh_mp, ks, hard_tanh_smoothed_mp, ks, qm, qm, cm)
            exact = (V - C) / (1 - cm)
            # 1 − float(s) is not 1 − s exactly: G moves by G′·δc, |δc| <= 2^-53
            assert abs(value - exact) <= ev.error * abs(exact) + mp.mpf(2) ** -52, (s, value, exact)


@pytest.mark.parametrize("expr, g, kinks", [(HARD_TANH, hard_tanh_mp, (-1, 1)),
                                            (BUMP, bump_mp, (mp.mpf(1) / 2, 3))])
def test_smoothing_at_any_precision_against_mpmath(expr, g, kinks):
    p = PiecewisePolynomial.of(expr, x)
    with mp.workdps(DPS):
        for m, s in [("0.3", "1"), ("2.9", "0.05"), ("-7", "2"), ("40", "3")]:
            m, s = mp.mpf(m), mp.mpf(s)
            value, _ = p.mp_smoothed(m, s)
            assert abs(value - smoothed_mp(g, [mp.mpf(k) for k in kinks], m, s)) < mp.mpf(10) ** -28


@pytest.mark.parametrize("c", [sp.Rational(999, 1000), sp.Rational(-999, 1000), sp.Rational(1, 3)])
def test_reference_next_to_c_equal_one_is_the_arc_cosine_kernel(c):
    """The mpmath reference of E relu(u) relu(v) (inner expectation exact, outer panels) against
    Cho & Saul's closed form, written here, at 30 digits — at |c| = 0.999 as fast as elsewhere."""
    from derive.gaussian.reference import mp_expectation

    relu = sp.Max(x, 0)
    value = mp_expectation(relu * relu.subs(x, y), (x, y), (sp.S(2), sp.S(3), c), dps=DPS)
    with mp.workdps(DPS + 10):
        cv = mp.mpf(c.p) / c.q
        exact = mp.sqrt(6) * (mp.sqrt(1 - cv * cv) + (mp.pi - mp.acos(cv)) * cv) / (2 * mp.pi)
        assert abs(value - exact) <= mp.mpf(10) ** -(DPS - 2) * exact
