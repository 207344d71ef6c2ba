"""Closed-form Gaussian expectations (derive.gaussian.closed_forms) against independent references.

1-D: every rule against the mpmath quadrature :func:`derive.gaussian.quadrature.mp_expectation` at
40 digits, relative tolerance 1e-28, at variances from 1e-6 to 1e4.
2-D: (a) an iterated reference, E_x[E_w f(x, ρx + w)] with w ~ N(0, q₂(1 − c²)), whose
inner 1-D expectation is the 1-D engine (checked above against quadrature) and whose outer
integral is mpmath tanh-sinh, so that no 2-D rule is involved; (b) the published kernels
(Williams 1997 arcsine, Cho & Saul 2009 arc-cosine J_n) evaluated with mpmath; (c) c = 0
(factorises), c = ±1 (1-D quadrature), and Price's theorem ∂/∂c E[f(x)g(y)] =
√(q₁q₂) E[f′(x)g′(y)].  (d) The 2-D mpmath quadrature itself, at one point (~10 s).
"""

import mpmath as mp
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import derive
from derive.errors import DivergenceError
from derive.gaussian.closed_forms import closed_form_1d, closed_form_2d
from derive.gaussian.reference import mp_expectation
from derive.piecewise import kinks
from derive.symbols import c, q, q1, q2, x, y

R = sp.Rational
DPS = 40
RTOL = mp.mpf(10) ** -28
Q_ALL = (R(1, 10**6), R(3, 10), R(7, 3), 10**4)
Q_MODERATE = (R(1, 10**6), R(3, 10), R(7, 3), 10)  # the reference cannot resolve e^{x}, cos x at q=1e4
NEAR_ONE = 1 - R(1, 10**8)


def num(expr, subs=None) -> mp.mpf:
    """An exact expression evaluated at DPS + 5 digits."""
    with mp.workdps(DPS + 5):
        value = sp.N(expr.xreplace(subs or {}), DPS + 5)
        assert value.is_real, f"{expr} is not real at {subs}: {value}"
        return mp.mpf(value)


def assert_close(value, reference, scale=None):
    """Relative 1e-28; a zero value is compared with the size of E|f| instead."""
    scale = max(abs(value), abs(reference), scale or 0)
    assert abs(value - reference) <= RTOL * scale, f"{value} != {reference}"


def check_1d(expr, qs):
    closed = closed_form_1d(expr, x, q)
    assert closed is not None, f"no closed form for E[{expr}]"
    assert closed.free_symbols <= {q}
    for qv in qs:
        reference = mp_expectation(expr, (x,), (qv,), dps=DPS)
        scale = mp_expectation(sp.Abs(expr), (x,), (qv,), dps=DPS) if reference == 0 else None
        assert_close(num(closed, {q: qv}), reference, scale)
    return closed


# --- 1-D rules against mpmath quadrature ----------------------------------------------------

CASES_1D = {
    "moments": (x**6 - 3 * x**5 + x**2 / 7, Q_ALL),
    "complete the square": (x**3 * sp.exp(-x**2 / 3 + x / 2), Q_ALL),
    "exp-linear x cos": (sp.exp(x / 5) * sp.cos(x) * x, Q_MODERATE),
    "cosh": (sp.cosh(x) * x**2, Q_MODERATE),
    "poly x sin": (x**3 * sp.sin(2 * x + 1), Q_MODERATE),
    "trig products": (sp.cos(x) ** 3 + sp.sin(x) * sp.cos(3 * x) * x, Q_MODERATE),
    "erf shifted": (sp.erf(2 * x + R(1, 2)), Q_ALL),
    "erf x erf": (sp.erf(x) * sp.erf(3 * x), Q_ALL),
    "x^2 erf^2": (x**2 * sp.erf(x) ** 2, Q_ALL),
    "x erf shifted": (x * sp.erf(x + 1) + x**2 * sp.erfc(x - 1), Q_ALL),
    "x erf^3": (x * sp.erf(x) ** 3, Q_ALL),
    "erf x gaussian": (x**3 * sp.erf(x / 2) * sp.exp(-x**2), Q_ALL),
    "truncated moments": (x**3 * sp.Heaviside(x - R(1, 2)) + sp.Max(0, x) ** 3, Q_ALL),
    "abs and sign": (sp.Abs(x) ** 3 + sp.sign(x) * x + sp.Min(x, 1), Q_ALL),
    "interval": (sp.Heaviside(x + 1) * sp.Heaviside(2 - x) * x**2, Q_ALL),
    "step x erf": (x * sp.Heaviside(x) * sp.erf(x) + sp.Heaviside(x) * sp.erf(x / 3) * sp.erf(x), Q_ALL),
    "exp x step": (sp.exp(x) * sp.Heaviside(-x) + sp.exp(2 * x) * sp.Heaviside(x - 1), Q_MODERATE),
    # at q = 1e-6 the value is e^{-55555}: beyond the reference, which integrates |z| < 40 finely
    "gaussian x step": (x**2 * sp.exp(-x**2) * sp.Heaviside(x - R(1, 3)), (R(1, 100), *Q_ALL[1:])),
    "piecewise": (sp.Piecewise((1, x < -1), (x**2, x < 1), (3 - x, True)), Q_ALL),
}


