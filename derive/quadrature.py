"""Gaussian expectations by numerical quadrature.

:func:`mp_expectation` is the high-precision reference: composite Gauss–Legendre
quadrature in mpmath, in the standard-normal variables, split at the kinks of the
integrand and graded towards them on the scale of its variance, at any number of
digits, with an error estimate from a second rule of lower order.  A 2-D integrand
a(x)·b(y) with |c| <= 0.9 goes through the Mehler (Hermite) expansion with a
rigorous tail bound (1-D projections only: ~0.3-2 s at 30 digits); others through
iterated quadrature (~5-20 s at 30 digits).  Neither uses the closed-form rules.

:func:`np_expectation_1d` and :func:`np_expectation_2d` are the vectorised float64
counterparts (the same panels, numpy arrays over many parameters at once).

>>> import sympy as sp
>>> from derive.symbols import x, y
>>> float(mp_expectation(sp.Max(0, x)**2, (x,), (2,), dps=30))
1.0
>>> round(float(mp_expectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (1, 1, 0), dps=30)), 12)
0.25
"""

from __future__ import annotations

import math
from functools import cache

import mpmath as mp
import numpy as np
import sympy as sp

from derive.errors import DivergenceError, DomainError, NumericError
from derive.kinks import kinks

_MP_MODULES = [{"Heaviside": lambda t, h0=0.5: mp.mpf(0) if t < 0 else (mp.mpf(1) if t > 0 else h0),
                "sign": mp.sign, "Max": max, "Min": min}, "mpmath"]

# --- mpmath reference ---------------------------------------------------------------------------
#
# Panels in z: a uniform grid of width _MP_WIDTH on [-reach, reach] (reach: where the Gaussian
# weight falls below the working precision), plus points graded geometrically (factor 2) towards
# each centre -- the origin and the kinks mapped to z -- from scale/4, where scale is the width in
# z of a unit feature in x (1/√q).  Each panel gets as many Gauss–Legendre nodes as the digits it
# must deliver (fewer where the Gaussian weight is small); a second rule with fewer nodes on the
# same panels gives the error estimate.  In 2-D the integral is iterated, z2 inside z1, the inner
# panels split where v crosses its kinks (these move with z1).

_MP_WIDTH = 2
_MP_RETRIES = 2


