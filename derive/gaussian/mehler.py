r"""The Mehler expansion of a Gaussian cross moment, in float64 and at any precision.

For (u, v) centred Gaussian with variances q₁, q₂ and correlation c (Mehler 1866; Kibble 1945)

    E a(u) b(v) = Σ_k c^k α_k(q₁) β_k(q₂),   α_k(q) = E[a(√q z) h_k(z)],  h_k = He_k / √k!,

the h_k being the orthonormal Hermite polynomials of the standard Gaussian.  Truncated after K
terms the error is at most (Cauchy–Schwarz on the tail, Bessel's equality Σ α_k² = E a²)

    |c|^{K+1} √(T_a(K) T_b(K)),   T_a(K) = E a(√q₁ z)² − Σ_{k≤K} α_k(q₁)²,

so K is chosen per entry from the actual tails, not from |c| alone: for analytic a, b the tails
fall geometrically and few terms reach full precision even at |c| = 0.99.

The projections α_k are Gauss–Legendre quadrature on panels of the standard-normal variable z,
graded towards the origin on the scale 1/√q of a unit feature of a(√q z) (the kink of ReLU, the
sharp step of tanh at large q) and narrow enough to resolve the oscillation of h_k.  In float64
(:func:`coefficients`) every variance shares one set of nodes, at which the bounded Hermite
functions ψ_k(z) = h_k(z) e^{−z²/4} come from their three-term recurrence, so the projections of
all variances are one matrix product; a rule of lower order on the same panels estimates their
error.  At any precision (:func:`mp_coefficients`) the recurrence runs in fixed-point integers
and the coefficients are cached per function, variance and precision, so that a root search in
c (the correlation fixed point at 30 digits) projects once and then sums a series per step.

>>> import numpy as np
>>> co = coefficients(np.tanh, np.array([1.0]), 40)
>>> bool(abs(co.total[0] - 0.394294490397841) < 1e-14)  # E tanh(z)^2
True
>>> value, bound = co.series(co, np.array([[0]]), np.array([[0]]), np.array([[0.5]]), 1e-14)[:2]
>>> bool(bound[0, 0] <= 1e-14)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import mpmath as mp
import numpy as np

from derive.errors import NumericError
from derive.gaussian.blocks import row_blocks, single_threaded_blas

#: the terms tried first, and the most terms in float64 (for sharp functions: a(√q z) at large
#: q); entries whose bound needs more go to 2-D quadrature
K_FIRST, K_MAX = 383, 2047
_L = 13.0  # |z| beyond which e^{-z²/4} (|ψ_k| <= 1.1) leaves < 1e-18 of any polynomially bounded a
_ORDERS = (20, 14)
_REFINEMENTS = 3


# --- float64 ----------------------------------------------------------------------------------------


def _ends(k_max: int, finest: float, level: int) -> np.ndarray:
    """Panel ends on [-_L, _L]: uniform panels about 1.5 periods of h_{k_max} wide (halved per
    level), plus ends graded geometrically towards 0 from `finest`."""
    width = min(1.5, 3 * math.pi / math.sqrt(k_max + 1)) / 2**level
    n = 2 * math.ceil(_L / width)
    grid = np.linspace(-_L, _L, n + 1)
    graded = finest / 4**level * 2.0 ** np.arange(max(0, math.ceil(math.log2(width * 4**level / finest))))
    graded = graded[graded < width]
    return np.unique(np.concatenate([grid, graded, -graded]))


def hermite_functions(z: np.ndarray, rows: int) -> np.ndarray:
    """ψ_k(z) = h_k(z) e^{−z²/4} for k < rows, an array (rows, len(z)), by the recurrence
    ψ_{k+1} = (z ψ_k − √k ψ_{k−1}) / √(k+1) (bounded: |ψ_k| <= 1.1)."""
    psi = np.empty((rows, z.size))
    psi[0] = np.exp(-z * z / 4)
    if rows > 1:
        psi[1] = z * psi[0]
    for k in range(1, rows - 1):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1)
    return psi


@lru_cache(maxsize=12)
def _rule(k_max: int, finest: float, level: int, order: int) -> tuple:
    """(z, weights of f(√q z) ψ_k(z) for the projections, weights of f² for E f², ψ) of one rule."""
    ends = _ends(k_max, finest, level)
    t, w = np.polynomial.legendre.leggauss(order)
    half, mid = np.diff(ends) / 2, (ends[1:] + ends[:-1]) / 2
    z = (mid[:, None] + half[:, None] * t).ravel()
    w = (half[:, None] * w).ravel() / math.sqrt(2 * math.pi)
    return z, w * np.exp(-z * z / 4), w * np.exp(-z * z / 2), hermite_functions(z, k_max + 1)


def _rows(k_max: int) -> int:
    """Coefficients are computed for k up to a multiple of 32 (few cached rules)."""
    return min(32 * (k_max // 32 + 1), K_MAX + 1) - 1


def _finest(q_max: float) -> float:
    """The smallest graded panel: 1/8 of the feature scale 1/√q, a power of 2 (few cached rules)."""
    return 2.0 ** math.floor(math.log2(min(1.0, 1 / math.sqrt(max(q_max, 1e-300))) / 8))


def _project(f, qs: np.ndarray, rule: tuple) -> tuple:
    """(α_k(q) for every q and k, E f(√q z)²) from one rule, by blocks of variances."""
    z, w_proj, w_total, psi = rule
    roots = np.sqrt(qs)
    alpha, total = np.empty((qs.size, psi.shape[0])), np.empty(qs.size)
    for rows in row_blocks((qs.size, z.size)):
        with np.errstate(all="ignore"):
            values = np.asarray(f(roots[rows, None] * z), dtype=float)
        values = np.broadcast_to(values, (roots[rows].size, z.size))
        if not np.all(np.isfinite(values)):
            raise NumericError("the function is not finite at some quadrature nodes; its Hermite "
                               "coefficients cannot be computed in float64")
        alpha[rows], total[rows] = (values * w_proj) @ psi.T, (values * values) @ w_total
    return alpha, total


@dataclass(frozen=True)
class Coefficients:
    """Hermite coefficients α_k(q) of one function at distinct variances `qs` (ascending).

    `alpha` is (len(qs), K + 1), `total` = E f(√q z)² from the same nodes, and `error` a bound
    on |δα_k| relative to √total (the difference of two quadrature rules at the extreme and
    middle variances, doubled)."""

    qs: np.ndarray
    alpha: np.ndarray
    total: np.ndarray
    error: float

    @property
    def k_max(self) -> int:
        return self.alpha.shape[1] - 1

    def tails(self, K: int) -> np.ndarray:
        """T(K)/total = 1 − Σ_{k<=K} α_k²/total at every variance (clipped at 0)."""
        scale = np.maximum(self.total, 1e-300)
        return np.maximum(1 - np.sum(self.alpha[:, :K + 1] ** 2, axis=1) / scale, 0.0)

    def terms_for(self, other: Coefficients, c_max: float, tol: float) -> int:
        """Terms the series with `other` needs at |c| <= c_max for a tail bound below tol (relative
        to √(total_a total_b)) at every variance of both sets, judged from their coefficients."""
        return terms(c_max, _tail_profile(self, other), tol)

    def series(self, other: Coefficients, ia, ib, c, tol: float) -> tuple:
        """(values, error bounds, failed, relative bound or None) of Σ_k c^k α_k[ia] β_k[ib] on
        broadcasting index arrays ia, ib into the two coefficient sets and correlations c; bounds
        are absolute, `failed` marks entries whose truncation bound exceeds tol·√(total_a total_b)
        within K_MAX terms, and the relative bound (to √(total_a total_b)) holds for every entry
        when it is not None."""
        return _series(self, other, ia, ib, c, tol)


@single_threaded_blas  # products of a few hundred rows: threads spin against each other
def coefficients(f, qs: np.ndarray, k_max: int, tol: float = 1e-14) -> Coefficients:
    """α_k(q) = E[f(√q z) h_k(z)] for k <= k_max (<= K_MAX) at the variances qs > 0.

    `f` is a vectorised numpy function, smooth except possibly at 0.  The panels are refined
    until the two rules agree to tol·√(E f²) at the extreme and middle variances."""
    qs = np.asarray(qs, dtype=float)
    k_max = _rows(min(k_max, K_MAX))
    finest = _finest(float(qs.max()))
    probe = np.unique(qs[[0, qs.size // 2, -1]])
    for level in range(_REFINEMENTS + 1):
        high = _project(f, probe, _rule(k_max, finest, level, _ORDERS[0]))
        low = _project(f, probe, _rule(k_max, finest, level, _ORDERS[1]))
        scale = np.sqrt(np.maximum(high[1], 1e-300))
        error = float(np.max(np.abs(high[0] - low[0]) / scale[:, None]))
        if error <= tol:
            break
    else:
        raise NumericError(f"the Hermite projections did not converge (estimated error {error:.1e} "
                           f"relative); the function varies too fast for the Mehler expansion")
    alpha, total = _project(f, qs, _rule(k_max, finest, level, _ORDERS[0]))
    return Coefficients(qs, alpha, total, 2 * max(error, 1e-16))


def terms(c_top: float, tail: np.ndarray, tol: float) -> int:
    """The smallest K with c_top^{K+1} tail[K] <= tol (tail[K] = max_q T(K)/E f², for both
    functions combined), or len(tail) − 1 when none."""
    powers = np.exp((np.arange(tail.size) + 1) * math.log(max(c_top, 1e-300)))
    ok = np.flatnonzero(powers * tail <= tol)
    return int(ok[0]) if ok.size else tail.size - 1


def _tail_profile(a: Coefficients, b: Coefficients) -> np.ndarray:
    """max over variances of √(T_a(K) T_b(K)) / √(total_a total_b) for every K (monotone)."""
    ta = 1 - np.cumsum(a.alpha**2, axis=1) / np.maximum(a.total, 1e-300)[:, None]
    tb = 1 - np.cumsum(b.alpha**2, axis=1) / np.maximum(b.total, 1e-300)[:, None]
    return np.sqrt(np.maximum(ta.max(axis=0), 0) * np.maximum(tb.max(axis=0), 0))


def _series(a: Coefficients, b: Coefficients, ia, ib, c, tol: float) -> tuple:
    """Two tiers of terms: K for the bulk of the entries (|c| up to its 99th percentile), a larger
    K on the few above it.  When the worst case over the variances meets the tolerance, one
    relative bound serves every entry; otherwise each entry is bounded with the tails of its
    own variances.  Returns (values, absolute bounds, failed entries, relative bound or None)."""
    shape = np.broadcast_shapes(np.shape(ia), np.shape(ib), np.shape(c))
    c = np.broadcast_to(c, shape)
    c_abs = np.abs(c)
    profile = _tail_profile(a, b)
    c_max = float(c_abs.max(initial=0.0))
    sample = c_abs.ravel()[:: max(1, c_abs.size // 20_000)]
    c_bulk = float(np.quantile(sample, 0.99)) if c_abs.size > 10_000 else c_max
    K_bulk, K_top = terms(c_bulk, profile, tol), terms(c_max, profile, tol)
    if K_top - K_bulk < 16:
        K_bulk, c_bulk = K_top, c_max
    result = _horner(a.alpha[:, :K_bulk + 1], b.alpha[:, :K_bulk + 1], ia, ib, c)
    top = c_abs > c_bulk
    if top.any():
        at = lambda v: np.broadcast_to(v, shape)[top]  # noqa: E731
        result[top] = _horner(a.alpha[:, :K_top + 1], b.alpha[:, :K_top + 1], at(ia), at(ib), c[top])
    root_a, root_b = np.sqrt(np.maximum(a.total, 0)), np.sqrt(np.maximum(b.total, 0))
    l1_a, l1_b = np.sum(np.abs(a.alpha), axis=1), np.sum(np.abs(b.alpha), axis=1)
    # coefficient errors: Σ_k |c|^k (|δα_k||β_k| + |α_k||δβ_k|) <= ε (√T_a ‖β‖₁ + √T_b ‖α‖₁)
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficient = (a.error * np.max(np.where(root_b > 0, l1_b / root_b, 0.0))
                       + b.error * np.max(np.where(root_a > 0, l1_a / root_a, 0.0)))
    worst = max(profile[K_bulk] * c_bulk ** (K_bulk + 1), profile[K_top] * c_max ** (K_top + 1))
    scale = root_a[ia] * root_b[ib]
    if worst <= tol:
        relative = worst + float(coefficient)
        return result, np.broadcast_to(relative * scale, shape), np.zeros(shape, bool), relative
    bound = np.empty(shape)
    bound[...] = c_abs ** (K_bulk + 1) * np.sqrt(a.tails(K_bulk)[ia] * b.tails(K_bulk)[ib]) * scale
    if top.any():
        tails = np.sqrt(a.tails(K_top)[ia] * b.tails(K_top)[ib]) * scale
        bound[top] = c_abs[top] ** (K_top + 1) * np.broadcast_to(tails, shape)[top]
    failed = bound > tol * np.broadcast_to(scale, shape)
    bound += a.error * root_a[ia] * l1_b[ib] + b.error * root_b[ib] * l1_a[ia]
    return result, bound, failed, None


def _horner(alpha: np.ndarray, beta: np.ndarray, ia, ib, c, rows: int = 32) -> np.ndarray:
    """Σ_k c^k α_k[ia] β_k[ib] by Horner's rule.  For a Gram (ia a column, ib a row) in blocks of
    rows that stay in cache, on two threads (numpy releases the GIL); otherwise elementwise.  A
    symmetric Gram (the same coefficients and variances along rows and columns) is summed on and
    above the diagonal and mirrored: entry (b, a) then uses the c of (a, b), which differs from
    its own by rounding only."""
    at, bt = np.ascontiguousarray(alpha.T), np.ascontiguousarray(beta.T)  # (K + 1, m)
    ia, ib = np.asarray(ia), np.asarray(ib)
    if not (ia.ndim == 2 and ia.shape[1] == 1 and ib.ndim == 2 and ib.shape[0] == 1 and c.ndim == 2):
        shape = c.shape
        ia, ib, cf = (np.broadcast_to(v, shape).ravel() for v in (ia, ib, c))
        acc = at[-1, ia] * bt[-1, ib]
        for k in range(at.shape[0] - 2, -1, -1):
            acc *= cf
            acc += at[k, ia] * bt[k, ib]
        return acc.reshape(shape)
    left, right = at[:, ia[:, 0]], bt[:, ib[0]]  # (K + 1, n), (K + 1, m)
    symmetric = alpha is beta and c.shape[0] == c.shape[1] and np.array_equal(ia[:, 0], ib[0])
    out = np.empty(c.shape)

    def block(start):
        part = slice(start, start + rows)
        columns = slice(start if symmetric else 0, None)
        cb, lb, rb = c[part, columns], left[:, part, None], right[:, columns]
        acc = lb[-1] * rb[-1]
        term = np.empty_like(acc)
        for k in range(at.shape[0] - 2, -1, -1):
            acc *= cb
            np.multiply(lb[k], rb[k], out=term)
            acc += term
        out[part, columns] = acc

    starts = range(0, c.shape[0], rows)
    if c.size < 65536:
        for start in starts:
            block(start)
    else:
        list(_pool().map(block, starts))
    if symmetric:
        for start in starts:
            out[start + rows:, start:start + rows] = out[start:start + rows, start + rows:].T
    return out


@cache
def _pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="derive-mehler")


# --- any precision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MpCoefficients:
    """α_k (k <= K) of one function at one variance and precision, E f², the tails
    T(k) = E f² − Σ_{j<=k} α_j², and the same α_k by a rule of lower order (for the error)."""

    alpha: tuple
    total: mp.mpf
    tails: tuple
    low: tuple


def mp_terms_cap(c, digits: int) -> int:
    """Terms that reach 10^-digits at |c| even if the tails did not decay (at most 6000)."""
    if not c:
        return 1
    return min(6000, math.ceil((digits + 2) / -math.log10(float(abs(c)))))


def mp_projections(zs, ws, values, terms_: int, low=None) -> MpCoefficients:
    """α_k = Σ_i w_i f(z_i) h_k(z_i) for k <= terms_ from nodes z_i, weights w_i (the Gaussian
    density included) and values f(z_i), at the current precision; `low` = (zs, ws, values) of a
    second rule gives the error estimate.  The recurrence runs in fixed point
    (|h_k(z)| e^{−z²/4} <= 1.1, so nothing overflows within the reach of the nodes)."""
    alpha, total = _hermite_projections(zs, ws, values, terms_)
    other = alpha if low is None else _hermite_projections(*low, terms_)[0]
    tails, left = [], total
    for a in alpha:
        left -= a * a
        tails.append(max(left, mp.mpf(0)))
    return MpCoefficients(tuple(alpha), total, tuple(tails), tuple(other))


def _hermite_projections(zs, ws, values, terms_: int) -> tuple:
    """([α_0 .. α_terms], E f²) from the weighted node values: the recurrence runs over all nodes
    at once on numpy arrays of Python integers (fixed point, `bits` fractional bits)."""
    bits = mp.mp.prec + 30
    fixed = lambda v: int(mp.ldexp(v, bits))  # noqa: E731
    z = np.array([fixed(v) for v in zs], dtype=object)
    weighted = np.array([fixed(w * v) for w, v in zip(ws, values, strict=True)], dtype=object)
    total = mp.fsum(w * v * v for w, v in zip(ws, values, strict=True))
    previous = np.zeros(len(zs), dtype=object)
    current = np.full(len(zs), 1 << bits, dtype=object)
    alpha = []
    for k in range(terms_ + 1):
        alpha.append(int((weighted * current).sum()))
        step = (z * current - fixed(mp.sqrt(k)) * previous) >> bits
        previous, current = current, (step * fixed(1 / mp.sqrt(k + 1))) >> bits
    scale = mp.mpf(2) ** (-2 * bits)
    return [mp.mpf(v) * scale for v in alpha], total


def mp_terms_needed(a: MpCoefficients, b: MpCoefficients, c, tol, cap: int) -> int:
    """Terms for the tail bound |c|^{K+1} √(T_a T_b) <= tol, extrapolating the tails' geometric
    decay over the second half of the terms at hand (capped; the cap where they do not decay)."""
    K = min(len(a.tails), len(b.tails)) - 1
    tail = lambda k: mp.sqrt(a.tails[k] * b.tails[k])  # noqa: E731
    if K < 8 or tail(K) <= 0 or tail(K // 2) <= 0:
        return cap
    rate = mp.log(tail(K) / tail(K // 2)) / (K - K // 2)
    slope = mp.log(abs(c)) + rate
    if slope >= 0:
        return cap
    k = (mp.log(tol) - mp.log(tail(K)) + K * rate - mp.log(abs(c))) / slope
    return int(min(cap, max(K + 16, 1.3 * float(k) + 16)))


def mp_series(a: MpCoefficients, b: MpCoefficients, c, tol) -> tuple | None:
    """(Σ_{k<=K} c^k α_k β_k, error) with the smallest K whose tail bound
    |c|^{K+1} √(T_a(K) T_b(K)) is below `tol` (absolute), or None when the coefficients at hand
    are too few.  The error adds to the tail bound the difference from the same sum with the
    coefficients of the lower-order rule."""
    K = min(len(a.alpha), len(b.alpha)) - 1
    power, total, other, ca = mp.mpf(1), mp.mpf(0), mp.mpf(0), abs(c)
    for k in range(K + 1):
        total += power * a.alpha[k] * b.alpha[k]
        other += power * a.low[k] * b.low[k]
        power *= c
        tail = ca ** (k + 1) * mp.sqrt(a.tails[k] * b.tails[k])
        if tail <= tol:
            return total, tail + abs(total - other)
    return None
