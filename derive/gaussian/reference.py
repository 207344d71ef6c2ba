"""The any-precision reference: Gaussian expectations by mpmath quadrature.

:func:`mp_expectation` is composite Gauss–Legendre quadrature in mpmath, in the standard-normal
variables, split at the kinks of the integrand and graded towards them on the scale of its
variance, at any number of digits, with an error estimate from a second rule of lower order.
A 2-D integrand a(x)·b(y) with |c| <= 0.9 goes through the Mehler (Hermite) expansion with a
rigorous tail bound (1-D projections only: ~0.3-2 s at 30 digits); others through iterated
quadrature (~5-20 s at 30 digits).  Neither uses the closed-form rules.

>>> import sympy as sp
>>> from derive.symbols import x, y
>>> float(mp_expectation(sp.Max(0, x)**2, (x,), (2,), dps=30))
1.0
>>> round(float(mp_expectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (1, 1, 0), dps=30)), 12)
0.25
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import mpmath as mp
import sympy as sp

from derive.errors import DivergenceError, DomainError, NumericError
from derive.gaussian.mehler import MpCoefficients, mp_projections, mp_series, mp_terms_cap, mp_terms_needed
from derive.gaussian.piecewise_polynomial import PiecewisePolynomial
from derive.piecewise import kinks

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


def mp_panel_ends(centres, scales, reach) -> list:
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


def _order(a, b, digits: float, which: int) -> int:
    """Nodes for `digits` digits on the panel [a, b] (fitted to the fewest that suffice for the
    Gaussian times tanh, x², 1 at 20-50 digits): the digits left after the Gaussian weight has
    fallen, plus a margin where a polynomial factor grows; narrow (graded) panels resolve a
    feature.  which = 0 is the high rule, 1 the low one (3 nodes fewer)."""
    nearest = 0.0 if a < 0 < b else float(min(abs(a), abs(b)))
    needed = digits - nearest**2 / 2 / math.log(10) + (2 if nearest > 4 else 0)
    if b - a < 0.7 * _MP_WIDTH:
        low = math.ceil(0.55 * digits) + 4
    else:
        low = max(6, math.ceil(0.45 * needed) + 6)
    return low + 3 * (1 - which)


def mp_panel(a, b, n: int) -> tuple:
    """(z, w·φ(z)) of the n-point Gauss–Legendre rule on [a, b] at the current precision, φ the
    standard normal density (cached: the uniform grid recurs in every inner integral)."""
    return _panel(a, b, n, mp.mp.prec)


@lru_cache(maxsize=1 << 14)
def _panel(a, b, n: int, prec: int) -> tuple:
    half, mid = (b - a) / 2, (a + b) / 2
    norm = 1 / mp.sqrt(2 * mp.pi)
    zs, ws = [], []
    for t, w in zip(*_mp_legendre(n, mp.mp.dps), strict=True):
        z = mid + half * t
        zs.append(z)
        ws.append(half * w * norm * mp.exp(-z * z / 2))
    return zs, ws


def _nodes(ends, digits: float, which: int) -> tuple:
    zs, ws = [], []
    for a, b in zip(ends[:-1], ends[1:], strict=False):
        z, w = mp_panel(a, b, _order(a, b, digits, which))
        zs += z
        ws += w
    return zs, ws


@lru_cache(maxsize=256)
def _mp_function(body: sp.Expr, variables: tuple):
    """`body` as an mpmath function of `variables` (cached: the same integrand recurs at each
    precision and point)."""
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
        ends = mp_panel_ends(centres, [1 / root] * len(centres), _reach(g, digits))
        sums = []
        for which in (0, 1):
            zs, ws = _nodes(ends, digits, which)
            values = [g(z) for z in zs]
            sums.append((mp.fdot(ws, values), mp.fdot(ws, map(abs, values))))
        return sums[0][0], abs(sums[0][0] - sums[1][0]), sums[0][1]

    return _integrate(rule_of, f"E[{body}] at q = {mp.nstr(q, 8)}")


def _separate(body: sp.Expr, x: sp.Symbol, y: sp.Symbol) -> tuple:
    """body = a(x) · b(x, y) with as much as possible in a (so it is evaluated once per outer node)."""
    a, b = body.as_independent(y, as_Add=False)
    return a, b


def _mehler(a_expr, b_expr, x, y, r1, r2, c):
    """E[a(u) b(v)] by the Mehler expansion (:mod:`derive.gaussian.mehler`) to the working
    precision less 8 digits, or None when the tails of a and b decay too slowly for the terms
    |c| allows (then the caller integrates iteratively).  The projections of a and b are cached
    per variance and precision."""
    target = mp.mp.dps - 8
    tolerance = mp.mpf(10) ** -target
    for digits in (target + 3, target + 9):
        cap = mp_terms_cap(c, digits)
        terms = min(cap, 255)
        while True:
            alpha = _mp_coefficients(a_expr, x, r1, terms, digits, mp.mp.prec)
            beta = _mp_coefficients(b_expr, y, r2, terms, digits, mp.mp.prec)
            scale = mp.sqrt(alpha.total * beta.total)
            found = mp_series(alpha, beta, c, tolerance * scale)
            if found is not None or terms >= cap:
                break
            terms = mp_terms_needed(alpha, beta, c, tolerance * scale, cap)
        if found is None:
            return None
        value, error = found
        if not mp.isfinite(value):
            raise NumericError(f"the Mehler expansion of E[{a_expr}·{b_expr}] gave {value}")
        if error <= tolerance * scale:
            return value
    return None


@lru_cache(maxsize=512)
def _mp_coefficients(expr, var, r, terms: int, digits: int, prec: int) -> MpCoefficients:
    """The Hermite projections of expr(r z) (k <= terms) on panels split at its kinks, two rules
    (4 nodes apart per panel) for the error estimate."""
    f = _mp_function(expr, (var,))
    centres = [mp.mpf(0), *(k / r for k in _numeric_kinks(expr, var))]
    reach = mp.sqrt(4 * math.log(10) * (digits + 1)) + 1
    ends = mp_panel_ends(centres, [1 / r] * len(centres), reach)
    rules = []
    for extra in (4, 0):
        zs, ws = [], []
        for lo, hi in zip(ends[:-1], ends[1:], strict=False):
            nearest = 0.0 if lo < 0 < hi else float(min(abs(lo), abs(hi)))
            needed = digits - nearest**2 / 4 / math.log(10)
            n = max(4, math.ceil(0.45 * needed + 0.35 * math.sqrt(terms) * float(hi - lo)) + 4)
            z, w = mp_panel(lo, hi, n + extra)
            zs += z
            ws += w
        rules.append((zs, ws, [f(r * z) for z in zs]))
    return mp_projections(*rules[0], terms, low=rules[1])


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
    if x not in inner_part.free_symbols:
        inner = PiecewisePolynomial.of(inner_part, y)
        if inner is None and PiecewisePolynomial.of(outer_part, x) is not None:
            return mp_expectation_2d(body, y, x, q2, q1, c)  # the polynomial factor inside
        if inner is not None:
            return _conditional(outer_part, inner, x, r1, r2, c, f"E[{body}] at (q1, q2, c) = ({where})")
        value = _mehler(outer_part, inner_part, x, y, r1, r2, c)
        if value is not None:
            return value
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
        reach = mp.sqrt(2 * math.log(10) * digits) + 1
        outer_ends = mp_panel_ends(outer_centres, outer_scales, reach)
        sums = []
        for which in (0, 1):
            zs, ws = _nodes(outer_ends, digits, which)
            values, absolute = [], []
            for z1 in zs:
                u, mu = r1 * z1, r2 * c * z1
                centres = [-mu / sigma, *((k(u) - mu) / sigma for k in y_kinks)]
                ends = mp_panel_ends(centres, [1 / sigma] * len(centres), reach)
                # inner digits relative to the outer peak: fewer where the outer weight is small
                inner_z, inner_w = _nodes(ends, digits - float(z1) ** 2 / 2 / math.log(10), which)
                g = [b(u, mu + sigma * z2) for z2 in inner_z]
                scale = a(u)
                values.append(scale * mp.fdot(inner_w, g))
                absolute.append(abs(scale) * mp.fdot(inner_w, map(abs, g)))
            sums.append((mp.fdot(ws, values), mp.fdot(ws, absolute)))
        return sums[0][0], abs(sums[0][0] - sums[1][0]), sums[0][1]

    return _integrate(rule_of, f"E[{body}] at (q1, q2, c) = ({where})")


def _conditional(outer_part, inner: PiecewisePolynomial, x, r1, r2, c, check: str):
    """E[a(u) p(v)] for a piecewise polynomial p: the inner expectation (v given z1 is Gaussian,
    mean c√q2 z1, spread √(q2 (1 − c²))) exactly, the outer one by panels split at a's kinks and
    where the inner mean crosses p's kinks."""
    a = _mp_function(outer_part, (x,))
    sigma = r2 * mp.sqrt((1 - c) * (1 + c))
    x_centres = [mp.mpf(0), *(k / r1 for k in _numeric_kinks(outer_part, x))]
    kinks_p = [mp.mpf(sp.Float(left, mp.mp.dps)) for left, _, _ in inner.exact[1:]]
    projected = [k / (r2 * c) for k in kinks_p] if c else []
    centres = x_centres + projected
    scales = [1 / r1] * len(x_centres) + [min(1 / r2, sigma / r2) / abs(c) for _ in projected]
    _check_tails(lambda z: a(r1 * z) * inner.mp_smoothed(r2 * c * z, sigma)[0] * mp.npdf(z))

    def rule_of(digits):
        ends = mp_panel_ends(centres, scales, mp.sqrt(2 * math.log(10) * digits) + 1)
        sums = []
        for which in (0, 1):
            zs, ws = _nodes(ends, digits, which)
            values, absolute = [], []
            for z1 in zs:
                outer = a(r1 * z1)
                value, scale = inner.mp_smoothed(r2 * c * z1, sigma)
                values.append(outer * value)
                absolute.append(abs(outer) * scale)
            sums.append((mp.fdot(ws, values), mp.fdot(ws, absolute)))
        return sums[0][0], abs(sums[0][0] - sums[1][0]), sums[0][1]

    return _integrate(rule_of, check)


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


