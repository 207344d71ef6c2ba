r"""Spectral laws as objects: symbolic transforms, exact moments, numeric density and support.

Convention (one for all of `derive.freeprob`; Pennington, Schoenholz & Ganguli 2017, sec. 2.3):

    G(z) = ∫ρ(t)/(z − t) dt,   M(z) = zG(z) − 1,   S(w) = (1 + w)/(w M⁻¹(w)),   G⁻¹(g) = R(g) + 1/g.

Every law offers ``.G``, ``.M``, ``.S``, ``.R`` (explicit SymPy expressions in z, w or g when the
defining equation has degree <= 2 — valid near the expansion point, e.g. z → +∞ for G — else an
:class:`~derive.freeprob.relation.Implicit` equation), ``.moments(k)`` (the exact m_1..m_k),
``.stieltjes(z)``, ``.density(x)`` (float64), ``.support()`` and LaTeX.

>>> import derive
>>> mp = derive.MarchenkoPastur(2)
>>> mp.S
1/(2*w + 1)
>>> mp.moments(3)
(1, 3, 11)
>>> mp.support()
Support(bands: [0.171572875254, 5.82842712475]; atoms: 0.5 at 0; mass 1)
>>> derive.Semicircle(1).R
g
>>> derive.TwoPoint("1/2", 0, 1).S
2*(w + 1)/(2*w + 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.errors import DomainError
from derive.freeprob.inversion import RootTracker, Support, algebraic_support
from derive.freeprob.relation import G_, M_, Relation, Z


def exact(value, name: str, *, positive: bool = False, probability: bool = False) -> sp.Expr:
    """A parameter as an exact SymPy number (floats through their shortest decimal), checked."""
    if isinstance(value, str):
        from derive.parsing import as_expr

        value = as_expr(value)
    value = sp.Rational(repr(value)) if isinstance(value, float) else sp.sympify(value)
    if value.is_real is False or value.is_finite is False:
        raise DomainError(f"{name}={value} must be a finite real number")
    if positive and value.is_positive is False:
        raise DomainError(f"{name}={value} must be > 0")
    if probability and (value.is_negative or (value - 1).is_positive):
        raise DomainError(f"{name}={value} is a probability: it must lie in [0, 1]")
    return value


class SpectralLaw:
    """Base class: a probability law on the real line seen through its transforms.

    Subclasses provide ``_moment_list(k)`` (exact m_1..m_k), ``name``, ``_tex`` and either an
    algebraic ``relation`` (a :class:`Relation`) or their own numeric ``stieltjes``.
    """

    relation: Relation | None = None

    # --- exact ---------------------------------------------------------------------------
    def moments(self, k: int) -> tuple:
        """The exact moments (m_1, ..., m_k), m_j = ∫ t^j dμ(t)."""
        if not (isinstance(k, int) and k >= 0):
            raise DomainError(f"number of moments k={k!r} must be a non-negative integer")
        cached = self.__dict__.setdefault("_moments", [])
        if len(cached) < k:
            cached[:] = list(self._moment_list(k))
        return tuple(cached[:k])

    @property
    def mean(self) -> sp.Expr:
        return self.moments(1)[0]

    @property
    def variance(self) -> sp.Expr:
        m1, m2 = self.moments(2)
        return sp.simplify(m2 - m1**2)

    def _transform(self, name: str):
        if self.relation is None:
            return self._numeric_transform(name)
        needed = 1 if name in ("M", "S", "R") else 0
        return self.relation.explicit(name, self.moments(needed) if needed else ())

    @cached_property
    def G(self):
        """G(z) = ∫ρ(t)/(z − t) dt."""
        return self._transform("G")

    @cached_property
    def M(self):
        """M(z) = zG(z) − 1 = Σ m_k z^{-k}."""
        return self._transform("M")

    @cached_property
    def S(self):
        """S(w) = (1 + w)/(w M⁻¹(w)); defined when the mean is not 0."""
        if sp.sympify(self.mean).is_zero:
            raise DomainError(f"{self.name} has mean 0: its S-transform is not defined; use .R "
                              "(free_sum), or shift the law first")
        return self._transform("S")

    @cached_property
    def R(self):
        """R(g) = G⁻¹(g) − 1/g."""
        return self._transform("R")

    def _numeric_transform(self, name: str):
        raise NotImplementedError

    # --- numeric -------------------------------------------------------------------------
    def _require_numeric(self) -> None:
        free = set().union(*(sp.sympify(m).free_symbols for m in self.moments(2)))
        if free:
            raise DomainError(f"{self.name} has symbolic parameters {sorted(map(str, free))}: "
                              "substitute numbers before evaluating it numerically")

    @cached_property
    def _scale(self) -> tuple:
        """(radius estimate max_k |m_k|^{1/k}, (m_1, m_2, m_3)) in float."""
        self._require_numeric()
        ms = [complex(sp.N(m, 20)).real for m in self.moments(6)]
        radius = max(abs(m) ** (1 / (k + 1)) for k, m in enumerate(ms))
        return radius, tuple(ms[:3])

    @cached_property
    def _tracker(self) -> RootTracker:
        radius, moments = self._scale
        return RootTracker(self.relation, radius, moments)

    def stieltjes(self, z) -> np.ndarray:
        """G(z) at complex (or real, off the support) z, float64/complex128, vectorised."""
        z = np.asarray(z, dtype=complex)
        upper = np.where(z.imag >= 0, z, np.conj(z))
        g = self._g_upper(upper.ravel()).reshape(z.shape)
        return np.where(z.imag >= 0, g, np.conj(g))

    def _g_upper(self, z: np.ndarray) -> np.ndarray:
        return self._tracker.physical(z)

    def density(self, x) -> np.ndarray:
        """The density ρ(x) = −Im G(x + i0)/π of the absolutely continuous part, float64.

        It is nan at atoms and at the candidate points of the support (edges, 0) where it may
        diverge, and where float64 cannot resolve the root (see :mod:`derive.freeprob.inversion`).
        """
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        rho = self._density(flat)
        rho[np.isin(flat, [a for a, _ in self.support().atoms])] = np.nan
        return rho.reshape(x.shape)

    def _density(self, x: np.ndarray) -> np.ndarray:
        return self._inversion.density(self._tracker, x)

    @cached_property
    def _inversion(self):
        return algebraic_support(self.relation, self._tracker)

    def support(self) -> Support:
        """Support bands (edges), atoms with their masses, and the mass check."""
        return self._inversion.support

    # --- printing ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return self.name

    def _latex(self, printer) -> str:
        return self._tex(printer)

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"

    def _tex(self, printer) -> str:
        return rf"\mathrm{{{self.name}}}"


def _tex_of(printer, obj) -> str:
    return printer._print(sp.sympify(obj))


@dataclass(frozen=True, repr=False)
class MarchenkoPastur(SpectralLaw):
    r"""The limiting law of the n × n Gram XᵀX of a d × n matrix X with i.i.d. N(0, variance/d)
    entries, ratio γ = n/d (Marchenko & Pastur 1967): mean = variance, support
    [v(1 − √γ)², v(1 + √γ)²], an atom 1 − 1/γ at 0 when γ > 1.  S(w) = 1/(v(1 + γw)),
    R(g) = v/(1 − γvg), m_k = v^k Σ_j N(k, j) γ^{j−1} (Narayana numbers)."""

    ratio: sp.Expr = 1
    variance_: sp.Expr = 1

    def __init__(self, ratio, variance=1):
        object.__setattr__(self, "ratio", exact(ratio, "ratio", positive=True))
        object.__setattr__(self, "variance_", exact(variance, "variance", positive=True))

    @property
    def name(self) -> str:
        return f"MarchenkoPastur(ratio={self.ratio}, variance={self.variance_})"

    @cached_property
    def relation(self) -> Relation:
        v, g = self.variance_, self.ratio
        return Relation.from_inverse(v * (1 + M_) * (1 + g * M_) / M_)

    def _moment_list(self, k: int) -> list:
        v, g = self.variance_, self.ratio
        narayana = lambda n, j: sp.binomial(n, j) * sp.binomial(n, j - 1) / n  # noqa: E731
        return [sp.expand(v**n * sum(narayana(n, j) * g ** (j - 1) for j in range(1, n + 1)))
                for n in range(1, k + 1)]

    def _tex(self, printer) -> str:
        return rf"\mathrm{{MP}}_{{{_tex_of(printer, self.ratio)}}}({_tex_of(printer, self.variance_)})"


@dataclass(frozen=True, repr=False)
class Semicircle(SpectralLaw):
    r"""Wigner's semicircle of the given variance s: ρ(t) = √(4s − t²)/(2πs), G = (z − √(z² − 4s))/(2s),
    R(g) = sg, m_{2k} = C_k s^k (Catalan numbers).  Mean 0: no S-transform."""

    variance_: sp.Expr = 1

    def __init__(self, variance=1):
        object.__setattr__(self, "variance_", exact(variance, "variance", positive=True))

    @property
    def name(self) -> str:
        return f"Semicircle(variance={self.variance_})"

    @cached_property
    def relation(self) -> Relation:
        return Relation.from_g_poly(self.variance_ * G_**2 - Z * G_ + 1)

    def _moment_list(self, k: int) -> list:
        s = self.variance_
        return [sp.catalan(n // 2) * s ** (n // 2) if n % 2 == 0 else sp.Integer(0) for n in range(1, k + 1)]

    def _tex(self, printer) -> str:
        return rf"\mathrm{{SC}}({_tex_of(printer, self.variance_)})"


@dataclass(frozen=True, repr=False)
class Atomic(SpectralLaw):
    """A finite mixture of point masses Σ p_i δ_{a_i} (``points`` = ((a_i, p_i), ...))."""

    points: tuple = ()

    def __init__(self, points):
        merged: dict = {}
        for a, p in points:
            a, p = exact(a, "atom location"), exact(p, "probability", probability=True)
            merged[a] = merged.get(a, 0) + p
        total = sp.simplify(sum(merged.values()))
        if total.is_number and abs(float(total) - 1) > 1e-14 or (not total.is_number and total != 1):
            raise DomainError(f"the probabilities sum to {total}, not 1: a spectral law must be a "
                              "probability measure")
        object.__setattr__(self, "points", tuple((a, p) for a, p in merged.items() if p != 0))

    @property
    def name(self) -> str:
        return " + ".join(f"{p}·δ({a})" if p.is_Atom else f"({p})·δ({a})" for a, p in self.points)

    @cached_property
    def relation(self) -> Relation:
        return _atomic_relation(self.points)

    def _moment_list(self, k: int) -> list:
        return [sp.expand(sum(p * a**n for a, p in self.points)) for n in range(1, k + 1)]

    def _tex(self, printer) -> str:
        return " + ".join(rf"{_tex_of(printer, p)}\,\delta_{{{_tex_of(printer, a)}}}" for a, p in self.points)

    def density(self, x) -> np.ndarray:
        """A purely atomic law has no density: zeros, nan at the atoms."""
        self._require_numeric()
        x = np.asarray(x, dtype=float)
        rho = np.zeros_like(x)
        rho[np.isin(x, [float(a) for a, _ in self.points])] = np.nan
        return rho

    def support(self) -> Support:
        self._require_numeric()
        atoms = tuple(sorted((float(a), float(p)) for a, p in self.points))
        return Support((), atoms, float(sum(p for _, p in atoms)), 0.0, "atoms (exact)")


@lru_cache(maxsize=256)
def _atomic_relation(points: tuple) -> Relation:
    """The relation of Σ p_i δ_{a_i}: G = Σ p_i/(z − a_i), derived once per tuple of points."""
    if len(points) == 1 and points[0][0] == 0:
        return Relation(M_)
    g = sum(p / (Z - a) for a, p in points)
    return Relation.from_g_poly(sp.numer(sp.together(G_ - g)))


def PointMass(value) -> Atomic:
    """δ_a: G = 1/(z − a), S = 1/a, R = a (e.g. the law of σ_w² WWᵀ for orthogonal W).

    >>> PointMass(2).S
    1/2
    """
    return Atomic(((value, 1),))


def TwoPoint(p, a, b) -> Atomic:
    """p δ_a + (1 − p) δ_b, e.g. D² = φ′(h)² of piecewise-linear activations (ReLU: TwoPoint(1/2, 1, 0))."""
    p = exact(p, "p", probability=True)
    return Atomic(((a, p), (b, 1 - p)))


def weight_law(weights: str = "gaussian", sigma_w2=1) -> SpectralLaw:
    """The law of WWᵀ for an N × N weight matrix with entries of variance σ_w²/N: Gaussian W gives
    Marchenko–Pastur of ratio 1 (S = 1/(σ_w²(1 + w))), Haar-orthogonal W·σ_w gives δ_{σ_w²}
    (S = 1/σ_w²) (Pennington, Schoenholz & Ganguli 2017, eqs. 15-16)."""
    if weights == "gaussian":
        return MarchenkoPastur(1, sigma_w2)
    if weights == "orthogonal":
        return PointMass(exact(sigma_w2, "sigma_w2", positive=True))
    raise DomainError(f"weights={weights!r}: choose 'gaussian' or 'orthogonal'")


class Labelled:
    """A law whose name, TeX and moment generator are fields (``label``, ``tex``, ``moment_list``):
    the results of convolutions and maps."""

    @property
    def name(self) -> str:
        return self.label

    def _moment_list(self, k: int) -> list:
        return self.moment_list(k)

    def _tex(self, printer) -> str:
        return self.tex


@dataclass(frozen=True, repr=False)
class AlgebraicLaw(Labelled, SpectralLaw):
    """A law known through its relation P(z, M) = 0 and a moment generator (convolutions, maps)."""

    relation: Relation = None
    moment_list: object = None
    label: str = ""
    tex: str = ""
