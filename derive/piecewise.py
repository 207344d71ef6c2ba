"""Piecewise calculus: kinks, the Heaviside normal form, derivatives in the sense of distributions.

**Kinks** are the points where a piecewise expression is not smooth; quadrature splits its
interval there, and the closed-form rules use them to recognise truncated-Gaussian integrals:

>>> import sympy as sp
>>> from derive.symbols import x
>>> kinks(sp.Max(0, x) + sp.Abs(x - 1), x)
(0, 1)

**Heaviside normal form**: every kink written through the Heaviside step Θ.

``Max``, ``Min``, ``Abs``, ``sign`` and ``Piecewise`` (with conditions linear in
the variables) become sums of products of smooth factors and steps
Θ(L − t) whose linear form L has a positive leading coefficient.  The
rewritten expression equals the original almost everywhere (all a Gaussian
expectation sees), and ``sympy.diff`` turns its jumps into Dirac deltas,
which ``sympy.diff`` of a ``Piecewise`` silently drops.

>>> to_heaviside(sp.Max(0, x), (x,))
x*Heaviside(x)
>>> to_heaviside(sp.Abs(x), (x,))
x*(2*Heaviside(x) - 1)
>>> to_heaviside(sp.Piecewise((0, x < 0), (x, x < 1), (1, True)), (x,))
x*(1 - Heaviside(x - 1))*Heaviside(x) + Heaviside(x)*Heaviside(x - 1)
>>> to_heaviside(sp.Heaviside(1 - x), (x,))
1 - Heaviside(x - 1)

Deltas are kept in the normal form f(t) δ(x − t): a smooth coefficient is
evaluated at the point (so that x δ(x) = 0 before anything is squared), and
:func:`derivative` differentiates in the sense of distributions:

>>> reduce_deltas((x + 1) * sp.DiracDelta(x + 1) + x**2 * sp.DiracDelta(x, 1), (x,))
0
>>> derivative(sp.Piecewise((-1, x < -1), (x, x < 1), (1, True)), x, 2)
-DiracDelta(x - 1) + DiracDelta(x + 1)
"""

from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational

KINK_FUNCTIONS = (sp.Max, sp.Min, sp.Abs, sp.sign, sp.Piecewise, sp.Heaviside)


class Unsupported(Exception):
    """The integrand lies outside the forms the closed-form rules handle."""


def linear_form(expr: sp.Expr, variables: tuple) -> tuple[tuple, sp.Expr]:
    """(coefficients, constant) of `expr` = Σ aᵢ vᵢ + b; Unsupported if not linear."""
    coefficients = tuple(sp.diff(expr, v) for v in variables)
    if any(a.has(*variables) for a in coefficients):
        raise Unsupported(f"{expr} is not linear in {variables}")
    return coefficients, expr.xreplace({v: 0 for v in variables})


def leading(form: tuple) -> sp.Expr:
    """The first nonzero coefficient of a linear form."""
    return next(a for a in form if a != 0)


def to_heaviside(expr: sp.Expr, variables: tuple) -> sp.Expr:
    """`expr` with Max, Min, Abs, sign and Piecewise rewritten through oriented steps."""
    if not expr.has(*KINK_FUNCTIONS):
        return expr
    return _orient_steps(_rewrite(expr, tuple(variables)), tuple(variables))


def _rewrite(e: sp.Expr, variables: tuple) -> sp.Expr:
    if e.is_Atom or not e.has(*variables):
        return e
    if isinstance(e, sp.Piecewise):
        return _piecewise_sum([(_rewrite(v, variables), cond) for v, cond in e.args], variables)
    args = [_rewrite(a, variables) for a in e.args]
    if isinstance(e, (sp.Max, sp.Min)):
        result = args[0]
        for a in args[1:]:
            result = _extremum(result, a, isinstance(e, sp.Max), variables)
        return result
    if isinstance(e, sp.Abs):
        return args[0] * (2 * sp.Heaviside(args[0]) - 1)
    if isinstance(e, sp.sign):
        return 2 * sp.Heaviside(args[0]) - 1
    if isinstance(e, sp.Heaviside):
        return sp.Heaviside(args[0])
    return e.func(*args)


