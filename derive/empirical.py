r"""Finite random networks in numpy: the empirical NNGP, NTK and backward factor of a network.

The check of every kernel claim: draw the weights of the actual network (NTK parametrisation,
h = σ_w W x/√M + σ_b b with W_ij, b_i ~ N(0, 1), as neural-tangents' ``stax``), run the inputs
forward and a random read-out g = vᵀf/√M (v ~ N(0, I), one per probe) backward, and form

* the NNGP  K̂ = F Fᵀ/M of the output representation F (n × M);
* the NTK   Θ̂ = Σ_{Dense layers} (σ_w² H Hᵀ/M_in + σ_b²) ∘ (Δ Δᵀ), averaged over probes,
  where H is the layer's input and Δ (n × M_out) the back-propagated read-out at its output:
  the parameter Jacobian, layer by layer, without forming it (E_v of the probe average is
  the per-unit NTK of the output);
* the backward factor χ̂ = ‖∂g/∂x‖² / ‖∂g/∂f‖² per input (at the raw input x of dimension d
  it carries an O(1/d) term, E[(W·x̂)² φ′(h)²] ≠ E φ′(h)², absent for ReLU: use d ≫ 1).

Each seed draws a new network (weights, dropout masks, probes); :class:`Empirical` keeps
the samples, so tolerances follow from their spread (:meth:`Empirical.zscores`).

>>> import numpy as np, derive
>>> net = derive.serial(derive.Dense(2.0, 0.1), "relu", derive.Dense(2.0, 0.1))
>>> emp = simulate(net, np.eye(3), width=500, seeds=range(4))
>>> emp.nngp.shape, emp.ntk.shape, emp.chi.shape
((4, 3, 3), (4, 3, 3), (4, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from derive.errors import DomainError
from derive.gaussian.moments import moments_of
from derive.layers import Dense, Dropout, LayerNorm, Nonlinearity, Repeat, Residual, Serial, as_layer

__all__ = ["Empirical", "simulate"]


@dataclass(frozen=True, eq=False)
class Empirical:
    """Per-seed samples of the empirical kernels: nngp, ntk (S, n, n) and chi (S, n)."""

    nngp: np.ndarray
    ntk: np.ndarray
    chi: np.ndarray
    width: int

    @staticmethod
    def _stats(samples: np.ndarray) -> tuple:
        return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])

    def mean(self, name: str) -> np.ndarray:
        """The mean over seeds of 'nngp', 'ntk' or 'chi'."""
        return self._stats(getattr(self, name))[0]

    def sem(self, name: str) -> np.ndarray:
        """The standard error of that mean (sample standard deviation over seeds / √S)."""
        return self._stats(getattr(self, name))[1]

    def zscores(self, name: str, theory) -> np.ndarray:
        """(mean − theory) / standard error, entry by entry."""
        mean, sem = self._stats(getattr(self, name))
        return (mean - np.asarray(theory, dtype=float)) / np.maximum(sem, 1e-300)


class _Run:
    """One random network: its generator, width, and the NTK accumulated by the backward pass."""

    def __init__(self, rng: np.random.Generator, width: int, n: int):
        self.rng, self.width = rng, width
        self.ntk = np.zeros((n, n))


def simulate(net, X, *, width: int = 1000, seeds=range(8), probes: int = 4) -> Empirical:
    """Empirical NNGP, NTK and χ of `net` at the inputs X (n × d), one network per seed."""
    net = as_layer(net)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise DomainError("X must be a finite 2-D array (n inputs × d features)")
    if not (isinstance(width, int) and width >= 2 and isinstance(probes, int) and probes >= 1):
        raise DomainError("width must be an integer >= 2 and probes an integer >= 1")
    seeds = list(seeds)
    if len(seeds) < 2:
        raise DomainError("give at least two seeds: the spread across seeds is the error estimate")
    nngp, ntk, chi = [], [], []
    for seed in seeds:
        run = _Run(np.random.default_rng(seed), width, X.shape[0])
        out, backward = _forward(net, X, run)
        v = run.rng.standard_normal((probes, 1, out.shape[1])) / np.sqrt(out.shape[1])
        top = np.broadcast_to(v, (probes, *out.shape))
        bottom = backward(top)
        nngp.append(out @ out.T / out.shape[1])
        ntk.append(run.ntk / probes)
        chi.append(np.sum(bottom**2, axis=(0, 2)) / np.sum(top**2, axis=(0, 2)))
    return Empirical(np.array(nngp), np.array(ntk), np.array(chi), width)


@singledispatch
def _forward(layer, H: np.ndarray, run: _Run):
    """(output, backward) of `layer` on the representation H (n × M); backward maps the
    back-propagated signal at the output (probes × n × M_out) to the input and adds the
    layer's parameter contributions to run.ntk."""
    raise DomainError(f"cannot simulate the layer {layer!r}")


@_forward.register
def _(layer: Dense, H, run):
    sw, sb = np.sqrt(float(layer.sigma_w2)), np.sqrt(float(layer.sigma_b2))
    m_in = H.shape[1]
    W = run.rng.standard_normal((run.width, m_in))
    b = run.rng.standard_normal(run.width)
    out = (sw / np.sqrt(m_in)) * (W @ H.T).T + sb * b  # big matrix on the left: fast in OpenBLAS

    def backward(delta):
        G = np.einsum("pia,pja->ij", delta, delta)
        run.ntk += (sw**2 * (H @ H.T) / m_in + sb**2) * G
        flat = delta.reshape(-1, delta.shape[-1])
        return (sw / np.sqrt(m_in)) * (W.T @ flat.T).T.reshape(*delta.shape[:-1], m_in)

    return out, backward


@_forward.register
def _(layer: Nonlinearity, H, run):
    moments = moments_of(layer.activation)
    slope = moments.dphi(H)
    return moments.phi(H), lambda delta: delta * slope


@_forward.register
def _(layer: Dropout, H, run):
    p = float(layer.keep)
    mask = (run.rng.random(H.shape) < p) / p
    return H * mask, lambda delta: delta * mask


@_forward.register
def _(layer: LayerNorm, H, run):
    centred = H - H.mean(axis=1, keepdims=True)
    sigma = np.sqrt(np.mean(centred**2, axis=1, keepdims=True))
    Y = centred / sigma

    def backward(delta):
        return (delta - delta.mean(axis=-1, keepdims=True)
                - Y * np.mean(delta * Y, axis=-1, keepdims=True)) / sigma

    return Y, backward


@_forward.register
def _(layer: Residual, H, run):
    if layer.elementwise is not None:
        return _forward(Nonlinearity(layer.elementwise), H, run)
    a = float(layer.alpha)
    B, branch_backward = _forward(layer.branch, H, run)
    if B.shape != H.shape:
        raise DomainError(f"Residual: the branch maps width {H.shape[1]} to {B.shape[1]}; the skip "
                          "connection needs them equal (a residual block on the raw inputs needs d = width)")
    return H + a * B, lambda delta: delta + branch_backward(a * delta)


@_forward.register
def _(layer: Serial, H, run):
    backs = []
    for inner in layer.layers:
        H, back = _forward(inner, H, run)
        backs.append(back)

    def backward(delta):
        for back in reversed(backs):
            delta = back(delta)
        return delta

    return H, backward


@_forward.register
def _(layer: Repeat, H, run):
    return _forward(Serial((layer.block,) * layer.n), H, run)
