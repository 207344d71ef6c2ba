"""Kinks: the points where a piecewise expression is not smooth.

Quadrature splits its interval there, and the closed-form rules use them to
recognise truncated-Gaussian integrals.

>>> import sympy as sp
>>> from derive.symbols import x
>>> kinks(sp.Max(0, x) + sp.Abs(x - 1), x)
(0, 1)
>>> kinks(sp.tanh(x), x)
()
"""

import sympy as sp

_NONSMOOTH = (sp.Heaviside, sp.DiracDelta, sp.sign, sp.Abs, sp.Max, sp.Min, sp.floor, sp.ceiling)


def _switch_arguments(expr: sp.Expr):
    """The expressions whose zero crossing switches a branch of `expr`."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Heaviside, sp.DiracDelta, sp.sign, sp.Abs, sp.floor, sp.ceiling)):
            yield node.args[0]
        elif isinstance(node, (sp.Max, sp.Min)):
            first, *rest = node.args
            yield from (other - first for other in rest)
        elif isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                yield from (rel.lhs - rel.rhs for rel in cond.atoms(sp.core.relational.Relational))


def kinks(expr: sp.Expr, var: sp.Symbol) -> tuple:
    """Sorted real points in `var` where a branch of `expr` switches.

    Switching arguments that are polynomials in `var` with numeric coefficients
    contribute their real roots; arguments that depend on other symbols are
    returned when linear in `var` (the root as an expression) and skipped
    otherwise.
    """
    points = set()
    for arg in _switch_arguments(expr):
        if not arg.has(var):
            continue
        poly = sp.Poly(arg, var) if arg.is_polynomial(var) else None
        if poly is None:
            continue
        if poly.degree() == 1:
            a, b = poly.all_coeffs()
            points.add(-b / a)
        elif not poly.free_symbols - {var}:
            points.update(sp.real_roots(poly))
    numeric = sorted(p for p in points if p.is_number)
    symbolic = sorted((p for p in points if not p.is_number), key=sp.default_sort_key)
    return tuple(numeric + symbolic)


def is_smooth(expr: sp.Expr) -> bool:
    """True when `expr` contains no piecewise or distributional node."""
    return not expr.has(sp.Piecewise, *_NONSMOOTH)
