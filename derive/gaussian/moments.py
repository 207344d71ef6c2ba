r"""Gaussian moments: each expectation the theory needs, as one object with one method picker.

A :class:`Moment1D` is E f(u), u ~ N(0, q), as a function of q; a :class:`Moment2D` is
E f(u, v) for (u, v) centred Gaussian with variances q₁, q₂ and correlation c.  Each holds its
SymPy form (``.expr``: the closed form from :func:`derive.expect` / :func:`derive.expect2`, or
the unevaluated :class:`~derive.gaussian.expectation.GaussianExpectation`) and chooses its
float64 method in one place (``.method``, a :class:`Method`):

1. a closed form, compiled to numpy;
2. the Mehler–Hermite expansion (:mod:`derive.gaussian.mehler`) for a separable 2-D integrand
   a(u)·b(v) that is smooth except possibly at 0, with a tail bound per entry;
3. for a separable 2-D integrand with a piecewise-polynomial factor (hard tanh, its
   derivative, clipped or shifted ReLUs), that factor's conditional expectation in closed form
   (:mod:`derive.gaussian.piecewise_polynomial`) and panel quadrature over the other variable;
4. Gauss–Legendre panel quadrature split at the kinks (:mod:`derive.gaussian.quadrature`),
   through a Chebyshev table in log q (:mod:`derive.gaussian.tables`) for large 1-D arrays.

``.evaluate(...)`` returns an :class:`Evaluation`: values, an absolute error bound per element
and the methods used (entries where the chosen method cannot meet its bound — a Mehler tail,
a closed form that is not finite in float64 — fall back to 3. or 4., and say so).  ``.mp(...,
dps=)`` evaluates at any precision: closed forms through mpmath, the rest through the mpmath
reference :func:`derive.gaussian.reference.mp_expectation`.  No other module integrates.

:class:`ActivationMoments` gathers the four moments of an activation layer,

    V(q) = E φ(u)²,  D(q) = E φ′(u)²,  C(q₁, q₂, c) = E φ(u)φ(v),  C_d(q₁, q₂, c) = E φ′(u)φ′(v)

(Daniely, Frostig & Singer 2016 call c ↦ C the dual activation), and the higher moments
μ_k(q) = E φ′(u)^{2k} of free probability (:meth:`ActivationMoments.derivative_power`).

>>> import numpy as np, derive
>>> relu = moments_of(derive.activation("relu"))
>>> relu.methods["C"], relu.methods["Cd"]
(<Method.CLOSED_FORM: 'closed form'>, <Method.CLOSED_FORM: 'closed form'>)
>>> float(relu.Cd(1.0, 1.0, 0.0))
0.25
>>> tanh = moments_of(derive.activation("tanh"))
>>> tanh.methods["C"]
<Method.MEHLER: 'Mehler-Hermite expansion'>
>>> e = tanh.V.evaluate(np.array([1.0]))
>>> round(float(e.value[0]), 13), bool(e.error[0] < 1e-14), e.methods == {Method.QUADRATURE}
(0.3942944903978, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property, lru_cache

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.errors import DivergenceError, DomainError, NumericError
from derive.gaussian.blocks import row_blocks, rows_of
from derive.gaussian.compiled import compile_numpy, numpy_function
from derive.gaussian.expectation import GaussianExpectation, expect, expect2
from derive.gaussian.mehler import K_FIRST, K_MAX, coefficients
from derive.gaussian.piecewise_polynomial import PiecewisePolynomial
from derive.gaussian.quadrature import np_expectation_1d, np_expectation_2d, np_expectation_conditional
from derive.gaussian.tables import Table1D
from derive.piecewise import is_smooth, kinks
from derive.symbols import c, q, q1, q2, x, y

#: from this many variances on, a 1-D moment without parameters is read from its table
TABULATE_FROM = 2000
#: the same for the variances of a Gram: every layer and every later call reuses the table, which
#: costs about as much as 3000 direct quadratures once (0.12 s for tanh's V; then 0.3 ms, not 30 ms,
#: per 1000 variances)
GRAM_TABULATE_FROM = 250
#: relative rounding allowed for a compiled closed form (until its own bound says otherwise)
CLOSED_FORM_ROUNDING = 1e-15


class Method(Enum):
    """How a moment is evaluated in float64."""

    CLOSED_FORM = "closed form"
    MEHLER = "Mehler-Hermite expansion"
    CONDITIONAL = "closed-form conditional expectation, 1-D panel quadrature"
    QUADRATURE = "panel quadrature"


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Float64 values of a moment, an absolute error bound per element, and the methods used;
    `relative`, when known, bounds every element's error relative to the moment's natural scale
    (|value| in 1-D, √(E f(u)² E g(v)²) for a product in 2-D), sparing callers the division (the
    absolute bounds may then be left out: ``error=None``)."""

    value: np.ndarray
    error: np.ndarray
    methods: frozenset
    relative: float | None = None

    def relative_to(self, scale) -> float:
        """The largest error bound relative to `scale` (an array broadcasting with the values)."""
        if self.relative is not None:
            return self.relative
        scale = np.broadcast_to(np.asarray(scale, dtype=float), np.shape(self.error))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(scale > 0, self.error / scale, np.where(self.error > 0, np.inf, 0.0))
        return float(np.max(ratio, initial=0.0))


