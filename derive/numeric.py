"""Numeric evaluators: SymPy expressions to vectorised numpy functions.

:func:`lambdify` is ``sympy.lambdify`` to numpy (no numba) that also handles what
`derive` produces: Heaviside (value H0 at 0, ½ unless the node says otherwise),
Piecewise, Max/Min, sign, erf/erfc, and unevaluated
:class:`~derive.gaussian.GaussianExpectation` nodes, each of which becomes a call
to its moment in the Gaussian engine (:mod:`derive.gaussian.moments`) with its
parameters evaluated as arrays.  The result broadcasts over its arguments like a
numpy ufunc.

Non-finite values follow one policy across `derive`: an evaluator never returns inf or nan
silently.  :func:`lambdify` raises :class:`~derive.errors.NumericError` naming the point where a
finite input gives a non-finite result (``nonfinite="nan"`` opts out, for callers that mask such
points); a moment whose closed form is not finite in float64 at a point is evaluated there by
quadrature, and says so (:mod:`derive.gaussian.moments`); the mean-field solvers report q* = inf
or 0 where the variance leaves float64's range or decays, with NaN for the quantities that then do
not exist and a regime that says why (:mod:`derive.meanfield`).

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

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive.errors import DeriveError, NumericError
from derive.gaussian.compiled import compile_numpy
from derive.gaussian.expectation import GaussianExpectation
from derive.gaussian.moments import TABULATE_FROM, moment_of
from derive.parsing import as_expr

__all__ = ["NumericFunction", "TABULATE_FROM", "lambdify"]


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
    others).  Each :class:`~derive.gaussian.GaussianExpectation` is evaluated by the Gaussian
    engine (:mod:`derive.gaussian.moments`: the Mehler expansion for separable smooth 2-D
    integrands, else panel quadrature split at the kinks, relative error <= `rtol`); symbols of
    the integrand other than the integration variables (activation parameters) must be among
    `args` and are passed on as arrays.  A 1-D expectation without such parameters, evaluated at
    >= TABULATE_FROM variances at once, is read from a Chebyshev table in log q with its error
    estimate (``tabulate=False`` always integrates, ``True`` always uses the table).
    Non-finite results: see :class:`NumericFunction`.
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
    if expr.replace(_is_expectation, lambda e: sp.Integer(0)).has(sp.DiracDelta):
        raise NumericError(f"cannot evaluate a Dirac delta numerically in {expr}; "
                           "take its expectation first (derive.expect)")
    names: dict = {}
    replaced = expr.replace(_is_expectation, lambda e: _expectation_call(e, names, rtol, tabulate))
    try:
        function = compile_numpy(args, replaced, names)
    except DeriveError:
        raise
    return NumericFunction(expr, args, nonfinite, function)


def _is_expectation(e) -> bool:
    return isinstance(e, GaussianExpectation)


def _expectation_call(node, names: dict, rtol: float, tabulate):
    """A call F(*parameters, *integrand symbols) standing for the expectation, F added to `names`."""
    moment = moment_of(node)
    if node.integrand.has(sp.DiracDelta):
        raise NumericError(f"cannot integrate a Dirac delta numerically in {node.integrand}; reduce it "
                           "first with derive.expect")
    name = f"_gaussian_expectation_{len(names)}"
    if len(node.variables) == 1:
        def evaluate(*values):
            return moment.evaluate(*values, tol=rtol, tabulate=tabulate).value
    else:
        def evaluate(*values):
            return moment.evaluate(*values, tol=rtol).value
    names[name] = evaluate
    return sp.Function(name)(*node.parameters, *moment.parameters)