@pytest.mark.parametrize("name", CASES_1D)
def test_1d_rule_matches_quadrature(name):
    expr, qs = CASES_1D[name]
    check_1d(expr, qs)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coefficients=st.lists(st.integers(-9, 9), min_size=1, max_size=5),
       a=st.integers(-4, 0), b=st.integers(-3, 3), t=st.integers(-2, 2))
def test_random_polynomial_times_gaussian_and_step(coefficients, a, b, t):
    assume(any(coefficients))
    poly = sum(k * x**n for n, k in enumerate(coefficients))
    expr = poly * sp.exp(R(a, 4) * x**2 + R(b, 3) * x) * sp.Heaviside(x - R(t, 2))
    closed = closed_form_1d(expr, x, q)
    qv = R(3, 5)
    assert_close(num(closed, {q: qv}), mp_expectation(expr, (x,), (qv,), dps=DPS))


def test_papers_forms_1d():
    """REFERENCES.md §1: the erf q-map and χ₁; GELU closed."""
    assert closed_form_1d(sp.erf(x) ** 2, x, q) == 2 / sp.pi * sp.asin(2 * q / (1 + 2 * q))
    assert closed_form_1d(sp.diff(sp.erf(x), x) ** 2, x, q) == 4 / sp.pi / sp.sqrt(1 + 4 * q)
    assert closed_form_1d(sp.cos(2 * x + 1), x, q) == sp.exp(-2 * q) * sp.cos(1)
    assert closed_form_1d(sp.Max(0, x) ** 2, x, q) == q / 2


def test_numeric_variance_gives_numbers():
    assert closed_form_1d(x**4, x, 2) == 12
    assert closed_form_1d(sp.erf(x) ** 2, x, R(1, 2)) == 2 / sp.pi * sp.asin(R(1, 2))


# --- divergence, deltas, ambiguity --------------------------------------------------------

def test_divergent_gaussian_factor():
    with pytest.raises(DivergenceError, match="diverges"):
        closed_form_1d(sp.exp(x**2) * x**2, x, 1)
    with pytest.raises(DivergenceError):
        closed_form_1d(sp.exp(x**2 / 4) * sp.cos(x), x, 2)  # 1 - 2aq = 0: still divergent
    symbolic = closed_form_1d(sp.exp(x**2 / 5) * x**2, x, q)
    assert isinstance(symbolic, sp.Piecewise) and symbolic.args[1] == (sp.oo, True)
    assert symbolic.subs(q, 3) == sp.oo
    assert_close(num(symbolic, {q: 1}), mp_expectation(sp.exp(x**2 / 5) * x**2, (x,), (1,), dps=DPS))
    assert closed_form_1d(sp.exp(x**2 / 5) * sp.sin(x)**2, x, q).args[1] == (sp.nan, True)
    two = closed_form_1d(sp.exp(x**2 / 5) * x**2 + sp.exp(x**2 / 7), x, q)
    assert two.args[1] == (sp.oo, True) and two.args[0][1] == sp.And(q < R(5, 2), q < R(7, 2))