def _closed(expr: sp.Expr) -> bool:
    return not expr.has(GaussianExpectation) and not expr.has(sp.Piecewise, sp.nan, sp.oo, sp.zoo)


def _parameters(integrand: sp.Expr, variables: tuple) -> tuple:
    return tuple(sorted(integrand.free_symbols - set(variables), key=str))


def _arrays(*values):
    try:
        arrays = [np.asarray(v, dtype=float) for v in values]
    except (TypeError, ValueError) as exc:
        raise DomainError(f"arguments must be real numbers or arrays: {exc}") from None
    return arrays, np.broadcast_shapes(*(a.shape for a in arrays))


def _mp_number(value, dps: int):
    return mp.mpf(sp.Float(value, dps + 10)) if not isinstance(value, mp.mpf) else value


class _Moment:
    """What both moments share: the closed form, its compiled evaluator, the mp path."""

    integrand: sp.Expr
    variables: tuple
    arguments: tuple  # the symbols of the parameters of the moment: (q,) or (q1, q2, c)

    @cached_property
    def expr(self) -> sp.Expr:
        """The moment as a SymPy expression in its arguments (and the integrand's parameters)."""
        raise NotImplementedError

    @cached_property
    def parameters(self) -> tuple:
        """Symbols of the integrand other than the integration variables (activation parameters)."""
        return _parameters(self.integrand, self.variables)

    @cached_property
    def closed(self) -> bool:
        return _closed(self.expr)

    @cached_property
    def _closed_function(self):
        return numpy_function(self.expr, (*self.arguments, *self.parameters))

    @cached_property
    def _integrand_function(self):
        if self.integrand.has(sp.DiracDelta):
            raise NumericError(f"cannot integrate a Dirac delta numerically in {self.integrand}; "
                               "reduce it first with derive.expect")
        return compile_numpy(self.variables + self.parameters, self.integrand)

    def _closed_values(self, arrays, shape):
        values = np.array(np.broadcast_to(self._closed_function(*arrays), shape), dtype=float)
        finite = np.isfinite(values)
        return values, CLOSED_FORM_ROUNDING * 16 * np.abs(values), finite

    def __call__(self, *arguments) -> np.ndarray:
        """The float64 values (arrays broadcast); see :meth:`evaluate` for the error bounds."""
        out = self.evaluate(*arguments).value
        return out[()] if out.ndim == 0 else out

    def mp(self, *arguments, dps: int = 30):
        """The moment at `dps` digits (mpmath): closed form, or the mpmath reference quadrature."""
        from derive.gaussian.reference import mp_expectation

        if self.closed:
            point = dict(zip((*self.arguments, *self.parameters), arguments, strict=True))
            with mp.workdps(dps + 10):
                value = self.expr.xreplace({s: sp.Float(_mp_number(v, dps), dps + 10)
                                            for s, v in point.items()}).evalf(dps + 10)
            return mp.mpf(sp.Float(value, dps + 10)) if value.is_number else mp.nan
        n = len(self.arguments)
        body = self.integrand.xreplace(dict(zip(self.parameters, map(sp.Float, arguments[n:]), strict=True)))
        return mp_expectation(body, self.variables, tuple(sp.Float(_mp_number(v, dps), dps + 10)
                                                          for v in arguments[:n]), dps=dps)


