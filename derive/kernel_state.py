r"""The state the layer algebra maps, the algebras that evaluate it, and the per-layer trace.

A :class:`KernelState` holds the second-order statistics of two inputs' representations at one
layer of a wide random network, with named fields (change them with ``dataclasses.replace``):

* ``k11, k22, k12`` — the NNGP kernel: per-unit second moments of each input and their cross
  moment (q₁, q₂, q₁₂ of mean-field theory);
* ``t11, t22, t12`` — the NTK entries;
* ``chi11, chi22, chi12`` — the backward factors: by how much a back-propagated squared
  gradient (per unit) is multiplied between here and the input, for each input and for the
  pair (the q̃₁, q̃₂ of Karakida, Akaho & Amari 2019); ``chi`` is ``chi11``;
* ``gap`` = (k11 + k22)/2 − k12, half the squared distance of the two representations per
  unit (q(1 − c) for equal variances), mapped by every layer directly so that numeric algebras
  can keep 1 − c accurate when the inputs are nearly equal (it defaults to its definition).

A statistic a computation does not need can be :data:`UNTRACKED`: every layer maps it to itself
at no cost (the float64 Gram path leaves χ₂₂, χ₁₂ and the gap untracked unless a trace is asked
for, since each is another n × n array per layer).

An :class:`Algebra` says how a layer's formulas are evaluated: on SymPy expressions
(:data:`SYMBOLIC`), float64 Gram matrices or mpmath numbers (:mod:`derive.ntk`), or float
arrays of mean-field parameters (:mod:`derive.meanfield`).  A :class:`Trace` records the state
before and after every primitive layer, the per-layer order parameters theories read.

>>> from derive.symbols import q
>>> s = KernelState.single(q)
>>> s.k11, s.chi
(q, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

import sympy as sp

from derive.activations import Activation
from derive.errors import DivergenceError
from derive.gaussian import expect, expect2
from derive.parsing import as_expr
from derive.symbols import c, q1, q2, x, y


class _Untracked:
    """A statistic nobody reads: arithmetic with it, from either side and with numpy arrays
    (``__array_ufunc__ = None`` makes numpy defer), gives itself.

    >>> import numpy as np
    >>> (UNTRACKED * np.ones(3) + 1) ** 2 is UNTRACKED
    True
    """

    __array_ufunc__ = None

    def _self(self, *_):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _self
    __pow__ = __rpow__ = _self
    __neg__ = _self

    def __repr__(self) -> str:
        return "UNTRACKED"


UNTRACKED = _Untracked()


@dataclass(frozen=True)
class KernelState:
    """Statistics of two inputs' representations at one layer (see the module docstring)."""

    k11: sp.Expr
    k22: sp.Expr
    k12: sp.Expr
    t11: sp.Expr = sp.S.Zero
    t22: sp.Expr = sp.S.Zero
    t12: sp.Expr = sp.S.Zero
    chi11: sp.Expr = sp.S.One
    chi22: sp.Expr = sp.S.One
    chi12: sp.Expr = sp.S.One
    gap: sp.Expr = None

    def __post_init__(self):
        if self.gap is None:
            object.__setattr__(self, "gap", (self.k11 + self.k22) / 2 - self.k12)

    @property
    def chi(self):
        """The backward factor of the first input (``chi11``)."""
        return self.chi11

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

    def combine(self, other: KernelState, function) -> KernelState:
        """A state whose entries are function(own entry, other's entry)."""
        return replace(self, **{f.name: function(getattr(self, f.name), getattr(other, f.name))
                                for f in fields(self)})


# --- algebras: how a layer's formulas are evaluated -------------------------------------------


class Algebra:
    """How the layer formulas are evaluated: numbers or expressions, square roots, activations."""

    name = "abstract"

    def const(self, value: sp.Expr):  # pragma: no cover - interface
        raise NotImplementedError

    def sqrt(self, value):  # pragma: no cover - interface
        raise NotImplementedError

    def activation(self, act: Activation, s: KernelState) -> KernelState:  # pragma: no cover - interface
        raise NotImplementedError

    def variance(self, value):
        """The variance a normalisation divides by (symbolic algebras may name it)."""
        return value


class SymbolicAlgebra(Algebra):
    """Layer formulas on SymPy expressions; activations through :func:`derive.expect`."""

    name = "symbolic"

    def const(self, value: sp.Expr) -> sp.Expr:
        return value

    def sqrt(self, value):
        return sp.sqrt(value)

    def activation(self, act: Activation, s: KernelState) -> KernelState:
        phi, dphi = act(x), act.derivative(x)
        phi_y, dphi_y = act(y), act.derivative(y)
        corr = s.c
        d11, d22 = _diagonal(dphi**2, (x,), (s.k11,)), _diagonal(dphi_y**2, (y,), (s.k22,))
        d12 = _diagonal(dphi * dphi_y, (x, y), (s.k11, s.k22, corr))
        return KernelState(
            k11=expect(phi**2, x, s.k11), k22=expect(phi_y**2, y, s.k22),
            k12=expect2(phi * phi_y, x, y, s.k11, s.k22, corr),
            t11=s.t11 * d11, t22=s.t22 * d22, t12=s.t12 * d12,
            chi11=s.chi11 * d11, chi22=s.chi22 * d22, chi12=s.chi12 * d12)


def _diagonal(integrand, variables: tuple, parameters: tuple):
    """E φ′(u)² (or E φ′(u)φ′(v)), infinite — not an error — where φ′ has a jump: the q- and
    c-maps stay finite and only χ and the NTK, which need it, are ∞ (E δ(u)δ(v) is finite for
    |c| < 1 and ∞ at c = 1)."""
    try:
        return (expect if len(variables) == 1 else expect2)(integrand, *variables, *parameters)
    except DivergenceError:
        return sp.oo


SYMBOLIC = SymbolicAlgebra()


# --- what a representation is: the assumptions under which the maps are exact ------------------


class Kind(Enum):
    """What the wide-network limit says about a representation's units.

    GAUSSIAN: centred, jointly Gaussian (after a Dense layer); CENTRED: zero mean;
    GENERAL: possibly non-zero mean (after an activation that is not odd); DATA: the raw inputs.
    """

    GAUSSIAN = "Gaussian"
    CENTRED = "centred"
    GENERAL = "general"
    DATA = "data"

    @property
    def centred(self) -> bool:
        return self in (Kind.GAUSSIAN, Kind.CENTRED)


def join(a: Kind, b: Kind) -> Kind:
    """The kind of a sum of two independent representations."""
    if a is Kind.GAUSSIAN and b is Kind.GAUSSIAN:
        return Kind.GAUSSIAN
    return Kind.CENTRED if a.centred and b.centred else Kind.GENERAL


# --- the trace -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Step:
    """One primitive layer of a forward pass: the layer and the states before and after it;
    ``inner`` holds the steps of a residual branch."""

    layer: object
    before: KernelState
    after: KernelState
    inner: tuple = ()


@dataclass(frozen=True, eq=False)
class Trace:
    """The steps of a forward pass in order (a Serial or Repeat is flattened) and its output."""

    steps: tuple
    output: KernelState

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def of(self, kind: type) -> tuple:
        """The top-level steps whose layer is an instance of `kind` (e.g. ``Dense``)."""
        return tuple(step for step in self.steps if isinstance(step.layer, kind))


class Recorder:
    """Collects the steps of a forward pass (handed down through ``Layer.apply``)."""

    def __init__(self):
        self.steps: list = []

    def add(self, layer, before: KernelState, after: KernelState, inner: tuple = ()) -> KernelState:
        self.steps.append(Step(layer, before, after, inner))
        return after
