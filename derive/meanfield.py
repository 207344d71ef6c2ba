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
>>> erf = MeanField("erf")
>>> erf.critical_sigma_w2(0.0)  # pi/4
0.7853981633974...
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from derive.layers import Dense, KernelState, serial
from derive.parsing import as_expr
from derive.symbols import c, q, q1, q2, q_star
from derive.symbols import sigma_b2 as SIGMA_B2
from derive.symbols import sigma_w2 as SIGMA_W2
from derive.tabulate import single_threaded_blas

__all__ = ["MeanField", "CriticalLine", "CriticalPoint", "FixedPoint", "DepthScales", "PhaseDiagram",
           "GradientRatios", "Trajectory", "Regime"]


def _variance(value, name: str) -> sp.Expr:
    value = as_expr(value)
    if value.is_number and (value.has(sp.nan, sp.oo, -sp.oo, sp.zoo) or value.is_real is False):
        raise DomainError(f"{name} = {value} must be a finite real variance")
    if value.is_negative:
        raise DomainError(f"{name} = {value} is negative; a variance must be >= 0")
    return value


def _latex_of(obj) -> str:
    from derive.printing import latex

    return latex(obj)


def _xi(chi):
    """−1/log χ, with ξ = ∞ where χ = 1 (and NaN where χ is)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(chi)
        return np.where(log == 0, np.inf, -1.0 / log)


def _decimal(value) -> mp.mpf:
    """A float read as the decimal it prints as (0.05 is 1/20, not 0.05000000000000000277)."""
    return mp.mpf(repr(float(value)))


def _output(values, shape):
    """An array of `shape`, or a single number (float, or mpf for object arrays) for shape ()."""
    values = np.asarray(values).reshape(shape)
    if shape != ():
        return values
    return values.item() if values.dtype == object else float(values)


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
        return f"$\\displaystyle {_latex_of(self)}$"

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

    @single_threaded_blas
    def propagate(self, depth: int, sigma_w2=None, sigma_b2=None, *, q1=1.0, c1=None) -> Trajectory:
        """q^l (and c^l for two inputs of equal variance) for l = 1..depth from q¹ (and c¹)."""
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


def _coarse(n: int, stride: int) -> np.ndarray:
    return np.unique(np.append(np.arange(0, n, stride), n - 1))


def _interpolate(values, iw, ib, shape):
    """Bilinear interpolation in index space from the sub-grid (iw × ib) to the full grid."""
    rows = np.array([np.interp(np.arange(shape[0]), iw, col) for col in values.T]).T
    return np.array([np.interp(np.arange(shape[1]), ib, row) for row in rows])


# --- result objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedPoint:
    """The fixed point of the mean-field maps at each (σ_w², σ_b²) and how it was obtained.

    ``regime`` holds :class:`Regime` codes: where q* is inf (q grows without bound) or 0 (q
    decays to zero), c*, χ₁, χ_q, χ_c are NaN."""

    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi1: np.ndarray
    chi_q: np.ndarray
    chi_c: np.ndarray
    regime: np.ndarray
    method: str
    dps: int | None = None

    def reshaped(self, shape) -> FixedPoint:
        values = {}
        for name in ("sigma_w2", "sigma_b2", "q_star", "c_star", "chi1", "chi_q", "chi_c", "regime"):
            v = np.asarray(getattr(self, name)).reshape(shape)
            values[name] = v.item() if shape == () else v
        if shape == ():
            values["regime"] = Regime(values["regime"])
        return FixedPoint(**values, method=self.method, dps=self.dps)

    @property
    def regime_names(self):
        """The regimes as names ('ORDERED', 'CHAOTIC', ...)."""
        if np.ndim(self.regime) == 0:
            return Regime(self.regime).name
        return np.vectorize(lambda r: Regime(r).name)(self.regime)


@dataclass(frozen=True)
class DepthScales:
    """ξ_q = −1/log χ_q, ξ_c = −1/log χ_c, ξ_∇ = −1/log χ₁ (Schoenholz et al. 2017, eqs. 7-13).

    ξ_c = ∞ on the critical line; ξ_∇ < 0 in the chaotic phase means gradients *grow*
    over |ξ_∇| layers instead of decaying."""

    xi_q: object
    xi_c: object
    xi_grad: object
    chi_q: object
    chi_c: object
    chi1: object
    method: str

    @classmethod
    def of(cls, fp: FixedPoint) -> DepthScales:
        if fp.dps is not None:
            with mp.workdps(fp.dps):
                xi = np.vectorize(lambda x: mp.inf if x == 1 else -1 / mp.log(x), otypes=[object])
                values = [xi(np.asarray(v, dtype=object)) for v in (fp.chi_q, fp.chi_c, fp.chi1)]
                values = [v.item() if v.ndim == 0 else v for v in values]
        else:
            values = [_output(_xi(v), np.shape(v)) for v in (fp.chi_q, fp.chi_c, fp.chi1)]
        return cls(*values, fp.chi_q, fp.chi_c, fp.chi1, fp.method)

    def _latex(self, printer) -> str:
        def value(v):
            return f" = {float(v):.6g}" if np.ndim(v) == 0 else ""

        return (r"\begin{aligned}\xi_q &= -1/\log\chi_q" + value(self.xi_q)
                + r" \\ \xi_c &= -1/\log\chi_c" + value(self.xi_c)
                + r" \\ \xi_\nabla &= -1/\log\chi_1" + value(self.xi_grad) + r"\end{aligned}")

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {_latex_of(self)}$"


@dataclass(frozen=True)
class CriticalPoint:
    """σ_w² and q* on the critical line at given σ_b² (NaN where the line does not reach)."""

    sigma_w2: object
    sigma_b2: object
    q_star: object
    method: str


@dataclass(frozen=True)
class CriticalLine:
    """The χ₁ = 1 line of an activation in the best closed form that exists.

    ``kind`` is "point" (χ₁ does not depend on q and a fixed point exists on χ₁ = 1 only at
    σ_b² = 0: linear, ReLU), "explicit" (σ_b² as a closed-form function of σ_w², e.g. erf),
    or "parametric" (σ_w²(q*), σ_b²(q*), closed form or with integrals evaluated numerically).
    """

    activation: str
    kind: str
    sigma_w2_of_q: sp.Expr
    sigma_b2_of_q: sp.Expr
    equation: sp.Eq | None
    point: tuple | None
    explanation: str
    method: str
    _meanfield: MeanField = field(repr=False, compare=False)

    @classmethod
    def of(cls, mf: MeanField) -> CriticalLine:
        e = mf.expectations
        V, D = e["V"], e["D"]
        sw_q = sp.simplify(1 / D)
        sb_q = sp.simplify(q - V / D)
        closed = not (V.has(GaussianExpectation) or D.has(GaussianExpectation))
        method = "closed form" if closed else "parametric form with Gaussian integrals (numerical quadrature)"
        name = mf.activation.name
        if not D.has(q):
            equation = sp.Eq(SIGMA_W2, sw_q)
            if sb_q == 0:
                text = (f"χ₁ = σ_w² E φ′² = σ_w²/{sw_q} does not depend on q, so χ₁ = 1 means σ_w² = {sw_q}; "
                        f"there E φ(u)² = q/{sw_q} and the q-map is q ↦ q + σ_b²: a finite fixed point "
                        f"exists only at σ_b² = 0. The critical set is the point ({sw_q}, 0), not a line.")
                return cls(name, "point", sw_q, sb_q, equation, (sw_q, sp.S.Zero), text, method, mf)
            text = f"χ₁ does not depend on q: χ₁ = 1 is the line σ_w² = {sw_q}, at σ_b² = {sb_q}."
            return cls(name, "explicit", sw_q, sb_q, equation, None, text, method, mf)
        equation = _explicit(sw_q, sb_q) if closed else None
        if equation is not None:
            text = "σ_w²(q*) inverts in closed form, so σ_b² is an explicit function of σ_w²."
            return cls(name, "explicit", sw_q, sb_q, equation, None, text, method, mf)
        text = ("no closed form for σ_b² in terms of σ_w²; the line is parametrised by the fixed "
                "point q* > 0" + ("." if closed else " with integrals evaluated by quadrature."))
        text += (" Numerically (critical_point, trace) only points whose fixed point q* is stable "
                 "(χ_q ≤ 1) are kept: the others repel, and the network never reaches them.")
        return cls(name, "parametric", sw_q, sb_q, None, None, text, method, mf)

    def _latex(self, printer) -> str:
        w, b = printer._print(SIGMA_W2), printer._print(SIGMA_B2)
        para = (rf"{w}(q^*) &= {printer._print(self.sigma_w2_of_q.subs(q, q_star))}, \\ "
                rf"{b}(q^*) &= {printer._print(self.sigma_b2_of_q.subs(q, q_star))}")
        if self.kind == "point":
            return (rf"\begin{{aligned}}\chi_1 = 1 &\iff {printer._print(self.equation)}, \\ "
                    rf"({w}, {b}) &= ({printer._print(self.point[0])}, {printer._print(self.point[1])})"
                    r"\end{aligned}")
        if self.kind == "explicit" and self.equation is not None and self.equation.lhs == SIGMA_B2:
            return (rf"\begin{{aligned}}{printer._print(self.equation.lhs)} &= "
                    rf"{printer._print(self.equation.rhs)} \\ {para}\end{{aligned}}")
        if self.kind == "explicit":
            return rf"\begin{{aligned}}{printer._print(self.equation)} \\ {para}\end{{aligned}}"
        return rf"\begin{{aligned}}{para}\end{{aligned}}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {_latex_of(self)}$"

    def as_dict(self) -> dict:
        """The line as plain data (SymPy expressions as text and LaTeX), e.g. for JSON."""
        return {
            "activation": self.activation, "kind": self.kind, "method": self.method,
            "explanation": self.explanation,
            "equation": None if self.equation is None else str(self.equation),
            "point": None if self.point is None else [str(v) for v in self.point],
            "sigma_w2_of_q": str(self.sigma_w2_of_q), "sigma_b2_of_q": str(self.sigma_b2_of_q),
            "latex": _latex_of(self),
        }

    def no_point_message(self, sigma_b2: float) -> str:
        if self.kind == "point":
            return (f"{self.activation}: no critical σ_w² at σ_b² = {sigma_b2}; " + self.explanation)
        return (f"{self.activation}: the critical line χ₁ = 1 does not reach σ_b² = {sigma_b2} "
                "(no q* > 0 with q − V(q)/D(q) = σ_b² up to q = 1e12)")

    def trace(self, sigma_b2_max: float = 1.0, n: int = 200):
        """(σ_w², σ_b²) arrays along the line for σ_b² in [0, sigma_b2_max] (numerically)."""
        b = np.linspace(0.0, sigma_b2_max, n)
        point = self._meanfield.critical_point(b)
        return np.asarray(point.sigma_w2, dtype=float), b

    def plot(self, ax=None, sigma_b2_max: float = 1.0):
        """Plot the line in the (σ_w², σ_b²) plane."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        if self.kind == "point":
            ax.plot([float(self.point[0])], [0.0], "ko", label=f"{self.activation}: critical point")
        else:
            w, b = self.trace(sigma_b2_max)
            ax.plot(w, b, label=f"{self.activation}")
        ax.set(xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$", title=r"critical line $\chi_1 = 1$")
        ax.legend()
        return ax


def _explicit(sw_q, sb_q):
    """σ_b² = f(σ_w²) when σ_w²(q) is algebraic and inverts to a single positive branch."""
    if not sw_q.is_algebraic_expr(q):
        return None
    roots = [r for r in sp.solve(sp.Eq(SIGMA_W2, sw_q), q) if r.is_positive is not False]
    if len(roots) != 1:
        return None
    return sp.Eq(SIGMA_B2, sp.simplify(sb_q.subs(q, roots[0])))


@dataclass(frozen=True)
class PhaseDiagram:
    """q*, χ₁, c*, ξ_c on a grid (indexed [i_w, i_b]) and the critical curve σ_w²(σ_b²)."""

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    chi1: np.ndarray
    c_star: np.ndarray
    xi_c: np.ndarray
    regime: np.ndarray
    critical_sigma_w2: np.ndarray
    method: str

    def plot(self, quantities=("xi_c", "c_star"), fig=None):
        """The Schoenholz et al. (2017, fig. 1) picture: each quantity as a heat map over
        (σ_w², σ_b²) with the critical line and the phases marked; grey where q* is not finite."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm

        if fig is None:
            fig = plt.figure(figsize=(4.5 * len(quantities), 3.6))
        axes = fig.subplots(1, len(quantities), squeeze=False)[0]
        extent = (self.sigma_w2[0], self.sigma_w2[-1], self.sigma_b2[0], self.sigma_b2[-1])
        for ax, name in zip(axes, quantities, strict=True):
            data = np.asarray(getattr(self, name), dtype=float).T
            finite = data[np.isfinite(data) & (data > 0)]
            log = name == "xi_c" and finite.size
            norm = LogNorm(vmin=finite.min(), vmax=min(finite.max(), 1e3)) if log else None
            image = ax.imshow(data, origin="lower", aspect="auto", extent=extent, norm=norm, cmap="viridis")
            fig.colorbar(image, ax=ax, label=_LABELS.get(name, name))
            ax.plot(self.critical_sigma_w2, self.sigma_b2, "w-", lw=2, label=r"$\chi_1 = 1$")
            ax.set(xlim=extent[:2], ylim=extent[2:], xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$",
                   title=f"{self.activation}: {_LABELS.get(name, name)}", facecolor="0.85")
            for code, label in ((Regime.ORDERED, "ordered"), (Regime.CHAOTIC, "chaotic"),
                                (Regime.Q_INFINITE, "q → ∞"), (Regime.Q_ZERO, "q → 0")):
                iw, ib = np.nonzero(self.regime == code)
                if iw.size > 0.02 * self.regime.size:  # label regions of some size at their median
                    ax.text(np.median(self.sigma_w2[iw]), np.median(self.sigma_b2[ib]), label,
                            ha="center", va="center", color="k" if code >= Regime.Q_INFINITE else "w")
        fig.tight_layout()
        return fig


_LABELS = {"xi_c": r"$\xi_c$", "c_star": r"$c^*$", "q_star": r"$q^*$", "chi1": r"$\chi_1$"}


@dataclass(frozen=True)
class Trajectory:
    """Forward mean-field iterates: q^l (and c^l) for l = 1..L."""

    q: np.ndarray
    c: np.ndarray | None

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        layers = np.arange(1, self.q.size + 1)
        ax.plot(layers, self.q, "o-", label="$q^l$")
        if self.c is not None:
            ax.plot(layers, self.c, "s-", label="$c^l$")
        ax.set(xlabel="layer $l$")
        ax.legend()
        return ax


@dataclass(frozen=True)
class GradientRatios:
    """Backward mean-field: q̃^l/q̃^L (per-unit squared gradient w.r.t. pre-activations h^l) and
    ‖∇W^l‖²/‖∇W^L‖² (NaN at l = 1, which depends on the input) for l = 1..L, the forward
    variances q^l used, the widths, and ξ_∇ = −1/log χ₁ at the fixed point."""

    q: np.ndarray
    widths: np.ndarray
    delta_sq: np.ndarray
    weight_grad_sq: np.ndarray
    xi_grad: float

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        layers = np.arange(1, self.delta_sq.size + 1)
        ax.semilogy(layers, self.delta_sq, "o-", label=r"$\tilde q^l / \tilde q^L$")
        ax.semilogy(layers, self.weight_grad_sq, "s-", label=r"$\|\nabla W^l\|^2 / \|\nabla W^L\|^2$")
        ax.set(xlabel="layer $l$", title=rf"$\xi_\nabla = {self.xi_grad:.3g}$")
        ax.legend()
        return ax
