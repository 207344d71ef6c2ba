r"""Where NGD takes the outputs: on the training set and, in the wide limit, on unseen inputs.

On the training set the isotropic condition J G⁺ Jᵀ/N = α I gives f_t − y = (1 − αη)^t (f_0 − y)
(Karakida & Osawa 2020, their Theorem 1; :attr:`derive.ngd.NGDAlpha.dynamics`).  On other inputs
x* the outputs move by −η J(x*) G⁺ Jᵀ r_s / N per step, so after t steps

    f_t(x*) = f_0(x*) − (1 − (1 − αη)^t)/α · K(x*, X) (f_0(X) − y),   K = J(x*) G⁺ Jᵀ / N,

and at convergence f_∞(x*) = f_0(x*) − K(x*, X) r_0/α: a kernel regression whose kernel depends on
the approximation, although the training dynamics do not (the slide "近似自然勾配の違い" of the
talk).  In the wide limit K follows from the per-layer kernels of the layer algebra (the NNGP-like
input kernel A_l = a M_{l−1} q̂^{l−1} + b of layer l and its backward kernel B_l = q̃^l,
:func:`derive.fisher.theory.mean_field_layers`), with Θ_l = A_l ∘ B_l (derived here from
:mod:`derive.ngd.preconditioner`):

* exact: K/α = Θ(x*, X) Θ⁻¹ — NTK kernel regression;
* block diagonal: K/α = (1/L) Σ_l Θ_l(x*, X) Θ_l⁻¹ — the mean of the per-layer regressions;
* block tri-diagonal: K = Σ_l (T⁻¹1)_l Θ_l(x*, X) Θ_l⁻¹ for invertible T, and in general
  (1ᵀ ⊗ I) K̂(x*, X) S⁻¹ (S (T ⊗ I) S)⁺ S (1 ⊗ I), S = diag(Θ_l)^{1/2};
* K-FAC: K = Σ_l s_l N (A_l(x*, X) A_l⁻¹) ∘ (B_l(x*, X) B_l⁺) (s_L = N in the paper's convention);
* unit-wise: no kernel limit is derived.  Each unit contributes diag(δ_i(x*)) P diag(1/δ_i) on
  its active inputs, ratios of Gaussian cotangents that are heavy-tailed (Cauchy-like), so the
  sum over units has no law-of-large-numbers limit; only the network's own linearisation is given.

The wide-limit kernels are passed to the same preconditioners as an actual network's Jacobian,
written as features: A = F Fᵀ, B = G Gᵀ (eigen-decompositions), so one set of formulas serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.fisher.architecture import architecture
from derive.fisher.exact import LayerFactors
from derive.fisher.theory import mean_field_layers
from derive.layers import Parametrisation
from derive.ngd.methods import check_outputs
from derive.ngd.methods import convention as pick_convention
from derive.ngd.methods import method as pick_method
from derive.ngd.preconditioner import EPS, preconditioner


def _features(K: np.ndarray) -> np.ndarray:
    """F with F Fᵀ = K for a positive semi-definite K, one column per eigenvalue above the roundoff
    (so that the backward kernel of the output, all ones, has one feature, like the network's)."""
    w, V = np.linalg.eigh((K + K.T) / 2)
    keep = w > 10 * K.shape[0] * EPS * w[-1]
    return V[:, keep] * np.sqrt(w[keep])


def limit_factors(arch, X) -> tuple:
    """The wide-limit kernels of every layer on the rows of X as :class:`LayerFactors` (features
    F of A_l, and per output k the features of B_l in the k-th block, so that outputs do not mix)."""
    C, n = arch.outputs, X.shape[0]
    out = []
    for width, layer, q_hat, q_tilde in mean_field_layers(arch, X):
        if arch.parametrisation is Parametrisation.STANDARD:
            A = width * q_hat + 1.0
        else:
            A = float(layer.sigma_w2) * q_hat + float(layer.sigma_b2)
        G = _features(q_tilde)
        m = G.shape[1]
        D = np.zeros((C, n, C * m))
        for k in range(C):
            D[k, :, k * m:(k + 1) * m] = G
        out.append(LayerFactors(layer, _features(A), D, 1.0, 0.0))
    return tuple(out)


def _rows(factors, rows) -> tuple:
    return tuple(LayerFactors(f.layer, f.H[rows], f.D[:, rows], f.a, f.b) for f in factors)


@dataclass(frozen=True, eq=False)
class KernelPrediction:
    """The wide-limit prediction of NGD with one approximation: ``alpha`` (the limit operator's mean
    eigenvalue on the training set), ``change`` = K(x*, X) r_0 (N* × C) and the outputs at
    the test inputs after t steps of size η, :meth:`outputs`, or at convergence, ``converged``."""

    method: str
    alpha: float
    change: np.ndarray
    start: np.ndarray

    def outputs(self, t: int, eta: float) -> np.ndarray:
        return self.start - (1 - (1 - self.alpha * eta) ** t) / self.alpha * self.change

    @property
    def converged(self) -> np.ndarray:
        return self.start - self.change / self.alpha


def kernel_prediction(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width, X, residual, X_test,
                      start=None, method, outputs=1, convention="paper",
                      parametrisation="standard") -> KernelPrediction:
    """The wide-limit :class:`KernelPrediction` of `method` at the rows of X_test after training on X
    (N × M_0) from the residual f_0(X) − y (N × C); `start` = f_0(X_test) (zeros: the mean over
    initialisations).  The network is given as for :func:`derive.fisher.fisher_spectrum`."""
    name, conv = pick_method(method), pick_convention(convention)
    check_outputs(name, outputs)
    if name == "unit_wise":
        raise DomainError("unit-wise NGD has no wide-limit kernel on unseen inputs (its per-unit terms are "
                          "ratios of Gaussian cotangents, heavy-tailed; see derive.ngd.dynamics): use the "
                          "network's own linearisation, derive.ngd.train(...).linearised_test")
    arch = architecture(activation, sigma_w2, sigma_b2, depth, width=width, outputs=outputs,
                        parametrisation=parametrisation)
    X, X_test = np.asarray(X, dtype=float), np.asarray(X_test, dtype=float)
    if np.unique(X, axis=0).shape[0] < X.shape[0]:
        raise DomainError(f"X has repeated rows ({X.shape[0] - np.unique(X, axis=0).shape[0]} of "
                          f"{X.shape[0]}), so the training kernel is singular and the regression has no "
                          "unique solution: remove the repeated inputs")
    residual = np.asarray(residual, dtype=float).reshape(X.shape[0], outputs)
    factors = limit_factors(arch, np.vstack([X, X_test]))
    train, test = _rows(factors, slice(0, X.shape[0])), _rows(factors, slice(X.shape[0], None))
    pre = preconditioner(name, train, conv)
    alpha = float(np.trace(pre.operator())) / (X.shape[0] * outputs)
    change = pre.change(pre.cotangents(residual.T), at=test)[0].T
    start = np.zeros_like(change) if start is None else np.asarray(start, dtype=float).reshape(change.shape)
    return KernelPrediction(name, alpha, change, start)
