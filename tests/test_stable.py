"""Float64 evaluation over the whole domain (derive.gaussian.stable, .roundoff, .special).

The references are the same SymPy expressions evaluated with mpmath at 50 digits (and checked at
70: the textbook formulas cancel too, up to ~20 digits near c = -1), at the float64 arguments
themselves.  Measures:

* closed forms V, D (q from 1e-10 to 1e8) and C, C_d (q1, q2 from 1e-10 to 1e8, equal and not,
  c in {±1, ±(1 − 1e-12), ±0.999999, ±0.5, 0}): relative error <= 1e-12; relative to
  √(V(q1)V(q2)) (resp. √(D D)) at the (q1, q2) where the value changes sign over c;
* integrands φ, φ′, φ², φ′² at |x| in [1e-10, 1e6]: relative error <= 1e-12, or, near a root of
  the integrand, <= 1e-14 |x f′(x)| (the change a relative perturbation of 1e-14 in x makes);
* exact values below the normal float64 range (underflow) count as met when the float64 value
  is below it too;
* the running error bound: |value − exact| <= bound at every point, and its median ratio to
  the actual error <= 100 where the error is not zero.
"""

import math
from functools import cache

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import derive
from derive.activations import BUILTINS
from derive.errors import DivergenceError, NumericError
from derive.gaussian import GaussianExpectation
from derive.gaussian.roundoff import ULPS
from derive.gaussian.special import Erfc, Erfcx, Expm1, Log1p, Log1pExp, textbook
from derive.gaussian.stable import Approximated, bounded_lambdify, stable_form
from derive.numeric import lambdify
from derive.symbols import c, q, q1, q2, x, y

DPS, CHECK_DPS = 50, 70
RTOL = 1e-12
TINY = 2.2250738585072014e-308  # the smallest normal float64
U = 2.0**-53
Q_1D = np.logspace(-10, 8, 37)
Q_2D = (1e-10, 1e-5, 0.02, 1.0, 40.0, 3e4, 1e8)
C_2D = (-1.0, -(1 - 1e-12), -0.999999, -0.5, 0.0, 0.5, 0.999999, 1 - 1e-12, 1.0)
X = np.concatenate([-np.logspace(-10, 6, 49), np.logspace(-10, 6, 49)])


def _closed(make):
    try:
        form = make()
    except DivergenceError:  # E φ′² of an activation with a jump
        return None
    return None if form.has(GaussianExpectation, sp.DiracDelta) else form


@cache
def moments(name: str) -> dict:
    """The closed forms among V, D, C, C_d of a built-in."""
    a = derive.activation(name)
    forms = {"V": _closed(lambda: derive.expect(a(x) ** 2, x, q)),
             "D": _closed(lambda: derive.expect(a.derivative(x) ** 2, x, q)),
             "C": _closed(lambda: derive.expect2(a(x) * a(y), x, y, q1, q2, c)),
             "Cd": _closed(lambda: derive.expect2(a.derivative(x) * a.derivative(y), x, y, q1, q2, c))}
    return {k: v for k, v in forms.items() if v is not None}


CASES = [(name, label) for name in BUILTINS for label in moments(name)]


def _points(label):
    if label in ("V", "D"):
        return [q], [Q_1D]
    grid = np.array([(a, b, r) for a in Q_2D for b in Q_2D for r in C_2D]).T
    return [q1, q2, c], list(grid)


def _mp_values(expr, args, points, dps) -> list:
    f = sp.lambdify(args, expr, "mpmath")
    out = []
    with mp.workdps(dps):
        for p in zip(*points, strict=True):
            try:
                out.append(f(*(mp.mpf(float(v)) for v in p)))
            except ZeroDivisionError:  # C_d of step and sign at c = ±1: infinite
                out.append(mp.inf)
    return out


@cache
def reference(name, label):
    """(arguments, points, exact values as floats, scale of the relative error)."""
    expr = moments(name)[label]
    args, points = _points(label)
    exact = _mp_values(expr, args, points, DPS)
    check = _mp_values(expr, args, points, CHECK_DPS)
    for a, b in zip(exact, check, strict=True):
        assert a == b or abs(a - b) <= mp.mpf(10) ** -30 * abs(b), "the 50-digit reference is not exact"
    values = np.array([float(v) for v in exact])
    scale = np.abs(values)
    if label in ("C", "Cd"):
        diagonal = moments(name).get("V" if label == "C" else "D")
        rows = values.reshape(-1, len(C_2D))
        crosses = np.repeat((rows.min(axis=1) < 0) & (rows.max(axis=1) > 0), len(C_2D))
        if crosses.any():
            s1, s2 = (np.array([float(v) for v in _mp_values(diagonal, [q], [p], DPS)]) for p in points[:2])
            scale = np.where(crosses, np.maximum(scale, np.sqrt(s1 * s2)), scale)
    return args, points, exact, values, scale


