r"""Mean-field signal propagation: q/c maps, fixed points, χ₁, depth scales, the critical line.

A wide random network h^l = W^l φ(h^{l-1}) + b^l, W_ij ~ N(0, σ_w²/M), b_i ~ N(0, σ_b²),
propagates the variance q of its pre-activations and the correlation c of two inputs
by the maps of one block ``serial(φ, Dense(σ_w², σ_b²))`` (Poole et al. 2016, eqs. 3-5;
Schoenholz et al. 2017, eqs. 1-6) — or of any block of the layer algebra that maps a variance
to a variance, ``MeanField(block)`` (residual branches, dropout, LayerNorm), whose maps,
fixed points, χ₁, depth scales, critical surface and phase diagram all come from the block's
own layer formulas (:mod:`derive.meanfield.maps`):

    q^{l+1} = σ_w² ∫Dz φ(√q^l z)² + σ_b²,
    c^{l+1} = (σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²) / q^{l+1},
    χ₁ = σ_w² ∫Dz φ′(√q* z)²   (ordered χ₁ < 1, chaotic χ₁ > 1),
    ξ_q = −1/log χ_q,  ξ_c = −1/log χ_c,  ξ_∇ = −1/log χ₁,

with χ_q = dq^{l+1}/dq^l and χ_c = ∂c^{l+1}/∂c^l at the fixed point.  The critical line
χ₁ = 1 is parametrised by q*: σ_w² = 1/∫Dz φ′(√q* z)², σ_b² = q* − σ_w² ∫Dz φ(√q* z)².

>>> import derive
>>> relu = MeanField("relu")
>>> relu.q_map
q*sigma_w2/2 + sigma_b2
>>> relu.chi1
sigma_w2/2
>>> relu.critical_line().point
(2, 0)
>>> MeanField("erf").critical_sigma_w2(0.0)  # pi/4
0.7853981633974...
>>> tanh = MeanField("tanh")
>>> round(tanh.critical_sigma_w2(0.05), 10)  # Schoenholz et al.: about 1.76
1.7609546396
>>> scales = tanh.depth_scales(1.5, 0.05)
>>> round(scales.xi_q, 5), round(scales.xi_c, 4)
(1.68283, 15.791)

Symbolic: ``q_map``, ``c_map``, ``c_map_general``, ``chi1``, ``chi_q``, ``chi_c``,
``fixed_point_equations``, ``q_star_closed_form``, ``critical_line()``.  Numeric, on floats
or broadcasting arrays (``dps=`` for mpmath numbers): ``fixed_point``, ``q_star``, ``c_star``,
``chi1_star``, ``depth_scales``, ``critical_point``, ``critical_sigma_w2``, ``phase_diagram``,
``propagate`` (forward iterates), ``gradients`` (the backward pass).  Results are the objects
of :mod:`derive.meanfield.results`; each says how its numbers were obtained (``method``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.activations import activation as make_activation
from derive.errors import DomainError, NoFixedPointError
from derive.gaussian import GaussianExpectation
from derive.gaussian.blocks import single_threaded_blas
from derive.gaussian.cache import persisted
from derive.gaussian.equal_variances import equal_variances
from derive.gaussian.moments import moments_of
from derive.kernel_state import KernelState
from derive.layers import Dense, Layer, Nonlinearity, Serial, is_odd, repeat, serial
from derive.meanfield.maps import Q_FLOOR, BlockMaps
from derive.meanfield.results import (
    CriticalLine,
    CriticalPoint,
    DepthScales,
    FixedPoint,
    GradientRatios,
    PhaseDiagram,
    Regime,
    Trajectory,
    latex_of,
    output,
    xi,
)
from derive.meanfield.solvers import Q_MIN, bracketed_newton, mp_root, solve_q_star, solve_s_star
from derive.parsing import as_expr
from derive.symbols import c, q, q1, q2, q_star
from derive.symbols import sigma_b2 as SIGMA_B2
from derive.symbols import sigma_w2 as SIGMA_W2

__all__ = ["MeanField", "CriticalLine", "CriticalPoint", "FixedPoint", "DepthScales", "PhaseDiagram",
           "GradientRatios", "Trajectory", "Regime"]

#: |χ₁ − 1| below this at q* = 0 is the marginal point (tanh at (1, 0)), not the ordered phase
MARGINAL_TOLERANCE = 1e-12


def _numeric_call(function):
    """A public numeric method: BLAS on one thread during the call, and the tables it built
    saved to the on-disk cache (:mod:`derive.gaussian.cache`) when the outermost one returns."""
    return persisted(single_threaded_blas(function))


def _variance(value, name: str) -> sp.Expr:
    value = as_expr(value)
    if value.is_number and (value.has(sp.nan, sp.oo, -sp.oo, sp.zoo) or value.is_real is False):
        raise DomainError(f"{name} = {value} must be a finite real variance")
    if value.is_negative:
        raise DomainError(f"{name} = {value} is negative; a variance must be >= 0")
    return value


def _decimal(value) -> mp.mpf:
    """A float read as the decimal it prints as (0.05 is 1/20, not 0.05000000000000000277)."""
    return mp.mpf(repr(float(value)))


def _check_dps(dps) -> None:
    if dps is not None and (isinstance(dps, bool) or not isinstance(dps, int) or not 1 <= dps <= 1000):
        raise DomainError(f"dps = {dps!r} must be an integer from 1 to 1000 (digits of precision)")


def _standard(block) -> tuple | None:
    """(activation, σ_w², σ_b²) when the block is serial(φ, Dense(σ_w², σ_b²)) with Gaussian weights."""
    if not (isinstance(block, Serial) and len(block.layers) == 2):
        return None
    act, dense = block.layers
    if isinstance(act, Nonlinearity) and isinstance(dense, Dense):
        return act.activation, dense.sigma_w2, dense.sigma_b2
    return None


@dataclass(frozen=True, init=False)
class MeanField:
    """The mean-field theory of a deep network made of one repeated block.

    ``MeanField(activation, sigma_w2=None, sigma_b2=None)``: the block serial(φ, Dense(σ_w², σ_b²))
    of a fully connected network with an activation object, name or formula; the variances
    default to the symbols σ_w², σ_b², or are numbers (then the numeric methods use them when
    called without arguments).  ``MeanField(block)``: any block of the layer algebra mapping the
    variance of its input to that of its output (its σ_w², σ_b² symbols are the parameters the
    numeric methods take; other symbols must be given numbers in the block).
    """

    block: Layer
    activation: Activation | None
    sigma_w2: sp.Expr
    sigma_b2: sp.Expr

    def __init__(self, activation, sigma_w2=None, sigma_b2=None):
        if isinstance(activation, Layer) and not isinstance(activation, Nonlinearity):
            if sigma_w2 is not None or sigma_b2 is not None:
                raise DomainError("MeanField(block) takes its variances from the block's Dense layers; "
                                  "write them there (or pass the symbols sigma_w2, sigma_b2)")
            block = activation
            standard = _standard(block)
            act, w, b = standard if standard else (None, SIGMA_W2, SIGMA_B2)
        else:
            if isinstance(activation, Nonlinearity):
                activation = activation.activation
            act = make_activation(activation)
            w = SIGMA_W2 if sigma_w2 is None else _variance(sigma_w2, "sigma_w2")
            b = SIGMA_B2 if sigma_b2 is None else _variance(sigma_b2, "sigma_b2")
            block = serial(act, Dense(w, b))
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "activation", act)
        object.__setattr__(self, "sigma_w2", w)
        object.__setattr__(self, "sigma_b2", b)
        self._check_variance_map()

    def _check_variance_map(self) -> None:
        """The block must map a variance to a variance: evaluable on the state of one input."""
        try:
            out = self._single.k11
        except (TypeError, ValueError) as exc:
            raise DomainError(f"MeanField: the block {self.block!r} cannot be evaluated on a variance "
                              f"({exc}); check its activations and parameters") from None
        if out.has(sp.nan, sp.zoo):
            raise DomainError(f"MeanField: the block {self.block!r} maps the variance q to {out}: not a "
                              "variance (is the activation defined everywhere, e.g. a Piecewise with "
                              "a default branch?)")

    @property
    def name(self) -> str:
        """The activation's name (standard block) or the block's repr."""
        return self.activation.name if self.standard else repr(self.block)

    @property
    def standard(self) -> bool:
        """True for the block serial(φ, Dense(σ_w², σ_b²)) (the parametric critical line applies)."""
        return self.activation is not None

    def __repr__(self) -> str:
        if self.standard:
            return f"MeanField({self.activation.name!r}, sigma_w2={self.sigma_w2}, sigma_b2={self.sigma_b2})"
        return f"MeanField({self.block!r})"

    # --- symbolic ------------------------------------------------------------------------------

    @cached_property
    def _single(self) -> KernelState:
        return self.block.forward(KernelState.single(q))

    @cached_property
    def _pair(self) -> KernelState:
        return self.block.forward(KernelState.pair(q, q, c))

    @cached_property
    def q_map(self) -> sp.Expr:
        """q^{l+1} as a function of q = q^l: σ_w² ∫Dz φ(√q z)² + σ_b²."""
        return self._single.k11

    @cached_property
    def c_map(self) -> sp.Expr:
        """c^{l+1} as a function of (q, c) for two inputs of equal variance q:
        (σ_w² E φ(u)φ(v) + σ_b²) / q^{l+1}(q)."""
        return self._pair.k12 / self._pair.k11

    @cached_property
    def c_map_general(self) -> sp.Expr:
        """c^{l+1} for variances q1, q2 and correlation c: q12′/√(q11′ q22′)."""
        return self.block.forward(KernelState.pair(q1, q2, c)).c

    @cached_property
    def chi1(self) -> sp.Expr:
        """χ₁ = σ_w² ∫Dz φ′(√q z)² as a function of q: the growth of squared gradients per layer
        (the slope of the c-map at c = 1 for blocks that keep c = 1 fixed)."""
        return self._single.chi

    @cached_property
    def chi_q(self) -> sp.Expr:
        """χ_q = dq^{l+1}/dq^l = σ_w² ∫Dz [φ′² + φφ″](√q z) (Price's theorem)."""
        return sp.diff(self.q_map, q)

    @cached_property
    def chi_c(self) -> sp.Expr:
        """χ_c = ∂c^{l+1}/∂c^l at q = q*: σ_w² ∫Dz₁Dz₂ φ′(u₁)φ′(u₂) (a function of q, c)."""
        slope = sp.diff(self._pair.k12, c) / q
        return slope if slope.has(GaussianExpectation) else sp.simplify(slope)

    @cached_property
    def expectations(self) -> dict:
        """The Gaussian expectations of the standard block's maps, as functions of q (and c):
        V = E φ(u)², Vq = dV/dq, D = E φ′(u)², Dq = dD/dq, C = E φ(u)φ(v), Cd = E φ′(u)φ′(v)."""
        if not self.standard:
            raise DomainError("expectations are those of an activation: MeanField(block) has the maps "
                              "q_map, c_map, chi1 of its block instead")
        unit = self if (self.sigma_w2, self.sigma_b2) == (1, 0) else MeanField(self.activation, 1, 0)
        V, D, C = unit.q_map, unit.chi1, unit._pair.k12
        return {"V": V, "Vq": sp.diff(V, q), "D": D, "Dq": sp.diff(D, q), "C": C, "Cd": unit.chi_c}

    @cached_property
    def fixed_point_equations(self) -> tuple:
        """(q* = q-map(q*), c* = c-map(q*, c*)) as SymPy equations."""
        cs = sp.Symbol("c_star", real=True)
        return (sp.Eq(q_star, self.q_map.subs(q, q_star)),
                sp.Eq(cs, self.c_map.subs({q: q_star, c: cs})))

    @cached_property
    def q_star_closed_form(self):
        """q* in closed form when the q-map is a polynomial of degree <= 2 in q, else None."""
        if not self.q_map.is_polynomial(q) or sp.degree(self.q_map, q) > 2:
            return None
        roots = [r for r in sp.solve(sp.Eq(q, self.q_map), q) if r != 0]
        return roots[0] if len(roots) == 1 else None

    @property
    def is_closed_form(self) -> bool:
        """True when every expectation of the maps has a closed form."""
        maps = (self.q_map, self.c_map, self.chi1)
        return not any(e.has(GaussianExpectation) for e in maps)

    def critical_line(self) -> CriticalLine:
        """The χ₁ = 1 line in the best closed form that exists (see :class:`CriticalLine`)."""
        if self.standard:
            e = self.expectations
            return CriticalLine.of(self.name, e["V"], e["D"], self.critical_point)
        return CriticalLine.implicit(self.name, self.chi1, self.q_map, self.critical_point)

    def _latex(self, printer) -> str:
        ql, qn, cl = sp.Symbol("q^{l}"), sp.Symbol("q^{l+1}"), sp.Symbol("c^{l}")
        lines = [
            rf"q^{{l+1}} &= {printer._print(self.q_map.subs(q, ql))}",
            rf"c^{{l+1}} &= {printer._print((self._pair.k12 / qn).subs({q: ql, c: cl}))}",
            rf"\chi_1 &= {printer._print(self.chi1.subs(q, q_star))}",
        ]
        return r"\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        """The recursion, marked as numerical where its integrals have no closed form."""
        note = "" if self.is_closed_form else (
            r" \quad \text{(no closed form: the integrals are evaluated numerically; see .method)}")
        return f"$\\displaystyle {latex_of(self)}{note}$"

    # --- numeric -------------------------------------------------------------------------------

    @cached_property
    def _symbols(self) -> frozenset:
        return frozenset(self._single.k11.free_symbols | self._single.chi.free_symbols) - {q}

    @cached_property
    def _maps(self) -> BlockMaps:
        acts = self.block.activations()
        for act in acts:
            if act.parameters:
                names = ", ".join(sorted(map(str, act.parameters)))
                raise DomainError(f"the activation has free parameters ({names}); substitute numbers "
                                  "before evaluating numerically")
        extra = self._symbols - {SIGMA_W2, SIGMA_B2}
        if extra:
            raise DomainError(f"the block has the symbolic parameters {sorted(map(str, extra))}; give them "
                              "numbers (e.g. Dropout(0.9), Residual(..., alpha=0.5)) to evaluate it")
        return BlockMaps(self.block)

    @property
    def method(self) -> str:
        """How numbers are obtained (closed form or quadrature, tables, error) for each activation."""
        acts = self._maps.activations
        parts = [equal_variances(act).method for act in acts]
        if self.standard:
            return parts[0]
        return "block maps through the equal-variance moments of " + "; ".join(
            f"{act.name}: {how}" for act, how in zip(acts, parts, strict=True))

    def _numeric(self, *named):
        """Broadcast (value, name) pairs to flat float arrays; None takes the instance's value.
        Variances must be finite and >= 0, a correlation "c" must lie in [-1, 1]."""
        arrays = []
        for value, name in named:
            if value is None:
                own = getattr(self, name, None)
                if own is None or not own.is_number:
                    raise DomainError(f"give {name}: this MeanField holds the symbol {own}")
                value = float(own)
            try:
                arr = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise DomainError(f"{name} must be a number or an array of numbers, got {value!r}") from None
            low, high = (-1.0, 1.0) if name == "c" else (0.0, np.inf)
            bad = ~((arr >= low) & (arr <= high) & np.isfinite(arr))
            if np.any(bad):
                where = "in [-1, 1]" if name == "c" else "finite and >= 0"
                shown = np.atleast_1d(arr)[np.atleast_1d(bad)][:3].tolist()
                raise DomainError(f"{name} must be {where}; got {shown}"
                                  + (f" and {int(bad.sum()) - 3} more" if bad.sum() > 3 else ""))
            arrays.append(arr)
        arrays = np.broadcast_arrays(*arrays)
        return [a.ravel() for a in arrays], arrays[0].shape

    def _parameters(self, sw, sb, index=slice(None)) -> dict:
        return {SIGMA_W2: sw[index], SIGMA_B2: sb[index]}

    def _F(self, sw, sb):
        """F(q, index) = (q′ − q, χ_q − 1) for the solvers."""
        def F(qv, index):
            qn, chi_q, _ = self._maps.q_map(np.maximum(qv, Q_FLOOR), self._parameters(sw, sb, index),
                                            backward=False)
            return qn - qv, chi_q - 1
        return F

    @staticmethod
    def _R(cmap, points):
        """R(s, index) = (s′/s − 1, its s-derivative) at q* for the c* solver, at the points
        `points[index]` of the correlation map."""
        def R(sv, index, slope: bool = True):
            s_next, ds, _ = cmap(sv, points[index], slope)
            ratio = s_next / sv
            return ratio - 1, (ds - ratio) / sv if slope else None
        return R

    @_numeric_call
    def apply_q_map(self, qv, sigma_w2=None, sigma_b2=None):
        """The q-map evaluated at q (floats or arrays)."""
        (qv, sw, sb), shape = self._numeric((qv, "q"), (sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"))
        return output(self._maps.q_map(np.maximum(qv, Q_FLOOR), self._parameters(sw, sb))[0], shape)

    @_numeric_call
    def apply_c_map(self, qv, cv, sigma_w2=None, sigma_b2=None):
        """The c-map at (q, c) for two inputs of equal variance q."""
        (qv, cv, sw, sb), shape = self._numeric((qv, "q"), (cv, "c"), (sigma_w2, "sigma_w2"),
                                                (sigma_b2, "sigma_b2"))
        s_next, _, _ = self._maps.s_map(np.maximum(qv, Q_FLOOR), 1 - cv, self._parameters(sw, sb))
        return output(1 - s_next, shape)

    @_numeric_call
    def fixed_point(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None) -> FixedPoint:
        """q*, c*, χ₁, χ_q, χ_c and the regime at (σ_w², σ_b²) (floats or arrays, broadcast).

        q* is the limit of the q-map iterated from q⁰; c* is 1 in the ordered phase and the
        largest fixed point below 1 in the chaotic one (exactly 0 for an odd φ without bias).
        With `dps`, the values are mpmath numbers computed at that precision, float inputs read
        as the decimals they print as (0.05 is 1/20)."""
        _check_dps(dps)
        (sw, sb, q0a), shape = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q0, "q0"))
        result = self._fixed_point_arrays(sw, sb, q0a)
        if dps is not None:
            result = self._polish(result, dps)
        return result.reshaped(shape)

    def _q_star(self, sw, sb, q0, guess=None):
        """(q*, χ₁, χ_q, regime codes) at the points."""
        qs, flag = solve_q_star(self._F(sw, sb), q0, guess)
        finite = flag < 0
        chi1, chi_q = np.full(qs.size, np.nan), np.full(qs.size, np.nan)
        if finite.any():
            at = np.flatnonzero(finite)
            params = self._parameters(sw, sb, at)
            _, chi_q[at], chi1[at] = self._maps.q_map(np.maximum(qs[at], Q_FLOOR), params)
        regime = np.where(flag >= 0, flag, np.where(chi1 < 1, Regime.ORDERED,
                                                     np.where(chi1 > 1, Regime.CHAOTIC, Regime.CRITICAL)))
        if self.standard and np.any(flag == Regime.Q_ZERO):  # q → 0: marginal where χ₁(0⁺) = 1
            zero = np.flatnonzero(flag == Regime.Q_ZERO)
            _, slope, limit = self._maps.q_map(np.full(zero.size, Q_MIN), self._parameters(sw, sb, zero))
            marginal = np.abs(limit - 1) <= MARGINAL_TOLERANCE
            regime[zero[marginal]] = Regime.MARGINAL
            slope = np.where(np.abs(slope - 1) <= 1e-9, 1.0, slope)  # the limit, within the tables' error
            chi1[zero[marginal]], chi_q[zero[marginal]] = 1.0, slope[marginal]
        return qs, chi1, chi_q, regime.astype(np.int8)

    def _fixed_point_arrays(self, sw, sb, q0, guess_q=None, guess_c=None) -> FixedPoint:
        qs, chi1, chi_q, regime = self._q_star(sw, sb, q0, guess_q)
        finite = np.isfinite(chi_q) & (regime != Regime.MARGINAL)
        cs = np.where(finite, 1.0, np.nan)
        chi_c = np.where(finite | (regime == Regime.MARGINAL), chi1, np.nan)  # marginal: the c-map → id
        chaotic = np.flatnonzero(regime == Regime.CHAOTIC)
        if chaotic.size:
            cs[chaotic], chi_c[chaotic] = self._c_star(qs[chaotic], sw[chaotic], sb[chaotic],
                                                       None if guess_c is None else guess_c[chaotic])
        return FixedPoint(sw, sb, qs, cs, chi1, chi_q, chi_c, regime, self.method)

    def _c_star(self, qs, sw, sb, guess=None):
        """(c*, χ_c) at chaotic points: the smallest root of R(s) in s = 1 − c; c* = 0 exactly
        for an odd φ without bias (the c-map is odd in c then, and convex on [0, 1])."""
        exact = np.zeros(qs.size, bool)
        if self.standard and is_odd(self.activation):
            exact = sb == 0
        ss = np.ones(qs.size)
        rest = np.flatnonzero(~exact)
        cmap = self._maps.correlation_map(qs, self._parameters(sw, sb))
        if rest.size:
            ss[rest] = solve_s_star(self._R(cmap, rest), rest.size,
                                    None if guess is None else 1 - guess[rest])
        _, slope, _ = cmap(ss)
        return 1 - ss, slope

    def _polish(self, fp: FixedPoint, dps: int) -> FixedPoint:
        """The float fixed point refined to `dps` digits by the secant method on mpmath values."""
        out = {k: np.empty(fp.q_star.size, dtype=object) for k in ("q", "c", "chi1", "chi_q", "chi_c")}
        maps = self._maps
        for i in range(fp.q_star.size):
            with mp.workdps(dps + 10):
                params = {SIGMA_W2: _decimal(fp.sigma_w2[i]), SIGMA_B2: _decimal(fp.sigma_b2[i])}
                if fp.regime[i] in (Regime.Q_INFINITE, Regime.Q_ZERO, Regime.MARGINAL):
                    infinite = fp.regime[i] == Regime.Q_INFINITE
                    limit = mp.mpf(1) if fp.regime[i] == Regime.MARGINAL else mp.nan
                    values = (mp.inf if infinite else mp.mpf(0), mp.nan, limit, limit, limit)
                else:
                    values = self._mp_point(maps, params, fp, i, dps)
            with mp.workdps(dps):
                for key, value in zip(out, values, strict=True):
                    out[key][i] = +value
        method = f"{fp.method}; refined to {dps} digits with mpmath"
        return FixedPoint(fp.sigma_w2, fp.sigma_b2, out["q"], out["c"], out["chi1"], out["chi_q"],
                          out["chi_c"], fp.regime, method, dps)

    @staticmethod
    def _mp_q(maps, params, guess, dps):
        qv = mp_root(_fixed(maps, params, dps), guess, dps)
        chi1 = maps.mp_q_map(qv, params, dps)[1]
        with mp.workdps(dps + 20):
            chi_q = mp.diff(lambda t: maps.mp_q_map(t, params, dps + 10, backward=False)[0], qv)
        return qv, chi1, chi_q

    def _mp_point(self, maps, params, fp, i, dps, with_c: bool = True):
        qv, chi1, chi_q = self._mp_q(maps, params, fp.q_star[i], dps)
        if fp.regime[i] != Regime.CHAOTIC or not with_c:
            return qv, mp.mpf(1), chi1, chi_q, chi1
        if fp.c_star[i] == 0 and self.standard and is_odd(self.activation) and params[SIGMA_B2] == 0:
            sv = mp.mpf(1)
        else:
            sv = mp_root(lambda t: maps.mp_s_map(qv, t, params, dps, backward=False)[0] / t - 1,
                         1 - fp.c_star[i], dps)
        _, cross, q_next = maps.mp_s_map(qv, sv, params, dps)
        return qv, 1 - sv, chi1, chi_q, cross * qv / q_next

    @_numeric_call
    def q_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """The fixed point q* of the q-map (inf if q grows without bound, 0 if it decays to 0)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "q_star", with_c=False)

    @_numeric_call
    def c_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """The stable correlation fixed point c* (1 in the ordered phase; NaN without finite q*)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "c_star")

    @_numeric_call
    def chi1_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """χ₁ = σ_w² ∫Dz φ′(√q* z)² at the fixed point (NaN without finite q*)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "chi1", with_c=False)

    def _scalar_fixed_point(self, sigma_w2, sigma_b2, q0, dps, name, with_c=True):
        _check_dps(dps)
        if with_c:
            return getattr(self.fixed_point(sigma_w2, sigma_b2, q0=q0, dps=dps), name)
        (sw, sb, q0a), shape = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q0, "q0"))
        qs, chi1, _, regime = self._q_star(sw, sb, q0a)
        if dps is None:
            return output(qs if name == "q_star" else chi1, shape)
        values = np.empty(qs.size, dtype=object)
        for i in range(qs.size):
            with mp.workdps(dps + 10):
                if regime[i] in (Regime.Q_INFINITE, Regime.Q_ZERO, Regime.MARGINAL):
                    value = (mp.inf if regime[i] == Regime.Q_INFINITE else mp.mpf(0)) if name == "q_star" \
                        else (mp.mpf(1) if regime[i] == Regime.MARGINAL else mp.nan)
                else:
                    params = {SIGMA_W2: _decimal(sw[i]), SIGMA_B2: _decimal(sb[i])}
                    qv = mp_root(_fixed(self._maps, params, dps), qs[i], dps)
                    value = qv if name == "q_star" else self._maps.mp_q_map(qv, params, dps)[1]
            with mp.workdps(dps):
                values[i] = +value
        return output(values, shape)

    @_numeric_call
    def depth_scales(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None) -> DepthScales:
        """ξ_q, ξ_c, ξ_∇ (and χ_q, χ_c, χ₁) at the fixed point (Schoenholz et al. 2017, eqs. 7-10).
        NaN where q* is not finite; the FixedPoint's regime says why."""
        return DepthScales.of(self.fixed_point(sigma_w2, sigma_b2, q0=q0, dps=dps))

    @_numeric_call
    def critical_point(self, sigma_b2, *, dps=None) -> CriticalPoint:
        """(σ_w², q*) where χ₁ = 1 at the given σ_b² (floats or arrays; `dps` for mpmath), at a
        fixed point the q-map reaches; NaN where there is none."""
        _check_dps(dps)
        (sb,), shape = self._numeric((sigma_b2, "sigma_b2"))
        if self.standard:
            sw, qs = self._critical_parametric(sb)
        else:
            sw, qs = self._critical_search(sb)
        method = self.method
        if dps is not None:
            sw, qs = self._polish_critical(sb, sw, qs, dps)
            method += f"; refined to {dps} digits with mpmath"
        return CriticalPoint(output(sw, shape), output(sb, shape), output(qs, shape), method)

    def _critical_parametric(self, sb):
        """The smallest q with B(q) = q − V(q)/D(q) = σ_b² whose variance fixed point is stable
        (χ_q = σ_w² V′(q*) <= 1, so that the q-map reaches it) and σ_w² = 1/D(q*) (Schoenholz et
        al. 2017, eq. 9).  Roots are bracketed on a grid in q from 1e-8 to 1e16 (ratio 2^(1/4)) and
        refined by Newton's method.  At σ_b² = 0 with B > 0 from the start, q* = 0 and σ_w² =
        1/D(0⁺) — kept only where the q-map iterated from q⁰ = 1 does not diverge there (for swish
        it does: that critical point is degenerate, and refused)."""
        ev = equal_variances(self.activation)
        grid = np.geomspace(1e-8, 1e16, 4 * 80 + 1)
        V, _, D, _ = ev.one(grid)
        excess = sb[:, None] - (grid - V / D)[None, :]  # σ_b² − B(q): positive below a rising root
        sign = np.sign(excess)
        rows, cols = np.nonzero(sign[:, :-1] * sign[:, 1:] < 0)
        positive = excess[rows, cols] > 0
        lo = np.where(positive, grid[cols], grid[cols + 1])
        hi = np.where(positive, grid[cols + 1], grid[cols])

        def newton_f(v, a):
            V, Vq, D, Dq = ev.one(v)
            return sb[rows[a]] - (v - V / D), (Vq * D - V * Dq) / D**2 - 1

        roots = bracketed_newton(newton_f, lo.copy(), hi.copy(), np.sqrt(lo * hi), True, 1e-14)
        at_zero = np.flatnonzero((sb == 0) & (excess[:, 0] <= 0))
        if at_zero.size:
            D0 = ev.one(np.array([Q_MIN]))[2][0]
            _, _, _, regime = self._q_star(np.full(at_zero.size, 1 / D0), sb[at_zero], np.ones(at_zero.size))
            at_zero = at_zero[regime != Regime.Q_INFINITE]
        rows = np.concatenate([at_zero, rows])
        roots = np.concatenate([np.zeros(at_zero.size), roots])
        _, Vq, D, _ = ev.one(np.maximum(roots, Q_MIN))
        stable = Vq / D <= 1 + 1e-9  # χ_q = σ_w² V′ with σ_w² = 1/D
        qs, sw = np.full(sb.size, np.nan), np.full(sb.size, np.nan)
        for i in np.argsort(-roots[stable]):  # the smallest stable root of each σ_b² is written last
            row = rows[stable][i]
            qs[row], sw[row] = roots[stable][i], 1 / D[stable][i]
        return sw, qs

    def _critical_search(self, sb, lo: float = 1e-3, hi: float = 1e3, n: int = 61):
        """σ_w² with χ₁(q*(σ_w², σ_b²)) = 1 for a general block: the first sign change of χ₁ − 1 on a
        grid of σ_w² (geometric, [lo, hi]) at finite q*, refined by false position (Illinois)."""
        if SIGMA_W2 not in self._symbols:
            raise DomainError("the block has no sigma_w2 symbol to solve the critical surface for: "
                              "write its Dense layers as Dense(sigma_w2, sigma_b2)")
        grid = np.geomspace(lo, hi, n)
        W, B = np.meshgrid(grid, sb, indexing="ij")
        _, chi1, _, _ = self._q_star(W.ravel(), B.ravel(), np.ones(W.size))
        excess = (chi1.reshape(W.shape) - 1).T  # (n_b, n)
        sw, qs = np.full(sb.size, np.nan), np.full(sb.size, np.nan)
        for row in range(sb.size):
            e = excess[row]
            finite = np.isfinite(e[:-1]) & np.isfinite(e[1:])
            crossing = np.flatnonzero(finite & (np.sign(e[:-1]) != np.sign(e[1:])))
            if not crossing.size:
                continue
            j = crossing[0]
            a, b, fa, fb = grid[j], grid[j + 1], e[j], e[j + 1]
            for _ in range(60):
                m = (a * fb - b * fa) / (fb - fa)
                fm = self._q_star(np.array([m]), sb[row:row + 1], np.ones(1))[1][0] - 1
                if not np.isfinite(fm):
                    break
                if np.sign(fm) == np.sign(fa):
                    a, fa, fb = m, fm, fb / 2
                else:
                    b, fb, fa = m, fm, fa / 2
                if abs(b - a) <= 1e-14 * m or fm == 0:
                    break
            sw[row] = m
            qs[row] = self._q_star(np.array([m]), sb[row:row + 1], np.ones(1))[0][0]
        return sw, qs

    def _polish_critical(self, sb, sw, qs, dps):
        out_w, out_q = np.empty(sb.size, dtype=object), np.empty(sb.size, dtype=object)
        for i in range(sb.size):
            if not np.isfinite(qs[i]):
                out_w[i], out_q[i] = mp.nan, mp.nan
                continue
            with mp.workdps(dps + 10):
                b = _decimal(sb[i])
                if self.standard:
                    V, D = moments_of(self.activation).V, moments_of(self.activation).D
                    if qs[i] == 0:
                        qv, w = mp.mpf(0), 1 / D.mp(mp.mpf(10) ** (-2 * dps - 20), dps=dps + 10)
                    else:
                        def excess(t, b=b, V=V, D=D):
                            return t - V.mp(t, dps=dps + 10) / D.mp(t, dps=dps + 10) - b

                        qv = mp_root(excess, qs[i], dps)
                        w = 1 / D.mp(qv, dps=dps + 10)
                else:
                    def chi_minus_one(wv, b=b, guess=qs[i]):
                        return self._mp_q(self._maps, {SIGMA_W2: wv, SIGMA_B2: b}, guess, dps)[1] - 1

                    w = mp_root(chi_minus_one, sw[i], dps)
                    qv = self._mp_q(self._maps, {SIGMA_W2: w, SIGMA_B2: b}, qs[i], dps)[0]
            with mp.workdps(dps):
                out_w[i], out_q[i] = +w, +qv
        return out_w, out_q

    @_numeric_call
    def critical_sigma_w2(self, sigma_b2, dps=None):
        """The critical σ_w² (χ₁ = 1) at σ_b²; a scalar σ_b² without one raises NoFixedPointError,
        arrays get NaN there."""
        value = self.critical_point(sigma_b2, dps=dps).sigma_w2
        if np.ndim(value) == 0 and not (mp.isfinite(value) if dps else np.isfinite(value)):
            raise NoFixedPointError(self.critical_line().no_point_message(float(np.asarray(sigma_b2))))
        return value

    def network(self, depth: int, sigma_w2=None, sigma_b2=None):
        """The finite-depth network the theory describes, as a layer stack for
        :mod:`derive.simulate`: for the standard block an input ``Dense`` and ``depth − 1`` blocks
        ``serial(φ, Dense)``, so that layer l's Dense output is the pre-activation h^l of variance
        q^l; for a general block ``depth`` copies of it."""
        _check_depth(depth)
        if not self.standard:
            values = {k: v for k, v in ((SIGMA_W2, sigma_w2), (SIGMA_B2, sigma_b2)) if v is not None}
            return repeat(_substituted(self.block, values), depth)
        w = self.sigma_w2 if sigma_w2 is None else _variance(sigma_w2, "sigma_w2")
        b = self.sigma_b2 if sigma_b2 is None else _variance(sigma_b2, "sigma_b2")
        return serial(Dense(w, b), repeat(serial(self.activation, Dense(w, b)), depth - 1))

    @_numeric_call
    def propagate(self, depth: int, sigma_w2=None, sigma_b2=None, *, q1=1.0, c1=None) -> Trajectory:
        """q^l (and c^l for two inputs of equal variance) for l = 1..depth from q¹ (and c¹)."""
        _check_depth(depth)
        if c1 is not None and not -1 <= c1 <= 1:
            raise DomainError(f"c1 = {c1} must be a correlation in [-1, 1]")
        (sw, sb, qv), _ = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q1, "q1"))
        if sw.size != 1:
            raise DomainError("propagate takes one (sigma_w2, sigma_b2, q1); loop for several")
        params = self._parameters(sw, sb)
        qs, cs = [float(qv[0])], [np.nan if c1 is None else float(c1)]
        for _ in range(depth - 1):
            here = np.array([max(qs[-1], Q_FLOOR)])
            if c1 is not None:
                cs.append(float(1 - self._maps.s_map(here, np.array([1 - cs[-1]]), params)[0][0]))
            qs.append(float(self._maps.q_map(here, params)[0][0]))
        return Trajectory(np.array(qs), np.array(cs) if c1 is not None else None)

    @_numeric_call
    def gradients(self, depth: int, sigma_w2=None, sigma_b2=None, *, widths=None, q1=None) -> GradientRatios:
        """The backward pass: per-unit squared gradients with respect to the pre-activations,
        q̃^l / q̃^L = Π_{k=l}^{L-1} (M_{k+1}/M_k) χ₁(q^k) (Schoenholz et al. 2017, eq. 13,
        gradient-independence assumption), along the forward variances q^l from q¹ (default q*);
        widths = (M_1, ..., M_L) (default all equal).  Weight gradients (standard block only)
        use ‖x^l‖² = M_l V(q^l)."""
        _check_depth(depth)
        (sw, sb), _ = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"))
        if sw.size != 1:
            raise DomainError("gradients takes one (sigma_w2, sigma_b2); loop for several")
        widths = np.ones(depth) if widths is None else np.asarray(widths, dtype=float)
        if widths.shape != (depth,) or np.any(widths <= 0):
            raise DomainError(f"widths must be {depth} positive numbers M_1..M_L, got {widths!r}")
        start = self.q_star(sw[0], sb[0]) if q1 is None else float(q1)
        if not (np.isfinite(start) and start > 0):
            raise NoFixedPointError("no finite q* to start the backward pass from; give q1")
        qs = self.propagate(depth, sw[0], sb[0], q1=start).q
        params = {SIGMA_W2: np.full(depth, sw[0]), SIGMA_B2: np.full(depth, sb[0])}
        chi = self._maps.q_map(np.maximum(qs, Q_FLOOR), params)[2]
        factor = chi[:-1] * widths[1:] / widths[:-1]
        delta = np.append(np.cumprod(factor[::-1])[::-1], 1.0)
        weight = np.full(depth, np.nan)
        if self.standard:
            V = equal_variances(self.activation).one(np.maximum(qs, Q_FLOOR))[0]
            x_norm = widths * V  # ‖x^l‖² = M_l V(q^l); the weight gradient of layer l uses x^{l-1}
            weight[1:] = delta[1:] * widths[1:] * x_norm[:-1] / (widths[-1] * x_norm[-2])
        chi1 = self._maps.q_map(np.array([max(self.q_star(sw[0], sb[0]), Q_FLOOR)]),
                                self._parameters(sw, sb))[2][0]
        return GradientRatios(qs, widths, delta, weight, float(xi(chi1)))

    @_numeric_call
    def phase_diagram(self, sigma_w2_grid, sigma_b2_grid, *, q0=1.0, stride: int = 8,
                      progress=None) -> PhaseDiagram:
        """q*, χ₁, c*, ξ_c on the grid σ_w2_grid × σ_b2_grid (indexed [i_w, i_b]) and the critical
        curve.  Large grids are solved on every `stride`-th row and column first; that solution
        interpolated starts Newton's method everywhere, and points where it does not converge to a
        stable root in a few steps go to the full solver.  `progress(message)` hears each stage."""
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
            raise DomainError(f"stride = {stride!r} must be a positive integer")
        w = np.asarray(sigma_w2_grid, dtype=float).ravel()
        b = np.asarray(sigma_b2_grid, dtype=float).ravel()
        if not (w.size and b.size):
            raise DomainError("the grids of sigma_w2 and sigma_b2 must not be empty")
        (W, B), _ = self._numeric((w[:, None], "sigma_w2"), (b[None, :], "sigma_b2"))
        say = progress or (lambda message: None)
        shape = (w.size, b.size)
        guess_q = guess_c = None
        if min(shape) > 4 * stride:
            iw, ib = _coarse(w.size, stride), _coarse(b.size, stride)
            say(f"coarse grid {iw.size} x {ib.size}")
            coarse = self._fixed_point_arrays(np.repeat(w[iw], ib.size), np.tile(b[ib], iw.size),
                                              np.full(iw.size * ib.size, float(q0)))
            guess_q = _interpolate(coarse.q_star.reshape(iw.size, ib.size), iw, ib, shape).ravel()
            guess_c = _interpolate(coarse.c_star.reshape(iw.size, ib.size), iw, ib, shape).ravel()
        say(f"full grid {shape[0]} x {shape[1]}")
        fp = self._fixed_point_arrays(W, B, np.full(W.size, float(q0)), guess_q, guess_c).reshaped(shape)
        say("critical line")
        critical = self.critical_point(b)
        return PhaseDiagram(self.name, w, b, fp.q_star, fp.chi1, fp.c_star, xi(fp.chi_c),
                            fp.regime, critical.sigma_w2, fp.method)


