"""Float64-stable forms: ``stable_form(expr)`` equals `expr` and evaluates in float64 without
needless overflow or cancellation.

Closed forms and integrands are written for reading, not for float64: e^{2q} erfc(√(2q)) is
inf·0 beyond q ≈ 355, x e^{−x}/(1 + e^{−x})² is inf/inf at x = −750, c(π − arccos c) + √(1 − c²)
loses all its digits as c → −1.  :func:`stable_form` rewrites such expressions by general rules
(so a user's activation benefits as much as a built-in), in this order:

1. **steps that guard an exponential** (Θ(−x) eˣ + Θ(x)) become a Piecewise, so that the
   discarded branch is not computed as 0·inf;
2. **logarithms**: log(1 + eᵘ) → Log1pExp(u) = max(u, 0) + log1p(e^{−|u|}); log(1 + u) →
   Log1p(u) (Mächler 2012, *Accurately computing log(1 − exp(−|a|))*, eqs. 10–11);
3. **rational functions of one exponential** w = e^{kL} (L linear or any exponent; tanh, sinh,
   cosh written through exp): two forms, in w = e^{kL} where kL ≤ 0 and in 1/w where kL > 0,
   each cancelled to a single fraction and factored, a factor (w − 1) becoming expm1(kL);
   sigmoid, silu, softplus′, 1 − tanh² and their derivatives or products (x σ(2x), ...) then
   neither overflow nor cancel;
4. **pairs of terms** that cancel: k + k erf(u) → k erfc(−u) (and the other erf/erfc pairs);
   kπ − k arccos(u) → k arccos(−u); k eᵃ − k eᵇ → −k eᵃ expm1(b − a) or k eᵇ expm1(a − b),
   the one whose expm1 cannot overflow (a Piecewise on the sign of a − b); k atan2(y, x) + kπ/2
   → k atan2(x, −y) for x ≥ 0 (applied again after rule 5, which makes the atan2); and in
   products eᵃ erfc(b) → e^{a − b²} erfcx(b) (Abramowitz & Stegun 1964, eq. 7.1.2 scaled);
5. **arguments**: arcsin/arccos of a fraction n/d (d > 0) as atan2(n, √(d² − n²)) with d² − n²
   expanded symbolically (1 − x² is then not formed from a rounded x ≈ 1); a polynomial in a
   real symbol s that cancels at s = ±1 is rewritten around that end, p = p(±1) + (s ∓ 1) k(s),
   or p = r(s) + (1 − s)(1 + s) k(s) when it cancels at both, with p(±1) factored (c√q₁√q₂ −
   (q₁ + q₂)/2 = −(√q₁ − √q₂)²/2 − (1 − c)√q₁√q₂); a difference of square roots √A − √B becomes
   (A − B)/(√A + √B) (Higham 2002, §1.7);
6. **series where a closed form still cancels**: a sum depending on one variable whose running
   error bound (:mod:`derive.gaussian.roundoff`) exceeds 2⁻⁴⁴ relative as the variable tends to
   an end of its domain (q → 0 or ∞ for positive symbols, c → ±1 where the domain is [−1, 1]),
   is evaluated there by its Taylor/Puiseux series in t = √q, 1/√q or √(1 ± c), derived by
   SymPy, truncated where the next four terms are below u/4 of the value and checked against
   mpmath at the switch point.  The result is an :class:`Approximated` node: it denotes the
   exact sum (its ``evalf`` is exact), prints to numpy as Piecewise((series, near the end),
   (sum, True)) and carries the truncation bound for :func:`bounded_lambdify`.  This is how the
   arc-cosine kernels of every order near c = −1 (Cho & Saul 2009: J₁ ∝ sin ψ − ψ cos ψ ~ ψ³/3 with
   ψ = arccos(−c)), hard-tanh's E φ² at large q and ELU's at small q are evaluated.

Unevaluated :class:`~derive.gaussian.GaussianExpectation` nodes are left alone (their integrands
get their own stable form when :func:`derive.lambdify` integrates them).

>>> import sympy as sp
>>> from derive.symbols import x, q, c
>>> stable_form(1 / (1 + sp.exp(-x)))
Piecewise((1/(1 + exp(-x)), x >= 0), (exp(x)/(exp(x) + 1), True))
>>> stable_form(sp.exp(2*q) * sp.erfc(sp.sqrt(2*q)) / 2 + sp.Rational(1, 2))
Erfcx(sqrt(2)*sqrt(q))/2 + 1/2
>>> stable_form((1 - sp.exp(-2*q)) / 2)
-Expm1(-2*q)/2
>>> stable_form(sp.sqrt(1 - c**2))
sqrt((1 - c)*(c + 1))
>>> from derive.numeric import lambdify
>>> relu_kernel = (c * (sp.pi - sp.acos(c)) + sp.sqrt(1 - c**2)) / (2 * sp.pi)
>>> float(lambdify(relu_kernel, [c])(-0.999999))   # exact: 1.50052726868627151...e-10
1.5005272686862712e-10
"""

