"""Benchmark: the tanh phase diagram (q*, χ₁, c*, ξ_c) on a 1000 × 1000 (σ_w², σ_b²) grid.

Compared in one run against the baselines a user would otherwise write:

1. vectorised numpy, Gauss–Hermite with 80 nodes, Newton's method on the q- and c-maps over
   the grid (1-D rule for q, 80 × 80 product rule for c; slopes from Price's theorem), timed on a 1 % sub-grid
   (every 10th row and column) and extrapolated ×100;
2. scipy.integrate.quad per point (fixed-point iteration of q with quad, c* by brentq on the
   c-map with nested quad), timed on a few points and extrapolated.

Accuracy: every method against a reference at random grid points computed independently of
derive's tables -- brentq on np_expectation_1d / np_expectation_2d (relative tolerance 1e-14),
with V − C = E[(φ(u) − φ(v))²]/2 integrated as such (differencing V and C would lose digits).
Relative errors for q*, χ₁, ξ_c; absolute for c*.  ξ_c is ill-conditioned next to the
critical line (ξ_c → ∞; δξ/ξ = δχ_c/|log χ_c|), so its error is reported where ξ_c < 1000.

derive's times: the first call in a fresh process (a new interpreter, after ``import derive``
and ``MeanField("tanh")``, which are timed apart) without the on-disk table cache
(DERIVE_CACHE=0: every table sampled) and with it (a cache folder filled by an earlier
process), each the best of --fresh runs; and a second call in one process (tables in memory).
The benchmark's own cache folder is a temporary one: the user's is neither read nor written.

BLAS runs single-threaded for every method (set before numpy is imported; derive's mean-field
numerics limit OpenBLAS to one thread themselves): the products here are small, and on a shared
two-core machine threaded BLAS spends its time contending.  Times are printed, never
asserted.  Run: python benchmarks/bench_phase_diagram.py [--n 1000] [--points 60] [--fresh 3]
"""

import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import integrate, optimize  # noqa: E402

from derive.gaussian.equal_variances import equal_variances  # noqa: E402
from derive.gaussian.moments import moments_of  # noqa: E402
from derive.gaussian.quadrature import np_expectation_1d, np_expectation_2d  # noqa: E402
from derive.meanfield import MeanField  # noqa: E402

W_RANGE, B_RANGE = (0.5, 4.0), (0.0, 0.3)


def sech2(t):
    with np.errstate(over="ignore"):  # cosh overflows to inf far out, where sech² is 0
        return 1 / np.cosh(t) ** 2


# --- reference: brentq on derive's vectorised quadrature primitives (not its tables) ----------


def reference(w, b):
    V = lambda q: float(np_expectation_1d(lambda t: np.tanh(t) ** 2, q, rtol=1e-14))  # noqa: E731
    q = optimize.brentq(lambda q: w * V(q) + b - q, 1e-12, 10.0, xtol=1e-16, rtol=1e-15)
    D = float(np_expectation_1d(lambda t: sech2(t) ** 2, q, rtol=1e-14))
    chi1 = w * D
    if chi1 <= 1:
        return q, 1.0, chi1, -1 / np.log(chi1)

    def excess(c):  # G(c) - q/w, G = (V - C)/(1 - c) = E[(φ(u) - φ(v))²] / (2 (1 - c)): no cancellation
        half_square = lambda u, v: (np.tanh(u) - np.tanh(v)) ** 2 / 2  # noqa: E731
        return float(np_expectation_2d(half_square, q, q, c, rtol=1e-14)) / (1 - c) - q / w

    lo = 0.0 if excess(0.0) < 0 else -1.0
    top = 1 - 1e-6  # reference points are drawn where c* < 1 - 1e-6 (see main)
    if excess(top) < 0:
        return None
    c = optimize.brentq(excess, lo, top, xtol=1e-15, rtol=1e-15)
    chi_c = w * float(np_expectation_2d(lambda u, v: sech2(u) * sech2(v), q, q, c, rtol=1e-14))
    return q, c, chi1, -1 / np.log(chi_c)


# --- baseline 1: Gauss-Hermite 80 with Newton's method, vectorised (what an expert writes) -----


