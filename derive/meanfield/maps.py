r"""The mean-field maps of any block, evaluated in float64 over arrays of parameters.

A block of the layer algebra (``serial(φ, Dense(σ_w², σ_b²))``, or a residual block with
dropout and LayerNorm, ...) maps the state of two inputs of equal variance.  Its layers state
their formulas once (:mod:`derive.layers`); here they are evaluated by an algebra whose numbers
are :class:`Jet` s — a value and its derivative along one direction — so that every map comes
with its slope, whatever the block:

* along q (one input, c = 1): the q-map q′(q), χ_q = dq′/dq, and the backward factor χ₁;
* along s = 1 − c at fixed q: s′ = 1 − c′ (from the gap, half the squared distance, which every
  layer maps directly: no cancellation as c → 1) and χ_c = ds′/ds = ∂c′/∂c.

An activation reads its moments at equal variances from
:func:`derive.gaussian.equal_variances.equal_variances`: q′ = V(q), and for the pair
gap′ = (1 − c) G(q, c) with the divided difference G = (V − C)/(1 − c) (Poole et al. 2016;
Schoenholz et al. 2017).  The mpmath algebra does the same at any precision through the
moments' mpmath path.

>>> import numpy as np, derive
>>> from derive.symbols import sigma_w2, sigma_b2
>>> maps = BlockMaps(derive.serial("relu", derive.Dense(sigma_w2, sigma_b2)))
>>> q_next, chi_q, chi1 = maps.q_map(np.array([1.0]), {sigma_w2: np.array([2.0]), sigma_b2: np.array([0.5])})
>>> float(q_next[0]), float(chi_q[0]), float(chi1[0])
(1.5, 1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import fields, replace
from functools import cached_property

import mpmath as mp
import numpy as np
import sympy as sp

from derive.errors import DomainError
from derive.gaussian.equal_variances import equal_variances
from derive.gaussian.moments import moments_of
from derive.kernel_state import UNTRACKED, Algebra, KernelState

#: variances are clipped to this before an activation reads its tables (q = 0 exactly is the
#: limit q → 0⁺ of every built-in's moments)
Q_FLOOR = 1e-300


class Jet:
    """A value and its derivative along one direction (numpy arrays, or the float 0.0 for a
    constant, which stays a number through every operation), closed under + − × ÷ √ with Jets
    and plain numbers or arrays."""

    __slots__ = ("v", "d")
    __array_ufunc__ = None  # numpy defers to the reflected operators below

    def __init__(self, value, derivative=0.0):
        self.v = np.asarray(value, dtype=float)
        self.d = derivative

    @staticmethod
    def of(other) -> Jet:
        return other if isinstance(other, Jet) else Jet(other, 0.0)

    def __add__(self, other):
        if other is UNTRACKED:
            return NotImplemented  # an untracked statistic absorbs every operation (its own __radd__)
        if isinstance(other, Jet):
            return Jet(self.v + other.v, _plus(self.d, other.d))
        return Jet(self.v + other, self.d)

    __radd__ = __add__

    def __neg__(self):
        return Jet(-self.v, _times(self.d, -1.0))

    def __sub__(self, other):
        if other is UNTRACKED:
            return NotImplemented
        if isinstance(other, Jet):
            return Jet(self.v - other.v, _plus(self.d, _times(other.d, -1.0)))
        return Jet(self.v - other, self.d)

    def __rsub__(self, other):
        return Jet(other - self.v, _times(self.d, -1.0))

    def __mul__(self, other):
        if other is UNTRACKED:
            return NotImplemented
        with np.errstate(invalid="ignore", over="ignore"):  # inf·0 at q → ∞ is the caller's to judge
            if isinstance(other, Jet):
                return Jet(self.v * other.v, _plus(_times(self.d, other.v), _times(other.d, self.v)))
            return Jet(self.v * other, _times(self.d, other))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if other is UNTRACKED:
            return NotImplemented
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if isinstance(other, Jet):
                value = self.v / other.v
                return Jet(value, _times(_plus(self.d, _times(other.d, -value)), 1 / other.v))
            return Jet(self.v / other, _times(self.d, 1 / other))

    def __rtruediv__(self, other):
        return Jet.of(other) / self

    def __pow__(self, n):
        if not isinstance(n, int | float):
            raise TypeError("a Jet is raised to numeric powers only")
        with np.errstate(divide="ignore", invalid="ignore"):
            return Jet(self.v**n, _times(self.d, n * self.v ** (n - 1)))

    def sqrt(self) -> Jet:
        root = np.sqrt(self.v)
        if _constant(self.d):
            return Jet(root, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return Jet(root, np.where(root > 0, self.d / (2 * root), 0.0))

    def derivative(self, shape) -> np.ndarray:
        """The derivative as an array of `shape`."""
        return np.broadcast_to(np.asarray(self.d, dtype=float), shape)


def _constant(d) -> bool:
    """The derivative of a constant (the number 0.0, not an array)."""
    return isinstance(d, float) and d == 0.0


def _times(d, factor):
    return 0.0 if _constant(d) else d * factor


def _plus(d, e):
    return e if _constant(d) else d if _constant(e) else d + e


class _Parameters:
    """The block's symbolic parameters evaluated on arrays: ``const(expr)`` for each layer."""

    def __init__(self, values: dict):
        self.values = values
        self._cache: dict = {}

    def __call__(self, expr: sp.Expr):
        if expr in self.values:
            return self.values[expr]
        if expr.is_number:
            return float(expr)
        missing = expr.free_symbols - set(self.values)
        if missing:
            raise DomainError(f"the block has the symbolic parameters {sorted(map(str, missing))}; give "
                              "them numbers (substitute them in the block, e.g. Dropout(0.9))")
        if expr not in self._cache:
            names = sorted(expr.free_symbols, key=str)
            self._cache[expr] = (sp.lambdify(names, expr, "numpy"), names)
        f, names = self._cache[expr]
        return np.asarray(f(*(self.values[s] for s in names)), dtype=float)


