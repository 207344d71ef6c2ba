r"""Spectral laws known through a system of equations F(z, u) = 0 for a vector u of subordinate
unknowns (a subordination function, the traces of a deterministic equivalent), G = g(z, u):
solved by Newton's method and continued from large |z|, where the solution is known, down the
vertical line Re z + iy to the real axis (or to Im z).  This is how :mod:`derive.freeprob`
evaluates laws that are not algebraic (free products with the law of φ′² for a smooth φ) and
the conjugate-kernel and NTK spectra of deep networks (:mod:`derive.freeprob.kernels`).

**Continuation.**  At height y the step to y·ratio is accepted when Newton's method, started from
a prediction (the secant through the last two accepted points in log z, see
:meth:`SubordinateLaw._predict`; the solution at y for laws that do not ask for it), converges
(relative residual below ``RESIDUAL``) to a solution obeying the Herglotz bound Im G <= 0 on the
closed upper half plane and within ``STEP`` of the predicted M = zG − 1 and unknowns, relative
to 1 + their size (a step along the solution, not a jump to another one); a refused step has its
ratio raised (√ratio), an accepted one lowered (ratio², down to 1e-3).  A point whose ratio
reaches 0.9999, or that needs more than ``MAX_STEPS`` steps, is left undecided (nan).

**Accuracy.**  Where the transforms of the factors are accurate to ~1e-13, ρ = −Im G/π is accurate
to 1e-10 relative away from the edges (tested for tanh Jacobian spectra against 25-digit mpmath
solutions of the same equations, 1e-6 <= λ <= 8: observed ~1e-15); within δ of an edge where ρ
vanishes like a square root, float64 resolves the fold of the equations only to ~1e-16/δ
relative.

**Support.**  The support lies inside the bracket [lo, hi] that the subclass proves (e.g. the
product of the factors' largest points for ⊠).  The density is scanned on ``SCAN`` points of
[lo, hi] (rescanned on the span where ρ > 0 while that is less than half the interval); every
change between ρ > 0 and ρ = 0 (below the rounding level ``FLOOR`` times the
largest density seen) is refined by multisection to 1e-12 relative (an edge where the continuation
cannot decide is reported with the width it was narrowed to, in ``Support.method``); gaps
narrower than the scan step are not resolved.  Atoms: at the subclass's candidate points the
mass is lim_{y→0} iy G(a + iy), read at two heights (the tolerance twice their difference).
Every support is checked a posteriori: the density integrated over the bands (tanh–sinh, refined
until its error estimate is below MASS_TOL/100) plus the atoms must give 1 to ``MASS_TOL`` (with
the quadrature's own error, itself at most ``MASS_TOL``), else
:class:`~derive.errors.NumericError`: the law is never returned with a density that does not
integrate to its mass.
"""

from __future__ import annotations

import numpy as np

from derive.errors import NumericError
from derive.freeprob.inversion import HeightSchedule, Support
from derive.freeprob.laws import SpectralLaw
from derive.freeprob.tanh_sinh import tanh_sinh
from derive.gaussian.blocks import single_threaded_blas

RESIDUAL = 1e-12
STEP = 0.25
MASS_TOL = 1e-8
SCAN = 240
SECTIONS = 31
MAX_STEPS = 60
FLOOR = 1e-11