def relative_errors(got, exact, scale):
    """|got − exact| / scale; exact values under the normal range are met by values under it."""
    got = np.asarray(got, dtype=float)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - exact)
    under = scale < TINY
    rel = np.where(under, np.where(np.abs(got) < TINY, 0.0, np.inf), err / np.where(under, 1, scale))
    both_inf = np.isinf(exact) & (got == exact)
    return np.where(both_inf, 0.0, np.where(np.isnan(rel), np.inf, rel))


@pytest.mark.parametrize(("name", "label"), CASES)
def test_closed_forms_are_accurate_in_float64(name, label):
    args, points, _, values, scale = reference(name, label)
    got = lambdify(moments(name)[label], args, nonfinite="nan")(*points)
    rel = relative_errors(got, values, scale)
    worst = int(np.argmax(rel))
    assert rel[worst] <= RTOL, f"{name} {label}: {rel[worst]:.2e} at {[p[worst] for p in points]}"


@pytest.mark.parametrize(("name", "label"), CASES)
def test_running_error_bound_holds_and_is_not_absurd(name, label):
    args, points, exact, values, _ = reference(name, label)
    value, bound = bounded_lambdify(moments(name)[label], args)(*points)
    finite = np.isfinite(values)
    error = np.array([float(abs(mp.mpf(v) - e)) if f else 0.0
                      for v, e, f in zip(value, exact, finite, strict=True)])
    assert np.all(value[~finite] == values[~finite])
    broken = ~(error <= bound)
    assert not broken.any(), (f"{name} {label}: error {error[broken][:3]} above bound {bound[broken][:3]} "
                              f"at {[p[broken][:3] for p in points]}")
    seen = error > 0
    if seen.sum() >= 10:
        assert np.median(bound[seen] / error[seen]) <= 100


def _integrands(name):
    a = derive.activation(name)
    forms = {"phi": a(x), "dphi": a.derivative(x), "phi2": a(x) ** 2, "dphi2": a.derivative(x) ** 2}
    return {k: v for k, v in forms.items() if not v.has(sp.DiracDelta)}


def _digits(v: float) -> int:
    """Digits enough for the textbook integrand at v: e^{−2|v|} and erfc(|v|/√2) ~ e^{−v²/2} below
    1 cancel there (capped where they fall below the float64 range)."""
    return DPS + int(min(740, max(2 * abs(v), v * v / 2)) / math.log(10))


def check_integrand(expr, xs=X):
    f, df = sp.lambdify([x], expr, "mpmath"), sp.lambdify([x], sp.diff(expr, x), "mpmath")
    smooth = not expr.has(sp.Piecewise, sp.Heaviside, sp.Max, sp.Abs, sp.sign)
    exact, slope = [], []
    for v in xs:
        with mp.workdps(_digits(v)):
            exact.append(f(mp.mpf(v)))
            slope.append(float(abs(v * df(mp.mpf(v)))) if smooth else 0.0)
    values = np.array([float(e) for e in exact])
    scale = np.maximum(np.abs(values), 1e-2 * np.array(slope))
    rel = relative_errors(lambdify(expr, [x], nonfinite="nan")(xs), values, scale)
    worst = int(np.argmax(rel))
    assert rel[worst] <= RTOL, f"{expr}: {rel[worst]:.2e} at x = {xs[worst]}"
    value, bound = bounded_lambdify(expr, [x])(xs)
    error = np.array([float(abs(mp.mpf(a) - e)) for a, e in zip(value, exact, strict=True)])
    assert np.all(error <= bound), f"{expr}: bound broken at {xs[~(error <= bound)]}"


@pytest.mark.parametrize("name", list(BUILTINS))
def test_integrands_are_finite_and_accurate_up_to_a_million(name):
    for expr in _integrands(name).values():
        check_integrand(expr)


def test_custom_activations_benefit():
    check_integrand(x / (1 + sp.exp(-2 * x)))  # x σ(2x)
    check_integrand(sp.diff(x / (1 + sp.exp(-2 * x)), x))
    check_integrand(1 - sp.tanh(3 * x) ** 2)
    for n in (2, 3):  # arc-cosine kernels of order 2 and 3 (Cho & Saul 2009) near c = -1
        expr = derive.expect2(sp.Max(0, x) ** n * sp.Max(0, y) ** n, x, y, q1, q2, c)
        cs = np.array(C_2D)
        points = [cs * 0 + 2, cs * 0 + 0.5, cs]
        exact = np.array([float(v) for v in _mp_values(expr, [q1, q2, c], points, 80)])
        got = lambdify(expr, [q1, q2, c])(2.0, 0.5, cs)
        assert np.all(relative_errors(got, exact, np.abs(exact)) <= RTOL)