class JetAlgebra(Algebra):
    """Layer formulas on Jets along q (``direction="q"``, one input) or along s = 1 − c
    (``direction="s"``, two inputs of equal variance; with the gap untracked, the variances
    alone).  Along s the variance entering each activation and its V do not move: `record`
    (a list) collects them as (q, V) in the order the block applies its activations, and
    `replay` (an iterator of such pairs) supplies them instead of evaluating V again."""

    name = "mean-field"

    def __init__(self, parameters: dict, direction: str, record: list | None = None, replay=None):
        self.const = _Parameters(parameters)
        self.direction = direction
        self.record, self.replay = record, replay

    def sqrt(self, value):
        if value is UNTRACKED:
            return value
        return value.sqrt() if isinstance(value, Jet) else np.sqrt(value)

    def activation(self, act, s: KernelState) -> KernelState:
        ev = equal_variances(act)
        if self.direction == "q":
            q = Jet.of(s.k11)
            qv = np.maximum(q.v, Q_FLOOR)
            # an untracked chi11 (the root searches) spares the moments D, D′
            if s.chi11 is UNTRACKED:
                V, Vq = ev.variance_slope(qv)
                chi11 = UNTRACKED
            else:
                V, Vq, D, Dq = ev.one(qv)
                chi11 = s.chi11 * Jet(D, _times(q.d, Dq))
            k11 = Jet(V, _times(q.d, Vq))
            return replace(s, k11=k11, k22=k11, chi11=chi11)
        if self.replay is not None:
            qv, k11 = next(self.replay)
        else:
            qv = np.maximum(s.k11, Q_FLOOR)
            k11 = ev.variance_map(qv)
            if self.record is not None:
                self.record.append((qv, k11))
        if s.gap is UNTRACKED:
            return replace(s, k11=k11, k22=k11)
        ratio = Jet.of(s.gap) / qv  # 1 − c, exact
        c = np.clip(1 - ratio.v, -1.0, 1.0)
        if _constant(ratio.d):
            gap = ratio * ev.g(qv, c)
        else:
            G, Gc = ev.g(qv, c, derivative=True)
            gap = ratio * Jet(G, _times(ratio.d, -Gc))
        return replace(s, k11=k11, k22=k11, gap=gap)


