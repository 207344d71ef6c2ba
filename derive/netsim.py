"""Simulations of actual finite random networks, to check mean-field predictions against.

A network h^1 = W^1 x + b^1, h^{l+1} = W^{l+1} φ(h^l) + b^{l+1} with W_ij ~ N(0, σ_w²/M_in),
b_i ~ N(0, σ_b²) and widths (M_0, M_1, ..., M_L) is drawn once per seed.  Two inputs with
‖x‖²/M_0 = `norm2` and correlation `c_in` go forward; a N(0, 1) vector, the gradient of a
loss with respect to h^L, goes backward with the same weights:
δ^l = φ′(h^l) ⊙ (W^{l+1})ᵀ δ^{l+1}.  Per seed and layer the simulation records

* q̂^l = ‖h^l‖²/M_l and ĉ^l = ⟨h^l_a, h^l_b⟩ / (‖h^l_a‖ ‖h^l_b‖);
* (‖δ^l‖²/M_l) / (‖δ^L‖²/M_L), the per-unit squared gradient relative to the last layer;
* ‖∇W^l‖² / ‖∇W^L‖² with ‖∇W^l‖² = ‖δ^l‖² ‖φ(h^{l-1})‖² (NaN for l = 1).

Seeds give independent networks, so the spread over seeds estimates the statistical error
of each mean (:meth:`Simulation.stderr`).

>>> sim = simulate("tanh", 1.5, 0.05, [200] * 4, seeds=3)
>>> sim.q.shape
(3, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.activations import activation as make_activation
from derive.errors import DomainError
from derive.symbols import x as X


@dataclass(frozen=True)
class Simulation:
    """Per-seed, per-layer statistics of simulated networks: arrays of shape (seeds, L)."""

    q: np.ndarray
    c: np.ndarray
    delta_sq: np.ndarray
    weight_grad_sq: np.ndarray

    def mean(self, name: str) -> np.ndarray:
        return getattr(self, name).mean(axis=0)

    def stderr(self, name: str) -> np.ndarray:
        """The standard error of the mean over seeds (independent networks)."""
        values = getattr(self, name)
        return values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])

    def deviation(self, name: str, prediction, layers=slice(None)) -> float:
        """max over `layers` of |mean − prediction| / standard error (a studentised deviation)."""
        prediction = np.broadcast_to(np.asarray(prediction, dtype=float), self.mean(name).shape)
        with np.errstate(invalid="ignore", divide="ignore"):  # layers with no spread (the last ratio)
            z = np.abs(self.mean(name) - prediction) / self.stderr(name)
        return float(np.max(z[layers]))


def _numpy(expr):
    return sp.lambdify(X, expr, "numpy")


def simulate(activation, sigma_w2: float, sigma_b2: float, widths, *, c_in: float = 0.5,
             norm2: float = 1.0, seeds: int = 10, seed: int = 0) -> Simulation:
    """Simulate `seeds` random networks of the given widths (M_0, ..., M_L); see the module text."""
    act = make_activation(activation)
    widths = [int(m) for m in widths]
    if len(widths) < 2 or min(widths) < 2 or seeds < 2:
        raise DomainError("simulate needs widths (M_0, ..., M_L) with L >= 1, every M >= 2, and seeds >= 2")
    if sigma_w2 < 0 or sigma_b2 < 0 or norm2 <= 0 or not -1 <= c_in <= 1:
        raise DomainError("simulate needs sigma_w2, sigma_b2 >= 0, norm2 > 0 and c_in in [-1, 1]")
    phi, dphi = _numpy(act(X)), _numpy(act.derivative(X))
    depth = len(widths) - 1
    stats = {k: np.empty((seeds, depth)) for k in ("q", "c", "delta_sq", "weight_grad_sq")}
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        a, b = rng.standard_normal((2, widths[0]))
        a /= np.linalg.norm(a)
        b -= (b @ a) * a
        b /= np.linalg.norm(b)
        inputs = [np.sqrt(widths[0] * norm2) * np.stack([a, c_in * a + np.sqrt(1 - c_in**2) * b], axis=1)]
        hs, weights = [], []
        for l in range(1, depth + 1):
            W = rng.standard_normal((widths[l], widths[l - 1]), dtype=np.float32)
            W *= np.float32(np.sqrt(sigma_w2 / widths[l - 1]))
            h = W @ inputs[-1] + rng.standard_normal((widths[l], 1)) * np.sqrt(sigma_b2)
            hs.append(h)
            weights.append(W)
            inputs.append(np.broadcast_to(phi(h), h.shape))
        deltas = [rng.standard_normal(widths[-1])]
        for l in range(depth - 1, 0, -1):
            deltas.insert(0, np.broadcast_to(dphi(hs[l - 1][:, 0]), widths[l]) * (weights[l].T @ deltas[0]))
        for l in range(depth):
            ha, hb = hs[l][:, 0], hs[l][:, 1]
            stats["q"][s, l] = ha @ ha / widths[l + 1]
            stats["c"][s, l] = ha @ hb / np.sqrt((ha @ ha) * (hb @ hb))
            stats["delta_sq"][s, l] = deltas[l] @ deltas[l] / widths[l + 1]
            prev = inputs[l][:, 0]
            stats["weight_grad_sq"][s, l] = (deltas[l] @ deltas[l]) * (prev @ prev) if l else np.nan
        stats["delta_sq"][s] /= stats["delta_sq"][s, -1]
        stats["weight_grad_sq"][s] /= stats["weight_grad_sq"][s, -1]
    return Simulation(**stats)
