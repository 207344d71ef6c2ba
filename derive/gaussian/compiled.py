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
from derive.gaussian.special import NUMPY_FUNCTIONS, erfc
from derive.gaussian.stable import stable_form


def _select(conditions, choices):
    """numpy.select of a Piecewise, the choices given as thunks: a branch no element takes is not
    evaluated (the series near c = −1 of the arc-cosine kernels costs nothing on a Gram without
    such entries), and conditions and choices are broadcast to one shape first (a Piecewise of
    functions of different variables, such as φ′(x)φ′(y) in 2-D, mixes shapes)."""
    conditions = np.broadcast_arrays(*conditions)
    taken = np.zeros(conditions[0].shape, bool)
    chosen, values = [], []
    for condition, choice in zip(conditions, choices, strict=True):
        mask = condition & ~taken
        if mask.any():
            chosen.append(mask)
            values.append(choice())
        taken |= mask
    if not chosen:
        return np.full(taken.shape, np.nan)
    if len(chosen) == 1 and taken.all():  # one branch everywhere: its values, uncopied
        return np.broadcast_arrays(taken, values[0])[1]
    arrays = np.broadcast_arrays(*chosen, *values)
    return np.select(arrays[:len(chosen)], arrays[len(chosen):], default=np.nan)


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
        choices = ", ".join(f"lambda: {self._print(arg.expr)}" for arg in expr.args)
        conditions = ", ".join(self._print(arg.cond) for arg in expr.args)
        return f"_select([{conditions}], [{choices}])"


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


BLOCK = 1 << 16
"""Elements per block of :func:`row_blocks`: the temporaries of a block (512 KiB each) are reused
from the heap instead of being fresh pages of memory (on a 1000 × 1000 Gram, allocating and
faulting in each temporary costs about as much as the arithmetic)."""


def row_blocks(shape: tuple) -> list:
    """Slices of the first axis of `shape`, each holding about :data:`BLOCK` elements.

    >>> row_blocks((5, 30000))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None)]
    """
    if not shape:
        return [Ellipsis]
    rows = max(1, BLOCK // math.prod(shape[1:]))
    return [slice(start, start + rows) for start in range(0, shape[0], rows)]


def rows_of(array: np.ndarray, rows, ndim: int) -> np.ndarray:
    """The block `rows` of an array broadcast to `ndim` dimensions (all of it when the array
    does not extend along the first axis: length 1 there, or fewer dimensions)."""
    return array[rows] if array.ndim == ndim and array.shape[0] > 1 else array


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