from __future__ import annotations

import math
from functools import lru_cache, reduce
from itertools import combinations

import mpmath
import numpy as np
import sympy as sp

from derive.gaussian.roundoff import BoundedFunction, U, bounded_function, running_error
from derive.gaussian.special import (
    NUMPY_FUNCTIONS,
    Approximated,
    Erfc,
    Erfcx,
    Expm1,
    Log1p,
    Log1pExp,
    textbook,
)

__all__ = ["Approximated", "BoundedFunction", "NUMPY_FUNCTIONS", "bounded_lambdify", "stable_form"]

#: a sum whose running error bound exceeds this (relative) near an end of its domain gets a series
TARGET = 2.0**-44
#: numbers of series terms tried, and how many further terms estimate the truncation
_TERMS = (8, 12, 16, 24, 32)
_TAIL = 4
#: the truncation bound claimed: this many times the sum of the next _TAIL terms
_TAIL_FACTOR = 2


def bounded_lambdify(expr, args, *, stabilise: bool = True) -> BoundedFunction:
    """A vectorised (value, error bound) evaluator of `expr` in `args`
    (:func:`derive.gaussian.roundoff.bounded_function`), with `stabilise` of its stable form.

    >>> import sympy as sp
    >>> t = sp.Symbol("t", positive=True)
    >>> bounded_lambdify((1 - sp.cos(t)) / t**2, [t])(1e-5)   # a series near 0
    (0.49999999999583333, 4.99...e-16)
    """
    from derive.parsing import as_expr

    expr = as_expr(expr)
    return bounded_function(stable_form(expr) if stabilise else expr, args)


def stable_form(expr) -> sp.Expr:
    """`expr` rewritten for float64 evaluation (see the module docstring); equal to `expr`."""
    from derive.gaussian.expectation import GaussianExpectation

    expr = sp.sympify(expr)
    masks = {e: sp.Dummy("expectation", dummy_index=hash(e)) for e in expr.atoms(GaussianExpectation)}
    out = _stable(expr.xreplace(masks))
    return out.xreplace({d: e for e, d in masks.items()})


@lru_cache(maxsize=4096)
def _stable(expr: sp.Expr) -> sp.Expr:
    for rewrite in (_fold_steps, _logarithms, _one_exponential, _pairs, _arguments, _combine, _series):
        expr = rewrite(expr)
    return expr


# --- 1. steps guarding an exponential ------------------------------------------------------------

_OVERFLOWING = (sp.exp, sp.sinh, sp.cosh)


def _fold_steps(expr):
    """Heaviside steps as Piecewise, folded outwards, when the expression has an exponential."""
    if not (expr.has(sp.Heaviside) and expr.has(*_OVERFLOWING)):
        return expr
    return sp.piecewise_fold(expr.replace(lambda e: isinstance(e, sp.Heaviside),
                                          lambda e: e.rewrite(sp.Piecewise)))


# --- 2. logarithms ---------------------------------------------------------------------------------

def _logarithms(expr):
    return expr.replace(lambda e: isinstance(e, sp.log) and e.args[0].is_Add and e.free_symbols, _log1p)


def _log1p(node):
    """log(1 + eᵘ) → Log1pExp(u), log(1 + k eᵘ) → Log1pExp(u + log k), log(1 + u) → Log1p(u)."""
    u = node.args[0] - 1
    if sp.S.One not in node.args[0].args or not u.free_symbols:
        return node
    split = _split(u, sp.exp)
    if split is not None and split[0].is_number and split[0].is_positive:
        k, v = split
        return Log1pExp(v + sp.log(k))
    return Log1p(u)


# --- 3. rational functions of one exponential --------------------------------------------------------

_HYPERBOLIC = (sp.tanh, sp.sinh, sp.cosh, sp.coth, sp.sech, sp.csch)


