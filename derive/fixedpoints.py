"""Fixed points of the mean-field maps, vectorised over parameter arrays, and at any precision.

With V(q) = E φ(u)², D(q) = E φ′(u)² (u ~ N(0, q)), C(q, c) = E φ(u)φ(v) and
C_d(q, c) = E φ′(u)φ′(v) ((u, v) with variances q, q and correlation c), the
mean-field maps of a layer are (Poole et al. 2016; Schoenholz et al. 2017)

    q′ = σ_w² V(q) + σ_b²,    c′ = (σ_w² C(q, c) + σ_b²) / q′,    χ₁ = σ_w² D(q*).

None of V, D, C, C_d depends on σ_w², σ_b²: :class:`MapFunctions` evaluates them
once per activation -- closed forms where `derive` found them, else the numerical
quadrature of :func:`derive.lambdify` -- and, for smooth activations, through
piecewise Chebyshev tables in (log q, c) (:mod:`derive.gaussian.tables`) whose error is
estimated when they are built.  The correlation fixed point is solved in the
divided-difference form G(q, c) = (V(q) − C(q, c)) / (1 − c) = q ∫_c^1 C_d dc′ / (1 − c),
which removes the trivial root c = 1 and the cancellation next to it:

    c* < 1  ⇔  G(q*, c*) = q* / σ_w².

G increases on [0, 1] (Mehler: C = Σ a_k² c^k with a_k² ≥ 0), so the largest root
below 1 -- the fixed point that attracts every c⁰ in (c*, 1) -- is bracketed by [0, 1]
whenever G(q*, 0) < q*/σ_w², and searched on [-1, 0] otherwise.

Regimes (:class:`Regime`): ordered (χ₁ < 1, c* = 1), chaotic (χ₁ > 1, c* < 1),
critical (χ₁ = 1), q → ∞ (the variance grows without bound: q* = inf) and q → 0
(it decays to zero: q* = 0); in the last two c*, χ₁ and the depth scales are NaN.
q* is the limit of the q-map iterated from q⁰ (default 1), i.e. the first root of
σ_w² V(q) + σ_b² − q met going from q⁰ in the direction the map moves; it is
reported as 0 below 1e-300 and as inf above :attr:`MapFunctions.q_max` (1e300, or less where
the activation's expectations overflow float64, e.g. 1e4 for silu).
"""

from __future__ import annotations

from enum import IntEnum
from functools import cached_property

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.errors import NumericError
from derive.gaussian import GaussianExpectation
from derive.gaussian.moments import moments_of
from derive.gaussian.tables import Table1D, Table2D, single_threaded_blas
from derive.numeric import lambdify
from derive.symbols import c, q

Q_MIN, Q_MAX = 1e-300, 1e300
#: error bounds (relative to V, resp. D) asked of the sampled E φ(u)φ(v) and E φ′(u)φ′(v) without
#: closed forms (Mehler-Hermite tail bound, else 2-D quadrature).  C enters G = (V − C)/(1 − c),
#: where V/(V − C) amplifies its error up to ~20-fold; C_d enters χ_c and ∫ C_d as it is
C_TOL, CD_TOL = 1e-15, 1e-13


class Regime(IntEnum):
    """How the iterated maps behave at a point (σ_w², σ_b²)."""

    ORDERED = 0
    CHAOTIC = 1
    CRITICAL = 2
    Q_INFINITE = 3
    Q_ZERO = 4


def _numpy_function(expr: sp.Expr, args: tuple):
    """A vectorised float evaluator of `expr` (closed form or Gaussian-expectation integrals)."""
    f = lambdify(expr, list(args), nonfinite="nan")

    def evaluate(*values):
        values = [np.asarray(v, dtype=float) for v in values]
        return np.broadcast_to(np.asarray(f(*values), dtype=float), np.broadcast(*values).shape).copy()

    return evaluate


