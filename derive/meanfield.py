r"""Mean-field signal propagation: q/c maps, fixed points, χ₁, depth scales, the critical line.

A wide random network h^l = W^l φ(h^{l-1}) + b^l, W_ij ~ N(0, σ_w²/M), b_i ~ N(0, σ_b²),
propagates the variance q of its pre-activations and the correlation c of two inputs
by the maps of one block ``serial(φ, Dense(σ_w², σ_b²))`` (Poole et al. 2016, eqs. 3-5;
Schoenholz et al. 2017, eqs. 1-6):

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
of :mod:`derive.meanfield_results`; each says how its numbers were obtained (``method``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.activations import activation as make_activation
from derive.errors import DomainError, NoFixedPointError
from derive.fixedpoints import (
    MapFunctions,
    MpFunctions,
    Regime,
    mp_root,
    solve_c_star,
    solve_critical,
    solve_q_star,
)
from derive.gaussian import GaussianExpectation
from derive.gaussian.tables import single_threaded_blas
from derive.layers import Dense, KernelState, repeat, serial
from derive.meanfield_results import (
    CriticalLine,
    CriticalPoint,
    DepthScales,
    FixedPoint,
    GradientRatios,
    PhaseDiagram,
    Trajectory,
    _latex_of,
    _output,
    _xi,
)
from derive.parsing import as_expr
from derive.symbols import c, q, q1, q2, q_star
from derive.symbols import sigma_b2 as SIGMA_B2
from derive.symbols import sigma_w2 as SIGMA_W2

__all__ = ["MeanField", "CriticalLine", "CriticalPoint", "FixedPoint", "DepthScales", "PhaseDiagram",
           "GradientRatios", "Trajectory", "Regime"]


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


@lru_cache(maxsize=32)
def _map_functions(act: Activation) -> MapFunctions:
    """The float64 evaluators of an activation's expectations (shared by every σ_w², σ_b²)."""
    return MapFunctions(act, MeanField(act, 1, 0).expectations)