def _one_exponential(expr):
    """Top down: the largest subexpressions that are rational functions of one exponential."""
    if expr.is_Atom or not expr.free_symbols or not expr.has(sp.exp, Expm1, *_HYPERBOLIC):
        return expr
    if isinstance(expr, sp.Expr) and _exponential_in_a_sum(expr):
        out = _two_forms(expr)
        if out is not None:
            return out
    args = [_one_exponential(a) for a in expr.args]
    return expr if args == list(expr.args) else expr.func(*args)


def _exponential_in_a_sum(expr) -> bool:
    """Whether an exponential or hyperbolic function is a term (or a term's factor) of a sum."""
    kinds = (sp.exp, Expm1, *_HYPERBOLIC)
    return (any(a.is_Add and any(t.has(*kinds) for t in a.args) for a in sp.preorder_traversal(expr))
            or any(isinstance(a, _HYPERBOLIC[3:]) for a in sp.preorder_traversal(expr)))


def _two_forms(expr):
    """`expr` = R(e^{kL}) with R rational (coefficients rational in the symbols) as
    Piecewise((R(w) with w = e^{kL}, kL ≤ 0), (R(1/v) with v = e^{−kL}, True)), or None."""
    written = expr.replace(lambda e: isinstance(e, _HYPERBOLIC), lambda e: e.rewrite(sp.exp))
    written = written.replace(lambda e: isinstance(e, Expm1), lambda e: sp.exp(e.args[0]) - 1)
    exponents = [e.args[0] for e in written.atoms(sp.exp)]
    if not exponents:
        return None
    ratios = [sp.cancel(a / exponents[0]) for a in exponents]
    if not all(r.is_Rational for r in ratios):
        return None
    unit = reduce(_rational_gcd, ratios)
    base = sp.expand(unit * exponents[0])
    w = sp.Dummy("w", positive=True)
    rational = written.xreplace({sp.exp(a): w ** int(r / unit) for a, r in zip(exponents, ratios,
                                                                               strict=True)})
    if rational.has(sp.exp) or not rational.is_rational_function(w, *rational.free_symbols):
        return None
    fraction = sp.cancel(sp.together(rational))
    below = _fraction_in(fraction, w, base)
    if len(sp.Poly(sp.fraction(fraction)[1], w).terms()) == 1:
        return below  # a Laurent polynomial in w: its terms overflow only where the value does
    above = _fraction_in(sp.cancel(sp.together(rational.xreplace({w: 1 / w}))), w, -base)
    condition = _nonnegative(-base)
    if condition is sp.true or condition is sp.false:
        return below if condition is sp.true else above
    return sp.Piecewise((below, condition), (above, True))


def _rational_gcd(a: sp.Rational, b: sp.Rational) -> sp.Rational:
    return sp.Rational(math.gcd(a.p * b.q, b.p * a.q), a.q * b.q)


def _fraction_in(fraction, w, exponent):
    """numerator/denominator polynomials in w factored, w = e^{exponent}, (w − 1) → expm1."""
    numerator, denominator = sp.fraction(fraction)

    def written(polynomial):
        # over the rationals: SymPy's factor fails on Float coefficients (x + 0.3 tanh x); each
        # float is replaced by its exact binary value, which prints back as the same float
        exact = polynomial.xreplace({f: sp.Rational(float(f)) for f in polynomial.atoms(sp.Float)})
        factored = sp.factor(exact, w)
        return factored.xreplace({w - 1: Expm1(exponent), 1 - w: -Expm1(exponent)}).xreplace(
            {w: sp.exp(exponent)})

    return written(numerator) / written(denominator)


def _nonnegative(d) -> sp.Basic:
    """The condition d ≥ 0 with the positive factors of d dropped (2c√q₁√q₂ ≥ 0 → c ≥ 0)."""
    coefficient, factors = sp.factor_terms(d).as_coeff_mul()
    core = sp.Mul(*[f for f in factors if not f.is_positive])
    if coefficient == 0:
        return sp.true
    return sp.Ge(core, 0) if coefficient > 0 else sp.Le(core, 0)


# --- 4. pairs of terms that cancel ------------------------------------------------------------------

def _split(term, kind):
    """(k, u) when `term` = k·kind(u) with exactly one factor of that kind, else None."""
    factors = list(sp.Mul.make_args(term))
    hits = [i for i, f in enumerate(factors) if isinstance(f, kind)]
    if len(hits) != 1:
        return None
    hit = factors.pop(hits[0])
    return sp.Mul(*factors), hit.args[0]


