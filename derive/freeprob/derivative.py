r"""The law of D² = φ′(h)², h ~ N(0, q): the diagonal of the Jacobian D_l of one layer.

Where φ′² takes finitely many values (piecewise-linear φ) the law is atomic and exact:
P(D² = v) = Σ over the intervals between kinks where φ′² = v of
(erf(b/√(2q)) − erf(a/√(2q)))/2 — ReLU TwoPoint(1/2, 1, 0), hard-tanh mass erf(1/√(2q)) at 1
(Pennington, Schoenholz & Ganguli 2017, sec. 3.2).  Otherwise it is described by its moments
μ_k = E φ′(h)^{2k} (exact Gaussian expectations) and its Stieltjes transform
G(z) = E[1/(z − φ′(h)²)], computed by composite Gauss–Legendre quadrature in the standard normal
variable on |u| <= 10.5 (the mass beyond is < 1e-25), panels doubled until two successive rules
agree to ``RTOL`` (else :class:`~derive.errors.NumericError`); for smooth φ on a contour
u + iβ(u) bent away from the poles of the integrand, so that the boundary values G(x + i0) on the
support are reached as well (:attr:`DerivativeLaw._contour`).  Its density is the change of
variables ρ(t) = Σ_{φ′(h)² = t} N(h; 0, q)/|d(φ′²)/dh|, over the roots found on a grid of 20 000
points and refined by bisection.

>>> import derive
>>> derive.derivative_law("relu", 1)
1/2·δ(0) + 1/2·δ(1)
>>> derive.derivative_law("hard_tanh", "1/2").points[1][1]
erf(1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.activations import activation as make_activation
from derive.errors import DomainError, NumericError
from derive.freeprob.engine import derivative_moment
from derive.freeprob.inversion import Support
from derive.freeprob.laws import Atomic, SpectralLaw, exact
from derive.freeprob.relation import W, Z
from derive.freeprob.tanh_sinh import IndefiniteTanhSinh
from derive.symbols import x as X

RTOL = 1e-13
_REACH = 10.5
_GL = np.polynomial.legendre.leggauss(16)
_TAPER = _REACH / np.log(1e4) ** (1 / 16)


def _taper(u, derivative: bool = False):
    """exp(−(u/u₀)^16), 1e-4 at |u| = 10.5 and > 0.97 for |u| < 7.5 (or its derivative)."""
    r = (u / _TAPER) ** 16
    return np.exp(-r) * (-16 * r / u if derivative else 1)


def derivative_law(activation, q) -> SpectralLaw:
    """The law of φ′(h)², h ~ N(0, q): atomic (exact) or :class:`DerivativeLaw` (numeric)."""
    act = make_activation(activation)
    q = exact(q, "q", positive=True)
    points = _atomic_points(act, q)
    return DerivativeLaw(act, q) if points is None else Atomic(points)


@lru_cache(maxsize=256)
def _atomic_points(act: Activation, q: sp.Expr):
    """((value, probability), ...) of φ′(h)² when φ′² is piecewise constant, else None (exact;
    derived once per activation and q)."""
    d2 = act.derivative(X) ** 2
    if d2.has(sp.DiracDelta):
        raise DomainError(f"φ′ of {act.name} contains a Dirac delta: D² = φ′(h)² is not a law; "
                          "use an activation that is continuous")
    values = _piecewise_constant(d2, act.kinks)
    if values is None:
        return None
    ends = [-sp.oo, *act.kinks, sp.oo]
    cdf = [sp.erf(e / sp.sqrt(2 * q)) / 2 if e.is_finite else sp.sign(e) / 2 for e in map(sp.sympify, ends)]
    points: dict = {}
    for value, lo, hi in zip(values, cdf[:-1], cdf[1:], strict=True):
        points[value] = sp.simplify(points.get(value, 0) + hi - lo)
    return tuple(points.items())


def _piecewise_constant(d2: sp.Expr, kinks: tuple):
    """The value of φ′² on each interval between kinks if it is constant on every one, else None
    (checked at five rational points of each interval)."""
    ends = [sp.sympify(k) for k in kinks]
    values = []
    for i in range(len(ends) + 1):
        lo = ends[i - 1] if i > 0 else (ends[0] - 8 if ends else sp.Integer(-8))
        hi = ends[i] if i < len(ends) else (ends[-1] + 8 if ends else sp.Integer(8))
        samples = {sp.nsimplify(d2.subs(X, lo + (hi - lo) * sp.Rational(j, 7))) for j in (1, 2, 3, 5, 6)}
        if len(samples) != 1:
            return None
        values.append(samples.pop())
    return values


@dataclass(frozen=True, repr=False)
class DerivativeLaw(SpectralLaw):
    """The law of φ′(h)², h ~ N(0, q), for φ′² not piecewise constant (numeric Stieltjes)."""

    act: Activation
    q: sp.Expr
    relation = None

    @property
    def name(self) -> str:
        return f"D²({self.act.name}, q={self.q})"

    def _tex(self, printer) -> str:
        d2, q = printer._print(self.act.derivative(X) ** 2), printer._print(self.q)
        return rf"\mathcal{{L}}\left({d2},\ x \sim \mathcal{{N}}(0, {q})\right)"

    def _moment_list(self, k: int) -> list:
        return [derivative_moment(self.act, self.q, j) for j in range(1, k + 1)]

    def _numeric_transform(self, name: str):
        from derive.gaussian import GaussianExpectation

        d2 = self.act.derivative(X) ** 2
        if name == "G":
            return GaussianExpectation(1 / (Z - d2), (X,), (self.q,))
        if name == "M":
            return GaussianExpectation(d2 / (Z - d2), (X,), (self.q,))
        if name == "S":
            return sp.Function(r"S_{D^2}")(W)
        raise NumericError(f"{name} of {self.name} has no closed form: use .stieltjes or .moments")

    @cached_property
    def _d_functions(self):
        d2 = self.act.derivative(X) ** 2
        from derive.numeric import lambdify

        return lambdify(d2, [X]), lambdify(sp.diff(d2, X).subs(sp.DiracDelta(X), 0), [X])

    def _nodes(self, level: int, graded: bool) -> tuple:
        """(d values, weights, their products) of the composite rule of :meth:`_rule`, on the deformed
        contour u + iβ(u) when there is one (:attr:`_contour`)."""
        cache = self.__dict__.setdefault("_node_cache", {})
        if (level, graded) not in cache:
            d, w = self._rule(level, self._contour, graded)
            cache[level, graded] = (d, w, d * w)
        return cache[level, graded]

    def _rule(self, level: int, contour, graded: bool = False) -> tuple:
        """16 Gauss–Legendre points on each of 2^level equal parts of the base panels: 8 equal panels
        of |u| <= 10.5, split at the kinks and, if `graded`, graded geometrically (ratio 2, 30 panels
        on either side, from a width of 21/16) towards the critical points u_c of d: G_{D²} is
        singular at χ = d(u_c) (the density of D² diverges like an inverse square root there), and
        for χ next to it the poles of the integrand lie at a distance ~|u − u_c| from the path.
        Every panel is split at every level, so that two successive levels never share the panel
        that holds a nearly singular point (they would agree there and stop the refinement early)."""
        base = np.linspace(-_REACH, _REACH, 9)
        kinks = [float(k) / np.sqrt(float(self.q)) for k in self.act.kinks]
        widths = _REACH / 8 * 2.0 ** -np.arange(0, 30)
        grading = [c + sign * widths for c in self._critical for sign in (-1, 1)] if graded else []
        base = np.unique(np.concatenate([base, [k for k in kinks if abs(k) < _REACH], *grading]))
        base = base[np.abs(base) <= _REACH]
        parts = np.linspace(0, 1, 2**level + 1)[:-1]
        ends = np.append((base[:-1, None] + np.diff(base)[:, None] * parts).ravel(), base[-1])
        mid, half = (ends[1:] + ends[:-1]) / 2, (ends[1:] - ends[:-1]) / 2
        u = (mid[:, None] + half[:, None] * _GL[0]).ravel()
        w = (half[:, None] * _GL[1]).ravel()
        if contour is None:
            d = self._d_functions[0](np.sqrt(float(self.q)) * u)
            return d, w * np.exp(-u**2 / 2) / np.sqrt(2 * np.pi)
        d, beta, dbeta = contour
        uc = u + 1j * beta(u)
        return d(uc), w * (1 + 1j * dbeta(u)) * np.exp(-uc**2 / 2) / np.sqrt(2 * np.pi)

    @cached_property
    def _contour(self):
        """(d, β, β′) of the contour u + iβ(u) the rule integrates on, or None (the real line).

        For χ in the upper half plane next to the support of D² the integrand 1/(χ − d(√q u)) has
        poles at distance ~Im χ/|∂_u d| from the real u-axis: the real-line rule needs ever finer
        panels (and cannot reach the boundary values G(x + i0) at all).  Cauchy's theorem moves the
        path to u + iβ(u) when no pole lies between the two, i.e. when Im d <= 0 on the region swept
        (for Im χ >= 0, d = χ is then impossible there off the real line).  To first order
        d(h + ib) = d(h)(1 + ib ℓ(h)), ℓ = ∂_h log d, so b(h) = −θ ℓ/√(1 + ℓ²) (h = √q u, β = b/√q)
        gives Im d ~ −θ d ℓ²/√(1 + ℓ²) <= 0: the path bends away from the poles, by a distance that
        does not shrink as χ approaches the axis (except at the critical points of d, ℓ = 0, where
        G_{D²} is itself singular).  θ <= 0.3 and |β| <= 1 (the Gaussian factor grows as e^{β²/2});
        β is tapered to 1e-4 of itself at |u| = 10.5 (:func:`_taper`): the rule is cut there, and the
        segment it leaves out, of length β(10.5), weighs φ(u)/d(u), which grows in the tails of d.
        The condition Im d <= 0 is checked on a grid of the swept region (4 × 2001 points) and the
        contour rule against the real-line rule at points 0.3 above [d_min, d_max]; where either
        fails, or φ′² has kinks (Piecewise), or cannot be evaluated at complex points, the real line
        is used."""
        if self.act.kinks:
            return None
        h = sp.Symbol("h")
        d2 = self.act.derivative(X).subs(X, h) ** 2
        ell = sp.diff(d2, h) / d2
        sq = np.sqrt(float(self.q))
        try:
            d = sp.lambdify(h, d2, "numpy")
            ell_f, dell_f = sp.lambdify(h, ell, "numpy"), sp.lambdify(h, sp.diff(ell, h), "numpy")
            grid = np.linspace(-_REACH, _REACH, 2001)
            with np.errstate(all="ignore"):
                ell_grid = ell_f(sq * grid)
                theta = min(0.3, sq / max(np.max(np.abs(ell_grid) / np.sqrt(1 + ell_grid**2)), 1e-300))
                for _ in range(3):
                    def beta(u, t=theta):
                        e = ell_f(sq * u)
                        return -t * e / np.sqrt(1 + e**2) / sq * _taper(u)

                    def dbeta(u, t=theta):
                        e = ell_f(sq * u)
                        return -t * (dell_f(sq * u) / (1 + e**2) ** 1.5 * _taper(u)
                                     + e / np.sqrt(1 + e**2) / sq * _taper(u, derivative=True))

                    swept = d(sq * (grid + 1j * np.outer([0.25, 0.5, 0.75, 1.0], beta(grid))))
                    if np.all(np.isfinite(swept)) and np.all(swept.imag <= 1e-14 * np.abs(swept)):
                        break
                    theta /= 2
                else:
                    return None
        except (NameError, TypeError, ValueError, ZeroDivisionError):  # no complex evaluator
            return None
        contour = (lambda u: d(sq * u), beta, dbeta)
        lo, hi = self._range
        chi = np.linspace(lo, hi, 5) + 0.3j
        values = [(1 / (chi[:, None] - dd)) @ ww for dd, ww in (self._rule(5, None), self._rule(5, contour))]
        if not np.all(np.abs(values[0] - values[1]) <= 1e-11 * np.abs(values[0])):
            return None
        return contour

    def m_and_derivative(self, chi) -> tuple:
        """(M(χ), 1 + M(χ), M′(χ)) = (E[d/(χ − d)], E[χ/(χ − d)], −E[d/(χ − d)²]) at complex χ,
        each to RTOL relative (M′ to 1e-9), or to 64ε|c|/|χ − c| next to a critical value c of d
        (the rounding of χ − d there), whichever is larger; 1 + M = χG(χ) is summed as such, not from M: it is
        small where χ → 0 (next to the lower end of the support of D²), and there its relative
        accuracy is what the subordination equations need.  Per point, the composite rule is
        refined until two successive levels agree; nan where level 10 does not (χ too close to
        the support of D²)."""
        chi = np.asarray(chi, dtype=complex).ravel()
        out = np.full((3, chi.size), complex(np.nan, np.nan))
        lo, hi = self._range
        near = np.zeros(chi.size, dtype=bool)
        # next to a critical value c, χ − d(u) cancels: float64 gives it to ~ε|c|/|χ − c| only
        tol = np.full(chi.size, RTOL)
        with np.errstate(divide="ignore"):
            for c in self._critical_values:  # the graded rule only where it is needed (~8x the nodes)
                near |= np.abs(chi - c) <= 0.5 * max(abs(c), hi - lo)
                tol = np.maximum(tol, 64 * np.finfo(float).eps * abs(c) / np.abs(chi - c))
        for graded in (False, True):
            todo = np.flatnonzero(near == graded)
            previous = None
            for level in range(11) if todo.size else ():
                d, w, dw = self._nodes(level, graded)
                inv = 1 / (chi[todo, None] - d)
                values = np.stack([inv @ dw, chi[todo] * (inv @ w), -((inv * inv) @ dw)])
                if previous is not None:
                    change = np.abs(values - previous)
                    done = np.all(change[:2] <= tol[todo] * np.abs(values[:2]), axis=0) \
                        & (change[2] <= np.maximum(1e-9, tol[todo]) * np.abs(values[2]))
                    out[:, todo[done]] = values[:, done]
                    todo, values = todo[~done], values[:, ~done]
                    if todo.size == 0:
                        break
                previous = values
        return out[0], out[1], out[2]

    def _g_upper(self, z: np.ndarray) -> np.ndarray:
        _, p, _ = self.m_and_derivative(z)
        if np.isnan(p).any():
            where = z[np.isnan(p)][0]
            raise NumericError(f"E[1/(z − d)] for {self.name} did not converge at z = {where:.6g}: "
                               "too close to the support of D²")
        return p / z

    @cached_property
    def _critical(self) -> tuple:
        """The interior critical points of d(√q u) (zeros of its derivative, between grid points where
        it changes sign, refined by bisection), in the standard variable u."""
        h, _ = self._grid
        df = self._d_functions[1]
        slope = df(h)
        idx = np.flatnonzero(np.sign(slope[1:]) * np.sign(slope[:-1]) < 0)
        zero = slope == 0  # isolated zeros only: on a flat piece (ELU for h > 0) there is no critical point
        exact = [i for i in np.flatnonzero(zero) if 0 < i < h.size - 1 and not (zero[i - 1] or zero[i + 1])]
        lo, hi = h[idx], h[idx + 1]
        for _ in range(60):
            mid = (lo + hi) / 2
            left = np.sign(df(mid)) == np.sign(df(lo))
            lo, hi = np.where(left, mid, lo), np.where(left, hi, mid)
        roots = np.concatenate([(lo + hi) / 2, h[exact]]) / np.sqrt(float(self.q))
        return tuple(float(r) for r in np.unique(roots))

    @cached_property
    def _critical_values(self) -> np.ndarray:
        """d at its critical points (where G_{D²} is singular inside the support)."""
        return self._d_functions[0](np.sqrt(float(self.q)) * np.array(self._critical, dtype=float))

    @cached_property
    def _range(self) -> tuple:
        _, _, values = self._pieces
        return float(values.min()), float(values.max())

    @cached_property
    def _pieces(self) -> tuple:
        """(left ends, right ends, values of φ′² at both) in h of the pieces of |h| <= 10.5√q on
        which φ′² is monotone: split at its critical points and kinks, so that each holds at most
        one root of φ′²(h) = t (two roots within one step of a grid would be missed).  The values
        are taken one ulp inside each piece (the sides of a kink)."""
        sq = np.sqrt(float(self.q))
        kinks = [float(k) for k in self.act.kinks if abs(float(k)) < _REACH * sq]
        ends = np.unique(np.concatenate([[-_REACH * sq, _REACH * sq], sq * np.array(self._critical), kinks]))
        lo, hi = ends[:-1], ends[1:]
        f = self._d_functions[0]
        return lo, hi, np.stack([f(np.nextafter(lo, hi)), f(np.nextafter(hi, lo))])

    @cached_property
    def _grid(self) -> tuple:
        h = np.linspace(-_REACH, _REACH, 20001) * np.sqrt(float(self.q))
        return h, self._d_functions[0](h)

    @cached_property
    def _flat(self) -> np.ndarray:
        """Which monotone pieces φ′² is constant on (its slope zero at 5 interior points)."""
        lo, hi, _ = self._pieces
        inside = lo[:, None] + (hi - lo)[:, None] * np.array([0.1, 0.3, 0.5, 0.7, 0.9])
        return np.all(self._d_functions[1](inside) == 0, axis=1)

    def density(self, t) -> np.ndarray:
        """ρ(t) = Σ_{φ′(h)² = t} N(h; 0, q)/|∂_h φ′(h)²| (|h| <= 10.5√q), each root found by
        bisection in the monotone piece (:attr:`_pieces`) that holds it."""
        t = np.asarray(t, dtype=float)
        flat = t.ravel()
        ends_lo, ends_hi, (d_lo, d_hi) = self._pieces
        f, df = self._d_functions
        qv = float(self.q)
        rho = np.zeros(flat.size)
        crossings = (d_lo[:, None] - flat) * (d_hi[:, None] - flat) < 0  # (pieces, points)
        iv, ip = np.nonzero(crossings)
        lo, hi = ends_lo[iv], ends_hi[iv]
        target = flat[ip]
        flo = f(lo) - target
        for _ in range(60):
            mid = (lo + hi) / 2
            fm = f(mid) - target
            left = np.sign(fm) == np.sign(flo)
            lo, flo = np.where(left, mid, lo), np.where(left, fm, flo)
            hi = np.where(left, hi, mid)
        root = (lo + hi) / 2
        with np.errstate(divide="ignore"):
            contribution = np.exp(-root**2 / (2 * qv)) / np.sqrt(2 * np.pi * qv) / np.abs(df(root))
        np.add.at(rho, ip, contribution)
        return rho.reshape(t.shape)

    def support(self) -> Support:
        """The bands of φ′² over |h| <= 10.5√q — the union of the ranges of its monotone pieces
        (one band where φ′² is continuous) — and its atoms: where φ′² is constant on a piece (ELU
        for h > 0), mass (erf(b/√(2q)) − erf(a/√(2q)))/2 there.  Checked: the density integrates
        to 1 less the atoms (tanh–sinh between the values of φ′² at the ends of the pieces, where
        it may diverge like an inverse square root)."""
        if "_support" not in self.__dict__:
            lo, hi, values = self._pieces
            flat = self._flat
            atoms: dict = {}
            for a, b, v in zip(lo[flat], hi[flat], values[0][flat], strict=True):
                atoms[float(v)] = atoms.get(float(v), 0.0) + _gaussian_mass(a, b, float(self.q))
            breaks = np.unique(values[:, ~flat])
            rules = tuple(IndefiniteTanhSinh(self.density, a, b) for a, b in zip(breaks[:-1], breaks[1:],
                                                                                  strict=True))
            parts = [rule.total(1e-14) for rule in rules]  # the rules are kept: the CDF reuses them
            mass = sum(m for m, _ in parts) + sum(atoms.values())
            err = sum(e for _, e in parts)
            if not (abs(mass - 1) <= 1e-8 and err <= 1e-8):
                raise NumericError(f"the density of {self.name} integrates to {mass:.12g} with its atoms "
                                   f"(error estimate {err:.1e}), not 1: the quadrature did not converge; "
                                   "use .moments or .stieltjes")
            how = "ranges of the monotone pieces of φ′²; change-of-variables density"
            bands = _union(np.sort(values[:, ~flat], axis=0).T)
            self.__dict__["_support"] = Support(bands, tuple(sorted(atoms.items())), mass, abs(mass - 1), how,
                                                rules)
        return self.__dict__["_support"]


def _gaussian_mass(a: float, b: float, q: float) -> float:
    """P(a < h < b) for h ~ N(0, q)."""
    return float((math.erf(b / math.sqrt(2 * q)) - math.erf(a / math.sqrt(2 * q))) / 2)


def _union(intervals) -> tuple:
    """The union of closed intervals [(a, b), ...] as sorted disjoint (a, b) tuples."""
    out: list = []
    for a, b in sorted(map(tuple, intervals)):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple((float(a), float(b)) for a, b in out)
