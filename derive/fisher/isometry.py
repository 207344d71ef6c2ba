r"""The conditional Fisher information of one input under dynamical isometry.

Hayase & Karakida, "The spectrum of Fisher information of deep networks achieving dynamical
isometry" (AISTATS 2021; arXiv 2006.07814).  For one input x, a network of L weight layers of
width M with M outputs (so that the input-output Jacobian is square) has the conditional FIM
F(x) = J(x)ᵀ J(x) (mini-batch size 1, online learning), whose nonzero eigenvalues are those of the
M × M matrix

    J Jᵀ = Σ_{l=1}^{L} (‖h^{l−1}‖² + 1) J_l J_lᵀ,    J_l = ∂f/∂u^l = W^L D^{L−1} W^{L−1} ⋯ W^{l+1} D^l,

(standard parametrisation; D^m = diag φ′(u^m)).  In the wide limit ‖h^{l−1}‖² = M q̂^{l−1}_1 and
(1/M) tr J_l J_lᵀ = q̃^l_1 (:mod:`derive.fisher.order`), so the mean eigenvalue is

    m₁ = Σ_l a_l q̃^l_1,   a_l = M q̂^{l−1}_1 + 1                               (mean field)

and, with J_l J_lᵀ's normalised second moment r_l = τ((J_lJ_lᵀ)²)/τ(J_lJ_lᵀ)² from free probability
(the S-transform of a product of free factors multiplies, so r − 1 adds over the factors:
Pennington, Schoenholz & Ganguli, AISTATS 2018, the S-transform of the Jacobian),

    r_l = 1 + Σ_{m=l}^{L−1} (μ₂^{(m)}/μ₁^{(m)2} − 1) + (L − l) s,   μ_k^{(m)} = ∫Dz φ′(√q^m z)^{2k},

s = 1 for Gaussian weights (Wishart: τ((WWᵀ)²) = 2τ(WWᵀ)²), 0 for orthogonal ones, and the cross
terms τ(J_lJ_lᵀ J_l′J_l′ᵀ) = (q̃^l/q̃^{l′}) τ((J_l′J_l′ᵀ)²) for l < l′ (J_l = J_l′ R with RRᵀ free
from J_l′ᵀJ_l′, the asymptotic freeness Hayase & Karakida assume), the second moment is

    m₂ = Σ_l a_l² q̃_l² r_l + 2 Σ_{l<l′} a_l a_l′ q̃_l q̃_l′ r_l′

(the bias term 1 of a_l is kept: it is not negligible when q̂* is small, as near isometry).

Under dynamical isometry (orthogonal weights, χ₁ = 1 and μ₂/μ₁² → 1, e.g. φ′ nearly constant on
the pre-activations) r_l → 1 and q̃ → 1, so m₂ → m₁²: the spectrum *concentrates* at m₁ ≈ L M q̂*,
which grows *linearly with depth*, and the largest eigenvalue with it: the online learning rate
must scale as 2/λ_max ∝ 1/L although the Jacobian's spectrum is depth-independent.  ``lambda_max``
below is that leading order (λ_max → m₁ as the relative spread √(m₂/m₁² − 1) → 0; always
λ_max ≥ m₁).  :mod:`derive.freeprob` is not used: the two moments are computed here directly.

>>> c = conditional_fisher("linear", 1, 0, 4, width=100)  # deep linear orthogonal: J Jᵀ = L‖x‖² I
>>> round(c.mean, 9), c.spread  # 4 (100 + 1)
(404.0, 0.0)
>>> g = conditional_fisher("linear", 1, 0, 4, width=100, ensemble="gaussian")
>>> round(g.spread, 4)  # Gaussian weights: no isometry, a wide spectrum
0.9354
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from derive.fisher.architecture import architecture
from derive.fisher.order import order_parameters
from derive.layers import Dense, Ensemble, serial


@dataclass(frozen=True)
class ConditionalFisher:
    """The conditional FIM's eigenvalue moments for one input (module docstring): ``mean`` m₁,
    ``second_moment`` m₂, ``spread`` √(m₂/m₁² − 1), ``lambda_max`` (m₁: the leading order under
    dynamical isometry), ``learning_rate_bound`` 2/λ_max, ``ratios`` r_l per layer."""

    depth: int
    width: int
    ensemble: str
    mean: float
    second_moment: float
    ratios: tuple

    @property
    def spread(self) -> float:
        return math.sqrt(max(self.second_moment / self.mean**2 - 1.0, 0.0))

    @property
    def lambda_max(self) -> float:
        return self.mean

    @property
    def learning_rate_bound(self) -> float:
        return 2.0 / self.lambda_max


def conditional_architecture(activation, sigma_w2, sigma_b2, depth, *, width, ensemble="orthogonal"):
    """The square network (M outputs) of :func:`conditional_fisher`."""
    block = serial(activation, Dense(sigma_w2, sigma_b2, ensemble=ensemble))
    return architecture(block, depth=depth, width=width, outputs=width)


def conditional_fisher(activation, sigma_w2, sigma_b2, depth, *, width, ensemble="orthogonal",
                       input_variance=1.0) -> ConditionalFisher:
    """The :class:`ConditionalFisher` of one Gaussian input (per-unit variance q̂⁰ = `input_variance`;
    (q* − σ_b²)/σ_w² starts the network at its fixed point) through a network of `depth` square
    weight layers of `width` with Gaussian or orthogonal weights."""
    from derive.gaussian.moments import moments_of

    arch = conditional_architecture(activation, sigma_w2, sigma_b2, depth, width=width, ensemble=ensemble)
    layers = order_parameters(arch, variance=input_variance)
    L, M = len(layers), arch.M
    s = 1.0 if arch.dense[0].ensemble is Ensemble.GAUSSIAN else 0.0
    moments = moments_of(_activation(arch))
    q = np.array([o.q1 for o in layers[:-1]])  # the pre-activations the L − 1 activations see
    mu1 = np.atleast_1d(moments.D(q)) if len(q) else np.array([])
    mu2 = np.atleast_1d(moments.derivative_power(2)(q)) if len(q) else np.array([])
    excess = mu2 / mu1**2 - 1.0 + s
    r = np.array([1.0 + float(np.sum(excess[l:])) for l in range(L)])  # r_l for l = 1..L
    a = np.array([m * o.q_hat1 + 1.0 for m, o in zip(arch.widths, layers, strict=True)])  # ‖h‖² + 1 (bias)
    qt = np.array([o.q_tilde1 for o in layers])
    m1 = float(np.sum(a * qt))
    cross = sum(a[i] * a[j] * qt[i] * qt[j] * r[j] for i in range(L) for j in range(i + 1, L))
    m2 = float(np.sum(a**2 * qt**2 * r)) + 2 * cross
    return ConditionalFisher(L, M, arch.dense[0].ensemble.value, m1, m2, tuple(r))


def _activation(arch):
    from derive.layers import Nonlinearity, Repeat, Serial

    def find(layer):
        if isinstance(layer, Nonlinearity):
            return layer.activation
        parts = (layer.layers if isinstance(layer, Serial)
                 else (layer.block,) if isinstance(layer, Repeat) else ())
        for part in parts:
            found = find(part)
            if found is not None:
                return found
        return None

    return find(arch.net)


def conditional_empirical(activation, sigma_w2, sigma_b2, depth, *, width, ensemble="orthogonal",
                          input_variance=1.0, seed=0):
    """The exact nonzero conditional-FIM spectrum of one actual network at one Gaussian input of
    per-unit variance `input_variance` (:func:`derive.fisher.exact.spectrum_of`, T = 1, M outputs)."""
    from derive.fisher.exact import gaussian_inputs, spectrum_of
    from derive.gaussian.blocks import single_threaded_blas

    arch = conditional_architecture(activation, sigma_w2, sigma_b2, depth, width=width, ensemble=ensemble)
    network = single_threaded_blas(arch.draw)(seed)
    x = gaussian_inputs(1, arch.widths[0], seed) * math.sqrt(input_variance)
    return spectrum_of(network, x)