def _erf_pair(a, b):
    split = _split(a, sp.erf)
    if split is not None:
        k, u = split
        if b == k:
            return k * Erfc(-u)
        if b == -k:
            return -k * Erfc(u)
    return None


def _erfc_pair(a, b):
    split = _split(a, (sp.erfc, Erfc))
    if split is not None:
        k, u = split
        if b == -k:
            return -k * sp.erf(u)
        if b == -2 * k:
            return -k * Erfc(-u)
    return None


def _acos_pair(a, b):
    split = _split(a, sp.acos)
    if split is not None and b == -split[0] * sp.pi:
        return -split[0] * sp.acos(-split[1])
    return None


def _exp_pair(a, b):
    first, second = _split(a, sp.exp), _split(b, sp.exp)
    if first is None:
        return None
    k, u = first
    kb, v = second if second is not None else (b, sp.S.Zero)
    if kb.has(sp.exp) or kb != -k:
        return None
    return k * _exp_difference(u, v)


def _exp_difference(u, v):
    """eᵘ − eᵛ as −eᵘ expm1(v − u) where u ≥ v, else eᵛ expm1(u − v): no overflow, no cancellation."""
    if v == 0:
        return Expm1(u)
    if u == 0:
        return -Expm1(v)
    d = sp.expand(u - v)
    condition = _nonnegative(d)
    upper, lower = -sp.exp(u) * Expm1(-d), sp.exp(v) * Expm1(d)
    if condition is sp.true or condition is sp.false:
        return upper if condition is sp.true else lower
    return sp.Piecewise((upper, condition), (lower, True))


def _atan_pair(a, b):
    """k atan2(y, x) ± kπ/2 = k atan2(x, ∓y) (resp. −k atan2(x, y)) for x ≥ 0 (a square root);
    k atan z ± kπ/2 likewise with x = 1."""
    for kind in (sp.atan2, sp.atan):
        split = _split(a, kind)
        if split is None:
            continue
        k = split[0]
        node = next(f for f in sp.Mul.make_args(a) if isinstance(f, kind))
        y, x = node.args if kind is sp.atan2 else (node.args[0], sp.S.One)
        if not (x.is_nonnegative or (x.is_Pow and x.exp == sp.S.Half)):
            return None
        if b == k * sp.pi / 2:
            return k * sp.atan2(x, -y)
        if b == -k * sp.pi / 2:
            return -k * sp.atan2(x, y)
    return None


_PAIR_RULES = (_erf_pair, _erfc_pair, _acos_pair, _exp_pair, _atan_pair)
_PAIR_KINDS = (sp.erf, sp.erfc, Erfc, sp.acos, sp.exp, sp.atan, sp.atan2)


def _pairs(expr):
    expr = _combine(expr)
    return expr.replace(lambda e: e.is_Mul and e.free_symbols and e.has(sp.erfc, Erfc) and e.has(sp.exp),
                        _scaled_erfc)


def _combine(expr):
    """The pair rules on every sum (again after the arguments pass has made atan2 terms)."""
    return expr.replace(lambda e: e.is_Add and e.free_symbols and e.has(*_PAIR_KINDS), _combine_terms)


def _combine_terms(node):
    terms, changed = list(node.args), False
    while True:
        found = next(((i, j, out) for i, j in combinations(range(len(terms)), 2)
                      for first, second in ((terms[i], terms[j]), (terms[j], terms[i]))
                      for rule in _PAIR_RULES if (out := rule(first, second)) is not None), None)
        if found is None:
            return sp.Add(*terms) if changed else node
        i, j, out = found
        terms = [t for n, t in enumerate(terms) if n not in (i, j)] + [out]
        changed = True


def _scaled_erfc(node):
    """eᵃ erfc(b) → e^{a − b²} erfcx(b) (for b ≥ 0: for b < 0, erfc(b) ∈ (1, 2] is harmless)."""
    factors = list(sp.Mul.make_args(node))
    exps = [f for f in factors if isinstance(f, sp.exp)]
    erfcs = [f for f in factors if isinstance(f, sp.erfc | Erfc)]
    if len(erfcs) != 1:
        return node
    rest = [f for f in factors if f not in exps and f is not erfcs[0]]
    a, b = sp.Add(*(e.args[0] for e in exps)), erfcs[0].args[0]
    scaled = sp.exp(sp.expand(a - b**2)) * Erfcx(b)
    if not b.is_nonnegative:
        scaled = sp.Piecewise((scaled, b >= 0), (sp.exp(a) * Erfc(b), True))
    return sp.Mul(*rest) * scaled


