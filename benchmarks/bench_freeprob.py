"""Density of JJᵀ for a depth-8 ReLU network at criticality (σ_w² = 2, σ_b² = 0) at 1000 points:
derive.jacobian_spectrum (Stieltjes inversion) against the Monte Carlo a user would otherwise run
(width-2000 products D_8 W_8 ... D_1 W_1, eigendecomposition, histogram pooled over seeds).

Accuracy of the theory: against a 40-digit refinement (mpmath.findroot on the exact equation
P(z, zG − 1) = 0, started from the float64 value) at 50 of the points.

Accuracy of Monte Carlo: a histogram estimates the mass of each bin, so it is compared with the
exact bin masses (atoms included: ∫ρ over each bin by tanh–sinh, the atoms added to their bins;
the theory's F(e_{i+1}) − F(e_i) from the law's CDF, F(e_0⁻) = 0, is compared with the same), not
with ρ at the bin centres (that comparison is biased by the curvature of ρ, most of all next to its
divergence at 0, and does not decrease with the number of samples).  The atom at 0 (mass 1/2)
stays in the first bin: next to it the density diverges like λ^{−7/8}, so ~5% of the mass lies
below 1e-7 and ~1% below the rounding level of eigvalsh (1e-14), where no threshold can tell a
zero eigenvalue from a small one.  The error printed is the mean over the 40 bins of
|histogram mass − exact mass|/bin width; it decreases as 1/√(number of eigenvalues) until the
finite-width bias O(1/width) is reached.

Ratios: Monte Carlo wall time for its accuracy (number of seeds × the best time of one seed, of
numpy's default BLAS threads and of one thread: on a shared machine two threads can spin against
other load) / the theory's wall time for the same product — the
40 bin masses from the law's CDF (support, atoms and mass check included; no cheaper call exists:
the CDF reuses the mass check's samples, so that loosening its tolerance saves nothing, the
algebraic root finding costs the same at any accuracy, and the support analysis dominates), and
for the 1000-point density at 1e-12.  Theory times: the first call in the process (cold: SymPy
derivation) and the best of 3 fresh spectra (warm: the exact derivations are cached per relation,
as derive caches derivations; every numeric step — continuation, support, atoms, mass check,
CDF — runs again for each fresh spectrum), and for laws not met before in the process (other
depths: SymPy derives their equations first).
Run: python benchmarks/bench_freeprob.py
"""

import time

import mpmath as mp
import numpy as np
import sympy as sp
from threadpoolctl import threadpool_limits
from timing import measure

import derive
from derive.freeprob.relation import G_, Z
from derive.freeprob.sampling import cdf
from derive.freeprob.tanh_sinh import tanh_sinh

DEPTH, WIDTH, POINTS, BINS = 8, 2000, 1000, 40
SEEDS = (1, 2, 4)


def density_product():
    J = derive.jacobian_spectrum("relu", depth=DEPTH)
    x = np.linspace(0, J.max_eigenvalue, POINTS + 1)[1:]
    return J, x, J.density(x)


def bin_product(depth=DEPTH):
    """The theory's counterpart of a histogram: the 40 bin masses from the CDF (the atom at 0 in the
    first)."""
    J = derive.jacobian_spectrum("relu", depth=depth)
    edges = np.linspace(0, J.max_eigenvalue, BINS + 1)
    return np.diff(np.concatenate([[0.0], cdf(J.law, edges[1:])]))


def reference_error(J, x, rho, n=50):
    eq = J.law.relation.equation("G")
    f = sp.lambdify((Z, G_), eq, "mpmath")
    worst = 0.0
    with mp.workdps(40):
        for i in np.linspace(0, x.size - 1, n).astype(int):
            g0 = J.stieltjes(np.array([x[i] + 0j]))[0]
            xi = mp.mpf(x[i])
            g = mp.findroot(lambda g, xi=xi: f(xi, g), mp.mpc(g0.real, g0.imag))
            worst = max(worst, abs(float(-mp.im(g) / mp.pi) - rho[i]))
    return worst


def exact_bins(J, edges):
    """∫ρ over each bin by tanh–sinh (the atoms added to their bins), with the worst error estimate."""
    masses, errors = zip(*(tanh_sinh(J.density, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)),
                         strict=True)
    masses = np.array(masses)
    for a, m in J.support().atoms:
        masses[min(np.searchsorted(edges, a, side="right") - 1, masses.size - 1)] += m
    return masses, max(errors)


