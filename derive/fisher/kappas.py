"""κ₁, κ₂ and the leading Fisher Gram entries from the per-layer order parameters.

Karakida, Akaho & Amari (2019): with the forward order parameters q̂₁, q̂₂ of each layer's input
and the backward ones q̃₁, q̃₂ of its output (:mod:`derive.fisher.order`),

    κ₁ = Σ_l (α_{l−1}/α) q̃₁^l q̂₁^{l−1},   κ₂ = Σ_l (α_{l−1}/α) q̃₂^l q̂₂^{l−1},

and one output's block of the Fisher Gram J Jᵀ has the leading entries αMκ₁ (one input) and αMκ₂
(two inputs) in the standard parametrisation, the NTK entries Θ₁, Θ₂ in the NTK parametrisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.fisher.architecture import Architecture
from derive.layers import Parametrisation


@dataclass(frozen=True)
class Gram:
    """The leading entries of one output's block of the Fisher Gram J Jᵀ: diagonal (one input)
    and off-diagonal (two inputs)."""

    diagonal: float
    off_diagonal: float


def gram_entries(arch: Architecture, layers: tuple) -> Gram:
    """αMκ₁, αMκ₂ (standard parametrisation) or Θ₁, Θ₂ (NTK parametrisation)."""
    if arch.parametrisation is Parametrisation.STANDARD:
        entries = [sum(arch.M * o.ratio * o.q_tilde1 * o.q_hat1 for o in layers),
                   sum(arch.M * o.ratio * o.q_tilde2 * o.q_hat2 for o in layers)]
    else:
        entries = [sum((o.sigma_w2 * o.q_hat1 + o.sigma_b2) * o.q_tilde1 for o in layers),
                   sum((o.sigma_w2 * o.q_hat2 + o.sigma_b2) * o.q_tilde2 for o in layers)]
    return Gram(*entries)


def kappas(arch: Architecture, layers: tuple) -> tuple:
    """(κ₁, κ₂) of Karakida et al. (2019)."""
    a = arch.alpha
    return (sum(o.ratio / a * o.q_tilde1 * o.q_hat1 for o in layers),
            sum(o.ratio / a * o.q_tilde2 * o.q_hat2 for o in layers))