# --- 5. arguments: inverse sines, polynomials near ±1, differences of square roots -------------------

def _arguments(expr):
    expr = expr.replace(lambda e: isinstance(e, sp.asin | sp.acos) and not _is_signed_symbol(e.args[0]),
                        _inverse_sine)
    return expr.replace(lambda e: e.is_Add, _near_unit)


def _is_signed_symbol(e) -> bool:
    return e.is_Symbol or (-e).is_Symbol


def _inverse_sine(node):
    """arcsin(n/d) = atan2(n, √(d² − n²)), arccos(n/d) = atan2(√(d² − n²), n) for d > 0."""
    numerator, denominator = sp.fraction(sp.together(node.args[0]))
    if not denominator.is_positive:
        return node
    root = sp.sqrt(_near_unit(sp.expand(denominator**2 - numerator**2)))
    return sp.atan2(numerator, root) if isinstance(node, sp.asin) else sp.atan2(root, numerator)


def _near_unit(node):
    if not node.is_Add:
        return node
    node = _root_difference(node)
    if not node.is_Add or sp.count_ops(node) > 80:
        return node
    for s in sorted(node.free_symbols, key=str):
        if isinstance(s, sp.Dummy) or not s.is_real or s.is_positive or s.is_negative:
            continue
        out = _about_unit(node, s)
        if out is not None:
            return out
    return node


def _about_unit(p, s):
    """p rewritten around the end(s) ±1 of s where its terms cancel, or None."""
    if not p.is_polynomial(s) or _rewritten_about_unit(p, s):
        return None
    poly = sp.Poly(p, s)
    if poly.degree() < 1 or any(k.atoms(sp.Function) for k in poly.coeffs()):
        return None
    ends = [e for e in (1, -1) if _cancels_at(p, s, e)]
    if len(ends) == 2 and poly.degree() >= 2:
        quotient, remainder = sp.div(p, 1 - s**2, s)
        return _near_unit(sp.factor_terms(remainder)) + (1 - s) * (1 + s) * sp.factor_terms(quotient)
    if ends:
        end = ends[0]
        value = sp.expand(poly.eval(end))
        quotient = sp.quo(p - value, s - end, s)
        factored = _factor_roots(value).replace(lambda e: e.is_Add, _root_difference)
        return factored + (s - end) * sp.factor_terms(quotient)
    return None


def _rewritten_about_unit(p, s) -> bool:
    """Whether a term of p has a factor s ∓ 1 or 1 ∓ s already (an output of this rule)."""
    ends = {s - 1, s + 1, 1 - s}
    return any(f in ends for t in sp.Add.make_args(p) for f in sp.Mul.make_args(t))


def _cancels_at(p, s, end) -> bool:
    """Whether the terms of p at s = end, of both signs, cancel: some vanish in the sum, or the
    sum factors with a repeated factor (a square of a difference, √ read as a symbol).  Terms
    that vanish there by themselves (a factor s − end) do not count."""
    terms = [m for t in sp.Add.make_args(p) for m in sp.Add.make_args(sp.expand(t.xreplace({s: end})))
             if m != 0]
    if len({t.could_extract_minus_sign() for t in terms}) < 2:
        return False
    value = sp.expand(sp.Add(*terms))
    if len(sp.Add.make_args(value)) < len(terms):
        return True
    return any(f.is_Pow and f.base.is_Add and f.exp.is_even
               for f in sp.Mul.make_args(_factor_roots(value)))


def _factor_roots(expr):
    """sp.factor with each √B of a positive B read as a symbol r (and a symbol B as r²), so that
    q₁ + q₂ − 2√q₁√q₂ factors as (√q₁ − √q₂)²."""
    roots = sorted({e for e in expr.atoms(sp.Pow) if e.exp == sp.S.Half and e.base.is_positive},
                   key=sp.default_sort_key)
    names = {root: sp.Dummy("r", positive=True) for root in roots}
    squares = {root.base: r**2 for root, r in names.items() if root.base.is_Symbol}
    written = expr.xreplace(squares).xreplace(names)
    return sp.factor(written).xreplace({r: root for root, r in names.items()})


