"""NNGP + NTK Gram matrices of 1000 inputs through depth 10: derive against what a user would write.

1. ReLU (closed form): ``net.kernels(X)`` against bare numpy of the same arc-cosine recursion.
   Goal: ratio <= 1.1, and more accurate than it on the diagonal (its arccos of a rounded
   cos θ = 1 loses ~1e-8 there; the exact diagonal is the 1-D map q ← σ_w² q/2 + σ_b²).
2. tanh (numerical, <= 1e-10 relative error): ``net.kernels(X)`` (Mehler-Hermite sums with a tail
   bound) against a plain numpy loop over layers with 2-D Gauss-Hermite quadrature per entry,
   its order raised until it is as accurate.  Accuracy of both is measured on a subset of inputs
   against per-entry 2-D trapezoid quadrature (spectrally accurate for tanh).  The baseline is
   timed on a subset of inputs and scaled by the number of entries (its cost is n² × nodes²).
   Goal: >= 10x faster.

Time (best of repeats; for ReLU also the median ratio of adjacent runs, as the speed of a shared
machine drifts between repeats) and peak memory (tracemalloc) are printed; nothing is asserted.
Run: /work/venv/bin/python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import time

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from timing import measure

from derive.layers import Dense, repeat, serial

N_INPUTS, DIM, DEPTH = 1000, 100, 10
SW, SB = 1.5, 0.05  # tanh: ordered phase near the edge of chaos (Schoenholz et al. 2017)
SW_RELU, SB_RELU = 2.0, 0.05


# --- ReLU ---------------------------------------------------------------------------------------


def relu_numpy(X, w, b, depth):
    """The arc-cosine recursion (Cho & Saul 2009) in NTK parametrisation, written directly."""
    K = w * (X @ X.T) / X.shape[1] + b
    T = K.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(K))
        norm = np.outer(d, d)
        cos = np.clip(K / norm, -1.0, 1.0)
        theta = np.arccos(cos)
        K = w * norm * (np.sqrt(1 - cos * cos) + (np.pi - theta) * cos) / (2 * np.pi) + b
        T = K + w * (np.pi - theta) / (2 * np.pi) * T
    return K, T


def alternated(first, second) -> tuple:
    """(wall time of first(), wall time of second()), run one right after the other."""
    start = time.perf_counter()
    first()
    middle = time.perf_counter()
    second()
    return middle - start, time.perf_counter() - middle


def relu_diagonal(X, w, b, depth):
    """The diagonal of Σ and Θ by the 1-D maps q ← w q/2 + b, t ← q′ + w t/2 (c = 1 exactly)."""
    q = w * np.einsum("ij,ij->i", X, X) / X.shape[1] + b
    t = q.copy()
    for _ in range(depth):
        q, t = w * q / 2 + b, w * q / 2 + b + w * t / 2
    return q, t


def diagonal_error(kernels, exact):
    """max relative error of the diagonals of (Σ, Θ) against the exact 1-D recursion."""
    pairs = zip(kernels, exact, strict=True)
    return max(float(np.max(np.abs(np.diag(np.asarray(k)) / e - 1))) for k, e in pairs)


# --- tanh -----------------------------------------------------------------------------------------


def tanh_gauss_hermite(X, w, b, depth, nodes):
    """Σ, Θ through `depth` tanh layers, every entry by 2-D Gauss-Hermite with nodes² points."""
    z, wts = hermegauss(nodes)
    wts = wts / np.sqrt(2 * np.pi)
    K = w * (X @ X.T) / X.shape[1] + b
    T = K.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(K))
        qa, qb = d[:, None], d[None, :]
        cos = np.clip(K / (qa * qb), -1.0, 1.0)
        sin = np.sqrt(1 - cos * cos)
        phi, dphi = np.zeros_like(K), np.zeros_like(K)
        for zi, wi in zip(z, wts, strict=True):
            u = np.tanh(qa * zi)
            du = 1 - u * u
            inner, dinner = np.zeros_like(K), np.zeros_like(K)
            for zj, wj in zip(z, wts, strict=True):
                v = np.tanh(qb * (cos * zi + sin * zj))
                inner += wj * v
                dinner += wj * (1 - v * v)
            phi += wi * u * inner
            dphi += wi * du * dinner
        K = w * phi + b
        T = K + w * dphi * T
    return K, T


def trapezoid_reference(X, w, b, depth, h=0.04, half=12.0):
    """Per-entry 2-D trapezoid rule in (z1, z2): an independent, spectrally accurate reference."""
    z = np.arange(-half, half + h / 2, h)
    wz = h * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    K = w * (X @ X.T) / X.shape[1] + b
    T = K.copy()
    n = len(X)
    for _ in range(depth):
        d = np.diag(K).copy()
        phi, dphi = np.empty_like(K), np.empty_like(K)
        for i in range(n):
            u = np.tanh(np.sqrt(d[i]) * z)
            for j in range(i, n):
                cc = min(K[i, j] / np.sqrt(d[i] * d[j]), 1.0)
                v = np.tanh(np.sqrt(d[j]) * (cc * z[:, None] + np.sqrt(1 - cc * cc) * z[None, :]))
                phi[i, j] = phi[j, i] = wz @ (u[:, None] * v) @ wz
                dphi[i, j] = dphi[j, i] = wz @ ((1 - u * u)[:, None] * (1 - v * v)) @ wz
        K = w * phi + b
        T = K + w * dphi * T
    return K, T


def relative_error(approx, exact):
    """max |approx − exact| / √(exact_aa exact_bb)."""
    scale = np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
    return float(np.max(np.abs(approx - exact) / scale))


def main():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_INPUTS, DIM))
    print(f"NNGP + NTK, {N_INPUTS} inputs in {DIM} dimensions, depth {DEPTH} "
          f"({N_INPUTS}x{N_INPUTS} Grams), numpy {np.__version__}\n")

    # 1. ReLU
    net = serial(Dense(SW_RELU, SB_RELU), repeat(serial("relu", Dense(SW_RELU, SB_RELU)), DEPTH))
    net.kernels(X[:5])  # derive the closed forms once (cached): not part of the timed path
    ours, t_ours, m_ours = measure(lambda: net.kernels(X), repeats=1)
    bare, t_bare, m_bare = measure(lambda: relu_numpy(X, SW_RELU, SB_RELU, DEPTH), repeats=1)
    pairs = np.array([alternated(lambda: net.kernels(X), lambda: relu_numpy(X, SW_RELU, SB_RELU, DEPTH))
                      for _ in range(15)])  # the machine's speed drifts: each ratio from adjacent runs
    t_ours, t_bare = pairs.min(axis=0)
    agree = max(relative_error(np.asarray(ours.nngp), bare[0]), relative_error(np.asarray(ours.ntk), bare[1]))
    exact = relu_diagonal(X, SW_RELU, SB_RELU, DEPTH)
    print("ReLU (closed form)")
    print(f"  derive      {t_ours:7.3f} s  peak {m_ours:6.0f} MB   diagonal error "
          f"{diagonal_error((ours.nngp, ours.ntk), exact):.1e}   method: {ours.nngp.method}")
    print(f"  bare numpy  {t_bare:7.3f} s  peak {m_bare:6.0f} MB   diagonal error "
          f"{diagonal_error(bare, exact):.1e}")
    low, median, high = np.percentile(pairs[:, 0] / pairs[:, 1], [25, 50, 75])
    print(f"  ratio derive / numpy = {t_ours / t_bare:.2f} of the best times, {median:.2f} the median of 15 "
          f"adjacent pairs (quartiles {low:.2f}-{high:.2f}; goal <= 1.1); max difference {agree:.1e}\n")

    # 2. tanh
    net = serial(Dense(SW, SB), repeat(serial("tanh", Dense(SW, SB)), DEPTH))
    ours, t_ours, m_ours = measure(lambda: net.kernels(X), repeats=2)
    sub = np.r_[0:10, 500:502]  # a subset: entries depend only on their own pair of inputs
    start = time.perf_counter()
    ref = trapezoid_reference(X[sub], SW, SB, DEPTH)
    t_ref = time.perf_counter() - start
    err_ours = max(relative_error(np.asarray(ours.nngp)[np.ix_(sub, sub)], ref[0]),
                   relative_error(np.asarray(ours.ntk)[np.ix_(sub, sub)], ref[1]))
    print("tanh (numerical)")
    print(f"  reference: per-entry 2-D trapezoid on {len(sub)} inputs ({t_ref:.0f} s)")
    print(f"  derive      {t_ours:7.3f} s  peak {m_ours:6.0f} MB   error {err_ours:.1e} "
          f"(bound per layer {ours.ntk.error:.1e})   method: {ours.nngp.method}")
    nodes = 16
    while True:
        gh = tanh_gauss_hermite(X[sub], SW, SB, DEPTH, nodes)
        err_gh = max(relative_error(gh[0], ref[0]), relative_error(gh[1], ref[1]))
        print(f"  Gauss-Hermite {nodes:3d}x{nodes:<3d} per entry: error {err_gh:.1e}")
        if err_gh <= max(err_ours, 1e-10) or nodes >= 160:
            break
        nodes = int(nodes * 1.5)
    n_time = 120
    _, t_gh, m_gh = measure(lambda: tanh_gauss_hermite(X[:n_time], SW, SB, DEPTH, nodes), repeats=1)
    t_full = t_gh * (N_INPUTS / n_time) ** 2
    print(f"  Gauss-Hermite {nodes}x{nodes}: {t_gh:.2f} s on {n_time} inputs (peak {m_gh:.0f} MB) "
          f"-> {t_full:.0f} s scaled to {N_INPUTS} inputs")
    print(f"  speed-up derive vs Gauss-Hermite at equal accuracy = {t_full / t_ours:.0f}x  (goal >= 10x)")


if __name__ == "__main__":
    main()