def test_divergent_factor_cut_off_by_steps_or_erfc_is_left_to_quadrature():
    box = sp.exp(x**2) * sp.Heaviside(x + 1) * sp.Heaviside(1 - x)  # finite, though each term is not
    assert closed_form_1d(box, x, 1) is None
    assert closed_form_1d(box, x, q) is None
    edge = sp.exp(x**2 / 2 - x) * sp.Heaviside(x)  # at q = 1 the density is beaten only by e^{-x}
    assert closed_form_1d(edge, x, 1) is None
    assert closed_form_1d(sp.exp(x**2 / 2) * sp.erfc(x) * sp.erfc(-x), x, 1) is None  # finite
    assert_close(num(closed_form_1d(edge, x, R(1, 2))), mp_expectation(edge, (x,), (R(1, 2),), DPS))


@pytest.mark.parametrize("t", [R(-3, 2), R(0), R(1, 3)])
def test_delta_evaluates_coefficient_times_density(t):
    h = x**2 * sp.exp(x) + sp.erf(x)
    closed = closed_form_1d(h * sp.DiracDelta(x - t), x, q)
    derivative = closed_form_1d(sp.cos(x) * sp.DiracDelta(2 * x - 2 * t, 1), x, q)
    hf = sp.lambdify(x, h, "mpmath")
    for qv in (R(1, 10**6), R(2, 3), 10**4):
        with mp.workdps(DPS + 10):
            sd, at = mp.sqrt(qv), mp.mpf(t)
            assert_close(num(closed, {q: qv}), hf(at) * mp.npdf(at, 0, sd))
            expected = -mp.diff(lambda u, sd=sd: mp.cos(u) * mp.npdf(u, 0, sd), at) / 4
            assert_close(num(derivative, {q: qv}), expected)


def test_delta_squared_diverges_and_delta_on_jump_is_ambiguous():
    with pytest.raises(DivergenceError, match="Dirac deltas at the same point"):
        closed_form_1d(sp.DiracDelta(x) ** 2, x, q)
    assert closed_form_1d(sp.DiracDelta(x) * sp.DiracDelta(x - 1), x, q) == 0
    assert closed_form_1d(sp.Heaviside(x) * sp.DiracDelta(x), x, q) is None
    assert closed_form_1d(sp.Heaviside(x) * sp.DiracDelta(x, 1), x, q) is None
    assert closed_form_1d(x * sp.Heaviside(x) * sp.DiracDelta(x), x, q) == 0  # xΘ(x) is continuous


@pytest.mark.parametrize("expr", [sp.tanh(x) ** 2, x * sp.tanh(x), 1 / (1 + sp.exp(-x)),
                                  sp.log(1 + sp.exp(x)), sp.cos(x) * sp.Heaviside(x),
                                  sp.erf(x) * sp.erf(x + 1), sp.sin(x) * sp.erf(x),
                                  x**2 + sp.tanh(x), sp.Abs(x) ** R(1, 2), sp.exp(x**3)])
def test_no_rule_means_none_never_a_partial_answer(expr):
    assert closed_form_1d(expr, x, q) is None


# --- built-in activations -------------------------------------------------------------------

CLOSED, NONE, INFINITE = "closed", None, "infinite"
# E[φ²], E[φ′²], E[φφ″] (1-D); E[φ(x)φ(y)], E[φ′(x)φ′(y)] (2-D)
BUILTIN_TABLE = {
    "linear": (CLOSED,) * 5,
    "relu": (CLOSED,) * 5,
    "leaky_relu": (CLOSED,) * 5,
    "abs": (CLOSED,) * 5,
    "hard_tanh": (CLOSED, CLOSED, CLOSED, NONE, NONE),
    "step": (CLOSED, INFINITE, NONE, CLOSED, CLOSED),
    "sign": (CLOSED, INFINITE, NONE, CLOSED, CLOSED),
    "erf": (CLOSED,) * 5,
    "gelu": (CLOSED,) * 5,
    "elu": (CLOSED, CLOSED, CLOSED, NONE, NONE),
    "sin": (CLOSED,) * 5,
    "cos": (CLOSED,) * 5,
    "monomial": (CLOSED,) * 5,
    "tanh": (NONE,) * 5,
    "sigmoid": (NONE,) * 5,
    "softplus": (NONE,) * 5,
    "silu": (NONE,) * 5,
}


