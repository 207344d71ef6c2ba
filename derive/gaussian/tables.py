"""Piecewise Chebyshev tables: fast float64 evaluators of smooth functions, with their error.

Mean-field fixed points over a parameter grid evaluate the same few Gaussian
expectations (E φ(u)², E φ′(u)², E φ′(u)φ′(v), ...) at millions of points, and
these depend only on (q, c), not on σ_w², σ_b².  A table samples such a function
once at the Chebyshev points of small panels -- created lazily where the points
fall, split until the trailing Chebyshev coefficients are below the tolerance --
and afterwards evaluates it by a few matrix products per panel.

The error estimate of a panel is |a_{n-1}| + |a_{n-2}| relative to the largest
sampled value: for analytic functions the Chebyshev coefficients decay
geometrically and their tail bounds the interpolation error (Trefethen,
*Approximation Theory and Approximation Practice*, ch. 7-8); panels are refined on
it.  The reported error adds the rounding of an evaluation (:func:`_rounding`):
the sum of the series (4 n u Σ|a_k|, n terms per variable) and the map of a point
to the panel's [-1, 1] (4 u (reach + half-width) times a bound on the slope, from
the coefficients of the derivative).  ``max_error`` is the largest reported error
over the built panels; the sampled values' own error is the caller's to add.

>>> import numpy as np
>>> table = Table1D(lambda t: np.stack([np.exp(np.sin(t))]), size=1)
>>> t = np.linspace(-3, 5, 7)
>>> bool(np.allclose(table(t)[0], np.exp(np.sin(t)), rtol=1e-14, atol=0))
True
>>> table.max_error <= table.tol
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from numpy.polynomial import chebyshev

from derive.errors import NumericError

#: where the c-axis of a :class:`Table2D` is cut before any refinement: graded towards
#: c = ±1, where E φ′(u)φ′(v) is smooth but not analytic (its Hermite series has radius 1)
C_BREAKS = (1.0, 0.96875, 0.9375, 0.875, 0.75, 0.5, 0.0, -0.5, -0.75, -0.875, -0.9375, -0.96875, -1.0)
_C_ASC = np.array(C_BREAKS[::-1])


def chebyshev_nodes(n: int) -> np.ndarray:
    """The n Chebyshev points of the first kind on [-1, 1] (interior: no endpoint is sampled)."""
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


@cache
def _transform(n: int) -> np.ndarray:
    """The matrix taking values at :func:`chebyshev_nodes` to Chebyshev coefficients."""
    k = np.arange(n)[:, None]
    matrix = np.cos(np.pi * k * (np.arange(n)[None, :] + 0.5) / n) * (2.0 / n)
    matrix[0] /= 2
    return matrix


def basis(s: np.ndarray, n: int) -> np.ndarray:
    """T_k(s) for k < n, as an (n, len(s)) array (three-term recurrence)."""
    out = np.empty((n, s.size))
    out[0] = 1.0
    if n > 1:
        out[1] = s
    two_s = 2 * s
    for k in range(2, n):
        np.multiply(two_s, out[k - 1], out=out[k])
        out[k] -= out[k - 2]
    return out


def clenshaw(rows: np.ndarray, s: np.ndarray, slope: bool = False):
    """Σ_j rows[j] T_j(s) for per-point coefficients `rows` (n, len(s)), by Clenshaw's
    recurrence b_j = rows[j] + 2 s b_{j+1} − b_{j+2}, value rows[0] + s b_1 − b_2 (Clenshaw
    1955, Math. Tables Aids Comput. 9, 118); with ``slope`` also Σ_j rows[j] T_j′(s), from the
    recurrence differentiated in s (b_j′ = 2 b_{j+1} + 2 s b_{j+1}′ − b_{j+2}′, value
    b_1 + s b_1′ − b_2′).  No basis matrix is formed: O(n) operations on arrays of len(s), in
    place on three buffers per recurrence."""
    two_s = s + s
    b1 = rows[-1].copy() if rows.shape[0] > 1 else np.zeros_like(s)  # b_{n-1} (b_n = 0)
    b2, spare = np.zeros_like(s), np.empty_like(s)
    d1, d2, dspare = (np.zeros_like(s), np.zeros_like(s), np.empty_like(s)) if slope else (None,) * 3
    for j in range(rows.shape[0] - 2, 0, -1):
        if slope:
            np.multiply(two_s, d1, out=dspare)
            dspare -= d2
            dspare += b1
            dspare += b1
            d2, d1, dspare = d1, dspare, d2
        np.multiply(two_s, b1, out=spare)
        spare -= b2
        spare += rows[j]
        b2, b1, spare = b1, spare, b2
    value = s * b1
    value -= b2
    value += rows[0]
    if not slope:
        return value
    derivative = s * d1
    derivative -= d2
    derivative += b1
    return value, derivative


def _chunks(n: int, size: int = 8192):
    """Slices of range(n) of at most `size` (basis arrays stay in cache)."""
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _groups(index: np.ndarray):
    """(value, positions) for each distinct value of an integer array."""
    if not index.size:
        return
    low, high = index.min(), index.max()
    if low == high:  # one group (most calls of a solver): no sort
        yield int(low), np.arange(index.size)
        return
    if low >= -(2**15) and high < 2**15:
        index = index.astype(np.int16)  # stable sort of 16-bit keys is a radix sort
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    cuts = np.flatnonzero(np.diff(sorted_index)) + 1
    for part in np.split(order, cuts):
        if part.size:
            yield int(index[part[0]]), part


def _tail(coef: np.ndarray, axis: int, scale: np.ndarray) -> float:
    """max over functions of (|a_{n-1}| + |a_{n-2}|) / scale along `axis` (summed over the others)."""
    tail = np.abs(np.take(coef, [-1, -2], axis=axis))
    tail = tail.reshape(tail.shape[0], -1).sum(axis=1)
    return float(np.max(tail / scale))


def _rounding(coef: np.ndarray, halves: tuple, reaches: tuple) -> np.ndarray:
    """A bound on the rounding of evaluating the Chebyshev series `coef` (m, n₁[, n₂]) at a
    point, per function: 4 u (n₁ + n₂) Σ|a| for the recurrences and sums, plus, per variable,
    4 u (reach + half) Σ|a′| for mapping the point to [-1, 1] (|Δs| <= 4 u (reach + half)/half
    times |∂f/∂s| <= half Σ|a′|, a′ the coefficients of ∂f/∂x)."""
    u = np.finfo(float).eps / 2
    axes = tuple(range(1, coef.ndim))
    out = 4 * u * sum(coef.shape[1:]) * np.abs(coef).sum(axis=axes)
    for axis, half, reach in zip(axes, halves, reaches, strict=True):
        slope = chebyshev.chebder(coef, axis=axis) / half
        out = out + 4 * u * (reach + half) * np.abs(slope).sum(axis=axes)
    return out


def _at_minus_one(coef: np.ndarray) -> np.ndarray:
    """A Chebyshev series (last axis) evaluated at s = -1."""
    return (coef * (-1.0) ** np.arange(coef.shape[-1])).sum(axis=-1)


@dataclass
class _Panel:
    lo: float
    hi: float
    coef: np.ndarray  # (m, n) or (m, nx, ny)
    error: float  # the coefficient tail relative to `scale` (refinement reads it)
    scale: np.ndarray  # (m,) the largest sampled |value| of each function: the error's unit
    rounding: np.ndarray  # (m,) the rounding of an evaluation (absolute): see _rounding
    icoef: np.ndarray | None = None  # 2-D: coefficients of the integral from c up to the top (y = 1)
    slope: np.ndarray | None = None  # 1-D: coefficients (m, n) of the t-derivative of each function


class Table1D:
    """A piecewise Chebyshev table of m smooth functions of one variable t on the whole line.

    `func(t)` maps an array of t to an (m, len(t)) array.  Panels are the intervals
    [k w, (k + 1) w] (w = `width`), built when a point first falls in them and halved
    (up to `max_depth` times) until their error estimate is below `tol`.
    """

    def __init__(self, func, size: int, *, width: float = 1.0, n: int = 16, tol: float = 1e-13,
                 max_depth: int = 6):
        self.func, self.size, self.width, self.n = func, size, width, n
        self.tol, self.max_depth = tol, max_depth
        self._built: set[int] = set()
        self._panels: list[_Panel] = []
        self._los = np.empty(0)
        # the panel index of each unit cell [k w, (k + 1) w] from `_first` on (-1: not built,
        # -2: halved, searched), so that locating a point is a lookup
        self._first, self._cells = 0, np.empty(0, np.int64)

    @property
    def max_error(self) -> float:
        """The largest reported error (relative to the panel's values) over the built panels."""
        return max((_reported(p) for p in self._panels), default=0.0)

    def _fit(self, lo: float, hi: float) -> _Panel:
        t = (lo + hi) / 2 + (hi - lo) / 2 * chebyshev_nodes(self.n)
        values = np.asarray(self.func(t), dtype=float).reshape(self.size, self.n)
        if not np.all(np.isfinite(values)):
            raise NumericError(f"table: non-finite values sampled on [{lo}, {hi}]")
        coef = values @ _transform(self.n).T
        scale = np.maximum(np.abs(values).max(axis=1), 1e-300)
        slope = np.zeros_like(coef)
        slope[:, :-1] = chebyshev.chebder(coef, axis=1) / ((hi - lo) / 2)
        rounding = _rounding(coef, ((hi - lo) / 2,), (max(abs(lo), abs(hi)),))
        return _Panel(lo, hi, coef, _tail(coef, 1, scale), scale, rounding, slope=slope)

    def _build(self, lo: float, hi: float, depth: int = 0) -> list[_Panel]:
        panel = self._fit(lo, hi)
        if panel.error <= self.tol or depth >= self.max_depth:
            return [panel]
        mid = (lo + hi) / 2
        return self._build(lo, mid, depth + 1) + self._build(mid, hi, depth + 1)

    def _ensure(self, t: np.ndarray) -> None:
        if not t.size:
            return
        low, high = int(np.floor(t.min() / self.width)), int(np.floor(t.max() / self.width))
        if high - low < 4096 and self._built.issuperset(range(low, high + 1)):
            return
        k = np.floor(t / self.width).astype(np.int64)
        present = (np.flatnonzero(np.bincount(k - low)) + low if high - low < 4096 else np.unique(k))
        new = set(present.tolist()) - self._built
        for key in sorted(new):
            self._add(key, self._build(key * self.width, (key + 1) * self.width))
        if new:
            self._sorted()

    def _add(self, key: int, panels: list[_Panel]) -> None:
        self._panels += panels
        self._built.add(key)

    def _sorted(self) -> None:
        self._panels.sort(key=lambda p: p.lo)
        self._los = np.array([p.lo for p in self._panels])
        self._index_cells()

    @property
    def panel_count(self) -> int:
        return len(self._panels)

    def state(self) -> dict:
        """The built panels as arrays (for :mod:`derive.gaussian.cache`); :meth:`merge` reads them."""
        ps = self._panels
        return {"cell": np.array([int(np.floor(p.lo / self.width)) for p in ps], np.int64),
                "lo": np.array([p.lo for p in ps]), "hi": np.array([p.hi for p in ps]),
                "coef": _stack([p.coef for p in ps], (self.size, self.n)),
                "slope": _stack([p.slope for p in ps], (self.size, self.n)),
                "error": np.array([p.error for p in ps]),
                "scale": _stack([p.scale for p in ps], (self.size,)),
                "rounding": _stack([p.rounding for p in ps], (self.size,))}

    def merge(self, state: dict) -> None:
        """Add the panels of a :meth:`state` in the cells not built here."""
        cells = state["cell"]
        new = set(cells.tolist()) - self._built
        for key in sorted(new):
            self._add(key, [_Panel(float(state["lo"][i]), float(state["hi"][i]), state["coef"][i],
                                   float(state["error"][i]), state["scale"][i], state["rounding"][i],
                                   slope=state["slope"][i])
                            for i in np.flatnonzero(cells == key)])
        if new:
            self._sorted()

    def _index_cells(self) -> None:
        keys = np.floor(self._los / self.width).astype(np.int64)
        self._first = int(keys[0])
        self._cells = np.full(int(keys[-1]) - self._first + 1, -1, np.int64)
        counts = np.bincount(keys - self._first)
        whole = np.flatnonzero(counts == 1)
        self._cells[whole] = np.searchsorted(keys, whole + self._first)
        self._cells[counts > 1] = -2

    def _index(self, t: np.ndarray) -> np.ndarray:
        """The panel holding each point (all built): a lookup of its cell, a binary search only
        in cells that were halved."""
        index = self._cells[np.floor(t / self.width).astype(np.int64) - self._first]
        halved = index == -2
        if halved.any():
            index[halved] = np.searchsorted(self._los, t[halved], side="right") - 1
        return index

    def error_bound(self, t) -> np.ndarray:
        """The error of the m functions at the points t, an (m, len(t)) array: each panel's
        coefficient tail times its largest sampled |value|, plus the rounding of an evaluation."""
        t = np.asarray(t, dtype=float).ravel()
        self._ensure(t)
        index = self._index(t)
        out = np.empty((self.size, t.size))
        for i, where in _groups(index):
            p = self._panels[i]
            out[:, where] = (p.error * p.scale + p.rounding)[:, None]
        return out

    def __call__(self, t, derivative: bool = False, functions=None):
        """The m functions (or those numbered in `functions`) at the points t, an array of one row
        per function; with ``derivative=True`` also their t-derivatives (a second such array),
        from the same Chebyshev basis (each panel keeps the coefficients of the derivative)."""
        t = np.asarray(t, dtype=float).ravel()
        if not np.all(np.isfinite(t)):
            raise NumericError("table evaluated at a non-finite point")
        self._ensure(t)
        rows = list(range(self.size)) if functions is None else list(functions)
        out = np.empty(((1 + derivative) * len(rows), t.size))
        index = self._index(t)
        for i, where in _groups(index):
            p = self._panels[i]
            matrix = np.concatenate([p.coef[rows], p.slope[rows]]) if derivative else p.coef[rows]
            half = (p.hi - p.lo) / 2
            for part in _chunks(where.size):
                at = where[part]
                out[:, at] = matrix @ basis((t[at] - (p.lo + half)) / half, self.n)
        return (out[:len(rows)], out[len(rows):]) if derivative else out


@dataclass
class _Column:
    """One x-panel of a :class:`Table2D`: for each cut interval of C_BREAKS that points needed,
    its patches (ascending in c), and the integrals of f from each cut's top up to c = 1."""

    lo: float
    hi: float
    cuts: dict = field(default_factory=dict)  # cut index -> list of _Panel, ascending
    lows: dict = field(default_factory=dict)  # cut index -> array of the patches' lower edges
    above: dict = field(default_factory=dict)  # cut index -> (m, nx) t-series of ∫_{cut top}^1 f


class Table2D:
    """A piecewise Chebyshev table of m smooth functions of (t, c), t on the line, c in [-1, 1].

    x-panels are [k w, (k + 1) w]; each is cut in c at :data:`C_BREAKS`, and a cut interval is
    sampled only when a point falls in it, its patches halved in c until their error estimate
    is below `tol`.  With ``integral=True`` the table also evaluates ∫_c^1 f(t, c′) dc′
    (Chebyshev integration within a patch plus the integrals of everything above it).
    """

    def __init__(self, func, size: int, *, width: float = 1.0, nx: int = 16, ny: int = 20,
                 tol: float = 1e-13, max_depth: int = 6, integral: bool = False):
        self.func, self.size, self.width, self.nx, self.ny = func, size, width, nx, ny
        self.tol, self.max_depth, self.with_integral = tol, max_depth, integral
        self._columns: dict[int, _Column] = {}

    @property
    def max_error(self) -> float:
        """The largest reported error (relative to the patch's values) over the built patches."""
        return max((_reported(p) for col in self._columns.values() for ps in col.cuts.values() for p in ps),
                   default=0.0)

    @property
    def patch_count(self) -> int:
        return sum(len(ps) for col in self._columns.values() for ps in col.cuts.values())

    def state(self) -> dict:
        """The built patches as arrays (for :mod:`derive.gaussian.cache`); :meth:`merge` reads them."""
        rows = [(k, j, p) for k, col in self._columns.items() for j, ps in col.cuts.items() for p in ps]
        out = {"column": np.array([k for k, _, _ in rows], np.int64),
               "cut": np.array([j for _, j, _ in rows], np.int64),
               "lo": np.array([p.lo for *_, p in rows]), "hi": np.array([p.hi for *_, p in rows]),
               "coef": _stack([p.coef for *_, p in rows], (self.size, self.nx, self.ny)),
               "error": np.array([p.error for *_, p in rows]),
               "scale": _stack([p.scale for *_, p in rows], (self.size,)),
               "rounding": _stack([p.rounding for *_, p in rows], (self.size,))}
        if self.with_integral:  # Chebyshev integration adds a coefficient in c
            out["icoef"] = _stack([p.icoef for *_, p in rows], (self.size, self.nx, self.ny + 1))
        return out

    def merge(self, state: dict) -> None:
        """Add the patches of a :meth:`state` in the cut intervals not built here."""
        keys = state["column"] * 64 + state["cut"]
        for key in np.unique(keys):
            k, j = divmod(int(key), 64)
            col = self._column(k)
            if j in col.cuts:
                continue
            at = np.flatnonzero(keys == key)
            at = at[np.argsort(state["lo"][at])]
            col.cuts[j] = [_Panel(float(state["lo"][i]), float(state["hi"][i]), state["coef"][i],
                                  float(state["error"][i]), state["scale"][i], state["rounding"][i],
                                  icoef=state["icoef"][i] if self.with_integral else None) for i in at]
            col.lows[j] = state["lo"][at]

    def _fit(self, x0: float, x1: float, y0: float, y1: float) -> _Panel:
        tx = (x0 + x1) / 2 + (x1 - x0) / 2 * chebyshev_nodes(self.nx)
        cy = (y0 + y1) / 2 + (y1 - y0) / 2 * chebyshev_nodes(self.ny)
        T, C = np.meshgrid(tx, cy, indexing="ij")
        values = np.asarray(self.func(T.ravel(), C.ravel()), dtype=float).reshape(self.size, self.nx, self.ny)
        if not np.all(np.isfinite(values)):
            raise NumericError(f"table: non-finite values sampled on t in [{x0}, {x1}], c in [{y0}, {y1}]")
        coef = np.einsum("ki,mij,lj->mkl", _transform(self.nx), values, _transform(self.ny))
        scale = np.maximum(np.abs(values).reshape(self.size, -1).max(axis=1), 1e-300)
        error = max(_tail(coef, 1, scale), _tail(coef, 2, scale))
        halves = ((x1 - x0) / 2, (y1 - y0) / 2)
        rounding = _rounding(coef, halves, (max(abs(x0), abs(x1)), max(abs(y0), abs(y1))))
        return _Panel(y0, y1, coef, error, scale, rounding)

    def _build(self, col: _Column, y0: float, y1: float, depth: int = 0) -> list[_Panel]:
        """Patches covering [y0, y1] in column `col`, ascending."""
        patch = self._fit(col.lo, col.hi, y0, y1)
        if patch.error <= self.tol or depth >= self.max_depth:
            return [patch]
        mid = (y0 + y1) / 2
        return self._build(col, y0, mid, depth + 1) + self._build(col, mid, y1, depth + 1)

    def _cut(self, col: _Column, j: int) -> list[_Panel]:
        """The patches of cut interval j (between _C_ASC[j] and _C_ASC[j + 1]), built if missing."""
        if j not in col.cuts:
            patches = self._build(col, _C_ASC[j], _C_ASC[j + 1])
            if self.with_integral:  # ∫_c^{cut top}: own part plus the patches above in the cut
                inside = None
                for patch in reversed(patches):
                    patch.icoef = _integral_coef(patch, inside)
                    inside = _at_minus_one(patch.icoef)
            col.cuts[j] = patches
            col.lows[j] = np.array([p.lo for p in patches])
        return col.cuts[j]

    def _above(self, col: _Column, j: int) -> np.ndarray:
        """∫ from the top of cut j to c = 1, as an (m, nx) t-series (builds the cuts above)."""
        if j not in col.above:
            top = len(_C_ASC) - 2
            col.above[j] = (np.zeros((self.size, self.nx)) if j == top else
                            self._above(col, j + 1) + _at_minus_one(self._cut(col, j + 1)[0].icoef))
        return col.above[j]

    def _column(self, k: int) -> _Column:
        if k not in self._columns:
            self._columns[k] = _Column(k * self.width, (k + 1) * self.width)
        return self._columns[k]

    def _locate(self, t: np.ndarray, c: np.ndarray):
        """(column, cut index, patch, positions) for the points (t, c), building what is missing."""
        if not (np.all(np.isfinite(t)) and np.all(np.abs(c) <= 1)):
            raise NumericError("table evaluated outside t finite, |c| <= 1")
        cut = np.clip(np.searchsorted(_C_ASC, c, side="right") - 1, 0, len(_C_ASC) - 2)
        key = np.floor(t / self.width).astype(np.int64) * 64 + cut
        for combined, where in _groups(key):
            k, j = divmod(combined, 64)
            col = self._column(k)
            patches = self._cut(col, j)
            if len(patches) == 1:
                yield col, j, patches[0], where
                continue
            index = np.clip(np.searchsorted(col.lows[j], c[where], side="right") - 1, 0, len(patches) - 1)
            for i, sub in _groups(index):
                yield col, j, patches[i], where[sub]

    @staticmethod
    def _rows(col: _Column, coef: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The coefficients in c (m, ny, len(t)) of the patch's series at the points t."""
        hx = (col.hi - col.lo) / 2
        m, nx, ny = coef.shape
        Tx = basis((t - (col.lo + hx)) / hx, nx)
        return (coef.transpose(0, 2, 1).reshape(m * ny, nx) @ Tx).reshape(m, ny, -1)

    def _evaluate(self, t, c, which: str, slope: bool):
        t, c = np.asarray(t, dtype=float).ravel(), np.asarray(c, dtype=float).ravel()
        out = np.empty((self.size, t.size))
        dout = np.empty((self.size, t.size)) if slope else None
        for col, j, p, at in self._locate(t, c):
            coef = p.coef
            if which == "integral":
                coef = p.icoef.copy()
                coef[:, :, 0] += self._above(col, j)
            hy = (p.hi - p.lo) / 2
            for part in _chunks(at.size):
                idx = at[part]
                B = self._rows(col, coef, t[idx])
                s = (c[idx] - (p.lo + hy)) / hy
                for f in range(self.size):
                    if slope:
                        out[f, idx], derivative = clenshaw(B[f], s, True)
                        dout[f, idx] = derivative / hy
                    else:
                        out[f, idx] = clenshaw(B[f], s)
        return (out, dout) if slope else out

    def error_bound(self, t, c) -> np.ndarray:
        """The error of the m functions at the points (t, c), an (m, N) array: each patch's
        coefficient tail times its largest sampled |value|, plus the rounding of an evaluation."""
        t, c = np.asarray(t, dtype=float).ravel(), np.asarray(c, dtype=float).ravel()
        out = np.empty((self.size, t.size))
        for _, _, p, at in self._locate(t, c):
            out[:, at] = (p.error * p.scale + p.rounding)[:, None]
        return out

    def __call__(self, t, c) -> np.ndarray:
        """The m functions at the points (t, c): an (m, N) array."""
        return self._evaluate(t, c, "value", False)

    def with_slope(self, t, c) -> tuple[np.ndarray, np.ndarray]:
        """The m functions and their c-derivatives at the points: two (m, N) arrays."""
        return self._evaluate(t, c, "value", True)

    def integral(self, t, c) -> np.ndarray:
        """∫_c^1 f(t, c′) dc′ for each of the m functions: an (m, N) array."""
        if not self.with_integral:
            raise NumericError("this table was built without integral=True")
        return self._evaluate(t, c, "integral", False)


def _reported(p: _Panel) -> float:
    """A panel's reported error relative to its values: the tail plus the rounding."""
    return p.error + float(np.max(p.rounding / p.scale))


def _stack(arrays: list, shape: tuple) -> np.ndarray:
    """The arrays (each of `shape`) stacked along a new first axis; (0, *shape) for none."""
    return np.array(arrays) if arrays else np.empty((0, *shape))


def _integral_coef(patch: _Panel, above: np.ndarray | None) -> np.ndarray:
    """Coefficients in s of ∫_c^{top} f dc′ on `patch` (c = mid + half s): the patch's own part
    half (P(1) - P(s)), P a Chebyshev antiderivative, plus `above` (a t-series) if given."""
    half = (patch.hi - patch.lo) / 2
    P = chebyshev.chebint(patch.coef, axis=2)
    coef = -half * P
    coef[:, :, 0] += half * P.sum(axis=2)  # P(1) = sum of the coefficients
    if above is not None:
        coef[:, :, 0] += above
    return coef
