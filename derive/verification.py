"""Verification: is a formula right, and does its numpy evaluator agree with it?

:func:`verify` evaluates an expression three ways at a few points -- (a) its numpy
evaluator (:func:`derive.lambdify`), (b) mpmath at `dps` digits, (c) direct
mpmath quadrature of the integral that defines it (``reference=``, e.g. the
unevaluated :class:`~derive.gaussian.GaussianExpectation` that ``expect``
closed) -- and returns a :class:`VerificationReport` with the largest relative
error of each comparison and where it occurs.

:func:`check` answers "is my hand calculation right?": *equal* (symbolically when
SymPy reduces the difference to 0, otherwise numerically at high precision at
random points, saying which) or *not equal*, with the point where the two differ
most, by how much, and a hint when they differ by a constant factor or sign.

>>> import sympy as sp
>>> from derive.symbols import x, q
>>> from derive.gaussian import GaussianExpectation
>>> E = GaussianExpectation(x**2 * sp.Heaviside(x), (x,), (q,))
>>> check(q / 2, E, [q], n_points=2, dps=20).equal
True
>>> result = check(q, E, [q], n_points=2, dps=20)
>>> result.equal, result.hint
(False, 'claimed = 2 × reference at every point (a factor 2)')
"""

from __future__ import annotations

import html
import math
import random
from dataclasses import dataclass

import mpmath as mp
import sympy as sp

from derive.errors import NumericError
from derive.parsing import as_expr

#: correlation-like symbols, sampled in [-0.999, 0.999]
_CORRELATIONS = {"c", "c_star", "c_1", "c_2"}
#: the default ranges: positive symbols log-uniform over twelve decades, reals over ±1e3
POSITIVE_RANGE, REAL_RANGE, CORRELATION_RANGE = (1e-6, 1e6), (-1e3, 1e3), (-0.999, 0.999)


# --- points -------------------------------------------------------------------------------------


def _range(s, domain: dict) -> tuple:
    if s in domain:
        return tuple(map(float, domain[s]))
    if s.name in _CORRELATIONS:
        return CORRELATION_RANGE
    if s.is_positive or s.is_nonnegative:
        return POSITIVE_RANGE
    return REAL_RANGE


def _draws(low: float, high: float, n: int, rng) -> list:
    """n values in [low, high]: both ends first, the rest log-uniform where the range is positive
    (every decade equally likely), else uniform in sign and magnitude (log-uniform in |x| from
    1e-3 of the largest end)."""
    ends = [low, high][:n]
    rest = n - len(ends)
    if low > 0:
        inner = [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(rest)]
    else:
        top = max(abs(low), abs(high))
        magnitude = (math.log(top * 1e-3), math.log(top))
        inner = [max(low, min(high, rng.choice((-1, 1)) * math.exp(rng.uniform(*magnitude))))
                 for _ in range(rest)]
    return ends + inner


