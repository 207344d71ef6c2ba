r"""Fixed points of the mean-field maps, vectorised over parameter arrays, and at any precision.

Every solver takes the block's maps as callables (:mod:`derive.meanfield.maps`), so it serves
any block.  q* is the limit of the q-map iterated from q⁰: the first root of F(q) = q′(q) − q
met going from q⁰ in the direction the map moves.  The search steps outward geometrically and
never steps over a pair of roots: where F′ changes sign within a step, the extremum is located
(bisection on F′) and F checked there.  c* (the largest correlation fixed point below 1) is the
smallest root of R(s) = s′(s)/s − 1 in s = 1 − c ∈ (0, 2] — the divided difference of the
c-map at c = 1, which removes the trivial root and the cancellation next to it; R(0⁺) = χ₁ − 1
for blocks that keep c = 1 fixed, and +∞ for those that do not (dropout), while R(2) <= 0
always (c′ >= −1).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

from derive.errors import NumericError
from derive.meanfield.results import Regime

Q_MIN, Q_MAX = 1e-300, 1e300
#: |q′ − q| below this times q is within the error of the maps (tables to ~1e-13), not a sign of F:
#: a fixed point closer than that to q = 0 is not told from q decaying to 0
_ROUNDING = 1e-12
#: the outward search: ratio 1.5 for the first 40 steps (a factor 1e7), then 10, then squaring
_STEPS = (1.5,) * 40 + (10.0,) * 20


def bracketed_newton(f, lo, hi, x, log_scale: bool, tol: float, max_iter: int = 200):
    """Newton's method kept inside brackets [lo, hi] with f(lo) > 0 > f(hi) (either order),
    bisecting (geometrically when `log_scale`) where the Newton step leaves the bracket or is
    not below half the step before last, so that the bracket shrinks where f is flat (a fold of
    the q-map, a double root) (the safeguard of rtsafe: Press et al. 2007, *Numerical Recipes*,
    §9.4).  Converged where the step is below `tol` (relative), or where convergence is seen to
    be quadratic (a step below 1e-8 and below 1e-3 of the one before; its result is then as
    accurate as f's rounding allows, which may lie above `tol`).  `f(x, index)` returns (value,
    slope).  Vectorised: every array is 1-D and updated in place where not yet converged."""
    active = np.arange(x.size)
    last = np.abs(hi - lo)  # the latest step of each point, and the one before (rtsafe's dx, dxold)
    before = last.copy()
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
        bad = (~((newton > a) & (newton < b)) | ~(np.abs(step) <= before[active] / 2)) & ~small
        quadratic = ~bad & (np.abs(step) <= 1e-8 * scale) & (np.abs(step) <= 1e-3 * last[active])
        middle = _geometric_mean(a, b) if log_scale else (a + b) / 2
        new = np.where(value == 0, xa, np.where(bad, middle, newton))
        done = small | quadratic | (value == 0) | (b - a <= tol * scale)
        before[active], last[active] = last[active], np.abs(new - xa)
        x[active] = new
        active = active[~done]
    if active.size:
        raise NumericError(f"Newton iteration did not converge at {active.size} points")
    return x


def _geometric_mean(a, b):
    """√(ab) without the underflow of ab (variances down to 1e-300); (a + b)/2 for b < 2a, which
    lies strictly between two close ends where exp of the mean log may round onto one of them."""
    with np.errstate(divide="ignore"):
        return np.where((b < 2 * a) & (a > 0), (a + b) / 2, np.exp((np.log(a) + np.log(b)) / 2))


def _extremum(F, a, b, index, iterations: int = 30):
    """(position, F there) of the extremum of F between a and b (F′ changes sign), by geometric
    bisection on F′."""
    a, b = a.copy(), b.copy()
    _, ga = F(a, index)
    for _ in range(iterations):
        m = _geometric_mean(a, b)
        _, gm = F(m, index)
        same = np.sign(gm) == np.sign(ga)
        a, ga = np.where(same, m, a), np.where(same, gm, ga)
        b = np.where(same, b, m)
    m = _geometric_mean(a, b)
    return m, F(m, index)[0]


def _scan(F, start, f_start, g_start, up: bool):
    """From `start` step outward (up or down) until F changes sign, looking inside every step
    whose F′ changes sign.  Returns (near, far, found): F(near) has the sign of F(start)."""
    n = start.size
    near, far = start.copy(), start.copy()
    f_near, g_near = f_start.copy(), g_start.copy()
    found = np.zeros(n, bool)
    active = np.arange(n)
    for ratio in (*_STEPS, *([None] * 64)):
        if not active.size:
            break
        if ratio is None:  # beyond 1e27·q⁰: square the distance to q⁰ each step
            ratio = np.maximum(near[active] / start[active], start[active] / near[active]) + 10.0
        with np.errstate(over="ignore", under="ignore"):
            trial = np.clip(near[active] * ratio if up else near[active] / ratio, Q_MIN, Q_MAX)
        f, g = F(trial, active)
        # a sign change counts only beyond the error of q′ − q (tanh at (1, 0): F ≈ −2q² falls
        # below it as q → 0, and q decays to 0 rather than meeting a root there)
        noise = _ROUNDING * trial
        flipped = (f < -noise) if up else (f > noise)
        # so does a turn of F (a sign change of F′ = χ_q − 1, whose error is of the same order):
        # within the rounding, F is flat and no extremum can reach beyond the noise (tanh at
        # (1, 0), where F′ ≈ −4q flickers around 0 far down, cost 9 extremum searches)
        turned = (~flipped & (np.sign(g) != np.sign(g_near[active]))
                  & (np.abs(g) > _ROUNDING) & (np.abs(g_near[active]) > _ROUNDING))
        if turned.any():
            idx = active[turned]
            lo_, hi_ = (near[idx], trial[turned]) if up else (trial[turned], near[idx])
            where, value = _extremum(F, lo_, hi_, idx)
            dips = (value < -_ROUNDING * where) if up else (value > _ROUNDING * where)
            hit = np.flatnonzero(turned)[dips]
            trial[hit] = where[dips]
            flipped[hit] = True
        far[active] = trial
        found[active] = flipped
        edge = (trial >= Q_MAX) if up else (trial <= Q_MIN)
        keep = ~flipped & ~edge
        near[active[keep]], f_near[active[keep]], g_near[active[keep]] = trial[keep], f[keep], g[keep]
        active = active[keep]
    return near, far, found


def solve_q_star(F, q0, guess=None):
    """q* and a flag (Q_INFINITE, Q_ZERO, or −1 for a finite positive root) for the q-map whose
    F(q, index) = (q′ − q, χ_q − 1) at the points `index`; `guess` starts Newton near the answer."""
    q0 = np.asarray(q0, dtype=float).ravel()
    n = q0.size
    qs = np.full(n, np.nan)
    flag = np.full(n, -1, np.int8)
    todo = np.arange(n) if guess is None else _polish(F, np.asarray(guess, float).ravel(), qs, True)
    if not todo.size:
        return qs, flag
    f0, g0 = F(q0[todo], todo)
    still = np.abs(f0) <= _ROUNDING * q0[todo]  # q⁰ is fixed to within the maps' error (ReLU at (2, 0))
    qs[todo[still]] = q0[todo[still]]
    f0 = np.where(still, 0.0, f0)
    for up in (True, False):
        sel = todo[(f0 > 0) if up else (f0 < 0)]
        if not sel.size:
            continue
        mask = (f0 > 0) if up else (f0 < 0)
        near, far, found = _scan(lambda v, a, sel=sel: F(v, sel[a]), q0[sel], f0[mask], g0[mask], up)
        flag[sel[~found]] = Regime.Q_INFINITE if up else Regime.Q_ZERO
        qs[sel[~found]] = np.inf if up else 0.0
        ok = sel[found]
        lo, hi = (near[found], far[found]) if up else (far[found], near[found])  # F(lo) > 0 > F(hi)
        qs[ok] = bracketed_newton(lambda v, a, ok=ok: F(v, ok[a]), lo.copy(), hi.copy(),
                                  _geometric_mean(lo, hi), True, 2e-15)
    return qs, flag


def _polish(F, guess, out, positive: bool, steps: int = 4):
    """Newton from `guess`, accepting a point once its step is below 1e-9 (relative for q) at a
    root where F decreases (the attracting side); the rest (their indices) go to the full solver."""
    todo = np.flatnonzero(np.isfinite(guess) & ((guess > 0) if positive else (guess > 0) & (guess <= 2)))
    failed = np.ones(guess.size, bool)
    x = guess[todo]
    for _ in range(steps):
        if not todo.size:
            break
        value, slope = F(x, todo)
        with np.errstate(invalid="ignore", divide="ignore"):
            step = value / slope
        x = x - step
        good = np.isfinite(x) & (x > 0) & (positive | (x <= 2))
        done = good & (np.abs(step) <= 1e-9 * (x if positive else 1.0)) & (slope < 0)
        out[todo[done]] = x[done]
        failed[todo[done]] = False
        keep = good & ~done
        todo, x = todo[keep], x[keep]
    return np.flatnonzero(failed)


_S_GRID = 2.0 ** -np.arange(40, -2, -1.0)  # s = 1 − c from 2^-40 to 2
#: the scan of solve_s_star evaluates the grid values up to 1/32 (c >= 31/32, the top cut of the
#: tables, which the first value samples anyway) this many per call: a point that crosses early
#: costs a few needless values there, while a call costs as much as thousands of values
_S_BLOCK, _S_BLOCKED = 6, 2.0**-5


def solve_s_star(R, n: int, guess=None):
    """The smallest root s* in (0, 2] of R(s, index) = (s′/s − 1, its s-derivative) at n points
    with R(0⁺) > 0: the correlation fixed point c* = 1 − s*.  The first sign change on a grid
    in s (ratio 2) brackets it, Newton refines it; ``R(s, index, slope=False)`` may leave the
    derivative out (None), as the grid needs signs only."""
    ss = np.full(n, np.nan)
    todo = np.arange(n) if guess is None else _polish(R, np.asarray(guess, float).ravel(), ss, False)
    if not todo.size:
        return ss
    lo, hi = np.full(todo.size, np.nan), np.full(todo.size, np.nan)
    pending = np.arange(todo.size)
    previous = np.full(todo.size, _S_GRID[0])
    blocked = int(np.sum(_S_GRID <= _S_BLOCKED))
    starts = [*range(0, blocked, _S_BLOCK), *range(blocked, _S_GRID.size)]
    for start, end in zip(starts, [*starts[1:], _S_GRID.size], strict=True):
        if not pending.size:
            break
        block = _S_GRID[start:end]
        value, _ = R(np.tile(block, pending.size), np.repeat(todo[pending], block.size), slope=False)
        crossed = value.reshape(pending.size, block.size) <= 0
        hit = crossed.any(axis=1)
        first = crossed.argmax(axis=1)[hit]
        at = pending[hit]
        hi[at] = block[first]
        lo[at] = np.where(first > 0, block[first - 1], previous[at])
        previous[pending[~hit]] = block[-1]
        pending = pending[~hit]
    if pending.size:
        raise NumericError("no correlation fixed point found in [-1, 1): the c-map is not a correlation map")
    ss[todo] = bracketed_newton(lambda v, a: R(v, todo[a]), lo, hi, _geometric_mean(lo, hi), True, 1e-15)
    return ss


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