def gauss_hermite(w, b, nodes=80, tol=1e-13, max_iter=60, chunk=256):
    """Newton on q = w E tanh²(√q z) + b (slope from Price's theorem, E[φ′² + φφ″]) and on the
    c-map (slope q E φ′(u)φ′(v) / q), every expectation by the nodes-point Gauss–Hermite rule."""
    x, wts = np.polynomial.hermite_e.hermegauss(nodes)
    wts = wts / wts.sum()
    q = np.ones_like(w)
    active = np.arange(w.size)
    for _ in range(max_iter):
        if not active.size:
            break
        t = np.tanh(np.sqrt(q[active])[:, None] * x)
        s2 = 1 - t * t
        value = w[active] * (t * t @ wts) + b[active] - q[active]
        slope = w[active] * ((s2 * s2 - 2 * t * t * s2) @ wts) - 1
        step = value / slope
        q[active] = np.maximum(q[active] - step, 1e-300)
        active = active[np.abs(step) > tol * q[active]]
    chi1 = w * (sech2(np.sqrt(q)[:, None] * x) ** 2 @ wts)
    c = np.where(chi1 > 1, 0.0, 1.0)
    chi_c = chi1.copy()
    todo = np.flatnonzero(chi1 > 1)
    for start in range(0, todo.size, chunk):  # the 80 x 80 rule, in chunks that fit in memory
        idx = todo[start:start + chunk]
        s = np.sqrt(q[idx])[:, None, None]
        u = s * x[None, :, None]
        cc, live = c[idx].copy(), np.arange(idx.size)
        for _ in range(max_iter):
            if not live.size:
                break
            ci = cc[live][:, None, None]
            v = s[live] * (ci * x[None, :, None] + np.sqrt(1 - ci**2) * x[None, None, :])
            E = np.einsum("nij,i,j->n", np.tanh(u[live]) * np.tanh(v), wts, wts)
            Ed = np.einsum("nij,i,j->n", sech2(u[live]) * sech2(v), wts, wts)
            value = (w[idx][live] * E + b[idx][live]) / q[idx][live] - cc[live]
            step = value / (w[idx][live] * Ed - 1)
            cc[live] = np.minimum(cc[live] - step, 1 - 1e-15)
            live = live[np.abs(step) > tol]
        c[idx] = cc
        ci = cc[:, None, None]
        v = s * (ci * x[None, :, None] + np.sqrt(1 - ci**2) * x[None, None, :])
        chi_c[idx] = w[idx] * np.einsum("nij,i,j->n", sech2(u) * sech2(v), wts, wts)
    return q, c, chi1, -1 / np.log(chi_c)


# --- baseline 2: scipy.integrate.quad per point ----------------------------------------------


def scipy_quad(w, b):
    gauss = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    E = lambda f: integrate.quad(lambda z: f(z) * gauss(z), -np.inf, np.inf, epsabs=1e-14)[0]  # noqa: E731
    q = 1.0
    for _ in range(10000):
        new = w * E(lambda z, q=q: np.tanh(np.sqrt(q) * z) ** 2) + b
        if abs(new - q) <= 1e-12 * new:
            break
        q = new
    q = new
    chi1 = w * E(lambda z: sech2(np.sqrt(q) * z) ** 2)
    if chi1 <= 1:
        return q, 1.0, chi1, -1 / np.log(chi1)
    V = E(lambda z: np.tanh(np.sqrt(q) * z) ** 2)

    def C(c, f=np.tanh):
        r = np.sqrt(1 - c * c)
        inner = lambda z1: E(lambda z2: f(np.sqrt(q) * (c * z1 + r * z2)))  # noqa: E731
        return E(lambda z1: f(np.sqrt(q) * z1) * inner(z1))

    c = optimize.brentq(lambda c: (V - C(c)) / (1 - c) - q / w, 0.0, 1 - 1e-9, xtol=1e-12)
    chi_c = w * C(c, sech2)
    return q, c, chi1, -1 / np.log(chi_c)


# --- derive in a fresh process ------------------------------------------------------------------

_FRESH = """
import time
start = time.perf_counter()
import numpy as np
from derive.meanfield import MeanField
imported = time.perf_counter()
mf = MeanField("tanh")
built = time.perf_counter()
mf.phase_diagram(np.linspace({w0}, {w1}, {n}), np.linspace({b0}, {b1}, {n}))
print(imported - start, built - imported, time.perf_counter() - built)
"""


def fresh_process(n, cache: bool, runs: int):
    """(import, MeanField(), first phase_diagram) in s, each the best over `runs` new interpreters,
    with the table cache off or in this benchmark's cache folder."""
    code = _FRESH.format(w0=W_RANGE[0], w1=W_RANGE[1], b0=B_RANGE[0], b1=B_RANGE[1], n=n)
    env = dict(os.environ, DERIVE_CACHE="1" if cache else "0")
    times = [[float(v) for v in subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                               capture_output=True, text=True).stdout.split()]
             for _ in range(runs)]
    return np.min(times, axis=0)


# --- the run ----------------------------------------------------------------------------------