def _fixed(maps, params: dict, dps: int):
    """t ↦ q-map(t) − t at `dps` digits (one argument: mpmath's findroot reads the arity)."""
    def residual(t):
        return maps.mp_q_map(t, params, dps)[0] - t

    return residual


def _substituted(block, values: dict):
    """The block with numbers for its σ_w², σ_b² symbols (for simulating it)."""
    import dataclasses

    if not values:
        return block
    if isinstance(block, Dense):
        return dataclasses.replace(block, sigma_w2=sp.sympify(block.sigma_w2).xreplace(values),
                                   sigma_b2=sp.sympify(block.sigma_b2).xreplace(values))
    changes = {f.name: _substituted_field(getattr(block, f.name), values)
               for f in dataclasses.fields(block) if f.name in ("layers", "block", "branch")}
    return dataclasses.replace(block, **changes) if changes else block


def _substituted_field(value, values):
    if isinstance(value, tuple):
        return tuple(_substituted(v, values) for v in value)
    return _substituted(value, values)


def _check_depth(depth) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 1:
        raise DomainError(f"depth = {depth!r} must be a positive integer (the number of layers)")


def _coarse(n: int, stride: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, n, stride), n - 1))


def _interpolate(values, iw, ib, shape):
    """The sub-grid solution (iw × ib) interpolated to the full grid in index space: cubic
    (4-point Lagrange along each axis, error O(stride⁴) where the solution is smooth, so that
    one Newton step polishes most points), bilinear where the cubic is not finite or leaves the
    range of its 4 × 4 coarse values (it rings next to a kink, such as the edge of the chaotic
    phase, where c* = 1 on one side)."""
    (cw, lw), (cb, lb) = _stencils(iw, shape[0]), _stencils(ib, shape[1])
    with np.errstate(invalid="ignore", over="ignore"):
        cubic = _along(_along(values, *cw, 0), *cb, 1)
        low, high = values, values
        for axis in (0, 1):  # the extremes of each 4 x 4 stencil, one axis at a time
            n = values.shape[axis] - 3
            low = np.minimum.reduce([low.take(range(m, m + n), axis) for m in range(4)])
            high = np.maximum.reduce([high.take(range(m, m + n), axis) for m in range(4)])
        first_w, first_b = cw[0][:, 0], cb[0][:, 0]
        inside = (cubic >= low[first_w][:, first_b]) & (cubic <= high[first_w][:, first_b])
        i, j = np.nonzero(~(inside & np.isfinite(cubic)))
        (wi, ui), (wj, uj) = (lw[0][i], lw[1][i]), (lb[0][j], lb[1][j])
        cubic[i, j] = sum(ui[:, a] * uj[:, c] * values[wi[:, a], wj[:, c]] for a in (0, 1) for c in (0, 1))
    return cubic