class CorrelationMap:
    """The s-map of a block at fixed input variances q (a 1-D array; parameters broadcast with
    it): ``cmap(s, index)`` is (s′, χ_c, q′) at s for the points `index` (default all), like
    :meth:`BlockMaps.s_map` (χ_c None with ``slope=False``).  The variance entering each
    activation and its V do not move along s, so they are evaluated once, here; each call then
    evaluates G and ∂G/∂c only."""

    def __init__(self, block, q, parameters: dict):
        self.block = block
        self.q = np.asarray(q, dtype=float).ravel()
        self.parameters = {k: np.broadcast_to(np.asarray(v, dtype=float), self.q.shape)
                           for k, v in parameters.items()}
        algebra = JetAlgebra(self.parameters, "s", record=[])
        block.apply(_untracked(k11=self.q, k22=self.q), algebra)
        self.variances = algebra.record

    def __call__(self, s, index=slice(None), slope: bool = True) -> tuple:
        q = self.q[index]
        s = np.broadcast_to(np.asarray(s, dtype=float), q.shape)
        replay = iter([(qv[index], V[index]) for qv, V in self.variances])
        algebra = JetAlgebra({k: v[index] for k, v in self.parameters.items()}, "s", replay=replay)
        return _correlation(self.block, q, s, algebra, slope)


def _correlation(block, q, s, algebra, slope: bool = True) -> tuple:
    """(s′, χ_c, q′) of the block along s from variances q and s = 1 − c (χ_c None without
    `slope`: the gap is then a constant of the algebra, and G is read without ∂G/∂c); the
    forward entries that map the gap are kept (k11 = k22, the gap), not k12, the NTK entries
    or the χ."""
    out = block.apply(_untracked(k11=q, k22=q, gap=Jet(s * q, q if slope else 0.0)), algebra)
    ratio = Jet.of(out.gap) / Jet.of(out.k11)
    q_next = np.broadcast_to(Jet.of(out.k11).v, q.shape)
    return np.broadcast_to(ratio.v, q.shape), ratio.derivative(q.shape) if slope else None, q_next


def _untracked(**tracked) -> KernelState:
    """A state with the given entries, every other one untracked."""
    return KernelState(**{f.name: tracked.get(f.name, UNTRACKED) for f in fields(KernelState)})


class MpAlgebra(Algebra):
    """Layer formulas on mpmath numbers; activations through the moments' mpmath path (the gap
    as V − C at 10 guard digits beyond the working precision).  ``backward=False`` skips the
    backward factors (the root searches need the forward maps only)."""

    name = "mean-field mpmath"

    def __init__(self, parameters: dict, dps: int, backward: bool = True):
        self.parameters, self.dps, self.backward = parameters, dps, backward

    def const(self, value):
        out = sp.sympify(value).xreplace({k: sp.Float(v, self.dps + 10) for k, v in self.parameters.items()})
        out = out.evalf(self.dps + 10)
        if not out.is_number:
            raise DomainError(f"the block has the symbolic parameters {sorted(map(str, out.free_symbols))}; "
                              "give them numbers")
        return mp.mpf(sp.Float(out, self.dps + 10)._mpf_)

    def sqrt(self, value):
        return mp.sqrt(value)

    def activation(self, act, s: KernelState) -> KernelState:
        moments = moments_of(act)
        digits = self.dps + 10
        q = s.k11
        V = moments.V.mp(q, dps=digits)
        D = moments.D.mp(q, dps=digits) if self.backward and not moments.has_jump else mp.nan
        if s.gap == 0:
            return KernelState(k11=V, k22=V, k12=V, gap=mp.mpf(0), chi11=s.chi11 * D, chi22=s.chi22 * D,
                               chi12=s.chi12 * D)
        c = max(min(1 - s.gap / q, mp.mpf(1)), mp.mpf(-1))
        C = moments.C.mp(q, q, c, dps=digits)
        Cd = moments.Cd.mp(q, q, c, dps=digits) if self.backward and not moments.has_jump else mp.nan
        return KernelState(k11=V, k22=V, k12=C, gap=V - C, chi11=s.chi11 * D, chi22=s.chi22 * D,
                           chi12=s.chi12 * Cd)


