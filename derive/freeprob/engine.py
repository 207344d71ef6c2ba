"""The few calls `derive.freeprob` makes into the mean-field engine, in one place (so that the
engine underneath can be replaced): Gaussian moments of φ′², the fixed point q* and the critical
point.

>>> from derive.freeprob.engine import derivative_moment
>>> derivative_moment("relu", 1, 2)
1/2
"""

from __future__ import annotations

import math
from functools import lru_cache

import sympy as sp

from derive.activations import activation as make_activation
from derive.errors import NoFixedPointError
from derive.symbols import x


def derivative_moment(act, q, k: int) -> sp.Expr:
    """μ_k = E[φ′(h)^{2k}], h ~ N(0, q): a closed form or an unevaluated GaussianExpectation."""
    from derive.gaussian import expect

    act = make_activation(act)
    return expect(act.derivative(x) ** (2 * k), x, q)


def q_star(act, sigma_w2: float, sigma_b2: float) -> float:
    """The fixed point q* of the variance map (from q⁰ = 1 where every q is fixed)."""
    from derive.meanfield import MeanField

    value = float(MeanField(make_activation(act)).q_star(float(sigma_w2), float(sigma_b2), q0=1.0))
    if not (math.isfinite(value) and value > 0):
        raise NoFixedPointError(
            f"the variance map of {make_activation(act).name} at sigma_w2={sigma_w2}, sigma_b2={sigma_b2} "
            f"has no finite positive fixed point (q -> {value}): lower sigma_w2 (ordered side) or "
            "pass q_star= explicitly")
    return value


@lru_cache(maxsize=256)
def _sign_only_mean(act):
    """E φ′(h)² = (φ′(0⁺)² + φ′(0⁻)²)/2 when φ′² is constant on each side of 0 (φ positively
    homogeneous; then it does not depend on q), else None (derived once per activation)."""
    if not set(act.kinks) <= {0}:
        return None
    t = sp.Symbol("t", positive=True)
    d2 = act.derivative(x) ** 2
    sides = [sp.simplify(d2.subs(x, sign * t)) for sign in (1, -1)]
    if any(side.free_symbols or side.has(sp.DiracDelta) for side in sides):
        return None
    return (sides[0] + sides[1]) / 2


def critical_point(act, sigma_b2: float) -> tuple:
    """(σ_w², q*) on the critical line χ₁ = σ_w² E φ′(h)² = 1 at the given σ_b².

    When φ′² depends on the sign of h only (positively homogeneous φ: linear, ReLU, leaky ReLU;
    E φ′(h)² does not depend on q) the critical point is exact, σ_w² = 1/E φ′², and at
    σ_b² = 0 every q is fixed (E φ(h)² = q E φ′(h)² by Euler's identity φ = hφ′): the law of D²
    does not depend on q, and q* = 1 is reported; with σ_b² > 0 the variance grows without bound
    (q^{l+1} = q^l + σ_b²).  Otherwise the mean-field engine's critical point is used, and q* = 0
    (the marginal point) is replaced by the fixed point reached from q⁰ = 1.
    """
    act = make_activation(act)
    mu1 = _sign_only_mean(act)
    if mu1 is not None:
        if sigma_b2 != 0:
            raise NoFixedPointError(
                f"{act.name} is positively homogeneous: on its critical line σ_w² = {1 / mu1} the "
                f"variance grows by σ_b² = {sigma_b2} per layer and has no fixed point; use sigma_b2=0")
        return 1 / mu1, sp.Integer(1)
    from derive.meanfield import MeanField  # only here: the engine's import is heavy

    point = MeanField(act).critical_point(float(sigma_b2))
    qs = float(point.q_star)
    if not math.isfinite(float(point.sigma_w2)):
        raise NoFixedPointError(f"{act.name} has no critical point (χ₁ = 1 with a finite fixed point) at "
                                f"sigma_b2={sigma_b2}: choose another sigma_b2 or pass sigma_w2 and q_star")
    if qs == 0:
        qs = q_star(act, point.sigma_w2, sigma_b2)
    return float(point.sigma_w2), qs
