r"""Piecewise polynomials and their Gaussian smoothing E p(m + sZ) in closed form.

A piecewise-linear activation (hard tanh, ReLU with a shifted kink, a clipped identity) or its
derivative (an indicator) is a piecewise polynomial p(t) = Σ_j P_j(t) 1[l_j < t < r_j].  Its
expectation under a Gaussian of mean m and standard deviation s is a finite sum of truncated
Gaussian moments (e.g. Johnson, Kotz & Balakrishnan 1994, ch. 13, eq. 13.134):

    E p(m + sZ) = Σ_j Σ_k P_j^{(k)}(m)/k! · s^k · T_k(α_j, β_j),   α_j = (l_j − m)/s, β_j = (r_j − m)/s,

    T_0 = Φ(β) − Φ(α),  T_1 = ϕ(α) − ϕ(β),  T_k = (k − 1) T_{k−2} + α^{k−1} ϕ(α) − β^{k−1} ϕ(β).

With it the inner integral of E[a(u) p(v)] for jointly Gaussian (u, v) is exact — v given u is
Gaussian with mean c√(q₂/q₁) u and variance q₂(1 − c²) — and only the outer integral over u is
left to quadrature (:func:`derive.gaussian.quadrature.np_expectation_conditional`).

>>> import sympy as sp
>>> from derive.symbols import x
>>> p = PiecewisePolynomial.of(sp.Piecewise((-1, x < -1), (x, x < 1), (1, True)), x)
>>> p.ends, p.coefficients
((-inf, -1.0, 1.0, inf), ((-1.0,), (0.0, 1.0), (1.0,)))
>>> value, scale = p.smoothed(0.0, 1.0)  # hard tanh is odd: E p(Z) = 0
>>> abs(float(value)) < 1e-16
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mpmath as mp
import numpy as np
import sympy as sp

from derive.gaussian.special import erfc
from derive.piecewise import Unsupported, pieces

_SQRT_2PI = math.sqrt(2 * math.pi)
#: rounding of one term of the sum (erfc and a few products), in units of its magnitude
TERM_ROUNDING = 4e-16


@dataclass(frozen=True)
class PiecewisePolynomial:
    """p(t) = Σ_j P_j(t) on (ends[j], ends[j+1]), P_j with ascending `coefficients[j]`."""

    ends: tuple
    coefficients: tuple
    exact: tuple = ()  # the pieces as SymPy (left, right, (a_0, a_1, …)), for any precision

    @classmethod
    def of(cls, expr: sp.Expr, var: sp.Symbol) -> PiecewisePolynomial | None:
        """The piecewise polynomial `expr` is, or None when it is not one with numeric kinks and
        coefficients (or is a single polynomial: no piece to smooth)."""
        try:
            found = pieces(expr, var)
        except Unsupported:
            return None
        if len(found) < 2:
            return None
        exact = []
        for left, right, piece in found:
            if not piece.is_polynomial(var):
                return None
            poly = sp.Poly(piece, var)
            if poly.free_symbols - {var}:
                return None
            exact.append((left, right, tuple(reversed(poly.all_coeffs()))))
        ends = (-math.inf, *(float(left) for left, _, _ in found[1:]), math.inf)
        return cls(ends, tuple(tuple(float(a) for a in piece[2]) for piece in exact), tuple(exact))

    def __call__(self, t) -> np.ndarray:
        """p(t) (the right piece at a kink)."""
        t = np.asarray(t, dtype=float)
        piece = np.searchsorted(np.asarray(self.ends[1:-1]), t, side="right")
        out = np.zeros(t.shape)
        for j, coefficients in enumerate(self.coefficients):
            out = np.where(piece == j, np.polynomial.polynomial.polyval(t, coefficients), out)
        return out

    def smoothed(self, m, s) -> tuple:
        """(E p(m + sZ), a bound on the sum of its terms' magnitudes) elementwise for s > 0; the
        rounding error of the value is below TERM_ROUNDING times the bound."""
        m, s = np.broadcast_arrays(np.asarray(m, dtype=float), np.asarray(s, dtype=float))
        value, scale = np.zeros(m.shape), np.zeros(m.shape)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for left, right, coefficients in zip(self.ends[:-1], self.ends[1:], self.coefficients,
                                                 strict=True):
                moments = _truncated_moments((left - m) / s, (right - m) / s, len(coefficients) - 1)
                derivative, factorial = np.asarray(coefficients), 1.0
                for k, moment in enumerate(moments):
                    term = np.polynomial.polynomial.polyval(m, derivative) / factorial * s**k * moment
                    value += term
                    scale += np.abs(term)
                    derivative = np.polynomial.polynomial.polyder(derivative)
                    factorial *= k + 1
        return value, scale


    def mp_smoothed(self, m, s) -> tuple:
        """(E p(m + sZ), the sum of its terms' magnitudes) at the current mpmath precision, s > 0."""
        value = scale = mp.mpf(0)
        for left, right, a in _mp_pieces(self, mp.mp.prec):
            moments = _mp_truncated_moments((left - m) / s, (right - m) / s, len(a) - 1)
            taylor = _taylor(a, m)
            for k, moment in enumerate(moments):
                term = taylor[k] * s**k * moment
                value += term
                scale += abs(term)
        return value, scale


@lru_cache(maxsize=64)
def _mp_pieces(p: PiecewisePolynomial, prec: int) -> tuple:
    """The exact pieces of `p` as mpf (left, right, ascending coefficients) at `prec` bits."""
    return tuple((_mp(left), _mp(right), tuple(map(_mp, coefficients)))
                 for left, right, coefficients in p.exact)


def _taylor(a, m) -> list:
    """The coefficients P^(k)(m)/k! of P(t) = Σ_j a_j t^j about m (repeated synthetic division)."""
    b = list(a)
    for k in range(len(b) - 1):
        for j in range(len(b) - 2, k - 1, -1):
            b[j] += m * b[j + 1]
    return b


def _mp(number):
    return mp.mpf(sp.Float(number, mp.mp.dps)) if sp.S(number).is_finite else (
        mp.inf if number > 0 else -mp.inf)


def _mp_truncated_moments(alpha, beta, degree: int) -> list:
    """T_k(α, β) at the current precision (the tail form on the side of both ends, as in float;
    Φ(−t) = erfc(t/√2)/2)."""
    far, near = (alpha, beta) if alpha >= 0 else (-beta, -alpha)
    root2, root2pi = mp.sqrt(2), mp.sqrt(2 * mp.pi)
    out = [(mp.erfc(far / root2) - mp.erfc(near / root2)) / 2]
    edge = lambda t, k: t**k * mp.exp(-t * t / 2) / root2pi if mp.isfinite(t) else mp.mpf(0)  # noqa: E731
    if degree >= 1:
        out.append(edge(alpha, 0) - edge(beta, 0))
    for k in range(2, degree + 1):
        out.append((k - 1) * out[k - 2] + edge(alpha, k - 1) - edge(beta, k - 1))
    return out


def _truncated_moments(alpha, beta, degree: int) -> list:
    """[T_0, …, T_degree], T_k = ∫_α^β z^k ϕ(z) dz, with Φ(β) − Φ(α) from the tail on the side
    where both ends lie (no cancellation of two numbers near 1)."""
    upper = alpha >= 0
    far, near = np.where(upper, alpha, -beta), np.where(upper, beta, -alpha)
    out = [(erfc(far / math.sqrt(2)) - erfc(near / math.sqrt(2))) / 2]
    if degree >= 1:
        out.append(_power_density(alpha, 0) - _power_density(beta, 0))
    for k in range(2, degree + 1):
        out.append((k - 1) * out[k - 2] + _power_density(alpha, k - 1) - _power_density(beta, k - 1))
    return out


def _power_density(t, k: int):
    """t^k ϕ(t), 0 at t = ±∞."""
    return np.where(np.isfinite(t), t**k * np.exp(-t * t / 2) / _SQRT_2PI, 0.0)
