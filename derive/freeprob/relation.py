r"""Algebraic spectral laws: the polynomial equation P(z, M) = 0 satisfied by M(z) = zG(z) − 1.

One convention throughout (Pennington, Schoenholz & Ganguli 2017, sec. 2.3):
G(z) = ∫ρ(t)/(z − t) dt, M(z) = zG(z) − 1 = Σ_{k≥1} m_k z^{-k}, S(w) = (1 + w)/(w M⁻¹(w)),
G⁻¹(g) = R(g) + 1/g.  A law is *algebraic* when M satisfies a polynomial equation P(z, M) = 0;
the physical branch is the one with M = m_1/z + O(z^{-2}) at infinity.  From P follow

* the equation of G: P(z, zG − 1) = 0;
* of S: P((1 + w)/(wS), w) = 0 (substitute z = M⁻¹(w) = (1 + w)/(wS), M = w), branch S(0) = 1/m_1;
* of R: P(R + 1/g, (R + 1/g) g − 1) = 0, branch R(0) = m_1.

Free products and sums eliminate the subordinate variables by resultants: for A ⊠ B with
χ_A = M_A⁻¹(w), χ_B = M_B⁻¹(w), multiplying S-transforms gives M⁻¹_{A⊠B}(w) = (w/(1 + w)) χ_A χ_B
(Voiculescu 1987; Pennington et al. 2018, eq. 8); for A ⊞ B with ζ_A = G_A⁻¹(g), adding
R-transforms gives G⁻¹_{A⊞B}(g) = ζ_A + ζ_B − 1/g (Voiculescu 1986).  The resultant may carry
spurious factors; the one kept is the unique irreducible factor that the moment series of the
result satisfies to the order of its degree (checked exactly).

>>> import sympy as sp
>>> from derive.freeprob.relation import Relation, M_, Z
>>> mp = Relation.from_inverse((1 + M_)**2 / M_)        # Marchenko–Pastur, ratio 1: M⁻¹(w) = (1 + w)²/w
>>> mp.poly
-M**2 + M*z - 2*M - 1
>>> mp.explicit("S")
1/(w + 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy as sp

from derive.errors import NumericError

#: the spectral variable (complex), the argument of S (a value of M) and of R (a value of G)
Z = sp.Symbol("z")
W = sp.Symbol("w")
g_ = sp.Symbol("g")
#: unknowns of the implicit equations
G_, M_, S_, R_ = sp.symbols("G M S R")


@dataclass(frozen=True)
class Implicit:
    """A transform f(arg) defined implicitly by ``equation`` = 0 on the branch stated by ``branch``."""

    equation: sp.Expr
    function: sp.Symbol
    argument: sp.Symbol
    branch: str

    def _latex(self, printer) -> str:
        return rf"{printer._print(sp.expand(self.equation))} = 0 \quad ({self.branch})"

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"


_BRANCH = {"G": (G_, Z, r"G(z) \sim 1/z,\ z \to \infty"),
           "M": (M_, Z, r"M(z) \sim m_1/z,\ z \to \infty"),
           "S": (S_, W, r"S(0) = 1/m_1"),
           "R": (R_, g_, r"R(0) = m_1")}


def _numerator(expr) -> sp.Expr:
    """The numerator of `expr` over a common denominator (a polynomial is its own: together() on
    it only rewrites it, at a cost that dominated the derivation of a relation)."""
    expr = sp.sympify(expr)
    return expr if expr.is_polynomial() else sp.numer(sp.together(expr))


def _tidy(expr, var: sp.Symbol, strip_power: bool = False, factored: bool = True) -> sp.Expr:
    """The primitive part of a polynomial in `var` (factors free of `var` removed), also without a
    factor var^k when `strip_power` (a spurious component var = 0)."""
    poly = sp.Poly(sp.expand(expr), var)
    poly = poly.primitive()[1]
    if strip_power:
        low = min(m[0] for m in poly.monoms())
        poly = sp.Poly(sp.expand(poly.as_expr() / var**low), var)
    return sp.factor(poly.as_expr()) if factored else poly.as_expr()


@dataclass(frozen=True)
class Relation:
    """P(z, M) = 0, P a polynomial in M whose coefficients are polynomials in z (``poly``)."""

    poly: sp.Expr

    @classmethod
    @lru_cache(maxsize=256)
    def from_inverse(cls, chi) -> Relation:
        """The relation of z = M⁻¹(M) for an explicit (rational) M⁻¹ = ``chi`` (in the symbol M);
        derived once per expression."""
        chi = sp.cancel(sp.sympify(chi))
        num, den = sp.fraction(chi)
        return cls(Z * den - num)

    @classmethod
    @lru_cache(maxsize=256)
    def from_g_poly(cls, poly_g) -> Relation:
        """From an equation P_G(z, G) = 0 of G (substituting G = (M + 1)/z); derived once per
        expression."""
        return cls(_tidy(_numerator(sp.sympify(poly_g).subs(G_, (M_ + 1) / Z)), M_))

    @cached_property
    def degree(self) -> int:
        return sp.Poly(self.poly, M_).degree()

    @cached_property
    def z_degree(self) -> int:
        return sp.Poly(self.poly, Z).degree()

    @cached_property
    def is_explicit_inverse(self) -> bool:
        """True when P is linear in z: M⁻¹ is then the rational function below."""
        return self.z_degree == 1

    @cached_property
    def inverse(self) -> sp.Expr:
        """M⁻¹(M) when P is linear in z."""
        num, den = self.inverse_fraction
        return num.as_expr() / den.as_expr()

    @cached_property
    def inverse_fraction(self) -> tuple:
        """(numerator, denominator) of M⁻¹ as coprime polynomials in M when P is linear in z."""
        a, b = sp.Poly(self.poly, Z).all_coeffs()
        return sp.Poly(-b, M_).cancel(sp.Poly(a, M_), include=True)

    def equation(self, name: str, factored: bool = True) -> sp.Expr:
        """The polynomial equation (= 0) of the transform `name` in G, M, S, R."""
        p = self.poly
        if name == "M":
            return p
        if name == "G":
            return _tidy(_numerator(p.subs(M_, Z * G_ - 1)), G_, factored=factored)
        if name == "S":
            return _tidy(_numerator(p.subs({Z: (1 + W) / (W * S_), M_: W})), S_)
        if name == "R":
            zeta = R_ + 1 / g_
            return _tidy(_numerator(p.subs({Z: zeta, M_: zeta * g_ - 1})), R_)
        raise ValueError(name)

    def implicit(self, name: str) -> Implicit:
        f, arg, branch = _BRANCH[name]
        return Implicit(sp.factor(self.equation(name)), f, arg, branch)

    def explicit(self, name: str, moments: tuple = ()):
        """The transform as an explicit SymPy expression when its equation has degree <= 2
        (the branch fixed by its expansion point), else the :class:`Implicit` equation."""
        f, arg, _ = _BRANCH[name]
        eq = sp.factor(self.equation(name))
        # drop factors free of the unknown (they do not vanish on the physical branch)
        factors = [b for b, _ in sp.factor_list(eq)[1] if b.has(f)]
        for factor in factors:
            if sp.Poly(factor, f).degree() <= 2:
                chosen = [r for r in sp.solve(factor, f) if _on_branch(name, r, moments)]
                if len(chosen) == 1:
                    return sp.factor(sp.simplify(chosen[0]))
        return self.implicit(name)

    def matches(self, moments: list) -> bool:
        """Whether M = Σ m_k z^{-k} (the given moments) satisfies P to the order of its terms."""
        t = sp.Symbol("t")
        series = sum(m * t ** (k + 1) for k, m in enumerate(moments))
        expr = sp.expand(self.poly.subs({Z: 1 / t, M_: series}) * t ** self.z_degree)
        poly = sp.Poly(expr, t)
        order = len(moments)
        return all(sp.simplify(poly.coeff_monomial(t ** j)) == 0 for j in range(order + 1))


def _on_branch(name: str, root, moments) -> bool:
    """Whether an explicit root is the physical branch (checked by its limit at the expansion point)."""
    try:
        if name in ("G", "M"):
            target = 1 if name == "G" else (moments[0] if moments else None)
            value = sp.limit(Z * root, Z, sp.oo)
        elif name == "S":
            target = 1 / moments[0] if moments else None
            value = sp.limit(root, W, 0)
        else:
            target = moments[0] if moments else None
            value = sp.limit(root, g_, 0)
    except (NotImplementedError, ValueError, TypeError):
        return False
    if target is None:
        return value.is_finite is True
    return sp.simplify(value - target) == 0


def select(poly: sp.Expr, moments_of) -> Relation:
    """The irreducible factor of ``poly`` (in z, M) satisfied by the physical series.

    ``moments_of(k)`` gives the exact moments m_1..m_k of the law.  Raises
    :class:`NumericError` if no factor or several factors match.
    """
    factors = [b for b, _ in sp.factor_list(sp.expand(poly))[1] if b.has(M_)]
    candidates = [Relation(f) for f in factors]
    if len(candidates) == 1:
        return candidates[0]
    order = max(c.degree + c.z_degree for c in candidates) + 4
    while order <= 64:
        moments = list(moments_of(order))
        ok = [c for c in candidates if c.matches(moments)]
        if len(ok) == 1:
            return ok[0]
        if not ok:
            break
        order *= 2
    raise NumericError("could not single out the algebraic equation of the physical branch among "
                       f"{len(candidates)} factors; the law is handled numerically instead")


def _eliminate(relations: list, combine: str) -> sp.Expr:
    """Resultant elimination: y = Π χ_i (combine='product', χ_i = M_i⁻¹(w)) or
    y = Σ ζ_i (combine='sum', ζ_i = G_i⁻¹(g)); returns T(y, u) = 0 with u = w or g."""
    y, c = sp.symbols("y c")
    u = W if combine == "product" else g_
    total = None
    for rel in relations:
        # Q(c, u) = 0 relates c = χ_i (product) or ζ_i (sum) to u
        if combine == "product":
            q = rel.poly.subs({Z: c, M_: u})
        else:
            q = _tidy(_numerator(rel.poly.subs({Z: c, M_: c * u - 1})), c, strip_power=True)
        if total is None:
            total = q.subs(c, y)
            continue
        shifted = total.subs(y, y / c) if combine == "product" else total.subs(y, y - c)
        shifted = _tidy(_numerator(shifted), c, strip_power=combine == "product")
        if sp.Poly(q, c).degree() == 1:
            a, b = sp.Poly(q, c).all_coeffs()
            total = _numerator(shifted.subs(c, -b / a))
        else:
            total = sp.resultant(sp.Poly(q, c), sp.Poly(shifted, c)).as_expr()
        total = sp.factor(total)
    return total


def product_relation(relations: list, moments_of) -> Relation:
    """The relation of the free multiplicative convolution of algebraic laws."""
    n = len(relations)
    if all(r.is_explicit_inverse for r in relations):
        return _explicit_product(tuple(relations))
    t = _eliminate(relations, "product")
    y = sp.Symbol("y")
    poly = _numerator(t.subs(sp.Symbol("w"), M_).subs(y, Z * ((1 + M_) / M_) ** (n - 1)))
    return select(poly, moments_of)


@lru_cache(maxsize=64)
def _explicit_product(relations: tuple) -> Relation:
    """M⁻¹ = (M/(1 + M))^{n−1} Π_i M_i⁻¹(M) for factors with explicit M_i⁻¹, multiplied out as
    polynomials (repeated factors once); derived once per tuple of factors."""
    n = len(relations)
    num, den = sp.Poly(M_ ** (n - 1), M_), sp.Poly((1 + M_) ** (n - 1), M_)
    for rel in set(relations):
        a, b = rel.inverse_fraction
        k = relations.count(rel)
        num, den = num * a**k, den * b**k
    num, den = num.cancel(den, include=True)
    return Relation(sp.expand(Z * den.as_expr() - num.as_expr()))


def sum_relation(relations: list, moments_of) -> Relation:
    """The relation of the free additive convolution of algebraic laws."""
    n = len(relations)
    t = _eliminate(relations, "sum")
    y = sp.Symbol("y")
    poly_g = _numerator(t.subs(g_, G_).subs(y, Z + (n - 1) / G_))
    return select(Relation.from_g_poly(poly_g).poly, moments_of)


def affine_relation(rel: Relation, shift, scale) -> Relation:
    """The relation of shift + scale·X: G_Y(z) = G_X((z − shift)/scale)/scale."""
    shift, scale = sp.sympify(shift), sp.sympify(scale)
    pg = rel.equation("G").subs({Z: (Z - shift) / scale, G_: scale * G_}, simultaneous=True)
    return Relation.from_g_poly(_numerator(pg))
