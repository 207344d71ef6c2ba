"""SymPy expressions compiled to vectorised float64 numpy functions (no numba).

The one compiler behind every float64 evaluator of `derive`: each expression is first put in
its float64-stable form (:func:`derive.gaussian.stable.stable_form`: no overflow of e^x, no
needless cancellation), then ``sympy.lambdify`` with numpy prints it, through a printer that
vectorises the special functions NumPyPrinter would send to `math` (erf, erfc, gamma,
loggamma) with the stable functions of :mod:`derive.gaussian.special` in its namespace, common
sub-expressions shared between the expressions of a list (arccos c in both kernels of ReLU),
and numpy warnings silenced — non-finite values are the caller's to judge
(:mod:`derive.numeric` states the policy).

>>> import numpy as np, sympy as sp
>>> from derive.symbols import q, c
>>> f = numpy_function([sp.acos(c) * q, sp.acos(c)], (q, c))
>>> [float(v) for v in f(2.0, 0.0)] == [float(np.pi), float(np.pi / 2)]
True
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive.errors import NumericError
from derive.gaussian.blocks import row_blocks, rows_of
from derive.gaussian.special import NUMPY_FUNCTIONS, erfc
from derive.gaussian.stable import stable_form


def _select(conditions, branches):
    """A Piecewise on arrays, each element computed by one branch: the branches are (function,
    operands) pairs, and every branch but the one taken by at least 3/4 of the elements (that one
    runs on the whole arrays, without gathering) runs only on the elements it takes — both forms
    of an overflow-safe e^{±x} pair cost one exponential per element, a branch no element takes
    costs nothing.  Conditions and operands are broadcast to one shape first (a Piecewise of
    functions of different variables, such as φ′(x)φ′(y) in 2-D, mixes shapes); elements no
    branch takes are nan.

    >>> v = np.array([-2.0, 1.0, 3.0])
    >>> _select([v < 0, v < 2], [(lambda u: -u, (v,)), (lambda: 7.0, ())]).tolist()
    [2.0, 7.0, nan]
    """
    shape = np.broadcast_shapes(*(np.shape(k) for k in conditions),
                                *(np.shape(o) for _, operands in branches for o in operands))
    taken, masks = np.zeros(shape, bool), []
    for condition in conditions:
        masks.append(np.broadcast_to(condition, shape) & ~taken)
        taken |= masks[-1]
    counts = [int(np.count_nonzero(m)) for m in masks]
    whole = int(np.argmax(counts)) if counts and 4 * max(counts) >= 3 * taken.size else None
    if whole is not None and counts[whole] == taken.size:  # one branch everywhere: its values, uncopied
        function, operands = branches[whole]
        return np.broadcast_to(function(*operands), shape)
    if whole is None:
        out = np.full(shape, np.nan)
    else:
        function, operands = branches[whole]
        out = np.array(np.broadcast_to(function(*operands), shape), dtype=float)
        out[~taken] = np.nan
    for i, ((function, operands), mask, count) in enumerate(zip(branches, masks, counts, strict=True)):
        if count and i != whole:
            out[mask] = function(*(np.broadcast_to(o, shape)[mask] for o in operands))
    return out


_SPECIAL = {
    "_select": _select,
    "_erf": np.vectorize(math.erf, otypes=[float]),
    "_erfc": erfc,
    "_lgamma": np.vectorize(math.lgamma, otypes=[float]),
    "_gamma": np.vectorize(math.gamma, otypes=[float]),
    "functools": functools,  # the printer writes Max/Min as functools.reduce
    **NUMPY_FUNCTIONS,
}


class NumpyCodePrinter(NumPyPrinter):
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

    def _print_And(self, expr):  # reduce pairwise: the operands may have different shapes
        return f"functools.reduce(numpy.logical_and, [{', '.join(map(self._print, expr.args))}])"

    def _print_Or(self, expr):
        return f"functools.reduce(numpy.logical_or, [{', '.join(map(self._print, expr.args))}])"

    def _print_Piecewise(self, expr):
        conditions = ", ".join(self._print(arg.cond) for arg in expr.args)
        return f"_select([{conditions}], [{', '.join(map(self._branch, expr.args))}])"

    def _branch(self, arg) -> str:
        """(lambda of the branch's free symbols, those symbols): see :func:`_select`."""
        names = [self._print(s) for s in sorted(arg.expr.free_symbols, key=str)]
        return f"(lambda {', '.join(names)}: {self._shared(arg.expr)}, ({''.join(n + ', ' for n in names)}))"

    def _shared(self, expr) -> str:
        """`expr` with its common sub-expressions (e^{−2x} in 4e^{−2x}/(1 + e^{−2x})²) computed
        once, bound by nested lambdas (a lambda holds no assignments)."""
        replacements, (text,) = sp.cse(expr, symbols=sp.numbered_symbols("_shared"))
        text = self._print(text)
        for symbol, value in reversed(replacements):
            text = f"(lambda {self._print(symbol)}: {text})({self._print(value)})"
        return text


def namespace() -> dict:
    """A fresh namespace for :func:`sympy.lambdify` with the vectorised special functions."""
    return dict(_SPECIAL)


def compile_numpy(args, expr, names: dict | None = None, cse: bool = False):
    """The raw function ``sympy.lambdify(args, stable_form(expr))`` printed by
    :class:`NumpyCodePrinter`, with the extra functions `names` (name → callable) in its namespace."""
    scope = namespace() | (names or {})
    expr = [stable_form(e) for e in expr] if isinstance(expr, list | tuple) else stable_form(expr)
    try:
        return sp.lambdify(args, expr, modules=[scope, "numpy"],
                           printer=NumpyCodePrinter({"allow_unknown_functions": True}), cse=cse)
    except Exception as exc:  # the printer raises PrintMethodNotImplementedError and others
        raise NumericError(f"cannot translate {expr} to numpy: {exc}") from None


def numpy_function(expr, args: tuple):
    """A float64 evaluator of a closed-form expression (or a list of them, sharing their common
    sub-expressions) in `args`: results broadcast to the arguments' shape, evaluated by
    :func:`row_blocks`; nan and inf are returned as numpy produces them.

    >>> from derive.symbols import q, c
    >>> f = numpy_function(sp.sqrt(q) * c, (q, c))
    >>> v = f(np.full((30000, 1), 4.0), np.ones((1, 7)))
    >>> v.shape, float(v.min()), float(v.max())
    ((30000, 7), 2.0, 2.0)
    """
    f = compile_numpy(args, expr, cse=True)
    many = isinstance(expr, list | tuple)

    def block(values, shape):
        with np.errstate(all="ignore"):
            out = f(*values)
        return [np.broadcast_to(np.asarray(o, dtype=float), shape) for o in (out if many else [out])]

    def evaluate(*values):
        arrays = [np.asarray(v) for v in values]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        blocks = row_blocks(shape)
        if len(blocks) == 1:
            outs = block(values, shape)
        else:
            outs = [np.empty(shape) for _ in (expr if many else [expr])]
            for rows in blocks:
                part = [rows_of(a, rows, len(shape)) for a in arrays]
                for out, value in zip(outs, block(part, outs[0][rows].shape), strict=True):
                    out[rows] = value
        return outs if many else outs[0]

    return evaluate
