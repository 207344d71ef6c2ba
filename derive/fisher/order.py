r"""The forward and backward order parameters of every weight layer, read from the layer algebra.

Karakida, Akaho & Amari (AISTATS 2019, arXiv 1806.01316; their order parameters): with q̂⁰₁ = 1,
q̂⁰₂ = 0 (Gaussian inputs),

    q^l_{1,2} = σ_w² q̂^{l−1}_{1,2} + σ_b²,
    q̂^l_1 = ∫Du φ(√q^l_1 u)²,   q̂^l_2 = E φ(u)φ(v),  (u, v) ~ N(0, [[q^l_1, q^l_2], [q^l_2, q^l_1]]),
    q̃^l_1 = σ_w² q̃^{l+1}_1 ∫Du φ′(√q^l_1 u)²,   q̃^l_2 = σ_w² q̃^{l+1}_2 E φ′(u)φ′(v),   q̃^L = 1.

These are the fields of the engine's :class:`~derive.kernel_state.KernelState` along the trace of
the network: for the l-th Dense step, q̂^{l−1} is the state *before* it (k11, k12), q^l the state
after it, and q̃^l = χ_out / χ_after (chi11, chi12: the backward factors accumulated from the
input), so any block of the layer algebra (LayerNorm, other activations) gives its order
parameters through its own layer formulas.  Numbers come from the float64 algebra of
:mod:`derive.ntk` on the Gram of two inputs with variance 1 and correlation `corr` (0 for
independent Gaussian inputs), or from its mpmath algebra at ``dps`` digits.

>>> from derive.fisher.architecture import architecture
>>> layers = order_parameters(architecture("relu", 2, 0, 3, width=10))
>>> [(round(o.q_hat1, 12), round(o.q_tilde1, 12)) for o in layers]  # critical ReLU: q̂ = q̃ = 1
[(1.0, 1.0), (1.0, 1.0), (1.0, 1.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp
import numpy as np

from derive.errors import DomainError, NoFixedPointError, NumericError
from derive.kernel_state import KernelState
from derive.layers import Dense


@dataclass(frozen=True)
class LayerOrder:
    """The order parameters of weight layer l (1 ≤ l ≤ L): of its input h^{l−1} (q̂, the
    width ratio α_{l−1}), of its pre-activations u^l (q) and of the gradient at u^l (q̃)."""

    layer: int
    ratio: float
    q_hat1: float
    q_hat2: float
    q1: float
    q2: float
    q_tilde1: float
    q_tilde2: float
    sigma_w2: float
    sigma_b2: float


def _pair(corr: float, variance: float) -> np.ndarray:
    """Two inputs of per-unit variance v and correlation c (X Xᵀ/d = v [[1, c], [c, 1]])."""
    return np.sqrt(2.0 * variance) * np.array([[1.0, 0.0], [corr, np.sqrt(1.0 - corr * corr)]])


def _mp_trace(net, corr, variance, dps: int):
    from derive.ntk import MpAlgebra

    algebra = MpAlgebra(dps)
    with mp.workdps(algebra.prec):
        one, zero, v = mp.mpf(1), mp.mpf(0), mp.mpf(variance)
        state = KernelState(k11=v, k22=v, k12=v * mp.mpf(corr), t11=zero, t22=zero, t12=zero,
                            chi11=one, chi22=one, chi12=one)
        return net.trace(state, algebra)


def _entries(state: KernelState, field: str):
    """(the entry of input 1, the entry of the pair) of a numeric state's field 11/12."""
    single, pair = getattr(state, field + "11"), getattr(state, field + "12")
    if isinstance(single, np.ndarray):
        return float(single[0, 0]), float(pair[0, 1])
    return single, pair


def order_parameters(arch, corr=0.0, dps: int | None = None, variance=1.0) -> tuple:
    """The :class:`LayerOrder` of every weight layer of the :class:`~derive.fisher.architecture.Architecture`
    `arch` for two inputs of per-unit variance `variance` (q̂⁰₁; 1 for N(0, I) inputs) and
    correlation `corr` (floats; mpmath numbers at `dps` digits)."""
    if not -1 <= float(corr) <= 1:
        raise DomainError(f"corr = {corr} must lie in [-1, 1]")
    if not float(variance) > 0:
        raise DomainError(f"the input variance {variance} must be positive")
    try:
        if dps is None:
            trace = arch.net.kernels(_pair(float(corr), float(variance)), trace=True).trace
        else:
            trace = _mp_trace(arch.net, corr, variance, dps)
    except NumericError as exc:
        raise NoFixedPointError(f"{exc}; the order parameters of this network are not finite") from None
    with mp.workdps(dps + 10 if dps else mp.mp.dps):  # the ratios χ_out/χ at the trace's precision
        return _layers(arch, trace)


def _layers(arch, trace) -> tuple:
    steps = trace.of(Dense)
    out_chi = _entries(trace.output, "chi")
    layers = []
    for index, step in enumerate(steps):
        before, after = _entries(step.before, "k"), _entries(step.after, "k")
        chi = _entries(step.after, "chi")
        tilde = tuple(out / own if own else mp.nan for out, own in zip(out_chi, chi, strict=True))
        values = (*before, *after, *tilde)
        if not all(mp.isfinite(v) for v in values) or before[0] <= 0 or tilde[0] <= 0:
            raise NoFixedPointError(
                f"the order parameters are not finite and positive at weight layer {index + 1} "
                f"(q̂ = {before[0]}, q = {after[0]}, q̃ = {tilde[0]}): the variances or gradients "
                "vanish or grow without bound through this network; choose sigma_w2, sigma_b2 nearer "
                "the critical line or fewer layers")
        layers.append(LayerOrder(index + 1, arch.ratios[index], *values,
                                 float(step.layer.sigma_w2), float(step.layer.sigma_b2)))
    return tuple(layers)