@dataclass(frozen=True, eq=False)
class Moment1D(_Moment):
    """E f(u), u ~ N(0, q), as a function of q (and of the integrand's parameters)."""

    integrand: sp.Expr
    variable: sp.Symbol = x

    @property
    def variables(self) -> tuple:
        return (self.variable,)

    @property
    def arguments(self) -> tuple:
        return (q,)

    @cached_property
    def expr(self) -> sp.Expr:
        return expect(self.integrand, self.variable, q)

    @cached_property
    def method(self) -> Method:
        return Method.CLOSED_FORM if self.closed else Method.QUADRATURE

    @cached_property
    def _kinks(self) -> list:
        allowed = set(self.parameters)
        return [sp.lambdify(self.parameters, k, "numpy") for k in kinks(self.integrand, self.variable)
                if k.free_symbols <= allowed]

    def _quadrature(self, qv, params, tol):
        kinks_ = [k(*params) for k in self._kinks]
        return np_expectation_1d(self._integrand_function, qv, kinks_, tol, args=params, with_error=True)

    @cached_property
    def table(self) -> Table1D:
        """The Chebyshev table in t = log q of the quadrature (moments without parameters)."""
        def sample(t):
            return self._quadrature(np.exp(t), (), 1e-14)[0][None]

        return Table1D(sample, 1, tol=1e-14)

    def evaluate(self, qv, *params, tol: float = 1e-13, tabulate: bool | None = None) -> Evaluation:
        """Values and error bounds at the variances `qv` (arrays broadcast with the parameters).
        Without parameters, at least TABULATE_FROM variances (or ``tabulate=True``) are read from
        the table; ``tabulate=False`` always integrates."""
        (qv, *params), shape = _arrays(qv, *params)
        if np.any(~np.isfinite(qv) | (qv < 0)):
            raise DomainError("variances must be finite and >= 0")
        methods = set()
        value, error = np.empty(shape), np.empty(shape)
        todo = np.ones(shape, bool)
        if self.closed:
            value[...], error[...], todo = self._closed_values((qv, *params), shape)
            todo = ~todo
            methods.add(Method.CLOSED_FORM)
        if todo.any():
            methods.add(Method.QUADRATURE)
            flat_q = np.broadcast_to(qv, shape)[todo]
            flat_p = [np.broadcast_to(p, shape)[todo] for p in params]
            if not params and tabulate is not False and (tabulate or flat_q.size >= TABULATE_FROM):
                live = flat_q > 0
                v, e = np.empty(flat_q.size), np.zeros(flat_q.size)
                t = np.log(flat_q[live])
                v[live] = self.table(t)[0]
                e[live] = self.table.error_bound(t)[0] + 1e-14 * np.abs(v[live])
                v[~live] = self._quadrature(flat_q[~live], (), tol)[0]
            else:
                v, e = self._quadrature(flat_q, flat_p, tol)
            value[todo], error[todo] = v, e
        return Evaluation(value, error, frozenset(methods))


def _separable(integrand: sp.Expr, u: sp.Symbol, v: sp.Symbol):
    """(a(u), b(v)) with integrand = a·b, or None."""
    a, b = integrand.as_independent(v, as_Add=False)
    if a.has(v) or b.has(u):
        return None
    return a, b


