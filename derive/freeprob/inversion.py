r"""Stieltjes inversion of algebraic laws: the physical root of P(z, M) = 0, density, support, atoms.

**Root choice.**  For z in the upper half plane C⁺ the physical M(z) = zG(z) − 1 is analytic and,
for an irreducible P, a simple root of P(z, ·) (a multiple root on the physical sheet would be a
branch point, contradicting analyticity in C⁺).  At height y ≫ the support radius it is the unique
root near m_1/z (|M − m_1/z| = O(|z|⁻²), the others stay O(1) or grow).  From there it is followed
down the vertical line Re z + iy, y ↓ Im z (or ↓ 0 for the boundary value on the real axis),
in the variable G (the equation P(z, zG − 1) = 0; M-form and G-form roots correspond one to one
for z != 0, and G stays well conditioned at z = 0, where M = −1 may be a double root): all d
roots are computed at every level (companion eigenvalues); roots violating the Herglotz bounds
Im G < 0, |G| <= 1/Im z are excluded, and the step is accepted only when the remaining root
nearest the previous value (distance measured in qG, q vanishing at the possible atoms) is closer
than 0.3 times the second nearest — else the step is refined (two roots that coincide to 1e-6
relative are a double root: the one with the smaller Im G is kept, and either is the same to that
accuracy).  At the end the root is polished by Newton's method on the unexpanded P.
Boundary value: ρ(λ) = −Im G(λ + i0)/π
(Pennington, Schoenholz & Ganguli 2017, eq. 4).  Along the real axis (from one boundary value
inside a supported piece to others) the same steps are taken by Newton's method at all points
at once, each step proved to take the root the eigenvalues would (Rouché's theorem with the
rounding errors bounded: :meth:`RootTracker.certified`); the eigenvalues remain for the steps
that cannot be proved (next to a double root at an edge, in the cluster of roots at an atom).

**Support.**  The density can change between zero and non-zero only where two roots of P(λ, ·)
meet (zeros of the discriminant of P in M), where M has a pole (zeros of its leading coefficient:
atoms at λ ≠ 0) or at λ = 0; between consecutive such points the law is either supported or not,
decided at the midpoint.  Atoms: at λ = a ≠ 0 the mass is lim_{z→a} (z − a) G(z), read off as the
root u ≠ 0 of the lowest-order coefficient of P(a + v, u/v − 1)·v^d in v (exact) nearest the
continued value; at 0 the mass is 1 + M(0 + i0).  Every support is checked a posteriori: the
density integrated over the supported pieces (tanh–sinh quadrature, :class:`IndefiniteTanhSinh`,
whose samples the CDF reuses) plus the atoms must give 1 to ``MASS_TOL``, else
:class:`~derive.errors.NumericError` — the law is never returned with a density that does not
integrate to its mass.

The exact work on P (its G-form coefficients, discriminant zeros, poles, atom candidates, Puiseux
expansions) is done once per relation (:func:`g_coefficients`, :meth:`ExactPoints.of`,
:meth:`ClusterSeries.expansions`); every numeric step runs for each law.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.errors import NumericError
from derive.freeprob.relation import G_, M_, Relation, Z
from derive.freeprob.tanh_sinh import IndefiniteTanhSinh

MASS_TOL = 1e-8
_ACCEPT = 0.3
_RELIABLE = 1e-2
_COINCIDE = 1e-6
_STRIDE = 16


@dataclass(frozen=True)
class Support:
    """Where a law lives: closed intervals ``bands`` (edges), ``atoms`` as (location, mass) pairs,
    and the a-posteriori check ``mass`` = ∫ρ over the bands + Σ masses (1 up to ``mass_error``);
    ``integrals``: the :class:`IndefiniteTanhSinh` rules the check integrated with, when it kept
    them (their samples serve the CDF)."""

    bands: tuple
    atoms: tuple
    mass: float
    mass_error: float
    method: str = ""
    integrals: tuple = field(default=(), compare=False, repr=False)

    @property
    def edges(self) -> tuple:
        return tuple(e for band in self.bands for e in band)

    @property
    def atom_mass(self) -> float:
        return float(sum(m for _, m in self.atoms))

    @property
    def upper(self) -> float:
        """The largest point of the support."""
        points = [b for _, b in self.bands] + [a for a, _ in self.atoms]
        return float(max(points))

    def __repr__(self) -> str:
        bands = ", ".join(f"[{a:.12g}, {b:.12g}]" for a, b in self.bands)
        atoms = ", ".join(f"{m:.12g} at {a:.12g}" for a, m in self.atoms)
        return f"Support(bands: {bands or 'none'}; atoms: {atoms or 'none'}; mass {self.mass:.15g})"


class HeightSchedule:
    """The heights of a vertical continuation z = x + iy, from y = `top` down to the targets Im z,
    one per point (the state of the loop, hence mutable).  A step to y·ratio is proposed; an
    accepted step makes the next one bolder (ratio², down to 1e-3), a refused one timid (√ratio).
    Below a floor (1e-13·top) the step goes to the target at once; a refused jump lowers that
    point's floor by 1e-4.  A point is given up when a refusal leaves its ratio above `stall` or
    its floor below 1e-60·top, or after `max_steps` proposals."""

    def __init__(self, z: np.ndarray, top: float, ratio: float, stall: float, max_steps: int | None = None):
        self.x, self.target, self.top = z.real, z.imag.copy(), top
        self.stall, self.max_steps = stall, max_steps
        self.height = np.full(z.size, top)
        self.ratio = np.full(z.size, ratio)
        self.floor = np.full(z.size, 1e-13 * top)
        self.steps = np.zeros(z.size, dtype=int)
        self.lost = np.zeros(z.size, dtype=bool)
        self._proposal = self._jump = None

    def start(self) -> np.ndarray:
        """The starting points x + i·top."""
        return self.x + 1j * self.height

    def pending(self) -> np.ndarray:
        """Indices of the points still above their targets and not given up."""
        return np.flatnonzero((self.height > self.target) & ~self.lost)

    def propose(self, idx: np.ndarray) -> np.ndarray:
        """The next points to try at `idx`."""
        proposal = np.maximum(self.height[idx] * self.ratio[idx], self.target[idx])
        self._jump = proposal < self.floor[idx]
        self._proposal = np.where(self._jump, self.target[idx], proposal)
        return self.x[idx] + 1j * self._proposal

    def settle(self, idx: np.ndarray, ok: np.ndarray) -> None:
        """Record which of the proposed points were accepted."""
        take, jump = idx[ok], self._jump
        self.height[take] = self._proposal[ok]
        self.ratio[take] = np.maximum(self.ratio[take] ** 2, 1e-3)
        self.floor[idx[~ok & jump]] *= 1e-4
        shorten = idx[~ok & ~jump]
        self.ratio[shorten] = np.sqrt(self.ratio[shorten])
        refused = idx[~ok]
        stalled = (self.ratio[refused] > self.stall) | (self.floor[refused] < 1e-60 * self.top)
        self.lost[refused[stalled]] = True
        self.steps[idx] += 1
        if self.max_steps is not None:
            self.lost[idx[self.steps[idx] > self.max_steps]] = True

    def reached(self) -> np.ndarray:
        """Whether each point was followed down to its target."""
        return ~self.lost & (self.height <= self.target)


@dataclass(frozen=True)
class RootTracker:
    """Numeric form of a relation with numeric coefficients: all roots and the physical one."""

    relation: Relation
    radius: float
    moments: tuple
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def _matrix(self) -> np.ndarray:
        return g_coefficients(self.relation)

    def coefficients(self, z: np.ndarray) -> np.ndarray:
        """c_k(z), shape (N, d + 1): P(z, zG − 1) = Σ_k c_k(z) G^{d−k} (Horner in z, all k at once)."""
        c = self._matrix
        out = np.broadcast_to(c[:, 0], (z.size, c.shape[0])).astype(np.result_type(c, z))
        for column in c.T[1:]:
            out = out * z[:, None] + column
        return out

    def roots(self, z: np.ndarray) -> np.ndarray:
        """All d roots G of P(z, zG − 1) = 0 at each z, shape (N, d): eigenvalues of the companion
        matrices, real ones (faster) where z and the coefficients are real."""
        z = np.asarray(z)
        real = not np.iscomplexobj(self._matrix) and not np.any(np.imag(z))
        z = z.real if real else z.astype(complex)
        coeffs = self.coefficients(z)  # (N, d+1)
        with np.errstate(all="ignore"):
            monic = coeffs[:, 1:] / coeffs[:, :1]
        d = monic.shape[1]
        if d == 1:
            return (-monic).astype(complex)
        companion = np.zeros((z.size, d, d), dtype=monic.dtype)
        companion[:, 0, :] = -monic
        companion[:, np.arange(1, d), np.arange(d - 1)] = 1
        bad = ~np.isfinite(monic).all(axis=1)
        companion[bad] = 0
        r = np.linalg.eigvals(companion).astype(complex)
        r[bad] = np.nan
        return r

    def boundary(self, x: np.ndarray, x0: float, g0: complex) -> np.ndarray:
        """G(x + i0) at the real points `x`, all inside one supported piece of the real axis (an
        interval free of zeros of the discriminant, of poles and of 0), followed along the axis
        from the known boundary value G(x0 + i0) = g0 (see the module docstring); nan where the
        root is not decided or float64 cannot resolve it."""
        x = np.asarray(x, dtype=float)
        g = np.full(x.size, complex(np.nan, np.nan))
        for side in (x >= x0, x < x0):
            idx = np.flatnonzero(side)
            if idx.size:
                idx = idx[np.argsort(np.abs(x[idx] - x0), kind="stable")]
                g[idx] = self._march(np.concatenate([[x0], x[idx]]), g0)[1:]
        ok = np.isfinite(g)
        g[ok] = self._polish(x[ok].astype(complex), g[ok])
        with np.errstate(all="ignore"):
            g[ok & ~(self.condition(x.astype(complex), g) <= _RELIABLE * np.abs(g))] = np.nan
        return g

    def _candidates(self, x: np.ndarray) -> tuple:
        """(roots, scaled roots qG) at real x; roots with Im G > 0 (not boundary values from C⁺)
        are excluded (nan)."""
        roots = self.roots(x)
        u = self._scaled(x.astype(complex))[:, None] * roots
        with np.errstate(invalid="ignore"):
            u[roots.imag > 1e-12 * np.abs(roots)] = np.nan
        return roots, u

    def _march(self, path: np.ndarray, g0: complex) -> np.ndarray:
        """G along the monotone real `path` (path[0] where G = g0), the same roots as
        :meth:`_eigen_march` at a fraction of its cost: Newton's method at every point at once, from
        the linear interpolation of the eigenvalue march on every ``_STRIDE``-th point, and each step
        kept only when :meth:`certified` proves that its root is the one the eigenvalue march takes
        (the nearest to the previous value in qG, closer than _ACCEPT times any other).  From a step
        that is not proved the eigenvalue march takes ``_STRIDE`` steps, and Newton's roots are taken
        up again where it meets them (to 1e-12 relative); else it goes on to the end."""
        n = path.size
        if n <= 2 * _STRIDE:
            return self._eigen_march(path, g0)
        coarse = np.unique(np.concatenate([np.arange(0, n, _STRIDE), [n - 1]]))
        anchor = self._eigen_march(path[coarse], g0)
        known = np.isfinite(anchor)
        last = coarse[known][-1]
        guess = np.full(n, complex(np.nan, np.nan))
        along = np.abs(path - path[0])  # increasing on either side of path[0]
        guess[:last + 1] = (np.interp(along[:last + 1], along[coarse][known], anchor[known].real)
                            + 1j * np.interp(along[:last + 1], along[coarse][known], anchor[known].imag))
        guess[0] = g0
        z = path.astype(complex)
        zeta = self._newton(z, guess)
        q = self._scaled(z)
        with np.errstate(all="ignore"):
            previous = np.concatenate([[g0], q[:-1] * zeta[:-1] / q[1:]])  # the previous qG, over q here
            # proved[j]: the step j − 1 -> j (j = 0: from g0), a boundary value from C⁺ (as _candidates)
            proved = self.certified(z, zeta, previous) & (zeta.imag <= 1e-12 * np.abs(zeta))
        if not proved[0]:
            return self._eigen_march(path, g0)
        out = zeta.copy()
        i = 0
        while True:  # out[:i + 1] is decided
            refused = np.flatnonzero(~proved[i + 1:])
            if not refused.size:
                return out
            i += refused[0]
            end = min(i + _STRIDE, n - 1)
            out[i:end + 1] = self._eigen_march(path[i:end + 1], out[i])
            i = end
            if not abs(out[i] - zeta[i]) <= 1e-12 * abs(zeta[i]):  # not met (or lost: nan)
                out[i:] = self._eigen_march(path[i:], out[i]) if np.isfinite(out[i]) else np.nan
                return out
            out[i] = zeta[i]

    def _newton(self, z: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Newton's method on P(z, zG − 1) from `g`, all points at once; a point stops when its
        step falls below 1e-14 |G|, or below 1e-10 |G| without shrinking (rounding), or after 30
        steps (where the result is whatever it reached: :meth:`certified` judges it)."""
        coeffs = self.coefficients(z).T
        g = g.astype(complex)
        active = np.flatnonzero(np.isfinite(g))
        last = np.full(g.size, np.inf)
        with np.errstate(all="ignore"):
            for _ in range(30):
                ga = g[active]
                f, df = coeffs[0, active], 0
                for c in coeffs[1:, active]:  # Horner for P and ∂P/∂G together
                    df = df * ga + f
                    f = f * ga + c
                step = f / df
                g[active] = ga - step
                size = np.abs(step) / np.abs(ga)
                stop = ~(size > 1e-14) | ((size <= 1e-10) & (size > 0.5 * last[active]))
                last[active] = size
                active = active[~stop]
                if not active.size:
                    break
        return g

    def certified(self, z: np.ndarray, zeta: np.ndarray, reference: np.ndarray) -> np.ndarray:
        r"""Whether ζ is a converged root of P(z, zG − 1) (float64 coefficients at z) whose exact
        root — within ε of ζ, :meth:`root_radius` — is the root nearest `reference`, closer to it
        than _ACCEPT times any other root (the acceptance test of the continuation).  Converged:
        |b_0| at most its rounding bound plus 1e-12 |ζ| β_1/2 (Newton's step below 1e-12 relative).
        Nearest: by Rouché's theorem, β_1 r > B_0 + Σ_{k>=2} B_k r^k also at r = D = d + (d + ε)/_ACCEPT,
        d = |ζ − reference|: no other root within D of ζ, so farther than D − d = (d + ε)/_ACCEPT
        from the reference, and the root within ε is within d + ε of it."""
        value, bound = self._taylor(z, zeta)
        low, radius = _root_radius(value, bound)
        with np.errstate(all="ignore"):
            converged = value[0] <= bound[0] + 0.5e-12 * np.abs(zeta) * low
            dist = np.abs(zeta - reference)
            big = dist + (dist + radius) / _ACCEPT
            return np.isfinite(big) & converged & _dominated(value + bound, low, big)

    def root_radius(self, z: np.ndarray, zeta: np.ndarray) -> np.ndarray:
        r"""ε = 2B_0/β_1 such that P(z, zG − 1) (float64 coefficients at z) has exactly one root
        within ε of ζ (nan where that is not proved): by Rouché's theorem, as b_1(G − ζ) dominates
        the rest of Σ_k b_k (G − ζ)^k on |G − ζ| = ε, β_1 ε > B_0 + Σ_{k>=2} B_k ε^k, with the
        bounds β_1 <= |b_1|, B_k >= |b_k| of :meth:`_taylor`."""
        return _root_radius(*self._taylor(z, zeta))[1]

    def _taylor(self, z: np.ndarray, zeta: np.ndarray) -> tuple:
        """(|b_k|, e_k), k = 0..d, shape (d + 1, N): the Taylor coefficients at ζ of
        P(z, zG − 1) = Σ_k b_k (G − ζ)^k by repeated synthetic division, and bounds of their
        rounding errors e_k = 8d eps × (the same division of |c_k| at |ζ|): every term passes at
        most d complex multiplications and 2d additions (Higham 2002, sec. 5.1, for Horner's rule)."""
        b = self.coefficients(z).astype(complex).T.copy()
        s = np.abs(b)
        d, size = b.shape[0] - 1, np.abs(zeta)
        value, bound = [], []
        for k in range(d + 1):
            for j in range(1, d + 1 - k):
                b[j] = b[j] + zeta * b[j - 1]
                s[j] = s[j] + size * s[j - 1]
            value.append(np.abs(b[d - k]))
            bound.append(8 * d * np.finfo(float).eps * s[d - k])
        return np.array(value), np.array(bound)

    def _eigen_march(self, path: np.ndarray, g0: complex) -> np.ndarray:
        """G along the monotone real `path` (path[0] where G = g0): at each step the candidate
        root nearest the previous one (in qG) when it is closer than _ACCEPT times the second
        nearest (or coincides with it), else the step is bisected (up to 40 times)."""
        roots, u = self._candidates(path)
        out = np.full(path.size, complex(np.nan, np.nan))
        dist = np.abs(u[1:, :, None] - u[:-1, None, :])  # (step, next root, previous root)
        dist = np.where(np.isfinite(dist), dist, np.inf)
        order = np.argsort(dist, axis=1)
        nearest, second = order[:, 0, :], order[:, min(1, u.shape[1] - 1), :]
        steps = np.arange(path.size - 1)[:, None]
        d1 = np.take_along_axis(dist, nearest[:, None, :], 1)[:, 0, :]
        d2 = np.take_along_axis(dist, second[:, None, :], 1)[:, 0, :]
        u_next = u[1:]
        coincide = np.abs(u_next[steps, nearest] - u_next[steps, second]) <= _COINCIDE * (
            1 + np.abs(u_next[steps, nearest]))
        good = (np.isfinite(d1) & ((d1 <= _ACCEPT * d2) | coincide)).tolist()
        nearest = nearest.tolist()
        start = np.abs(u[0] - self._scaled(np.array([path[0] + 0j]))[0] * g0)
        a = int(np.nanargmin(np.where(np.isfinite(start), start, np.inf)))
        out[0] = roots[0, a]
        for i in range(path.size - 1):
            if good[i][a]:
                a = nearest[i][a]
                out[i + 1] = roots[i + 1, a]
                continue
            value = self._bisected(path[i], out[i], path[i + 1])
            if not np.isfinite(value):
                break
            out[i + 1] = value
            a = int(np.argmin(np.abs(roots[i + 1] - value)))
        return out

    def _bisected(self, xa: float, ga: complex, xb: float) -> complex:
        """The step xa → xb of :meth:`_march` taken in halves until every part is unambiguous."""
        targets = [xb]
        for _ in range(200):
            if not targets:
                return ga
            t = targets[-1]
            roots, u = self._candidates(np.array([t]))
            prev = self._scaled(np.array([xa + 0j]))[0] * ga
            dist = np.where(np.isfinite(u[0]), np.abs(u[0] - prev), np.inf)
            order = np.argsort(dist)
            d1, d2 = dist[order[0]], dist[order[1]] if dist.size > 1 else np.inf
            nearest = u[0, order[0]]
            close = dist.size > 1 and abs(nearest - u[0, order[1]]) <= _COINCIDE * (1 + abs(nearest))
            if np.isfinite(d1) and (d1 <= _ACCEPT * d2 or close):
                xa, ga = t, roots[0, order[0]]
                targets.pop()
            elif abs(t - xa) <= 1e-12 * (1 + abs(t)) or len(targets) > 40:
                return complex(np.nan, np.nan)
            else:
                targets.append((xa + t) / 2)
        return complex(np.nan, np.nan)

    def condition(self, z: np.ndarray, g: np.ndarray) -> np.ndarray:
        """First-order float64 error bound of the root g: eps Σ_k |c_k(z)| |g|^k / |∂_G P|."""
        coeffs = self.coefficients(z).T
        d = len(coeffs) - 1
        size = sum(np.abs(c) * np.abs(g) ** (d - k) for k, c in enumerate(coeffs))
        slope = sum((d - k) * c * g ** (d - k - 1) for k, c in enumerate(coeffs[:-1]))
        with np.errstate(all="ignore"):
            return 4 * np.finfo(float).eps * size / np.abs(slope)

    def physical(self, z) -> np.ndarray:
        """G(z) on the physical branch for z with Im z >= 0 (boundary values at Im z = 0).

        Inside the disc of the Puiseux series of :class:`ClusterSeries` (roots clustering at 0)
        that series is used; elsewhere a float64 root whose first-order error bound exceeds
        ``_RELIABLE``·|G| is returned as nan.  The first call orients the series in the same
        continuation as its points outside every disc (one continuation instead of two).
        """
        z = np.asarray(z, dtype=complex).ravel()
        g = np.full(z.size, complex(np.nan, np.nan))
        continued, ok = g.copy(), np.zeros(z.size, dtype=bool)
        done = np.zeros(z.size, dtype=bool)
        if "cluster" not in self._cache:
            done = ~ClusterSeries.near(self.relation, z)
            self._cache["cluster"], continued[done], ok[done] = ClusterSeries.build(self, z[done])
        series = self.cluster
        inside = series.covers(z) if series is not None else np.zeros(z.size, dtype=bool)
        if inside.any():  # within its disc the series is accurate to (1/2)^TERMS: no continuation
            g[inside] = series(z[inside])
        todo = np.flatnonzero(~inside & ~done)
        if todo.size:
            continued[todo], ok[todo] = self.continue_roots(z[todo], self.roots)
        rest = np.flatnonzero(~inside)
        if rest.size:
            gr, okr = continued[rest], ok[rest]
            gr = np.where(okr, self._polish(z[rest], gr), gr)
            with np.errstate(all="ignore"):
                okr &= self.condition(z[rest], gr) <= _RELIABLE * np.abs(gr)
            g[rest[okr]] = gr[okr]
        return g

    @property
    def cluster(self):
        """The :class:`ClusterSeries` at the roots clustering at 0, or None (oriented once)."""
        if "cluster" not in self._cache:
            self._cache["cluster"] = ClusterSeries.build(self, np.zeros(0, dtype=complex))[0]
        return self._cache["cluster"]

    def continue_roots(self, z: np.ndarray, roots_of) -> tuple:
        """Vertical continuation (see the module docstring) with the root finder ``roots_of``;
        returns (G, whether each point was followed to its end)."""
        top = 8 * max(self.radius, 1e-300) + 4 * np.abs(z.real).max(initial=0.0)
        heights = HeightSchedule(z, top, ratio=0.05, stall=0.999)
        zg = heights.start()
        g = self._start(zg, roots_of)
        for _ in range(400):
            idx = heights.pending()
            if not idx.size:
                break
            zi = heights.propose(idx)
            choice, ok = _match(roots_of(zi), self._scaled(zg[idx]) * g[idx], zi, self._scaled(zi))
            g[idx[ok]], zg[idx[ok]] = choice[ok], zi[ok]
            heights.settle(idx, ok)
        return g, heights.reached()

    def _start(self, z: np.ndarray, roots_of) -> np.ndarray:
        roots = roots_of(z)
        guess = (1 + sum(m / z ** (k + 1) for k, m in enumerate(self.moments))) / z
        q = self._scaled(z)
        choice, ok = _match(roots, q * guess, z, q)
        if not ok.all():
            raise NumericError("no unique root near m_1/z at large |z|: the equation is not that of "
                               "a probability measure's M-transform")
        return choice

    @cached_property
    def _poles(self) -> np.ndarray:
        """Real zeros of the leading coefficient of P(z, zG − 1) in G, and 0: where G may have poles."""
        lead = np.trim_zeros(self._matrix[0], "f")
        roots = np.roots(lead) if lead.size > 1 else np.array([])
        real = np.sort(roots[np.abs(roots.imag) <= 1e-6 * (1 + np.abs(roots))].real)
        groups: list = []  # a multiple zero comes out split: merge within 1e-6 and average
        for r in real:
            if groups and abs(r - groups[-1][-1]) <= 1e-6 * (1 + abs(r)):
                groups[-1].append(r)
            else:
                groups.append([r])
        centres = [0.0 if abs(np.mean(g)) <= 1e-9 else float(np.mean(g)) for g in groups]
        return np.unique(np.array(centres + [0.0]))

    def _scaled(self, z: np.ndarray) -> np.ndarray:
        """q(z) = Π_j (z − a_j)/(1 + |a_j|) over the possible poles a_j: qG stays finite at atoms."""
        q = np.ones_like(z)
        for a in self._poles:
            q = q * (z - a) / (1 + abs(a))
        return q

    def _polish(self, z, g):
        """Three Newton steps on P(z, zG − 1) = Σ_k c_k(z) G^{d−k} (each taken only when smaller
        than 1e-6 |G|: a correction, never a jump to another root)."""
        coeffs = self.coefficients(z).T
        d = len(coeffs) - 1
        with np.errstate(all="ignore"):
            for _ in range(3):
                f, df = coeffs[0], 0
                for c in coeffs[1:]:  # Horner for P and ∂P/∂G together
                    df = df * g + f
                    f = f * g + c
                step = f / df if d else np.zeros_like(g)
                small = np.isfinite(step) & (np.abs(step) < 1e-6 * np.abs(g))
                g = np.where(small, g - step, g)
        return g


