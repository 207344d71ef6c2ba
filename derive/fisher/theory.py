r"""The eigenvalue statistics of the Fisher information matrix of a wide random network.

Karakida, Akaho & Amari, "Universal statistics of Fisher information in deep neural networks:
mean field approach" (AISTATS 2019; arXiv 1806.01316).  For the network of
:mod:`derive.fisher.architecture` and the empirical FIM of T inputs,

    F = (1/T) Σ_t Σ_k ∇_θ f_k(x_t) ∇_θ f_k(x_t)ᵀ,

(the Hessian of E = (1/2T) Σ_t ‖y_t − f(x_t)‖² at a global minimum), with the order parameters of
:mod:`derive.fisher.order` combined as

    κ₁ = Σ_{l=1}^{L} (α_{l−1}/α) q̃^l_1 q̂^{l−1}_1,    κ₂ = Σ_{l=1}^{L} (α_{l−1}/α) q̃^l_2 q̂^{l−1}_2,

the statistics of its P ≈ αM² eigenvalues are, to leading order in M (their theorems on the
mean, the second moment and the largest eigenvalue)

    m_λ = κ₁ C/M,    s_λ = αC((T − 1)/T κ₂² + κ₁²/T),    λ_max = αM((T − 1)/T κ₂ + κ₁/T),

λ_max being C-fold (one outlier per output).  All three come from the CT × CT Gram matrix
G = J Jᵀ (F's nonzero eigenvalues are those of G/T): in the mean-field limit its k-th diagonal
block is αM[(κ₁ − κ₂) I + κ₂ 11ᵀ] and the blocks of different outputs vanish, so G/T has the C
outliers αM((T−1)κ₂ + κ₁)/T and C(T − 1) eigenvalues αM(κ₁ − κ₂)/T (``bulk``).  Gradient
descent on E is stable near a minimum iff η < η_c = 2/λ_max (LeCun, Kanter & Solla 1991;
Karakida et al. 2019, on learning rates).  Biases add O(1/M) relative terms, dropped as in the paper.

In the NTK parametrisation (``parametrisation="ntk"``) the same reasoning holds with the leading
Gram entries αMκ_i replaced by the NTK entries Θ_i = Σ_l (σ_w² q̂^{l−1}_i + σ_b²) q̃^l_i of one
input (i = 1) and of two (i = 2), so λ_max = (T − 1)/T Θ₂ + Θ₁/T = O(1).

>>> spec = fisher_spectrum("relu", 2, 0, 3, width=1000, samples=100)
>>> round(spec.kappa1, 12), spec.alpha  # critical ReLU: q̂ = q̃ = 1, κ₁ = L/(L − 1)
(1.5, 2.0)
>>> round(spec.lambda_max, 3), round(spec.learning_rate_bound, 8)
(708.852, 0.00282147)
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from derive.errors import DomainError
from derive.fisher.architecture import LAST_LAYERS, LOSSES, Architecture, architecture, choice
from derive.fisher.eigenvalues import DescendingEigenvalues
from derive.fisher.kappas import Gram, gram_entries, kappas
from derive.fisher.order import order_parameters
from derive.layers import Dense, Parametrisation


class FisherAccuracyWarning(UserWarning):
    """A regime where the leading-order formulas are known to be poor (the result says why)."""


def _accuracy_warnings(arch: Architecture, samples: int, gram: Gram, last_layer: str,
                       mean_subtraction=None) -> tuple:
    """The regimes where the leading-order statistics are known to be poor."""
    out = []
    if mean_subtraction is not None and mean_subtraction.estimate > 1.05 * mean_subtraction.leading:
        out.append(f"with batch norm in the last layer lambda_max is the leading term ρα(κ₁ − κ₂) = "
                   f"{mean_subtraction.leading:.4g}, a lower bound: the input overlaps alone raise it to "
                   f"{mean_subtraction.estimate:.4g} (mean_subtraction.estimate) and actual networks exceed "
                   "that by a further O(√ρ); learning_rate_bound is an upper bound on the stable rate")
    M = arch.M
    if samples > M:
        out.append(f"T = {samples} samples exceed the width M = {M}: the κ₁/T terms of s_λ and λ_max and the "
                   f"bulk eigenvalues αM(κ₁ − κ₂)/T are smaller than the finite-width fluctuations "
                   "(of relative order √(T/M)); the formulas assume M ≫ T")
    if last_layer == "plain" and samples * abs(gram.off_diagonal) < 3 * gram.diagonal:
        out.append("the network is nearly centred (Tκ₂ is not large against κ₁): there is no well-separated "
                   "outlier, so λ_max is the top of a bulk whose width the leading order does not give "
                   "(it exceeds the formula by a term of relative order √(T/M))")
    return tuple(out)


@dataclass(frozen=True)
class FisherSpectrum:
    """The eigenvalue statistics of the FIM of a wide random network, to leading order in M.

    Numbers (floats): ``kappa1``, ``kappa2``, ``alpha``, ``mean`` (m_λ), ``second_moment`` (s_λ),
    ``lambda_max`` (the C-fold outlier), ``learning_rate_bound`` (2/λ_max), ``bulk`` (the value of
    the other C(T − 1) nonzero eigenvalues), ``layers`` (the order parameters per weight layer,
    :class:`~derive.fisher.order.LayerOrder`).  ``formulas`` holds the symbolic derivation
    (:class:`~derive.fisher.formulas.FisherFormulas`); ``warnings`` the regimes where the leading
    order is known to be poor; ``mean_subtraction`` the analysis of batch norm in the last layer
    (:class:`~derive.fisher.batchnorm.MeanSubtraction`) when ``last_layer="mean_subtracted"``;
    ``softmax`` that of the cross-entropy loss (:class:`~derive.fisher.softmax.SoftmaxOutliers`).
    """

    architecture: Architecture
    samples: int
    loss: str
    last_layer: str
    layers: tuple
    kappa1: float
    kappa2: float
    gram: Gram
    mean: float
    second_moment: float
    lambda_max: float
    bulk: float
    warnings: tuple = ()
    mean_subtraction: object = None
    softmax: object = None
    method: str = field(default="", compare=False)

    @property
    def alpha(self) -> float:
        return self.architecture.alpha

    @property
    def width(self) -> int:
        return self.architecture.M

    @property
    def outputs(self) -> int:
        return self.architecture.outputs

    @property
    def depth(self) -> int:
        return self.architecture.depth

    @property
    def learning_rate_bound(self) -> float:
        """η_c = 2/λ_max: gradient descent on the squared loss is stable near a minimum iff η < η_c."""
        return 2.0 / self.lambda_max

    @cached_property
    def formulas(self):
        """The derivation as SymPy equations (:class:`~derive.fisher.formulas.FisherFormulas`)."""
        from derive.fisher.formulas import fisher_formulas

        return fisher_formulas(self)

    def _latex(self, printer) -> str:
        return printer._print(self.formulas)

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"

    def __repr__(self) -> str:
        head = (f"FisherSpectrum({self.architecture.name}, L={self.depth}, M={self.width}, T={self.samples}, "
                f"C={self.outputs}, loss={self.loss!r}, last_layer={self.last_layer!r}: "
                f"kappa1={self.kappa1:.6g}, kappa2={self.kappa2:.6g}, mean={self.mean:.6g}, "
                f"second_moment={self.second_moment:.6g}, "
                f"lambda_max={self.lambda_max:.6g}, learning_rate_bound={self.learning_rate_bound:.6g})")
        return head + "".join(f"\n  warning: {w}" for w in self.warnings)


def _statistics(arch: Architecture, samples: int, gram: Gram) -> tuple:
    """(m_λ, s_λ, λ_max, bulk) from the leading Gram entries (module docstring)."""
    T, C = samples, arch.outputs
    P = arch.alpha * arch.M**2
    diag, off = gram.diagonal, gram.off_diagonal
    return (C * diag / P, C * ((T - 1) / T * off**2 + diag**2 / T) / P,
            (T - 1) / T * off + diag / T, (diag - off) / T)


def check_samples(samples) -> int:
    from derive.fisher.architecture import positive_count

    return positive_count(samples, "samples", 1)


def fisher_spectrum(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width, samples, outputs=1,
                    loss="mse", last_layer="plain", parametrisation="standard") -> FisherSpectrum:
    """The FIM eigenvalue statistics (Karakida, Akaho & Amari 2019) of a random network of `depth`
    weight layers: an activation with its variances, or a block (with `depth`) or a whole network
    of the layer algebra (see :func:`derive.fisher.architecture.architecture`).

    `width` is M or the widths (M_0, …, M_{L−1}); `samples` = T Gaussian inputs; `outputs` = C;
    `loss` "mse" (squared error) or "cross_entropy" (softmax, :mod:`derive.fisher.softmax`);
    `last_layer` "plain" or "mean_subtracted" (batch norm in the last layer,
    :mod:`derive.fisher.batchnorm`); `parametrisation` "standard" (Karakida et al.) or "ntk".
    Regimes where the leading order is known to be poor are named in ``warnings`` (and warned of
    with :class:`FisherAccuracyWarning`).

    >>> spec = fisher_spectrum("relu", 2.0, 0.1, 6, width=1024, samples=256)
    >>> round(spec.kappa1, 6), round(spec.kappa2, 6)
    (1.35, 0.466194)
    >>> f"{spec.lambda_max:.1f}, {spec.learning_rate_bound:.3e}"
    '2404.6, 8.317e-04'
    """
    loss = choice(loss, LOSSES, "loss")
    last_layer = choice(last_layer, LAST_LAYERS, "last_layer")
    samples = check_samples(samples)
    arch = architecture(activation, sigma_w2, sigma_b2, depth, width=width, outputs=outputs,
                        parametrisation=parametrisation)
    if arch.batch_coupled:
        raise DomainError("batch norm in the middle layers couples the inputs of a batch, which the "
                          "two-input order parameters do not describe; use derive.fisher.middle_bound for "
                          "its lower bound on λ_max, or derive.fisher.empirical for the spectrum")
    layers = order_parameters(arch)
    k1, k2 = kappas(arch, layers)
    gram = gram_entries(arch, layers)
    mean, second, lam, bulk = _statistics(arch, samples, gram)
    extra = {}
    if last_layer == "mean_subtracted":
        from derive.fisher.batchnorm import mean_subtraction

        extra["mean_subtraction"] = analysis = mean_subtraction(arch, samples, layers, gram)
        mean, second, lam, bulk = analysis.mean, analysis.second_moment, analysis.lambda_max, analysis.bulk
    if loss == "cross_entropy":
        from derive.fisher.softmax import softmax_outliers

        if last_layer != "plain":
            raise DomainError("the cross-entropy FIM with batch norm in the last layer has no outliers and "
                              "its bulk is not derived here; use derive.fisher.empirical for it")
        extra["softmax"] = outliers = softmax_outliers(arch, samples, layers, gram)
        mean, second, lam = outliers.mean, outliers.second_moment, outliers.lambda_max
    notes = _accuracy_warnings(arch, samples, gram, last_layer, extra.get("mean_subtraction"))
    for note in notes:
        warnings.warn(note, FisherAccuracyWarning, stacklevel=2)
    return FisherSpectrum(arch, samples, loss, last_layer, layers, k1, k2, gram, mean, second, lam, bulk,
                          notes, method="order parameters by the layer algebra in float64 (derive.ntk)",
                          **extra)


# --- the mean-field Gram on given inputs -------------------------------------------------------------


def _full(off, diag) -> np.ndarray:
    """A T × T matrix from a pair field (off-diagonal) and a single-input field (diagonal)."""
    out = np.array(np.broadcast_to(off, np.broadcast_shapes(np.shape(off), (1, 1))), dtype=float)
    np.fill_diagonal(out, np.broadcast_to(diag, (out.shape[0], 1))[:, 0])
    return out


def mean_field_layers(arch: Architecture, X) -> tuple:
    """Per weight layer l (forward order) the four (M_{l−1}, Dense layer, q̂^{l−1}, q̃^l) of the
    mean-field limit on the rows of X: the input width, the layer, and the forward and backward
    order parameters of every pair of inputs (T × T), read from the engine's trace of Gram
    matrices (:func:`derive.ntk.kernels`), so inputs need not be Gaussian.  The layer's block of
    the Fisher Gram is their product, scaled by the parametrisation (:func:`mean_field_gram`)."""
    trace = arch.net.kernels(X, trace=True).trace
    out = trace.output
    chi_out = _full(out.chi12, out.chi11)
    return tuple((width, step.layer, _full(step.before.k12, step.before.k11),
                  chi_out / _full(step.after.chi12, step.after.chi11))
                 for width, step in zip(arch.widths, trace.of(Dense), strict=True))


def mean_field_gram(arch: Architecture, X) -> np.ndarray:
    """One output's block of the Fisher Gram J Jᵀ in the mean-field limit, on the rows of X:
    Σ_l M_{l−1} q̂^{l−1}(x_t, x_t′) q̃^l(x_t, x_t′) (standard parametrisation) or
    Σ_l (σ_w² q̂^{l−1} + σ_b²) q̃^l (NTK), from :func:`mean_field_layers`."""
    G = 0.0
    for width, layer, q_hat, q_tilde in mean_field_layers(arch, X):
        if arch.parametrisation is Parametrisation.STANDARD:
            G = G + width * q_hat * q_tilde
        else:
            G = G + (float(layer.sigma_w2) * q_hat + float(layer.sigma_b2)) * q_tilde
    return G


@dataclass(frozen=True, eq=False)
class DataSpectrum(DescendingEigenvalues):
    """The mean-field FIM spectrum on given inputs: ``eigenvalues`` of one output's Gram / T
    (each C-fold), ``lambda_max``, ``learning_rate_bound``."""

    eigenvalues: np.ndarray
    outputs: int


def mean_field_spectrum(activation, sigma_w2=None, sigma_b2=None, depth=None, *, X, width, outputs=1,
                        last_layer="plain", parametrisation="standard") -> DataSpectrum:
    """The FIM spectrum of the mean-field Gram (:func:`mean_field_gram`) on the inputs X (T × M_0),
    e.g. real data; `width` the hidden width M (the input width is X's), else as
    :func:`fisher_spectrum`.  It keeps every input pair's own overlap (no average over inputs) and
    drops only the finite-width fluctuations."""
    last_layer = choice(last_layer, LAST_LAYERS, "last_layer")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise DomainError("X must be a 2-D array (T inputs × M_0 features)")
    arch = architecture(activation, sigma_w2, sigma_b2, depth, width=width, outputs=outputs,
                        parametrisation=parametrisation)
    arch = dataclasses.replace(arch, widths=(X.shape[1], *arch.widths[1:]))
    G = mean_field_gram(arch, X)
    if last_layer == "mean_subtracted":
        G = G - G.mean(axis=0, keepdims=True)
        G = G - G.mean(axis=1, keepdims=True)
    return DataSpectrum(np.linalg.eigvalsh(G)[::-1] / X.shape[0], arch.outputs)