def random_points(args, n: int = 5, seed: int = 0, domain: dict | None = None) -> tuple:
    """`n` points {symbol: exact Rational} over each symbol's whole domain: the range from
    `domain`, else correlations (c, c*) in [-0.999, 0.999], positive or nonnegative symbols
    log-uniform in [1e-6, 1e6] (both ends always included, so an error placed only at large or
    small values is found), other reals in [-1e3, 1e3].  Rationals are exact, so every evaluator
    sees the same point."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise NumericError(f"n_points = {n!r} must be an integer from 1 to 1000")
    rng = random.Random(seed)
    domain = {as_expr(k): v for k, v in (domain or {}).items()}
    columns = {}
    for s in args:
        values = _draws(*_range(s, domain), n, rng)
        rng.shuffle(values)
        columns[s] = values
    return tuple({s: sp.nsimplify(sp.Float(columns[s][i], 8), rational=True) for s in args} for i in range(n))


def sampled_ranges(args, domain: dict | None = None) -> str:
    """The ranges :func:`random_points` samples, in words (e.g. 'q in [1e-06, 1e+06]')."""
    domain = {as_expr(k): v for k, v in (domain or {}).items()}
    return ", ".join(f"{s} in [{_range(s, domain)[0]:g}, {_range(s, domain)[1]:g}]" for s in args)


def _as_points(points, args) -> tuple:
    """Points given as dicts {symbol or name: value} or as sequences in the order of `args`."""
    out = []
    for p in points:
        if isinstance(p, dict):
            p = {as_expr(k): v for k, v in p.items()}
            missing = set(args) - set(p)
            if missing:
                raise NumericError(f"point {p} lacks values for {sorted(map(str, missing))}")
            out.append({s: sp.nsimplify(p[s], rational=True) for s in args})
        else:
            values = list(p) if hasattr(p, "__len__") else [p]
            if len(values) != len(args):
                raise NumericError(f"point {p} has {len(values)} values for {len(args)} arguments")
            out.append({s: sp.nsimplify(v, rational=True) for s, v in zip(args, values, strict=True)})
    return tuple(out)


def _mp_value(expr: sp.Expr, point: dict, dps: int, complex_ok: bool = False):
    """expr at the exact point, to `dps` digits (Gaussian expectations by mpmath quadrature); an
    mpc when the value is complex and `complex_ok`, else :class:`NumericError`."""
    value = sp.N(expr.xreplace(point), dps)
    if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise NumericError(f"{expr} does not evaluate to a finite number at {_show(point)}: {value}")
    re, im = value.as_real_imag()
    with mp.workdps(dps):
        if abs(im) <= 10 ** (-dps // 2) * max(1, abs(re)):
            return mp.mpf(str(re))
        if complex_ok:
            return mp.mpc(str(re), str(im))
    raise NumericError(f"{expr} is complex ({value}) at {_show(point)}")


def _show(point: dict) -> str:
    return ", ".join(f"{s}={float(v):.6g}" for s, v in point.items())


def _relative(a, b) -> float:
    """|a − b| / |b| (|a − b| when b = 0); inf when a is not finite."""
    a, b = mp.mpmathify(a), mp.mpmathify(b)
    if not mp.isfinite(a):
        return math.inf
    diff = abs(a - b)
    return float(diff / abs(b)) if b else float(diff)


# --- verify -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One comparison: the largest relative error over the points and where it occurs."""

    name: str
    max_error: float
    worst_point: dict
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of :func:`verify`: one :class:`Comparison` per pair of evaluations."""

    expr: sp.Expr
    args: tuple
    points: tuple
    comparisons: tuple

    @property
    def passed(self) -> bool:
        return all(cmp.passed for cmp in self.comparisons)

    def _rows(self):
        for cmp in self.comparisons:
            yield (cmp.name, f"{cmp.max_error:.2e}", f"{cmp.tolerance:.0e}", _show(cmp.worst_point),
                   "pass" if cmp.passed else "FAIL")

    _HEADER = ("comparison", "max rel. error", "tolerance", "worst point", "")

    def __str__(self) -> str:
        rows = [self._HEADER, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
        lines = [f"verify {self.expr} at {len(self.points)} points: {'PASSED' if self.passed else 'FAILED'}"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                       for row in self._rows())
        status = "passed" if self.passed else "<b>FAILED</b>"
        return (f"<p>verify <code>{html.escape(str(self.expr))}</code> at {len(self.points)} points: "
                f"{status}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _has_expectation(expr) -> bool:
    from derive.gaussian import GaussianExpectation

    return expr.has(GaussianExpectation)


def _two_dimensional(expr) -> bool:
    from derive.gaussian import GaussianExpectation

    return any(len(e.variables) == 2 for e in expr.atoms(GaussianExpectation))


def _quadrature_dps(expr, dps: int, quadrature_dps: int | None) -> int:
    """2-D quadrature costs seconds per point at 20 digits and grows fast: default 20 there."""
    if quadrature_dps is not None:
        return quadrature_dps
    return min(dps, 20) if _two_dimensional(expr) else dps


def verify(expr, args, points=None, *, reference=None, dps: int = 50, quadrature_dps: int | None = None,
           n_points: int = 5, seed: int = 0, domain: dict | None = None,
           numpy_tolerance: float = 1e-10) -> VerificationReport:
    """Compare `expr` evaluated (a) by :func:`derive.lambdify` in float64, (b) by mpmath at `dps`
    digits and, when `reference` is given (an expression with the same value, typically the
    unevaluated :class:`~derive.gaussian.GaussianExpectation` a closed form came from), (c) by mpmath
    quadrature of `reference` at `quadrature_dps` digits (default `dps`; 20 for 2-D integrals).

    `points`: dicts {symbol: value} or value sequences in the order of `args`; default `n_points`
    random points (:func:`random_points` with `seed` and `domain`).  Tolerances: `numpy_tolerance`
    for (a) vs (b); 10^-(p − 5) for (b) vs (c), p the lower of the two precisions.

    >>> import sympy as sp
    >>> from derive.symbols import x, q
    >>> from derive.gaussian import GaussianExpectation
    >>> report = verify(q / 2, [q], reference=GaussianExpectation(sp.Max(0, x)**2, (x,), (q,)),
    ...                 n_points=2, dps=30)
    >>> report.passed, [cmp.name for cmp in report.comparisons]
    (True, ['numpy vs mpmath (30 digits)', 'mpmath vs quadrature of the reference (30 digits)'])
    """
    from derive.numeric import lambdify

    _check_digits(dps, quadrature_dps)
    expr, args = as_expr(expr), tuple(as_expr(a) for a in args)
    points = random_points(args, n_points, seed, domain) if points is None else _as_points(points, args)
    if not points:
        raise NumericError("verify needs at least one point")
    exact_dps = _quadrature_dps(expr, dps, quadrature_dps) if _has_expectation(expr) else dps
    exact = [_mp_value(expr, p, exact_dps, complex_ok=True) for p in points]
    f = lambdify(expr, args, nonfinite="nan")
    numeric = [f(*(float(p[s]) for s in args)) for p in points]
    name = f"numpy vs mpmath ({exact_dps} digits)"
    comparisons = [_comparison(name, numeric, exact, points, numpy_tolerance)]
    if reference is not None:
        reference = as_expr(reference)
        ref_dps = _quadrature_dps(reference, dps, quadrature_dps)
        reference_values = [_mp_value(reference, p, ref_dps, complex_ok=True) for p in points]
        digits = min(exact_dps, ref_dps)
        comparisons.append(_comparison(f"mpmath vs quadrature of the reference ({digits} digits)", exact,
                                       reference_values, points, 10.0 ** (5 - digits)))
    return VerificationReport(expr, args, points, tuple(comparisons))


def _comparison(name, values, references, points, tolerance) -> Comparison:
    errors = [_relative(v, r) for v, r in zip(values, references, strict=True)]
    worst = max(range(len(errors)), key=errors.__getitem__)
    return Comparison(name, errors[worst], points[worst], tolerance)


# --- check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The answer of :func:`check`: equal or not, how that was decided, and where they differ most."""

    claimed: sp.Expr
    reference: sp.Expr
    equal: bool
    method: str
    worst_point: dict | None = None
    claimed_value: str | None = None
    reference_value: str | None = None
    relative_difference: float | None = None
    hint: str = ""

    def __bool__(self) -> bool:
        return self.equal

    def _lines(self) -> list:
        lines = [f"{'EQUAL' if self.equal else 'NOT EQUAL'} ({self.method})"]
        if self.worst_point is not None:
            where = "largest relative difference" if self.equal else "they differ most"
            lines.append(f"{where} at {_show(self.worst_point)}: claimed {self.claimed_value}, "
                         f"reference {self.reference_value}, relative difference "
                         f"{self.relative_difference:.3g}")
        if self.hint:
            lines.append(self.hint)
        return lines

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        first, *rest = map(html.escape, self._lines())
        colour = "green" if self.equal else "red"
        return f"<p><b style='color:{colour}'>{first}</b>" + "".join(f"<br>{r}" for r in rest) + "</p>"