def builtin_expectations(name):
    act = derive.activation(name)
    phi, d1, d2 = act.expr, act.derivative(), act.derivative(n=2)
    on_y = {x: y}
    return [lambda: closed_form_1d(phi**2, x, q), lambda: closed_form_1d(d1**2, x, q),
            lambda: closed_form_1d(phi * d2, x, q),
            lambda: closed_form_2d(phi * phi.xreplace(on_y), x, y, q1, q2, c),
            lambda: closed_form_2d(d1 * d1.xreplace(on_y), x, y, q1, q2, c)]


def outcome(compute):
    try:
        return CLOSED if compute() is not None else NONE
    except DivergenceError:
        return INFINITE


def test_builtin_table_is_complete():
    from derive.activations import BUILTINS

    assert set(BUILTIN_TABLE) == set(BUILTINS)


@pytest.mark.parametrize("name", BUILTIN_TABLE)
def test_builtin_expectations_are_closed_exactly_where_expected(name):
    assert tuple(outcome(f) for f in builtin_expectations(name)) == BUILTIN_TABLE[name]


@pytest.mark.parametrize("name", [n for n, row in BUILTIN_TABLE.items() if row[0] == CLOSED])
def test_builtin_q_map_matches_quadrature(name):
    oscillating = name in ("sin", "cos")  # the reference cannot resolve sin² at q = 500
    check_1d(derive.activation(name).expr ** 2, (R(9, 10), 10 if oscillating else 500))


@pytest.mark.parametrize("name", [n for n, row in BUILTIN_TABLE.items() if row[2] == CLOSED])
def test_builtin_chi_q_identity(name):
    """d/dq E[φ²] = E[φ′² + φφ″] (heat equation): checks the Dirac deltas of kinked φ."""
    rows = builtin_expectations(name)
    q_map, slope, curvature = rows[0](), rows[1](), rows[2]()
    for qv in (R(1, 100), R(3, 2), 40):
        assert_close(num(sp.diff(q_map, q), {q: qv}), num(slope + curvature, {q: qv}))


def test_relu_and_erf_kernels_in_the_papers_form():
    """REFERENCES.md §2."""
    relu = derive.activation("relu")
    theta = sp.acos(c)
    assert closed_form_2d(relu.expr * relu(y), x, y, q1, q2, c) == (
        sp.sqrt(q1 * q2) * (sp.sin(theta) + (sp.pi - theta) * sp.cos(theta)) / (2 * sp.pi))
    assert closed_form_2d(sp.Heaviside(x) * sp.Heaviside(y), x, y, q1, q2, c) == (
        (sp.pi - theta) / (2 * sp.pi))
    erf_kernel = closed_form_2d(sp.erf(x) * sp.erf(y), x, y, q1, q2, c)
    assert erf_kernel == 2 / sp.pi * sp.asin(2 * c * sp.sqrt(q1 * q2) / sp.sqrt((1 + 2 * q1) * (1 + 2 * q2)))
    erf_dot = closed_form_2d(sp.exp(-x**2 - y**2) * 4 / sp.pi, x, y, q1, q2, c)
    assert sp.expand(erf_dot**-2 - ((1 + 2 * q1) * (1 + 2 * q2) - 4 * c**2 * q1 * q2) * sp.pi**2 / 16) == 0


# --- 2-D ------------------------------------------------------------------------------------

_MP_MODULES = [{"Heaviside": lambda t, h0=0.5: mp.mpf(0) if t < 0 else (mp.mpf(1) if t > 0 else mp.mpf(h0))},
               "mpmath"]


