r"""Limiting spectra of the conjugate kernel of deep networks in the linear-width regime
(Fan & Wang, NeurIPS 2020, Theorem 3.4).

Model (Fan & Wang 2020, sec. 2): X_ℓ = σ(W_ℓ X_{ℓ−1})/√d_ℓ, W_ℓ ∈ R^{d_ℓ×d_{ℓ−1}} with i.i.d.
N(0, 1) entries, inputs X_0 ∈ R^{d_0×n} with (approximately orthogonal) unit columns; ratios
γ_ℓ = n/d_ℓ.  For σ normalised by E σ(ξ) = 0, E σ(ξ)² = 1 (ξ ~ N(0, 1)), with b_σ = E σ′(ξ),
the spectrum μ_ℓ of the CK X_ℓᵀX_ℓ obeys the Marchenko–Pastur map

    μ_ℓ = MP_{γ_ℓ} ⊠ ((1 − b_σ²) + b_σ² μ_{ℓ−1}),   μ_0 = the law of X_0ᵀX_0,

with MP_γ = :class:`~derive.freeprob.laws.MarchenkoPastur` (ratio γ, variance 1): our convention
G(z) = ∫ρ/(z − t); Fan & Wang's Stieltjes transform m(z) = ∫1/(x − z) is −G.  An activation that
is not normalised is refused with the constants that would normalise it.  A transcendental b_σ²
(e.g. π/(2(π − 1)) for the normalised ReLU) enters as the exact rational of its 30-digit value.
(The NTK spectrum of their Theorem 3.7 is not implemented.)

>>> import derive
>>> ck = derive.ck_spectrum("x", derive.MarchenkoPastur("1/2"), ["1/2"])   # linear: b = 1
>>> ck.moments(2)
(1, 2)
"""

from __future__ import annotations

import sympy as sp

from derive.activations import activation as make_activation
from derive.errors import DomainError
from derive.freeprob.convolution import affine, free_product
from derive.freeprob.laws import MarchenkoPastur, SpectralLaw, exact
from derive.gaussian import expect
from derive.symbols import x as X


def _gaussian_constants(act) -> tuple:
    """(E σ, E σ², b_σ = E σ′, a_σ = E σ′²) at ξ ~ N(0, 1), as exact SymPy expressions."""
    return tuple(sp.simplify(expect(f, X, 1)) for f in (act.expr, act.expr**2, act.derivative(X),
                                                          act.derivative(X) ** 2))


def _normalised(act) -> tuple:
    mean, second, b, a = _gaussian_constants(act)
    variance = sp.simplify(second - mean**2)
    if abs(complex(sp.N(mean, 20))) > 1e-15 or abs(complex(sp.N(second, 20)) - 1) > 1e-15:
        raise DomainError(
            f"Fan & Wang's spectra need E σ(ξ) = 0 and E σ(ξ)² = 1 (ξ ~ N(0, 1)); {act.name} has "
            f"E σ = {sp.N(mean, 12)}, E σ² = {sp.N(second, 12)}: use the activation "
            f"(σ(x) − {sp.N(mean, 15)})/{sp.N(sp.sqrt(variance), 15)}")
    return b, a


def ck_spectrum(activation, input_law: SpectralLaw, ratios) -> SpectralLaw:
    """The limiting spectrum of the conjugate kernel X_Lᵀ X_L (Fan & Wang 2020, Theorem 3.4)."""
    act = make_activation(activation)
    if not isinstance(input_law, SpectralLaw):
        raise DomainError("input_law must be a spectral law, e.g. derive.MarchenkoPastur(n/d0)")
    ratios = [exact(r, "ratio", positive=True) for r in ratios]
    if not ratios:
        raise DomainError("ratios = [γ_1, ..., γ_L] needs at least one layer")
    b, _ = _normalised(act)
    b2 = sp.nsimplify(b**2)
    if not b2.is_Rational:  # transcendental constants (π, erf(…)) make the elimination slow:
        b2 = sp.Rational(sp.N(b2, 30))  # their 30-digit rational value is used throughout
    law = input_law
    for gamma in ratios:
        law = free_product(MarchenkoPastur(gamma), affine(law, 1 - b2, b2))
    return law
