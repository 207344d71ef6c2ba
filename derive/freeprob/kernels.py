r"""Limiting spectra of the conjugate kernel (CK) and the neural tangent kernel (NTK) of deep
networks in the linear-width regime (Fan & Wang, NeurIPS 2020, Theorems 3.4 and 3.7).

Model (Fan & Wang 2020, sec. 2): X_ℓ = σ(W_ℓ X_{ℓ−1})/√d_ℓ, W_ℓ ∈ R^{d_ℓ×d_{ℓ−1}} with i.i.d.
N(0, 1) entries, inputs X_0 ∈ R^{d_0×n} with (approximately orthogonal) unit columns whose Gram
K_0 = X_0ᵀX_0 has the limiting law μ_0 (``input_law``), ratios γ_ℓ = n/d_ℓ, output f = wᵀX_L with
w ~ N(0, I).  σ is normalised, E σ(ξ) = 0, E σ(ξ)² = 1 (ξ ~ N(0, 1)); b = E σ′(ξ), a = E σ′(ξ)².

* CK: the law μ_L of K_L = X_LᵀX_L, by the Marchenko–Pastur map
  μ_ℓ = MP_{γ_ℓ} ⊠ ((1 − b²) + b² μ_{ℓ−1}) (Theorem 3.4).
* NTK: the law of r₊ I + K_L + Σ_{ℓ<L} q_ℓ K_ℓ, q_ℓ = (b²)^{L−ℓ}, r_ℓ = a^{L−ℓ},
  r₊ = Σ_{ℓ=0}^{L−1} (r_ℓ − q_ℓ) (Theorem 3.7: the NTK of the network has this limiting spectrum).

Both are computed from one recursion (derived here for this package; it reproduces the MP map
for the CK).  Conditionally on the layers below, K_ℓ = Φ_ℓ^{1/2}(ZᵀZ/d_ℓ)Φ_ℓ^{1/2} with
Φ_ℓ = (1 − b²)I + b²K_{ℓ−1} (Fan & Wang's linearisation), and the deterministic equivalent of a
resolvent with such a term (Silverstein & Bai 1995: each of the d_ℓ rank-one terms y yᵀ/d_ℓ
contributes Φ_ℓ/(1 + δ) by the Sherman–Morrison formula, δ = tr(Φ_ℓ Q)/d_ℓ) gives, for the
partial sums S_ℓ = K_ℓ + b² S_{ℓ−1} (S_0 = K_0, NTK = r₊ + S_L) and Q_ℓ = (αK_ℓ + βS_{ℓ−1} + c)^{-1},

    Q_ℓ(α, β, c) ≈ Q_{ℓ−1}(β + αb²s, βb², c + α(1 − b²)s),   s = 1/(1 + δ),
    δ = αγ_ℓ [(1 − b²) t₀ + b² t_K],   t₀ = tr Q/n,  t_K = tr(K_{ℓ−1} Q_{ℓ−1})/n,

down to Q_0 = (α_0 K_0 + c_0)^{-1}, where t₀ = (1 + M_0(w_0))/c_0 (M_0 the M-transform of μ_0 at
w_0 = −c_0/α_0) and α t_K + β t_S + c t₀ = 1 carries t_K up the layers (t_S = tr(S_{ℓ−1}Q)/n =
t_K + b² t_S one layer down).  Starting from (α, β, c) = (1, 0, −z) (CK) or (1, b², r₊ − z)
(NTK), G(z) = −t₀.  Numerically: Newton's method for (δ_1, …, δ_L, M_0) with M_0 on the input
law's algebraic equation, continued from large |z| (:mod:`derive.freeprob.subordination`).
Exactly: the same recursion in power series of 1/z (each pass fixes one more order) gives the
moments.

Our convention is G(z) = ∫ρ(t)/(z − t) dt; Fan & Wang's Stieltjes transform m(z) = ∫1/(x − z) dμ
is −G.  A σ that is not normalised is refused with the constants that would normalise it, or,
with ``normalise=True``, replaced by (σ − E σ)/√Var σ (``.normalisation`` reports the pair).
Transcendental b², a (e.g. b² = π/(2(π − 1)) for the normalised ReLU) enter as the exact
rationals of their 30-digit values.

>>> import derive
>>> ck = derive.ck_spectrum("x", derive.MarchenkoPastur("1/2"), ["1/2"])   # linear: b = 1
>>> ck.moments(2)
(1, 2)
>>> ntk = derive.ntk_spectrum("x", derive.MarchenkoPastur("1/2"), ["1/2"])  # K_1 + K_0
>>> ntk.moments(1), ntk.r_plus
((2,), 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.activations import activation as make_activation
from derive.errors import DomainError, NumericError
from derive.freeprob.laws import SpectralLaw, exact
from derive.freeprob.relation import M_, Z
from derive.freeprob.subordination import RESIDUAL, SubordinateLaw
from derive.gaussian import expect
from derive.symbols import x as X


def _value(expr) -> sp.Expr:
    """An exact Rational as it is, anything else as the exact rational of its 30-digit value."""
    expr = sp.sympify(expr)
    return expr if expr.is_Rational else sp.Rational(str(sp.N(expr, 30)))


def _moments_of(act: Activation) -> tuple:
    """(E σ, E σ², E σ′, E σ′²) at ξ ~ N(0, 1), as SymPy expressions (closed forms where the
    Gaussian engine has them)."""
    return tuple(sp.simplify(expect(f, X, 1)) for f in (act.expr, act.expr**2, act.derivative(X),
                                                          act.derivative(X) ** 2))


def normalised(activation, normalise: bool = False) -> tuple:
    """(σ, b², a, (shift, scale) or None): σ itself when E σ = 0 and E σ² = 1, else — with
    ``normalise`` — (σ − shift)/scale, shift = E σ, scale = √Var σ; otherwise DomainError."""
    act = make_activation(activation)
    mean, second, b, a = _moments_of(act)
    m, s2 = complex(sp.N(mean, 30)).real, complex(sp.N(second, 30)).real
    if abs(m) <= 1e-15 and abs(s2 - 1) <= 1e-15:
        return act, _value(b**2), _value(a), None
    variance = second - mean**2
    if not normalise:
        raise DomainError(
            f"Fan & Wang's spectra need E σ(ξ) = 0 and E σ(ξ)² = 1 (ξ ~ N(0, 1)); {act.name} has "
            f"E σ = {m:.12g}, E σ² = {s2:.12g}: use the activation "
            f"(σ(x) − {m:.15g})/{np.sqrt(s2 - m * m):.15g}, "
            "or pass normalise=True to have it applied (the constants are reported)")
    shift, scale = _value(mean), _value(sp.sqrt(variance))
    scaled = Activation.from_expr((act.expr - shift) / scale, name=f"({act.name} - {float(shift):.6g})/"
                                                                 f"{float(scale):.6g}")
    return scaled, _value(b**2 / variance), _value(a / variance), (shift, scale)


# --- exact power series (coefficient lists, index = power of u = 1/z) -----------------------------

def _mul(a: list, b: list, n: int) -> list:
    out = [0] * n
    for i, ai in enumerate(a[:n]):
        if ai:
            for j, bj in enumerate(b[:n - i]):
                out[i + j] += ai * bj
    return out


def _inv(a: list, n: int) -> list:
    out = [1 / a[0]] + [0] * (n - 1)
    for k in range(1, n):
        out[k] = -sum(a[j] * out[k - j] for j in range(1, min(k, len(a) - 1) + 1)) / a[0]
    return out


def _add(*series) -> list:
    n = max(len(s) for s in series)
    return [sum(s[k] for s in series if k < len(s)) for k in range(n)]


def _scale(c, a: list) -> list:
    return [c * v for v in a]


def _shift(a: list, n: int) -> list:
    """u·a(u)."""
    return ([0] + a)[:n]


@dataclass(frozen=True, repr=False)
class KernelSpectrum(SubordinateLaw):
    """The limiting spectrum of the CK or the NTK of a deep network (see the module docstring)."""

    kind: str
    activation: Activation
    input_law: SpectralLaw
    ratios: tuple
    b2: sp.Expr
    a: sp.Expr
    normalisation: tuple | None = None

    @property
    def depth(self) -> int:
        return len(self.ratios)

    @property
    def name(self) -> str:
        return (f"{self.kind}({self.activation.name}, input {self.input_law.name}, "
                f"ratios {[str(r) for r in self.ratios]})")

    def _tex(self, printer) -> str:
        body = printer._print(self.activation.expr)
        return rf"\mathrm{{{self.kind}}}_{{L={self.depth}}}\left({body}\right)"

    @property
    def q(self) -> tuple:
        """(q_0, …, q_L), q_ℓ = (b²)^{L−ℓ}: the weights of K_ℓ in the NTK."""
        return tuple(self.b2 ** (self.depth - ell) for ell in range(self.depth + 1))

    @property
    def r_plus(self) -> sp.Expr:
        """r₊ = Σ_{ℓ<L} (a^{L−ℓ} − b^{2(L−ℓ)}) for the NTK (0 for the CK)."""
        if self.kind == "CK":
            return sp.Integer(0)
        return sp.expand(sum(self.a ** (self.depth - ell) - self.b2 ** (self.depth - ell)
                             for ell in range(self.depth)))

    # --- the recursion, numerically ----------------------------------------------------------
    @cached_property
    def _numbers(self) -> tuple:
        return (float(self.b2), np.array([float(g) for g in self.ratios]), float(self.r_plus),
                float(self.b2) if self.kind == "NTK" else 0.0)

    @cached_property
    def _input_poly(self) -> np.ndarray:
        """C[i, j] with P̃(v, M) = Σ C[i, j] v^i M^j = v^{deg_z} P(1/v, M) for the input law's
        relation P(z, M) = 0 (v = 1/z)."""
        relation = self.input_law.relation
        if relation is None:
            raise DomainError(f"the input law {self.input_law.name} has no algebraic equation: use a law "
                              "such as derive.MarchenkoPastur(n/d0), a point mass or a free convolution")
        poly = sp.Poly(relation.poly, Z, M_)
        dz = poly.degree(Z)
        out = np.zeros((dz + 1, poly.degree(M_) + 1))
        for (i, j), c in poly.terms():
            out[dz - i, j] = float(sp.N(c, 30))
        return out

    def _chain(self, z: np.ndarray, u: np.ndarray) -> tuple:
        """(residuals (N, L+1), G) for the unknowns u = (δ_1, …, δ_L, M_0) at z."""
        b2, gammas, shift, beta_top = self._numbers
        depth = self.depth
        alpha, beta, c = [None] * (depth + 1), [None] * (depth + 1), [None] * (depth + 1)
        s = [None] * (depth + 1)
        alpha[depth], beta[depth], c[depth] = np.ones_like(z), beta_top, shift - z
        for ell in range(depth, 0, -1):
            s[ell] = 1 / (1 + u[:, ell - 1])
            alpha[ell - 1] = beta[ell] + alpha[ell] * b2 * s[ell]
            beta[ell - 1] = beta[ell] * b2
            c[ell - 1] = c[ell] + alpha[ell] * (1 - b2) * s[ell]
        m0 = u[:, depth]
        v0 = -alpha[0] / c[0]
        C = self._input_poly
        powers_v = v0[:, None] ** np.arange(C.shape[0])
        powers_m = m0[:, None] ** np.arange(C.shape[1])
        size = np.einsum("ni,ij,nj->n", np.abs(powers_v), np.abs(C), np.abs(powers_m))
        value = np.einsum("ni,ij,nj->n", powers_v, C, powers_m)
        residual = np.empty_like(u)
        residual[:, depth] = value / (size + 1e-300)
        t0 = (1 + m0) / c[0]
        d, ts = -m0, 0.0
        for ell in range(1, depth + 1):
            tk = d / alpha[ell - 1] if b2 else np.zeros_like(z)
            target = alpha[ell] * gammas[ell - 1] * ((1 - b2) * t0 + b2 * tk)
            size = np.abs(u[:, ell - 1]) + np.abs(target) + 1e-300
            residual[:, ell - 1] = (u[:, ell - 1] - target) / size
            ts_next = tk + b2 * ts
            d = d + beta[ell - 1] * ts + alpha[ell] * (1 - b2) * s[ell] * t0 - beta[ell] * ts_next
            ts = ts_next
        return residual, -t0

    def _solve(self, z: np.ndarray, u: np.ndarray) -> tuple:
        """Newton's method with a finite-difference Jacobian (the equations are holomorphic), point
        by point: a point stops once its step is below 1e-15 relative, or below 1e-10 and no longer
        shrinking (rounding: the finite differences leave ~1e-7 in the Jacobian)."""
        u = u.copy()
        k = u.shape[1]
        active = np.arange(z.size)
        last = np.full(z.size, np.inf)
        with np.errstate(all="ignore"):
            for _ in range(40):
                za, ua = z[active], u[active]
                r, _ = self._chain(za, ua)
                h = 1e-7 * (1 + np.abs(ua))
                jac = np.empty((za.size, k, k), dtype=complex)
                for j in range(k):
                    shifted = ua.copy()
                    shifted[:, j] += h[:, j]
                    jac[:, :, j] = (self._chain(za, shifted)[0] - r) / h[:, j, None]
                bad = ~np.isfinite(jac).all(axis=(1, 2)) | ~np.isfinite(r).all(axis=1)
                jac[bad] = np.eye(k)
                step = np.linalg.solve(jac, np.where(bad[:, None], 0, r)[..., None])[..., 0]
                u[active] = ua - step
                size = np.max(np.abs(step) / (1 + np.abs(u[active])), axis=1)
                stop = (size <= 1e-15) | ((size <= 1e-10) & (size > 0.9 * last[active])) | ~np.isfinite(size)
                last[active] = size
                active = active[~stop]
                if not active.size:
                    break
            r, _ = self._chain(z, u)
            ok = np.isfinite(r).all(axis=1) & (np.abs(r).max(axis=1) < RESIDUAL)
        return u, ok

    def _initial(self, z: np.ndarray) -> np.ndarray:
        u = np.zeros((z.size, self.depth + 1), dtype=complex)
        m1 = float(sp.N(self.input_law.mean, 30))
        b2, _, shift, beta_top = self._numbers
        alpha, beta, c = 1.0, beta_top, shift - z
        for _ in range(self.depth):
            alpha, beta, c = beta + alpha * b2, beta * b2, c + alpha * (1 - b2)
        u[:, self.depth] = -m1 * alpha / c
        return u

    def _g(self, z: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self._chain(z, u)[1]

    @cached_property
    def _bounds(self) -> tuple:
        """(lo, hi) containing the support: the CK is PSD and ‖MP_γ ⊠ ν‖ <= (1 + √γ)² ‖ν‖;
        the NTK is r₊ + (PSD) and its norm at most r₊ + Σ q_ℓ ‖K_ℓ‖."""
        b2 = float(self.b2)
        norms = [self.input_law.support().upper]
        for gamma in self.ratios:
            norms.append((1 + np.sqrt(float(gamma))) ** 2 * ((1 - b2) + b2 * norms[-1]))
        if self.kind == "CK":
            return 0.0, float(norms[-1])
        r = float(self.r_plus)
        return r, r + sum(float(q) * n for q, n in zip(self.q, norms, strict=True))

    def _bracket(self) -> tuple:
        return self._bounds

    def _atom_points(self) -> tuple:
        return (self._bounds[0],)

    def _numeric_transform(self, name: str):
        raise NumericError(f"{name} of {self.name} has no closed form: use .stieltjes, .moments, .density")

    # --- the recursion, exactly ----------------------------------------------------------------
    def _moment_list(self, k: int) -> list:
        n = k + 2  # G = −t₀ = Σ_j m_j u^{j+1} up to u^{k+1}
        numbers = [self.b2, *self.ratios, *self.input_law.moments(n - 1)]
        if all(sp.sympify(v).is_Rational for v in numbers):  # Python fractions: ~20x faster
            def num(v):
                v = sp.sympify(v)
                return Fraction(int(v.p), int(v.q))
        else:
            num = sp.sympify
        b2, gammas = num(self.b2), [num(g) for g in self.ratios]
        inputs = [num(m) for m in self.input_law.moments(n - 1)]
        shift = num(self.r_plus)
        beta_top = b2 if self.kind == "NTK" else num(0)
        depth = self.depth
        delta = [[num(0)] * n for _ in range(depth)]
        for _ in range(n + 1):
            alpha, beta, ct = [None] * (depth + 1), [None] * (depth + 1), [None] * (depth + 1)
            s = [None] * (depth + 1)
            alpha[depth], beta[depth], ct[depth] = [num(1)], beta_top, [num(-1), shift]
            for ell in range(depth, 0, -1):
                s[ell] = _inv(_add([num(1)], delta[ell - 1]), n)
                alpha[ell - 1] = _add([beta[ell]], _scale(b2, _mul(alpha[ell], s[ell], n)))
                beta[ell - 1] = beta[ell] * b2
                ct[ell - 1] = _add(ct[ell], _shift(_scale(1 - b2, _mul(alpha[ell], s[ell], n)), n))
            inv_c = _inv(ct[0], n)
            v0 = _shift(_scale(-1, _mul(alpha[0], inv_c, n)), n)
            m0, power = [num(0)] * n, [num(1)] + [num(0)] * (n - 1)
            for j in range(1, n):
                power = _mul(power, v0, n)
                m0 = _add(m0, _scale(inputs[j - 1], power))
            t0 = _shift(_mul(_add([num(1)], m0), inv_c, n), n)  # t₀ = u T₀
            d, ts = _scale(-1, m0), [num(0)] * n
            new = []
            for ell in range(1, depth + 1):
                tk = _mul(d, _inv(alpha[ell - 1], n), n) if b2 else [num(0)] * n
                new.append(_mul(_scale(gammas[ell - 1], alpha[ell]),
                                _add(_scale(1 - b2, t0), _scale(b2, tk)), n))
                ts_next = _add(tk, _scale(b2, ts))
                carried = _mul(_scale(1 - b2, alpha[ell]), _mul(s[ell], t0, n), n)
                d = _add(d, _scale(beta[ell - 1], ts), carried, _scale(-beta[ell], ts_next))
                ts = ts_next
            delta = [series[:n] for series in new]
        moments = [-t0[j + 1] for j in range(1, k + 1)]
        return [sp.Rational(m.numerator, m.denominator) if isinstance(m, Fraction) else sp.nsimplify(m)
                for m in moments]

    def __repr__(self) -> str:
        extra = f", normalisation {tuple(float(v) for v in self.normalisation)}" if self.normalisation else ""
        return f"{self.name}{extra}"


def _arguments(activation, input_law, ratios, normalise) -> tuple:
    if not isinstance(input_law, SpectralLaw):
        raise DomainError("input_law must be a spectral law, e.g. derive.MarchenkoPastur(n/d0)")
    ratios = tuple(exact(r, "ratio", positive=True) for r in ratios)
    if not ratios:
        raise DomainError("ratios = [γ_1, ..., γ_L] needs at least one layer")
    act, b2, a, shift = normalised(activation, normalise)
    return act, input_law, ratios, b2, a, shift


def ck_spectrum(activation, input_law: SpectralLaw, ratios, *, normalise: bool = False) -> KernelSpectrum:
    """The limiting spectrum of the conjugate kernel X_LᵀX_L (Fan & Wang 2020, Theorem 3.4)."""
    return KernelSpectrum("CK", *_arguments(activation, input_law, ratios, normalise))


def ntk_spectrum(activation, input_law: SpectralLaw, ratios, *, normalise: bool = False) -> KernelSpectrum:
    """The limiting spectrum of the NTK, r₊ I + X_LᵀX_L + Σ_{ℓ<L} q_ℓ X_ℓᵀX_ℓ (Fan & Wang 2020,
    Theorem 3.7)."""
    return KernelSpectrum("NTK", *_arguments(activation, input_law, ratios, normalise))
