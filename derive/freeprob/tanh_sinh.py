r"""The tanh–sinh rule (Takahasi & Mori 1974), definite and indefinite, for densities with
integrable divergences at the ends of their interval.

:func:`tanh_sinh` gives ∫_a^b f and an error estimate; :class:`IndefiniteTanhSinh` also ∫_a^x f
at many x from the same samples, by integrating a local interpolant over each cell of the
double-exponential grid.  The mass checks of the free-probability laws integrate with it and
keep the rules, whose samples their CDF (:func:`derive.freeprob.sampling.cdf`) reuses.

>>> value, error = tanh_sinh(lambda t: 1 / np.sqrt(t), 0.0, 1.0)  # ∫_0^1 t^(-1/2) dt = 2
>>> abs(value - 2) < 1e-13
True
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from derive.errors import NumericError


def tanh_sinh(f, a: float, b: float, tol: float = 1e-14) -> tuple:
    """(∫_a^b f, error estimate) by the tanh–sinh rule (integrable endpoint singularities
    allowed); the estimate is the change at the last halving of the step h = 2^-k, k = 2..8,
    which stops once it is below ``tol`` relative.  ``f`` is vectorised; the nodes are nested
    (each halving evaluates f at the new nodes only).  Nodes closer to an endpoint than 2^20 ulp
    are not sampled (the rounding of x would shift them), nor those from the first node where f
    returns nan (f cannot be evaluated reliably there); there the rule uses the power law c·t^α
    through the two innermost sampled nodes.  The rule of :class:`IndefiniteTanhSinh`.
    """
    return IndefiniteTanhSinh(f, a, b).total(tol)


def _power_law(gap: np.ndarray, fx: np.ndarray, at: np.ndarray) -> np.ndarray:
    """c t^α through the two innermost sampled nodes (t_1 < t_2), evaluated at the points ``at``."""
    if gap.size < 2 or not (fx[-1] > 0 and fx[-2] > 0) or at.size == 0:
        return np.zeros(at.size)
    alpha = np.log(fx[-1] / fx[-2]) / np.log(gap[-1] / gap[-2])
    return fx[-1] * (at / gap[-1]) ** alpha


class IndefiniteTanhSinh:
    r"""∫_a^x ρ for x in [a, b], and ∫_a^b ρ, for a density ρ integrable on [a, b] and analytic
    inside (endpoint divergences t^{−α}, α < 1, allowed), by the tanh–sinh rule (Takahasi & Mori
    1974): in t(s) = a + (b − a)(1 + tanh(π/2 sinh s))/2 the integrand g(s) = ρ(t(s)) t′(s) is
    smooth and decays double-exponentially, sampled at s = jh, |s| <= 6.5, h = 2^-k, k = 2..8,
    nested (a finer level evaluates ρ at its new nodes only, in one call; the samples are kept for
    later calls); no node within 2^20 ulp of an end (the rounding of t would shift it) nor from
    the first nan on (ρ cannot be evaluated reliably there): there g is the power law through the
    two innermost sampled nodes.

    * :meth:`total`: h Σ g, the tanh–sinh rule, until two levels agree to ``tol`` relative.
    * :meth:`integral`: ∫_{−∞}^{σ(x)} g as the sum over whole cells plus a part of one, each the
      exact integral of the interpolant through the 2·_HALF nodes around the cell (degree 11:
      the error falls like h^12 once g is resolved: ~200 nodes for 1e-12 where the cumulative
      trapezoid rule, O(h²), needed 4000 for 1e-7), until two levels agree to ``tol`` at every
      x (the finer is returned), else :class:`~derive.errors.NumericError`.

    >>> rule = IndefiniteTanhSinh(lambda t: 1 / np.sqrt(t), 0.0, 4.0)  # ∫_0^x = 2√x
    >>> bool(np.all(np.abs(rule.integral(np.array([-1.0, 1.0, 4.0]), 1e-12) - [0, 2, 4]) < 1e-13))
    True
    """

    REACH, FIRST, LAST = 6.5, 2, 8  # t up to 6.5: the nodes reach ~1e-300 of the ends

    def __init__(self, f, a: float, b: float, prefetch: int = FIRST):
        """``prefetch``: the level whose nodes the first call evaluates (all of them at once)."""
        self.f, self.a, self.b, self.prefetch = f, a, b, prefetch
        finest = 2**self.LAST
        count = int(self.REACH * finest)
        t = np.arange(1, count + 1) / finest
        inner = np.pi / 2 * np.sinh(t)
        with np.errstate(over="ignore"):
            self._weight = (b - a) / 2 * np.pi / 2 * np.cosh(t) / np.cosh(inner) ** 2
            self._gap = (b - a) / (1 + np.exp(2 * inner))  # distance of the node to its end
        self._values = np.full((2, count), np.nan)  # ρ at a + gap, b − gap
        self._done = np.zeros((2, count), dtype=bool)
        self._centre = None

    def total(self, tol: float) -> tuple:
        """(∫_a^b ρ, the change at the last halving of h) as :func:`tanh_sinh`."""
        previous, change = None, np.inf
        for k in range(self.FIRST, self.LAST + 1):
            value = 2.0**-k * float(np.sum(self._samples(k)))
            if previous is not None:
                change = abs(value - previous)
                if change <= tol * max(1.0, abs(value)):
                    break
            previous = value
        return value, change

    def integral(self, x: np.ndarray, tol: float) -> np.ndarray:
        """∫_a^{min(x, b)} ρ (0 for x <= a) at each x, to ``tol`` (see the class docstring)."""
        x = np.asarray(x, dtype=float)
        out = np.zeros_like(x)
        inside = (x > self.a) & (x < self.b)
        with np.errstate(divide="ignore"):
            sigma = np.arcsinh(np.log((x[inside] - self.a) / (self.b - x[inside])) / np.pi)
        previous = _indefinite(self._samples(self.FIRST), 2.0**-self.FIRST, self.REACH, sigma)
        for k in range(self.FIRST + 1, self.LAST + 1):
            value = _indefinite(self._samples(k), 2.0**-k, self.REACH, sigma)
            change = np.max(np.abs(value - previous), initial=0.0)
            if change <= tol:
                break
            previous = value
        else:
            raise NumericError(f"the indefinite tanh-sinh rule on [{self.a:.12g}, {self.b:.12g}] changes by "
                               f"{change:.2g} at h = 1/256, more than tol = {tol:g}: the density is not "
                               "resolved there")
        out[inside] = value[:-1]
        out[x >= self.b] = value[-1]
        return out

    def _samples(self, k: int) -> np.ndarray:
        """g at s = jh, h = 2^-k, |s| <= REACH, ascending in s (ρ evaluated at the missing nodes
        of level max(k, prefetch))."""
        self._evaluate(max(k, self.prefetch))
        idx = self._level(k)
        weight, gap = self._weight[idx], self._gap[idx]
        sides = []
        for e in (0, 1):
            kept = self._kept(e, idx)
            fx = self._values[e, idx[kept]]
            unreliable = np.flatnonzero(~np.isfinite(fx))  # f may decline (nan) near an end
            if unreliable.size:
                kept[np.flatnonzero(kept)[unreliable[0]:]] = False
                fx = fx[:unreliable[0]]
            g = np.zeros(idx.size)
            g[kept] = weight[kept] * fx
            dropped = ~kept & (weight > 1e-300) & (gap > 0)
            g[dropped] = weight[dropped] * _power_law(gap[kept], fx, gap[dropped])
            sides.append(g)
        return np.concatenate([sides[0][::-1], [self._centre], sides[1]])

    def _level(self, k: int) -> np.ndarray:
        """Indices (into the finest level's nodes) of the nodes s = jh, j >= 1, of level k."""
        return np.arange(2 ** (self.LAST - k), self._values.shape[1] + 1, 2 ** (self.LAST - k)) - 1

    def _kept(self, e: int, idx: np.ndarray) -> np.ndarray:
        """Which nodes `idx` next to end `e` are sampled: not within 2^20 ulp of the end (the node
        would round) and of non-negligible weight."""
        end = (self.a, self.b)[e]
        return (self._gap[idx] > 2.0**20 * np.finfo(float).eps * abs(end)) & (self._weight[idx] > 1e-300)

    def _evaluate(self, k: int) -> None:
        """ρ at the nodes of level k not evaluated yet, in one call."""
        idx = self._level(k)
        new = [idx[self._kept(e, idx) & ~self._done[e, idx]] for e in (0, 1)]
        points = [self.a + self._gap[new[0]], self.b - self._gap[new[1]]]
        if self._centre is None:
            points.append(np.array([(self.a + self.b) / 2]))
        if sum(p.size for p in points):
            values = self.f(np.concatenate(points))
            split = new[0].size + new[1].size
            self._values[0, new[0]], self._values[1, new[1]] = np.split(values[:split], [new[0].size])
            self._done[0, new[0]] = self._done[1, new[1]] = True
            if self._centre is None:
                self._centre = float(values[-1]) * (self.b - self.a) / 2 * np.pi / 2


#: the interpolant of the indefinite rule has degree 2·_HALF − 1 (nodes _HALF on either side of a cell)
_HALF = 6


def _indefinite(g: np.ndarray, h: float, reach: float, sigma: np.ndarray) -> np.ndarray:
    """∫_{−∞}^{σ} g for g sampled at s = −reach, −reach + h, ..., reach (see
    :class:`IndefiniteTanhSinh`) at each σ, and the whole integral last."""
    p = _HALF
    padded = np.concatenate([np.zeros(p), g, np.zeros(p)])  # g ~ 0 beyond the grid
    cells = h * np.correlate(padded, _cell_weights(np.ones(1))[0], "valid")[1:g.size]  # cell k: s_k..s_k+1
    nodes = np.concatenate([[0.0], np.cumsum(cells)])
    u = np.clip((sigma + reach) / h, 0, g.size - 1)
    k = np.minimum(np.floor(u).astype(int), g.size - 2)
    near = padded[k[:, None] + 1 + np.arange(2 * p)]
    part = h * np.sum(_cell_weights(u - k) * near, axis=1)
    return np.concatenate([nodes[k] + part, [nodes[-1]]])


def _cell_weights(theta: np.ndarray) -> np.ndarray:
    """w_i(θ) = ∫_0^θ ℓ_i for the Lagrange basis ℓ_i on the nodes 1 − p, ..., p (p = _HALF), shape
    (len(θ), 2p): the integral over [0, θ] of a cell [0, 1] of the interpolant through its nodes."""
    rule = _integrated_basis()
    centred = theta[:, None] - 0.5
    value, start = np.zeros((theta.size, rule.shape[0])), np.zeros(rule.shape[0])
    for column in rule.T:  # Horner in τ − 1/2 (|τ − 1/2| <= 1/2: no cancellation)
        value = value * centred + column
        start = start * -0.5 + column
    return value - start


@lru_cache(maxsize=1)
def _integrated_basis() -> np.ndarray:
    """Row i: the coefficients (highest first) of an antiderivative of ℓ_i in τ − 1/2; the
    products of the half-integer nodes are exact in float64."""
    nodes = np.arange(1 - _HALF, _HALF + 1) - 0.5
    rows = [np.polyint(np.poly(np.delete(nodes, i))) / np.prod(n - np.delete(nodes, i))
            for i, n in enumerate(nodes)]
    out = np.array(rows)
    out.flags.writeable = False
    return out
