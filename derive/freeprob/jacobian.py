r"""The spectrum of JJᵀ for the input–output Jacobian J = Π_l D_l W_l of a deep random network.

At the fixed point q* of the variance map, with D_l = diag φ′(h^l) (h^l ~ N(0, q*)) and W_l
Gaussian (entries N(0, σ_w²/N)) or σ_w × Haar-orthogonal, the factors are asymptotically free and
(Pennington, Schoenholz & Ganguli 2017, eq. 9; 2018, eq. 8)

    S_{JJᵀ}(w) = S_{WWᵀ}(w)^L S_{D²}(w)^L,   S_{WWᵀ} = 1/(σ_w²(1 + w)) (Gaussian), 1/σ_w² (orthogonal).

Expanding S = σ_w⁻²(1 + s₁w + …) and μ_k = E φ′(h)^{2k} gives the mean m₁ = (σ_w² μ₁)^L and the
variance σ²_{JJᵀ} = m₁² L (μ₂/μ₁² − 1 − s₁), s₁ = −1 (Gaussian), 0 (orthogonal) (2017, eqs. 17-18).
The relative spread σ²/m₁² = κL grows linearly in depth with slope κ = μ₂/μ₁² − 1 − s₁; κ = 0
(linear network, orthogonal weights) is exact dynamical isometry, κ ≪ 1 (orthogonal weights,
tanh or hard-tanh at small q*) keeps the spread O(1) up to depth ~1/κ, Gaussian weights give
κ >= 1 and ReLU κ >= 1 for either ensemble.

>>> import derive
>>> J = derive.jacobian_spectrum("relu", depth=3)   # critical point σ_w² = 2, σ_b² = 0
>>> J.S
(2*w + 1)**(-3)
>>> J.mean, J.variance
(1, 6)
>>> J.isometry.verdict
'spread grows linearly with depth (κ = 2)'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp

from derive.activations import activation as make_activation
from derive.errors import DomainError
from derive.freeprob.convolution import free_product
from derive.freeprob.derivative import derivative_law
from derive.freeprob.engine import critical_point, derivative_moment
from derive.freeprob.engine import q_star as fixed_point
from derive.freeprob.laws import SpectralLaw, exact, weight_law

_S1 = {"gaussian": -1, "orthogonal": 0}


def readable(expr: sp.Expr) -> sp.Expr:
    """`expr` with its numbers as 15-digit Floats when it holds a rational of denominator > 10⁶
    (the value of a numerical computation, not an exact constant); else `expr` itself.

    >>> w = sp.Symbol("w")
    >>> readable(sp.Rational(1760954639606739, 10**15) / (w + 1))
    1.76095463960674/(w + 1.0)
    >>> readable(2 / (w + 1))
    2/(w + 1)
    """
    if any(r.q > 10**6 for r in expr.atoms(sp.Rational)):
        return sp.N(expr, 15)
    return expr


@dataclass(frozen=True)
class DynamicalIsometry:
    """Verdict on the spread of the singular values of J: σ²_{JJᵀ}/m₁² = κ L."""

    slope: sp.Expr
    depth: int

    @property
    def spread(self) -> sp.Expr:
        return self.slope * self.depth

    @property
    def verdict(self) -> str:
        k = float(self.slope)
        if k == 0:
            return "dynamical isometry at every depth (κ = 0)"
        if k * self.depth <= 1:
            return (f"approximate dynamical isometry: spread κL = {k * self.depth:.3g} = O(1) up to "
                    f"depth ~1/κ = {1 / k:.3g}")
        slope = self.slope if self.slope.is_Rational else f"{k:.4g}"
        return f"spread grows linearly with depth (κ = {slope})"


def _depth(depth) -> int:
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise DomainError(f"depth={depth!r} must be an integer >= 1")
    return int(depth)


@dataclass(frozen=True, repr=False)
class JacobianSpectrum:
    """The limiting spectrum of JJᵀ: S-transform, moments, density, support, isometry verdict."""

    activation: object
    sigma_w2: sp.Expr
    sigma_b2: sp.Expr
    depth: int
    weights: str
    q_star: sp.Expr

    @cached_property
    def d_law(self) -> SpectralLaw:
        """The law of D² = φ′(h)², h ~ N(0, q*)."""
        return derivative_law(self.activation, self.q_star)

    @cached_property
    def weight_law(self) -> SpectralLaw:
        """The law of WWᵀ."""
        return weight_law(self.weights, self.sigma_w2)

    @cached_property
    def law(self) -> SpectralLaw:
        """(WWᵀ)^{⊠L} ⊠ (D²)^{⊠L} as a spectral law."""
        return free_product(*([self.weight_law] * self.depth + [self.d_law] * self.depth))

    @cached_property
    def S(self) -> sp.Expr:
        """S_{JJᵀ}(w) = S_{WWᵀ}(w)^L S_{D²}(w)^L, simplified; constants that are numbers of a
        numerical computation (σ_w², q* from the critical point enter as rationals with large
        denominators) are shown as 15-digit floats, exact ones (2, 1/2, erf(1)) stay exact."""
        return readable(sp.simplify(self.weight_law.S ** self.depth * self.d_law.S ** self.depth))

    @cached_property
    def _mu(self) -> tuple:
        return tuple(derivative_moment(self.activation, self.q_star, k) for k in (1, 2))

    @property
    def mean(self) -> sp.Expr:
        """m₁ = (σ_w² μ₁)^L."""
        return sp.simplify((self.sigma_w2 * self._mu[0]) ** self.depth)

    @property
    def variance(self) -> sp.Expr:
        """σ²_{JJᵀ} = m₁² L (μ₂/μ₁² − 1 − s₁)."""
        return sp.simplify(self.mean**2 * self.isometry.spread)

    @property
    def isometry(self) -> DynamicalIsometry:
        mu1, mu2 = self._mu
        return DynamicalIsometry(sp.simplify(mu2 / mu1**2 - 1 - _S1[self.weights]), self.depth)

    def moments(self, k: int) -> tuple:
        return self.law.moments(k)

    def stieltjes(self, z) -> np.ndarray:
        return self.law.stieltjes(z)

    def density(self, lam) -> np.ndarray:
        return self.law.density(lam)

    def support(self):
        return self.law.support()

    @property
    def max_eigenvalue(self) -> float:
        """The right edge of the support of JJᵀ."""
        return self.law.support().upper

    def max_eigenvalue_growth(self, depths) -> np.ndarray:
        """The largest eigenvalue of JJᵀ at each depth (same activation, variances and q*)."""
        return np.array([JacobianSpectrum(self.activation, self.sigma_w2, self.sigma_b2, _depth(d),
                                          self.weights, self.q_star).max_eigenvalue for d in depths])

    @property
    def network(self):
        """The finite network whose input–output Jacobian this spectrum describes (a layer stack for
        :func:`derive.simulate.draw`): ``repeat(serial(Dense(σ_w², σ_b², ensemble), φ), L)``, so that
        ∂x^L/∂x^0 = D_L W_L ⋯ D_1 W_1; its first pre-activations have variance q* when the input has
        squared norm per unit (q* − σ_b²)/σ_w² (:func:`derive.freeprob.sampling.jacobian_eigenvalues`)."""
        from derive.layers import Dense, repeat, serial

        return repeat(serial(Dense(self.sigma_w2, self.sigma_b2, ensemble=self.weights),
                             make_activation(self.activation)), self.depth)

    def __repr__(self) -> str:
        return (f"JacobianSpectrum({make_activation(self.activation).name}, sigma_w2={self.sigma_w2}, "
                f"sigma_b2={self.sigma_b2}, depth={self.depth}, weights={self.weights!r}, "
                f"q_star={float(self.q_star):.10g})")

    def _latex(self, printer) -> str:
        return rf"S_{{JJ^\top}}(w) = {printer._print(self.S)}"

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"


def _unpack(block, sigma_w2, sigma_b2, weights) -> tuple:
    """(activation, σ_w², σ_b², weights) from a layer of the layer algebra: an activation layer,
    or the unit serial(Dense(σ_w², σ_b², ensemble), φ) that the network repeats L times (its
    variances and ensemble are taken from the Dense layer; also passing them is refused)."""
    from derive.layers import Dense, Nonlinearity, Serial

    if isinstance(block, Nonlinearity):
        return block.activation, sigma_w2, sigma_b2, weights
    layers = block.layers if isinstance(block, Serial) else ()
    if len(layers) == 2 and isinstance(layers[0], Dense) and isinstance(layers[1], Nonlinearity):
        dense = layers[0]
        if sigma_w2 is not None or sigma_b2 != 0 or weights != "gaussian":
            raise DomainError("the block serial(Dense(σ_w², σ_b², ensemble), φ) fixes the variances and "
                              "the weights: do not pass sigma_w2, sigma_b2 or weights as well")
        return layers[1].activation, dense.sigma_w2, dense.sigma_b2, dense.ensemble.value
    raise DomainError(f"jacobian_spectrum takes an activation or the block serial(Dense(σ_w², σ_b²), φ) "
                      f"of J = Π D_l W_l; {block!r} is not of that form: pass its activation and the "
                      "variances, or use derive.simulate for other blocks")


def jacobian_spectrum(activation, sigma_w2=None, sigma_b2=0, depth: int = 1, weights: str = "gaussian",
                      *, q_star=None) -> JacobianSpectrum:
    """The spectrum of JJᵀ at depth L; on the critical line (χ₁ = 1) when ``sigma_w2`` is omitted.

    ``activation`` is a name, an expression, or a block of the layer algebra: an activation
    layer, or the unit ``serial(Dense(σ_w², σ_b², ensemble=...), φ)`` the network repeats.
    ``q_star`` overrides the fixed point of the variance map (computed by the mean-field engine).
    """
    from derive.layers import Layer

    if isinstance(activation, Layer):
        activation, sigma_w2, sigma_b2, weights = _unpack(activation, sigma_w2, sigma_b2, weights)
    act = make_activation(activation)
    depth = _depth(depth)
    if weights not in _S1:
        raise DomainError(f"weights={weights!r}: choose 'gaussian' or 'orthogonal'")
    sigma_b2 = exact(sigma_b2, "sigma_b2")
    if sigma_b2.is_negative:
        raise DomainError(f"sigma_b2={sigma_b2} is a variance: it must be >= 0")
    if sigma_w2 is None:
        sw, qs = critical_point(act, float(sigma_b2))
        sigma_w2 = exact(sw, "sigma_w2", positive=True)
    else:
        sigma_w2 = exact(sigma_w2, "sigma_w2", positive=True)
        qs = None
    if q_star is not None:
        qs = q_star
    elif qs is None:
        qs = fixed_point(act, float(sigma_w2), float(sigma_b2))
    return JacobianSpectrum(act, sigma_w2, sigma_b2, depth, weights, exact(qs, "q_star", positive=True))