def _stencils(coarse: np.ndarray, n: int):
    """For the fine indices 0..n−1 on the sorted coarse indices: (positions, weights) of the cubic
    Lagrange rule on the 4 nearest coarse nodes (shifted inside at the ends), and of the linear
    rule on the enclosing cell."""
    fine = np.arange(n, dtype=float)
    cell = np.clip(np.searchsorted(coarse, fine, side="right") - 1, 0, coarse.size - 2)
    u = (fine - coarse[cell]) / (coarse[cell + 1] - coarse[cell])
    linear = (np.stack([cell, cell + 1], axis=1), np.stack([1 - u, u], axis=1))
    where = np.clip(cell - 1, 0, coarse.size - 4)[:, None] + np.arange(4)
    nodes = coarse[where].astype(float)
    weights = np.ones((n, 4))
    for m in range(4):
        for other in range(4):
            if other != m:
                weights[:, m] *= (fine - nodes[:, other]) / (nodes[:, m] - nodes[:, other])
    return (where, weights), linear


def _along(values, where, weights, axis: int):
    """Σ_m weights[i, m] values[where[i, m]] along `axis` for each fine index i."""
    if axis == 0:
        out = weights[:, :1] * values[where[:, 0]]
        for m in range(1, where.shape[1]):
            out += weights[:, m:m + 1] * values[where[:, m]]
        return out
    out = weights[:, 0] * values[:, where[:, 0]]
    for m in range(1, where.shape[1]):
        out += weights[:, m] * values[:, where[:, m]]
    return out
