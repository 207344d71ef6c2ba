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
(Pennington, Schoenholz & Ganguli 2017, eq. 4).

**Support.**  The density can change between zero and non-zero only where two roots of P(λ, ·)
meet (zeros of the discriminant of P in M), where M has a pole (zeros of its leading coefficient:
atoms at λ ≠ 0) or at λ = 0; between consecutive such points the law is either supported or not,
decided at the midpoint.  Atoms: at λ = a ≠ 0 the mass is lim_{z→a} (z − a) G(z), read off as the
root u ≠ 0 of the lowest-order coefficient of P(a + v, u/v − 1)·v^d in v (exact) nearest the
continued value; at 0 the mass is 1 + M(0 + i0).  Every support is checked a posteriori: the
density integrated over the bands (tanh–sinh quadrature) plus the atoms must give 1 to
``MASS_TOL``, else :class:`~derive.errors.NumericError` — the law is never returned with a density
that does not integrate to its mass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import sympy as sp

from derive.errors import NumericError
from derive.freeprob.relation import G_, M_, Relation, Z

MASS_TOL = 1e-8
_ACCEPT = 0.3
_RELIABLE = 1e-2
_COINCIDE = 1e-6


@dataclass(frozen=True)
class Support:
    """Where a law lives: closed intervals ``bands`` (edges), ``atoms`` as (location, mass) pairs,
    and the a-posteriori check ``mass`` = ∫ρ over the bands + Σ masses (1 up to ``mass_error``)."""

    bands: tuple
    atoms: tuple
    mass: float
    mass_error: float
    method: str = ""

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


def tanh_sinh(f, a: float, b: float, levels: int = 8) -> tuple:
    """(∫_a^b f, error estimate) by the tanh–sinh rule (integrable endpoint singularities
    allowed); the estimate is the change at the last halving of the step.  ``f`` is vectorised.

    Nodes closer to an endpoint than 2^20 ulp are not sampled (the rounding of x would shift them),
    nor those from the first node where f returns nan (f cannot be evaluated reliably there);
    there the rule uses the power law c·t^α through the two innermost sampled nodes.
    """
    r = (b - a) / 2
    previous = value = None
    for k in range(2, levels + 1):
        h = 2.0 ** -k
        t = np.arange(h / 2, 6.5, h)  # symmetric nodes, none at the centre; reach ~1e-300
        s = np.pi / 2 * np.sinh(t)
        with np.errstate(over="ignore"):
            w = h * np.pi / 2 * np.cosh(t) / np.cosh(s) ** 2
            gap = 2 * r / (1 + np.exp(2 * s))  # distance of the node to its endpoint
        value = 0.0
        for end, sign in ((a, 1.0), (b, -1.0)):
            keep = (gap > 2.0**20 * np.finfo(float).eps * abs(end)) & (w > 1e-300)
            fx = f(end + sign * gap[keep])
            unreliable = np.flatnonzero(~np.isfinite(fx))  # f may decline (nan) near an end
            if unreliable.size:
                keep[np.flatnonzero(keep)[unreliable[0]:]] = False
                fx = fx[:unreliable[0]]
            value += r * float(np.sum(w[keep] * fx))
            dropped = ~keep & (w > 1e-300) & (gap > 0)
            value += r * float(np.sum(w[dropped] * _power_law(gap[keep], fx, gap[dropped])))
        if previous is not None and abs(value - previous) <= 1e-14 * max(1.0, abs(value)):
            break
        previous = value
    return value, abs(value - previous)


def _power_law(gap: np.ndarray, fx: np.ndarray, at: np.ndarray) -> np.ndarray:
    """c t^α through the two innermost sampled nodes (t_1 < t_2), evaluated at the points ``at``."""
    if gap.size < 2 or not (fx[-1] > 0 and fx[-2] > 0) or at.size == 0:
        return np.zeros(at.size)
    alpha = np.log(fx[-1] / fx[-2]) / np.log(gap[-1] / gap[-2])
    return fx[-1] * (at / gap[-1]) ** alpha


