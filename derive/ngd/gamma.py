r"""γ: the fraction of the units of a layer whose unit-wise Fisher block sees a given input.

Unit-wise NGD (Karakida & Osawa 2020, their section 5) gives each unit i of layer l its own
block, the incoming weights and bias, whose Jacobian at the N inputs is J_{l,i} = diag(δ_{l,i}) H̃
(δ_{l,i}(n) = ∂f(x_n)/∂u_{l,i}, H̃ the layer's inputs with a column for the bias).  When H̃ has
rank N its pseudo-inverse gives J_{l,i} J_{l,i}⁺ = diag(1[δ_{l,i}(n) ≠ 0]) exactly, so the
function-space operator of unit-wise NGD is diagonal, its n-th entry the number of units with a
nonzero cotangent at x_n (derived here; :mod:`derive.ngd.preconditioner`).  A unit's cotangent
vanishes where φ′(u) = 0, so in the wide limit each layer contributes γ M_l with

    γ = P(φ′(u) ≠ 0) = ∫Dz 1[φ′(√q z) ≠ 0],   u ~ N(0, q):

γ = 1/2 for ReLU (the paper's value), 1 for activations whose derivative vanishes only at
isolated points (tanh, erf, leaky ReLU, ELU, …), and it depends on q where φ′ vanishes on an
interval of finite length (hard tanh: γ = erf(1/√(2q))).

>>> unit_gamma("relu"), unit_gamma("tanh"), unit_gamma("leaky_relu")
(1/2, 1, 1)
>>> unit_gamma("hard_tanh")
erf(sqrt(2)/(2*sqrt(q)))
"""

from __future__ import annotations

import sympy as sp

from derive.activations import activation as as_activation
from derive.errors import DomainError
from derive.piecewise import kinks, to_heaviside
from derive.symbols import q, x


def _interior(a, b):
    if a == -sp.oo:
        return b - 1
    if b == sp.oo:
        return a + 1
    return (a + b) / 2


def _piece(derivative: sp.Expr, point) -> sp.Expr:
    """φ′ on the open interval holding `point`: every step Θ(L(x)) frozen at its value there."""
    return derivative.replace(sp.Heaviside, lambda arg, *rest: sp.Heaviside(arg.subs(x, point)))


def unit_gamma(activation) -> sp.Expr:
    """γ = P(φ′(u) ≠ 0) for u ~ N(0, q), as a SymPy expression (a number, or one in q): the sum of
    the Gaussian masses of the intervals between φ′'s kinks on which φ′ is not identically zero."""
    act = as_activation(activation)
    derivative = act.derivative()
    if derivative.has(sp.DiracDelta):
        raise DomainError(f"{act.name}: φ′ has a Dirac delta (a jump in φ); a network with it cannot be "
                          "trained by gradients, so unit-wise NGD is not defined for it")
    derivative = to_heaviside(derivative, (x,))
    points = kinks(derivative, x)
    if any(not p.is_number for p in points):
        raise DomainError(f"{act.name}: the kinks {points} depend on parameters; give their values")
    edges = (-sp.oo, *points, sp.oo)
    total = sp.Integer(0)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if sp.simplify(_piece(derivative, _interior(a, b))) != 0:
            total += (sp.erf(b / sp.sqrt(2 * q)) - sp.erf(a / sp.sqrt(2 * q))) / 2
    return sp.simplify(total)
