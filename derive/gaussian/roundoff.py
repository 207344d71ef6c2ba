"""Running error bounds: a float64 evaluation of a SymPy expression with a bound on its error.

:func:`bounded_function` returns a vectorised function giving, per element, the float64 value of
an expression (evaluated node by node, in the order of the expression tree) and a first-order
bound on its absolute error: running error analysis (Wilkinson 1986; Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed. 2002, §3.3).  Each computed node ŷ = fl(f(â₁, ...))
carries a bound e(ŷ) on |ŷ − y|:

    e(ŷ) = Σᵢ |∂f/∂aᵢ(â)| e(âᵢ) + k_f·u·|ŷ| + k_f·η,

with u = 2⁻⁵³ (unit roundoff), η = 2⁻¹⁰⁷⁵ (underflow, Higham §2.1), and k_f the accuracy of
the operation in units of u: 1 for + − × ÷ √ (IEEE 754 correctly rounded; an addition on
underflow is exact, so it carries no η), :data:`ULPS` for library functions.  Sums and products
are accumulated pairwise from left to right, e.g. for a product p_k = fl(p_{k−1} a_k):
e(p_k) = e(p_{k−1})|a_k| + |p_{k−1}| e(a_k) + u|p_k| + η.  Arguments are exact; a number that
float64 cannot hold carries u|value|; :class:`~derive.gaussian.stable.Approximated` nodes add the
bound of their truncation.  Terms of second order in u are dropped, so the bound is a bound to
first order: at points where it is a sizeable fraction of the value the evaluation is
meaningless anyway, and the bound says so.

Steps (Heaviside, sign, Piecewise and Max/Min choices) pass the error of the branch taken: the
bound assumes no branch is mistaken because of rounding (true where the expression is continuous
across the switch, as in the stable forms of :mod:`derive.gaussian.stable`).

>>> import sympy as sp
>>> t = sp.Symbol("t", positive=True)
>>> f = bounded_function((1 - sp.cos(t)) / t**2, [t])
>>> f(1e-5)   # true value 0.4999999999958...: the bound flags the cancellation
(0.5000000413701854, 4.44...e-06)

:func:`derive.gaussian.stable.bounded_lambdify` bounds the stable form of an expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from derive.errors import NumericError
from derive.gaussian.special import NUMPY_FUNCTIONS, Approximated, Erfc, Erfcx, Expm1, Log1p, Log1pExp

#: unit roundoff of float64 and the underflow unit (half the smallest subnormal)
U = 2.0**-53
ETA = 2.0**-1075

_erf = np.vectorize(math.erf, otypes=[float])

#: numpy implementation and accuracy (in units of u, a bound on the library's error with a
#: margin over the worst error measured against mpmath in tests/test_stable.py) of each function
ULPS = {
    sp.exp: (np.exp, 4), sp.log: (np.log, 4), sp.sin: (np.sin, 4), sp.cos: (np.cos, 4),
    sp.tan: (np.tan, 4), sp.sinh: (np.sinh, 4), sp.cosh: (np.cosh, 4), sp.tanh: (np.tanh, 4),
    sp.asin: (np.arcsin, 4), sp.acos: (np.arccos, 4), sp.atan: (np.arctan, 4),
    sp.atan2: (np.arctan2, 4), sp.asinh: (np.arcsinh, 4), sp.acosh: (np.arccosh, 4),
    sp.atanh: (np.arctanh, 4), sp.erf: (_erf, 4), sp.erfc: (NUMPY_FUNCTIONS["Erfc"], 4),
    Erfc: (NUMPY_FUNCTIONS["Erfc"], 4), Expm1: (np.expm1, 4), Log1p: (np.log1p, 4),
    Log1pExp: (NUMPY_FUNCTIONS["Log1pExp"], 8), Erfcx: (NUMPY_FUNCTIONS["Erfcx"], 8),
}

_RELATIONS = {sp.StrictLessThan: np.less, sp.LessThan: np.less_equal, sp.StrictGreaterThan: np.greater,
              sp.GreaterThan: np.greater_equal, sp.Equality: np.equal, sp.Unequality: np.not_equal}


@dataclass(frozen=True)
class BoundedFunction:
    """``f(*arrays) -> (value, bound)``: the float64 value of `expr` and a first-order bound on
    |value − exact value| at the (exact) float64 arguments, broadcast like a ufunc."""

    expr: sp.Expr
    args: tuple

    def __call__(self, *values):
        if len(values) != len(self.args):
            raise NumericError(f"expected {len(self.args)} arguments {[str(a) for a in self.args]}, "
                               f"got {len(values)}")
        arrays = [np.asarray(v, dtype=float) for v in values]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        value, error = running_error(self.expr, dict(zip(self.args, arrays, strict=True)))
        value, error = (np.broadcast_to(np.asarray(a, dtype=float), shape) for a in (value, error))
        if value.ndim == 0:
            return float(value), float(error)
        return value.copy(), error.copy()


def bounded_function(expr, args) -> BoundedFunction:
    """A vectorised (value, error bound) evaluator of `expr` in `args` as written (see the module
    docstring)."""
    from derive.parsing import as_expr

    expr = as_expr(expr)
    args = tuple(as_expr(a) for a in args)
    missing = expr.free_symbols - set(args)
    if missing:
        raise NumericError(f"{expr} has free symbols {sorted(map(str, missing))} that are not among "
                           f"the arguments {[str(a) for a in args]}")
    _check_supported(expr)
    return BoundedFunction(expr, args)


def running_error(expr: sp.Expr, values: dict) -> tuple:
    """(value, bound) of `expr` at `values` ({symbol: array}), with no checks: for callers that
    probe an expression they built (numpy warnings are silenced)."""
    with np.errstate(all="ignore"):
        return _Walk(values)(expr)


def _check_supported(expr):
    from derive.gaussian.expectation import GaussianExpectation

    for node in sp.preorder_traversal(expr):
        if isinstance(node, GaussianExpectation | sp.DiracDelta | sp.Derivative | sp.Integral):
            raise NumericError(f"a running error bound covers closed forms only, and {expr} contains "
                               f"{type(node).__name__}; evaluate it with derive.lambdify")
        if isinstance(node, sp.Function) and not _known(node):
            raise NumericError(f"no error model for the function {type(node).__name__} in {expr}")


def _known(node) -> bool:
    return type(node) in ULPS or isinstance(node, sp.Abs | sp.sign | sp.Heaviside | sp.Max | sp.Min
                                            | sp.Piecewise | Approximated)


def _slopes(func, values) -> list:
    """|∂f/∂aᵢ| at the arguments: from SymPy's derivative, except where evaluating that formula
    would itself cancel or overflow (erfcx′ = 2u erfcx u − 2/√π for large u; atan2's partials
    x/(x² + y²) for huge x, y), which get a bound instead: for u ≥ 0, |erfcx′(u)| ≤
    4/(√π (u + √(u² + 2))²), from erfcx u > 2/(√π (u + √(u² + 2))) (Abramowitz & Stegun 1964,
    eq. 7.1.13)."""
    if func is Erfcx:
        (u,) = values
        a = np.abs(u)
        bound = 4 / (math.sqrt(math.pi) * (a + np.sqrt(a * a + 2)) ** 2)
        return [np.where(u >= 0, bound, np.abs(2 * u * ULPS[Erfcx][0](u) - 2 / math.sqrt(math.pi)))]
    if func is sp.atan2:
        y, x = values
        r = np.hypot(x, y)
        return [np.abs(x) / r / r, np.abs(y) / r / r]
    dummies, partials = _partials(func)
    inner = _Walk(dict(zip(dummies, values, strict=True)))
    return [np.abs(inner.value(d)) for d in partials]


@cache
def _partials(func) -> tuple:
    """∂f/∂aᵢ of a function class, as expressions in dummy arguments."""
    d = sp.Dummy("a", real=True)
    return (d,), (sp.diff(func(d), d),)


def _power_of_two(node) -> bool:
    """±2ᵏ: a product with it is exact, barring underflow (η)."""
    return bool(node.is_Rational) and node != 0 and math.frexp(abs(float(node)))[0] == 0.5


def _number(node) -> tuple:
    value = float(node)
    exact = node.is_Rational and sp.Rational(value) == node
    return value, 0.0 if exact else U * abs(value)


class _Walk:
    """One evaluation: (value, bound) of every node, memoised, for the arguments in `env`."""

    def __init__(self, env: dict):
        self.env, self.memo = env, {}

    def __call__(self, node):
        if node not in self.memo:
            self.memo[node] = self._evaluate(node)
        return self.memo[node]

    def value(self, node):
        return self(node)[0]

    def _evaluate(self, node):
        if node in self.env:
            return self.env[node], 0.0
        if node.is_Rational or node.is_Float or isinstance(node, sp.NumberSymbol):
            return _number(node)
        if node.is_Add:
            return self._add(node.args)
        if node.is_Mul:
            return self._mul(node.args)
        if node.is_Pow:
            return self._pow(*node.args)
        if isinstance(node, Approximated):
            value, error = self(node.args[1])
            return value, error + np.abs(self.value(node.args[2]))
        if isinstance(node, sp.Piecewise):
            return self._piecewise(node)
        if isinstance(node, sp.Abs):
            value, error = self(node.args[0])
            return np.abs(value), error
        if isinstance(node, sp.sign):
            return np.sign(self.value(node.args[0])), 0.0
        if isinstance(node, sp.Heaviside):
            h0 = float(node.args[1]) if len(node.args) > 1 else 0.5
            return np.heaviside(self.value(node.args[0]), h0), 0.0
        if isinstance(node, sp.Max | sp.Min):
            return self._extremum(node)
        if type(node) in ULPS:
            return self._function(node)
        raise NumericError(f"no error model for {node}")

    def _add(self, args):
        value, error = self(args[0])
        for a in args[1:]:
            v, e = self(a)
            value = value + v
            error = error + e + U * np.abs(value)
        return value, error

    def _mul(self, args):
        value, error = self(args[0])
        for a in args[1:]:
            v, e = self(a)
            error = error * np.abs(v) + np.abs(value) * e
            value = value * v
            exact = _power_of_two(a) or (a is args[1] and _power_of_two(args[0]))
            error = error + (0.0 if exact else U * np.abs(value)) + ETA
        return value, error

    def _pow(self, base, exponent):
        b, eb = self(base)
        if exponent.is_Number:
            p = float(exponent)
            value = np.sqrt(b) if p == 0.5 else 1 / b if p == -1 else b * b if p == 2 else b**p
            ops = 1 if p in (0.5, -1, 2) else 4
            slope = np.abs(p * value / b)
            return value, _propagated(slope, eb) + ops * (U * np.abs(value) + ETA)
        x, ex = self(exponent)
        value = b**x
        error = _propagated(np.abs(x * value / b), eb) + _propagated(np.abs(value * np.log(b)), ex)
        return value, error + 4 * (U * np.abs(value) + ETA)

    def _function(self, node):
        implementation, ulps = ULPS[type(node)]
        pairs = [self(a) for a in node.args]
        value = implementation(*(v for v, _ in pairs))
        error = ulps * (U * np.abs(value) + ETA)
        if any(np.any(e != 0) for _, e in pairs):
            for slope, (_, e) in zip(_slopes(type(node), [v for v, _ in pairs]), pairs, strict=True):
                error = error + _propagated(slope, e)
        return value, error

    def _piecewise(self, node):
        values, errors, conditions = [], [], []
        for expr, cond in node.args:
            v, e = self(expr)
            values.append(v)
            errors.append(e)
            conditions.append(self._truth(cond))
        shape = np.broadcast_shapes(*(np.shape(a) for a in [*values, *conditions]))
        conditions = [np.broadcast_to(c, shape) for c in conditions]
        return (np.select(conditions, [np.broadcast_to(v, shape) for v in values], np.nan),
                np.select(conditions, [np.broadcast_to(e, shape) for e in errors], np.nan))

    def _truth(self, cond):
        if cond is sp.true or cond is sp.false:
            return bool(cond)
        if isinstance(cond, sp.And | sp.Or):
            parts = [self._truth(a) for a in cond.args]
            return np.logical_and.reduce(parts) if isinstance(cond, sp.And) else np.logical_or.reduce(parts)
        if isinstance(cond, sp.Not):
            return np.logical_not(self._truth(cond.args[0]))
        if isinstance(cond, sp.ITE):  # SymPy's if-then-else of conditions (nested Piecewise)
            return np.where(*(self._truth(a) for a in cond.args))
        if type(cond) in _RELATIONS:
            return _RELATIONS[type(cond)](self.value(cond.lhs), self.value(cond.rhs))
        raise NumericError(f"cannot evaluate the condition {cond}")

    def _extremum(self, node):
        pairs = [self(a) for a in node.args]
        shape = np.broadcast_shapes(*(np.shape(v) for v, _ in pairs))
        values = np.array([np.broadcast_to(v, shape) for v, _ in pairs])
        errors = np.array([np.broadcast_to(e, shape) for _, e in pairs])
        pick = np.argmax(values, axis=0) if isinstance(node, sp.Max) else np.argmin(values, axis=0)
        return (np.take_along_axis(values, pick[None], 0)[0], np.take_along_axis(errors, pick[None], 0)[0])


def _propagated(slope, error):
    """|∂f/∂a|·e(a), read as 0 where e(a) = 0 (exact input: an infinite slope, as of √ or arccos
    at the end of their domain, then does not matter)."""
    return np.where(error == 0, 0.0, slope * error)