@cache
def _mp_legendre(n: int, dps: int) -> tuple:
    """Nodes and weights of the n-point Gauss–Legendre rule on [-1, 1] at `dps` digits (Newton
    iteration on the three-term recurrence of the Legendre polynomials)."""
    with mp.workdps(dps + 10):
        nodes, weights = [], []
        for i in range(1, n // 2 + 1):
            t = mp.cos(mp.pi * (i - mp.mpf(1) / 4) / (n + mp.mpf(1) / 2))
            for _ in range(100):
                p_prev, p = mp.mpf(1), t
                for k in range(2, n + 1):
                    p_prev, p = p, ((2 * k - 1) * t * p - (k - 1) * p_prev) / k
                dp = n * (t * p - p_prev) / (t * t - 1)
                t, step = t - p / dp, p / dp
                if abs(step) < mp.mpf(10) ** (-dps - 8):
                    break
            weight = 2 / ((1 - t * t) * dp * dp)
            nodes += [-t, t]
            weights += [weight, weight]
        if n % 2:
            p_prev, p = mp.mpf(1), mp.mpf(0)
            for k in range(2, n + 1):
                p_prev, p = p, -(k - 1) * p_prev / k
            nodes.append(mp.mpf(0))
            weights.append(2 / (n * p_prev) ** 2)
    return tuple(map(mp.mpf, nodes)), tuple(map(mp.mpf, weights))


def _mp_ends(centres, scales, reach) -> list:
    """Sorted panel ends in [-reach, reach] (see the comment above)."""
    n = int(mp.ceil(reach / _MP_WIDTH))
    points = {reach * k / n for k in range(-n, n + 1)}
    for centre, scale in zip(centres, scales, strict=True):
        if not (mp.isfinite(centre) and abs(centre) < reach):
            continue
        points.add(centre)
        step = scale / 2
        while mp.isfinite(step) and step < _MP_WIDTH and len(points) < 4000:
            points.update((centre + step, centre - step))
            step *= 2
    return sorted(p for p in points if abs(p) <= reach)


class _MPRule:
    """Composite Gauss–Legendre: ``nodes(ends, digits, which)`` gives (z, w·φ(z)) on the panels
    between `ends`, each panel with enough nodes for `digits` digits relative to the peak of the
    Gaussian weight (fewer where the weight is small); which = 0 is the high rule, 1 the low one
    (3 nodes fewer per panel).  Panels are cached: the uniform grid recurs in every inner integral."""

    def __init__(self):
        self.dps = mp.mp.dps
        self.norm = 1 / mp.sqrt(2 * mp.pi)
        self.cache = {}

    @staticmethod
    def order(a, b, digits: float, which: int) -> int:
        """Nodes for `digits` digits on [a, b] (fitted to the fewest that suffice for the Gaussian
        times tanh, x², 1 at 20-50 digits): the digits left after the Gaussian weight has fallen,
        plus a margin where a polynomial factor grows; narrow (graded) panels resolve a feature."""
        nearest = 0.0 if a < 0 < b else float(min(abs(a), abs(b)))
        needed = digits - nearest**2 / 2 / math.log(10) + (2 if nearest > 4 else 0)
        if b - a < 0.7 * _MP_WIDTH:
            low = math.ceil(0.55 * digits) + 4
        else:
            low = max(6, math.ceil(0.45 * needed) + 6)
        return low + 3 * (1 - which)

    def panel(self, a, b, n: int) -> tuple:
        key = (a, b, n)
        if key not in self.cache:
            half, mid = (b - a) / 2, (a + b) / 2
            zs, ws = [], []
            for t, w in zip(*_mp_legendre(n, self.dps), strict=True):
                z = mid + half * t
                zs.append(z)
                ws.append(half * w * self.norm * mp.exp(-z * z / 2))
            self.cache[key] = zs, ws
        return self.cache[key]

    def nodes(self, ends, digits: float, which: int) -> tuple:
        zs, ws = [], []
        for a, b in zip(ends[:-1], ends[1:], strict=False):
            z, w = self.panel(a, b, self.order(a, b, digits, which))
            zs += z
            ws += w
        return zs, ws


def _mp_function(body: sp.Expr, variables: tuple):
    if body.has(sp.DiracDelta):
        raise NumericError(f"cannot integrate a Dirac delta numerically in {body}; "
                           "reduce it first with derive.expect")
    return sp.lambdify(variables, body, modules=_MP_MODULES)


def _check_tails(g):
    """Divergent Gaussian integrals show up as integrands that do not decay."""
    for z in (-30, 30):
        if not abs(g(mp.mpf(z))) < mp.mpf(10) ** -20:
            raise DivergenceError("the Gaussian expectation diverges: the integrand does not "
                                  "decay in the tails (it grows at least as fast as the density falls)")


def _reach(g, digits: int):
    """|z| beyond which g(z)φ(z) is below 10^-digits of its values near the bulk."""
    reach = mp.sqrt(2 * math.log(10) * digits)
    weighted = lambda z: abs(g(mp.mpf(z))) * mp.exp(-mp.mpf(z) ** 2 / 2)  # noqa: E731
    peak = max(weighted(z) for z in range(-int(reach), int(reach) + 1))
    while reach < 30 and max(weighted(reach), weighted(-reach)) > mp.mpf(10) ** -digits * peak:
        reach += 2
    return reach


def _numeric_kinks(body, var) -> list:
    return [mp.mpf(sp.Float(k, mp.mp.dps)) for k in kinks(body, var) if k.is_number]


def _integrate(rule_of, check):
    """Run `rule_of(digits)` → (value, error estimate, scale) until the error is below the target
    relative to the scale (E|f| or a bound on it), adding the digits that were missing; `check`
    names the integral in the error message."""
    target = mp.mp.dps - 8
    digits = target + 3
    for _ in range(_MP_RETRIES + 1):
        value, error, scale = rule_of(digits)
        if not mp.isfinite(value):
            raise NumericError(f"quadrature of {check} gave {value}: the integrand is not finite")
        tolerance = mp.mpf(10) ** -target * scale
        if error <= tolerance:
            return value
        digits += 6 + (int(mp.log10(error / tolerance)) if tolerance else 10)
    raise NumericError(f"quadrature of {check} did not converge to {target} digits (estimate {value}, "
                       f"error estimate {error}); pass the kinks of a piecewise integrand")


def mp_expectation_1d(body: sp.Expr, x: sp.Symbol, q) -> mp.mpf:
    """∫Dz body(√q z) at the current mpmath precision."""
    q = mp.mpf(q)
    f = _mp_function(body, (x,))
    if q == 0:
        return mp.mpf(f(mp.mpf(0)))
    root = mp.sqrt(q)
    g = lambda z: f(root * z)  # noqa: E731
    _check_tails(lambda z: g(z) * mp.npdf(z))
    centres = [mp.mpf(0), *(k / root for k in _numeric_kinks(body, x))]

    def rule_of(digits):
        rule = _MPRule()
        ends = _mp_ends(centres, [1 / root] * len(centres), _reach(g, digits))
        sums = []
        for which in (0, 1):
            zs, ws = rule.nodes(ends, digits, which)
            values = [g(z) for z in zs]
            sums.append((mp.fdot(ws, values), mp.fdot(ws, map(abs, values))))
        return sums[0][0], abs(sums[0][0] - sums[1][0]), sums[0][1]

    return _integrate(rule_of, f"E[{body}] at q = {mp.nstr(q, 8)}")


def _separate(body: sp.Expr, x: sp.Symbol, y: sp.Symbol) -> tuple:
    """body = a(x) · b(x, y) with as much as possible in a (so it is evaluated once per outer node)."""
    a, b = body.as_independent(y, as_Add=False)
    return a, b


_MEHLER_MAX_C = mp.mpf("0.9")


def _mehler_rule(a_expr, b_expr, x, y, r1, r2, c):
    """rule_of(digits) for E[a(u) b(v)] by the Mehler expansion (Mehler 1866; Kibble 1945)

        E a(u) b(v) = Σ_k c^k α_k β_k,  α_k = E[a(√q1 z) h_k(z)],  β_k = E[b(√q2 z) h_k(z)],

    h_k = He_k/√k! (orthonormal Hermite polynomials), truncated after K terms with the rigorous
    bound |c|^{K+1} √(T_a T_b), T_a = E a² − Σ_{k≤K} α_k² (Cauchy–Schwarz on the tail).  The α_k,
    β_k are Gauss–Legendre projections on panels split at the kinks of a and b, the recurrence
    h_{k+1} = (z h_k − √k h_{k−1})/√(k+1) run in fixed-point integers (|h_k(z)| e^{−z²/4} ≤ 1.1, so
    the reach is where e^{−z²/4} falls below the precision).  Error: difference from the
    lower-order rule plus the tail bound."""
    a, b = _mp_function(a_expr, (x,)), _mp_function(b_expr, (y,))
    a_kinks = [k / r1 for k in _numeric_kinks(a_expr, x)]
    b_kinks = [k / r2 for k in _numeric_kinks(b_expr, y)]
    centres = [mp.mpf(0), *a_kinks, *b_kinks]
    scales = [min(1 / r1, 1 / r2)] + [1 / r1] * len(a_kinks) + [1 / r2] * len(b_kinks)
    log_c = math.log10(float(abs(c))) if c else -math.inf

    def rule_of(digits):
        terms = 1 if not c else math.ceil(-(digits + 2) / log_c)
        reach = mp.sqrt(4 * math.log(10) * (digits + 1)) + 1
        ends = _mp_ends(centres, scales, reach)
        rule = _MPRule()
        results = []
        for which in (0, 1):
            zs, ws = [], []
            for lo, hi in zip(ends[:-1], ends[1:], strict=False):
                nearest = 0.0 if lo < 0 < hi else float(min(abs(lo), abs(hi)))
                needed = digits - nearest**2 / 4 / math.log(10)
                n = max(4, math.ceil(0.45 * needed + 0.35 * math.sqrt(terms) * float(hi - lo)) + 4)
                z, w = rule.panel(lo, hi, n + 4 * (1 - which))
                zs += z
                ws += w
            results.append(_hermite_sums(zs, ws, [a(r1 * z) for z in zs], [b(r2 * z) for z in zs], c, terms))
        (high, a2, b2, tail_a, tail_b), (low, *_) = results
        tail = abs(c) ** (terms + 1) * mp.sqrt(max(tail_a, 0) * max(tail_b, 0))
        return high, abs(high - low) + tail, mp.sqrt(a2 * b2)

    return rule_of


def _hermite_sums(zs, ws, a_values, b_values, c, terms: int):
    """(Σ_k c^k α_k β_k, E a², E b², E a² − Σ α_k², E b² − Σ β_k²) from the weighted node values."""
    bits = mp.mp.prec + 30
    one = 1 << bits
    fixed = lambda v: int(mp.ldexp(v, bits))  # noqa: E731
    roots = [fixed(mp.sqrt(k)) for k in range(terms + 2)]
    inverse_roots = [0] + [fixed(1 / mp.sqrt(k)) for k in range(1, terms + 2)]
    alpha, beta = [0] * (terms + 1), [0] * (terms + 1)
    a2 = b2 = mp.mpf(0)
    for z, w, av, bv in zip(zs, ws, a_values, b_values, strict=True):
        wa, wb, zi = fixed(w * av), fixed(w * bv), fixed(z)
        a2 += w * av * av
        b2 += w * bv * bv
        previous, current = 0, one
        for k in range(terms + 1):
            alpha[k] += wa * current
            beta[k] += wb * current
            step = (zi * current - roots[k] * previous) >> bits
            previous, current = current, step * inverse_roots[k + 1] >> bits
    scale = mp.mpf(2) ** (-2 * bits)
    alpha = [mp.mpf(v) * scale for v in alpha]
    beta = [mp.mpf(v) * scale for v in beta]
    total = mp.fsum(c**k * ak * bk for k, (ak, bk) in enumerate(zip(alpha, beta, strict=True)))
    return total, a2, b2, a2 - mp.fsum(v * v for v in alpha), b2 - mp.fsum(v * v for v in beta)


def mp_expectation_2d(body: sp.Expr, x: sp.Symbol, y: sp.Symbol, q1, q2, c) -> mp.mpf:
    """∫Dz₁Dz₂ body(u₁, u₂) at the current mpmath precision, iterated: z2 inside z1."""
    q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
    if abs(c) == 1 or q1 == 0 or q2 == 0:
        ratio = mp.sqrt(q2 / q1) * c if q1 else 0
        if q1 == 0:
            return mp_expectation_1d(body.xreplace({x: 0}), y, q2)
        return mp_expectation_1d(body.xreplace({y: ratio * x}), x, q1)
    r1, r2, r = mp.sqrt(q1), mp.sqrt(q2), mp.sqrt((1 - c) * (1 + c))
    outer_part, inner_part = _separate(body, x, y)
    where = ", ".join(mp.nstr(v, 8) for v in (q1, q2, c))
    if x not in inner_part.free_symbols and abs(c) <= _MEHLER_MAX_C:
        check = f"E[{body}] at (q1, q2, c) = ({where}) by the Mehler expansion"
        return _integrate(_mehler_rule(outer_part, inner_part, x, y, r1, r2, c), check)
    a, b = _mp_function(outer_part, (x,)), _mp_function(inner_part, (x, y))
    f = _mp_function(body, (x, y))
    _check_tails(lambda z: f(r1 * z, r2 * c * z) * mp.npdf(z))
    y_kinks = [sp.lambdify(x, k, "mpmath") for k in kinks(body, y) if not (k.free_symbols - {x})]
    fixed_y = [mp.mpf(0), *(k / r2 for k in _numeric_kinks(body, y))]
    x_centres = [mp.mpf(0), *(k / r1 for k in _numeric_kinks(body, x))]
    projected = [k / c for k in fixed_y] if c else []  # where c √q2 z1 crosses the y-kinks
    outer_centres = x_centres + projected
    outer_scales = [1 / r1] * len(x_centres) + [min(1 / r2, r) / abs(c) for _ in projected]
    sigma = r2 * r

    def rule_of(digits):
        rule = _MPRule()
        reach = mp.sqrt(2 * math.log(10) * digits) + 1
        outer_ends = _mp_ends(outer_centres, outer_scales, reach)
        sums = []
        for which in (0, 1):
            zs, ws = rule.nodes(outer_ends, digits, which)
            values, absolute = [], []
            for z1 in zs:
                u, mu = r1 * z1, r2 * c * z1
                centres = [-mu / sigma, *((k(u) - mu) / sigma for k in y_kinks)]
                ends = _mp_ends(centres, [1 / sigma] * len(centres), reach)
                # inner digits relative to the outer peak: fewer where the outer weight is small
                inner_z, inner_w = rule.nodes(ends, digits - float(z1) ** 2 / 2 / math.log(10), which)
                g = [b(u, mu + sigma * z2) for z2 in inner_z]
                scale = a(u)
                values.append(scale * mp.fdot(inner_w, g))
                absolute.append(abs(scale) * mp.fdot(inner_w, map(abs, g)))
            sums.append((mp.fdot(ws, values), mp.fdot(ws, absolute)))
        return sums[0][0], abs(sums[0][0] - sums[1][0]), sums[0][1]

    return _integrate(rule_of, f"E[{body}] at (q1, q2, c) = ({where})")


def mp_expectation(body: sp.Expr, variables: tuple, parameters: tuple, dps: int = 30) -> mp.mpf:
    """E[body] over the centred Gaussian of `variables` with `parameters`
    ((q,) or (q1, q2, c)) to `dps` significant digits (relative to E|body|), or
    :class:`NumericError` when the error estimate says they were not reached."""
    with mp.workdps(dps + 8):
        values = [mp.mpf(sp.Float(p, dps + 8)) for p in parameters]
        if any(not mp.isfinite(v) for v in values) or any(v < 0 for v in values[:2]):
            raise DomainError(f"variances must be finite and >= 0, got {parameters}")
        if len(variables) == 1:
            value = mp_expectation_1d(body, variables[0], values[0])
        else:
            if abs(values[2]) > 1:
                raise DomainError(f"correlation c = {parameters[2]} has |c| > 1")
            value = mp_expectation_2d(body, *variables, *values)
    with mp.workdps(dps):
        return +value


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
_CHUNK_NODES = 4_000_000


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
            out = out + np.where(last < before, last * last / np.where(before > 0, before, 1.0), last)
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


def _rule_2d(f, q1, q2, c, kx, ky, ky_calls, args, level, n):
    """(∫, ∫|·|, tail) of the iterated integral over z1 (outer) and z2 (inner), n-point rules."""
    r1, r2 = np.sqrt(q1), np.sqrt(q2)
    r = np.sqrt((1 - c) * (1 + c))
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2, cv = 1 / r1, 1 / r2, c[:, None]
        y_centres = np.concatenate([np.zeros((q1.size, 1)), ky * s2[:, None]], axis=1)
        outer_centres = np.concatenate([np.zeros((q1.size, 1)), kx * s1[:, None], y_centres / cv], axis=1)
        y_scale = np.minimum(s2, r)[:, None] / np.abs(cv)
        outer_scales = np.concatenate([np.repeat(s1[:, None], 1 + kx.shape[1], axis=1),
                                       np.repeat(y_scale, y_centres.shape[1], axis=1)], axis=1)
    z1, w1 = _nodes(_panel_ends(outer_centres, outer_scales, level), n)
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


def _adaptive(rule, size: int, parameters: dict, rtol: float) -> np.ndarray:
    """Run `rule(level, n, index)` at both orders, refining the elements that fail the checks."""
    result = np.full(size, np.nan)
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
        ok = np.abs(high - low) <= rtol * absolute
        result[todo[ok]] = high[ok]
        todo = todo[~ok]
    if todo.size:
        raise NumericError("Gaussian quadrature did not reach the requested accuracy at "
                           + _describe(parameters, todo[:3]) + ": if the integrand has kinks or jumps, "
                           "pass them (kinks=...); if it is steep on a scale much finer than 1, rescale it")
    return result


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


def _chunks(size: int, nodes_per_element: int):
    step = max(1, _CHUNK_NODES // nodes_per_element)
    return (slice(i, min(i + step, size)) for i in range(0, size, step))


def _columns(arrays, size: int) -> np.ndarray:
    return np.stack(arrays, axis=1) if arrays else np.zeros((size, 0))


def _shaped(result: np.ndarray, shape):
    result = result.reshape(shape)
    return result[()] if result.ndim == 0 else result


def np_expectation_1d(f, q, kinks=(), rtol: float = 1e-13, *, args=()):
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
    result = np.empty(q.size)
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

        result[index] = _adaptive(rule, index.size, {"q": qi}, rtol)
    return _shaped(result, shape)


def np_expectation_2d(f, q1, q2, c, kinks_x=(), kinks_y=(), rtol: float = 1e-13, *, args=()):
    """E[f(u, v)] with u = √q1 z1, v = √q2 (c z1 + √(1−c²) z2), z1, z2 iid N(0, 1), elementwise
    over broadcasting arrays q1, q2, c, in float64.

    `f` is a vectorised numpy callable ``f(x, y, *args)``; `kinks_x` are points in x where f
    switches branch (numbers or arrays); `kinks_y` points in y: numbers, arrays, or callables
    ``k(x, *args)`` for switches along a line such as y = x (Max(x, y)).  The integral is iterated,
    z2 inside z1, with the inner panels split where v crosses the y-kinks (they move with z1) and
    the outer panels where u crosses the x-kinks and where c√q2 z1 crosses the y-kinks.  At |c| = 1,
    q1 = 0 or q2 = 0 the expectation is one-dimensional and is computed so (callable y-kinks are
    then left to the error control).  |c| up to 1 + 1e-12 is read as ±1 (rounding in c-maps).
    Error control as in :func:`np_expectation_1d`.

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
    if not np.all(np.abs(c) <= 1 + 1e-12):
        bad = c[~(np.abs(c) <= 1 + 1e-12)][:3].tolist()
        raise DomainError(f"correlations must lie in [-1, 1]; got {bad}")
    c = np.clip(c, -1.0, 1.0)
    kx = _columns(flat[:len(kinks_x)], q1.size)
    ky = _columns(flat[len(kinks_x):len(kinks_x) + len(numeric_y)], q1.size)
    args = flat[len(kinks_x) + len(numeric_y):]
    result = np.empty(q1.size)
    _degenerate_2d(f, q1, q2, c, kx, ky, calls, args, rtol, result)
    live = np.flatnonzero((q1 > 0) & (q2 > 0) & (np.abs(c) < 1))
    per_element = (80 * (1 + kx.shape[1] + ky.shape[1]) * _ORDERS[0]) ** 2
    for part in _chunks(live.size, per_element):
        index = live[part]
        values = [q1[index], q2[index], c[index], kx[index], ky[index]]
        ai = [a[index] for a in args]

        def rule(level, n, todo, values=values, ai=ai):
            return _rule_2d(f, *(v[todo] for v in values), calls, [a[todo] for a in ai], level, n)

        result[index] = _adaptive(rule, index.size, {"q1": values[0], "q2": values[1], "c": values[2]}, rtol)
    return _shaped(result, shape)


def _degenerate_2d(f, q1, q2, c, kx, ky, calls, args, rtol, result):
    """Fill `result` where the 2-D expectation is one-dimensional: q1 = 0 (u = 0), else q2 = 0
    (v = 0), else |c| = 1 (v = c √(q2/q1) u)."""
    no_u = q1 == 0
    no_v = (q2 == 0) & ~no_u
    line = (np.abs(c) == 1) & (q1 > 0) & (q2 > 0)
    if no_u.any():
        i = np.flatnonzero(no_u)
        zero = np.zeros(i.size)
        kinks = [*ky[i].T, *(k(zero, *(a[i] for a in args)) for k in calls)]
        result[i] = np_expectation_1d(lambda v, *a: f(0 * v, v, *a), q2[i], kinks, rtol,
                                      args=[a[i] for a in args])
    if no_v.any():
        i = np.flatnonzero(no_v)
        result[i] = np_expectation_1d(lambda u, *a: f(u, 0 * u, *a), q1[i], list(kx[i].T), rtol,
                                      args=[a[i] for a in args])
    if line.any():
        i = np.flatnonzero(line)
        ratio = c[i] * np.sqrt(q2[i] / q1[i])
        kinks = [*kx[i].T, *(ky[i].T / ratio)]
        result[i] = np_expectation_1d(lambda u, k, *a: f(u, k * u, *a), q1[i], kinks, rtol,
                                      args=[ratio, *(a[i] for a in args)])