@dataclass(frozen=True)
class ClusterSeries:
    """The Puiseux expansion of the physical M at z = 0 when M⁻¹ = f is explicit and the physical
    M(0) = M₀ is an L-fold zero of f (an atom at 0 of a free product, e.g. of D² for ReLU:
    Pennington, Schoenholz & Ganguli 2018, sec. 4): f(M₀ + u) = u^L h(M₀ + u), h(M₀) != 0, so
    t = (z/h(M₀))^{1/L} ω = u (h(M₀ + u)/h(M₀))^{1/L} is inverted as a power series u(t)
    (``TERMS`` terms, used for |t| <= R/2, R the radius estimated from the coefficients); the root of
    unity ω is the one whose value agrees with the float64 continuation at a reference point.
    There the L roots of P(z, ·) near M₀ are spaced by |t| and float64 cannot separate them."""

    m0: complex
    order: int
    h0: complex
    coefficients: np.ndarray
    omega: complex
    radius: float

    TERMS = 60

    @classmethod
    def build(cls, tracker: RootTracker, z: np.ndarray) -> tuple:
        """(the series at the first multiple zero M₀ that the continuation confirms, or None;
        G continued at the points `z`, and whether each was followed to its end): the first
        reference point of every expansion is continued together with `z`."""
        expansions = cls.expansions(tracker.relation)
        references = [cls._references(tracker, e) for e in expansions]
        firsts = [r[0] for r in references if r]
        g, ok = tracker.continue_roots(np.concatenate([*firsts, z]), tracker.roots) \
            if firsts or z.size else (z.copy(), np.zeros(0, dtype=bool))
        known = iter(zip(g[:len(firsts)], ok[:len(firsts)], strict=True))
        chosen = None
        for expansion, refs in zip(expansions, references, strict=True):
            chosen = cls._orient(tracker, expansion, refs, next(known) if refs else None)
            if chosen is not None:
                break
        return chosen, g[len(firsts):], ok[len(firsts):]

    @classmethod
    def near(cls, relation: Relation, z: np.ndarray) -> np.ndarray:
        """Whether each z lies in the disc of any expansion (where the series may be used)."""
        near = np.zeros(z.size, dtype=bool)
        for expansion in cls.expansions(relation):
            near |= cls._inside(expansion, z)
        return near

    @staticmethod
    def _inside(expansion: tuple, z: np.ndarray) -> np.ndarray:
        _, order, h0, _, radius = expansion
        return np.abs(z / h0) ** (1 / order) <= radius / 2

    @staticmethod
    @lru_cache(maxsize=64)
    def expansions(relation: Relation) -> tuple:
        """(M₀, L, h(M₀), coefficients of u(t), radius R) for every zero M₀ of order L >= 2 of the
        numerator of M⁻¹ (none unless M⁻¹ is explicit): derived once per relation."""
        if not relation.is_explicit_inverse:
            return ()
        num, den = sp.fraction(sp.cancel(relation.inverse))
        num = sp.Poly(num, M_)
        out = []
        for factor, order in num.sqf_list()[1]:
            if factor.degree() != 1 or order < 2:
                continue
            m0 = sp.solve(factor.as_expr(), M_)[0]
            series = ClusterSeries._series(num.as_expr(), den, m0, order)
            if series is not None:
                h0, b = series
                b.flags.writeable = False
                tail = [abs(c) ** (-1 / j) for j, c in enumerate(b)
                        if j >= ClusterSeries.TERMS // 2 and abs(c) > 0]
                out.append((complex(sp.N(m0, 30)), order, h0, b, min(tail) if tail else np.inf))
        return tuple(out)

    @classmethod
    def _series(cls, num, den, m0, order):
        quotient, rest = sp.div(sp.Poly(num, M_), sp.Poly((M_ - m0) ** order, M_))
        den = sp.Poly(den, M_)
        if not rest.is_zero or den.eval(m0) == 0:
            return None
        # Taylor coefficients of h(m0 + u) = quotient/den, ascending, by series division
        u = sp.Symbol("u")
        top, bottom = (np.array([complex(sp.N(c, 30)) for c in
                                 reversed(sp.Poly(sp.expand(p.as_expr().subs(M_, m0 + u)), u).all_coeffs())])
                       for p in (quotient, den))
        h = np.zeros(cls.TERMS, dtype=complex)
        for k in range(cls.TERMS):
            known = sum(bottom[j] * h[k - j] for j in range(1, min(k, bottom.size - 1) + 1))
            h[k] = ((top[k] if k < top.size else 0) - known) / bottom[0]
        root = _power_series(list(h / h[0]), 1 / order, cls.TERMS)  # (h/h0)^{1/L}
        phi = np.concatenate([[0], root[:cls.TERMS - 1]])  # φ(u) = u·root(u)
        return h[0], _reverse_numeric(phi)

    @staticmethod
    def _references(tracker: RootTracker, expansion: tuple) -> list:
        """Reference points i·10^-k·(moment radius), k = 1..8, inside the disc, the farthest first:
        there the L roots are best separated (next to 0 the continuation is ill-conditioned)."""
        points = (np.array([1j * scale * tracker.radius]) for scale in 10.0 ** np.arange(-1, -9, -1))
        return [zr for zr in points if ClusterSeries._inside(expansion, zr)[0]]

    @classmethod
    def _orient(cls, tracker, expansion, references, first):
        """The series whose root of unity agrees with the float64 continuation at the first
        reference point where that continuation is reached and well conditioned (``first``: its
        continuation, done already), or None."""
        m0, order, h0, b, radius = expansion
        for zr in references:
            g, ok = first if first is not None else tracker.continue_roots(zr, tracker.roots)
            first = None
            g, ok = np.atleast_1d(g), np.atleast_1d(ok)
            if not ok[0] or tracker.condition(zr, g)[0] > 1e-8 * abs(g[0]):
                continue
            for k in range(order):  # the L choices differ by O(|t|): far more than 1e-6
                candidate = cls(m0, order, h0, b, np.exp(2j * np.pi * k / order), radius)
                if abs(candidate(zr)[0] - g[0]) <= 1e-6 * abs(g[0]):
                    return candidate
        return None

    def covers(self, z: np.ndarray) -> np.ndarray:
        return self._inside((self.m0, self.order, self.h0, self.coefficients, self.radius), z)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        # a branch of (z/h₀)^{1/L} continuous on the closed upper half plane (arg z in [0, π])
        t = np.abs(z / self.h0) ** (1 / self.order) * self.omega \
            * np.exp(1j * (np.angle(z) - np.angle(self.h0)) / self.order)
        u = np.polyval(self.coefficients[::-1], t)
        return (1 + self.m0 + u) / z


def _power_series(c: list, power: float, n: int) -> np.ndarray:
    """(Σ c_j u^j)^power with c_0 = 1, n terms (J. C. P. Miller's recurrence)."""
    a = np.zeros(n, dtype=complex)
    a[0] = 1
    for k in range(1, n):
        a[k] = sum(((power + 1) * j - k) * c[j] * a[k - j] for j in range(1, k + 1)) / k
    return a


def _reverse_numeric(f: np.ndarray) -> np.ndarray:
    """Coefficients of the compositional inverse g of f = Σ f_j u^j (f_0 = 0, f_1 != 0): from
    Σ_j f_j g^j = t, g_k = −Σ_{j=2}^{k} f_j [t^k] g^j / f_1, where [t^k] g^j (j >= 2) needs only
    g_1..g_{k−1}: the powers are built one coefficient (a column of all of them) at a time."""
    n = f.size
    g = np.zeros(n, dtype=complex)
    powers = np.zeros((n, n), dtype=complex)  # powers[j, m] = [t^m] g^j
    powers[0, 0] = 1
    for k in range(1, n):
        powers[2:, k] = powers[1:-1, k - 1:0:-1] @ g[1:k]  # Σ_i g_i [t^(k−i)] g^(j−1)
        g[k] = (1 if k == 1 else -(f[2:k + 1] @ powers[2:k + 1, k])) / f[1]
        powers[1, k] = g[k]
    return g


def _match(roots: np.ndarray, previous: np.ndarray, z: np.ndarray, q: np.ndarray) -> tuple:
    """The root G whose qG is nearest ``previous`` (a previous value of qG, q = q(z) vanishing at
    the possible atoms, so that the metric stays finite where G has a pole), and whether it is
    unambiguous; of two roots whose qG coincide to _COINCIDE the one with the smaller Im G
    (Herglotz: Im G <= 0 on C⁺).  Roots violating Im G < 0 or |G| <= 1/Im z on C⁺ are never chosen."""
    with np.errstate(all="ignore"):
        us = q[:, None] * roots
        # on C⁺ the physical G obeys Im G < 0 and |G| <= 1/Im z: other roots are excluded outright
        y = z.imag[:, None]
        excluded = (y > 0) & ((roots.imag > 1e-14 * np.abs(roots)) | (np.abs(roots) * y > 1 + 1e-9))
    dist = np.abs(us - previous[:, None])
    dist = np.where(np.isfinite(dist) & ~excluded, dist, np.inf)
    order = np.argsort(dist, axis=1)
    n = np.arange(roots.shape[0])
    first = order[:, 0]
    second = order[:, 1] if roots.shape[1] > 1 else first
    d1, d2 = dist[n, first], dist[n, second]
    r1, r2 = roots[n, first], roots[n, second]
    if roots.shape[1] == 1:
        return r1, np.isfinite(d1)
    coincide = np.abs(us[n, first] - us[n, second]) <= _COINCIDE * (1 + np.abs(us[n, first]))
    ok = np.isfinite(d1) & ((d1 <= _ACCEPT * d2) | coincide)
    lower = r2.imag < r1.imag
    return np.where(coincide & lower, r2, r1), ok


@lru_cache(maxsize=64)
def g_coefficients(relation: Relation) -> np.ndarray:
    """The coefficients of P(z, zG − 1) = Σ_k c_k(z) G^{d−k} as a read-only (d + 1, n + 1) array,
    row k the coefficients of c_k (highest power of z first, zero-padded to the largest degree n),
    at 30 digits rounded to float64 (real when they all are): derived once per relation."""
    poly = sp.Poly(relation.equation("G", factored=False), G_)
    rows = [np.array([complex(sp.N(v, 30)) for v in sp.Poly(c, Z).all_coeffs()]) for c in poly.all_coeffs()]
    width = max(r.size for r in rows)
    out = np.zeros((len(rows), width), dtype=complex)
    for k, r in enumerate(rows):
        out[k, width - r.size:] = r
    out = out.real.copy() if not np.any(out.imag) else out
    out.flags.writeable = False
    return out


def _root_radius(value: np.ndarray, bound: np.ndarray) -> tuple:
    """(β_1 = |b_1| − e_1, ε = 2B_0/β_1 where proved, else nan): see :meth:`RootTracker.root_radius`."""
    with np.errstate(all="ignore"):
        low = value[1] - bound[1]
        radius = 2 * (value[0] + bound[0]) / low
        return low, np.where(_dominated(value + bound, low, radius), radius, np.nan)


def _dominated(high: np.ndarray, low: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Whether β_1 r > B_0 + Σ_{k>=2} B_k r^k (``high`` = the bounds B_k, ``low`` = β_1 > 0)."""
    with np.errstate(all="ignore"):
        rest = high[0] + sum(h * r**k for k, h in enumerate(high[2:], start=2))
        return (low > 0) & (rest < low * r)


def _rational(expr) -> sp.Expr:
    """The polynomial with every numeric coefficient replaced by the exact rational of its 40-digit
    value (exact arithmetic for discriminants and atoms)."""
    poly = sp.Poly(sp.expand(expr), Z, M_)
    terms = {monom: sp.Rational(sp.N(c, 40)) for monom, c in poly.terms()}
    return sp.Poly.from_dict(terms, Z, M_).as_expr()


def _real_roots(poly_z: sp.Expr) -> list:
    poly = sp.Poly(poly_z, Z)
    if poly.degree() <= 0:
        return []
    return [float((lo + hi) / 2) for (lo, hi), _ in poly.sqf_part().intervals(eps=sp.Rational(1, 10**18))]


@dataclass(frozen=True)
class Piece:
    """An interval (lo, hi) between consecutive candidate points (zeros of the discriminant, poles,
    0) inside the support, with one boundary value G(x0 + i0) = g0 found by vertical continuation:
    the start of the continuation along the real axis (:meth:`RootTracker.boundary`)."""

    lo: float
    hi: float
    x0: float
    g0: complex


@dataclass(frozen=True)
class Inversion:
    """The support of an algebraic law and the supported pieces its boundary values follow."""

    support: Support
    pieces: tuple
    candidates: tuple
    poles: tuple

    def density(self, tracker: RootTracker, x: np.ndarray) -> np.ndarray:
        """ρ(x) = −Im G(x + i0)/π at real x: G followed along the axis inside the supported pieces
        (the Puiseux series where it covers x), 0 off the support, and at the candidate points:
        vertically continued inside a band; 0 at an end of a band that is neither 0 nor a pole (G
        is bounded there, hence continuous, and real on the unsupported side); nan at 0 or a pole
        at the end of a band (ρ may diverge), at atoms, and where the root is undecided."""
        x = np.asarray(x, dtype=float)
        rho = np.full(x.size, np.nan)
        ends = np.asarray(self.candidates)
        supported = np.zeros(x.size, dtype=bool)
        g = np.full(x.size, complex(np.nan, np.nan))
        series = tracker.cluster
        covered = series.covers(x.astype(complex)) if series is not None else np.zeros(x.size, dtype=bool)
        for piece in self.pieces:
            inside = (x > piece.lo) & (x < piece.hi)
            supported |= inside
            idx = np.flatnonzero(inside & ~covered)
            if idx.size:
                g[idx] = tracker.boundary(x[idx], piece.x0, piece.g0)
        if series is not None:
            g[covered & supported] = series(x[covered & supported].astype(complex))
        rho[supported] = np.maximum(-g[supported].imag / np.pi, 0.0)
        at = np.isin(x, ends)
        rho[~supported & ~at] = 0.0
        atoms = {a for a, _ in self.support.atoms} if self.support else set()
        for c in ends[np.isin(ends, x)]:
            left, right = (any(p.hi == c for p in self.pieces), any(p.lo == c for p in self.pieces))
            if c in atoms:
                continue
            if left and right:
                value = -tracker.physical(np.array([c + 0j]))[0].imag / np.pi
            elif not (left or right) or (c != 0 and c not in self.poles):
                value = 0.0
            else:
                continue
            rho[x == c] = max(value, 0.0) if np.isfinite(value) else np.nan
        return rho


@dataclass(frozen=True)
class ExactPoints:
    """What the exact polynomial P says about the support, derived once per relation: the real
    zeros of the discriminant of P in M, the real poles a != 0 (zeros of the leading coefficient),
    and the exact atom candidates — 1 + M₀ for the roots M₀ of P(0, ·) (``at_zero``), and per pole
    u/a for the roots u != 0 of the lowest-order coefficient in v of P(a + v, u/v)·v^d
    (``at_poles``)."""

    discriminant_zeros: tuple
    poles: tuple
    at_zero: tuple
    at_poles: tuple

    @classmethod
    @lru_cache(maxsize=64)
    def of(cls, relation: Relation) -> ExactPoints:
        exact = _rational(relation.poly)
        poly_m = sp.Poly(exact, M_)
        lead = sp.Poly(poly_m.all_coeffs()[0], Z)
        disc = sp.discriminant(poly_m) if poly_m.degree() > 1 else sp.Integer(1)
        poles = sorted({a for a in lead.real_roots() if a != 0}, key=float) if lead.degree() > 0 else []
        v, u = sp.symbols("v u")
        d = poly_m.degree()
        at_poles = []
        for a in poles:
            expr = sp.Poly(sp.expand(exact.subs({Z: a + v, M_: u / v}) * v**d), v)
            low = min(m[0] for m in expr.monoms())
            lowest = sp.Poly(expr.coeff_monomial(v**low), u)
            at_poles.append(tuple(complex(r).real / float(a) for r in _nroots(lowest) if abs(complex(r)) > 0))
        at_zero = tuple(1 + r.real for r in _exact_roots(relation.poly.subs(Z, 0)))
        return cls(tuple(_real_roots(disc)), tuple(float(a) for a in poles), at_zero, tuple(at_poles))


def algebraic_support(relation: Relation, tracker: RootTracker) -> Inversion:
    """Bands and atoms of an algebraic law with numeric coefficients (see the module docstring)."""
    points = ExactPoints.of(relation)
    poles = list(points.poles)
    # spurious far zeros (of the 40-digit rational form) are dropped: the support lies well within
    # 100 times the moment radius max_k |m_k|^{1/k}
    reach = 100 * tracker.radius
    candidates = sorted({c for c in [*points.discriminant_zeros, *poles, 0.0] if abs(c) <= reach})
    scale = max(tracker.radius, max((abs(c) for c in candidates), default=0.0), 1e-300)
    ends = list(zip(candidates[:-1], candidates[1:], strict=True))
    mids = np.array([(lo + hi) / 2 for lo, hi in ends])
    g_mid = tracker.physical(mids.astype(complex)) if ends else np.array([])  # first: orients the series
    atoms = _atoms(points, tracker, scale)
    atom_points = {a for a, _ in atoms}
    bands, pieces = [], []
    for (lo, hi), mid, g in zip(ends, mids, g_mid, strict=True):
        if -g.imag / np.pi > 1e-12 / scale:
            pieces.append(Piece(lo, hi, float(mid), complex(g)))
            if bands and bands[-1][1] == lo and lo not in atom_points:
                bands[-1] = (bands[-1][0], hi)
            else:
                bands.append((lo, hi))
    inversion = Inversion(None, tuple(pieces), tuple(candidates), tuple(float(a) for a in poles))

    def density(x):
        return inversion.density(tracker, x)

    # integrated between candidates (no node at 0 or an interior edge), the samples kept for the CDF
    # h = 1/16 at once: the cost of a call hardly depends on its number of points here
    rules = tuple(IndefiniteTanhSinh(density, piece.lo, piece.hi, prefetch=4) for piece in pieces)
    total, error = sum(m for _, m in atoms), 0.0
    for rule in rules:
        value, err = rule.total(MASS_TOL / 100)
        total, error = total + value, error + err
    if not (abs(total - 1) <= MASS_TOL + error and error <= MASS_TOL):
        raise NumericError(f"the density found integrates with its atoms to {total:.15g}, not 1: "
                           "cannot decide the support of this law reliably")
    support = Support(tuple(bands), tuple(atoms), total, max(error, abs(total - 1)),
                      "edges: real zeros of the discriminant of P(z, M) in M; tanh-sinh mass check", rules)
    return Inversion(support, tuple(pieces), tuple(candidates), inversion.poles)


def _nroots(poly: sp.Poly) -> list:
    poly = poly.sqf_part()
    return poly.nroots(n=30, maxsteps=500) if poly.degree() > 0 else []


def _residue(tracker: RootTracker, a: float, scale: float) -> tuple:
    """(estimate of lim_{y→0} iy·G(a + iy), its tolerance): the value at the smaller of two heights
    y, y/100 that the continuation reaches, the tolerance twice their difference (the a.c. part
    contributes O(y^{1−α}) for a density diverging like |λ − a|^{−α})."""
    values = []
    for y in (1e-11, 1e-9, 1e-7, 1e-5, 1e-3):
        try:
            values.append((1j * y * scale * tracker.physical(np.array([a + 1j * y * scale]))[0]).real)
        except NumericError:
            continue
        if len(values) == 2:
            break
    if len(values) < 2:
        raise NumericError(f"cannot continue the Stieltjes transform to the possible atom at {a:.6g}")
    return values[0], 2 * abs(values[0] - values[1]) + 1e-9


def _exact_roots(poly_m: sp.Expr) -> list:
    """Roots of a polynomial in M with exact (possibly transcendental) coefficients, factor by factor."""
    out = []
    for factor, _ in sp.factor_list(poly_m, M_)[1] if poly_m.has(M_) else []:
        if sp.Poly(factor, M_).degree() <= 2:
            out += [complex(sp.N(r, 30)) for r in sp.solve(factor, M_)]
        else:
            out += [complex(r) for r in _nroots(sp.Poly(sp.N(factor, 40), M_))]
    return out


def _atoms(points: ExactPoints, tracker: RootTracker, scale: float) -> list:
    """Atoms at 0 and at the poles a != 0 (the exact candidates of ``points``), each exact candidate
    accepted only when it agrees with the continued value lim iy·G(a + iy) within its tolerance."""
    atoms = []
    for a, candidates in ((0.0, points.at_zero), *zip(points.poles, points.at_poles, strict=True)):
        estimate, tol = _residue(tracker, a, scale)
        # no pole of G (only a divergence like an inverse square root) leaves no candidate
        close = [m for m in candidates if abs(m - estimate) < tol]
        if close and min(close, key=lambda m: abs(m - estimate)) > 1e-13:
            atoms.append((a, float(min(close, key=lambda m: abs(m - estimate)))))
    return sorted(atoms)
