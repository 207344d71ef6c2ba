r"""The dual kernel of an activation: the four Gaussian expectations an activation layer needs.

For (u, v) centred Gaussian with variances q₁, q₂ and correlation c,

    V(q) = E φ(u)²,  D(q) = E φ′(u)²,  C(q₁, q₂, c) = E φ(u)φ(v),  C_d(q₁, q₂, c) = E φ′(u)φ′(v)

(Daniely, Frostig & Singer 2016 call c ↦ C the dual activation).  A :class:`DualKernel`
holds them as SymPy expressions (closed forms from :func:`derive.expect2` where the rules
find one, e.g. the arc-cosine kernel of ReLU, Cho & Saul 2009, and the arcsine kernel of
erf, Williams 1997) and evaluates them in float64 on whole Gram matrices:

* closed forms are lambdified once;
* 1-D expectations without one by the trapezoid rule below (smooth φ) or
  :func:`derive.gaussian.quadrature.np_expectation_1d` (kinked φ);
* 2-D expectations of a smooth φ through the Mehler (Hermite) expansion

      E φ(u)φ(v) = Σ_k c^k a_k(q₁) a_k(q₂),   a_k(q) = E[φ(√q z) He_k(z)] / √k!,

  truncated after K terms with the rigorous bound |c|^{K+1} √(T(q₁) T(q₂)),
  T(q) = V(q) − Σ_{k≤K} a_k(q)² (Cauchy–Schwarz on the tail); entries where that bound
  exceeds the tolerance (|c| close to 1 with slowly decaying a_k) are computed by
  :func:`derive.gaussian.quadrature.np_expectation_2d`, as are all entries of a kinked φ.

The coefficients a_k are projections on Hermite functions ψ_k(z) = He_k(z) e^{−z²/4}/√k!
(stable three-term recurrence) by the trapezoid rule on a uniform grid, which converges
geometrically for analytic integrands (Trefethen & Weideman, SIAM Review 2014); its error
is estimated by halving the step at the extreme variances.

>>> import numpy as np, derive
>>> relu = dual_kernel(derive.activation("relu"))
>>> relu.method
'closed form'
>>> C, Cd, err = relu.both(np.array([[1.0]]), np.array([[1.0]]), np.array([[0.0]]))
>>> float(C[0, 0]) == 1 / (2 * np.pi), float(Cd[0, 0]), err
(True, 0.25, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache

import numpy as np
import sympy as sp

from derive.activations import Activation
from derive.errors import DivergenceError, DomainError, NumericError
from derive.gaussian import GaussianExpectation, expect, expect2
from derive.symbols import c, q, q1, q2, x, y

#: largest number of Mehler terms; entries whose tail bound is not met by then use quadrature
K_MAX = 383
#: trapezoid step of the Hermite projections (halved until the coefficients agree)
_STEP = 0.0625

def numpy_function(expr, args: tuple):
    """A float64 evaluator of closed-form expressions for the Gram hot path: like
    :func:`derive.lambdify` (same printer and namespace), but a list of expressions shares its
    common sub-expressions (arccos c in C and C_d of ReLU) and results are broadcast views, not
    checked copies (callers check the finished Gram)."""
    from derive.numeric import _NAMESPACE, _Printer

    f = sp.lambdify(args, expr, modules=[dict(_NAMESPACE), "numpy"],
                    printer=_Printer({"allow_unknown_functions": True}), cse=True)
    many = isinstance(expr, list | tuple)

    def evaluate(*values):
        shape = np.broadcast(*values).shape
        with np.errstate(invalid="ignore", divide="ignore"):
            out = f(*values)
        outs = [np.broadcast_to(np.asarray(o, dtype=float), shape) for o in (out if many else [out])]
        return outs if many else outs[0]

    return evaluate


def _has_delta(expr: sp.Expr) -> bool:
    return expr.has(sp.DiracDelta)


@dataclass(frozen=True)
class DualKernel:
    """V, D (functions of q) and C, C_d (of q₁, q₂, c) of one activation, symbolic and float64."""

    activation: Activation

    def form(self, name: str) -> sp.Expr:
        """The expectation `name` (V, D, C or Cd) as a SymPy expression (closed form or unevaluated);
        D and C_d raise :class:`DivergenceError` when φ′ has a jump (a Dirac delta)."""
        return _form(self.activation, name)

    def closed(self, name: str) -> bool:
        """True when the expectation `name` has a closed form."""
        return not self.form(name).has(GaussianExpectation)

    @cached_property
    def method(self) -> str:
        """How the Gram entries are computed, in words."""
        names = ["V", "C"]
        try:
            self.form("D"), self.form("Cd")
            names += ["D", "Cd"]
        except DivergenceError:
            pass
        if all(self.closed(n) for n in names):
            return "closed form"
        if self.activation.is_smooth:
            return "Mehler-Hermite expansion with tail bound (quadrature near |c| = 1 if needed)"
        return "2-D Gauss-Legendre quadrature per entry (np_expectation_2d)"

    def _check_numeric(self):
        if self.activation.parameters:
            names = ", ".join(sorted(map(str, self.activation.parameters)))
            raise DomainError(f"activation {self.activation.name} has free parameters ({names}); "
                              "substitute numbers before computing Gram matrices")

    @cached_property
    def phi(self):
        """φ as a vectorised numpy function (:func:`derive.lambdify`)."""
        from derive.numeric import lambdify

        return lambdify(self.activation.expr, [x])

    @cached_property
    def dphi(self):
        """φ′ as a vectorised numpy function; DivergenceError when it has a Dirac delta."""
        from derive.numeric import lambdify

        if _has_delta(self.activation.derivative(x)):
            self.form("D")  # raises DivergenceError with the explanation
        return lambdify(self.activation.derivative(x), [x])

    @lru_cache(maxsize=8)  # noqa: B019 - one entry per name, kept with the (cached) instance
    def _closed_function(self, name: str):
        """The lambdified closed form of `name`, or None."""
        form = self.form(name)
        if form.has(GaussianExpectation) or _has_delta(form):
            return None
        return numpy_function(form, (q,) if name in "VD" else (q1, q2, c))

    @lru_cache(maxsize=2)  # noqa: B019 - two entries, kept with the (cached) instance
    def _closed_pair(self, derivative: bool):
        """One evaluator of [C, C_d] (or [C]) when they all have closed forms, else None."""
        names = ["C", "Cd"] if derivative else ["C"]
        if any(self._closed_function(n) is None for n in names):
            return None
        return numpy_function([self.form(n) for n in names], (q1, q2, c))

    def one(self, qv: np.ndarray, derivative: bool = False) -> np.ndarray:
        """V(q) (or D(q)) elementwise over an array of variances."""
        self._check_numeric()
        closed = self._closed_function("D" if derivative else "V")
        if closed is not None:
            return closed(qv)
        f = self.dphi if derivative else self.phi
        square = lambda t: f(t) ** 2  # noqa: E731
        if self.activation.is_smooth:  # the rule of the Mehler coefficients: consistent tails
            return smooth_expectation(square, qv)
        from derive.gaussian.quadrature import np_expectation_1d

        return np.asarray(np_expectation_1d(square, qv, self._kinks), dtype=float)

    @cached_property
    def _kinks(self) -> list:
        return [float(k) for k in self.activation.kinks if k.is_number]

    def two(self, qa: np.ndarray, qb: np.ndarray, cv: np.ndarray, derivative: bool = False,
            tol: float = 1e-12, totals: np.ndarray | None = None) -> tuple:
        """C (or C_d) at broadcasting arrays qa (n, 1), qb (1, n), cv (n, n): (values, error bound),
        the bound relative to √(V(qa) V(qb)) (resp. D).  `totals`, if given, are V (resp. D) at
        the distinct variances of qa and qb in increasing order."""
        self._check_numeric()
        closed = self._closed_function("Cd" if derivative else "C")
        if closed is not None:
            return closed(qa, qb, cv), 0.0
        f = self.dphi if derivative else self.phi
        if self.activation.is_smooth:
            if totals is None:
                totals = self.one(_unique(qa, qb)[0], derivative)
            return _mehler(f, qa, qb, cv, totals, tol)
        return _quadrature(f, qa, qb, cv, self._kinks, tol), tol

    def gram(self, qa: np.ndarray, qb: np.ndarray, cv: np.ndarray, tol: float = 1e-12,
             derivative: bool = True) -> tuple:
        """Everything an activation layer needs on a Gram, each 1-D expectation computed once per
        distinct variance: ((V(qa), V(qb), C), (D(qa), D(qb), C_d) or None, error bound)."""
        self._check_numeric()
        qs, ia, ib = _unique(qa, qb)
        joint = self._closed_pair(derivative)
        if joint is not None:  # C and C_d share their sub-expressions (arccos c for ReLU)
            values = joint(qa, qb, cv)
            totals = [self.one(qs, d)[i] for d in (False, True)[:len(values)] for i in (ia, ib)]
            first = (totals[0], totals[1], values[0])
            return first, ((totals[2], totals[3], values[1]) if derivative else None), 0.0
        out, error = [], 0.0
        for deriv in (False, True)[:2 if derivative else 1]:
            totals = self.one(qs, deriv)
            values, err = self.two(qa, qb, cv, deriv, tol, totals)
            out.append((totals[ia], totals[ib], values))
            error = max(error, err)
        return out[0], (out[1] if derivative else None), error

    def both(self, qa, qb, cv, tol: float = 1e-12) -> tuple:
        """(C, C_d, error bound) at once."""
        C, e1 = self.two(qa, qb, cv, False, tol)
        Cd, e2 = self.two(qa, qb, cv, True, tol)
        return C, Cd, max(e1, e2)


@lru_cache(maxsize=512)
def _form(act: Activation, name: str) -> sp.Expr:
    phi, dphi = (act(x), act(y)), (act.derivative(x), act.derivative(y))
    if name in ("D", "Cd") and _has_delta(dphi[0]):
        raise DivergenceError(
            f"the NTK of {act.name} is not defined: φ′ contains a Dirac delta, so E φ′(u)φ′(v) "
            "diverges; ask for the NNGP only (net.nngp(X))")
    if name == "V":
        return expect(phi[0] ** 2, x, q)
    if name == "D":
        return expect(dphi[0] ** 2, x, q)
    f = phi if name == "C" else dphi
    return expect2(f[0] * f[1], x, y, q1, q2, c)


@lru_cache(maxsize=128)
def dual_kernel(act: Activation) -> DualKernel:
    """The (cached) dual kernel of an activation."""
    return DualKernel(act)


# --- numerics ----------------------------------------------------------------------------------


def _unique(qa: np.ndarray, qb: np.ndarray):
    """The distinct variances and the index of each entry of qa, qb into them."""
    values, inverse = np.unique(np.concatenate([qa.ravel(), qb.ravel()]), return_inverse=True)
    return values, inverse[:qa.size].reshape(qa.shape), inverse[qa.size:].reshape(qb.shape)


def _quadrature(f, qa, qb, cv, kinks, tol):
    from derive.gaussian.quadrature import np_expectation_2d

    qa, qb, cv = np.broadcast_arrays(qa, qb, cv)
    return np.asarray(np_expectation_2d(lambda u, v: f(u) * f(v), qa, qb, cv, kinks, kinks,
                                        rtol=max(tol / 10, 1e-14)), dtype=float)


@lru_cache(maxsize=16)
def _hermite_functions(step: float, rows: int):
    """Grid z, trapezoid weights e^{−z²/4} h/√(2π) and ψ_k(z) = He_k(z) e^{−z²/4}/√k! for k < rows,
    on |z| ≤ √(4 rows + 2) + 12 (beyond the turning point of ψ_k, where it decays like a Gaussian)."""
    half = math.sqrt(4 * rows + 2) + 12.0
    z = np.arange(-half, half + step / 2, step)
    psi = np.empty((rows, z.size))
    psi[0] = np.exp(-z * z / 4)
    psi[1] = z * psi[0]
    for k in range(1, rows - 1):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1)
    weights = psi[0] * step / math.sqrt(2 * math.pi)
    return z, weights, psi


def _rows(k_max: int) -> int:
    """Rows of ψ to build for coefficients up to k_max: a multiple of 64 (few cached grids)."""
    return 64 * (k_max // 64 + 1)


def hermite_coefficients(f, qs: np.ndarray, k_max: int, step: float = _STEP) -> np.ndarray:
    """a_k(q) = E[f(√q z) He_k(z)]/√k! for k ≤ k_max (≤ K_MAX): an array (len(qs), k_max + 1)."""
    z, weights, psi = _hermite_functions(step, _rows(k_max))
    values = f(np.sqrt(qs)[:, None] * z[None, :]) * weights
    if not np.all(np.isfinite(values)):
        raise NumericError("the activation is not finite on the quadrature grid (it grows too fast "
                           "for its Gaussian expectations to be computed this way)")
    return values @ psi[:k_max + 1].T


def _converged(compute, tol: float) -> tuple:
    """compute(step) at the largest step whose result agrees with compute(step/2) to tol/100
    (relative to max(1, |result|)): (result, estimated error, step)."""
    step = _STEP
    for _ in range(4):
        coarse, fine = compute(step), compute(step / 2)
        error = float(np.max(np.abs(coarse - fine)))
        if error <= tol / 100 * max(1.0, float(np.max(np.abs(fine)))):
            break
        step /= 2
    return coarse, error, step


def _coefficients(f, qs: np.ndarray, k_max: int, tol: float) -> tuple:
    """Hermite coefficients at `qs` and an estimate of their absolute error (step halving at
    the smallest and largest variance)."""
    probe = np.unique(qs[[0, -1]])
    _, error, step = _converged(lambda h: hermite_coefficients(f, probe, k_max, h), tol)
    return hermite_coefficients(f, qs, k_max, step), error


def smooth_expectation(g, qv: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """E g(√q z) for a smooth (analytic) g by the trapezoid rule on the grid of the Hermite
    projections, elementwise over qv; the step is halved until it agrees at the extreme q."""
    qv = np.asarray(qv, dtype=float)
    qs, inverse = np.unique(qv.ravel(), return_inverse=True)

    def rule(values, h):
        z, weights, psi = _hermite_functions(h, 64)
        return (g(np.sqrt(values)[:, None] * z[None, :]) * weights) @ psi[0]

    _, _, step = _converged(lambda h: rule(qs[[0, -1]], h), tol)
    return rule(qs, step)[inverse].reshape(qv.shape)


def _mehler(f, qa, qb, cv, totals, tol):
    """Σ_k c^k a_k(qa) a_k(qb) with K chosen by the tail bound; quadrature where it cannot be met.

    `totals` are V (or D) at the distinct variances (np.unique order).  Entries with c = 1 and
    qa = qb are V exactly.  Two tiers: K for the bulk of the entries (|c| up to its 99th
    percentile) on the whole Gram, a larger K on the few entries with |c| above it."""
    qs, ia, ib = _unique(qa, qb)
    cv = np.broadcast_to(cv, np.broadcast(qa, qb, cv).shape)
    scale = np.sqrt(np.maximum(totals, 1e-300))
    exact = (cv == 1.0) & (ia == ib)
    c_abs = np.abs(cv)
    c_abs[exact] = 0.0
    # pick the K's from a sample of variances, then bound every entry with its own tails
    sample = np.unique(np.linspace(0, qs.size - 1, min(qs.size, 9)).round().astype(int))
    a_sample = hermite_coefficients(f, qs[sample], K_MAX)
    tails = np.maximum(totals[sample, None] - np.cumsum(a_sample**2, axis=1), 0.0)
    ratio = np.max(tails / scale[sample, None] ** 2, axis=0)  # τ(K) = max T(q)/V(q)

    def terms(c_top: float) -> int:
        powers = np.exp((np.arange(K_MAX + 1) + 1) * math.log(max(c_top, 1e-300)))
        ok = np.flatnonzero(powers * ratio <= tol / 2)
        return int(ok[0]) if ok.size else K_MAX

    c_max = float(c_abs.max(initial=0.0))
    c_bulk = float(np.quantile(c_abs, 0.99)) if c_abs.size > 10_000 else c_max
    K_bulk, K_top = terms(c_bulk), terms(c_max)
    if K_top - K_bulk < 16:
        K_bulk, c_bulk = K_top, c_max
    a, coef_error = _coefficients(f, qs, K_top, tol)
    result = _horner(a[:, :K_bulk + 1], ia, ib, cv)
    top = c_abs > c_bulk
    full = lambda v: np.broadcast_to(v, cv.shape)[top]  # noqa: E731
    if top.any():
        result[top] = _horner(a, full(ia), full(ib), cv[top])
    result[exact] = np.broadcast_to(totals[ia], cv.shape)[exact]
    error = 2 * coef_error * float(np.max(np.sum(np.abs(a), axis=1)) / np.min(scale) ** 2)
    tail = {K: np.sqrt(np.maximum(totals - np.sum(a[:, :K + 1] ** 2, axis=1), 0.0)) / scale  # √(T/V)
            for K in {K_bulk, K_top}}
    worst = max(float(np.max(tail[K_bulk])) ** 2 * c_bulk ** (K_bulk + 1),
                float(np.max(tail[K_top])) ** 2 * c_max ** (K_top + 1))
    if worst <= tol:  # every entry meets the bound: no per-entry check needed
        return result, error + worst
    relative = tail[K_bulk][ia] * tail[K_bulk][ib] * c_abs ** (K_bulk + 1)
    relative[top] = tail[K_top][full(ia)] * tail[K_top][full(ib)] * c_abs[top] ** (K_top + 1)
    bad = relative > tol
    error += float(np.max(np.where(bad, 0.0, relative), initial=0.0))
    if bad.any():
        result[bad] = _quadrature(f, np.broadcast_to(qa, cv.shape)[bad], np.broadcast_to(qb, cv.shape)[bad],
                                  cv[bad], [], tol)
    return result, error


def _horner(a: np.ndarray, ia: np.ndarray, ib: np.ndarray, cv: np.ndarray, rows: int = 32) -> np.ndarray:
    """Σ_k c^k a_k[ia] a_k[ib] by Horner's rule.  For a Gram (ia a column, ib a row) in blocks of
    rows that stay in cache, on two threads (numpy releases the GIL); otherwise elementwise on
    the flattened arrays."""
    at = np.ascontiguousarray(a.T)  # (K + 1, m)
    if not (ia.ndim == 2 and ia.shape[1] == 1 and ib.ndim == 2 and ib.shape[0] == 1):
        shape = cv.shape
        ia, ib, cf = (np.broadcast_to(v, shape).ravel() for v in (ia, ib, cv))
        acc = at[-1, ia] * at[-1, ib]
        for k in range(at.shape[0] - 2, -1, -1):
            acc *= cf
            acc += at[k, ia] * at[k, ib]
        return acc.reshape(shape)
    left, right = at[:, ia[:, 0]], at[:, ib[0]]  # (K + 1, n), (K + 1, m)
    out = np.empty(cv.shape)

    def block(start):
        rows_ = slice(start, start + rows)
        cb, lb = cv[rows_], left[:, rows_, None]
        acc = lb[-1] * right[-1]
        term = np.empty_like(acc)
        for k in range(at.shape[0] - 2, -1, -1):
            acc *= cb
            np.multiply(lb[k], right[k], out=term)
            acc += term
        out[rows_] = acc

    starts = range(0, cv.shape[0], rows)
    if cv.size < 65536:
        for start in starts:
            block(start)
    else:
        list(_pool().map(block, starts))
    return out


@cache
def _pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="derive-horner")