def _root_difference(node):
    """k√A − k√B → k(A − B)/(√A + √B) for A, B ≥ 0."""
    if len(node.args) != 2:
        return node
    first, second = (_split_root(t) for t in node.args)
    if first is None or second is None or first[0] != -second[0]:
        return node
    (k, a), (_, b) = first, second
    if not (a.is_nonnegative and b.is_nonnegative):
        return node
    return k * (a - b) / (sp.sqrt(a) + sp.sqrt(b))


def _split_root(term):
    factors = list(sp.Mul.make_args(term))
    roots = [i for i, f in enumerate(factors) if f.is_Pow and f.exp == sp.S.Half]
    if len(roots) != 1:
        return None
    root = factors.pop(roots[0])
    return sp.Mul(*factors), root.base


# --- 6. series where a sum still cancels ------------------------------------------------------------

#: an end of a domain: v in terms of t → 0⁺, t in terms of v, and the range of t to examine
_ENDS = {
    "zero": (lambda t: t**2, sp.sqrt, (-150, 0)),
    "infinity": (lambda t: t**-2, lambda v: 1 / sp.sqrt(v), (-150, 0)),
    "minus_one": (lambda t: t**2 - 1, lambda v: sp.sqrt(1 + v), (-8, -0.16)),
    "plus_one": (lambda t: 1 - t**2, lambda v: sp.sqrt(1 - v), (-8, -0.16)),
}


def _series(expr):
    return expr.replace(lambda e: e.is_Add and _single_variable(e) is not None, _with_series)


def _single_variable(node):
    symbols = node.free_symbols
    if len(symbols) != 1 or not node.atoms(sp.Function):
        return None
    (v,) = symbols
    return None if isinstance(v, sp.Dummy) else v


def _ends(node, v) -> list[str]:
    if v.is_positive:
        return ["zero", "infinity"]
    if not v.is_real:
        return []
    value, _ = running_error(node, {v: np.array([-1.000001, 1.000001, -0.999999, 0.999999])})
    finite = np.isfinite(value)
    outside, inside = finite[:2], finite[2:]
    return ["minus_one", "plus_one"] if not outside.any() and inside.all() else []


def _with_series(node):
    v = _single_variable(node)
    pieces = [p for p in (_series_piece(node, v, end) for end in _ends(node, v)) if p is not None]
    if not pieces:
        return node
    approximation = sp.Piecewise(*((s, cond) for s, cond, _ in pieces), (node, True))
    error = sp.Piecewise(*((r, cond) for _, cond, r in pieces), (0, True))
    return Approximated(node, approximation, error)


def _series_piece(node, v, end):
    """(series, condition, truncation bound) of `node` near `end`, or None where its direct
    evaluation is accurate there (or no series helps)."""
    v_of, t_of, (lo, hi) = _ENDS[end]
    ts = np.logspace(lo, hi, 240)
    t = sp.Dummy("t", positive=True)
    v_grid = np.asarray(sp.lambdify(t, v_of(t), "numpy")(ts), dtype=float)
    value, error = running_error(node, {v: v_grid})
    with np.errstate(all="ignore"):
        relative = np.abs(error) / np.abs(value)
    if not np.nanmax(relative) > TARGET:
        return None
    best = None
    for n in _TERMS:  # the fewest terms that do
        coefficients = _coefficients(node, v, t, v_of(t), n + _TAIL)
        if coefficients is None:
            return None
        chosen = _switch(coefficients, n, ts, relative)
        if chosen is not None and (best is None or chosen[0] < best[0][0]):
            best = chosen, coefficients
        if best is not None and best[0][0] <= TARGET:
            break
    if best is None or not best[0][0] < np.nanmax(relative) or not _checked(node, v, v_of, best[1], best[0]):
        return None
    (_, n, t_switch), coefficients = best
    return _pieces(coefficients, n, t_of(v), v_of, end, t_switch)


def _coefficients(node, v, t, v_of_t, count):
    """([a_low, ..., a_{low+count−1}], low) of the series Σ a_k t^k of node(v(t)) at t = 0⁺ from
    its leading power, or None (logs, fractional powers)."""
    exact = textbook(node.replace(lambda e: isinstance(e, Approximated), lambda e: e.args[0]))
    if exact.has(sp.Piecewise):
        return None
    expr = _small_arcsines(exact.xreplace({v: v_of_t}), t)
    order = count
    while True:
        coefficients = _series_terms(expr, t, order)
        if not coefficients or order > 4 * count:
            return None  # no series, or the sum vanishes to high order: leave it
        low = min(coefficients)
        if order >= low + count:
            return [sp.sympify(coefficients.get(p, 0)) for p in range(low, low + count)], low
        order = low + count


