"""The closed-form rules: E[Term] for X ~ N(0, Σ) in one or two dimensions.

:func:`expectation` applies, in this order (each rule may call it again):

1. **Completing the square.**  E[e^{XᵀAX + b·X} g(X)] = |I − 2AΣ|^{-1/2}
   e^{bᵀΣ′b/2} E′[g(X + Σ′b)] with Σ′ = Σ(I − 2AΣ)⁻¹; in 1-D q′ = q/(1 − 2aq),
   shift m = b q′.  It converges iff I − 2AΣ has positive eigenvalues; otherwise
   :class:`DivergenceError` (numbers) or ``Piecewise((value, condition), (±oo or nan, True))``
   (symbols whose sign cannot be decided).
2. **Dirac deltas.**  E[h(x) δ⁽ᵏ⁾(x − t)] = (−1)ᵏ dᵏ/dxᵏ [h(x) φ_q(x)] at x = t; in 2-D
   the other variable is integrated first under y | x=t ~ N(c√(q₂/q₁) t, q₂(1 − c²)).
   Two deltas at one point: infinite, :class:`DivergenceError`.
3. **Moments and Stein's lemma.**  E[x^n] = (n−1)!! q^{n/2}; bivariate moments by
   Isserlis' theorem; otherwise E[xᵢ g(X)] = Σⱼ Σᵢⱼ E[∂ⱼ g(X)] (Stein 1981) lowers the
   polynomial degree, turning Θ′ into δ and erf′ into a Gaussian factor.
4. **Base kernels**, no polynomial left: E[cos(k·X + φ)] = e^{−kᵀΣk/2} cos φ (and sin);
   sign-type factors Θ(L − t) = (1 + sgn(L − t))/2 and erf(L + γ) = E_W sgn(L + γ + W/√2)
   (W ~ N(0, 1)) reduce to E[sgn A] = erf(E A/√(2 Var A)) and, for centred A, B,
   E[sgn A sgn B] = (2/π) arcsin ρ_AB.  This gives E[erf(αx + β)] = erf(β/√(1 + 2α²q)),
   the arcsine kernel (2/π) arcsin(2αβ Σ₁₂/√((1 + 2α²Σ₁₁)(1 + 2β²Σ₂₂))) (Williams 1997)
   and the orthant E[Θ(x)Θ(y)] = (π − arccos c)/(2π) (the order-0 arc-cosine kernel,
   Cho & Saul 2009).  Anything else (Owen's T, the bivariate normal CDF at non-zero
   thresholds, trigonometric × erf) has no elementary closed form: None.

>>> import sympy as sp
>>> from derive.gaussian.terms import Gaussian, Term
>>> q = sp.Symbol("q", positive=True)
>>> expectation(Term(sp.S(1), (4,)), Gaussian((q,)))
3*q**2
>>> expectation(Term(sp.S(1), (0,), erfs=(((sp.S(1),), sp.S(0)),) * 2), Gaussian((q,)))
2*asin(2*q/(2*q + 1))/pi
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

import sympy as sp

from derive.errors import DivergenceError
from derive.gaussian.terms import ZERO, Gaussian, Term


class TailDivergence(DivergenceError):
    """A Gaussian factor e^{ax²} that beats the density: this term diverges at ±∞."""


def _sum(values) -> sp.Expr | None:
    values = list(values)
    return None if any(v is None for v in values) else sp.Add(*values)


@lru_cache(maxsize=1 << 16)
def expectation(term: Term, g: Gaussian) -> sp.Expr | None:
    """E[term] for X ~ N(0, g), or None when no rule applies."""
    if term.coef == 0:
        return ZERO
    if term.has_exp:
        return _complete_square(term, g)
    if term.deltas:
        return _delta(term, g)
    if any(term.powers):
        if not (term.trig or term.erfs or term.steps):
            return term.coef * moment(term.powers, g)
        return _stein(term, g)
    return _base(term, g)


# --- 1. completing the square -------------------------------------------------------------

def _complete_square(term: Term, g: Gaussian) -> sp.Expr | None:
    n = g.dim
    A = sp.Matrix([[term.quad[0]]]) if n == 1 else sp.Matrix(
        [[term.quad[0], term.quad[1] / 2], [term.quad[1] / 2, term.quad[2]]])
    S = sp.Matrix(n, n, lambda i, j: g.entry(i, j))
    M = sp.eye(n) - 2 * A * S
    det = _tidy_det(M[0, 0] if n == 1 else M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0])
    conditions = [det] if n == 1 else [det, M.trace()]
    converges = _converges(conditions, A)
    S_new = (S * M.adjugate()).applyfunc(lambda e: sp.factor(sp.cancel(e / det)))
    b = sp.Matrix(term.lin)
    mu = S_new * b
    factor = sp.exp(sp.factor((b.T * S_new * b)[0]) / 2) / sp.sqrt(det)
    variances = tuple(S_new[i, i] for i in range(n))
    corr = ZERO if n == 1 else sp.factor(S_new[0, 1] / (sp.sqrt(variances[0]) * sp.sqrt(variances[1])))
    plain = term.with_(coef=term.coef * factor, quad=(ZERO,) * len(term.quad), lin=(ZERO,) * n)
    value = _sum(expectation(t, Gaussian(variances, corr)) for t in shifted(plain, tuple(mu)))
    if converges or value is None:
        return value
    condition = sp.And(*(c > 0 for c in conditions))
    return sp.Piecewise((value, condition), (_divergent_value(term), True))


def _tidy_det(det: sp.Expr) -> sp.Expr:
    """|I − 2AΣ| as papers print it: (1 + 2q₁)(1 + 2q₂) − 4c²q₁q₂ stays, nested fractions
    from earlier completions are put over one denominator."""
    numer, denom = sp.fraction(sp.together(det))
    return det if denom == 1 else sp.factor(numer) / sp.factor(denom)


def _converges(conditions, A) -> bool:
    """True when I − 2AΣ is known positive definite (all `conditions` > 0); raises when it is
    known not to be; False when undecided (symbols)."""
    n = A.shape[0]
    if all(A[i, i].is_nonpositive for i in range(n)) and (n == 1 or A.det().is_nonnegative):
        return True
    if all(c.is_positive for c in conditions):
        return True
    if any(c.is_nonpositive for c in conditions):
        raise TailDivergence(
            f"E[exp({_exponent(A)}) ...] diverges: the Gaussian factor grows at least as fast as "
            "the density decays (need 1 - 2 a q > 0 for exp(a x^2)); lower the variance or the "
            "coefficient of the quadratic exponent")
    return False


def _exponent(A) -> str:
    return str(A[0, 0]) + "*x**2" if A.shape[0] == 1 else f"quadratic form {A.tolist()}"


def _divergent_value(term: Term) -> sp.Expr:
    """±oo for an integrand of known sign, nan (undefined) otherwise."""
    definite = not (term.trig or term.erfs or term.deltas) and all(p % 2 == 0 for p in term.powers)
    if definite and term.coef.is_positive:
        return sp.oo
    if definite and term.coef.is_negative:
        return -sp.oo
    return sp.nan


def shifted(term: Term, mu: tuple) -> list[Term]:
    """The terms of term(X + μ): powers expanded binomially, offsets moved."""
    dot = lambda f: sp.Add(*(a * m for a, m in zip(f, mu, strict=True)))  # noqa: E731
    moved = term.with_(trig=tuple((k, f, p + dot(f)) for k, f, p in term.trig),
                       erfs=tuple((f, o + dot(f)) for f, o in term.erfs),
                       steps=tuple((f, t - dot(f)) for f, t in term.steps),
                       deltas=tuple((f, s - dot(f), k) for f, s, k in term.deltas))
    out = []
    for ks in product(*(range(p + 1) for p in term.powers)):
        coef = term.coef
        for p, k, m in zip(term.powers, ks, mu, strict=True):
            coef *= sp.binomial(p, k) * m ** (p - k)
        if coef != 0:
            out.append(moved.with_(coef=coef, powers=ks))
    return out


# --- 2. Dirac deltas ------------------------------------------------------------------------

def _axis(form: tuple) -> int | None:
    units = [i for i, a in enumerate(form) if a != 0]
    return units[0] if len(units) == 1 else None


def _step_value(point, threshold) -> sp.Expr | None:
    """Θ(point − threshold) when the sign is decidable and non-zero."""
    d = point - threshold
    return sp.S.One if d.is_positive else (ZERO if d.is_negative else None)


def _delta(term: Term, g: Gaussian) -> sp.Expr | None:
    (form, t, k), others = term.deltas[0], term.deltas[1:]
    i = _axis(form)
    if i is None:
        return None
    for f2, s2, _ in others:
        if f2 == form:
            d = sp.simplify(s2 - t)
            if d.is_zero:
                raise DivergenceError(
                    f"the expectation contains a product of Dirac deltas at the same point "
                    f"({form[0]}x{'' if g.dim == 1 else f' + {form[1]}y'} = {t}): it is infinite "
                    "(e.g. E[phi'(x)^2] of an activation with a jump)")
            return ZERO if d.is_zero is False else None
    xi = t if k == 0 else sp.Dummy("xi", real=True)
    rest = term.with_(deltas=others)
    v = g.variances[i]
    density = sp.exp(-xi**2 / (2 * v)) / sp.sqrt(2 * sp.pi * v)
    inner = _along_delta(rest, g, i, t, xi)
    if inner is None:
        return None
    if k == 0:
        return density * inner
    return (-1) ** k * sp.diff(density * inner, xi, k).xreplace({xi: t})


def _along_delta(rest: Term, g: Gaussian, i: int, t, xi) -> sp.Expr | None:
    """E[rest | Xᵢ = ξ] as an expression in ξ (steps in Xᵢ frozen at their value at t)."""
    coef = rest.coef * xi ** rest.powers[i]
    for f, s in rest.steps:
        if _axis(f) is None:
            return None
        if _axis(f) == i:
            value = _step_value(t, s)
            if value is None:
                return None
            coef *= value
    if g.dim == 1:
        return coef * sp.Mul(*(kind(f[0] * xi + p) for kind, f, p in rest.trig),
                             *(sp.erf(f[0] * xi + o) for f, o in rest.erfs))
    j = 1 - i
    erfs = []
    for f, o in rest.erfs:
        if f[j] == 0:
            coef *= sp.erf(f[i] * xi + o)
        else:
            erfs.append(((f[j],), o + f[i] * xi))
    if any(_axis(f) != j for f, _, _ in rest.deltas):
        return None
    one = (sp.S.One,)
    in_j = Term(coef, (rest.powers[j],), (ZERO,), (ZERO,),  # rest as a function of Xⱼ alone
                tuple((kind, (f[j],), p + f[i] * xi) for kind, f, p in rest.trig), tuple(erfs),
                tuple((one, s) for f, s in rest.steps if _axis(f) == j),
                tuple((one, s, n) for _, s, n in rest.deltas))
    law = Gaussian((g.variances[j] * (1 - g.corr**2),))  # Xⱼ | Xᵢ=ξ ~ N(Σⱼᵢ ξ/Σᵢᵢ, law)
    mean = g.entry(i, j) / g.variances[i] * xi
    return _sum(expectation(u, law) for u in shifted(in_j, (mean,)))


# --- 3. moments and Stein's lemma -----------------------------------------------------------

def moment(powers: tuple, g: Gaussian) -> sp.Expr:
    """E[Πᵢ Xᵢ^pᵢ]: (p−1)!! v^{p/2} in 1-D; Isserlis' pairing count in 2-D."""
    if g.dim == 1:
        p = powers[0]
        return ZERO if p % 2 else sp.factorial2(p - 1) * g.variances[0] ** (p // 2)
    (i, j), (v1, v2), s12 = powers, g.variances, g.entry(0, 1)
    return sp.Add(*(sp.binomial(i, k) * sp.binomial(j, k) * sp.factorial(k) * s12**k
                    * sp.factorial2(i - k - 1) * v1 ** ((i - k) // 2)
                    * sp.factorial2(j - k - 1) * v2 ** ((j - k) // 2)
                    for k in range(min(i, j) + 1) if (i - k) % 2 == 0 and (j - k) % 2 == 0))


def _stein(term: Term, g: Gaussian) -> sp.Expr | None:
    """E[xᵢ g(X)] = Σⱼ Σᵢⱼ E[∂ⱼ g(X)]."""
    i = next(k for k, p in enumerate(term.powers) if p)
    powers = list(term.powers)
    powers[i] -= 1
    lowered = term.with_(powers=tuple(powers))
    parts = []
    for j in range(g.dim):
        s = g.entry(i, j)
        if s != 0:
            parts += [d.with_(coef=s * d.coef) for d in partial(lowered, j)]
    return _sum(expectation(d, g) for d in parts)


def partial(term: Term, j: int) -> list[Term]:
    """∂/∂Xⱼ of a term without exponential or delta factors, as a list of terms."""
    out = []
    if term.powers[j]:
        powers = list(term.powers)
        powers[j] -= 1
        out.append(term.with_(coef=term.coef * term.powers[j], powers=tuple(powers)))
    for kind, f, phase in term.trig:
        if f[j] != 0:
            turned = (sp.cos, f, phase) if kind is sp.sin else (sp.sin, f, phase)
            out.append(term.with_(coef=term.coef * f[j] * (1 if kind is sp.sin else -1),
                                  trig=(turned,)))
    for n, (f, o) in enumerate(term.erfs):
        if f[j] != 0:
            quad = (-f[0] ** 2,) if len(f) == 1 else (-f[0] ** 2, -2 * f[0] * f[1], -f[1] ** 2)
            out.append(term.with_(coef=term.coef * f[j] * 2 / sp.sqrt(sp.pi) * sp.exp(-o**2),
                                  erfs=term.erfs[:n] + term.erfs[n + 1:], quad=quad,
                                  lin=tuple(-2 * o * a for a in f)))
    for n, (f, t) in enumerate(term.steps):
        if f[j] != 0:
            out.append(term.with_(coef=term.coef * f[j], steps=term.steps[:n] + term.steps[n + 1:],
                                  deltas=term.deltas + ((f, t, 0),)))
    return out


# --- 4. base kernels ----------------------------------------------------------------------

def _base(term: Term, g: Gaussian) -> sp.Expr | None:
    if term.trig:
        kind, f, phase = term.trig[0]
        if not (term.erfs or term.steps):
            return term.coef * sp.exp(-g.cov(f, f) / 2) * kind(phase)
        return ZERO if _odd(term) else None
    if (len(term.steps) == 2 and not term.erfs and all(t == 0 for _, t in term.steps)):
        (f1, _), (f2, _) = term.steps
        rho = g.cov(f1, f2) / (sp.sqrt(g.cov(f1, f1)) * sp.sqrt(g.cov(f2, f2)))
        return term.coef * ((sp.pi - sp.acos(rho)) / (2 * sp.pi))
    if len(term.steps) == 1 and not term.erfs:
        f, t = term.steps[0]
        return term.coef * sp.erfc(t / sp.sqrt(2 * g.cov(f, f))) / 2
    signs = [(f, -t, ZERO) for f, t in term.steps]
    erfs = [(f, o, sp.S.Half) for f, o in term.erfs]
    total = []
    for chosen in product((False, True), repeat=len(signs)):
        total.append(_sign_moment([s for s, c in zip(signs, chosen, strict=True) if c] + erfs, g))
    value = _sum(total)
    return None if value is None else term.coef * value / 2 ** len(signs)


def _sign_moment(factors: list, g: Gaussian) -> sp.Expr | None:
    """E[Π sgn(f·X + offset + √noise W)] for independent standard W's."""
    if not factors:
        return sp.S.One
    if len(factors) == 1:
        f, o, noise = factors[0]
        return sp.erf(o / sp.sqrt(sp.factor(2 * g.cov(f, f) + 2 * noise)))
    if any(o != 0 for _, o, _ in factors):
        return None
    if len(factors) % 2:
        return ZERO
    if len(factors) == 2:
        (f1, _, n1), (f2, _, n2) = factors
        scale = sp.sqrt(sp.factor(2 * g.cov(f1, f1) + 2 * n1) * sp.factor(2 * g.cov(f2, f2) + 2 * n2))
        return 2 / sp.pi * sp.asin(sp.factor(2 * g.cov(f1, f2)) / scale)
    return None


def _odd(term: Term) -> bool:
    """True when the integrand is odd under X → −X (so its expectation is 0)."""
    if term.steps or any(o != 0 for _, o in term.erfs) or any(p != 0 for _, _, p in term.trig):
        return False
    parity = len(term.erfs) + sum(term.powers) + sum(k is sp.sin for k, _, _ in term.trig)
    return parity % 2 == 1
