r"""The moments of an activation at equal variances, tabulated: what mean-field solvers read.

For two inputs of the same variance q and correlation c, the maps of an activation layer need
V(q) = E φ(u)², V′(q), D(q) = E φ′(u)², D′(q), C_d(q, c) = E φ′(u)φ′(v) and the divided difference

    G(q, c) = (V(q) − C(q, c)) / (1 − c) = q ∫_c^1 C_d(q, c′) dc′ / (1 − c),   G(q, 1) = q D(q),

which removes the trivial root c = 1 of the correlation map and the cancellation next to it
(Price's theorem gives ∂C/∂c = q C_d).  G increases on [0, 1] (Mehler: C = Σ a_k² c^k), so
the largest correlation fixed point below 1 is well conditioned in this form.

:class:`EqualVariances` samples them from the moments (:mod:`derive.gaussian.moments`) into
piecewise Chebyshev tables in (log q, c) (:mod:`derive.gaussian.tables`) for a smooth
activation, whose error is estimated when they are built; for a kinked one (closed forms, or
slow Chebyshev convergence at the kinks) the moments are evaluated directly.  No cap on q:
the tables are built in log q wherever points fall.

>>> import numpy as np, derive
>>> tanh = equal_variances(derive.activation("tanh"))
>>> V, Vq, D, Dq = tanh.one(np.array([1.0]))
>>> round(float(V[0]), 12), round(float(D[0]), 12)
(0.394294490398, 0.464402902448)
"""

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.gaussian import cache
from derive.gaussian.blocks import single_threaded_blas
from derive.gaussian.expectation import GaussianExpectation, expect2
from derive.gaussian.moments import moments_of
from derive.gaussian.tables import Table1D, Table2D
from derive.numeric import lambdify
from derive.symbols import c, q, q1, q2, x, y

#: error bounds (relative to V, resp. D) asked of the sampled E φ(u)φ(v) and E φ′(u)φ′(v) without
#: closed forms (Mehler-Hermite tail bound, else 2-D quadrature).  C enters G = (V − C)/(1 − c),
#: where V/(V − C) amplifies its error up to ~20-fold; C_d enters χ_c and ∫ C_d as it is
C_TOL, CD_TOL = 1e-15, 1e-13


def _numpy_function(expr: sp.Expr, args: tuple):
    """A vectorised float evaluator of `expr` (closed form or Gaussian-expectation integrals)."""
    f = lambdify(expr, list(args), nonfinite="nan")

    def evaluate(*values):
        values = [np.asarray(v, dtype=float) for v in values]
        return np.broadcast_to(np.asarray(f(*values), dtype=float), np.broadcast(*values).shape).copy()

    return evaluate