@dataclass(frozen=True, eq=False)
class Moment2D(_Moment):
    """E f(u, v) for (u, v) centred Gaussian, Var u = q₁, Var v = q₂, corr(u, v) = c."""

    integrand: sp.Expr
    variables: tuple = (x, y)

    @property
    def arguments(self) -> tuple:
        return (q1, q2, c)

    @cached_property
    def expr(self) -> sp.Expr:
        return expect2(self.integrand, *self.variables, q1, q2, c)

    @cached_property
    def factors(self):
        """(a, b) when the integrand is a(u)·b(v), else None."""
        return _separable(self.integrand, *self.variables)

    @cached_property
    def method(self) -> Method:
        if self.closed:
            return Method.CLOSED_FORM
        if self.factors is not None and not self.parameters and all(
                is_smooth(f) or set(kinks(f, v)) <= {0}
                for f, v in zip(self.factors, self.variables, strict=True)):
            return Method.MEHLER
        return self._fallback

    @cached_property
    def _fallback(self) -> Method:
        """The method for what the first choice leaves: CONDITIONAL where it applies."""
        return Method.QUADRATURE if self._conditional is None else Method.CONDITIONAL

    @cached_property
    def _conditional(self):
        """(outer function, piecewise-polynomial inner factor, outer kinks, swapped) when the
        integrand is a(u)·b(v) without parameters, one factor a piecewise polynomial and the other
        kinked at numbers only; `swapped` when the polynomial is the factor of u."""
        if self.factors is None or self.parameters:
            return None
        for swapped in (False, True):
            (fa, u), (fb, v) = list(zip(self.factors, self.variables, strict=True))[::-1 if swapped else 1]
            inner = PiecewisePolynomial.of(fb, v)
            outer_kinks = kinks(fa, u)
            if inner is not None and not fa.has(sp.DiracDelta) and all(k.is_number for k in outer_kinks):
                return compile_numpy((u,), fa), inner, [float(k) for k in outer_kinks], swapped
        return None

    @cached_property
    def _factor_functions(self):
        return tuple(compile_numpy((v,), f) for f, v in zip(self.factors, self.variables, strict=True))

    @cached_property
    def _kinks(self):
        u, v = self.variables
        allowed = set(self.parameters)
        kx = [sp.lambdify(self.parameters, k, "numpy") for k in kinks(self.integrand, u)
              if k.free_symbols <= allowed]
        ky = [(bool(k.has(u)), sp.lambdify([u, *self.parameters], k, "numpy"))
              for k in kinks(self.integrand, v) if k.free_symbols <= allowed | {u}]
        return kx, ky

    def _quadrature(self, a, b, cv, params, tol):
        if self._conditional is not None:
            outer, inner, outer_kinks, swapped = self._conditional
            qa, qb = (b, a) if swapped else (a, b)
            return np_expectation_conditional(outer, inner, qa, qb, cv, outer_kinks, inner.ends[1:-1],
                                              rtol=max(tol / 10, 1e-14), with_error=True)
        kx, ky = self._kinks
        y_kinks = [g if moves else g(0.0, *params) for moves, g in ky]
        return np_expectation_2d(self._integrand_function, a, b, cv, [g(*params) for g in kx], y_kinks,
                                 rtol=max(tol / 10, 1e-14), args=params, with_error=True)

    def evaluate(self, qa, qb, cv, *params, tol: float = 1e-12) -> Evaluation:
        """Values and error bounds at broadcasting arrays (a Gram: qa (n, 1), qb (1, n), cv (n, n))."""
        (qa, qb, cv, *params), shape = _arrays(qa, qb, cv, *params)
        if np.any(~np.isfinite(qa) | (qa < 0)) or np.any(~np.isfinite(qb) | (qb < 0)):
            raise DomainError("variances must be finite and >= 0")
        if np.any(~(np.abs(cv) <= 1 + 1e-12)):
            raise DomainError("correlations must lie in [-1, 1]")
        cv = np.clip(cv, -1.0, 1.0)
        methods = set()
        value, error = np.empty(shape), np.empty(shape)
        todo = np.ones(shape, bool)
        relative = None
        if self.method is Method.CLOSED_FORM:
            value[...], error[...], finite = self._closed_values((qa, qb, cv, *params), shape)
            todo = ~finite
            methods.add(Method.CLOSED_FORM)
        elif self.method is Method.MEHLER and value.size and np.all(qa > 0) and np.all(qb > 0):
            value[...], error[...], todo, relative = self._mehler(qa, qb, cv, shape, tol)
            methods.add(Method.MEHLER)
        if todo.any():
            relative = None
            methods.add(self._fallback)
            at = lambda a: np.broadcast_to(a, shape)[todo]  # noqa: E731
            value[todo], error[todo] = self._quadrature(at(qa), at(qb), at(cv), [at(p) for p in params], tol)
        return Evaluation(value, error, frozenset(methods), relative)

    def _mehler(self, qa, qb, cv, shape, tol):
        fa, fb = self._factor_functions
        (u, v), (fu, fv) = self.variables, self.factors
        same = fu.xreplace({u: x}) == fv.xreplace({v: x})
        qs, inverse = np.unique(np.concatenate([qa.ravel(), qb.ravel()]), return_inverse=True)
        ia, ib = inverse[:qa.size].reshape(qa.shape), inverse[qa.size:].reshape(qb.shape)
        sample = qs[np.unique(np.linspace(0, qs.size - 1, min(qs.size, 9)).round().astype(int))]
        full = lambda a: np.broadcast_to(a, shape)  # noqa: E731
        # at c = 1 and equal variances E a(u)a(v) = E a(u)² is the projections' total: such
        # entries (the diagonal of a Gram) enter the series at c = 0, so they ask for no terms
        exact = (full(cv) == 1.0) & (full(ia) == full(ib)) if same else np.zeros(shape, bool)
        cv = np.where(exact, 0.0, cv) if exact.any() else cv
        c_max = float(np.abs(cv).max(initial=0.0))
        for k_probe in (K_FIRST, K_MAX):  # more terms only where the first ones do not suffice
            probe_a = coefficients(fa, sample, k_probe)
            probe_b = probe_a if same else coefficients(fb, sample, k_probe)
            needed = probe_a.terms_for(probe_b, c_max, tol / 2) + 8
            if needed < probe_a.k_max:
                break
        a = coefficients(fa, qs, needed)
        b = a if same else coefficients(fb, qs, needed)
        value, error, failed, relative = a.series(b, ia, ib, cv, tol / 2)
        value[exact] = full(a.total[ia])[exact]
        if relative is None:
            error[exact] = 4e-16 * value[exact]  # the rounding of the quadrature sum E a²
        return value, error, failed, relative


