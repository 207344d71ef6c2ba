r"""Stieltjes inversion of algebraic laws: the physical root of P(z, M) = 0, density, support, atoms.

**Root choice.**  For z in the upper half plane C⁺ the physical M(z) = zG(z) − 1 is analytic and,
for an irreducible P, a simple root of P(z, ·) (a multiple root on the physical sheet would be a
branch point, contradicting analyticity in C⁺).  At height y ≫ the support radius it is the unique
root near m_1/z (|M − m_1/z| = O(|z|⁻²), the others stay O(1) or grow).  From there it is followed
down the vertical line Re z + iy, y ↓ Im z (or ↓ 0 for the boundary value on the real axis),
in the variable G (the equation P(z, zG − 1) = 0; M-form and G-form roots correspond one to one
for z != 0, and G stays well conditioned at z = 0, where M = −1 may be a double root): all d roots are computed at every level (companion eigenvalues), and the step is accepted only
when the root nearest the previous value is closer than 0.3 times the second nearest — else the
step is refined (a root that cannot be separated from another by 1e-6 (relative) is a double root there and
the one with the smaller Im G is kept, and either is the same to that accuracy).  At the end the root is polished by Newton's method on
the unexpanded P.  Boundary value: ρ(λ) = −Im G(λ + i0)/π
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
from derive.freeprob.relation import G_, M_, Z, Relation

MASS_TOL = 1e-9
_ACCEPT = 0.3
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

    Nodes closer to an endpoint than 2^20 ulp are not sampled (the rounding of x would shift them);
    there the rule uses the power law c·t^α through the two innermost sampled nodes.
    """
    r = (b - a) / 2
    previous = value = None
    for k in range(2, levels + 1):
        h = 2.0 ** -k
        t = np.arange(h / 2, 4.0, h)  # symmetric nodes, none at the centre
        s = np.pi / 2 * np.sinh(t)
        with np.errstate(over="ignore"):
            w = h * np.pi / 2 * np.cosh(t) / np.cosh(s) ** 2
            gap = 2 * r / (1 + np.exp(2 * s))  # distance of the node to its endpoint
        value = 0.0
        for end, sign in ((a, 1.0), (b, -1.0)):
            keep = (gap > 2.0**20 * np.finfo(float).eps * abs(end)) & (w > 1e-300)
            fx = f(end + sign * gap[keep])
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

    def physical(self, z) -> np.ndarray:
        """G(z) on the physical branch for z with Im z >= 0 (boundary values at Im z = 0)."""
        z = np.asarray(z, dtype=complex).ravel()
        target = z.imag.copy()
        x = z.real
        top = 8 * max(self.radius, 1e-300) + 4 * np.abs(x).max(initial=0.0)
        height = np.full(z.size, top)
        zg = x + 1j * height
        g = self._start(zg)
        ratio = np.full(z.size, 0.05)
        floor = np.full(z.size, 1e-13 * top)
        active = height > target
        for _ in range(400):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            proposal = np.maximum(height[idx] * ratio[idx], target[idx])
            jump = proposal < floor[idx]
            proposal = np.where(jump, target[idx], proposal)
            roots = self.roots(x[idx] + 1j * proposal)
            zi = x[idx] + 1j * proposal
            choice, ok = _match(roots, self._scaled(zg[idx]) * g[idx], zi, self._scaled(zi))
            accept = idx[ok]
            g[accept], zg[accept] = choice[ok], zi[ok]
            height[accept] = proposal[ok]
            ratio[accept] = np.maximum(ratio[accept] ** 2, 1e-3)
            # a refused jump to the target lowers that point's floor; a refused step is shortened
            floor[idx[~ok & jump]] *= 1e-4
            shorten = idx[~ok & ~jump]
            ratio[shorten] = np.sqrt(ratio[shorten])
            stuck = idx[~ok & ((ratio[idx] > 0.999) | (floor[idx] < 1e-60 * top))]
            if stuck.size:
                raise NumericError(f"cannot follow the physical root of the spectral equation to "
                                   f"z = {z[stuck[0]]:.6g}: two roots cannot be separated there")
            active = height > target
        return self._polish(z, g)

    def _start(self, z: np.ndarray) -> np.ndarray:
        roots = self.roots(z)
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
        real = roots[np.abs(roots.imag) <= 1e-6 * (1 + np.abs(roots))].real  # multiple zeros split
        return np.unique(np.round(np.concatenate([real, [0.0]]), 6))

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
    candidates = sorted(set(_real_roots(disc) + [float(a) for a in poles] + [0.0]))
    scale = max(tracker.radius, max((abs(c) for c in candidates), default=0.0), 1e-300)
    atoms = _atoms(exact, tracker, poles, scale)
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
    """(estimate of lim_{y→0} iy·G(a + iy), its tolerance) from the smallest height that the
    continuation reaches (the expanded coefficients lose precision near multiple poles)."""
    for y in (1e-9, 1e-7, 1e-5, 1e-3):
        try:
            value = (1j * y * scale * tracker.physical(np.array([a + 1j * y * scale]))[0]).real
        except NumericError:
            continue
        return value, 1e-3 + 10 * np.sqrt(y)
    raise NumericError(f"cannot continue the Stieltjes transform to the possible atom at {a:.6g}")


def _atoms(exact: sp.Expr, tracker: RootTracker, poles: list, scale: float) -> list:
    """Atoms at 0 (mass 1 + M(0 + i0), M(0) an exact root of P(0, ·)) and at the poles a != 0
    (mass u/a for the roots u of the lowest-order coefficient of P(a + v, u/v)·v^d), each exact
    candidate accepted only when it agrees with the continued value within its tolerance."""
    atoms = []
    estimate, tol = _residue(tracker, 0.0, scale)
    roots0 = [1 + complex(r).real for r in _nroots(sp.Poly(exact.subs(Z, 0), M_))] if exact.has(M_) else []
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