def errors(values, ref):
    q, c, chi1, xi = (np.asarray(v, dtype=float) for v in values)
    rq, rc, rchi, rxi = (np.asarray(v, dtype=float) for v in ref)
    well = rxi < 1e3
    return {"q*": np.max(np.abs(q / rq - 1)), "c* (abs)": np.max(np.abs(c - rc)),
            "chi1": np.max(np.abs(chi1 / rchi - 1)),
            "xi_c (xi<1e3)": np.max(np.abs(xi[well] / rxi[well] - 1)) if well.any() else np.nan}


def main():
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as folder:
        os.environ["XDG_CACHE_HOME"] = folder  # derive's table cache, read when used
        run()


def run():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="grid points per axis")
    parser.add_argument("--points", type=int, default=60, help="random points checked against the reference")
    parser.add_argument("--quad-points", type=int, default=3, help="points timed with scipy quad")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes per cold time (best of)")
    args = parser.parse_args()
    n = args.n
    w = np.linspace(*W_RANGE, n)
    b = np.linspace(*B_RANGE, n)
    print(f"tanh phase diagram, {n} x {n} grid, sigma_w2 in {W_RANGE}, sigma_b2 in {B_RANGE}")

    imported, built, cold = fresh_process(n, cache=False, runs=args.fresh)
    fresh_process(n, cache=True, runs=1)  # fills the cache folder
    cold_cached = fresh_process(n, cache=True, runs=args.fresh)[2]
    mf = MeanField("tanh")
    mf.phase_diagram(w, b)
    warm = np.inf
    for _ in range(args.fresh):
        start = time.perf_counter()
        diagram = mf.phase_diagram(w, b)
        warm = min(warm, time.perf_counter() - start)
    print(f"derive, first call in a fresh process: {cold:.2f} s without the table cache (tables sampled), "
          f"{cold_cached:.2f} s with it (import {imported:.2f} s and MeanField() {built:.2f} s before)")
    print(f"derive, second call in one process: {warm:.2f} s (tables in memory)")
    print(f"  {diagram.method}")

    sub = slice(None, None, 10)
    W, B = np.meshgrid(w[sub], b[sub], indexing="ij")
    start = time.perf_counter()
    gh = gauss_hermite(W.ravel(), B.ravel())
    t_gh = (time.perf_counter() - start) * (n * n) / W.size
    print(f"Gauss-Hermite 80 with Newton's method: {t_gh:.0f} s extrapolated from {W.size} points")

    rng = np.random.default_rng(0)  # random points of the sub-grid, so that every method has them
    coarse = rng.integers((0, 1), W.shape, (args.points, 2))  # sigma_b2 > 0: q* > 0 everywhere
    picks = [(10 * int(i), 10 * int(j)) for i, j in coarse]
    start = time.perf_counter()
    quad = [scipy_quad(w[i], b[j]) for i, j in picks[:args.quad_points]]
    t_quad = (time.perf_counter() - start) / args.quad_points * n * n
    print(f"scipy quad per point: {t_quad:.0f} s extrapolated from {args.quad_points} points")

    print(f"\nspeed-up of derive (second call / first without cache): vs Gauss-Hermite "
          f"{t_gh / warm:.0f}x / {t_gh / cold:.0f}x, "
          f"vs scipy quad {t_quad / warm:.0f}x / {t_quad / cold:.0f}x")

    refs = [reference(w[i], b[j]) for i, j in picks]
    keep = [k for k, r in enumerate(refs) if r is not None]  # c* within 1e-6 of 1: too close to call
    picks, coarse = [picks[k] for k in keep], coarse[keep]
    quad = [quad[k] for k in keep if k < len(quad)]
    ref = np.array([refs[k] for k in keep]).T
    names = ("q_star", "c_star", "chi1", "xi_c")
    ours = [np.array([getattr(diagram, k)[i, j] for i, j in picks]) for k in names]
    print(f"\nmax error over {len(picks)} random grid points against the reference:")
    print(f"  derive:        {errors(ours, ref)}")
    flat = [i * W.shape[1] + j for i, j in coarse]
    print(f"  Gauss-Hermite: {errors([v[flat] for v in gh], ref)}")
    if quad:
        print(f"  scipy quad:    {errors(np.array(quad).T, ref[:, :len(quad)])}")
    fns = equal_variances(mf.activation)
    counts = ", ".join(f"{count} {name}" for name, count in fns.panel_counts.items())
    print(f"\ntables (panels): {counts}; estimated error {fns.error:.1e}; "
          f"Mehler source: {moments_of(mf.activation).methods}")


if __name__ == "__main__":
    main()
