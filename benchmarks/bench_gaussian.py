"""Benchmark: Gaussian expectations in numpy, the mpmath reference, closed forms, and import time.

1. E[tanh(√q z)²] at 10⁶ values of q (log-uniform in [1e-6, 1e4]) through derive.lambdify (the
   checked log-q Chebyshev interpolant; cold = including building it, warm = a second call), and
   through np_expectation_1d directly (timed on 10⁴ values, extrapolated), against the loop a
   user would write, scipy.integrate.quad per value (split at 0, epsrel 1e-12; timed on a subset
   and extrapolated).  Accuracy of all three against mp_expectation (25 digits) at random q.
2. mp_expectation in 2-D at 30 digits per point (tanh·tanh, relu·relu, erf·erf by the Mehler
   expansion; max(x, y) by iterated quadrature).  The former nested tanh-sinh took ~250 s per point.
3. Closed forms for all built-in activations: derive.expect of φ², φ′² and derive.expect2 of
   φ(x)φ(y), φ′(x)φ′(y), from a cold cache.
4. ``import derive`` in a fresh interpreter (median of 5).

Times and ratios are printed, never asserted.  Run: python benchmarks/bench_gaussian.py [--quick]
"""

import argparse
import statistics
import subprocess
import sys
import time

import mpmath as mp
import numpy as np
import sympy as sp
from scipy import integrate

import derive
from derive.activations import BUILTINS
from derive.gaussian import GaussianExpectation
from derive.gaussian.quadrature import np_expectation_1d
from derive.gaussian.reference import mp_expectation
from derive.symbols import c, q, q1, q2, x, y


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _quad_loop(qs):
    def one(v):
        s = np.sqrt(v)
        g = lambda z: np.tanh(s * z) ** 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
        left = integrate.quad(g, -np.inf, 0, epsabs=0, epsrel=1e-12, limit=200)[0]
        right = integrate.quad(g, 0, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]
        return left + right

    return np.array([one(v) for v in qs])


def _max_relative_error(values, qs):
    errors = []
    for value, v in zip(values, qs, strict=True):
        reference = mp_expectation(sp.tanh(x) ** 2, (x,), (sp.Float(v, 30),), dps=25)
        errors.append(float(abs(mp.mpf(float(value)) - reference) / reference))
    return max(errors)


def one_dimensional(n: int, n_quad: int, n_check: int):
    rng = np.random.default_rng(0)
    qs = 10 ** rng.uniform(-6, 4, n)
    f = derive.lambdify(GaussianExpectation(sp.tanh(x) ** 2, (x,), (q,)), [q])
    values, cold = _timed(f, qs)
    _, warm = _timed(f, qs)
    direct_n = min(n, 10_000)
    direct, t_direct = _timed(np_expectation_1d, lambda t: np.tanh(t) ** 2, qs[:direct_n])
    quad_values, t_quad = _timed(_quad_loop, qs[:n_quad])
    per_quad = t_quad / n_quad
    check = rng.choice(n, n_check, replace=False)
    lambdify_error = _max_relative_error(values[check], qs[check])
    direct_check = check[check < direct_n]
    direct_error = _max_relative_error(direct[direct_check], qs[direct_check])
    quad_error = _max_relative_error(quad_values[:n_check], qs[:n_check])
    print(f"1. E[tanh(sqrt(q) z)^2] at {n:.0e} values of q in [1e-6, 1e4]")
    print(f"   derive.lambdify (interpolant): cold {cold:.3f} s, warm {warm:.3f} s "
          f"({warm / n * 1e9:.0f} ns per value), max rel. error {lambdify_error:.1e}")
    print(f"   np_expectation_1d (quadrature): {t_direct / direct_n * 1e6:.1f} us per value "
          f"(-> {t_direct / direct_n * n:.1f} s for all), max rel. error {direct_error:.1e}")
    print(f"   scipy.integrate.quad loop: {per_quad * 1e6:.0f} us per value "
          f"(-> {per_quad * n:.0f} s for all, timed on {n_quad}), max rel. error {quad_error:.1e}")
    print(f"   ratio quad / lambdify: warm {per_quad * n / warm:.0f}x, cold {per_quad * n / cold:.0f}x; "
          f"quad / np_expectation_1d: {per_quad / (t_direct / direct_n):.1f}x")


def two_dimensional_reference():
    print("2. mp_expectation in 2-D at 30 digits")
    cases = [("tanh*tanh", sp.tanh(x) * sp.tanh(y)), ("relu*relu", sp.Max(0, x) * sp.Max(0, y)),
             ("erf*erf", sp.erf(x) * sp.erf(y))]
    for name, body in cases:
        for point in [(1, 2, sp.Rational(1, 3)), (1, 1, sp.Rational(9, 10))]:
            _, seconds = _timed(mp_expectation, body, (x, y), point, 30)
            print(f"   {name:10s} (q1, q2, c) = {tuple(map(str, point))}: {seconds:.1f} s")
    point = (1, 2, sp.Rational(1, 3))
    _, seconds = _timed(mp_expectation, sp.Max(x, y), (x, y), point, 30)
    print(f"   max(x, y)  (q1, q2, c) = {tuple(map(str, point))}: {seconds:.1f} s (not separable: iterated "
          "quadrature; so are products with |c| > 0.9)")


def closed_forms():
    start = time.perf_counter()
    counts = {"closed": 0, "unevaluated": 0, "error": 0}
    for name in BUILTINS:
        phi = derive.activation(name)
        d = phi.derivative()
        jobs = [(derive.expect, phi.expr**2, x, q), (derive.expect, d**2, x, q),
                (derive.expect2, phi(x) * phi(y), x, y, q1, q2, c),
                (derive.expect2, d * d.xreplace({x: y}), x, y, q1, q2, c)]
        for function, *arguments in jobs:
            try:
                result = function(*arguments)
            except derive.DeriveError:  # e.g. E[δ(x)²] of the step function diverges
                counts["error"] += 1
                continue
            counts["unevaluated" if result.has(GaussianExpectation) else "closed"] += 1
    seconds = time.perf_counter() - start
    print(f"3. expect/expect2 of phi^2, phi'^2, phi(x)phi(y), phi'(x)phi'(y) for {len(BUILTINS)} built-in "
          f"activations: {seconds:.1f} s from a cold cache ({counts})")


def import_time():
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import derive"], check=True)
        times.append(time.perf_counter() - start)
    baseline = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - start)
    print(f"4. import derive in a fresh interpreter: {statistics.median(times):.3f} s "
          f"(bare interpreter {statistics.median(baseline):.3f} s)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10^5 values, fewer checks, no 2-D reference")
    options = parser.parse_args()
    n = 100_000 if options.quick else 1_000_000
    one_dimensional(n, n_quad=100 if options.quick else 500, n_check=20 if options.quick else 100)
    if not options.quick:
        two_dimensional_reference()
    closed_forms()
    import_time()


if __name__ == "__main__":
    main()