class MapFunctions:
    """V, V′, D, D′ (functions of q) and C, C_d, G (of q, c) of one activation in float64.

    For a smooth activation every evaluation goes through Chebyshev tables: V and D in log q
    (V′, D′ their derivatives) sampled from their moments (:mod:`derive.gaussian.moments`), C_d
    in (log q, c) from the moment C_d (closed form, or the Mehler expansion with its tail bound),
    and G from the C_d table.  For a kinked one the SymPy `expressions` (names V, Vq, D, Dq, C,
    Cd) are evaluated directly.
    """

    def __init__(self, act: Activation, expressions: dict):
        self.expressions = expressions
        self.closed_form = not any(e.has(GaussianExpectation) for e in expressions.values())
        self.tabulated = act.is_smooth
        self._moments = moments_of(act)
        self._source_error = 0.0
        if self.tabulated:
            tol = 1e-14 if self.closed_form else 1e-13
            self._table1 = Table1D(self._sample_one, 2, tol=tol)
            self._table_cd = Table2D(self._sample_cd, 1, tol=max(tol, 10 * CD_TOL), integral=True)
            self._table_g = Table2D(self._sample_g, 1, tol=max(tol, 1e-13))
        else:
            self._one = [_numpy_function(expressions[k], (q,)) for k in ("V", "Vq", "D", "Dq")]
            self._cd = _numpy_function(expressions["Cd"], (q, c))
            self._c = _numpy_function(expressions["C"], (q, c))

    def _sample_one(self, t):
        qv = np.exp(t)
        return np.stack([m.evaluate(qv, tol=1e-14, tabulate=False).value
                         for m in (self._moments.V, self._moments.D)])

    def _sample_cd(self, t, cc):
        qv = np.exp(t)
        e = self._moments.Cd.evaluate(qv, qv, cc, tol=CD_TOL)
        self._source_error = max(self._source_error, e.relative_to(self._table1(t)[1]))
        return e.value.reshape(1, -1)

    def _sample_g(self, t, cc):
        """G = (V − C)/(1 − c), with C sampled directly where 1 − c >= 1/16 (the division costs at
        most a factor 16 in accuracy), and G = q ∫_c^1 C_d dc′ / (1 − c) from the C_d table above:
        there q times the mean of C_d over [c, 1] by 40-point Gauss-Legendre quadrature, exact for
        the table's polynomials (within 1/32 of c = 1, where dividing would amplify rounding)."""
        qv, g = np.exp(t), np.empty(t.size)
        far = 1 - cc >= 1 / 16
        if far.any():
            V = self._table1(t[far])[0]
            e = self._moments.C.evaluate(qv[far], qv[far], cc[far], tol=C_TOL)
            self._source_error = max(self._source_error, 16 * e.relative_to(V))
            g[far] = (V - e.value) / (1 - cc[far])
        near = np.flatnonzero(~far & (1 - cc >= 1 / 32))
        g[near] = qv[near] * self._table_cd.integral(t[near], cc[near])[0] / (1 - cc[near])
        closest = np.flatnonzero(1 - cc < 1 / 32)
        if closest.size:
            u, w = np.polynomial.legendre.leggauss(40)
            points = 1 - np.outer(1 - cc[closest], (u + 1) / 2)
            values = self._table_cd(np.repeat(t[closest], u.size), points.ravel())[0]
            g[closest] = qv[closest] * (values.reshape(closest.size, u.size) @ (w / 2))
        return g[None]

    @property
    def error(self) -> float:
        """The estimated relative error of the evaluations: table interpolation plus the error
        bound of the sampled values (float64 rounding for closed forms, 1e-13 for quadrature)."""
        floor = 1e-15 if self.closed_form else 1e-13
        if not self.tabulated:
            return floor
        tables = (self._table1, self._table_cd, self._table_g)
        return max(floor, self._source_error, *(t.max_error for t in tables))

    @property
    def method(self) -> str:
        """How the numbers are obtained, with the estimated error of the tables built so far."""
        if self.closed_form:
            source = "closed forms"
        elif self.tabulated:
            source = f"1-D Gaussian quadrature; 2-D: {self._moments.Cd.method.value}"
        else:
            source = "numerical Gaussian quadrature (derive.lambdify)"
        if not self.tabulated:
            return source
        return (f"{source}, tabulated by piecewise Chebyshev interpolation in (log q, c); "
                f"estimated relative error {self.error:.1e}")

    @cached_property
    def q_max(self) -> float:
        """The largest q (up to 1e300) at which V and D evaluate to finite numbers in float64: an
        activation built from exp overflows long before (silu near q = 1e4).  Beyond it a growing
        q-map is reported as diverging."""
        for exponent in (300, 200, 100, 50, 30, 20, 15, 12, 10, 8, 6, 5, 4, 3, 2):
            try:
                with np.errstate(all="ignore"):
                    values = self.one(np.array([10.0**exponent]))
            except (NumericError, FloatingPointError, OverflowError):
                continue
            if np.all(np.isfinite(values[[0, 2]])):
                return 10.0**exponent
        raise NumericError("the Gaussian expectations of this activation overflow already at q = 100")

    @single_threaded_blas
    def one(self, qv) -> np.ndarray:
        """(V, V′, D, D′) at q > 0: a (4, N) array."""
        qv = np.asarray(qv, dtype=float).ravel()
        if not self.tabulated:
            return np.stack([f(qv) for f in self._one])
        values, slopes = self._table1(np.log(qv), derivative=True)
        out = np.empty((4, qv.size))
        out[0], out[2] = values
        np.divide(slopes, qv, out=out[1::2])  # d/dq = (d/dt) / q
        return out

    @single_threaded_blas
    def cd(self, qv, cv) -> np.ndarray:
        """C_d(q, c) = E φ′(u)φ′(v)."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if self.tabulated:
            return self._table_cd(np.log(qv), cv)[0]
        return self._cd(qv, cv)

    @single_threaded_blas
    def g(self, qv, cv, derivative: bool = False):
        """G(q, c) = (V − C)/(1 − c) (G(q, 1) = q D(q)), and ∂G/∂c with ``derivative=True``."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if self.tabulated:
            if derivative:
                value, slope = self._table_g.with_slope(np.log(qv), cv)
                return value[0], slope[0]
            return self._table_g(np.log(qv), cv)[0]
        V, _, D, _ = self.one(qv)
        one = cv == 1
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(one, qv * D, (V - self._c(qv, cv)) / (1 - cv))
            if not derivative:
                return value
            slope = np.where(one, np.nan, (value - qv * self._cd(qv, cv)) / (1 - cv))
        return value, slope

    @single_threaded_blas
    def g_slices(self, qv, cv):
        """G(q, ·) near c as per-point polynomials (tabulated activations only), or None."""
        return self._table_g.slices(np.log(qv), cv) if self.tabulated else None

    @single_threaded_blas
    def c_numerator(self, qv, cv) -> np.ndarray:
        """C(q, c) = E φ(u)φ(v) = V(q) − (1 − c) G(q, c)."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if not self.tabulated:
            return self._c(qv, cv)
        return self.one(qv)[0] - (1 - cv) * self.g(qv, cv)


# --- the variance fixed point -------------------------------------------------------------------


def _bracketed_newton(f, lo, hi, x, log_scale: bool, tol: float, max_iter: int = 200):
    """Newton's method kept inside brackets [lo, hi] with f(lo) > 0 > f(hi) (either order),
    falling back to bisection (geometric when `log_scale`).  `f(x)` returns (value, slope).
    Vectorised: every array is 1-D and updated in place where not yet converged."""
    active = np.arange(x.size)
    for _ in range(max_iter):
        if not active.size:
            break
        xa = x[active]
        value, slope = f(xa, active)
        positive = value > 0
        lo[active] = np.where(positive, xa, lo[active])
        hi[active] = np.where(positive, hi[active], xa)
        with np.errstate(invalid="ignore", divide="ignore"):
            step = value / slope
        newton = xa - step
        a, b = np.minimum(lo[active], hi[active]), np.maximum(lo[active], hi[active])
        scale = np.abs(xa) if log_scale else np.maximum(np.abs(xa), 1.0)
        # a Newton step below the tolerance has converged, even if rounding puts it a hair
        # outside the bracket (next to a bracket end that is itself the root)
        small = np.abs(step) <= tol * scale
        bad = ~((newton > a) & (newton < b)) & ~small
        middle = np.sqrt(a * b) if log_scale else (a + b) / 2
        new = np.where(bad, middle, newton)
        done = small | (value == 0) | (b - a <= tol * scale)
        x[active] = np.where(value == 0, xa, new)
        active = active[~done]
    if active.size:
        raise NumericError(f"Newton iteration did not converge at {active.size} points")
    return x


def _expand(F, start, factor_up: bool, limit: float, base: float = 4.0):
    """From `start` (where F has the sign that moves the iteration up if `factor_up`), step
    geometrically with growing factors until F changes sign or `limit` is passed.
    Returns (near, far, found): the bracket [near, far] and where a sign change was found."""
    near, far = start.copy(), start.copy()
    found = np.zeros(start.size, bool)
    active = np.arange(start.size)
    k = 0
    while active.size:
        factor = base ** (2.0**k if k < 9 else 512.0)
        trial = near[active] * factor if factor_up else near[active] / factor
        trial = np.minimum(trial, limit) if factor_up else np.maximum(trial, limit)
        value = F(trial, active)
        flipped = (value < 0) if factor_up else (value > 0)
        far[active] = trial
        found[active] = flipped
        at_limit = trial == limit
        keep = ~flipped & ~at_limit
        near[active[keep]] = trial[keep]
        active = active[keep]
        k += 1
    return near, far, found


def solve_q_star(fns: MapFunctions, sw, sb, q0=1.0, guess=None):
    """q* and the regime-so-far (Q_ZERO, Q_INFINITE, or -1 for a finite positive root) for
    1-D float arrays sw, sb; `guess` (optional) starts Newton near the answer."""
    sw, sb, q0 = np.broadcast_arrays(*(np.asarray(v, float).ravel() for v in (sw, sb, q0)))
    n = sw.size
    qs = np.full(n, np.nan)
    flag = np.full(n, -1, np.int8)

    def F(qv, idx):
        return sw[idx] * fns.one(qv)[0] + sb[idx] - qv

    if guess is not None:
        todo = _polish_q(fns, sw, sb, np.asarray(guess, float).ravel(), qs)
    else:
        todo = np.arange(n)
    if not todo.size:
        return qs, flag
    idx = todo
    f0 = F(q0[idx], idx)
    qs[idx[f0 == 0]] = q0[idx[f0 == 0]]
    for up in (True, False):
        sel = idx[(f0 > 0) if up else (f0 < 0)]
        if not sel.size:
            continue
        near, far, found = _expand(lambda v, a, sel=sel: F(v, sel[a]), q0[sel], up,
                                   fns.q_max if up else Q_MIN)
        flag[sel[~found]] = Regime.Q_INFINITE if up else Regime.Q_ZERO
        qs[sel[~found]] = np.inf if up else 0.0
        ok = sel[found]
        lo, hi = (near[found], far[found]) if up else (far[found], near[found])  # F(lo) > 0 > F(hi)

        def newton_f(v, a, ok=ok):
            V, Vq, _, _ = fns.one(v)
            return sw[ok[a]] * V + sb[ok[a]] - v, sw[ok[a]] * Vq - 1

        qs[ok] = _bracketed_newton(newton_f, lo.copy(), hi.copy(), np.sqrt(lo * hi), True, 2e-15)
    return qs, flag


def _polish_q(fns, sw, sb, guess, qs, steps: int = 4):
    """Newton from `guess`; a point is accepted once its step is below 1e-9 q (quadratic
    convergence leaves an error ~1e-18 q) at a stable root (q-map slope < 1) and written to
    `qs`.  The indices of the others are returned for the bracketing solver."""
    todo = np.flatnonzero(np.isfinite(guess) & (guess > 0))
    failed = np.ones(sw.size, bool)
    x = guess[todo]
    for _ in range(steps):
        if not todo.size:
            break
        V, Vq, _, _ = fns.one(x)
        slope = sw[todo] * Vq - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            step = (sw[todo] * V + sb[todo] - x) / slope
        x = x - step
        good = np.isfinite(x) & (x > 0)
        done = good & (np.abs(step) <= 1e-9 * x) & (slope < 0)
        qs[todo[done]] = x[done]
        failed[todo[done]] = False
        keep = good & ~done
        todo, x = todo[keep], x[keep]
    return np.flatnonzero(failed)


# --- the correlation fixed point ------------------------------------------------------------------


def solve_c_star(fns: MapFunctions, qs, sw, guess=None):
    """c* < 1 at chaotic points (σ_w² D(q*) > 1): the largest root of G(q*, c) = q*/σ_w²."""
    qs, sw = np.broadcast_arrays(np.asarray(qs, float).ravel(), np.asarray(sw, float).ravel())
    r = qs / sw
    n = qs.size
    cs = np.full(n, np.nan)
    todo = np.arange(n) if guess is None else _polish_c(fns, qs, r, np.asarray(guess, float).ravel(), cs)
    if not todo.size:
        return cs
    h0 = fns.g(qs[todo], 0.0) - r[todo]
    cs[todo[h0 == 0]] = 0.0
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    positive = todo[h0 < 0]
    lo[positive], hi[positive] = 0.0, 1.0
    negative = todo[h0 > 0]
    upper = np.zeros(negative.size)
    pending = np.arange(negative.size)
    for cut in np.linspace(-0.125, -1.0, 8):  # scan down for the largest sign change
        if not pending.size:
            break
        at = negative[pending]
        below = fns.g(qs[at], cut) - r[at] <= 0
        lo[at[below]], hi[at[below]] = cut, upper[pending[below]]
        upper[pending[~below]] = cut
        pending = pending[~below]
    if pending.size:
        raise NumericError("no correlation fixed point found in [-1, 1): the c-map is not a correlation map")
    solve = np.concatenate([positive, negative])

    def newton_f(v, a):
        value, slope = fns.g(qs[solve[a]], v, derivative=True)
        return r[solve[a]] - value, -slope  # positive below the root, negative above

    cs[solve] = _bracketed_newton(newton_f, lo[solve], hi[solve], (lo[solve] + hi[solve]) / 2, False, 1e-15)
    return cs


def _polish_c(fns, qs, r, guess, cs, steps: int = 4, chunk: int = 65536):
    """Newton from `guess` on G(q*, c) = r in c, accepting a point once its step is below 1e-9
    at a root in [0, 1) where G increases (there the root is unique, hence the largest).  Points
    that fail (or leave their table patch) are returned for the bracketing solver."""
    failed = np.ones(qs.size, bool)
    candidates = np.flatnonzero(np.isfinite(guess) & (guess >= 0) & (guess < 1))
    for start in range(0, candidates.size, chunk):
        todo = candidates[start:start + chunk]
        slices = fns.g_slices(qs[todo], guess[todo])
        local = np.arange(todo.size)
        x = guess[todo]
        for _ in range(steps):
            if not todo.size:
                break
            if slices is None:
                value, slope = fns.g(qs[todo], x, derivative=True)
                inside = np.ones(todo.size, bool)
            else:
                value, slope, inside = slices(x, local)
            with np.errstate(invalid="ignore", divide="ignore"):
                step = (value - r[todo]) / slope
            x = x - step
            good = inside & np.isfinite(x) & (x >= 0) & (x < 1)
            if slices is not None:
                good &= (x >= slices.lo[local]) & (x <= slices.hi[local])
            done = good & (np.abs(step) <= 1e-9) & (slope > 0)
            cs[todo[done]] = x[done]
            failed[todo[done]] = False
            keep = good & ~done
            todo, x, local = todo[keep], x[keep], local[keep]
    return np.flatnonzero(failed)


# --- the critical line ------------------------------------------------------------------------------


def solve_critical(fns: MapFunctions, sb):
    """(σ_w², q*) on the critical line χ₁ = 1 at the given σ_b²: the smallest q with
    B(q) = q − V(q)/D(q) = σ_b² whose variance fixed point is stable (χ_q = σ_w² V′(q*) <= 1,
    so that the q-map reaches it), and σ_w² = 1/D(q*).  The roots are bracketed on a grid in q
    from 1e-6 to 1e12 (ratio √2) and refined by Newton's method.  At σ_b² = 0 with B > 0 from
    the start, q* = 0 and σ_w² = 1/D(0⁺).  NaN where no stable root exists (for swish, most of
    the parametric line has χ_q > 1: those fixed points repel, and iterating the q-map from
    them leads elsewhere)."""
    sb = np.asarray(sb, float).ravel()
    top = min(1e12, fns.q_max)
    grid = np.geomspace(1e-6, top, int(2 * np.log2(top / 1e-6)) + 1)
    V, _, D, _ = fns.one(grid)
    excess = sb[:, None] - (grid - V / D)[None, :]  # σ_b² − B(q): positive below a rising root
    sign = np.sign(excess)
    rows, cols = np.nonzero(sign[:, :-1] * sign[:, 1:] < 0)
    positive = excess[rows, cols] > 0
    lo = np.where(positive, grid[cols], grid[cols + 1])  # where σ_b² − B > 0
    hi = np.where(positive, grid[cols + 1], grid[cols])

    def newton_f(v, a):
        V, Vq, D, Dq = fns.one(v)
        return sb[rows[a]] - (v - V / D), (Vq * D - V * Dq) / D**2 - 1

    roots = _bracketed_newton(newton_f, lo.copy(), hi.copy(), np.sqrt(lo * hi), True, 1e-14)
    at_zero = np.flatnonzero((sb == 0) & (excess[:, 0] <= 0))
    rows = np.concatenate([at_zero, rows])
    roots = np.concatenate([np.zeros(at_zero.size), roots])
    _, Vq, D, _ = fns.one(np.maximum(roots, Q_MIN))
    stable = Vq / D <= 1 + 1e-9  # χ_q = σ_w² V′ with σ_w² = 1/D
    qs, sw = np.full(sb.size, np.nan), np.full(sb.size, np.nan)
    for i in np.argsort(-roots[stable]):  # the smallest stable root of each σ_b² is written last
        row = rows[stable][i]
        qs[row], sw[row] = roots[stable][i], 1 / D[stable][i]
    return sw, qs


# --- at any precision -------------------------------------------------------------------------------


class MpFunctions:
    """The same expectations at `dps` digits: closed forms through mpmath, integrals through
    :func:`derive.gaussian.reference.mp_expectation` (slow in 2-D)."""

    def __init__(self, expressions: dict, dps: int):
        self.dps = dps
        self._f = {k: self._compile(e) for k, e in expressions.items()}

    def _compile(self, expr):
        if not expr.has(GaussianExpectation):
            f = sp.lambdify((q, c), expr, "mpmath")
            return lambda qv, cv=0: mp.mpf(f(qv, cv))
        work = self.dps + 10

        def evaluate(qv, cv=0):
            point = {s: sp.Float(mp.nstr(v, work + 5), work + 5) for s, v in ((q, qv), (c, cv))}
            value = expr.xreplace(point).evalf(work)
            return mp.mpf(str(value))

        return evaluate

    def __getattr__(self, name):
        try:
            return self.__dict__["_f"][name]
        except KeyError:
            raise AttributeError(name) from None

    def g(self, qv, cv):
        if cv == 1:
            return qv * self.D(qv)
        return (self.V(qv) - self.C(qv, cv)) / (1 - cv)


def mp_root(f, x0, dps: int):
    """A root of f near x0 (secant method) at `dps` digits, checked to have converged; x0 itself
    when f vanishes there already (e.g. ReLU at (2, 0), where every q is fixed)."""
    with mp.workdps(dps + 10):
        x0 = mp.mpf(x0)
        small = mp.mpf(10) ** (-dps - 2)
        if abs(f(x0)) <= small * max(1, abs(x0)) ** 2 and abs(f(x0 * (1 + small))) <= small:
            return x0
        x1 = x0 * (1 + mp.mpf(10) ** -7) if x0 else mp.mpf(10) ** -7
        try:
            root = mp.findroot(f, (x0, x1), solver="secant", tol=mp.mpf(10) ** (-2 * dps - 10), maxsteps=60)
        except (ValueError, ZeroDivisionError) as exc:
            raise NumericError(f"the secant method at {dps} digits failed near {mp.nstr(x0, 8)}: "
                               f"{exc}") from None
        if abs(f(root)) > small * max(1, abs(root)):
            raise NumericError(f"the root at {dps} digits did not converge (residual {f(root)})")
    return root
