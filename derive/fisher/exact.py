r"""The exact nonzero Fisher spectrum of an actual finite random network.

The FIM F = (1/T) Jᵀ Q J (J: the CT × P Jacobian of the C outputs at the T inputs; Q = I for the
squared loss, the softmax covariance blocks diag p_t − p_t p_tᵀ for the cross-entropy) has the
nonzero eigenvalues of the CT × CT matrix Q^{1/2} G Q^{1/2} / T, G = J Jᵀ.  G is built layer by
layer from the simulator's backward pass (:mod:`derive.simulate`), never the P × P matrix nor J:
with one probe per output (the cotangent e_k at every input), each Dense layer with input H
(T × M_in) and cotangents Δ_k (T × M_out) at its output adds

    G[(k, t), (k′, t′)] += (a (H Hᵀ)_{tt′} + b) (Δ_k Δ_k′ᵀ)_{tt′},

(a, b) = (1, 1) in the standard parametrisation (W, b trained), (σ_w²/M_in, σ_b²) in the NTK one.
A network that normalises over the batch (:class:`~derive.fisher.batchnorm.BatchNorm`) couples the
inputs, so every (k, t) gets its own probe and G[p, p′] = Σ_{s,s′} (Δ_p Δ_p′ᵀ)_{ss′} (a H Hᵀ + b)_{ss′}.
Mean subtraction in the last layer (batch norm there, Karakida, Akaho & Amari 2019b) replaces
f_k(x_t) by f_k(x_t) − (1/T) Σ_s f_k(x_s), i.e. G by (I_C ⊗ P) G (I_C ⊗ P), P = I − 11ᵀ/T.

Cost: the backward pass, O(C T M² L), and the products, O(C² T² M L); memory O(C T M + C² T²).

>>> emp = empirical("relu", 2.0, 0.1, 3, width=200, samples=20, seed=0)
>>> emp.eigenvalues.shape, emp.parameters
((20,), 80601)
>>> bool(emp.lambda_max == emp.eigenvalues[0]), round(emp.learning_rate_bound * emp.lambda_max, 12)
(True, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.fisher.architecture import LAST_LAYERS, LOSSES, architecture, choice
from derive.fisher.eigenvalues import DescendingEigenvalues
from derive.gaussian.blocks import single_threaded_blas
from derive.layers import Parametrisation


@dataclass(frozen=True, eq=False)
class EmpiricalSpectrum(DescendingEigenvalues):
    """The nonzero FIM spectrum of one network: ``eigenvalues`` (all CT of G/T, descending; the C
    zeros of a mean subtraction included), ``mean`` = tr F / P and ``second_moment`` = tr F² / P
    over all P eigenvalues, ``lambda_max``, ``learning_rate_bound`` = 2/λ_max, and ``gram`` (the
    CT × CT matrix whose eigenvalues are those of T·F, rows ordered (output k, sample t))."""

    eigenvalues: np.ndarray
    parameters: int
    samples: int
    outputs: int
    gram: np.ndarray
    outputs_at_inputs: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.sum(self.eigenvalues) / self.parameters)

    @property
    def second_moment(self) -> float:
        return float(np.sum(self.eigenvalues**2) / self.parameters)

    def top(self, n: int | None = None) -> np.ndarray:
        """The n largest eigenvalues (n = C by default: the outliers)."""
        return self.eigenvalues[: self.outputs if n is None else n]

    def __repr__(self) -> str:
        return (f"EmpiricalSpectrum(P={self.parameters}, T={self.samples}, C={self.outputs}: "
                f"mean={self.mean:.6g}, second_moment={self.second_moment:.6g}, "
                f"lambda_max={self.lambda_max:.6g})")


def _scales(drawn, parametrisation: Parametrisation) -> tuple:
    if parametrisation is Parametrisation.STANDARD:
        return 1.0, 1.0
    return float(drawn.layer.sigma_w2) / drawn.W.shape[1], float(drawn.layer.sigma_b2)


def _coupled(network) -> bool:
    return any(getattr(getattr(layer, "layer", None), "batch_coupled", False) for layer in network.layers)


@dataclass(frozen=True, eq=False)
class LayerFactors:
    """One Dense layer's factors of the parameter Jacobian at T inputs: with H̃ = [√a H, √b 1]
    (``augmented``, T × (M_in + 1); (a, b) the parametrisation's scales of the module docstring),
    the derivative of probe p's output at input t by the trained parameters of unit i is
    D[p, t, i] H̃[t, :].  ``gram`` = (a H Hᵀ + b) ∘ Δ_p Δ_p′ᵀ, the layer's block of J Jᵀ (P, T, P, T)."""

    layer: object
    H: np.ndarray
    D: np.ndarray
    a: float
    b: float

    @property
    def input_gram(self) -> np.ndarray:
        """H̃ H̃ᵀ = a H Hᵀ + b (T × T)."""
        return self.a * (self.H @ self.H.T) + self.b

    @property
    def augmented(self) -> np.ndarray:
        return np.hstack([np.sqrt(self.a) * self.H, np.full((self.H.shape[0], 1), np.sqrt(self.b))])

    @property
    def gram(self) -> np.ndarray:
        P, T = self.D.shape[:2]
        flat = self.D.reshape(P * T, -1)
        return (flat @ flat.T).reshape(P, T, P, T) * self.input_gram[None, :, None, :]


def jacobian_factors(network, X, parametrisation=Parametrisation.STANDARD) -> tuple:
    """(factors, f): the :class:`LayerFactors` of every Dense layer (forward order) and the outputs
    f (T × C) of a drawn :class:`~derive.simulate.Network` at the rows of X.  The probes are one
    per output (e_k at every input) — or, when a layer normalises over the batch, one per
    (output, input), e_k at input t only (D then has C·T probes)."""
    forward = network.forward(X)
    T, C = forward.output.shape
    if _coupled(network):
        k, t = np.arange(C)[:, None], np.arange(T)[None, :]
        probes = np.zeros((C, T, T, C))
        probes[k, t, t, k] = 1.0
        probes = probes.reshape(C * T, T, C)
    else:
        probes = np.broadcast_to(np.eye(C)[:, None, :], (C, T, C))
    back = network.backward(forward, probes)
    factors = tuple(LayerFactors(drawn, H, D, *_scales(drawn, parametrisation)) for drawn, H, D in back.dense)
    return factors, forward.output


def jacobian_gram(network, X, parametrisation=Parametrisation.STANDARD) -> tuple:
    """(G, f): the Gram J Jᵀ of the outputs' parameter gradients as a (C, T, C, T) array, and the
    outputs f (T × C), of a drawn :class:`~derive.simulate.Network` at the rows of X."""
    factors, f = jacobian_factors(network, X, parametrisation)
    T, C = f.shape
    G = np.zeros((C, T, C, T))
    for layer in factors:
        if _coupled(network):  # G[p, p′] = Σ_{s,s′} Δ_p[s]·Δ_p′[s′] A[s, s′], one probe p per (k, t)
            A, D = layer.input_gram, layer.D
            flat = D.reshape(C * T, -1)
            G += (flat @ np.matmul(A, D).reshape(C * T, -1).T).reshape(C, T, C, T)
        else:  # G[(k, t), (k′, t′)] = Δ_k[t]·Δ_k′[t′] A[t, t′], one probe per output k
            G += layer.gram
    return G, f


def _mean_subtract(G: np.ndarray) -> np.ndarray:
    """(I_C ⊗ P) G (I_C ⊗ P), P = I − 11ᵀ/T, on a (C, T, C, T) array."""
    G = G - G.mean(axis=1, keepdims=True)
    return G - G.mean(axis=3, keepdims=True)


def softmax_covariance_root(f: np.ndarray) -> np.ndarray:
    """Per input t the symmetric square root of diag p_t − p_t p_tᵀ, p_t = softmax(f_t): (T, C, C)."""
    z = f - f.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    Q = np.einsum("tk,kj->tkj", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]
    w, V = np.linalg.eigh(Q)
    return np.einsum("tkj,tj,tij->tki", V, np.sqrt(np.clip(w, 0.0, None)), V)


@single_threaded_blas  # the products are skinny (T rows): threads only spin against each other
def spectrum_of(network, X, *, loss="mse", last_layer="plain",
                parametrisation="standard") -> EmpiricalSpectrum:
    """The :class:`EmpiricalSpectrum` of a drawn network at the inputs X (T × M_0)."""
    loss = choice(loss, LOSSES, "loss")
    last_layer = choice(last_layer, LAST_LAYERS, "last_layer")
    mode = Parametrisation(choice(getattr(parametrisation, "value", parametrisation),
                                  tuple(p.value for p in Parametrisation), "parametrisation"))
    G, f = jacobian_gram(network, X, mode)
    if last_layer == "mean_subtracted":
        G = _mean_subtract(G)
        f = f - f.mean(axis=0, keepdims=True)
    C, T = G.shape[:2]
    if loss == "cross_entropy":
        if C < 2:
            raise DomainError("the softmax cross-entropy needs outputs >= 2 classes")
        R = softmax_covariance_root(f)  # (T, C, C): R_t[k, j]
        G = np.einsum("tka,atbs,sbj->ktjs", R, G, R)
    gram = G.reshape(C * T, C * T)
    eigenvalues = np.linalg.eigvalsh((gram + gram.T) / 2)[::-1] / T
    parameters = sum(d.W.size + d.b.size for d, _, _ in _dense_of(network))
    return EmpiricalSpectrum(eigenvalues, int(parameters), T, C, gram, f)


def _dense_of(network) -> list:
    from derive.simulate import DrawnDense

    return [(layer, None, None) for layer in network.layers if isinstance(layer, DrawnDense)]


def gaussian_inputs(samples: int, dim: int, seed) -> np.ndarray:
    """T i.i.d. N(0, I) inputs of dimension `dim` (q̂⁰₁ = 1, q̂⁰₂ = 0), from the generator of `seed`."""
    return np.random.default_rng([np.random.SeedSequence(seed).entropy, 7]).standard_normal((samples, dim))


def empirical(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width=None, samples=None, outputs=1,
              loss="mse", last_layer="plain", parametrisation="standard", seed=0,
              X=None) -> EmpiricalSpectrum:
    """The exact nonzero FIM spectrum of one actual random network: the arguments of
    :func:`derive.fisher.fisher_spectrum` plus `seed` (weights and Gaussian inputs drawn from it),
    or a drawn :class:`derive.simulate.Network` as `activation` with its inputs `X` (T × M_0)."""
    from derive.simulate import Network

    if isinstance(activation, Network):
        if X is None:
            raise DomainError("give the inputs X (T × input_dim) with a drawn network")
        return spectrum_of(activation, X, loss=loss, last_layer=last_layer, parametrisation=parametrisation)
    if width is None or samples is None:
        raise DomainError("give width= and samples= (or a drawn network and its inputs X)")
    from derive.fisher.theory import check_samples

    samples = check_samples(samples)
    arch = architecture(activation, sigma_w2, sigma_b2, depth, width=width, outputs=outputs,
                        parametrisation=parametrisation)
    network = single_threaded_blas(arch.draw)(seed)
    X = gaussian_inputs(samples, arch.widths[0], seed) if X is None else X
    return spectrum_of(network, X, loss=loss, last_layer=last_layer, parametrisation=arch.parametrisation)