def _extremum(a, b, is_max: bool, variables) -> sp.Expr:
    """max(a, b) = b + (a − b)Θ(a − b), min(a, b) = a − (a − b)Θ(a − b); a and b swapped
    when that orients the step (max(0, x) = xΘ(x))."""
    if _negatively_oriented(a - b, variables):
        a, b = b, a
    d = a - b
    return b + d * sp.Heaviside(d) if is_max else a - d * sp.Heaviside(d)


def _negatively_oriented(arg, variables) -> bool:
    try:
        return bool(leading(linear_form(arg, variables)[0]).is_negative)
    except (Unsupported, StopIteration):
        return False


def _piecewise_sum(pieces, variables) -> sp.Expr:
    """Σᵢ eᵢ 1{cᵢ and not cⱼ for j < i}: the pieces of a Piecewise as a sum."""
    total, not_before = sp.S.Zero, sp.S.One
    for value, cond in pieces:
        indicator = _indicator(cond, variables)
        total += value * indicator * not_before
        not_before *= 1 - indicator
    return total


def _indicator(cond, variables) -> sp.Expr:
    """The 0/1 function of a condition linear in the variables (a.e.)."""
    if cond is sp.true:
        return sp.S.One
    if cond is sp.false:
        return sp.S.Zero
    if not cond.has(*variables):
        raise Unsupported(f"condition {cond} does not involve {variables}")
    if isinstance(cond, sp.And):
        return sp.Mul(*(_indicator(a, variables) for a in cond.args))
    if isinstance(cond, sp.Or):
        return 1 - sp.Mul(*(1 - _indicator(a, variables) for a in cond.args))
    if isinstance(cond, sp.Not):
        return 1 - _indicator(cond.args[0], variables)
    if isinstance(cond, (sp.StrictLessThan, sp.LessThan)):
        return sp.Heaviside(cond.rhs - cond.lhs)
    if isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)):
        return sp.Heaviside(cond.lhs - cond.rhs)
    if isinstance(cond, Relational):  # Eq holds on a null set, Ne almost everywhere
        return sp.S.Zero if isinstance(cond, sp.Eq) else sp.S.One
    raise Unsupported(f"condition {cond} is not a (combination of) linear inequalities")


def _orient_steps(e: sp.Expr, variables: tuple) -> sp.Expr:
    """Θ(L) with a negative leading coefficient of L becomes 1 − Θ(−L) (equal a.e.)."""

    def orient(step):
        arg = step.args[0]
        if not arg.has(*variables):
            return step
        form, _ = linear_form(arg, variables)
        lead = leading(form)
        if lead.is_positive:
            return step
        if lead.is_negative:
            return 1 - sp.Heaviside(-arg)
        raise Unsupported(f"the sign of {lead} in {step} is unknown")

    return e.replace(lambda n: isinstance(n, sp.Heaviside), orient)


def derivative(expr: sp.Expr, var: sp.Symbol, n: int = 1) -> sp.Expr:
    """The n-th derivative in the sense of distributions: jumps of a Piecewise give Dirac
    deltas (``sympy.diff`` of a Piecewise drops them), deltas kept in normal form."""
    if not expr.has(sp.Piecewise):
        return sp.diff(expr, var, n)
    expr = to_heaviside(expr, (var,))
    for _ in range(n):
        expr = reduce_deltas(sp.diff(expr, var), (var,))
    return expr


def reduce_deltas(expr: sp.Expr, variables: tuple) -> sp.Expr:
    """Every product f(x) δ⁽ᵏ⁾(αx − αt) with f smooth near t rewritten as
    Σⱼ (−1)ʲ C(k, j) f⁽ʲ⁾(t) δ⁽ᵏ⁻ʲ⁾(x − t) / (|α| αᵏ).  Products whose coefficient jumps at
    t, or with several deltas, are left alone."""
    if expr.is_Atom or not expr.has(sp.DiracDelta):
        return expr
    expr = expr.func(*(reduce_deltas(a, variables) for a in expr.args))
    return _reduce_product(expr, variables) if isinstance(expr, sp.Mul) else expr


