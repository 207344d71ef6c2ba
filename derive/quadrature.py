"""Gaussian expectations by numerical quadrature.

:func:`mp_expectation` is the high-precision reference: mpmath tanh-sinh
quadrature in the standard-normal variables, split at the kinks of the
integrand and at the scale of its variance, at any number of digits.

>>> import sympy as sp
>>> from derive.symbols import x, y
>>> float(mp_expectation(sp.Max(0, x)**2, (x,), (2,), dps=30))
1.0
>>> round(float(mp_expectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (1, 1, 0), dps=30)), 12)
0.25
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp

from derive.errors import DivergenceError, DomainError, NumericError
from derive.kinks import kinks

_MP_MODULES = [{"Heaviside": lambda t, h0=0.5: mp.mpf(0) if t < 0 else (mp.mpf(1) if t > 0 else h0),
                "sign": mp.sign, "Max": max, "Min": min}, "mpmath"]


def _mp_function(body: sp.Expr, variables: tuple):
    if body.has(sp.DiracDelta):
        raise NumericError(f"cannot integrate a Dirac delta numerically in {body}; "
                           "reduce it first with derive.expect")
    return sp.lambdify(variables, body, modules=_MP_MODULES)


def _breakpoints(points, scale) -> list:
    """Sorted finite breakpoints in z: the kinks, 0, and ±k/scale so that
    a steep region of width ~1/scale is resolved."""
    pts = {mp.mpf(0)}
    pts.update(mp.mpf(p) for p in points)
    if scale > 4:
        pts.update(k / scale * sign for k in (1, 4) for sign in (1, -1))
    return sorted(p for p in pts if abs(p) < 40)


def _quad(g, points) -> mp.mpf:
    value, err = mp.quad(g, [-mp.inf, *points, mp.inf], error=True, maxdegree=10)
    if not mp.isfinite(value) or err > mp.mpf(10) ** (-mp.mp.dps // 2) * max(1, abs(value)):
        raise NumericError(f"quadrature did not converge (estimate {value}, error {err})")
    return value


def _check_tails(g):
    """Divergent Gaussian integrals show up as integrands that do not decay."""
    for z in (-30, 30):
        if not abs(g(mp.mpf(z))) < mp.mpf(10) ** -20:
            raise DivergenceError("the Gaussian expectation diverges: the integrand does not "
                                  "decay in the tails (it grows at least as fast as the density falls)")


def _numeric_kinks(body, var) -> list:
    return [mp.mpf(sp.Float(k, mp.mp.dps)) for k in kinks(body, var) if k.is_number]


def mp_expectation_1d(body: sp.Expr, x: sp.Symbol, q) -> mp.mpf:
    """∫Dz body(√q z) at the current mpmath precision."""
    q = mp.mpf(q)
    f = _mp_function(body, (x,))
    if q == 0:
        return mp.mpf(f(mp.mpf(0)))
    s = mp.sqrt(q)
    g = lambda z: f(s * z) * mp.npdf(z)  # noqa: E731
    _check_tails(g)
    return _quad(g, _breakpoints([k / s for k in _numeric_kinks(body, x)], s))


def mp_expectation_2d(body: sp.Expr, x: sp.Symbol, y: sp.Symbol, q1, q2, c) -> mp.mpf:
    """∫Dz₁Dz₂ body(u₁, u₂) at the current mpmath precision, as an iterated integral
    of y | x ~ N(c √(q2/q1) x, q2 (1 − c²)) inside x ~ N(0, q1)."""
    q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
    if abs(c) == 1 or q1 == 0 or q2 == 0:
        ratio = mp.sqrt(q2 / q1) * c if q1 else 0
        return mp_expectation_1d(body.xreplace({y: ratio * x}), x, q1)
    s1, s2, r = mp.sqrt(q1), mp.sqrt(q2), mp.sqrt(1 - c * c)
    f = _mp_function(body, (x, y))
    y_kinks = kinks(body, y)
    x_kinks = _numeric_kinks(body, x)

    def inner(z1):
        u1 = s1 * z1
        pts = [(mp.mpf(sp.Float(k.xreplace({x: sp.Float(u1, mp.mp.dps)}), mp.mp.dps)) / s2 - c * z1) / r
               for k in y_kinks if not (k.free_symbols - {x})]
        return _quad(lambda z2: f(u1, s2 * (c * z1 + r * z2)) * mp.npdf(z2),
                     _breakpoints(pts, s2 * r)) * mp.npdf(z1)

    _check_tails(lambda z: f(s1 * z, s2 * c * z) * mp.npdf(z))
    outer = [k / s1 for k in x_kinks]
    outer += [mp.mpf(sp.Float(k, mp.mp.dps)) / (s2 * c) for k in y_kinks if k.is_number and c]
    return _quad(inner, _breakpoints(outer, s1))


def mp_expectation(body: sp.Expr, variables: tuple, parameters: tuple, dps: int = 30) -> mp.mpf:
    """E[body] over the centred Gaussian of `variables` with `parameters`
    ((q,) or (q1, q2, c)) to `dps` significant digits."""
    with mp.workdps(dps + 10):
        values = [mp.mpf(sp.Float(p, dps + 10)) for p in parameters]
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