class SubordinateLaw(SpectralLaw):
    """Base class of laws solved by continuation; subclasses provide

    * ``_solve(z, u) -> (u, converged)``: Newton's method for F(z, ·) = 0 from u (arrays (N, K));
    * ``_initial(z) -> u``: a starting value at large |z| (Newton refines it);
    * ``_g(z, u) -> G``;
    * ``_bracket() -> (lo, hi)``: an interval proved to contain the support;
    * ``_atom_points() -> tuple``: the only points where the law may have atoms (their masses are
      read numerically unless ``_atoms`` is overridden with exact ones).
    """

    relation = None
    #: indices of the unknowns predicted as local power laws of z (see :meth:`_predict`); empty:
    #: no prediction, Newton starts from the last accepted value
    POWER_LAW: tuple = ()

    # --- continuation ----------------------------------------------------------------------
    def _g_upper(self, z: np.ndarray) -> np.ndarray:
        return self._continue(np.asarray(z, dtype=complex).ravel())[0]

    @single_threaded_blas
    def _continue(self, z: np.ndarray) -> tuple:
        """(G, u) at the points z (Im z >= 0) by vertical continuation; nan where undecided.  Its
        matrix products are small (points × quadrature nodes, or L × L Newton systems): BLAS runs
        single-threaded for it (two threads spin against each other on a loaded machine)."""
        lo, hi = self._bracket()
        top = 8 * max(abs(lo), abs(hi), 1e-300) + 4 * np.abs(z.real).max(initial=0.0)
        heights = HeightSchedule(z, top, ratio=0.1, stall=0.9999, max_steps=MAX_STEPS)
        zt = heights.start()
        u, ok = self._solve(zt, self._initial(zt))
        if not ok.all():
            raise NumericError(f"{self.name}: Newton's method does not converge at large |z| (height "
                               f"{top:.3g}): the equations are not those of a probability law's transform")
        g = self._g(zt, u)
        here = zt.copy()
        before, u_before = np.full_like(zt, np.nan), np.full_like(u, np.nan)
        for _ in range(4000):
            idx = heights.pending()
            if not idx.size:
                break
            zi = heights.propose(idx)
            guess = self._predict(zi, here[idx], u[idx], before[idx], u_before[idx])
            ui, good = self._solve(zi, guess)
            gi = self._g(zi, ui)
            with np.errstate(invalid="ignore"):
                good &= np.isfinite(gi) & (gi.imag <= 1e-12 * np.abs(gi))
                # a continuation step, not a jump to another solution: M = zG − 1 and u within
                # STEP of the predicted values (M, not G: G ~ 1/z changes by the ratio itself)
                m_guess = zi * self._g(zi, guess) - 1 if self.POWER_LAW else here[idx] * g[idx] - 1
                good &= np.abs(zi * gi - 1 - m_guess) <= STEP * (1 + np.abs(m_guess))
                good &= np.max(np.abs(ui - guess), axis=1) <= STEP * (1 + np.max(np.abs(guess), axis=1))
            take = idx[good]
            before[take], u_before[take] = here[take], u[take]
            here[take], u[take], g[take] = zi[good], ui[good], gi[good]
            heights.settle(idx, good)
        g = np.where(heights.reached(), g, complex(np.nan, np.nan))
        return g, u

    def _predict(self, z, z_old, u_old, z_before, u_before) -> np.ndarray:
        """The starting value of Newton's method at z and the centre of the step test: the secant
        through the last two accepted points (z_before, z_old) in s = log z, in log u for the unknowns
        of ``POWER_LAW`` (local power laws in z, e.g. a subordinate variable near a divergence of
        the density at 0, where it moves by decades while z does) and in u for the others; u_old
        at the first step."""
        if not self.POWER_LAW:
            return u_old
        with np.errstate(all="ignore"):
            ds, ds_old = np.log(z / z_old), np.log(z_old / z_before)
            guess = u_old.copy()
            for j in range(u_old.shape[1]):
                if j in self.POWER_LAW:
                    guess[:, j] = u_old[:, j] * np.exp(np.log(u_old[:, j] / u_before[:, j]) / ds_old * ds)
                else:
                    guess[:, j] = u_old[:, j] + (u_old[:, j] - u_before[:, j]) / ds_old * ds
        return np.where(np.isfinite(guess), guess, u_old)

    # --- density and support ---------------------------------------------------------------
    def density(self, x) -> np.ndarray:
        """ρ(x) = −Im G(x + i0)/π by continuation (float64); nan at atoms and where undecided."""
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        rho = self._density(flat)
        atoms = [a for a, _ in self.support().atoms]
        rho[np.isin(flat, atoms)] = np.nan
        return rho.reshape(x.shape)

    def _density(self, x: np.ndarray) -> np.ndarray:
        rho = np.full(x.size, np.nan)
        lo, hi = self._bracket()
        outside = (x < lo) | (x > hi)
        rho[outside] = 0.0
        inside = np.flatnonzero(~outside & ~np.isin(x, self._atom_points()))
        if inside.size:
            g = self._g_upper(x[inside].astype(complex))
            rho[inside] = np.maximum(-g.imag / np.pi, 0.0)
        return rho

    def support(self) -> Support:
        """Bands, atoms and the mass check (see the module docstring)."""
        if "_support" not in self.__dict__:
            self.__dict__["_support"] = self._find_support()
        return self.__dict__["_support"]

    def _find_support(self) -> Support:
        lo, hi = self._bracket()
        scale = max(abs(lo), abs(hi), 1e-300)
        atoms = self._atoms(scale)
        grid, rho = self._scan(lo, hi)
        if np.isnan(rho).mean() > 0.05:
            raise NumericError(f"{self.name}: the continuation does not decide the density at "
                               f"{np.isnan(rho).mean():.0%} of the scan points: cannot decide its support")
        level = FLOOR * np.nanmax(rho, initial=0.0)
        positive = np.where(np.isnan(rho), True, rho > level)
        if positive[0]:  # next to lo (a possible atom): is there a gap after it?
            probe = lo + 1e-9 * scale
            gap = self._density(np.array([probe]))[0] <= level
            grid, positive = (np.concatenate([[probe], grid]), np.concatenate([[False], positive])) \
                if gap else (np.concatenate([[lo], grid]), np.concatenate([[True], positive]))
        change = np.flatnonzero(positive[1:] != positive[:-1])  # between grid[i] and grid[i + 1]
        widths: list = []
        outside = np.where(positive[change], grid[change + 1], grid[change])
        inside = np.where(positive[change], grid[change], grid[change + 1])
        edges = list(self._edges(outside, inside, level, widths))
        if positive[0]:
            edges.insert(0, float(grid[0]))
        if positive[-1]:
            edges.append(float(grid[-1]))
        bands = list(zip(edges[::2], edges[1::2], strict=True))
        total, error = sum(m for _, m in atoms), 0.0
        for a, b in bands:
            value, err = tanh_sinh(self._density, a, b, tol=MASS_TOL / 100)
            total, error = total + value, error + err
        if not (abs(total - 1) <= MASS_TOL + error and error <= MASS_TOL):
            raise NumericError(f"{self.name}: the density found integrates with its atoms to {total:.12g}, "
                               "not 1: cannot decide its support reliably")
        undecided = f"; edges undecided within {max(widths):.2g}" if widths and max(widths) > 0 else ""
        return Support(tuple(bands), tuple(sorted(atoms)), total, max(error, abs(total - 1)),
                       f"continuation; edges by multisection on ρ > {FLOOR:g} max ρ{undecided}; "
                       "tanh-sinh mass check")

    def _scan(self, lo: float, hi: float) -> tuple:
        """(grid, ρ) on ``SCAN`` points of [lo, hi]; while the points with ρ > 0 span less than half
        of the interval (a loose bracket), the scan is repeated on that span widened by one step
        on each side (at most 4 times)."""
        for _ in range(5):
            grid = np.linspace(lo, hi, SCAN)
            grid = grid[~np.isin(grid, self._atom_points())]
            rho = self._density(grid)
            seen = np.flatnonzero(np.where(np.isnan(rho), True, rho > FLOOR * np.nanmax(rho, initial=0.0)))
            if seen.size == 0:
                break
            new_lo, new_hi = grid[max(seen[0] - 1, 0)], grid[min(seen[-1] + 1, grid.size - 1)]
            if seen[0] == 0:
                new_lo = lo
            if new_hi - new_lo >= (hi - lo) / 2:
                break
            lo, hi = float(new_lo), float(new_hi)
        return grid, rho

    def _edges(self, outside: np.ndarray, inside: np.ndarray, level: float, widths: list) -> np.ndarray:
        """The edges between points with ρ = 0 (``outside``) and neighbours with ρ > 0 (``inside``),
        all at once, to 1e-12 relative by multisection: ``SECTIONS`` points per edge and round in
        one vectorised continuation (~8 rounds instead of ~40 bisection steps per edge).  Where the
        density is undecided the search for that edge stops (the width left is recorded)."""
        outside, inside = outside.astype(float), inside.astype(float)
        scale = np.maximum(np.maximum(np.abs(outside), np.abs(inside)), 1e-300)
        open_ = np.abs(inside - outside) > 1e-12 * scale
        while open_.any():
            idx = np.flatnonzero(open_)
            t = np.linspace(0, 1, SECTIONS + 2)[1:-1]
            grid = outside[idx, None] + t * (inside[idx] - outside[idx])[:, None]
            values = self._density(grid.ravel()).reshape(grid.shape)
            undecided = np.isnan(values).any(axis=1)
            widths.extend(np.abs(inside[idx] - outside[idx])[undecided])
            # the first point (from outside) with ρ > 0 and the one before it
            first = np.where((values > level).any(axis=1), np.argmax(values > level, axis=1), SECTIONS)
            rows = np.arange(idx.size)
            new_in = np.where(first < SECTIONS, grid[rows, np.minimum(first, SECTIONS - 1)], inside[idx])
            new_out = np.where(first > 0, grid[rows, np.maximum(first - 1, 0)], outside[idx])
            keep = ~undecided
            inside[idx[keep]], outside[idx[keep]] = new_in[keep], new_out[keep]
            open_[idx[undecided]] = False
            open_ &= np.abs(inside - outside) > 1e-12 * scale
        return inside

    def _atoms(self, scale: float) -> list:
        """[(a, mass > 0)] at the candidate points, read numerically (subclasses that know their
        atoms exactly override this)."""
        return [(a, m) for a, m in (self._atom(a, scale) for a in self._atom_points()) if m > 0]

    def _atom(self, a: float, scale: float) -> tuple:
        """(a, mass) with mass = lim iy G(a + iy), 0 when the two heights do not see an atom."""
        ys = np.array([1e-9, 1e-11]) * scale
        g = self._g_upper(a + 1j * ys)
        values = (1j * ys * g).real
        if not np.all(np.isfinite(values)):
            raise NumericError(f"{self.name}: cannot continue the Stieltjes transform to the possible atom "
                               f"at {a:.6g}")
        tol = 2 * abs(values[0] - values[1]) + 1e-9
        return (float(a), float(values[1]) if values[1] > tol else 0.0)