def iterated_reference(expr, q1v, q2v, cv):
    """E[f(x, y)] = E_x[E_w f(x, ρx + w)]: inner by the 1-D engine, outer by tanh-sinh."""
    u, w = sp.symbols("u w", real=True)
    rho, s2 = cv * sp.sqrt(R(q2v) / q1v), q2v * (1 - cv**2)
    inner = closed_form_1d(expr.xreplace({x: u, y: rho * u + w}), w, s2)
    assert inner is not None
    g = sp.lambdify(u, inner, modules=_MP_MODULES)
    with mp.workdps(DPS + 3):
        s = mp.sqrt(q1v)
        points = sorted({mp.mpf(0), *(mp.mpf(sp.N(k, DPS + 3)) / s for k in kinks(inner, u))})
        return mp.quad(lambda z: g(s * z) * mp.npdf(z), [-mp.inf, *points, mp.inf])


def check_2d(expr, points):
    closed = closed_form_2d(expr, x, y, q1, q2, c)
    assert closed is not None, f"no closed form for E[{expr}]"
    for q1v, q2v, cv in points:
        value = num(closed, {q1: q1v, q2: q2v, c: cv})
        if abs(cv) == 1:
            reference = mp_expectation(expr.xreplace({y: cv * sp.sqrt(R(q2v) / q1v) * x}), (x,), (q1v,), DPS)
        else:
            reference = iterated_reference(expr, q1v, q2v, cv)
        assert_close(value, reference, mp.mpf(10) ** -12 if reference == 0 else None)
    return closed


# c = 0 and c = 1 also in test_zero_correlation_factorises_and_unit_correlation_is_the_limit
POINTS_2D = [(R(1, 2), R(3, 2), R(3, 10)), (R(1, 10**6), 10**4, -R(9, 10)), (10**4, R(7, 3), NEAR_ONE),
             (3, R(1, 2), -1)]

CASES_2D = {
    "relu c-map": sp.Max(0, x) * sp.Max(0, y),
    "relu phi(u) phi'(v)": sp.Max(0, x) * sp.Heaviside(y),
    "mixed orders": x**3 * sp.Heaviside(x) * y * sp.Heaviside(y) + x**2 * y**3 * sp.Heaviside(y),
    "leaky relu": (x + sp.Max(0, x)) * (y + sp.Max(0, y) / 3),
    "abs and sign": sp.Abs(x) * sp.Abs(y) + sp.sign(x) * sp.sign(y),
    "erf arcsine": sp.erf(x) * sp.erf(2 * y),
    "erf x step": sp.erf(x / 2) * sp.Heaviside(y),
    "poly x erf": x * y * sp.erf(x) * sp.erf(y) + y**2 * sp.erf(x) ** 2,
    "gelu": x * y * (1 + sp.erf(x / sp.sqrt(2))) * (1 + sp.erf(y / sp.sqrt(2))) / 4,
    "trig": sp.sin(x) * sp.sin(2 * y) + x * sp.cos(x - y) + sp.cos(x) * sp.cos(y) * y**2,
    "gaussian factors": sp.exp(-x**2 - y**2 / 2 + x * y / 3) * x * y,
    "polynomial": x**3 * y**3 - 2 * x**2 * y + y**4,
    "steps on combinations": (sp.Heaviside(x - y) + sp.Heaviside(y - 3 * x)) * sp.Heaviside(x),
}

_FAR_POINTS = {"trig", "gaussian factors", "gelu"}  # q = 1e4: e^{-q} underflows the reference


@pytest.mark.parametrize("name", CASES_2D)
def test_2d_rule_matches_iterated_reference(name):
    points = [p for p in POINTS_2D if name not in _FAR_POINTS or max(p[:2]) < 100]
    check_2d(CASES_2D[name], points)


def test_2d_against_2d_quadrature():
    """The 2-D mpmath reference itself, at 30 digits (~10 s per point: one point, mixed orders)."""
    body, params = sp.Max(0, x) * y**2 * sp.Heaviside(y), (R(1, 3), R(5, 2), R(7, 10))
    closed = closed_form_2d(body, x, y, q1, q2, c)
    value = num(closed, dict(zip((q1, q2, c), params, strict=True)))
    assert_close(value, mp_expectation(body, (x, y), params, dps=30))