@dataclass(frozen=True, init=False)
class MeanField:
    """The mean-field theory of a deep fully connected network with activation φ.

    ``MeanField(activation, sigma_w2=None, sigma_b2=None)``: an activation object,
    name or formula; the variances default to the symbols σ_w², σ_b², or are numbers
    (then the numeric methods use them when called without arguments).
    """

    activation: Activation
    sigma_w2: sp.Expr
    sigma_b2: sp.Expr

    def __init__(self, activation, sigma_w2=None, sigma_b2=None):
        w = SIGMA_W2 if sigma_w2 is None else _variance(sigma_w2, "sigma_w2")
        b = SIGMA_B2 if sigma_b2 is None else _variance(sigma_b2, "sigma_b2")
        object.__setattr__(self, "activation", make_activation(activation))
        object.__setattr__(self, "sigma_w2", w)
        object.__setattr__(self, "sigma_b2", b)

    def __repr__(self) -> str:
        return f"MeanField({self.activation.name!r}, sigma_w2={self.sigma_w2}, sigma_b2={self.sigma_b2})"

    # --- symbolic ------------------------------------------------------------------------------

    @cached_property
    def block(self):
        """One layer of the network: ``serial(φ, Dense(σ_w², σ_b²))``."""
        return serial(self.activation, Dense(self.sigma_w2, self.sigma_b2))

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
        """χ₁ = σ_w² ∫Dz φ′(√q z)² as a function of q (the slope of the c-map at c = 1)."""
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
        """The Gaussian expectations the maps are made of, as functions of q (and c):
        V = E φ(u)², Vq = dV/dq, D = E φ′(u)², Dq = dD/dq, C = E φ(u)φ(v), Cd = E φ′(u)φ′(v)."""
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
        return not any(e.has(GaussianExpectation) for e in self.expectations.values())

    def critical_line(self) -> CriticalLine:
        """The χ₁ = 1 line in the best closed form that exists (see :class:`CriticalLine`)."""
        return CriticalLine.of(self)

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
        return f"$\\displaystyle {_latex_of(self)}{note}$"

    # --- numeric -------------------------------------------------------------------------------

    @property
    def _functions(self) -> MapFunctions:
        if self.activation.parameters:
            names = ", ".join(sorted(map(str, self.activation.parameters)))
            raise DomainError(f"the activation has free parameters ({names}); substitute numbers "
                              "before evaluating numerically")
        return _map_functions(self.activation)

    @property
    def method(self) -> str:
        """How numbers are obtained for this activation (closed form or quadrature, tables, error)."""
        return self._functions.method

    def _numeric(self, *named):
        """Broadcast (value, name) pairs to flat float arrays; None takes the instance's value.
        Variances must be finite and >= 0, a correlation "c" must lie in [-1, 1]."""
        arrays = []
        for value, name in named:
            if value is None:
                own = getattr(self, name)
                if not own.is_number:
                    raise DomainError(f"give {name}: this MeanField holds the symbol {own}")
                value = float(own)
            try:
                arr = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise DomainError(f"{name} must be a number or an array of numbers, got {value!r}") from None
            low, high = (-1.0, 1.0) if name == "c" else (0.0, np.inf)
            if not np.all((arr >= low) & (arr <= high) & np.isfinite(arr)):
                where = "in [-1, 1]" if name == "c" else "finite and >= 0"
                raise DomainError(f"{name} must be {where}, got {value!r}")
            arrays.append(arr)
        arrays = np.broadcast_arrays(*arrays)
        return [a.ravel() for a in arrays], arrays[0].shape

    @single_threaded_blas
    def apply_q_map(self, qv, sigma_w2=None, sigma_b2=None):
        """The q-map evaluated at q (floats or arrays)."""
        (qv, sw, sb), shape = self._numeric((qv, "q"), (sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"))
        return _output(sw * self._functions.one(np.maximum(qv, 1e-300))[0] + sb, shape)

    @single_threaded_blas
    def apply_c_map(self, qv, cv, sigma_w2=None, sigma_b2=None):
        """The c-map at (q, c) for two inputs of equal variance q."""
        (qv, cv, sw, sb), shape = self._numeric((qv, "q"), (cv, "c"), (sigma_w2, "sigma_w2"),
                                                (sigma_b2, "sigma_b2"))
        fns = self._functions
        return _output((sw * fns.c_numerator(qv, cv) + sb) / (sw * fns.one(qv)[0] + sb), shape)

    @single_threaded_blas
    def fixed_point(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None) -> FixedPoint:
        """q*, c*, χ₁, χ_q, χ_c and the regime at (σ_w², σ_b²) (floats or arrays, broadcast).

        q* is the limit of the q-map iterated from q⁰; c* is 1 in the ordered phase and the
        largest fixed point below 1 in the chaotic one.  With `dps`, the values are mpmath
        numbers computed at that precision, float inputs read as the decimals they print as
        (0.05 is 1/20).  2-D quadrature at high precision is slow: without a closed form
        for E φ(u)φ(v), c* at `dps` takes minutes."""
        (sw, sb, q0a), shape = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q0, "q0"))
        result = self._fixed_point_arrays(sw, sb, q0a)
        if dps is not None:
            result = self._polish(result, dps)
        return result.reshaped(shape)

    def _fixed_point_arrays(self, sw, sb, q0, guess_q=None, guess_c=None) -> FixedPoint:
        fns = self._functions
        qs, flag = solve_q_star(fns, sw, sb, q0, guess_q)
        finite = flag < 0
        chi1 = np.full(sw.size, np.nan)
        chi_q = np.full(sw.size, np.nan)
        _, Vq, D, _ = fns.one(qs[finite])
        chi1[finite], chi_q[finite] = sw[finite] * D, sw[finite] * Vq
        regime = np.where(flag >= 0, flag, np.where(chi1 < 1, Regime.ORDERED,
                                                     np.where(chi1 > 1, Regime.CHAOTIC, Regime.CRITICAL)))
        cs = np.where(regime == Regime.CHAOTIC, np.nan, np.where(finite, 1.0, np.nan))
        chi_c = np.where(finite, chi1, np.nan)
        chaotic = np.flatnonzero(regime == Regime.CHAOTIC)
        if chaotic.size:
            gc = None if guess_c is None else guess_c[chaotic]
            cs[chaotic] = solve_c_star(fns, qs[chaotic], sw[chaotic], gc)
            chi_c[chaotic] = sw[chaotic] * fns.cd(qs[chaotic], cs[chaotic])
        return FixedPoint(sw, sb, qs, cs, chi1, chi_q, chi_c, regime.astype(np.int8), fns.method)

    def _polish(self, fp: FixedPoint, dps: int) -> FixedPoint:
        """The float fixed point refined to `dps` digits by the secant method on mpmath values."""
        mpf = MpFunctions(self.expectations, dps)
        out = {k: np.empty(fp.q_star.size, dtype=object) for k in ("q", "c", "chi1", "chi_q", "chi_c")}
        for i in range(fp.q_star.size):
            with mp.workdps(dps + 10):
                w, b = _decimal(fp.sigma_w2[i]), _decimal(fp.sigma_b2[i])
                if fp.regime[i] in (Regime.Q_INFINITE, Regime.Q_ZERO):
                    values = (mp.inf if fp.regime[i] == Regime.Q_INFINITE else mp.mpf(0),) + (mp.nan,) * 4
                else:
                    qv = mp_root(lambda t, w=w, b=b: w * mpf.V(t) + b - t, fp.q_star[i], dps)
                    chi1, chi_q = w * mpf.D(qv), w * mpf.Vq(qv)
                    if fp.regime[i] == Regime.CHAOTIC:
                        cv = mp_root(lambda t, qv=qv, w=w: mpf.g(qv, t) - qv / w, fp.c_star[i], dps)
                        chi_c = w * mpf.Cd(qv, cv)
                    else:
                        cv, chi_c = mp.mpf(1), chi1
                    values = (qv, cv, chi1, chi_q, chi_c)
            with mp.workdps(dps):
                for key, value in zip(out, values, strict=True):
                    out[key][i] = +value
        method = f"{fp.method}; refined to {dps} digits with mpmath"
        return FixedPoint(fp.sigma_w2, fp.sigma_b2, out["q"], out["c"], out["chi1"], out["chi_q"],
                          out["chi_c"], fp.regime, method, dps)

    @single_threaded_blas
    def q_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """The fixed point q* of the q-map (inf if q grows without bound, 0 if it decays to 0)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "q_star", with_c=False)

    @single_threaded_blas
    def c_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """The stable correlation fixed point c* (1 in the ordered phase; NaN without finite q*)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "c_star")

    @single_threaded_blas
    def chi1_star(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None):
        """χ₁ = σ_w² ∫Dz φ′(√q* z)² at the fixed point (NaN without finite q*)."""
        return self._scalar_fixed_point(sigma_w2, sigma_b2, q0, dps, "chi1", with_c=False)

    def _scalar_fixed_point(self, sigma_w2, sigma_b2, q0, dps, name, with_c=True):
        if with_c or dps is not None:
            return getattr(self.fixed_point(sigma_w2, sigma_b2, q0=q0, dps=dps), name)
        (sw, sb, q0a), shape = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q0, "q0"))
        qs, flag = solve_q_star(self._functions, sw, sb, q0a)
        if name == "q_star":
            return _output(qs, shape)
        chi1 = np.full(qs.size, np.nan)
        finite = flag < 0
        chi1[finite] = sw[finite] * self._functions.one(qs[finite])[2]
        return _output(chi1, shape)

    @single_threaded_blas
    def depth_scales(self, sigma_w2=None, sigma_b2=None, *, q0=1.0, dps=None) -> DepthScales:
        """ξ_q, ξ_c, ξ_∇ (and χ_q, χ_c, χ₁) at the fixed point (Schoenholz et al. 2017, eqs. 7-10)."""
        return DepthScales.of(self.fixed_point(sigma_w2, sigma_b2, q0=q0, dps=dps))

    @single_threaded_blas
    def critical_point(self, sigma_b2, *, dps=None) -> CriticalPoint:
        """(σ_w², q*) where χ₁ = 1 at the given σ_b² (floats or arrays; `dps` for mpmath)."""
        (sb,), shape = self._numeric((sigma_b2, "sigma_b2"))
        fns = self._functions
        sw, qs = solve_critical(fns, sb)
        method = fns.method
        if dps is not None:
            sw, qs = self._polish_critical(sb, sw, qs, dps)
            method += f"; refined to {dps} digits with mpmath"
        return CriticalPoint(_output(sw, shape), _output(sb, shape), _output(qs, shape), method)

    def _polish_critical(self, sb, sw, qs, dps):
        mpf = MpFunctions(self.expectations, dps)
        out_w, out_q = np.empty(sb.size, dtype=object), np.empty(sb.size, dtype=object)
        for i in range(sb.size):
            if not np.isfinite(qs[i]):
                out_w[i], out_q[i] = mp.nan, mp.nan
                continue
            with mp.workdps(dps + 10):
                if qs[i] == 0:
                    qv = mp.mpf(0)
                    w = 1 / mpf.D(mp.mpf(10) ** (-2 * dps - 20))
                else:
                    b = _decimal(sb[i])
                    qv = mp_root(lambda t, b=b: t - mpf.V(t) / mpf.D(t) - b, qs[i], dps)
                    w = 1 / mpf.D(qv)
            with mp.workdps(dps):
                out_w[i], out_q[i] = +w, +qv
        return out_w, out_q

    @single_threaded_blas
    def critical_sigma_w2(self, sigma_b2, dps=None):
        """The critical σ_w² (χ₁ = 1) at σ_b²; a scalar σ_b² without one raises NoFixedPointError,
        arrays get NaN there."""
        value = self.critical_point(sigma_b2, dps=dps).sigma_w2
        if np.ndim(value) == 0 and not (mp.isfinite(value) if dps else np.isfinite(value)):
            raise NoFixedPointError(self.critical_line().no_point_message(float(np.asarray(sigma_b2))))
        return value

    def network(self, depth: int, sigma_w2=None, sigma_b2=None):
        """The finite-depth network the theory describes, as a layer stack for
        :mod:`derive.simulate`: an input ``Dense`` and ``depth − 1`` blocks ``serial(φ, Dense)``, so
        that layer l's Dense output is the pre-activation h^l of variance q^l."""
        _check_depth(depth)
        w = self.sigma_w2 if sigma_w2 is None else _variance(sigma_w2, "sigma_w2")
        b = self.sigma_b2 if sigma_b2 is None else _variance(sigma_b2, "sigma_b2")
        return serial(Dense(w, b), repeat(serial(self.activation, Dense(w, b)), depth - 1))

    @single_threaded_blas
    def propagate(self, depth: int, sigma_w2=None, sigma_b2=None, *, q1=1.0, c1=None) -> Trajectory:
        """q^l (and c^l for two inputs of equal variance) for l = 1..depth from q¹ (and c¹)."""
        _check_depth(depth)
        if c1 is not None and not -1 <= c1 <= 1:
            raise DomainError(f"c1 = {c1} must be a correlation in [-1, 1]")
        (sw, sb, qv), _ = self._numeric((sigma_w2, "sigma_w2"), (sigma_b2, "sigma_b2"), (q1, "q1"))
        if sw.size != 1:
            raise DomainError("propagate takes one (sigma_w2, sigma_b2, q1); loop for several")
        fns = self._functions
        qs, cs = [float(qv[0])], [np.nan if c1 is None else float(c1)]
        for _ in range(depth - 1):
            qn = float(sw[0] * fns.one([max(qs[-1], 1e-300)])[0][0] + sb[0])
            if c1 is not None:
                num = sw[0] * fns.c_numerator([max(qs[-1], 1e-300)], [cs[-1]])[0] + sb[0]
                cs.append(float(num / qn))
            qs.append(qn)
        return Trajectory(np.array(qs), np.array(cs) if c1 is not None else None)

    @single_threaded_blas
    def gradients(self, depth: int, sigma_w2=None, sigma_b2=None, *, widths=None, q1=None) -> GradientRatios:
        """The backward pass: per-unit squared gradients with respect to the pre-activations,
        q̃^l / q̃^L = Π_{k=l}^{L-1} (M_{k+1}/M_k) σ_w² ∫Dz φ′(√q^k z)² (Schoenholz et al. 2017,
        eq. 13, gradient-independence assumption), along the forward variances q^l from q¹
        (default q*); widths = (M_1, ..., M_L) (default all equal)."""
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
        V, _, D, _ = self._functions.one(qs)
        factor = sw[0] * D[:-1] * widths[1:] / widths[:-1]
        delta = np.append(np.cumprod(factor[::-1])[::-1], 1.0)
        x_norm = widths * V  # ‖x^l‖² = M_l V(q^l); the weight gradient of layer l uses x^{l-1}
        weight = np.full(depth, np.nan)
        weight[1:] = delta[1:] * widths[1:] * x_norm[:-1] / (widths[-1] * x_norm[-2])
        chi1 = sw[0] * self._functions.one([max(self.q_star(sw[0], sb[0]), 1e-300)])[2][0]
        return GradientRatios(qs, widths, delta, weight, float(_xi(chi1)))

    @single_threaded_blas
    def phase_diagram(self, sigma_w2_grid, sigma_b2_grid, *, q0=1.0, stride: int = 8) -> PhaseDiagram:
        """q*, χ₁, c*, ξ_c on the grid σ_w2_grid × σ_b2_grid (indexed [i_w, i_b]) and the critical
        curve.  Large grids are solved on every `stride`-th row and column first; that solution
        interpolated starts Newton's method everywhere, and points where it does not converge to a
        stable root in three steps go to the bracketing solver."""
        w = np.asarray(sigma_w2_grid, dtype=float).ravel()
        b = np.asarray(sigma_b2_grid, dtype=float).ravel()
        (W, B), _ = self._numeric((w[:, None], "sigma_w2"), (b[None, :], "sigma_b2"))
        shape = (w.size, b.size)
        guess_q = guess_c = None
        if min(shape) > 4 * stride:
            iw, ib = _coarse(w.size, stride), _coarse(b.size, stride)
            coarse = self._fixed_point_arrays(np.repeat(w[iw], ib.size), np.tile(b[ib], iw.size),
                                              np.full(iw.size * ib.size, float(q0)))
            guess_q = _interpolate(coarse.q_star.reshape(iw.size, ib.size), iw, ib, shape).ravel()
            guess_c = _interpolate(coarse.c_star.reshape(iw.size, ib.size), iw, ib, shape).ravel()
        fp = self._fixed_point_arrays(W, B, np.full(W.size, float(q0)), guess_q, guess_c).reshaped(shape)
        critical = self.critical_point(b)
        return PhaseDiagram(self.activation.name, w, b, fp.q_star, fp.chi1, fp.c_star, _xi(fp.chi_c),
                            fp.regime, critical.sigma_w2, fp.method)


def _check_depth(depth) -> None:
    if not isinstance(depth, int | np.integer) or depth < 1:
        raise DomainError(f"depth = {depth!r} must be a positive integer (the number of layers)")


def _coarse(n: int, stride: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, n, stride), n - 1))


def _interpolate(values, iw, ib, shape):
    """Bilinear interpolation in index space from the sub-grid (iw × ib) to the full grid."""
    rows = np.array([np.interp(np.arange(shape[0]), iw, col) for col in values.T]).T
    return np.array([np.interp(np.arange(shape[1]), ib, row) for row in rows])