@lru_cache(maxsize=4096)
def moment_1d(integrand: sp.Expr, variable: sp.Symbol = x) -> Moment1D:
    """The (cached) moment E f(u), u ~ N(0, q), of the integrand f in `variable`."""
    return Moment1D(integrand, variable)


@lru_cache(maxsize=4096)
def moment_2d(integrand: sp.Expr, variables: tuple = (x, y)) -> Moment2D:
    """The (cached) moment E f(u, v) of the integrand f in `variables`."""
    return Moment2D(integrand, tuple(variables))


def moment_of(node: GaussianExpectation):
    """The moment behind an unevaluated expectation (its integrand and integration variables)."""
    if len(node.variables) == 1:
        return moment_1d(node.integrand, node.variables[0])
    return moment_2d(node.integrand, node.variables)


@dataclass(frozen=True, eq=False)
class ActivationMoments:
    """V, D, C, C_d (and E φ′^{2k}) of one activation, symbolic and numeric."""

    activation: Activation

    @cached_property
    def _derivative(self) -> sp.Expr:
        return self.activation.derivative(x)

    @property
    def has_jump(self) -> bool:
        """φ′ contains a Dirac delta: D, C_d (and the NTK) are infinite."""
        return self._derivative.has(sp.DiracDelta)

    def _refuse_jump(self):
        if self.has_jump:
            raise DivergenceError(
                f"the NTK of {self.activation.name} is not defined: φ′ contains a Dirac delta, so "
                "E φ′(u)φ′(v) diverges; ask for the NNGP only (net.nngp(X))")

    @cached_property
    def V(self) -> Moment1D:
        """V(q) = E φ(u)²."""
        return moment_1d(self.activation(x) ** 2)

    @cached_property
    def D(self) -> Moment1D:
        """D(q) = E φ′(u)² (DivergenceError when φ′ has a jump)."""
        self._refuse_jump()
        return moment_1d(self._derivative**2)

    @cached_property
    def C(self) -> Moment2D:
        """C(q₁, q₂, c) = E φ(u)φ(v)."""
        return moment_2d(self.activation(x) * self.activation(y))

    @cached_property
    def Cd(self) -> Moment2D:
        """C_d(q₁, q₂, c) = E φ′(u)φ′(v) (DivergenceError when φ′ has a jump)."""
        self._refuse_jump()
        return moment_2d(self._derivative * self.activation.derivative(y))

    def derivative_power(self, k: int) -> Moment1D:
        """μ_k(q) = E φ′(u)^{2k}, the k-th moment of the law of D² = φ′(u)² (k >= 0)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise DomainError(f"k = {k!r} must be a non-negative integer")
        if k:
            self._refuse_jump()
        return moment_1d(self._derivative ** (2 * k))

    @cached_property
    def methods(self) -> dict:
        """The method of each of V, C (and D, C_d unless φ′ jumps)."""
        names = ("V", "C") if self.has_jump else ("V", "C", "D", "Cd")
        return {name: getattr(self, name).method for name in names}

    @cached_property
    def phi(self):
        """φ as a vectorised numpy function."""
        return compile_numpy((x,), self.activation.expr)

    @cached_property
    def dphi(self):
        """φ′ as a vectorised numpy function (DivergenceError when it has a jump)."""
        self._refuse_jump()
        return compile_numpy((x,), self._derivative)

    def check_numeric(self) -> None:
        """DomainError when the activation has free parameters (numbers are needed)."""
        if self.activation.parameters:
            names = ", ".join(sorted(map(str, self.activation.parameters)))
            raise DomainError(f"activation {self.activation.name} has free parameters ({names}); "
                              "substitute numbers before evaluating numerically")

    @cached_property
    def _closed_grams(self) -> tuple:
        """Evaluators of [C] and of [C, C_d] (sharing their sub-expressions), None where not closed."""
        alone = numpy_function([self.C.expr], (q1, q2, c)) if self.C.closed else None
        both = None if alone is None or self.has_jump or not self.Cd.closed else numpy_function(
            [self.C.expr, self.Cd.expr], (q1, q2, c))
        return alone, both

    def gram(self, qa: np.ndarray, qb: np.ndarray, kab: np.ndarray, tol: float = 1e-12,
             derivative: bool = True) -> tuple:
        """Everything an activation layer needs on a Gram of covariances `kab` with variances
        `qa` (n, 1) and `qb` (1, n), each 1-D moment once per distinct variance: ((V(qa), V(qb),
        C), (D(qa), D(qb), C_d) or None, error bound relative to √(V V) (resp. √(D D)), the
        methods used).  C and C_d are taken at c = kab/√(qa qb) (c = 0 where a variance is 0:
        that input is 0 almost surely); closed forms are evaluated by row blocks, each block's
        correlation computed where it is used.

        >>> import derive
        >>> ones, derivs, error, used = moments_of(derive.activation("relu")).gram(
        ...     np.array([[1.0], [4.0]]), np.array([[1.0, 4.0]]), np.array([[1.0, -2.0], [-2.0, 0.0]]))
        >>> ones[2].tolist(), derivs[2].tolist(), error <= 16 * CLOSED_FORM_ROUNDING
        ([[0.5, 0.0], [0.0, 0.6366197723675814]], [[0.5, 0.0], [0.0, 0.25]], True)
        """
        self.check_numeric()
        qs, inverse = np.unique(np.concatenate([qa.ravel(), qb.ravel()]), return_inverse=True)
        ia, ib = inverse[:qa.size].reshape(qa.shape), inverse[qa.size:].reshape(qb.shape)
        ones = [self.V] + ([self.D] if derivative else [])
        totals = [m.evaluate(qs, tol=tol / 10, tabulate=qs.size >= GRAM_TABULATE_FROM or None) for m in ones]
        methods = set().union(*(t.methods for t in totals))
        correlation = _Correlation(qa, qb, kab)
        pairs = self._closed_gram(correlation, derivative)
        if pairs is None:
            cv = correlation(Ellipsis)
            pairs = [m.evaluate(qa, qb, cv, tol=tol) for m in ([self.C, self.Cd] if derivative else [self.C])]
        # c = 1 between equal variances (the diagonal of a Gram): C is V and C_d is D, the same
        # numbers as the variance maps, so the next layer sees c = 1 there again
        where, sign = correlation.coincident
        equal = tuple(w[sign > 0] for w in where)
        out, error = [], 0.0
        for total, pair in zip(totals, pairs, strict=True):
            if equal[0].size:
                pair = _overwritten(pair, equal, total, np.broadcast_to(ia, correlation.shape)[equal])
            if pair.relative is not None:
                error = max(error, pair.relative)
            else:
                scale = np.sqrt(np.maximum(total.value[ia] * total.value[ib], 0.0))
                error = max(error, pair.relative_to(scale))
            methods |= pair.methods
            out.append((total.value[ia], total.value[ib], pair.value))
        return out[0], (out[1] if derivative else None), error, frozenset(methods)

    def _closed_gram(self, correlation, derivative: bool) -> list | None:
        """[C] or [C, C_d] in closed form by row blocks; None when a closed form is missing or
        not finite somewhere (the caller then takes the general route)."""
        closed = self._closed_grams[1 if derivative else 0]
        if closed is None:
            return None
        shape, ndim = correlation.shape, len(correlation.shape)
        values = [np.empty(shape) for _ in range(2 if derivative else 1)]
        symmetric = correlation.symmetric
        blocks = row_blocks(shape)
        for rows in blocks:
            # a symmetric Gram: on and above the diagonal only, mirrored below
            columns = slice(rows.start, None) if symmetric else slice(None)
            qb = correlation.qb[:, columns] if symmetric else correlation.qb
            block = (rows, columns) if symmetric else rows
            for out, value in zip(values, closed(rows_of(correlation.qa, rows, ndim), qb,
                                                 correlation(rows, columns)), strict=True):
                out[block] = value
                if not np.isfinite(out[block]).all():
                    return None
        if symmetric:  # below the diagonal blocks from above them; each diagonal block averaged
            for out in values:  # with its transpose (its (a, b) and (b, a) differ by rounding only)
                for rows in blocks:
                    out[rows.stop:, rows] = out[rows, rows.stop:].T
                    out[rows, rows] = (out[rows, rows] + out[rows, rows].T) * 0.5
        closed = frozenset({Method.CLOSED_FORM})  # |C| <= √(V V) (Cauchy–Schwarz): a relative bound
        return [Evaluation(v, None, closed, CLOSED_FORM_ROUNDING * 16) for v in values]


def _overwritten(pair: Evaluation, where: tuple, total: Evaluation, index: np.ndarray) -> Evaluation:
    """`pair` with the 1-D values total[index] (and their bounds) at the elements `where`."""
    pair.value[where] = total.value[index]
    if pair.relative is None:
        pair.error[where] = total.error[index]
        return pair
    return replace(pair, relative=max(pair.relative, total.relative_to(np.abs(total.value))))


def _equal_pairs(a: np.ndarray, b: np.ndarray) -> tuple:
    """(i, j) with a[i] = b[j], in order of i, by sorting b (n log n, not an n × m comparison).

    >>> [v.tolist() for v in _equal_pairs(np.array([2.0, 1.0, 5.0]), np.array([1.0, 2.0, 2.0]))]
    [[0, 0, 1], [1, 2, 0]]
    """
    order = np.argsort(b, kind="stable")
    lo, hi = np.searchsorted(b[order], a, "left"), np.searchsorted(b[order], a, "right")
    counts = hi - lo
    starts = np.repeat(lo, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(np.arange(a.size), counts), order[starts + offsets]


@dataclass(frozen=True)
class _Correlation:
    """c = kab/√(qa qb) clipped to [−1, 1] (0 where a variance is 0), by blocks of rows.

    Computed as kab·(1/√qa)·(1/√qb), whose rounding would put the diagonal of a Gram at 1 − ulp:
    where the variances are equal and kab = ±qa (:attr:`coincident`), c is ±1 exactly."""

    qa: np.ndarray
    qb: np.ndarray
    kab: np.ndarray

    @cached_property
    def shape(self) -> tuple:
        return np.broadcast_shapes(self.qa.shape, self.qb.shape, self.kab.shape)

    @cached_property
    def _scales(self) -> tuple:
        return tuple(np.where(k > 0, 1 / np.sqrt(np.where(k > 0, k, 1.0)), 0.0) for k in (self.qa, self.qb))

    @cached_property
    def coincident(self) -> tuple:
        """(indices of the elements with qa = qb > 0 and kab = ±qa, in row order; their c = ±1)."""
        if self.qa.ndim == 2 and self.qa.shape[1] == 1 and self.qb.ndim == 2 and self.qb.shape[0] == 1:
            where = _equal_pairs(self.qa[:, 0], self.qb[0])  # a Gram: no n × n search
        else:
            where = np.nonzero(np.broadcast_to(self.qa == self.qb, self.shape))
        k, q = (np.broadcast_to(v, self.shape)[where] for v in (self.kab, self.qa))
        keep = (np.abs(k) == q) & (q > 0)
        return tuple(w[keep] for w in where), np.sign(k[keep])

    @cached_property
    def symmetric(self) -> bool:
        """A Gram of inputs with themselves: qa a column and qb the same variances as a row (its
        covariances are then symmetric: every layer map is symmetric in the two inputs)."""
        qa, qb = self.qa, self.qb
        return (qa.ndim == 2 and qa.shape[1] == 1 and qb.ndim == 2 and qb.shape[0] == 1
                and self.kab.shape == (qa.size, qa.size) and np.array_equal(qa[:, 0], qb[0]))

    def __call__(self, rows, columns=slice(None)) -> np.ndarray:
        """c on the block `rows` (and, of a 2-D Gram, `columns`: a slice from its start on)."""
        n = len(self.shape)
        sa, sb = (rows_of(s, rows, n) for s in self._scales)
        if columns != slice(None):
            sb, kab = sb[:, columns], rows_of(self.kab, rows, n)[:, columns]
        else:
            kab = rows_of(self.kab, rows, n)
        corr = kab * sa * sb
        np.clip(corr, -1.0, 1.0, out=corr)
        where, sign = self.coincident
        start, stop = rows.indices(self.shape[0])[:2] if isinstance(rows, slice) else (0, self.shape[0])
        lo, hi = np.searchsorted(where[0], [start, stop])
        if hi > lo:
            row, value = where[0][lo:hi] - start, sign[lo:hi]
            if n == 2:  # those in the columns asked for
                column = where[1][lo:hi] - (columns.start or 0)
                keep = column >= 0
                corr[row[keep], column[keep]] = value[keep]
            else:
                corr[(row, *(w[lo:hi] for w in where[1:]))] = value
        return corr


@lru_cache(maxsize=256)
def moments_of(act: Activation) -> ActivationMoments:
    """The (cached) moments of an activation."""
    return ActivationMoments(act)