def _symbolically_zero(difference: sp.Expr) -> bool:
    """True when SymPy reduces the difference to 0 (cheap steps; large expressions only expanded)."""
    if difference == 0 or sp.expand(difference) == 0:
        return True
    if sp.count_ops(difference) > 300:
        return False
    try:
        return sp.simplify(difference) == 0
    except Exception:  # simplify raises assorted errors on unusual expressions: no proof, then
        return False


def _exact_constant(value, digits: int):
    """The simple number (rational, or rational × π) that `value` is to `digits`/2 digits, else None:
    a hint never rounds a real discrepancy (1 + 1e-8) into a factor 1."""
    k = sp.nsimplify(float(value), [sp.pi], tolerance=1e-12)
    with mp.workdps(digits):
        exact = mp.mpf(sp.Float(k, digits)._mpf_)
        if abs(value - exact) <= mp.mpf(10) ** (-(digits // 2)) * max(1, abs(exact)):
            return k
    return None


def _hint(claimed_values, reference_values, digits: int = 30) -> str:
    """A constant ratio (factor, sign) or a constant offset between claimed and reference."""
    for name, values in (("claimed", claimed_values), ("reference", reference_values)):
        if any(isinstance(v, mp.mpc) for v in values):
            return f"the {name} value is complex at some points: a function is used outside its real domain"
    pairs = [(a, b) for a, b in zip(claimed_values, reference_values, strict=True) if b]
    if len(pairs) >= 2:
        ratios = [a / b for a, b in pairs]
        if all(abs(r - ratios[0]) <= 1e-9 * abs(ratios[0]) for r in ratios) and ratios[0]:
            k = _exact_constant(ratios[0], digits)
            if k == -1:
                return "claimed = −reference at every point (a sign slip)"
            if k is not None:
                return f"claimed = {k} × reference at every point (a factor {k})"
            return (f"claimed / reference = {mp.nstr(ratios[0], 15)} at every point (close to, but not, "
                    "a simple factor: a small constant error)")
    offsets = [a - b for a, b in zip(claimed_values, reference_values, strict=True)]
    if len(offsets) >= 2 and all(abs(d - offsets[0]) <= 1e-9 * max(1, abs(offsets[0])) for d in offsets):
        offset = _exact_constant(offsets[0], digits)
        shown = offset if offset is not None else mp.nstr(offsets[0], 15)
        return f"claimed − reference = {shown} at every point (an additive constant)"
    return ""


def _check_digits(*values) -> None:
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= 1000):
            raise NumericError(f"dps = {value!r} must be an integer from 1 to 1000 (digits of precision)")


def check(claimed, reference, args, points=None, *, dps: int = 50, quadrature_dps: int | None = None,
          n_points: int = 5, seed: int = 0, domain: dict | None = None) -> CheckResult:
    """Is `claimed` equal to `reference` as functions of `args`?

    First symbolically (SymPy simplifies claimed − reference to 0); otherwise numerically at
    `points` (default `n_points` random points, see :func:`random_points`): both sides in mpmath at
    `dps` digits, Gaussian expectations by quadrature (`quadrature_dps`, default `dps`, 20 for 2-D).
    Equal when the largest relative difference is below 10^-(p − 5), p the precision reached.  The
    result names the point where they differ most and, when the ratio or the difference is the same
    at every point, says so (a factor 2, a sign slip, an additive constant).
    """
    _check_digits(dps, quadrature_dps)
    claimed, reference = as_expr(claimed), as_expr(reference)
    args = tuple(as_expr(a) for a in args)
    free = (claimed.free_symbols | reference.free_symbols) - set(args)
    if free:
        raise NumericError(f"symbols {sorted(map(str, free))} are not among the arguments "
                           f"{[str(a) for a in args]}: add them or substitute numbers")
    if not (_has_expectation(claimed) or _has_expectation(reference)) and \
            _symbolically_zero(claimed - reference):
        return CheckResult(claimed, reference, True, "symbolic: SymPy reduces claimed − reference to 0")
    given = points is not None
    points = _as_points(points, args) if given else random_points(args, n_points, seed, domain)
    claimed_dps = _quadrature_dps(claimed, dps, quadrature_dps)
    reference_dps = _quadrature_dps(reference, dps, quadrature_dps)
    digits = min(claimed_dps, reference_dps)
    a = [_mp_value(claimed, p, claimed_dps, complex_ok=True) for p in points]
    b = [_mp_value(reference, p, reference_dps, complex_ok=True) for p in points]
    errors = [_relative(u, v) for u, v in zip(a, b, strict=True)]
    worst = max(range(len(points)), key=errors.__getitem__)
    equal = errors[worst] <= 10.0 ** (5 - digits)
    where = "given" if given else f"random (both ends of each range included: {sampled_ranges(args, domain)})"
    method = f"numerical: {digits} digits at {len(points)} {where} points"
    return CheckResult(claimed, reference, equal, method, points[worst], mp.nstr(a[worst], 15),
                       mp.nstr(b[worst], 15), errors[worst], "" if equal else _hint(a, b, digits))