class BlockMaps:
    """The float64 (and mpmath) maps of one block: q-map with χ_q and χ₁, s-map with χ_c.

    `parameters` maps each symbol of the block (σ_w², σ_b², ...) to an array (or number) of
    values; all arrays broadcast with the variances."""

    def __init__(self, block):
        self.block = block

    @cached_property
    def activations(self) -> list:
        return list(dict.fromkeys(self.block.activations()))

    def _run(self, state: KernelState, parameters: dict, direction: str) -> KernelState:
        return self.block.apply(state, JetAlgebra(parameters, direction))

    def q_map(self, q, parameters: dict, backward: bool = True) -> tuple:
        """(q′, χ_q = dq′/dq, χ₁ = the backward factor) at the variances q (arrays); the entries a
        single input does not need (k12, t, chi22, chi12, gap) are untracked (k22 = k11 is kept:
        LayerNorm reads it).  With ``backward=False`` χ₁ is not computed (None): the root
        searches need q′ and χ_q only."""
        q = np.asarray(q, dtype=float)
        start = Jet(q, 1.0)
        out = self._run(_untracked(k11=start, k22=start, chi11=Jet(1.0) if backward else UNTRACKED),
                        parameters, "q")
        shape = q.shape
        chi1 = np.broadcast_to(Jet.of(out.chi11).v, shape) if backward else None
        return np.broadcast_to(Jet.of(out.k11).v, shape), Jet.of(out.k11).derivative(shape), chi1

    def s_map(self, q, s, parameters: dict) -> tuple:
        """(s′ = 1 − c′, χ_c = ds′/ds = ∂c′/∂c, q′) for two inputs of variance q and s = 1 − c
        (the backward factors are not computed along s)."""
        q, s = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(s, dtype=float))
        return _correlation(self.block, q, s, JetAlgebra(parameters, "s"))

    def correlation_map(self, q, parameters: dict) -> CorrelationMap:
        """The s-map at the fixed variances q (a 1-D array), for root searches in s."""
        return CorrelationMap(self.block, q, parameters)

    def mp_q_map(self, q, parameters: dict, dps: int, backward: bool = True) -> tuple:
        """(q′, χ₁) at one variance, at `dps` digits (χ₁ NaN with ``backward=False``)."""
        out = self.block.apply(KernelState(k11=q, k22=q, k12=q, gap=mp.mpf(0), chi11=mp.mpf(1),
                                           chi22=mp.mpf(1), chi12=mp.mpf(1)),
                               MpAlgebra(parameters, dps, backward))
        return out.k11, out.chi11

    def mp_s_map(self, q, s, parameters: dict, dps: int, backward: bool = True) -> tuple:
        """(s′, the backward cross factor, q′) at one (q, s), at `dps` digits."""
        out = self.block.apply(KernelState(k11=q, k22=q, k12=q * (1 - s), gap=q * s, chi11=mp.mpf(1),
                                           chi22=mp.mpf(1), chi12=mp.mpf(1)),
                               MpAlgebra(parameters, dps, backward))
        return out.gap / out.k11, out.chi12, out.k11
