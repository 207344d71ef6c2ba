r"""The law of D² = φ′(h)², h ~ N(0, q): the diagonal of the Jacobian D_l of one layer.

Where φ′² takes finitely many values (piecewise-linear φ) the law is atomic and exact:
P(D² = v) = Σ over the intervals between kinks where φ′² = v of
(erf(b/√(2q)) − erf(a/√(2q)))/2 — ReLU TwoPoint(1/2, 1, 0), hard-tanh mass erf(1/√(2q)) at 1
(Pennington, Schoenholz & Ganguli 2017, sec. 3.2).  Otherwise it is described by its moments
μ_k = E φ′(h)^{2k} (exact Gaussian expectations) and its Stieltjes transform
G(z) = E[1/(z − φ′(h)²)], computed by composite Gauss–Legendre quadrature in the standard normal
variable on |u| <= 10.5 (the mass beyond is < 1e-25), panels doubled until two successive rules
agree to ``RTOL`` (else :class:`~derive.errors.NumericError`).  Its density is the change of
variables ρ(t) = Σ_{φ′(h)² = t} N(h; 0, q)/|d(φ′²)/dh|, over the roots found on a grid of 20 000
points and refined by bisection.

>>> import derive
>>> derive.derivative_law("relu", 1)
1/2·δ(0) + 1/2·δ(1)
>>> derive.derivative_law("hard_tanh", "1/2").points[1][1]
erf(1)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.activations import activation as make_activation
from derive.errors import DomainError, NumericError
from derive.freeprob.engine import derivative_moment
from derive.freeprob.inversion import Support, tanh_sinh
from derive.freeprob.laws import Atomic, SpectralLaw, exact
from derive.freeprob.relation import W, Z
from derive.symbols import x as X

RTOL = 1e-13
_REACH = 10.5
_GL = np.polynomial.legendre.leggauss(16)


def derivative_law(activation, q) -> SpectralLaw:
    """The law of φ′(h)², h ~ N(0, q): atomic (exact) or :class:`DerivativeLaw` (numeric)."""
    act = make_activation(activation)
    q = exact(q, "q", positive=True)
    d2 = act.derivative(X) ** 2
    if d2.has(sp.DiracDelta):
        raise DomainError(f"φ′ of {act.name} contains a Dirac delta: D² = φ′(h)² is not a law; "
                          "use an activation that is continuous")
    values = _piecewise_constant(d2, act.kinks)
    if values is None:
        return DerivativeLaw(act, q)
    ends = [-sp.oo, *act.kinks, sp.oo]
    cdf = [sp.erf(e / sp.sqrt(2 * q)) / 2 if e.is_finite else sp.sign(e) / 2 for e in map(sp.sympify, ends)]
    points: dict = {}
    for value, lo, hi in zip(values, cdf[:-1], cdf[1:], strict=True):
        points[value] = sp.simplify(points.get(value, 0) + hi - lo)
    return Atomic(tuple(points.items()))


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

    def _nodes(self, level: int) -> tuple:
        """(d values, weights) of the composite rule with 8·2^level panels."""
        cache = self.__dict__.setdefault("_node_cache", {})
        if level not in cache:
            panels = 8 * 2**level
            ends = np.linspace(-_REACH, _REACH, panels + 1)
            kinks = [float(k) / np.sqrt(float(self.q)) for k in self.act.kinks]
            ends = np.unique(np.concatenate([ends, [k for k in kinks if abs(k) < _REACH]]))
            mid, half = (ends[1:] + ends[:-1]) / 2, (ends[1:] - ends[:-1]) / 2
            u = (mid[:, None] + half[:, None] * _GL[0]).ravel()
            w = (half[:, None] * _GL[1]).ravel() * np.exp(-u**2 / 2) / np.sqrt(2 * np.pi)
            cache[level] = (self._d_functions[0](np.sqrt(float(self.q)) * u), w)
        return cache[level]

    def m_and_derivative(self, chi) -> tuple:
        """(M(χ), M′(χ)) = (E[d/(χ − d)], −E[d/(χ − d)²]) at complex χ, to RTOL; nan where the
        rule does not converge (χ too close to the support of D²)."""
        chi = np.asarray(chi, dtype=complex).ravel()
        out_m, out_dm = np.empty_like(chi), np.empty_like(chi)
        todo = np.arange(chi.size)
        previous = None
        # panels of width ~10× the distance of χ to [d_min, d_max] resolve 1/(χ − d): start near there
        lo, hi = self._range
        dist = np.abs(chi - np.clip(chi.real, lo, hi)).min(initial=np.inf)
        wanted = np.log2(2 * _REACH / 8 / (10 * dist + 1e-300))
        start = int(np.clip(np.floor(wanted), 0, 9)) if chi.size else 0
        for level in range(max(start - 1, 0), 11):
            d, w = self._nodes(level)
            inv = 1 / (chi[todo, None] - d)
            m = (d * inv) @ w
            dm = -((d * inv**2) @ w)
            if previous is not None:
                pm, pdm = previous
                done = (np.abs(m - pm) <= RTOL * (1 + np.abs(m))) \
                    & (np.abs(dm - pdm) <= 1e-9 * (1 + np.abs(dm)))
                out_m[todo[done]], out_dm[todo[done]] = m[done], dm[done]
                todo, m, dm = todo[~done], m[~done], dm[~done]
                if todo.size == 0:
                    return out_m, out_dm
            previous = (m, dm)
        out_m[todo], out_dm[todo] = np.nan, np.nan
        return out_m, out_dm

    def _g_upper(self, z: np.ndarray) -> np.ndarray:
        m, _ = self.m_and_derivative(z)
        if np.isnan(m).any():
            where = z[np.isnan(m)][0]
            raise NumericError(f"E[1/(z − d)] for {self.name} did not converge at z = {where:.6g}: "
                               "too close to the support of D²")
        return (1 + m) / z

    @cached_property
    def _range(self) -> tuple:
        _, d = self._grid
        return float(d.min()), float(d.max())

    @cached_property
    def _grid(self) -> tuple:
        h = np.linspace(-_REACH, _REACH, 20001) * np.sqrt(float(self.q))
        return h, self._d_functions[0](h)

    def density(self, t) -> np.ndarray:
        """ρ(t) = Σ_{φ′(h)² = t} N(h; 0, q)/|∂_h φ′(h)²| (|h| <= 10.5√q)."""
        t = np.asarray(t, dtype=float)
        flat = t.ravel()
        h, d = self._grid
        f, df = self._d_functions
        qv = float(self.q)
        rho = np.zeros(flat.size)
        crossings = (d[:-1, None] - flat) * (d[1:, None] - flat) < 0  # (intervals, points)
        iv, ip = np.nonzero(crossings)
        lo, hi = h[iv], h[iv + 1]
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
        """[min, max] of φ′² over |h| <= 10.5√q (a single band: φ′² is continuous)."""
        if "_support" not in self.__dict__:
            _, d = self._grid
            band = (float(d.min()), float(d.max()))
            mass, err = tanh_sinh(self.density, *band)
            if abs(mass - 1) > 1e-8 + err:
                raise NumericError(f"the density of {self.name} integrates to {mass:.12g}: φ′² has "
                                   "flat pieces or several bands; cannot decide its support")
            self.__dict__["_support"] = Support((band,), (), mass, abs(mass - 1),
                                                "range of φ′² on a grid; change-of-variables density")
        return self.__dict__["_support"]
