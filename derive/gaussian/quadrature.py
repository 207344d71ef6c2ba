"""Gaussian expectations in float64 by vectorised panel quadrature.

:func:`np_expectation_1d` and :func:`np_expectation_2d` integrate a numpy callable against the
standard Gaussian over arrays of variances (and correlations) at once: composite Gauss–Legendre
panels in the standard-normal variables, split at the kinks and graded towards them on the scale
of the variance, with an error estimate from a second rule of lower order.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from derive.errors import DomainError, NumericError

# --- vectorised float64 quadrature ------------------------------------------------------------
#
# Composite Gauss–Legendre in the standard-normal variables on [-_L, _L] (the Gaussian mass beyond
# is < 1e-25): uniform panels of width <= _W, plus panels graded geometrically (factor 2) towards
# every "centre" -- the origin and the kinks, mapped to z -- from a fraction of the scale on which
# the integrand varies there (1/√q in z for features of unit size in x).  Each element is also
# integrated with a lower-order rule on the same panels; where the two differ by more than rtol
# times E|f| (or the outermost panels carry mass) the element is redone with finer panels.

_L = 10.5
_W = 1.5
_ORDERS = (16, 12)
_SMALLEST = 1e-15
_REFINEMENTS = 2
_CHUNK_NODES = 262_144  # 2 MiB per array: temporaries reused from the heap, not fresh pages


@cache
def _legendre(n: int) -> tuple:
    return np.polynomial.legendre.leggauss(n)


def _panel_ends(centres, scales, level: int) -> np.ndarray:
    """Sorted panel ends (..., P) in [-_L, _L]: a uniform grid of width _W / 2**level and, around each
    centre (..., C), the points centre ± scale·2**k / 8 (refined by 64**level) that are below the
    grid width.  Non-finite centres or scales contribute nothing."""
    width = _W / 2**level
    grid = np.linspace(-_L, _L, round(2 * _L / width) + 1)
    centres = np.where(np.isfinite(centres), centres, 0.0)
    h0 = np.maximum(np.asarray(scales, dtype=float) / 8 / 64.0**level, _SMALLEST)
    h0 = np.broadcast_to(np.where(np.isfinite(h0), h0, np.inf), centres.shape)
    levels = int(np.ceil(np.log2(width / h0.min()))) if np.isfinite(h0).any() and h0.min() < width else 0
    offsets = h0[..., None] * 2.0 ** np.arange(levels)
    offsets = np.where(offsets < width, offsets, 0.0)
    shape = centres.shape[:-1]
    graded = (centres[..., None] + np.concatenate([offsets, -offsets], axis=-1)).reshape(*shape, -1)
    points = np.concatenate([np.broadcast_to(grid, (*shape, grid.size)), centres, graded], axis=-1)
    ends = np.sort(np.clip(points, -_L, _L), axis=-1)
    ends[..., 1:][np.diff(ends, axis=-1) == 0] = np.inf  # drop repeated points, then trim the padding
    ends = np.sort(ends, axis=-1)[..., :int(np.isfinite(ends).sum(axis=-1).max())]
    return np.where(np.isfinite(ends), ends, _L)


def _nodes(ends: np.ndarray, n: int):
    """Gauss–Legendre nodes and weights (..., (P-1)·n) on the panels between `ends`."""
    t, w = _legendre(n)
    half = (ends[..., 1:] - ends[..., :-1]) / 2
    mid = (ends[..., 1:] + ends[..., :-1]) / 2
    shape = (*ends.shape[:-1], -1)
    return (mid[..., None] + half[..., None] * t).reshape(shape), (half[..., None] * w).reshape(shape)


_SQRT_2PI = np.sqrt(2 * np.pi)


def _density(z):
    return np.exp(-z * z / 2) / _SQRT_2PI


def _tail(z, mass):
    """Estimated mass beyond |z| = _L from the masses in the two outermost grid panels on each side
    (geometric extrapolation; the full last-panel mass when the integrand does not decay)."""
    out = 0.0
    for side in (z, -z):
        last = np.sum(np.where(side > _L - _W, mass, 0.0), axis=-1)
        before = np.sum(np.where((side > _L - 2 * _W) & (side <= _L - _W), mass, 0.0), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out + np.where(last < before, last * (last / np.where(before > 0, before, 1.0)), last)
    return out


def _evaluate(f, shape, *arguments) -> np.ndarray:
    with np.errstate(all="ignore"):
        values = f(*arguments)
    return np.broadcast_to(np.asarray(values, dtype=float), shape)


def _rule_1d(f, q, centres, args, level, n):
    """(∫, ∫|·|, tail) of f(√q z) φ(z) with the n-point rule, elementwise over the flat arrays."""
    root = np.sqrt(q)
    with np.errstate(divide="ignore"):
        scale = 1 / root
    z, w = _nodes(_panel_ends(centres, scale[:, None], level), n)
    g = _evaluate(f, z.shape, root[:, None] * z, *(a[:, None] for a in args)) * _density(z)
    return np.sum(g * w, axis=-1), np.sum(np.abs(g) * w, axis=-1), _tail(z, np.abs(g) * w)


def _outer_nodes(q1, q2, c, kx, ky, level, n) -> tuple:
    """Nodes and weights in z1 of the outer integral of a 2-D expectation, split where u crosses
    the x-kinks and where the mean of v given z1, c√q2 z1, crosses the y-kinks (graded there on
    the scale of v's conditional spread); also the y-kinks in z2 units at z1 = 0."""
    s1, s2 = 1 / np.sqrt(q1), 1 / np.sqrt(q2)
    r = np.sqrt((1 - c) * (1 + c))
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = c[:, None]
        y_centres = np.concatenate([np.zeros((q1.size, 1)), ky * s2[:, None]], axis=1)
        outer_centres = np.concatenate([np.zeros((q1.size, 1)), kx * s1[:, None], y_centres / cv], axis=1)
        y_scale = np.minimum(s2, r)[:, None] / np.abs(cv)
        outer_scales = np.concatenate([np.repeat(s1[:, None], 1 + kx.shape[1], axis=1),
                                       np.repeat(y_scale, y_centres.shape[1], axis=1)], axis=1)
    z1, w1 = _nodes(_panel_ends(outer_centres, outer_scales, level), n)
    return z1, w1, y_centres


def _rule_2d(f, q1, q2, c, kx, ky, ky_calls, args, level, n):
    """(∫, ∫|·|, tail) of the iterated integral over z1 (outer) and z2 (inner), n-point rules."""
    r1, r2 = np.sqrt(q1), np.sqrt(q2)
    r, s2 = np.sqrt((1 - c) * (1 + c)), 1 / r2
    z1, w1, y_centres = _outer_nodes(q1, q2, c, kx, ky, level, n)
    u = r1[:, None] * z1
    shift = (c[:, None] * z1)[..., None]
    extra = [(k(u, *(a[:, None] for a in args)) * s2[:, None])[..., None] for k in ky_calls]
    inner_centres = np.concatenate([np.broadcast_to(y_centres[:, None, :], (*z1.shape, y_centres.shape[1])),
                                    *(np.broadcast_to(e, (*z1.shape, 1)) for e in extra)], axis=-1)
    inner_centres = (inner_centres - shift) / r[:, None, None]
    z2, w2 = _nodes(_panel_ends(inner_centres, (s2 / r)[:, None, None], level), n)
    v = r2[:, None, None] * (shift + r[:, None, None] * z2)
    g = _evaluate(f, v.shape, u[..., None], v, *(a[:, None, None] for a in args)) * _density(z2)
    outer_w = w1 * _density(z1)
    absolute = np.sum(np.abs(g) * w2, axis=-1)
    inner_tail = _tail(z2, np.abs(g) * w2)
    return (np.sum(np.sum(g * w2, axis=-1) * outer_w, axis=-1), np.sum(absolute * outer_w, axis=-1),
            _tail(z1, absolute * outer_w) + np.sum(inner_tail * outer_w, axis=-1))


def _rule_conditional(a, smoothed, q1, q2, c, kx, ky, level, n):
    """(∫, ∫ bound, tail) of E_z1[a(u) E[b(v) | z1]] with the inner expectation in closed form:
    v given z1 is Gaussian with mean c√q2 z1 and standard deviation √(q2 (1 − c²))."""
    z1, w1, _ = _outer_nodes(q1, q2, c, kx, ky, level, n)
    r2 = np.sqrt(q2)[:, None]
    inner, scale = smoothed(r2 * c[:, None] * z1, r2 * np.sqrt((1 - c) * (1 + c))[:, None])
    outer = _evaluate(a, z1.shape, np.sqrt(q1)[:, None] * z1)
    weight = w1 * _density(z1)
    bound = 2 * np.abs(outer) * scale * weight  # twice: the terms' rounding on top of the sum's
    return np.sum(outer * inner * weight, axis=-1), np.sum(bound, axis=-1), _tail(z1, bound)


def _adaptive(rule, size: int, parameters: dict, rtol: float) -> tuple:
    """Run `rule(level, n, index)` at both orders, refining the elements that fail the checks.
    Returns (values, error estimates): |high − low| + the rounding of the sum, 4e-16·E|f|."""
    result, error = np.full(size, np.nan), np.full(size, np.nan)
    todo = np.arange(size)
    for level in range(_REFINEMENTS + 1):
        if not todo.size:
            break
        high, absolute, tail = rule(level, _ORDERS[0], todo)
        low, _, _ = rule(level, _ORDERS[1], todo)
        if not np.all(np.isfinite(high)):
            bad = todo[~np.isfinite(high)][:3]
            raise NumericError("the integrand is not finite (inf or nan) at some quadrature nodes, at "
                               + _describe(parameters, bad) + "; check its domain")
        decays = tail <= rtol * absolute
        if not np.all(decays):
            bad = todo[~decays][:3]
            raise NumericError("the integrand does not decay within 10.5 standard deviations at "
                               + _describe(parameters, bad) + ": the expectation diverges or its mass "
                               "lies far in the Gaussian tails; use mp_expectation or a closed form")
        difference = np.abs(high - low)
        ok = difference <= rtol * absolute
        result[todo[ok]] = high[ok]
        error[todo[ok]] = difference[ok] + tail[ok] + 4e-16 * absolute[ok]
        todo = todo[~ok]
    if todo.size:
        raise NumericError("Gaussian quadrature did not reach the requested accuracy at "
                           + _describe(parameters, todo[:3]) + ": if the integrand has kinks or jumps, "
                           "pass them (kinks=...); if it is steep on a scale much finer than 1, rescale it")
    return result, error


def _describe(parameters: dict, index) -> str:
    return "; ".join(", ".join(f"{name}={values[i]:.6g}" for name, values in parameters.items())
                     for i in index)


def _flat_broadcast(*arrays):
    """Broadcast to a common shape; return the shape and the flattened float arrays."""
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    return shape, [np.broadcast_to(a, shape).ravel() for a in arrays]


def _check_variances(*qs):
    for q in qs:
        if not np.all(np.isfinite(q)) or np.any(q < 0):
            raise DomainError("variances must be finite and >= 0; got "
                              f"{q[~(np.isfinite(q) & (q >= 0))][:3].tolist()}")


def _correlations(c):
    """c clipped to [-1, 1] (|c| up to 1 + 1e-12 is rounding); DomainError beyond."""
    inside = np.abs(c) <= 1 + 1e-12
    if not np.all(inside):
        raise DomainError(f"correlations must lie in [-1, 1]; got {c[~inside][:3].tolist()}")
    return np.clip(c, -1.0, 1.0)


def _chunks(size: int, nodes_per_element: int):
    step = max(1, _CHUNK_NODES // nodes_per_element)
    return (slice(i, min(i + step, size)) for i in range(0, size, step))


def _columns(arrays, size: int) -> np.ndarray:
    return np.stack(arrays, axis=1) if arrays else np.zeros((size, 0))


def _shaped(result: np.ndarray, shape):
    result = result.reshape(shape)
    return result[()] if result.ndim == 0 else result


def np_expectation_1d(f, q, kinks=(), rtol: float = 1e-13, *, args=(), with_error: bool = False):
    """E[f(√q z)], z ~ N(0, 1), elementwise over the array `q` (any shape), in float64.

    `f` is a vectorised numpy callable ``f(x, *args)``; `kinks` are the points in x where f or
    its derivative jumps (numbers, or arrays broadcasting with q, e.g. parameter-dependent kinks);
    `args` are arrays broadcasting with q passed on to f (activation parameters).  At q = 0 the
    result is f(0).  Composite Gauss–Legendre in z on |z| <= 10.5, panels split at the kinks and
    graded towards them and towards 0 on the scale 1/√q; the error is estimated by a second, lower
    order rule and must be <= rtol·E|f| (elements that fail are redone on finer panels, then
    :class:`NumericError`).  An integrand that does not decay, or is not finite, raises
    :class:`NumericError`.

    >>> import numpy as np
    >>> round(float(np_expectation_1d(lambda x: x**2, 2.0)), 14)
    2.0
    >>> np_expectation_1d(lambda x: np.maximum(x, 0), np.array([1.0, 4.0]), kinks=[0]) * np.sqrt(2 * np.pi)
    array([1., 2.])
    """
    kinks = list(kinks)
    shape, (q, *flat) = _flat_broadcast(q, *kinks, *args)
    _check_variances(q)
    kink_array = _columns(flat[:len(kinks)], q.size)
    args = flat[len(kinks):]
    result, error = np.empty(q.size), np.zeros(q.size)
    zero = q == 0
    if zero.any():
        result[zero] = _evaluate(f, (int(zero.sum()),), np.zeros(int(zero.sum())), *(a[zero] for a in args))
    live = np.flatnonzero(~zero)
    per_element = 60 * (1 + 2 * len(kinks)) * sum(_ORDERS)
    for part in _chunks(live.size, per_element):
        index = live[part]
        qi, ki, ai = q[index], kink_array[index], [a[index] for a in args]
        with np.errstate(invalid="ignore"):
            centres = np.concatenate([np.zeros((index.size, 1)), ki / np.sqrt(qi)[:, None]], axis=1)

        def rule(level, n, todo, qi=qi, centres=centres, ai=ai):
            return _rule_1d(f, qi[todo], centres[todo], [a[todo] for a in ai], level, n)

        result[index], error[index] = _adaptive(rule, index.size, {"q": qi}, rtol)
    if with_error:
        return _shaped(result, shape), _shaped(error, shape)
    return _shaped(result, shape)


def np_expectation_2d(f, q1, q2, c, kinks_x=(), kinks_y=(), rtol: float = 1e-13, *, args=(),
                      with_error: bool = False):
    """E[f(u, v)] with u = √q1 z1, v = √q2 (c z1 + √(1−c²) z2), z1, z2 iid N(0, 1), elementwise
    over broadcasting arrays q1, q2, c, in float64.

    `f` is a vectorised numpy callable ``f(x, y, *args)``; `kinks_x` are points in x where f
    switches branch (numbers or arrays); `kinks_y` points in y: numbers, arrays, or callables
    ``k(x, *args)`` for switches along a line such as y = x (Max(x, y)).  The integral is iterated,
    z2 inside z1, with the inner panels split where v crosses the y-kinks (they move with z1) and
    the outer panels where u crosses the x-kinks and where c√q2 z1 crosses the y-kinks.  At |c| = 1,
    q1 = 0 or q2 = 0 the expectation is one-dimensional and is computed so (callable y-kinks are
    then left to the error control).  |c| up to 1 + 1e-12 is read as ±1 (rounding in c-maps).
    Error control (and ``with_error``) as in :func:`np_expectation_1d`.

    >>> import numpy as np
    >>> relu = lambda x: np.maximum(x, 0)
    >>> out = np_expectation_2d(lambda x, y: relu(x) * relu(y), 1.0, 1.0, np.array([0.0, 1.0]), [0], [0])
    >>> out * 2 * np.pi
    array([1.        , 3.14159265])
    """
    kinks_x = list(kinks_x)
    numeric_y = [k for k in kinks_y if not callable(k)]
    calls = [k for k in kinks_y if callable(k)]
    shape, (q1, q2, c, *flat) = _flat_broadcast(q1, q2, c, *kinks_x, *numeric_y, *args)
    _check_variances(q1, q2)
    c = _correlations(c)
    kx = _columns(flat[:len(kinks_x)], q1.size)
    ky = _columns(flat[len(kinks_x):len(kinks_x) + len(numeric_y)], q1.size)
    args = flat[len(kinks_x) + len(numeric_y):]
    result, error = np.empty(q1.size), np.zeros(q1.size)
    _degenerate_2d(f, q1, q2, c, kx, ky, calls, args, rtol, result, error)
    live = np.flatnonzero((q1 > 0) & (q2 > 0) & (np.abs(c) < 1))
    per_element = (80 * (1 + kx.shape[1] + ky.shape[1]) * _ORDERS[0]) ** 2
    for part in _chunks(live.size, per_element):
        index = live[part]
        values = [q1[index], q2[index], c[index], kx[index], ky[index]]
        ai = [a[index] for a in args]

        def rule(level, n, todo, values=values, ai=ai):
            return _rule_2d(f, *(v[todo] for v in values), calls, [a[todo] for a in ai], level, n)

        result[index], error[index] = _adaptive(rule, index.size, {"q1": values[0], "q2": values[1],
                                                                   "c": values[2]}, rtol)
    if with_error:
        return _shaped(result, shape), _shaped(error, shape)
    return _shaped(result, shape)


def np_expectation_conditional(a, b, q1, q2, c, kinks_x=(), kinks_y=(), rtol: float = 1e-13, *,
                               with_error: bool = False):
    """E[a(u) b(v)] as in :func:`np_expectation_2d`, for a piecewise polynomial b (a
    :class:`~derive.gaussian.piecewise_polynomial.PiecewisePolynomial`, kinks `kinks_y`): the
    inner expectation over v given u is b's Gaussian smoothing in closed form, and only the outer
    integral over u is quadrature — one dimension instead of two, the same error control.

    >>> import numpy as np, sympy as sp
    >>> from derive.gaussian.piecewise_polynomial import PiecewisePolynomial
    >>> from derive.symbols import x
    >>> relu = PiecewisePolynomial.of(sp.Max(x, 0), x)
    >>> out = np_expectation_conditional(relu, relu, 1.0, 1.0, np.array([0.0, 0.5]), [0], [0])
    >>> out * 2 * np.pi  # (√(1 − c²) + (π − arccos c) c) / (2π), Cho & Saul 2009
    array([1.        , 1.91322295])
    """
    shape, (q1, q2, c) = _flat_broadcast(q1, q2, c)
    _check_variances(q1, q2)
    c = _correlations(c)
    kx = np.broadcast_to(np.asarray(kinks_x, dtype=float), (q1.size, len(kinks_x)))
    ky = np.broadcast_to(np.asarray(kinks_y, dtype=float), (q1.size, len(kinks_y)))
    result, error = np.empty(q1.size), np.zeros(q1.size)
    _degenerate_2d(lambda u, v: a(u) * b(v), q1, q2, c, kx, ky, [], [], rtol, result, error)
    live = np.flatnonzero((q1 > 0) & (q2 > 0) & (np.abs(c) < 1))
    per_element = 80 * (1 + kx.shape[1] + ky.shape[1]) * _ORDERS[0] * (1 + len(b.coefficients))
    for part in _chunks(live.size, per_element):
        index = live[part]
        values = [q1[index], q2[index], c[index], kx[index], ky[index]]

        def rule(level, n, todo, values=values):
            return _rule_conditional(a, b.smoothed, *(v[todo] for v in values), level, n)

        result[index], error[index] = _adaptive(rule, index.size, {"q1": values[0], "q2": values[1],
                                                                   "c": values[2]}, rtol)
    if with_error:
        return _shaped(result, shape), _shaped(error, shape)
    return _shaped(result, shape)


def _degenerate_2d(f, q1, q2, c, kx, ky, calls, args, rtol, result, error):
    """Fill `result` where the 2-D expectation is one-dimensional: q1 = 0 (u = 0), else q2 = 0
    (v = 0), else |c| = 1 (v = c √(q2/q1) u)."""
    no_u = q1 == 0
    no_v = (q2 == 0) & ~no_u
    line = (np.abs(c) == 1) & (q1 > 0) & (q2 > 0)
    if no_u.any():
        i = np.flatnonzero(no_u)
        zero = np.zeros(i.size)
        kinks = [*ky[i].T, *(k(zero, *(a[i] for a in args)) for k in calls)]
        result[i], error[i] = np_expectation_1d(lambda v, *a: f(0 * v, v, *a), q2[i], kinks, rtol,
                                                args=[a[i] for a in args], with_error=True)
    if no_v.any():
        i = np.flatnonzero(no_v)
        result[i], error[i] = np_expectation_1d(lambda u, *a: f(u, 0 * u, *a), q1[i], list(kx[i].T), rtol,
                                                args=[a[i] for a in args], with_error=True)
    if line.any():
        i = np.flatnonzero(line)
        ratio = c[i] * np.sqrt(q2[i] / q1[i])
        kinks = [*kx[i].T, *(ky[i].T / ratio)]
        result[i], error[i] = np_expectation_1d(lambda u, k, *a: f(u, k * u, *a), q1[i], kinks, rtol,
                                                args=[ratio, *(a[i] for a in args)], with_error=True)