def _reduce_product(m: sp.Mul, variables: tuple) -> sp.Expr:
    deltas = [f for f in m.args if isinstance(f, sp.DiracDelta)]
    if not deltas:
        return m
    delta = deltas[0]
    arg, k = delta.args[0], (int(delta.args[1]) if len(delta.args) > 1 else 0)
    (var, *others) = [v for v in variables if arg.has(v)] or [None]
    if var is None or others:
        return m
    try:
        (alpha,), const = linear_form(arg, (var,))
    except Unsupported:
        return m
    if not (alpha.is_positive or alpha.is_negative):
        return m
    t = -const / alpha
    f = _frozen_steps(m.func(*(a for a in m.args if a is not delta)), var, t)
    if f is None or f.has(*KINK_FUNCTIONS[:-1]):
        return m
    scale = (alpha if alpha.is_positive else -alpha) * alpha**k
    return sp.Add(*((-1) ** j * sp.binomial(k, j) * sp.diff(f, var, j).xreplace({var: t})
                    * (sp.DiracDelta(var - t, k - j) if k > j else sp.DiracDelta(var - t))
                    for j in range(k + 1))) / scale


def _frozen_steps(f: sp.Expr, var, t) -> sp.Expr | None:
    """f with each step in `var` replaced by its (locally constant) value at var = t and each
    delta elsewhere by 0; None when one switches at t or its side cannot be decided."""
    values = {}
    for node in f.atoms(sp.Heaviside, sp.DiracDelta):
        if node.has(var):
            at = node.args[0].xreplace({var: t})
            if not (at.is_positive or at.is_negative):
                return None
            values[node] = sp.S.One if at.is_positive and node.func is sp.Heaviside else sp.S.Zero
    return f.xreplace(values)


# --- kinks ---------------------------------------------------------------------------------------


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


def pieces(expr: sp.Expr, var: sp.Symbol) -> tuple:
    """The smooth pieces of `expr` between its kinks, ((−∞, k₁, f₀), (k₁, k₂, f₁), …, (k_n, ∞, f_n)),
    each f_j the expression that holds on (k_j, k_{j+1}); Unsupported when a kink is not a number,
    `expr` has a Dirac delta, or a piece cannot be decided.

    >>> from derive.symbols import x
    >>> pieces(sp.Piecewise((-1, x < -1), (x, x < 1), (1, True)), x)
    ((-oo, -1, -1), (-1, 1, x), (1, oo, 1))
    >>> pieces(x**2, x)
    ((-oo, oo, x**2),)
    """
    form = to_heaviside(expr, (var,))
    if form.has(sp.DiracDelta):
        raise Unsupported(f"{expr} has a Dirac delta")
    points = kinks(form, var)
    if not all(p.is_number for p in points):
        raise Unsupported(f"the kinks of {expr} depend on parameters")
    ends = (-sp.oo, *points, sp.oo)
    out = []
    for left, right in zip(ends[:-1], ends[1:], strict=True):
        inside = (left + right) / 2 if left.is_finite and right.is_finite else (
            right - 1 if right.is_finite else left + 1 if left.is_finite else sp.S.Zero)
        piece = _frozen_steps(form, var, inside)
        if piece is None:
            raise Unsupported(f"the piece of {expr} on ({left}, {right}) cannot be decided")
        out.append((left, right, sp.expand(piece)))
    return tuple(out)


def is_smooth(expr: sp.Expr) -> bool:
    """True when `expr` contains no piecewise or distributional node."""
    return not expr.has(sp.Piecewise, *_NONSMOOTH)


def check_defined(expr: sp.Expr) -> None:
    """DomainError when a Piecewise in `expr` has no default branch: it is undefined (nan) where
    none of its conditions holds, and no Gaussian expectation of it exists.

    >>> import sympy as sp
    >>> from derive.symbols import x
    >>> check_defined(sp.Piecewise((x, x > 0), (0, True)))
    >>> check_defined(sp.Piecewise((x, x > 0)))
    Traceback (most recent call last):
    ...
    derive.errors.DomainError: Piecewise((x, x > 0)) is undefined where none of its conditions holds; ...
    """
    from derive.errors import DomainError

    for node in expr.atoms(sp.Piecewise):
        if node.args[-1].cond is not sp.true:
            first = node.args[0]
            raise DomainError(f"{node} is undefined where none of its conditions holds; add a default "
                              f"branch, e.g. Piecewise(({first.expr}, {first.cond}), (0, True))")
