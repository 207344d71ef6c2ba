"""The architecture algebra: layers that map a kernel state to a kernel state.

A network is built from small immutable layers, as in neural-tangents' ``stax``
(Novak et al. 2020), but each layer here has a readable repr, equality and
LaTeX, and maps a *symbolic* :class:`KernelState`: the second-order statistics
of two inputs' representations (NNGP kernel entries k, NTK entries t and the
backward factor chi), each a SymPy expression.

Conventions (REFERENCES.md §1-2, NTK parametrisation of ``stax``):

* ``Dense(σ_w², σ_b²)``: k′ = σ_w² k + σ_b², t′ = σ_w² t + k′, χ′ = σ_w² χ;
* an activation φ: k′₁₁ = E φ(u)², k′₁₂ = E φ(u)φ(v), t′ = t · E φ′φ′, χ′ = χ E φ′(u)²,
  with (u, v) ~ N(0, [[k₁₁, k₁₂], [k₁₂, k₂₂]]).

A mean-field block is ``serial(act, Dense(σ_w², σ_b²))``: it maps the
pre-activation variance q to σ_w² ∫Dz φ(√q z)² + σ_b² (Poole et al. 2016).

>>> import derive
>>> from derive.symbols import q
>>> block = serial(derive.activation("relu"), Dense(2, 0))
>>> block
serial(relu, Dense(2, 0))
>>> block.forward(KernelState.single(q)).k11
q
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import sympy as sp

from derive.activations import Activation
from derive.errors import DomainError
from derive.gaussian import expect, expect2
from derive.parsing import as_expr
from derive.symbols import c, q1, q2, x, y


@dataclass(frozen=True)
class KernelState:
    """Statistics of two inputs' representations at one layer.

    k11, k22, k12: the NNGP kernel (per-unit second moments and cross moment);
    t11, t22, t12: the NTK entries; chi: the backward factor, by which the squared
    gradient norm per unit is multiplied from here back to the input.
    """

    k11: sp.Expr
    k22: sp.Expr
    k12: sp.Expr
    t11: sp.Expr = sp.S.Zero
    t22: sp.Expr = sp.S.Zero
    t12: sp.Expr = sp.S.Zero
    chi: sp.Expr = sp.S.One

    @classmethod
    def single(cls, q) -> KernelState:
        """The state of one input with variance q (both entries equal, c = 1)."""
        q = as_expr(q)
        return cls(q, q, q)

    @classmethod
    def pair(cls, q11=q1, q22=q2, corr=c) -> KernelState:
        """Two inputs with variances q11, q22 and correlation coefficient corr."""
        q11, q22, corr = map(as_expr, (q11, q22, corr))
        return cls(q11, q22, corr * sp.sqrt(q11 * q22))

    @property
    def c(self) -> sp.Expr:
        """The correlation coefficient k12 / sqrt(k11 k22)."""
        return self.k12 / sp.sqrt(self.k11 * self.k22)

    def map(self, function) -> KernelState:
        """A state whose every entry is function(entry)."""
        return replace(self, **{f.name: function(getattr(self, f.name)) for f in fields(self)})


@dataclass(frozen=True)
class Dense:
    """A fully connected layer, W_ij ~ N(0, σ_w²/M), b_i ~ N(0, σ_b²), NTK parametrisation."""

    sigma_w2: sp.Expr
    sigma_b2: sp.Expr = sp.S.Zero

    def __post_init__(self):
        for name in ("sigma_w2", "sigma_b2"):
            value = as_expr(getattr(self, name))
            if value.is_negative or (value.is_number and not value.is_finite):
                raise DomainError(f"Dense: {name} = {value} must be a finite variance >= 0")
            object.__setattr__(self, name, value)

    def forward(self, s: KernelState) -> KernelState:
        w, b = self.sigma_w2, self.sigma_b2
        k11, k22, k12 = (w * k + b for k in (s.k11, s.k22, s.k12))
        return KernelState(k11, k22, k12, w * s.t11 + k11, w * s.t22 + k22, w * s.t12 + k12,
                           w * s.chi)

    def __repr__(self) -> str:
        return f"Dense({self.sigma_w2}, {self.sigma_b2})"

    def _latex(self, printer) -> str:
        return rf"\mathrm{{Dense}}({printer._print(self.sigma_w2)}, {printer._print(self.sigma_b2)})"


@dataclass(frozen=True)
class Nonlinearity:
    """The layer that applies an :class:`~derive.activations.Activation` elementwise."""

    activation: Activation

    def forward(self, s: KernelState) -> KernelState:
        phi, dphi = self.activation(x), self.activation.derivative(x)
        phi_y, dphi_y = self.activation(y), self.activation.derivative(y)
        corr = s.c
        dd11 = expect(dphi**2, x, s.k11)
        return KernelState(
            k11=expect(phi**2, x, s.k11),
            k22=expect(phi_y**2, y, s.k22),
            k12=expect2(phi * phi_y, x, y, s.k11, s.k22, corr),
            t11=s.t11 * dd11,
            t22=s.t22 * expect(dphi_y**2, y, s.k22),
            t12=s.t12 * expect2(dphi * dphi_y, x, y, s.k11, s.k22, corr),
            chi=s.chi * dd11,
        )

    def __repr__(self) -> str:
        return self.activation.name

    def _latex(self, printer) -> str:
        return self.activation.latex_name


def as_layer(obj):
    """An object usable as a layer: layers pass through, activations are wrapped."""
    if isinstance(obj, Activation):
        return Nonlinearity(obj)
    if hasattr(obj, "forward"):
        return obj
    raise DomainError(f"{obj!r} is not a layer: use Dense, an activation, serial(...), repeat(...)")


@dataclass(frozen=True)
class Serial:
    """Layers applied one after another."""

    layers: tuple

    def forward(self, s: KernelState) -> KernelState:
        for layer in self.layers:
            s = layer.forward(s)
        return s

    def __repr__(self) -> str:
        return f"serial({', '.join(map(repr, self.layers))})"

    def _latex(self, printer) -> str:
        return r" \circ ".join(printer._print(layer) for layer in reversed(self.layers))


@dataclass(frozen=True)
class Repeat:
    """A layer or block applied n times."""

    block: object
    n: int

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 0:
            raise DomainError(f"repeat: n = {self.n!r} must be a non-negative integer")

    def forward(self, s: KernelState) -> KernelState:
        for _ in range(self.n):
            s = self.block.forward(s)
        return s

    def __repr__(self) -> str:
        return f"repeat({self.block!r}, {self.n})"

    def _latex(self, printer) -> str:
        return rf"\left({printer._print(self.block)}\right)^{{\circ {self.n}}}"


def serial(*layers) -> Serial:
    """The network that applies `layers` in order (activations are layers)."""
    return Serial(tuple(as_layer(layer) for layer in layers))


def repeat(layer, n: int) -> Repeat:
    """`layer` (or a block made by :func:`serial`) applied `n` times."""
    return Repeat(as_layer(layer), n)
