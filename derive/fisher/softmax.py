r"""The Fisher information of a softmax cross-entropy loss: what happens to the C outliers.

Karakida, Akaho & Amari, "Pathological spectra of the Fisher information metric and its variants in
deep neural networks" (arXiv 1910.05992): with p_t = softmax(f(x_t)), the FIM (the Gauss–Newton
matrix of the cross-entropy) is

    F = (1/T) Σ_t J_tᵀ Q_t J_t,   Q_t = diag p_t − p_t p_tᵀ,

and its nonzero eigenvalues are those of Q^{1/2} G Q^{1/2} / T on the CT × CT Gram G = JJᵀ.  On the
mean-field Gram αM[I_C ⊗ ((κ₁ − κ₂)I + κ₂ 11ᵀ)] (:mod:`derive.fisher.theory`) the rank-C part
αMκ₂ (I_C ⊗ 1)(I_C ⊗ 1)ᵀ has, under Q, the nonzero eigenvalues of αMκ₂ Q̄ with Q̄ = (1/T) Σ_t Q_t
(C × C); first-order perturbation by the rest adds αM(κ₁ − κ₂)/T · vᵀQ̄₂v/μ, Q̄₂ = (1/T) Σ_t Q_t²,
for each eigenpair (μ, v) of Q̄ (derived here; for Q = I it is the squared-loss λ_max):

    λ_i ≈ αM[κ₂ μ_i + (κ₁ − κ₂)/T · v_iᵀQ̄₂v_i / μ_i].

What changes against the squared loss: the C-fold outlier αMκ₂ splits into the eigenvalues of
αMκ₂ Q̄ — dispersed, smaller (μ_i < 1/2), and one of them (Q̄1 = 0: shifting every logit leaves the
softmax unchanged) falls out of the outliers into the O(M/T) bulk, leaving C − 1.  Q̄ depends on the
logits, which at initialisation are Gaussian, f_k(x_t) = g_k + ε_kt with a shared part
g_k ~ N(0, q^L_2) per network and ε_kt ~ N(0, q^L_1 − q^L_2): Q̄ does not self-average, so the
outliers are random from network to network.  :class:`SoftmaxOutliers` gives them for given logits
(``given``: the conditional prediction, checked against actual networks) and their mean over
networks by Monte Carlo over the logits' law (``mean_top``, with its standard error).

>>> from derive.fisher.theory import fisher_spectrum
>>> spec = fisher_spectrum("relu", 2, 0.1, 3, width=500, samples=50, outputs=5, loss="cross_entropy")
>>> top = spec.softmax.mean_top
>>> len(top), bool(top[0] > top[1] > top[2] > top[3] > spec.bulk)
(4, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError

#: networks drawn (logits only) for the Monte Carlo mean of the outliers
MONTE_CARLO_DRAWS = 2000


def _softmax(f: np.ndarray) -> np.ndarray:
    z = np.exp(f - f.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def covariances(f: np.ndarray) -> tuple:
    """(Q̄, Q̄₂): the means over the inputs (axis −2) of Q_t and Q_t² for logits f (…, T, C)."""
    p = _softmax(f)
    C = p.shape[-1]
    Q = p[..., :, :, None] * np.eye(C) - p[..., :, :, None] * p[..., :, None, :]
    return Q.mean(axis=-3), (Q @ Q).mean(axis=-3)


def outliers_given(f: np.ndarray, diagonal: float, off_diagonal: float) -> np.ndarray:
    """The C − 1 predicted outliers (descending) for logits f (…, T, C) and the leading Gram entries
    g₁ = αMκ₁, g₂ = αMκ₂ (module docstring); the C-th eigenvalue of Q̄ is 0 (Q̄1 = 0)."""
    T = f.shape[-2]
    Qbar, Q2 = covariances(f)
    mu, V = np.linalg.eigh(Qbar)
    quad = np.einsum("...ki,...kj,...ji->...i", V, Q2, V)
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = np.where(mu > 1e-15, quad / mu, 0.0)
    top = np.sort(off_diagonal * mu + (diagonal - off_diagonal) / T * correction, axis=-1)[..., ::-1]
    return top[..., :-1]


@dataclass(frozen=True)
class SoftmaxOutliers:
    """The C − 1 outliers of the cross-entropy FIM (the C-th eigenvalue of the squared loss's C-fold
    outlier joins the bulk): ``given(f)`` for logits f (T × C) of one network; ``mean_top`` their
    mean over networks (Monte Carlo over the Gaussian logits, ``draws`` networks, standard errors
    ``mean_top_error``); ``lambda_max`` = mean_top[0]; ``mean`` m_λ = g₁ E tr Q_t / P and
    ``second_moment`` s_λ = [g₁² E tr Q_t² + (T − 1) g₂² E tr Q_tQ_t′]/(TP) (t ≠ t′), their means
    over the same draws; ``logit_variance`` (q^L_1, q^L_2)."""

    diagonal: float
    off_diagonal: float
    logit_variance: tuple
    mean_top: np.ndarray
    mean_top_error: np.ndarray
    mean: float
    second_moment: float
    draws: int

    def given(self, f) -> np.ndarray:
        f = np.asarray(f, dtype=float)
        if f.ndim != 2 or f.shape[1] < 2:
            raise DomainError("logits f must be a (T × C) array with C >= 2 classes")
        return outliers_given(f, self.diagonal, self.off_diagonal)

    @property
    def lambda_max(self) -> float:
        return float(self.mean_top[0])


#: softmax covariances held at once by the Monte Carlo (draws × T × C × C numbers)
CHUNK = 4_000_000


def _draws(rng, count: int, T: int, C: int, q1: float, q2: float):
    """Logits of `count` networks at T inputs: a shared N(0, q₂) part per network and class, and an
    own N(0, q₁ − q₂) part per input."""
    shared = rng.standard_normal((count, 1, C)) * np.sqrt(max(q2, 0.0))
    return shared + rng.standard_normal((count, T, C)) * np.sqrt(max(q1 - q2, 0.0))


def softmax_outliers(arch, samples: int, layers, gram, seed: int = 0) -> SoftmaxOutliers:
    """The :class:`SoftmaxOutliers` of a network (logit law from the last layer's q^L)."""
    C, T = arch.outputs, samples
    if C < 2:
        raise DomainError("the softmax cross-entropy needs outputs >= 2 classes (a single softmax output "
                          "is constant); use loss='mse' for one output")
    q1, q2 = layers[-1].q1, layers[-1].q2
    g1, g2 = gram.diagonal, gram.off_diagonal
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK // (T * C * C))
    tops, traces = [], []
    for start in range(0, MONTE_CARLO_DRAWS, per_chunk):
        f = _draws(rng, min(per_chunk, MONTE_CARLO_DRAWS - start), T, C, q1, q2)
        tops.append(outliers_given(f, g1, g2))
        p = _softmax(f)
        Q = p[..., :, :, None] * np.eye(C) - p[..., :, :, None] * p[..., :, None, :]
        total = Q.sum(axis=1)
        own = np.einsum("ntij,ntji->n", Q, Q) / T
        pairs = (np.einsum("nij,nji->n", total, total) - own * T) / max(T * (T - 1), 1)
        traces.append(np.stack([np.trace(Q, axis1=-2, axis2=-1).mean(axis=1), own, pairs], axis=1))
    top, traces = np.concatenate(tops), np.concatenate(traces).mean(axis=0)
    P = arch.alpha * arch.M**2
    mean = g1 * traces[0] / P
    second = (g1**2 * traces[1] + (T - 1) * g2**2 * traces[2]) / (T * P)
    error = top.std(axis=0, ddof=1) / np.sqrt(MONTE_CARLO_DRAWS)
    return SoftmaxOutliers(g1, g2, (q1, q2), top.mean(axis=0), error, mean, second, MONTE_CARLO_DRAWS)