def monte_carlo_seed(seed):
    rng = np.random.default_rng(seed)
    h = rng.normal(0, 1, WIDTH)
    jac = np.eye(WIDTH)
    for _ in range(DEPTH):
        w = rng.normal(0, np.sqrt(2 / WIDTH), (WIDTH, WIDTH))
        h = w @ np.maximum(h, 0)
        jac = (h > 0)[:, None] * (w @ jac)
    return np.linalg.eigvalsh(jac @ jac.T)


def main():
    start = time.perf_counter()
    J, x, rho = density_product()
    cold = time.perf_counter() - start
    _, warm, _ = measure(density_product)
    bins, t_bins, _ = measure(bin_product)
    fresh = []
    for depth in (DEPTH + 1, DEPTH + 2, DEPTH - 1):  # a law not met before: its equation is derived
        start = time.perf_counter()
        bin_product(depth)
        fresh.append(time.perf_counter() - start)
    err = reference_error(J, x, rho)
    print(f"theory: density at {POINTS} points, max |error| vs 40 digits {err:.2e}: cold {cold:.3f} s, "
          f"warm {warm:.3f} s (support and atoms included)")
    edges = np.linspace(0, J.max_eigenvalue, BINS + 1)
    exact, quad_err = exact_bins(J, edges)
    width = np.diff(edges)
    print(f"theory: {BINS} bin masses from the CDF in {t_bins:.3f} s (warm), max |error| vs tanh-sinh bins "
          f"{np.max(np.abs(bins - exact)):.1e} (tanh-sinh error estimate {quad_err:.0e}); "
          f"total {exact.sum():.12f}")
    print(f"theory: the same for a law not met before in the process (L = {DEPTH + 1}, {DEPTH + 2}, "
          f"{DEPTH - 1}: SymPy derives its equation first): {', '.join(f'{t:.3f}' for t in fresh)} s")
    print(f"Monte Carlo: width {WIDTH}, {BINS} bins, error = mean |histogram mass − exact mass|/bin width "
          f"(the bin densities average {np.mean(exact / width):.3g})")
    pooled, per_seed = [], []
    for seed in range(max(SEEDS)):
        t0 = time.perf_counter()
        pooled.append(monte_carlo_seed(seed))
        per_seed.append(time.perf_counter() - t0)
    with threadpool_limits(1):  # the machine is shared: two BLAS threads can spin against other load
        t0 = time.perf_counter()
        monte_carlo_seed(0)
        per_seed.append(time.perf_counter() - t0)
    one_seed = min(per_seed)
    print(f"  one seed: best {one_seed:.2f} s of {len(per_seed)} runs "
          f"({', '.join(f'{t:.2f}' for t in per_seed)} s; the last with BLAS on one thread)")
    for seeds in SEEDS:
        t_mc = seeds * one_seed
        ev = np.clip(np.concatenate(pooled[:seeds]), 0, None)  # rounding leaves zero eigenvalues at ±1e-14
        hist, _ = np.histogram(ev, bins=edges)
        mc_err = np.mean(np.abs(hist / ev.size - exact) / width)
        noise = np.mean(np.sqrt(exact * (1 - exact) / ev.size) / width)  # i.i.d. binomial scale
        print(f"  {seeds} seed(s), {ev.size} eigenvalues: {t_mc:5.1f} s ({seeds} x best seed), "
              f"error {mc_err:.2e} (binomial scale "
              f"{noise:.1e}); ratio Monte Carlo / theory at this accuracy: {t_mc / t_bins:.0f}x (warm bin "
              f"masses), {t_mc / max(fresh):.0f}x (bin masses of a new law), {t_mc / cold:.0f}x (cold "
              "density call at 1e-12)")
    # Monte Carlo time ∝ 1/ε² (from the one-seed line): the accuracy at which it is 100x slower
    first = np.mean(np.abs(np.histogram(np.clip(pooled[0], 0, None), bins=edges)[0] / pooled[0].size - exact)
                    / width)
    for label, t in (("warm bin masses", t_bins), ("cold density call", cold)):
        print(f"Monte Carlo is 100x slower than the theory ({label}) from an accuracy of "
              f"{first * np.sqrt(one_seed / (100 * t)):.1e} on (extrapolated as 1/√samples from one seed)")
    per_sample = t_mc / ev.size
    needed = ev.size * (mc_err / 1e-8) ** 2
    print(f"Monte Carlo to 1e-8: extrapolated (error ∝ 1/√samples, from the last line) {needed:.1e} "
          f"eigenvalues, {needed * per_sample / 3.15e7:.1e} years; and not reachable at width {WIDTH} at "
          "all: the O(1/width) finite-size bias of the spectrum stays (the extrapolation ignores it)")


if __name__ == "__main__":
    main()