def _series_terms(expr, t, order):
    """{k: a_k} of the series of expr up to t^(order−1), or None."""
    try:
        series = sp.series(expr, t, 0, order).removeO()
    except Exception:  # SymPy's series raises many kinds; no series means no switch
        return None
    coefficients = {}
    for term in sp.Add.make_args(sp.expand(series)):
        k, power = term.as_coeff_exponent(t)
        if k.has(t) or not power.is_Integer or not k.is_number:
            return None
        if k != 0:
            coefficients[int(power)] = coefficients.get(int(power), 0) + k
    return coefficients


def _small_arcsines(expr, t):
    """arccos x and arcsin x with x → ±1 as t → 0 written through arcsin √((1 ∓ x)/2), whose
    argument → 0 (arccos x = 2 arcsin √((1 − x)/2) = π − 2 arcsin √((1 + x)/2)): SymPy's series
    of arccos at its branch point is slow."""
    def written(node):
        x = node.args[0]
        end = sp.limit(x, t, 0, "+")
        if end not in (1, -1):
            return node
        half = 2 * sp.asin(sp.sqrt(sp.factor((1 - end * x) / 2)))
        arccos = half if end == 1 else sp.pi - half
        return arccos if isinstance(node, sp.acos) else sp.pi / 2 - arccos

    return expr.replace(lambda e: isinstance(e, sp.acos | sp.asin), written)


def _evaluate(coefficients, n, ts):
    """Series with n terms and its truncation estimate (the next _TAIL terms in absolute value)."""
    terms, low = coefficients
    a = np.array([float(x) for x in terms])
    powers = ts[:, None] ** (low + np.arange(len(a)))
    return powers[:, :n] @ a[:n], np.abs(powers[:, n:n + _TAIL]) @ np.abs(a[n:n + _TAIL])


def _switch(coefficients, n, ts, relative):
    """(worst relative error, n, t*) with the series used for t ≤ t*: t* the largest grid point up
    to which the truncation estimate stays below u/4 of the value; None if there is none."""
    series, tail = _evaluate(coefficients, n, ts)
    good = tail <= U / 4 * np.abs(series)
    if not good[0]:
        return None
    last = len(ts) - 1 if good.all() else int(np.argmin(good)) - 1
    beyond = relative[last + 1:]
    worst = max(U, float(np.nanmax(beyond)) if beyond.size else 0.0)
    return worst, n, float(ts[last])


def _checked(node, v, v_of, coefficients, best) -> bool:
    """The truncation bound (_TAIL_FACTOR times the estimate) holds against mpmath (30 digits) at
    t* and t*/2."""
    _, n, t_switch = best
    terms, low = coefficients
    for tv in (t_switch, t_switch / 2):
        with mpmath.workdps(30):
            t_mp = mpmath.mpf(tv)
            partial = mpmath.fsum(mpmath.mpf(a.evalf(30)) * t_mp ** (low + i)
                                  for i, a in enumerate(terms[:n]))
            exact = mpmath.mpf(node.evalf(30, subs={v: v_of(sp.Float(tv, 30))}))
            _, tail = _evaluate(coefficients, n, np.array([tv]))
            if abs(partial - exact) > _TAIL_FACTOR * float(tail[0]) + 1e-25 * abs(exact):
                return False
    return True


def _pieces(coefficients, n, t_expr, v_of, end, t_switch):
    terms, low = coefficients
    t = sp.Dummy("t")
    polynomial = sp.horner(sum(a.evalf(20) * t**i for i, a in enumerate(terms[:n])), t)
    series = (t**low * polynomial).xreplace({t: t_expr})
    tail = sum((_TAIL_FACTOR * abs(a)).evalf(20) * t ** (low + n + i)
               for i, a in enumerate(terms[n:n + _TAIL]))
    boundary = sp.Float(float(v_of(sp.Float(t_switch, 30))), 17)
    v = next(iter(t_expr.free_symbols))
    condition = v < boundary if end in ("zero", "minus_one") else v > boundary
    return series, condition, tail.xreplace({t: t_expr})
