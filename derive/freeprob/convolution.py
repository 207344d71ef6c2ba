r"""Free convolutions: ⊠ (S-transforms multiply), ⊞ (R-transforms add), and affine maps a + bX.

* ``free_product(a, b, ...)``: S_{a⊠b}(w) = S_a(w) S_b(w) (Voiculescu 1987; Pennington, Schoenholz &
  Ganguli 2017, eq. 6).  Moments exactly by series (:mod:`derive.freeprob.series`).  Symbolic
  (a :class:`~derive.freeprob.laws.AlgebraicLaw`) when every factor is algebraic; otherwise
  numeric by subordination: with one non-algebraic factor N (any multiplicity k) and factors of
  explicit M⁻¹ = χ_i, the M-transform w = M(z) solves

      z = A(w) χ^k,   w = M_N(χ),   A(w) = (w/(1 + w))^{n−1} Π_i χ_i(w),

  (n factors in all) for the subordinate variable χ = M_N⁻¹(w), by Newton's method continued from
  large |z| down the vertical line to the real axis (each step accepted when Newton converges to a
  relative residual of 1e-13 and Im G <= 0, else halved).
* ``free_sum(a, b, ...)``: R_{a⊞b} = R_a + R_b (Voiculescu 1986); moments through free cumulants.
  Symbolic when every term is algebraic.
* ``affine(law, shift, scale)``: the law of shift + scale·X (classical, not free).

>>> import derive
>>> mp = derive.MarchenkoPastur(1)
>>> prod = derive.free_product(mp, mp)
>>> prod.moments(3)
(1, 3, 12)
>>> prod.S
(w + 1)**(-2)
>>> derive.free_sum(derive.Semicircle(1), derive.Semicircle(2)).R
3*g
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp

from derive.errors import DomainError, NumericError
from derive.freeprob.inversion import Support
from derive.freeprob.laws import AlgebraicLaw, SpectralLaw, exact
from derive.freeprob.relation import M_, affine_relation, product_relation, sum_relation
from derive.freeprob.series import (
    affine_moments,
    free_cumulants,
    moments_from_cumulants,
    moments_from_s,
    s_series,
)


def _check_laws(laws, what: str) -> list:
    if not laws:
        raise DomainError(f"{what} needs at least one law")
    for law in laws:
        if not isinstance(law, SpectralLaw):
            raise DomainError(f"{what} takes spectral laws (derive.MarchenkoPastur, ...), got {law!r}")
    return list(laws)


def _grouped(laws: list) -> list:
    """[(law, multiplicity)] in first-seen order."""
    out: list = []
    for law in laws:
        for i, (other, k) in enumerate(out):
            if other == law:
                out[i] = (other, k + 1)
                break
        else:
            out.append((law, 1))
    return out


def _label(groups, op: str, tex_op: str) -> tuple:
    from derive.printing import latex

    names = [law.name if k == 1 else f"({law.name})^{op}{k}" for law, k in groups]
    texs = [latex(law) if k == 1 else rf"\left({latex(law)}\right)^{{{tex_op} {k}}}" for law, k in groups]
    return f" {op} ".join(names), f" {tex_op} ".join(texs)


def product_moments(groups) -> callable:
    def moments(k: int) -> list:
        series = [1] + [0] * (k - 1)
        for law, power in groups:
            if sp.sympify(law.mean).is_zero:
                raise DomainError(f"{law.name} has mean 0: free products need laws with an S-transform")
            s = s_series(list(law.moments(k)), k)
            for _ in range(power):
                series = [sp.expand(sum(series[i] * s[j - i] for i in range(j + 1))) for j in range(k)]
        return moments_from_s(series, k)
    return moments


def free_product(*laws) -> SpectralLaw:
    """a ⊠ b ⊠ ...: the limiting spectrum of products of asymptotically free positive matrices."""
    laws = _check_laws(laws, "free_product")
    if len(laws) == 1:
        return laws[0]
    groups = _grouped(laws)
    label, tex = _label(groups, "⊠", r"\boxtimes")
    moments = product_moments(groups)
    numeric = [(law, k) for law, k in groups if law.relation is None]
    if not numeric:
        relation = product_relation([law.relation for law in laws], moments)
        return AlgebraicLaw(relation, moments, label, tex)
    explicit = [law for law in laws if law.relation is not None]
    if len(numeric) > 1 or not all(law.relation.is_explicit_inverse for law in explicit):
        raise NumericError("numeric free products are implemented for one non-algebraic law (any "
                           "multiplicity) times laws with an explicit M⁻¹ (Marchenko–Pastur, point "
                           "masses, two-point laws at 0): group the others first")
    return SubordinateProduct(tuple(explicit), numeric[0][0], numeric[0][1], moments, label, tex)


def free_sum(*laws) -> SpectralLaw:
    """a ⊞ b ⊞ ...: the limiting spectrum of sums of asymptotically free matrices."""
    laws = _check_laws(laws, "free_sum")
    if len(laws) == 1:
        return laws[0]
    groups = _grouped(laws)
    label, tex = _label(groups, "⊞", r"\boxplus")

    def moments(k: int) -> list:
        columns = zip(*(free_cumulants(list(law.moments(k))) for law, _ in groups), strict=True)
        kappas = [sum(k_ * c for (_, k_), c in zip(groups, column, strict=True)) for column in columns]
        return moments_from_cumulants(kappas)

    if any(law.relation is None for law in laws):
        raise NumericError("free_sum of a non-algebraic law is not implemented numerically; its "
                           "moments are exact: free_sum(...).moments(k) works through the relation-free "
                           "series only for algebraic terms")
    return AlgebraicLaw(sum_relation([law.relation for law in laws], moments), moments, label, tex)


def affine(law: SpectralLaw, shift=0, scale=1) -> SpectralLaw:
    """The law of shift + scale·X for X ~ `law`."""
    shift, scale = exact(shift, "shift"), exact(scale, "scale")
    if scale.is_zero:
        from derive.freeprob.laws import PointMass

        return PointMass(shift)
    from derive.printing import latex

    def moments(k: int) -> list:
        return affine_moments(list(law.moments(k)), shift, scale)

    label = f"{shift} + {scale}·({law.name})"
    tex = rf"{latex(shift)} + {latex(scale)}\,\left({latex(law)}\right)"
    if law.relation is None:
        raise NumericError(f"affine maps of the non-algebraic law {law.name} are not implemented")
    return AlgebraicLaw(affine_relation(law.relation, shift, scale), moments, label, tex)


@dataclass(frozen=True, repr=False)
class SubordinateProduct(SpectralLaw):
    """A free product with one non-algebraic factor, solved numerically by subordination."""

    explicit: tuple
    numeric: SpectralLaw
    power: int
    moment_list: object
    label: str
    tex: str
    relation = None

    @property
    def name(self) -> str:
        return self.label

    def _moment_list(self, k: int) -> list:
        return self.moment_list(k)

    def _tex(self, printer) -> str:
        return self.tex

    def _numeric_transform(self, name: str):
        if name == "S":
            return sp.prod([law.S for law in self.explicit]) * self.numeric.S ** self.power
        raise NumericError(f"{name} of {self.name} has no closed form: use .stieltjes / .moments")

    @cached_property
    def _scale(self) -> tuple:
        """(Π of the factors' largest support points: a bound on the support radius, ()): no
        moments are evaluated (those of a non-algebraic factor are integrals)."""
        radius = np.prod([law.support().upper for law in self.explicit]) \
            * self.numeric.support().upper ** self.power
        return float(radius), ()

    @cached_property
    def _a_functions(self):
        n = len(self.explicit) + self.power
        a = (M_ / (1 + M_)) ** (n - 1) * sp.prod([law.relation.inverse for law in self.explicit])
        return sp.lambdify(M_, a, "numpy"), sp.lambdify(M_, sp.diff(a, M_), "numpy")

    def _solve(self, z, chi):
        """Newton for F(χ) = z from χ; returns (χ, w, converged)."""
        a, da = self._a_functions
        k = self.power
        with np.errstate(all="ignore"):
            for _ in range(30):
                w, dw = self.numeric._m_and_derivative(chi)
                f = a(w) * chi**k / z - 1
                df = (da(w) * dw * chi**k + a(w) * k * chi ** (k - 1)) / z
                step = f / df
                chi = chi - step
                if np.all(np.abs(step) <= 1e-14 * np.abs(chi)):
                    break
            w, _ = self.numeric._m_and_derivative(chi)
            residual = np.abs(a(w) * chi**k / z - 1)
        return chi, w, np.isfinite(residual) & (residual < 1e-12)

    def _g_upper(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=complex).ravel()
        x, target = z.real, z.imag
        radius = self._scale[0]
        top = 8 * radius + 4 * np.abs(x).max(initial=0.0)
        height = np.full(z.size, top)
        m1 = [complex(sp.N(law.mean)) for law in self.explicit]
        mu = complex(sp.N(self.numeric.mean))
        chi = (x + 1j * height) / (mu ** (self.power - 1) * np.prod(m1))
        chi, w, ok = self._solve(x + 1j * height, chi)
        if not ok.all():
            raise NumericError(f"subordination for {self.name} did not converge at large |z|")
        ratio, floor = np.full(z.size, 0.1), np.full(z.size, 1e-13 * top)
        lost = np.zeros(z.size, dtype=bool)  # where Newton loses the branch: nan (undecided)
        active = height > target
        for _ in range(2000):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            proposal = np.maximum(height[idx] * ratio[idx], target[idx])
            jump = proposal < floor[idx]
            proposal = np.where(jump, target[idx], proposal)
            zi = x[idx] + 1j * proposal
            c, wi, good = self._solve(zi, chi[idx])
            with np.errstate(all="ignore"):
                good &= ((1 + wi) / zi).imag <= 1e-12 * np.abs((1 + wi) / zi)
            chi[idx[good]], w[idx[good]], height[idx[good]] = c[good], wi[good], proposal[good]
            ratio[idx[good]] = np.maximum(ratio[idx[good]] ** 2, 1e-3)
            floor[idx[~good & jump]] *= 1e-4
            ratio[idx[~good & ~jump]] = np.sqrt(ratio[idx[~good & ~jump]])
            lost[idx[(ratio[idx] > 0.9999) | (floor[idx] < 1e-60 * top)]] = True
            active = (height > target) & ~lost
        with np.errstate(all="ignore"):
            return np.where(lost, complex(np.nan, np.nan), (1 + w) / z)

    def density(self, x) -> np.ndarray:
        """ρ(x) = −Im G(x + i0)/π by subordination (relative residual 1e-12); nan at atoms (x = 0)
        and where Newton's method cannot follow the branch (undecided)."""
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        rho = np.maximum(-self._g_upper(np.where(flat == 0, 1.0, flat).astype(complex)).imag / np.pi, 0)
        rho[flat == 0] = np.nan
        return rho.reshape(x.shape)

    def support(self) -> Support:
        """One band [0, λ_max], λ_max the minimum of F on real χ above the factor's support; the
        lower edge is not resolved (the density is 0 below it).  Mass check by 96-point
        Gauss–Legendre in s (x = λ_max s², which absorbs an x^{-1/2} singularity at 0): to 1e-3
        only — numeric products are slow to integrate more finely (stated in ``mass_error``)."""
        if "_support" in self.__dict__:
            return self.__dict__["_support"]
        upper = self._upper_edge()
        s, w = np.polynomial.legendre.leggauss(96)
        s, w = (s + 1) / 2, w / 2
        rho = self.density(upper * s**2)
        atoms = self._atoms()
        total = sum(m for _, m in atoms) + float(np.nansum(w * rho * 2 * upper * s))
        if np.isnan(rho).mean() > 0.05 or abs(total - 1) > 1e-3:
            raise NumericError(f"the subordination density of {self.name} integrates to {total:.6g} "
                               "with its atoms, not 1: cannot decide its support reliably")
        support = Support(((0.0, upper),), tuple(atoms), total, abs(total - 1),
                          "upper edge from the subordination map; lower edge not resolved; "
                          "96-point mass check")
        self.__dict__["_support"] = support
        return support

    def _atoms(self) -> list:
        """μ⊠ν({0}) = max(μ({0}), ν({0})) (Belinschi 2003)."""
        masses = [law.support().atoms for law in (*self.explicit, self.numeric)]
        zero = max((m for atoms in masses for a, m in atoms if a == 0), default=0.0)
        return [(0.0, zero)] if zero > 0 else []

    def _upper_edge(self) -> float:
        """min over real χ > sup supp(N) of F(χ) = A(M_N(χ)) χ^k: the largest eigenvalue."""
        top = self.numeric.support().upper
        chi = top + np.geomspace(1e-6, 1e6, 400) * max(top, 1e-300)
        f = np.array([self._real_f(c) for c in chi])
        i = int(np.nanargmin(f))
        lo, hi = chi[max(i - 1, 0)], chi[min(i + 1, chi.size - 1)]
        for _ in range(60):  # golden section on the bracketing interval
            m1, m2 = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
            lo, hi = (lo, m2) if self._real_f(m1) < self._real_f(m2) else (m1, hi)
        return float(min(np.nanmin(f), self._real_f(lo)))

    def _real_f(self, chi: float) -> float:
        """F(χ) = A(M_N(χ)) χ^k at real χ (nan where the quadrature declines, next to supp N)."""
        a, _ = self._a_functions
        try:
            w, _ = self.numeric._m_and_derivative(np.array([chi + 0j]))
        except NumericError:
            return np.nan
        return float((a(w) * chi**self.power).real[0])
