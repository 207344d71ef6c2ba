r"""Batch normalisation and the Fisher spectrum (Karakida, Akaho & Amari, NeurIPS 2019, arXiv 1906.02926).

**In the last layer** (``last_layer="mean_subtracted"``): each output is centred over the batch,
f̄_k(x_t) = f_k(x_t) − (1/T) Σ_s f_k(x_s) (the mean subtraction of batch norm; the variance
normalisation is left out, as in the paper's analysis).  Its Jacobian is the centred one, so the
Gram becomes (I_C ⊗ P) G (I_C ⊗ P), P = I − 11ᵀ/T.  On the mean-field Gram of
:mod:`derive.fisher.theory`, P kills the outlier direction 1 and leaves, per output, T − 1
eigenvalues equal to

    λ̄ = αM(κ₁ − κ₂)/T = ρα(κ₁ − κ₂),   ρ = M/T                                (derived)

(the leading term of the paper's bound on λ_max; C zero eigenvalues appear).  Which statements are what:

* *derived, leading order*: all C(T − 1) nonzero eigenvalues equal λ̄, so m_λ = C(T−1)(κ₁ − κ₂)/(TM)
  and s_λ = αC(T−1)(κ₁ − κ₂)²/T² to leading order;
* *a bound, exact for every network*: λ_max ≥ the mean nonzero eigenvalue = tr F̄ / (C(T − 1)), whose
  mean-field value is λ̄ — so λ_max ≥ λ̄ up to the O(M^{−1/2}) fluctuation of a trace;
* *derived correction (one of two)*: the inputs' random overlaps c_tt′ = x_t·x_t′/M_0 (of order
  M_0^{−1/2}) enter the off-diagonal entries as αM κ₂′ c_tt′, κ₂′ = ∂κ₂/∂c at c = 0 (the input
  correlation c of :mod:`derive.fisher.order`).  To first order the centred Gram is
  αM[(κ₁ − κ₂ − κ₂′) P + κ₂′ P XXᵀ/M_0 P], and the top eigenvalue of XXᵀ/M_0 (T × T) is the
  Marchenko–Pastur edge (1 + √γ)², γ = T/M_0 = 1/(ρα_0), so

      λ_max ≈ ρα[(κ₁ − κ₂) + κ₂′(2√γ + γ)]                                         (``estimate``)

  an excess growing like √ρ, within what the paper's upper bound allows (that bound carries
  non-negative constants c₁, c₂ it does not evaluate, and is not used here);
* *not derived*: the finite-width fluctuations of the hidden features (Wishart-like, with M degrees
  of freedom per layer) add a further excess of the same order √ρ; the tests show by simulation
  that the network's λ_max exceeds ``estimate`` by it, so ``estimate`` is a lower estimate.

**In the middle layers** (:class:`BatchNorm` on the pre-activations, before φ): the outlier stays.
The last layer's gradient ∂f_k/∂W^L_kj = h^{L−1}_j is a block of G, so λ_max(F) ≥ (1/T) λ_max(H Hᵀ)
≥ ‖Σ_t h_t‖²/T², and with the batch-normalised pre-activations z ~ N(0, 1) (mean 0, variance 1 over
the batch, nearly independent across inputs):

    λ_max ≥ α_{L−1} M [(T − 1)/T (E φ(z))² + E φ(z)²/T] = O(M)   (:func:`middle_bound`; a bound)

(the paper's result that batch norm in the middle layers does not remove the pathological
sharpness).  Layer normalisation keeps κ₂ > 0 and so the outlier (:mod:`derive.fisher.theory`
reads LayerNorm through the layer algebra).

>>> from derive.fisher.theory import fisher_spectrum
>>> plain = fisher_spectrum("relu", 2, 0.1, 4, width=1000, samples=100)
>>> bn = fisher_spectrum("relu", 2, 0.1, 4, width=1000, samples=100, last_layer="mean_subtracted")
>>> analysis = bn.mean_subtraction
>>> round(analysis.leading, 4) == round(bn.lambda_max, 4), analysis.leading < analysis.estimate
(True, True)
>>> round(plain.lambda_max / bn.lambda_max)  # the reduction
44
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.kernel_state import Kind
from derive.layers import Layer

# --- the last layer: mean subtraction --------------------------------------------------------------


@dataclass(frozen=True)
class MeanSubtraction:
    """λ_max with the outputs centred over the batch (module docstring): ``leading`` ρα(κ₁ − κ₂)
    (derived; also the mean-field value of the lower bound tr F̄ / (C(T − 1))), ``input_overlap``
    ρακ₂′(2√γ + γ) (derived, first order in the input overlaps), ``estimate`` = their sum (a lower
    estimate: the feature fluctuations are not included), ``kappa2_slope`` κ₂′, ``rho`` = M/T,
    ``gamma`` = T/M_0; ``mean``, ``second_moment``, ``bulk`` to leading order."""

    leading: float
    input_overlap: float
    kappa2_slope: float
    rho: float
    gamma: float
    mean: float
    second_moment: float

    @property
    def estimate(self) -> float:
        return self.leading + self.input_overlap

    @property
    def lambda_max(self) -> float:
        """The leading order ρα(κ₁ − κ₂) (see ``estimate`` for the corrected value)."""
        return self.leading

    @property
    def bulk(self) -> float:
        return self.leading

    @property
    def learning_rate_bound(self) -> float:
        return 2.0 / self.leading


def slopes(arch, step: float = 1e-2) -> tuple:
    """(κ₂′, g₂′): the slopes in the input correlation c at c = 0 of κ₂ and of the off-diagonal Gram
    entry g₂ (αMκ₂, or Θ₂ in the NTK parametrisation), by the fourth-order central difference
    (−g(2h) + 8g(h) − 8g(−h) + g(−2h))/(12h) on the order parameters (truncation O(h⁴))."""
    from derive.fisher.kappas import gram_entries, kappas
    from derive.fisher.order import order_parameters

    values = []
    for c in (2 * step, step, -step, -2 * step):
        layers = order_parameters(arch, c)
        values.append((kappas(arch, layers)[1], gram_entries(arch, layers).off_diagonal))
    weights = np.array([-1.0, 8.0, -8.0, 1.0]) / (12 * step)
    return tuple(float(w) for w in weights @ np.array(values))


def mean_subtraction(arch, samples: int, layers, gram) -> MeanSubtraction:
    """The :class:`MeanSubtraction` analysis of a network (standard or NTK parametrisation: the
    leading Gram entries `gram` of :func:`derive.fisher.theory.gram_entries` take αMκ's place)."""
    if samples < 2:
        raise DomainError("mean subtraction over a batch needs samples >= 2")
    T, C = samples, arch.outputs
    P = arch.alpha * arch.M**2
    leading = (gram.diagonal - gram.off_diagonal) / T
    kappa2_slope, entry_slope = slopes(arch)
    gamma = T / arch.widths[0]
    overlap = entry_slope / T * (2 * math.sqrt(gamma) + gamma)
    return MeanSubtraction(leading, overlap, kappa2_slope, arch.M / T, gamma,
                           C * (T - 1) * leading / P, C * (T - 1) * leading**2 / P)


# --- the middle layers: a batch-norm layer the simulator can run --------------------------------------


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation without gain and shift: each unit is centred and scaled to unit variance
    over the inputs of the batch, y_t = (u_t − mean_s u_s)/std_s(u_s) (Ioffe & Szegedy 2015).

    It couples the inputs of a batch, so the two-input kernel state does not describe it (``apply``
    refuses); :func:`derive.fisher.empirical` runs it in the simulator, one probe per (output,
    input), and :func:`middle_bound` bounds λ_max below.  Put it on pre-activations:
    ``serial(BatchNorm(), "relu", Dense(2, 0.1))``.
    """

    eps: float = 0.0
    batch_coupled = True

    def apply(self, s, algebra, recorder=None):
        raise DomainError("BatchNorm couples the inputs of a batch; the two-input kernel state cannot "
                          "describe it. Use derive.fisher.empirical (simulation) or "
                          "derive.fisher.batchnorm.middle_bound")

    def kind(self, incoming: Kind) -> Kind:
        return Kind.GAUSSIAN if incoming is Kind.GAUSSIAN else Kind.CENTRED

    def __repr__(self) -> str:
        return "BatchNorm()"

    def _latex(self, printer) -> str:
        return r"\mathrm{BatchNorm}"


@dataclass(frozen=True, eq=False)
class DrawnBatchNorm:
    layer: BatchNorm


def _register_with_simulator() -> None:
    """Teach :mod:`derive.simulate` to draw, run and differentiate :class:`BatchNorm` (its dispatch
    functions are single-dispatch, open to new layer types)."""
    from derive import simulate

    @simulate.draw_layer.register
    def _(layer: BatchNorm, rng, fan_in, widths):
        return DrawnBatchNorm(layer), fan_in

    @simulate.forward_layer.register
    def _(layer: DrawnBatchNorm, H):
        centred = H - H.mean(axis=0, keepdims=True)
        sigma = np.sqrt(np.mean(centred**2, axis=0, keepdims=True) + layer.layer.eps)
        Y = centred / sigma
        return Y, (Y, sigma)

    @simulate.backward_layer.register
    def _(layer: DrawnBatchNorm, record, delta, dense):
        Y, sigma = record.cache  # the batch is axis 1 of delta (probes × inputs × units)
        centred = delta - delta.mean(axis=1, keepdims=True)
        return (centred - Y * np.mean(delta * Y, axis=1, keepdims=True)) / sigma


_register_with_simulator()


@dataclass(frozen=True)
class MiddleBound:
    """λ_max ≥ α_{L−1}M[(T − 1)/T μ² + ν/T] with μ = E φ(z), ν = E φ(z)², z ~ N(0, 1): batch norm
    before the last activation leaves an O(M) outlier (module docstring).  A lower bound."""

    lambda_max_lower: float
    mu: float
    nu: float

    @property
    def learning_rate_upper(self) -> float:
        """η_c ≤ 2/bound."""
        return 2.0 / self.lambda_max_lower


def middle_bound(activation, *, width, samples, ratio: float = 1.0) -> MiddleBound:
    """The :class:`MiddleBound` for `activation` after batch norm, last hidden width ratio·width."""
    from derive.activations import activation as make_activation
    from derive.gaussian.moments import moment_1d
    from derive.symbols import x

    act = make_activation(activation) if isinstance(activation, str) else activation
    mu, nu = (float(moment_1d(f, x).evaluate(np.array([1.0])).value[0]) for f in (act(x), act(x) ** 2))
    T = samples
    return MiddleBound(ratio * width * ((T - 1) / T * mu**2 + nu / T), mu, nu)