@pytest.mark.parametrize(("name", "which"), [("sigmoid", "D"), ("softplus", "D"), ("softplus", "V"),
                                             ("silu", "D")])
def test_expectations_that_overflowed_integrate_at_large_variance(name, which):
    a = derive.activation(name)
    body = (a.derivative(x) if which == "D" else a(x)) ** 2
    E = derive.expect(body, x, q)
    assert isinstance(E, GaussianExpectation)
    qs = np.array([2e3, 5e3, 1e5, 1e8])
    got = lambdify(E, [q], tabulate=False)(qs)
    exact = np.array([float(E.subs(q, v).evalf(20)) for v in qs[:3]])
    assert np.all(np.isfinite(got))
    assert np.all(np.abs(got[:3] - exact) <= 1e-11 * np.abs(exact))


def test_error_model_of_the_library_functions():
    """Each function's worst error against mpmath (on its domain, both signs, 12 decades) is
    below half the number of units of u the bound assumes for it."""
    rng = np.random.default_rng(1)

    def spread(lo, hi, negative=True):
        p = np.exp(rng.uniform(math.log(lo), math.log(hi), 150))
        return np.concatenate([p, -p]) if negative else p

    domains = {sp.exp: spread(1e-10, 700), sp.log: spread(1e-300, 1e300, False), sp.sin: spread(1e-10, 1e6),
               sp.cos: spread(1e-10, 1e6), sp.tanh: spread(1e-10, 30), sp.acos: spread(1e-10, 1),
               sp.asin: spread(1e-10, 1), sp.atan: spread(1e-10, 1e10), sp.erf: spread(1e-10, 6),
               sp.erfc: np.concatenate([spread(1e-10, 26, False), -spread(1e-10, 6, False)]),
               Expm1: spread(1e-10, 700), Log1p: np.concatenate([spread(1e-10, 1e300, False),
                                                               -spread(1e-10, 1, False)]),
               Log1pExp: np.concatenate([spread(1e-10, 1e6, False), -spread(1e-10, 700, False)]),
               Erfcx: np.concatenate([spread(1e-10, 1e8, False), -spread(1e-10, 26, False)])}
    for func, xs in domains.items():
        implementation, ulps = ULPS[func]
        with np.errstate(all="ignore"):
            got = implementation(xs)
        with mp.workdps(40):
            exact = [sp.Float(func(sp.Float(float(v), 40)).evalf(40), 40) for v in xs]
            worst = max(float(abs(sp.Float(float(g), 40) - e) / abs(e))
                        for g, e in zip(got, exact, strict=True))
        assert worst <= ulps * U / 2, f"{func}: {worst / U:.2f} u"


def test_the_bound_flags_an_ill_conditioned_evaluation():
    t = sp.Symbol("t", positive=True)
    expr = (1 - sp.cos(t)) / t**2
    exact = float(sp.N(expr.subs(t, sp.Float(1e-5, 40)), 30))
    value, bound = bounded_lambdify(expr, [t], stabilise=False)(1e-5)
    assert abs(value - exact) <= bound and bound > 1e-7 * abs(value)  # the cancellation is caught
    value, bound = bounded_lambdify(expr, [t])(1e-5)  # its stable form: a series near 0
    assert abs(value - exact) <= bound <= 1e-15
    hard_tanh_v = moments("hard_tanh")["V"]
    exact = float(sp.N(hard_tanh_v.subs(q, sp.Float(1e8, 50)), 30))
    value, bound = bounded_lambdify(hard_tanh_v, [q], stabilise=False)(1e8)
    assert abs(value - exact) <= bound and bound > 1e-9


def test_bounded_lambdify_refuses_what_it_cannot_bound():
    with pytest.raises(NumericError, match="closed forms only"):
        bounded_lambdify(derive.expect(sp.tanh(x) ** 2, x, q), [q])
    with pytest.raises(NumericError, match="besselj"):
        bounded_lambdify(sp.besselj(0, q), [q])
    with pytest.raises(NumericError, match=r"\['c'\]"):
        bounded_lambdify(q * c, [q])


def test_special_functions_evaluate_exactly_and_print_to_numpy():
    u = sp.Symbol("u", real=True)
    for cls, point in ((Erfcx, 7), (Expm1, sp.Rational(1, 10**12)), (Log1p, sp.Rational(-1, 3)),
                       (Log1pExp, -40), (Erfc, -3)):
        value = cls(point).evalf(40)
        assert abs(value - cls(u)._textbook(point).evalf(60)) <= 1e-38 * abs(value)
        assert sp.simplify(textbook(sp.diff(cls(u), u)) - sp.diff(cls(u)._textbook(u), u)) == 0
        value = lambdify(cls(q), [q])(np.array([float(point)]))
        assert abs(value[0] - float(cls(point).evalf(30))) <= 4 * U * abs(value[0])
    assert Erfc(-u).args == (-u,)  # not rewritten as 2 - erfc(u)