def cho_saul_J(n):
    """J_n(θ) = (−1)ⁿ sin^{2n+1}θ (1/sinθ ∂/∂θ)ⁿ ((π − θ)/sinθ)  (Cho & Saul 2009, eq. 6)."""
    t = sp.Symbol("t")
    f = (sp.pi - t) / sp.sin(t)
    for _ in range(n):
        f = sp.diff(f, t) / sp.sin(t)
    return sp.lambdify(t, (-1) ** n * sp.sin(t) ** (2 * n + 1) * f, "mpmath")


@pytest.mark.parametrize("n", range(5))
def test_arc_cosine_kernels_of_every_order(n):
    closed = closed_form_2d((x * y) ** n * sp.Heaviside(x) * sp.Heaviside(y), x, y, q1, q2, c)
    J = cho_saul_J(n)
    for q1v, q2v in ((R(1, 10**6), 10**4), (R(3, 2), R(1, 7))):
        for cv in (-NEAR_ONE, -R(9, 10), -R(1, 3), 0, R(1, 5), R(99, 100), NEAR_ONE):
            with mp.workdps(3 * DPS):  # J_n(θ) cancels to ~1e-32 near θ = π
                theta = mp.acos(mp.mpf(sp.N(cv, 3 * DPS)))
                expected = (mp.mpf(q1v) * q2v) ** (mp.mpf(n) / 2) * J(theta) / (2 * mp.pi)
            assert_close(num(closed, {q1: q1v, q2: q2v, c: cv}), expected)


@pytest.mark.parametrize("a, b", [(1, 1), (R(1, 3), 2), (5, R(1, 10))])
def test_arcsine_kernel_many_points(a, b):
    closed = closed_form_2d(sp.erf(a * x) * sp.erf(b * y), x, y, q1, q2, c)
    for q1v, q2v in ((R(1, 10**6), 10**4), (R(3, 2), R(1, 7)), (10**4, 10**4)):
        for cv in (-1, -NEAR_ONE, -R(1, 2), 0, R(1, 3), NEAR_ONE, 1):
            with mp.workdps(DPS + 10):
                arg = 2 * a * b * mp.mpf(sp.N(cv, DPS + 10)) * mp.sqrt(mp.mpf(q1v) * q2v) / mp.sqrt(
                    (1 + 2 * a**2 * mp.mpf(q1v)) * (1 + 2 * b**2 * mp.mpf(q2v)))
                expected = 2 / mp.pi * mp.asin(arg)
            assert_close(num(closed, {q1: q1v, q2: q2v, c: cv}), expected)


@pytest.mark.parametrize("f, g", [(sp.Max(0, x), sp.Heaviside(x)), (sp.erf(x), x**2 * sp.erf(2 * x)),
                                  (sp.Abs(x), sp.erf(x) ** 2), (x * sp.erf(x / sp.sqrt(2)), sp.Max(0, x))])
def test_zero_correlation_factorises_and_unit_correlation_is_the_limit(f, g):
    product = closed_form_2d(f * g.xreplace({x: y}), x, y, q1, q2, 0)
    assert sp.simplify(product - closed_form_1d(f, x, q1) * closed_form_1d(g, x, q2)) == 0
    general = closed_form_2d(f * g.xreplace({x: y}), x, y, q1, q2, c)
    at_one = closed_form_2d(f * g.xreplace({x: y}), x, y, q1, q2, 1)
    point = {q1: R(2, 3), q2: R(5, 4)}
    assert_close(num(general, {**point, c: 1 - R(1, 10**30)}), num(at_one, point), mp.mpf(10) ** -20)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "abs", "erf", "gelu", "sin", "cos", "monomial"])
def test_price_theorem(name):
    """∂/∂c E[φ(x)φ(y)] = √(q₁q₂) E[φ′(x)φ′(y)] links the two kernels of every activation."""
    act = derive.activation(name)
    kernel = closed_form_2d(act.expr * act(y), x, y, q1, q2, c)
    slope = closed_form_2d(act.derivative() * act.derivative(y), x, y, q1, q2, c)
    for point in ({q1: R(1, 3), q2: 2, c: R(2, 5)}, {q1: 10**3, q2: R(1, 10**3), c: -NEAR_ONE}):
        assert_close(num(sp.diff(kernel, c), point), num(sp.sqrt(q1 * q2) * slope, point))


