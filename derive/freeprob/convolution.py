r"""Free convolutions: ⊠ (S-transforms multiply), ⊞ (R-transforms add), and affine maps a + bX.

* ``free_product(a, b, ...)``: S_{a⊠b}(w) = S_a(w) S_b(w) (Voiculescu 1987; Pennington, Schoenholz &
  Ganguli 2017, eq. 6).  Moments exactly by series (:mod:`derive.freeprob.series`).  Symbolic
  (a :class:`~derive.freeprob.laws.AlgebraicLaw`) when every factor is algebraic; otherwise
  numeric by subordination: with one non-algebraic factor N (any multiplicity k) and factors of
  explicit M⁻¹ = χ_i, the M-transform w = M(z) solves

      z = A(w) χ^k,   w = M_N(χ),   A(w) = (w/(1 + w))^{n−1} Π_i χ_i(w),

  (n factors in all) for the subordinate variable χ = M_N⁻¹(w), by Newton's method continued from
  large |z| down the vertical line to the real axis, support and atoms found and the mass
  checked as for every continued law (:mod:`derive.freeprob.subordination`).
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
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.errors import DomainError, NumericError
from derive.freeprob.laws import AlgebraicLaw, Labelled, SpectralLaw, exact
from derive.freeprob.relation import M_, affine_relation, product_relation, sum_relation
from derive.freeprob.series import (
    affine_moments,
    free_cumulants,
    moments_from_cumulants,
    moments_from_s,
    s_series,
)
from derive.freeprob.subordination import RESIDUAL, SubordinateLaw


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
    """The moment generator k -> [m_1, ..., m_k] of the free product of ``groups`` = [(law, power)]."""
    groups = tuple(groups)
    return lambda k: list(_product_moment_list(groups, k))


@lru_cache(maxsize=256)
def _product_moment_list(groups: tuple, k: int) -> tuple:
    """m_1..m_k of the free product from the product of the factors' S-series (exact; derived once
    per factors and k)."""
    series = [1] + [0] * (k - 1)
    for law, power in groups:
        if sp.sympify(law.mean).is_zero:
            raise DomainError(f"{law.name} has mean 0: free products need laws with an S-transform")
        s = s_series(list(law.moments(k)), k)
        for _ in range(power):
            series = [sp.expand(sum(series[i] * s[j - i] for i in range(j + 1))) for j in range(k)]
    return tuple(moments_from_s(series, k))


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
class SubordinateProduct(Labelled, SubordinateLaw):
    """A free product with one non-algebraic factor N (multiplicity k), by subordination: the
    unknowns u = (χ/z, p = 1 + w) solve z = A(w) χ^k, w = M_N(χ) (module docstring), G = p/z;
    continued from large |z| and its support found by :class:`SubordinateLaw` (χ/z, not χ: both
    unknowns stay O(1) at large |z|, where the continuation judges its steps)."""

    explicit: tuple
    numeric: SpectralLaw
    power: int
    moment_list: object
    label: str
    tex: str

    #: χ/z ~ const at large |z| but ~ z^{−k/(k+1)} next to a divergence at 0: predicted in log
    POWER_LAW = (0,)

    def _numeric_transform(self, name: str):
        if name == "S":
            return sp.prod([law.S for law in self.explicit]) * self.numeric.S ** self.power
        raise NumericError(f"{name} of {self.name} has no closed form: use .stieltjes / .moments")

    @cached_property
    def _a_functions(self):
        """log A and d(log A)/dw as functions of (w, p = 1 + w), from A factored into powers of
        its factors with every factor 1 + w written p: A keeps its relative accuracy where
        w -> −1 (next to a divergence at 0), and in logarithms neither A (~ z^{1−L} there) nor
        χ^k overflows or underflows however small z is."""
        n = len(self.explicit) + self.power
        p = sp.Symbol("p")
        a = sp.factor((M_ / (1 + M_)) ** (n - 1) * sp.prod([law.relation.inverse for law in self.explicit]))
        powers = [f.as_base_exp() for f in sp.Mul.make_args(a.subs(M_ + 1, p))]
        log_a = sp.Add(*[e * sp.log(b) for b, e in powers])
        slope = sp.Add(*[e * (sp.diff(b, M_) + sp.diff(b, p)) / b for b, e in powers])
        return sp.lambdify((M_, p), log_a, "numpy"), sp.lambdify((M_, p), slope, "numpy")

    def _solve(self, z, u):
        """Newton's method for f = A(M_N(χ)) χ^k/z − 1 = expm1(log A + k log χ − log z) = 0 from
        χ = z u[:, 0], point by point: a point stops when its step falls below 1e-14 relative or
        stops shrinking below 1e-10 (rounding; at a fold of the equations, next to an edge,
        Newton converges linearly with ratio 1/2); it has converged when |f| is below RESIDUAL
        and χ is in the closed upper half plane (not where M_N cannot be evaluated to its
        tolerance)."""
        log_a, slope = self._a_functions
        k = self.power
        chi = z * u[:, 0]
        last = np.full(z.size, np.inf)
        active = np.arange(z.size)
        with np.errstate(all="ignore"):
            for _ in range(30):
                c, zc = chi[active], z[active]
                w, p, dw = self.numeric.m_and_derivative(c)
                f = np.expm1(log_a(w, p) + k * np.log(c) - np.log(zc))
                df = (1 + f) * (slope(w, p) * dw + k / c)
                step = np.where(np.isfinite(f) & np.isfinite(df), f / df, 0)
                chi[active] = c - step
                size = np.abs(step) / np.abs(c)
                stop = (size <= 1e-14) | ((size <= 1e-10) & (size > 0.9 * last[active])) | (step == 0)
                last[active] = size
                active = active[~stop]
                if not active.size:
                    break
            w, p, _ = self.numeric.m_and_derivative(chi)
            residual = np.abs(np.expm1(log_a(w, p) + k * np.log(chi) - np.log(z)))
        # the subordinate variable of ⊠ obeys arg χ >= arg z on C⁺ (Belinschi & Bercovici 2007,
        # Thm. 4.1, for η(1/z) = η_N(1/χ)): Im χ >= 0; a root below the axis is another solution
        physical = chi.imag >= -1e-12 * np.abs(chi)
        return np.stack([chi / z, p], axis=1), np.isfinite(residual) & (residual < RESIDUAL) & physical

    def _initial(self, z):
        """χ ~ z/(μ^{k−1} Π m₁) at large |z| (all transforms ~ their means there), p = 1 + M ~ 1."""
        return np.stack([np.full_like(z, 1 / self._mean_scale), np.ones_like(z)], axis=1)

    @cached_property
    def _mean_scale(self) -> complex:
        return complex(sp.N(self.numeric.mean)) ** (self.power - 1) \
            * np.prod([complex(sp.N(law.mean)) for law in self.explicit])

    def _g(self, z, u):
        return u[:, 1] / z

    def _bracket(self) -> tuple:
        return self._bounds

    @cached_property
    def _bounds(self) -> tuple:
        """[0, ‖⊠ of the explicit factors‖ · ‖N‖^k] (‖AB‖ <= ‖A‖‖B‖, all factors >= 0): the explicit
        factors' product is algebraic and its largest point exact (e.g. σ_w^{2L}(L + 1)^{L+1}/L^L
        for L Marchenko–Pastur factors, not the product (4σ_w²)^L of their norms: that is loose
        by 4^L L^L/(L + 1)^{L+1} ~ 4^L/(e(L + 1)), 3.5e4 at L = 10, and leaves the scan of the
        support nothing but empty space to look at)."""
        top = free_product(*self.explicit).support().upper * self.numeric.support().upper ** self.power
        return 0.0, float(top)

    def _atom_points(self) -> tuple:
        return (0.0,)

    def _atoms(self, scale: float) -> list:
        """μ⊠ν({0}) = max(μ({0}), ν({0})) (Belinschi 2003); elsewhere μ⊠ν({c}) > 0 needs atoms
        μ({a}), ν({b}) with ab = c and masses summing to more than 1 (Bercovici & Voiculescu 1998),
        impossible here: the non-algebraic factor (a law of φ′² for a smooth φ) has no atoms."""
        masses = [m for law in (*self.explicit, self.numeric) for a, m in law.support().atoms if a == 0]
        return [(0.0, max(masses))] if masses and max(masses) > 0 else []
