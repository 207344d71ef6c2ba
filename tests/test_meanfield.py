"""Mean-field signal propagation (derive.meanfield) and the derivative of Gaussian expectations."""

import mpmath as mp
import sympy as sp

from derive.gaussian import GaussianExpectation
from derive.quadrature import mp_expectation
from derive.symbols import c, q, q1, q2, sigma_b2, sigma_w2, x, y

# --- d/dq of an unevaluated expectation: Price's theorem and the score form ----------------------


def test_derivative_of_a_smooth_expectation_follows_the_heat_equation():
    assert GaussianExpectation(x**4, (x,), (q,)).diff(q) == 6 * q
    # E[exp(x/2 - y/3)] = exp((q1/4 + q2/9 - c sqrt(q1 q2)/3)/2) (moment generating function)
    E = GaussianExpectation(sp.exp(x / 2 - y / 3), (x, y), (q1, q2, c))
    exact = sp.exp((q1 / 4 + q2 / 9 - c * sp.sqrt(q1 * q2) / 3) / 2)
    point = {q1: sp.Rational(1, 2), q2: 2, c: sp.Rational(-1, 3)}
    for s in (c, q1, q2):
        assert abs((E.diff(s) - exact.diff(s)).subs(point).evalf(15)) < 1e-12
    inner = GaussianExpectation(x**4, (x,), (sigma_w2 * q + sigma_b2,))
    assert sp.simplify(inner.diff(q) - 6 * sigma_w2 * (sigma_w2 * q + sigma_b2)) == 0


def test_derivative_of_an_unevaluated_expectation_matches_a_finite_difference():
    E = GaussianExpectation(sp.tanh(x) ** 2, (x,), (q,))
    dE = E.diff(q)
    assert isinstance(dE, GaussianExpectation)
    with mp.workdps(50):
        value = mp.mpf(str(dE.subs(q, sp.Rational(7, 10)).evalf(35)))
        h = mp.mpf(10) ** -13
        at = lambda t: mp_expectation(sp.tanh(x) ** 2, (x,), (sp.Float(t, 50),), dps=50)  # noqa: E731
        central = (at(mp.mpf("0.7") + h) - at(mp.mpf("0.7") - h)) / (2 * h)  # error O(h^2)
        assert abs(value - central) < mp.mpf(10) ** -24


def test_derivative_of_a_kinked_expectation_uses_the_score_and_misses_no_jump():
    # E[relu(x)^2] = q/2, E[sign(x) x^3] = E|x|^3 = 2 sqrt(2/pi) q^(3/2): slopes 1/2 and
    # 3 sqrt(2 q/pi) at q = 3/2, although sympy's derivative of the sign would drop the jump.
    for f, slope in ((sp.Max(0, x) ** 2, sp.Rational(1, 2)), (sp.sign(x) * x**3, 3 * sp.sqrt(3 / sp.pi))):
        d = GaussianExpectation(f, (x,), (q,)).diff(q).subs(q, sp.Rational(3, 2))
        assert abs((d - slope).evalf(30)) < 1e-25
    step = GaussianExpectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (q1, q2, c))
    d = step.diff(c).subs({q1: 1, q2: 2, c: sp.Rational(1, 3)})
    exact = 1 / (2 * sp.pi * sp.sqrt(1 - sp.Rational(1, 9)))  # Sheppard: E = 1/4 + asin(c)/(2 pi)
    assert abs(d.evalf(15) - exact.evalf(15)) < 1e-10
