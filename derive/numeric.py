"""Numeric evaluators: SymPy expressions to vectorised numpy functions.

:func:`lambdify` is ``sympy.lambdify`` to numpy (no numba) that also handles what
`derive` produces: Heaviside (value H0 at 0, ½ unless the node says otherwise),
Piecewise, Max/Min, sign, erf/erfc, and unevaluated
:class:`~derive.gaussian.GaussianExpectation` nodes, each of which becomes a call
to the vectorised quadrature :func:`derive.gaussian.quadrature.np_expectation_1d` /
``np_expectation_2d`` with its parameters evaluated as arrays.  The result
broadcasts over its arguments like a numpy ufunc.

>>> import numpy as np, sympy as sp
>>> from derive.symbols import x, q
>>> from derive.gaussian import GaussianExpectation
>>> f = lambdify(GaussianExpectation(sp.Max(0, x)**2, (x,), (q,)) / q, [q])
>>> f(np.array([0.5, 2.0]))
array([0.5, 0.5])
>>> lambdify(sp.Heaviside(q - 1), [q])(np.array([0.0, 1.0, 2.0]))
array([0. , 0.5, 1. ])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive.errors import DeriveError, NumericError
from derive.gaussian.special import NUMPY_FUNCTIONS
from derive.gaussian.stable import stable_form
from derive.parsing import as_expr

#: from this many variances on, a 1-D expectation is evaluated through a checked interpolant
TABULATE_FROM = 2000

_erf = np.vectorize(math.erf, otypes=[float])
_erfc = np.vectorize(math.erfc, otypes=[float])
_lgamma = np.vectorize(math.lgamma, otypes=[float])
_gamma = np.vectorize(math.gamma, otypes=[float])


class _Printer(NumPyPrinter):
    """NumPy code, with the special functions that NumPyPrinter sends to `math` vectorised."""

    def _call(self, name, expr):
        return f"{name}({', '.join(map(self._print, expr.args))})"

    def _print_erf(self, expr):
        return self._call("_erf", expr)

    def _print_erfc(self, expr):
        return self._call("_erfc", expr)

    def _print_loggamma(self, expr):
        return self._call("_lgamma", expr)

    def _print_gamma(self, expr):
        return self._call("_gamma", expr)


_NAMESPACE = {"_erf": _erf, "_erfc": _erfc, "_lgamma": _lgamma, "_gamma": _gamma, "functools": functools,
              **NUMPY_FUNCTIONS}
_MODULES = [_NAMESPACE, "numpy"]


@dataclass(frozen=True)
class NumericFunction:
    """A vectorised float64 evaluator of `expr` in the arguments `args` (call it with arrays).

    With ``nonfinite="raise"`` (the default) a nan or inf produced from finite arguments raises
    :class:`NumericError` naming the point; with ``nonfinite="nan"`` it is returned as numpy
    produces it (e.g. sqrt of a negative number gives nan), for callers that mask such points.
    """

    expr: sp.Expr
    args: tuple
    nonfinite: str = "raise"
    _function: object = field(default=None, repr=False, compare=False)

    def __call__(self, *values):
        if len(values) != len(self.args):
            raise NumericError(f"expected {len(self.args)} arguments {[str(a) for a in self.args]}, "
                               f"got {len(values)}")
        try:
            arrays = [np.asarray(v, dtype=float) for v in values]
        except (TypeError, ValueError) as exc:
            raise NumericError(f"arguments must be real numbers or arrays: {exc}") from None
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        with np.errstate(all="ignore"):
            out = self._function(*arrays)
        out = np.broadcast_to(np.asarray(out, dtype=float), shape)
        if self.nonfinite == "raise":
            _check_finite(out, arrays, self.args, self.expr)
        return out[()] if out.ndim == 0 else out.copy()


def _check_finite(out, arrays, args, expr):
    inputs_finite = np.all([np.isfinite(np.broadcast_to(a, out.shape)) for a in arrays], axis=0) \
        if arrays else np.ones(out.shape, bool)
    bad = ~np.isfinite(out) & inputs_finite
    if bad.any():
        index = np.unravel_index(np.argmax(bad), out.shape) if out.ndim else ()
        point = ", ".join(f"{a}={float(np.broadcast_to(v, out.shape)[index]):.6g}"
                          for a, v in zip(args, arrays, strict=True))
        raise NumericError(f"{expr} is {float(out[index])} at {point} ({int(bad.sum())} non-finite "
                           "values in all): outside its domain or divergent there; pass "
                           "nonfinite='nan' to get nan/inf instead")


def lambdify(expr, args, *, nonfinite: str = "raise", rtol: float = 1e-13,
             tabulate: bool | None = None) -> NumericFunction:
    """A vectorised numpy evaluator of `expr` as a function of `args` (symbols or their names).

    Every free symbol of `expr` must be among `args` (else :class:`NumericError` naming the
    others).  Each :class:`~derive.gaussian.GaussianExpectation` is evaluated by Gaussian quadrature
    (:func:`derive.gaussian.quadrature.np_expectation_1d` / ``_2d``, relative error <= `rtol` of E|f|) split
    at the kinks of its integrand; symbols of the integrand other than the integration variables
    (activation parameters) must be among `args` and are passed on as arrays.  A 1-D expectation
    whose integrand has no such parameters, evaluated at >= TABULATE_FROM variances at once, goes
    through a piecewise Chebyshev interpolant in log q whose error is checked against the quadrature
    at points between the nodes (``tabulate=False`` always integrates, ``True`` always
    interpolates).  The expression and each integrand are first put in their float64-stable form
    (:func:`derive.gaussian.stable.stable_form`).  Non-finite results: see :class:`NumericFunction`.
    """
    if nonfinite not in ("raise", "nan"):
        raise NumericError(f"nonfinite must be 'raise' or 'nan', not {nonfinite!r}")
    expr = as_expr(expr)
    args = tuple(as_expr(a) for a in args)
    if not all(isinstance(a, sp.Symbol) for a in args):
        raise NumericError(f"arguments must be symbols, got {[str(a) for a in args]}")
    missing = expr.free_symbols - set(args)
    if missing:
        raise NumericError(f"{expr} has free symbols {sorted(map(str, missing))} that are not among the "
                           f"arguments {[str(a) for a in args]}: add them or substitute numbers first")
    if _outside_expectations(expr).has(sp.DiracDelta):
        raise NumericError(f"cannot evaluate a Dirac delta numerically in {expr}; "
                           "take its expectation first (derive.expect)")
    namespace = dict(_NAMESPACE)
    replaced = stable_form(expr).replace(
        lambda e: _is_expectation(e),
        lambda e: _expectation_call(e, namespace, rtol, tabulate))
    try:
        function = sp.lambdify(args, replaced, modules=[namespace, "numpy"],
                               printer=_Printer({"allow_unknown_functions": True}))
    except DeriveError:
        raise
    except Exception as exc:  # the printer raises PrintMethodNotImplementedError and others
        raise NumericError(f"cannot translate {expr} to numpy: {exc}") from None
    return NumericFunction(expr, args, nonfinite, function)


def _is_expectation(e) -> bool:
    from derive.gaussian import GaussianExpectation

    return isinstance(e, GaussianExpectation)


def _outside_expectations(expr):
    return expr.replace(_is_expectation, lambda e: sp.Integer(0))


def _expectation_call(node, namespace: dict, rtol: float, tabulate):
    """Replace a GaussianExpectation by a call F(*parameters, *integrand symbols) with F in `namespace`."""
    extra = tuple(sorted(node.integrand.free_symbols - set(node.variables), key=str))
    name = f"_gaussian_expectation_{len([k for k in namespace if k.startswith('_gaussian')])}"
    namespace[name] = _expectation_function(node, extra, rtol, tabulate)
    return sp.Function(name)(*node.parameters, *extra)


def _expectation_function(node, extra: tuple, rtol: float, tabulate):
    """The numpy function (parameters..., extra...) → E[integrand] of one expectation node."""
    from derive.gaussian.quadrature import np_expectation_1d, np_expectation_2d
    from derive.piecewise import kinks

    body, variables = node.integrand, node.variables
    if body.has(sp.DiracDelta):
        raise NumericError(f"cannot integrate a Dirac delta numerically in {body}; reduce it first "
                           "with derive.expect")
    f = lambdify(body, [*variables, *extra], nonfinite="nan", rtol=rtol, tabulate=tabulate)._function
    allowed = set(extra)

    def kink_functions(var, inputs=()):
        found = [k for k in kinks(body, var) if k.free_symbols <= allowed | set(inputs)]
        return [(bool(k.free_symbols & set(inputs)), sp.lambdify([*inputs, *extra], k, modules=_MODULES))
                for k in found]

    if len(variables) == 1:
        x_kinks = kink_functions(variables[0])
        table = _LogChebyshev(f, [g() for _, g in x_kinks], rtol) if not extra and tabulate is not False \
            else None

        def one(q, *params):
            q = np.asarray(q, dtype=float)
            if table is not None and (tabulate or q.size >= TABULATE_FROM):
                return table(q)
            return np_expectation_1d(f, q, kinks=[g(*params) for _, g in x_kinks], rtol=rtol, args=params)

        return one
    x, y = variables
    x_kinks = kink_functions(x)
    y_kinks = kink_functions(y, (x,))

    def two(q1, q2, c, *params):
        ky = [g if moves else g(0.0, *params) for moves, g in y_kinks]
        return np_expectation_2d(f, q1, q2, c, [g(*params) for _, g in x_kinks], ky, rtol=rtol, args=params)

    return two


class _LogChebyshev:
    """E[f(√q z)] as piecewise Chebyshev interpolants in t = log q on panels [kH, (k+1)H], built on
    demand from :func:`np_expectation_1d` at DEGREE+1 Chebyshev points and accepted when they match
    the quadrature to rtol·max|E| at the DEGREE midpoints between them (else the panel is halved).
    q = 0 and q outside [1e-300, 1e300] are integrated directly."""

    DEGREE = 24
    H = 1.0

    def __init__(self, f, kinks, rtol):
        self.f, self.kinks, self.rtol = f, kinks, rtol
        self.panels = {}  # (level, k) -> Chebyshev coefficients on [k h, (k + 1) h], h = H / 2**level
        self.levels = {}  # k at level 0 -> its level of refinement

    def _quadrature(self, q):
        from derive.gaussian.quadrature import np_expectation_1d

        return np_expectation_1d(self.f, q, kinks=self.kinks, rtol=self.rtol)

    def _build(self, k: int):
        n = self.DEGREE
        nodes = np.cos(np.pi * (np.arange(n + 1) + 0.5) / (n + 1))
        between = np.cos(np.pi * np.arange(1, n + 1) / (n + 1))
        for level in range(6):
            h = self.H / 2**level
            parts = 2**level
            lo = k * self.H + h * np.arange(parts)[:, None]
            t = lo + h * (np.concatenate([nodes, between]) + 1) / 2
            values = self._quadrature(np.exp(t))
            coefficients = [np.polynomial.chebyshev.chebfit(nodes, v[:n + 1], n) for v in values]
            check = np.array([np.polynomial.chebyshev.chebval(between, a) for a in coefficients])
            scale = np.max(np.abs(values), axis=1)
            if np.all(np.abs(check - values[:, n + 1:]) <= self.rtol * 10 * scale):
                for j, a in enumerate(coefficients):
                    self.panels[(level, k * parts + j)] = a
                self.levels[k] = level
                return
        raise NumericError(f"the interpolant of the expectation in log q does not converge on "
                           f"q in [{math.exp(k * self.H):.3g}, {math.exp((k + 1) * self.H):.3g}]")

    def __call__(self, q):
        q = np.asarray(q, dtype=float)
        out = np.empty(q.shape)
        flat_q, flat = q.ravel(), out.reshape(-1)
        inside = (flat_q >= 1e-300) & (flat_q <= 1e300)
        if (~inside).any():
            flat[~inside] = self._quadrature(flat_q[~inside])
        t = np.log(flat_q[inside])
        k = np.floor(t / self.H).astype(np.int16)  # |log q| <= 691: int16 sorts by radix
        order = np.argsort(k, kind="stable")  # panels as contiguous runs
        k_sorted, t_sorted = k[order], t[order]
        starts = np.flatnonzero(np.diff(k_sorted, prepend=k_sorted[:1] - 1))
        values = np.empty(t.size)
        for start, stop in zip(starts, [*starts[1:], t.size], strict=False):
            base = int(k_sorted[start])
            if base not in self.levels:
                self._build(base)
            level, part = self.levels[base], t_sorted[start:stop]
            h = self.H / 2**level
            j = np.floor(part / h).astype(int)
            local = 2 * (part - j * h) / h - 1
            result = np.empty(part.size)
            for panel in np.unique(j):
                m = j == panel
                result[m] = np.polynomial.chebyshev.chebval(local[m], self.panels[(level, int(panel))])
            values[order[start:stop]] = result
        flat[inside] = values
        return out