@dataclass(frozen=True)
class RootTracker:
    """Numeric form of a relation with numeric coefficients: all roots and the physical one."""

    relation: Relation
    radius: float
    moments: tuple
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def _coefficients(self) -> list:
        poly = sp.Poly(sp.expand(self._g_poly), G_)
        out = []
        for c in poly.all_coeffs():
            pz = sp.Poly(c, Z)
            out.append(np.array([complex(sp.N(v, 30)) for v in pz.all_coeffs()]))
        return [c.real if not np.any(c.imag) else c for c in out]

    @cached_property
    def _g_poly(self) -> sp.Expr:
        return self.relation.equation("G")

    @cached_property
    def _newton(self):
        p = self._g_poly
        p = p.xreplace({a: sp.Float(sp.N(a, 30), 30) for a in p.atoms(sp.Function)})
        f = sp.lambdify((Z, G_), p, "numpy")
        df = sp.lambdify((Z, G_), sp.diff(p, G_), "numpy")
        return f, df

    def roots(self, z: np.ndarray) -> np.ndarray:
        """All d roots G of P(z, zG − 1) = 0 at each z, shape (N, d)."""
        coeffs = np.stack([np.polyval(c, z) for c in self._coefficients], axis=-1)  # (N, d+1)
        lead = coeffs[:, :1]
        with np.errstate(all="ignore"):
            monic = coeffs[:, 1:] / lead
        d = monic.shape[1]
        if d == 1:
            return -monic
        companion = np.zeros((z.size, d, d), dtype=complex)
        companion[:, 0, :] = -monic
        companion[:, np.arange(1, d), np.arange(d - 1)] = 1
        bad = ~np.isfinite(monic).all(axis=1)
        companion[bad] = 0
        r = np.linalg.eigvals(companion)
        r[bad] = np.nan
        return r

    def _condition(self, z: np.ndarray, g: np.ndarray) -> np.ndarray:
        """First-order float64 error bound of the root g: eps Σ_k |c_k(z)| |g|^k / |∂_G P|."""
        coeffs = [np.polyval(c, z) for c in self._coefficients]
        d = len(coeffs) - 1
        size = sum(np.abs(c) * np.abs(g) ** (d - k) for k, c in enumerate(coeffs))
        slope = sum((d - k) * c * g ** (d - k - 1) for k, c in enumerate(coeffs[:-1]))
        with np.errstate(all="ignore"):
            return 4 * np.finfo(float).eps * size / np.abs(slope)

    def physical(self, z) -> np.ndarray:
        """G(z) on the physical branch for z with Im z >= 0 (boundary values at Im z = 0).

        Inside the disc of the Puiseux series of :class:`ClusterSeries` (roots clustering at 0)
        that series is used; elsewhere a float64 root whose first-order error bound exceeds
        ``_RELIABLE``·|G| is returned as nan.
        """
        z = np.asarray(z, dtype=complex).ravel()
        g = np.full(z.size, complex(np.nan, np.nan))
        series = self._cluster
        inside = series.covers(z) if series is not None else np.zeros(z.size, dtype=bool)
        if inside.any():  # within its disc the series is accurate to (1/2)^TERMS: no continuation
            g[inside] = series(z[inside])
        rest = np.flatnonzero(~inside)
        if rest.size:
            gr, ok = self._continue(z[rest], self.roots)
            gr = np.where(ok, self._polish(z[rest], gr), gr)
            with np.errstate(all="ignore"):
                ok &= self._condition(z[rest], gr) <= _RELIABLE * np.abs(gr)
            g[rest[ok]] = gr[ok]
        return g

    @cached_property
    def _cluster(self):
        return ClusterSeries.build(self)

    def _continue(self, z: np.ndarray, roots_of) -> tuple:
        """Vertical continuation (see the module docstring) with the root finder ``roots_of``;
        returns (G, whether each point was followed to its end)."""
        target = z.imag.copy()
        x = z.real
        top = 8 * max(self.radius, 1e-300) + 4 * np.abs(x).max(initial=0.0)
        height = np.full(z.size, top)
        zg = x + 1j * height
        g = self._start(zg, roots_of)
        ratio = np.full(z.size, 0.05)
        floor = np.full(z.size, 1e-13 * top)
        followed = np.ones(z.size, dtype=bool)
        active = height > target
        for _ in range(400):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            proposal = np.maximum(height[idx] * ratio[idx], target[idx])
            jump = proposal < floor[idx]
            proposal = np.where(jump, target[idx], proposal)
            zi = x[idx] + 1j * proposal
            choice, ok = _match(roots_of(zi), self._scaled(zg[idx]) * g[idx], zi, self._scaled(zi))
            accept = idx[ok]
            g[accept], zg[accept] = choice[ok], zi[ok]
            height[accept] = proposal[ok]
            ratio[accept] = np.maximum(ratio[accept] ** 2, 1e-3)
            # a refused jump to the target lowers that point's floor; a refused step is shortened
            floor[idx[~ok & jump]] *= 1e-4
            shorten = idx[~ok & ~jump]
            ratio[shorten] = np.sqrt(ratio[shorten])
            followed[idx[~ok & ((ratio[idx] > 0.999) | (floor[idx] < 1e-60 * top))]] = False
            active = (height > target) & followed
        return g, followed & (height <= target)

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
        lead = self._coefficients[0]
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
        f, df = self._newton
        with np.errstate(all="ignore"):
            for _ in range(3):
                step = f(z, g) / df(z, g)
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
    def build(cls, tracker: RootTracker):
        rel = tracker.relation
        if not rel.is_explicit_inverse:
            return None
        num, den = sp.fraction(sp.cancel(rel.inverse))
        num = sp.Poly(num, M_)
        for factor, order in num.sqf_list()[1]:
            if factor.degree() != 1 or order < 2:
                continue
            m0 = sp.solve(factor.as_expr(), M_)[0]
            series = cls._series(num.as_expr(), den, m0, order)
            if series is not None:
                chosen = cls._orient(tracker, complex(sp.N(m0, 30)), order, *series)
                if chosen is not None:
                    return chosen
        return None

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

    @classmethod
    def _orient(cls, tracker, m0, order, h0, b):
        tail = [abs(c) ** (-1 / j) for j, c in enumerate(b) if j >= cls.TERMS // 2 and abs(c) > 0]
        radius = min(tail) if tail else np.inf
        for scale in 10.0 ** np.arange(-8, 0):  # a reference point inside the disc where float64 is good
            zr = np.array([1j * scale * tracker.radius])
            if abs((zr[0] / h0) ** (1 / order)) > radius / 2:
                break
            g, ok = tracker._continue(zr, tracker.roots)
            if not ok[0] or tracker._condition(zr, g)[0] > 1e-8 * abs(g[0]):
                continue
            for k in range(order):  # the L choices differ by O(|t|): far more than 1e-6
                candidate = cls(m0, order, h0, b, np.exp(2j * np.pi * k / order), radius)
                if abs(candidate(zr)[0] - g[0]) <= 1e-6 * abs(g[0]):
                    return candidate
        return None

    def covers(self, z: np.ndarray) -> np.ndarray:
        return np.abs(z / self.h0) ** (1 / self.order) <= self.radius / 2

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
    """Coefficients of the compositional inverse of f = Σ f_j u^j (f_0 = 0, f_1 != 0)."""
    n = f.size
    g = np.zeros(n, dtype=complex)
    g[1] = 1 / f[1]
    for k in range(2, n):
        total, power = np.zeros(n, dtype=complex), np.zeros(n, dtype=complex)
        power[0] = 1
        for j in range(1, k + 1):
            power = np.convolve(power, g)[:n]
            total += f[j] * power
        g[k] = -total[k] / f[1]
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


def algebraic_support(relation: Relation, tracker: RootTracker, density) -> Support:
    """Bands and atoms of an algebraic law with numeric coefficients (see the module docstring)."""
    exact = _rational(relation.poly)
    poly_m = sp.Poly(exact, M_)
    lead = poly_m.all_coeffs()[0]
    disc = sp.discriminant(poly_m) if poly_m.degree() > 1 else sp.Integer(1)
    poles = sorted({a for a in sp.Poly(lead, Z).real_roots() if a != 0}, key=float) \
        if sp.Poly(lead, Z).degree() > 0 else []
    # spurious far zeros (of the 40-digit rational form) are dropped: the support lies well within
    # 100 times the moment radius max_k |m_k|^{1/k}
    reach = 100 * tracker.radius
    candidates = sorted({c for c in _real_roots(disc) + [float(a) for a in poles] + [0.0] if abs(c) <= reach})
    scale = max(tracker.radius, max((abs(c) for c in candidates), default=0.0), 1e-300)
    atoms = _atoms(exact, tracker, poles, scale, relation.poly.subs(Z, 0))
    atom_points = {a for a, _ in atoms}
    bands, pieces = [], []
    for lo, hi in zip(candidates[:-1], candidates[1:], strict=True):
        mid = np.array([(lo + hi) / 2])
        if density(mid)[0] > 1e-12 / scale:
            pieces.append((lo, hi))
            if bands and bands[-1][1] == lo and lo not in atom_points:
                bands[-1] = (bands[-1][0], hi)
            else:
                bands.append((lo, hi))
    total, error = sum(m for _, m in atoms), 0.0
    for lo, hi in pieces:  # integrated between candidates: no node at 0 or an interior edge
        value, err = tanh_sinh(density, lo, hi)
        total, error = total + value, error + err
    if not abs(total - 1) <= MASS_TOL + error:
        raise NumericError(f"the density found integrates with its atoms to {total:.15g}, not 1: "
                           "cannot decide the support of this law reliably")
    return Support(tuple(bands), tuple(atoms), total, max(error, abs(total - 1)),
                   "edges: real zeros of the discriminant of P(z, M) in M; tanh-sinh mass check")


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


def _atoms(exact: sp.Expr, tracker: RootTracker, poles: list, scale: float, at_zero: sp.Expr) -> list:
    """Atoms at 0 (mass 1 + M(0 + i0), M(0) an exact root of ``at_zero`` = P(0, ·)) and at the poles a != 0
    (mass u/a for the roots u of the lowest-order coefficient of P(a + v, u/v)·v^d), each exact
    candidate accepted only when it agrees with the continued value within its tolerance."""
    atoms = []
    estimate, tol = _residue(tracker, 0.0, scale)
    roots0 = [1 + r.real for r in _exact_roots(at_zero)]
    close = [m for m in roots0 if abs(m - estimate) < tol]
    if close and min(close, key=lambda m: abs(m - estimate)) > 1e-13:
        atoms.append((0.0, float(min(close, key=lambda m: abs(m - estimate)))))
    v, u = sp.symbols("v u")
    d = sp.Poly(exact, M_).degree()
    for exact_a in poles:
        a = float(exact_a)
        estimate, tol = _residue(tracker, a, scale)
        expr = sp.Poly(sp.expand(exact.subs({Z: exact_a + v, M_: u / v}) * v**d), v)
        low = min(m[0] for m in expr.monoms())
        candidates = [complex(r).real / a for r in _nroots(sp.Poly(expr.coeff_monomial(v**low), u))
                      if abs(complex(r)) > 0]
        # no pole of G (only a divergence like an inverse square root) leaves no candidate
        close = [c for c in candidates if abs(c - estimate) < tol]
        if close and min(close, key=lambda c: abs(c - estimate)) > 1e-13:
            atoms.append((a, float(min(close, key=lambda c: abs(c - estimate)))))
    return sorted(atoms)
