r"""Exact power series of the transforms: moments ↔ S-transform ↔ free cumulants.

Conventions (Pennington, Schoenholz & Ganguli 2017, sec. 2.3; 2018, eqs. 5-8): with
M(z) = Σ_{k≥1} m_k z^{-k}, write ψ(x) = M(1/x) = Σ m_k x^k and χ = ψ⁻¹ (series reversion).
Then M⁻¹(w) = 1/χ(w) and

    S(w) = (1 + w)/(w M⁻¹(w)) = (1 + w) χ(w)/w = Σ_j s_j w^j,   s_0 = 1/m_1.

The R-transform R(g) = Σ_{n≥1} κ_n g^{n-1} (G⁻¹(g) = R(g) + 1/g) holds the free cumulants κ_n;
with the ordinary moment series m(x) = Σ_{n≥0} m_n x^n they satisfy m(x) = 1 + Σ_n κ_n (x m(x))^n
(Speicher's moment–cumulant relation; Nica & Speicher 2006, Lecture 16).

Everything here is exact SymPy arithmetic on truncated coefficient lists (index = power).

>>> import sympy as sp
>>> s_series([1, 2, 5], 3)  # Marchenko–Pastur, ratio 1: S(w) = 1/(1 + w)
[1, -1, 1]
>>> moments_from_s([1, -1, 1], 3)
[1, 2, 5]
>>> free_cumulants([0, 1, 0, 2])  # semicircle: κ_2 = 1, all others 0
[0, 1, 0, 0]
"""

from __future__ import annotations

import sympy as sp

from derive.errors import DomainError


def _clean(e) -> sp.Expr:
    return sp.expand(sp.sympify(e))


def _mul(a: list, b: list, n: int) -> list:
    """Product of two series truncated to n coefficients."""
    out = [sp.Integer(0)] * n
    for i, ai in enumerate(a[:n]):
        if ai == 0:
            continue
        for j, bj in enumerate(b[:n - i]):
            out[i + j] += ai * bj
    return [_clean(c) for c in out]


def _reverse(f: list, n: int) -> list:
    """Series reversion: f = [0, f1, f2, ...] (f1 != 0) -> g with f(g(w)) = w + O(w^n)."""
    if f[1] == 0:
        raise DomainError("the first coefficient vanishes: the series has no compositional inverse "
                          "(a law of mean 0 has no S-transform; shift it first)")
    g = [sp.Integer(0), 1 / f[1]] + [sp.Integer(0)] * (n - 2)
    for k in range(2, n):
        # coefficient of w^k in f(g(w)) with g_k still 0, then solve f1 g_k + rest = 0
        power, total = [sp.Integer(1)] + [sp.Integer(0)] * (n - 1), [sp.Integer(0)] * n
        for j in range(1, k + 1):
            power = _mul(power, g, k + 1)
            if j < len(f):
                total = [t + f[j] * p for t, p in zip(total, power + [0] * n, strict=False)]
        g[k] = _clean(-total[k] / f[1])
    return g[:n]


def s_series(moments: list, n: int) -> list:
    """The first n coefficients s_0..s_{n-1} of S(w) from the moments m_1..m_n."""
    if len(moments) < n:
        raise DomainError(f"need {n} moments for {n} S-coefficients, got {len(moments)}")
    if sp.sympify(moments[0]).is_zero:
        raise DomainError("the law has mean 0: its S-transform is not defined (S(0) = 1/m_1); "
                          "use free_sum / the R-transform, or shift the law")
    psi = [sp.Integer(0)] + [sp.sympify(m) for m in moments[:n]]
    chi = _reverse(psi, n + 1)
    return [_clean(c) for c in _mul([1, 1], chi[1:], n)]


def moments_from_s(s: list, n: int) -> list:
    """The moments m_1..m_n from the S-coefficients s_0..s_{n-1} (inverse of :func:`s_series`)."""
    # χ(w) = w S(w)/(1 + w)
    inverse_one_plus = [sp.Integer((-1) ** j) for j in range(n)]
    chi = [sp.Integer(0)] + _mul([sp.sympify(c) for c in s], inverse_one_plus, n)
    return _reverse(chi, n + 1)[1:]


def free_cumulants(moments: list) -> list:
    """κ_1..κ_n from m_1..m_n through m(x) = 1 + Σ κ_j (x m(x))^j."""
    n = len(moments)
    m = [sp.Integer(1)] + [sp.sympify(v) for v in moments]
    xm = [sp.Integer(0)] + m[:n]
    kappas: list = []
    for k in range(1, n + 1):
        known = [sp.Integer(0)] * (n + 1)
        power = [sp.Integer(1)] + [sp.Integer(0)] * n
        for j in range(1, k):
            power = _mul(power, xm, n + 1)
            known = [a + kappas[j - 1] * b for a, b in zip(known, power, strict=True)]
        kappas.append(_clean(m[k] - known[k]))  # (x m)^k starts with x^k: coefficient 1
    return kappas


def moments_from_cumulants(kappas: list) -> list:
    """m_1..m_n from κ_1..κ_n (inverse of :func:`free_cumulants`)."""
    n = len(kappas)
    m = [sp.Integer(1)] + [sp.Integer(0)] * n
    for k in range(1, n + 1):
        xm = [sp.Integer(0)] + m[:n]
        total = [sp.Integer(0)] * (n + 1)
        power = [sp.Integer(1)] + [sp.Integer(0)] * n
        for j in range(1, k + 1):
            power = _mul(power, xm, n + 1)
            total = [a + sp.sympify(kappas[j - 1]) * b for a, b in zip(total, power, strict=True)]
        m[k] = _clean(total[k])
    return m[1:]


def affine_moments(moments: list, shift, scale) -> list:
    """Moments of shift + scale·X from those of X (binomial expansion)."""
    m = [sp.Integer(1)] + [sp.sympify(v) for v in moments]
    shift, scale = sp.sympify(shift), sp.sympify(scale)
    return [_clean(sum(sp.binomial(k, j) * shift ** (k - j) * scale ** j * m[j] for j in range(k + 1)))
            for k in range(1, len(m))]