def test_2d_deltas_reduce_to_conditional_expectations():
    """E[δ(x − t) g(y)] = φ_{q₁}(t) E[g(y) | x = t], y | x=t ~ N(c√(q₂/q₁) t, q₂(1 − c²))."""
    t, g = R(1, 2), sp.Max(0, y) ** 2 + sp.erf(y)
    closed = closed_form_2d(sp.DiracDelta(x - t) * g, x, y, q1, q2, c)
    q1v, q2v, cv = R(2, 3), R(3, 2), -R(1, 4)
    with mp.workdps(DPS + 10):
        mean = cv * mp.sqrt(mp.mpf(q2v) / q1v) * t
        sd = mp.sqrt(q2v * (1 - mp.mpf(cv) ** 2))
        gf = sp.lambdify(y, g, "mpmath")
        conditional = mp.quad(lambda v: gf(v) * mp.npdf(v, mean, sd), [-mp.inf, 0, mp.inf])
        expected = mp.npdf(t, 0, mp.sqrt(q1v)) * conditional
    assert_close(num(closed, {q1: q1v, q2: q2v, c: cv}), expected)
    joint = closed_form_2d(sp.DiracDelta(x) * sp.DiracDelta(y), x, y, q1, q2, c)
    assert sp.simplify(joint - 1 / (2 * sp.pi * sp.sqrt(q1 * q2 * (1 - c**2)))) == 0


@pytest.mark.parametrize("expr", [sp.Heaviside(x - 1) * sp.Heaviside(y - 1), sp.tanh(x) * sp.tanh(y),
                                  x * sp.Heaviside(x - y), sp.exp(x) * sp.Heaviside(-x) * sp.Heaviside(-y),
                                  sp.erf(x + 1) * sp.erf(y), sp.cos(x) * sp.Heaviside(y)])
def test_2d_no_rule_means_none(expr):
    assert closed_form_2d(expr, x, y, q1, q2, c) is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(-5, 5)), min_size=1, max_size=4))
def test_bivariate_polynomial_moments(monomials):
    """Isserlis against the Dz form: x = √q₁ z₁, y = √q₂(c z₁ + √(1−c²) z₂), independent z's."""
    z1, z2 = sp.symbols("z1 z2")
    poly = sum(k * x**i * y**j for i, j, k in monomials)
    u1, u2 = sp.sqrt(q1) * z1, sp.sqrt(q2) * (c * z1 + sp.sqrt(1 - c**2) * z2)
    expanded = sp.Poly(sp.expand(poly.xreplace({x: u1, y: u2})), z1, z2)
    moment = lambda n: 0 if n % 2 else sp.factorial2(n - 1)  # noqa: E731
    dz = sum(k * moment(a) * moment(b) for (a, b), k in expanded.terms())
    assert sp.expand(closed_form_2d(poly, x, y, q1, q2, c) - dz) == 0


def test_compound_variances_substitute_back():
    """q = σ_w² q + σ_b² (the mean-field map's argument) is derived as a plain variance."""
    from derive.symbols import sigma_b2, sigma_w2

    Q = sigma_w2 * q + sigma_b2
    relu = derive.activation("relu")
    theta = sp.acos(c)
    assert sp.expand(closed_form_1d(relu.expr**2, x, Q) - Q / 2) == 0
    kernel = closed_form_2d(relu.expr * relu(y), x, y, Q, Q, c)
    assert sp.simplify(kernel - Q * (sp.sin(theta) + (sp.pi - theta) * c) / (2 * sp.pi)) == 0
    gelu = derive.activation("gelu").expr
    point = {sigma_w2: R(3, 2), sigma_b2: R(1, 20), q: R(2, 3)}
    reference = mp_expectation(gelu**2, (x,), (Q.xreplace(point),), dps=DPS)
    assert_close(num(closed_form_1d(gelu**2, x, Q), point), reference)