def test_stable_form_leaves_unevaluated_expectations_alone():
    E = derive.expect(sp.tanh(x) ** 2, x, q)
    assert stable_form(1 - sp.exp(-q) + E) == -Expm1(-q) + E


def test_series_nodes_denote_the_exact_expression():
    kernel = moments("relu")["C"]
    (node,) = stable_form(kernel).atoms(Approximated)
    textbook = c * (sp.pi - sp.acos(c)) + sp.sqrt(1 - c**2)
    for point in (-1 + sp.Rational(1, 10**9), sp.Rational(-1, 2), sp.Rational(9, 10)):
        assert abs(node.subs(c, point).evalf(30) - textbook.subs(c, point).evalf(30)) <= 1e-28
    assert sp.latex(node) == sp.latex(node.args[0])
    assert sp.diff(node, c) == sp.diff(node.args[0], c)


# --- stable_form preserves value: random expressions -----------------------------------------------

T = sp.Symbol("t", real=True)
_LEAVES = st.sampled_from([T, sp.Integer(1), sp.Integer(2), sp.Rational(1, 3), sp.Rational(-1, 2), sp.pi])
_UNARY = [sp.exp, sp.log, sp.erf, sp.erfc, sp.sqrt, sp.acos, lambda e: 1 - sp.exp(e), lambda e: sp.exp(e) - 1,
          lambda e: sp.log(1 + e), lambda e: sp.log(1 + sp.exp(e)), lambda e: 1 + sp.erf(e),
          lambda e: 1 - sp.erfc(e), lambda e: sp.pi - sp.acos(e), lambda e: sp.asin(e / (1 + e**2)),
          lambda e: 1 / (1 + sp.exp(-e)), lambda e: sp.sqrt(1 - e**2), lambda e: sp.exp(e) * sp.erfc(e)]
_BINARY = [sp.Add, sp.Mul, lambda a, b: a - b, lambda a, b: a / b,
           lambda a, b: sp.exp(a) - sp.exp(b), lambda a, b: sp.sqrt(a**2) - sp.sqrt(b**2)]


def _extend(children):
    return st.one_of(st.tuples(st.sampled_from(_UNARY), children).map(lambda p: p[0](p[1])),
                     st.tuples(st.sampled_from(_BINARY), children, children).map(lambda p: p[0](p[1], p[2])))


def _exp_depth(e) -> int:
    """How deeply exponentials nest in e (e^{e^{e^{e^2}}} would need 10^700 digits to evaluate)."""
    inner = max((_exp_depth(a) for a in e.args), default=0)
    return inner + isinstance(e, sp.exp | sp.Pow)


_EXPRESSIONS = st.recursive(_LEAVES, _extend, max_leaves=6).filter(
    lambda e: e.has(T) and _exp_depth(e) <= 3 and sp.count_ops(e) <= 30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(expr=_EXPRESSIONS, point=st.sampled_from([-2.5, -0.9, -0.3, 1e-3, 0.4, 0.99, 1.7, 6.0]))
@example(expr=T + sp.exp(T) - sp.exp(sp.exp(T) - sp.exp(2)), point=-2.5)  # conditions nest as ITE
def test_stable_form_preserves_value(expr, point):
    value = sp.N(expr.subs(T, sp.Float(point, 40)), 30)
    assume(value.is_real and value.is_finite and abs(value) < 1e30)
    stable = sp.N(stable_form(expr).subs(T, sp.Float(point, 40)), 30)
    assert abs(stable - value) <= 1e-24 * max(1, abs(value)), f"{expr} -> {stable_form(expr)}"


def test_float_coefficients_next_to_an_exponential_are_factored_exactly():
    """SymPy's factor fails on Float coefficients (x + 0.3 tanh x, a residual branch): the
    stable form factors over the floats' exact binary values, which evaluate to the same floats."""
    from derive.gaussian.compiled import numpy_function
    from derive.gaussian.moments import CLOSED_FORM_ROUNDING

    v = np.array([-800.0, -1.0, 0.0, 0.5, 800.0])
    f = numpy_function(x + sp.Float(0.3) * sp.tanh(x), (x,))
    magnitude = np.abs(v) + 0.3 * np.abs(np.tanh(v))  # the sum's condition: rounding relative to it
    assert np.all(np.abs(f(v) - (v + 0.3 * np.tanh(v))) <= 16 * CLOSED_FORM_ROUNDING * magnitude)
    block = derive.serial(derive.Dense(1.5, 0.1), derive.Residual("tanh", 0.3), derive.LayerNorm())
    assert np.isfinite(derive.MeanField(block).fixed_point(1.5, 0.1).chi1)