class EqualVariances:
    """V, V′, D, D′ (functions of q) and C, C_d, G (of q, c) of one activation in float64.

    For a smooth activation every evaluation goes through Chebyshev tables: V and D in log q
    (V′, D′ their derivatives) sampled from their moments (:mod:`derive.gaussian.moments`), C_d
    in (log q, c) from the moment C_d (closed form, or the Mehler expansion with its tail bound),
    and G from the C_d table.  For a kinked one the SymPy :attr:`expressions` (names V, Vq, D,
    Dq, C, Cd) are evaluated directly.
    """

    def __init__(self, act: Activation):
        moments = moments_of(act)
        equal = {q1: q, q2: q}
        # a jump of φ: D = E δ² = ∞ (χ₁ infinite), while C_d = E δ(u)δ(v) is finite for |c| < 1
        cross = expect2(act.derivative(x) * act.derivative(y), x, y, q, q, c)
        self._forms = {"V": moments.V.expr, "D": sp.oo if moments.has_jump else moments.D.expr,
                       "C": moments.C.expr.xreplace(equal), "Cd": cross}
        self.closed_form = not any(e.has(GaussianExpectation) for e in self._forms.values())
        self.tabulated = act.is_smooth
        self._moments = moments
        self._source_error = 0.0
        # V, D in closed form are evaluated as such (exact: linear's D is 1, not 1 ± ulp)
        self._one = ([_numpy_function(self.expressions[k], (q,)) for k in ("V", "Vq", "D", "Dq")]
                     if self.closed_form or not self.tabulated else None)
        if self.tabulated:
            tol = 1e-14 if self.closed_form else 1e-13
            self._table1 = Table1D(self._sample_one, 2, tol=tol)
            self._table_cd = Table2D(self._sample_cd, 1, tol=max(tol, 10 * CD_TOL), integral=True)
            self._table_g = Table2D(self._sample_g, 1, tol=max(tol, 1e-13))
            self.cache_key = f"equal variances of {sp.srepr(act.expr)}"
            cache.attach(self)
        else:
            self._cd = _numpy_function(self._forms["Cd"], (q, c))
            self._c = _numpy_function(self._forms["C"], (q, c))

    @cached_property
    def expressions(self) -> dict:
        """The SymPy forms of V, Vq = dV/dq, D, Dq, C and Cd (the derivatives taken when first
        asked: differentiating unevaluated expectations costs more than a tabulated run needs)."""
        return self._forms | {"Vq": sp.diff(self._forms["V"], q), "Dq": sp.diff(self._forms["D"], q)}

    def cache_state(self) -> dict:
        """The built panels of the three tables, and the error bound of what was sampled."""
        return {"one": self._table1.state(), "cd": self._table_cd.state(), "g": self._table_g.state(),
                "source": {"error": np.array(self._source_error)}}

    def cache_merge(self, state: dict) -> None:
        """Add stored panels (:mod:`derive.gaussian.cache`) where none were built here."""
        self._table1.merge(state["one"])
        self._table_cd.merge(state["cd"])
        self._table_g.merge(state["g"])
        self._source_error = max(self._source_error, float(state["source"]["error"]))

    @property
    def panel_counts(self) -> dict:
        """How many panels each table has built (or read from the cache): V and D, C_d, G."""
        return {"V, D": self._table1.panel_count, "C_d": self._table_cd.patch_count,
                "G": self._table_g.patch_count}

    @property
    def cache_version(self) -> int:
        return sum(self.panel_counts.values())

    def _sample_one(self, t):
        qv = np.exp(t)
        return np.stack([m.evaluate(qv, tol=1e-14, tabulate=False).value
                         for m in (self._moments.V, self._moments.D)])

    def _sample_cd(self, t, cc):
        qv = np.exp(t)
        e = self._moments.Cd.evaluate(qv, qv, cc, tol=CD_TOL)
        self._source_error = max(self._source_error, e.relative_to(self._table1(t)[1]))
        return e.value.reshape(1, -1)

    def _sample_g(self, t, cc):
        """G = (V − C)/(1 − c), with C sampled directly where 1 − c >= 1/16 (the division costs at
        most a factor 16 in accuracy), and G = q ∫_c^1 C_d dc′ / (1 − c) from the C_d table above:
        there q times the mean of C_d over [c, 1] by 40-point Gauss-Legendre quadrature, exact for
        the table's polynomials (within 1/32 of c = 1, where dividing would amplify rounding)."""
        qv, g = np.exp(t), np.empty(t.size)
        far = 1 - cc >= 1 / 16
        if far.any():
            V = self._table1(t[far])[0]
            e = self._moments.C.evaluate(qv[far], qv[far], cc[far], tol=C_TOL)
            self._source_error = max(self._source_error, 16 * e.relative_to(V))
            g[far] = (V - e.value) / (1 - cc[far])
        near = np.flatnonzero(~far & (1 - cc >= 1 / 32))
        g[near] = qv[near] * self._table_cd.integral(t[near], cc[near])[0] / (1 - cc[near])
        closest = np.flatnonzero(1 - cc < 1 / 32)
        if closest.size:
            u, w = np.polynomial.legendre.leggauss(40)
            points = 1 - np.outer(1 - cc[closest], (u + 1) / 2)
            values = self._table_cd(np.repeat(t[closest], u.size), points.ravel())[0]
            g[closest] = qv[closest] * (values.reshape(closest.size, u.size) @ (w / 2))
        return g[None]

    @property
    def error(self) -> float:
        """The estimated relative error of the evaluations: table interpolation plus the error
        bound of the sampled values (float64 rounding for closed forms, 1e-13 for quadrature)."""
        floor = 1e-15 if self.closed_form else 1e-13
        if not self.tabulated:
            return floor
        tables = (self._table1, self._table_cd, self._table_g)
        return max(floor, self._source_error, *(t.max_error for t in tables))

    @property
    def method(self) -> str:
        """How the numbers are obtained, with the estimated error of the tables built so far."""
        if self.closed_form:
            source = "closed forms"
        elif self.tabulated:
            source = f"1-D Gaussian quadrature; 2-D: {self._moments.Cd.method.value}"
        else:
            source = "numerical Gaussian quadrature (derive.lambdify)"
        if not self.tabulated:
            return source
        return (f"{source}, tabulated by piecewise Chebyshev interpolation in (log q, c); "
                f"estimated relative error {self.error:.1e}")

    @single_threaded_blas
    def one(self, qv) -> np.ndarray:
        """(V, V′, D, D′) at q > 0: a (4, N) array."""
        qv = np.asarray(qv, dtype=float).ravel()
        if self._one is not None:
            return np.stack([f(qv) for f in self._one])
        values, slopes = self._table1(np.log(qv), derivative=True)
        out = np.empty((4, qv.size))
        out[0], out[2] = values
        np.divide(slopes, qv, out=out[1::2])  # d/dq = (d/dt) / q
        return out

    @single_threaded_blas
    def variance_slope(self, qv) -> np.ndarray:
        """(V, V′) at q > 0: a (2, N) array (what a search for the variance fixed point reads)."""
        qv = np.asarray(qv, dtype=float).ravel()
        if self._one is not None:
            return np.stack([f(qv) for f in self._one[:2]])
        value, slope = self._table1(np.log(qv), derivative=True, functions=(0,))
        return np.concatenate([value, slope / qv])

    @single_threaded_blas
    def variance_map(self, qv) -> np.ndarray:
        """V(q) alone (no slopes)."""
        qv = np.asarray(qv, dtype=float).ravel()
        if self._one is not None:
            return self._one[0](qv)
        return self._table1(np.log(qv), functions=(0,))[0]

    @single_threaded_blas
    def cd(self, qv, cv) -> np.ndarray:
        """C_d(q, c) = E φ′(u)φ′(v)."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if self.tabulated:
            return self._table_cd(np.log(qv), cv)[0]
        return self._cd(qv, cv)

    @single_threaded_blas
    def g(self, qv, cv, derivative: bool = False):
        """G(q, c) = (V − C)/(1 − c) (G(q, 1) = q D(q)), and ∂G/∂c with ``derivative=True``."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if self.tabulated:
            if derivative:
                value, slope = self._table_g.with_slope(np.log(qv), cv)
                return value[0], slope[0]
            return self._table_g(np.log(qv), cv)[0]
        V, _, D, _ = self.one(qv)
        one = cv == 1
        near = np.flatnonzero(~one & (1 - cv < 1 / 16))
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(one, qv * D, (V - self._c(qv, cv)) / (1 - cv))
            value[near] = self._g_near_one(qv[near], 1 - cv[near])
            if not derivative:
                return value
            slope = np.where(one, np.nan, (value - qv * self._cd(qv, cv)) / (1 - cv))
        return value, slope

    def _g_near_one(self, qv, s):
        """G = q ∫_c^1 C_d dc′ / (1 − c) at s = 1 − c, without the cancellation of V − C: with
        c′ = 1 − s t², G = q ∫_0^1 C_d(q, 1 − s t²) 2t dt, smooth in t even where C_d has a
        √(1 − c′) (a kink of φ) or 1/√(1 − c′²) (a jump) at c′ = 1; 16-point Gauss–Legendre."""
        t, w = np.polynomial.legendre.leggauss(16)
        t, w = (t + 1) / 2, w / 2
        points = 1 - np.outer(s, t * t)
        values = self._cd(np.repeat(qv, t.size), points.ravel()).reshape(points.shape)
        return qv * (values @ (2 * t * w))

    @single_threaded_blas
    def c_numerator(self, qv, cv) -> np.ndarray:
        """C(q, c) = E φ(u)φ(v) = V(q) − (1 − c) G(q, c)."""
        qv, cv = np.broadcast_arrays(np.asarray(qv, float).ravel(), np.asarray(cv, float).ravel())
        if not self.tabulated:
            return self._c(qv, cv)
        return self.one(qv)[0] - (1 - cv) * self.g(qv, cv)


@lru_cache(maxsize=64)
def equal_variances(act: Activation) -> EqualVariances:
    """The (cached) equal-variance tables of an activation (shared by every σ_w², σ_b², block)."""
    return EqualVariances(act)
