"""The Fisher spectrum of an actual network, and the theory's own cost.

1. ``derive.fisher.empirical`` for M = 2000, L = 4, T = 100, C = 10 (P ≈ 1.2·10⁷ parameters):
   λ_max and the whole nonzero spectrum through the CT × CT = 1000 × 1000 Gram built layer by
   layer.  Goal: seconds and well under 1 GB.  The P × P FIM would need P² · 8 B ≈ 1 PB, and the
   CT × P Jacobian a user would form with per-example gradients CT · P · 8 B ≈ 90 GB: both are
   printed, and the Jacobian route is timed where it fits (M = 100), against ``empirical`` there.
2. ``derive.fisher_spectrum`` (theory) for the same figures, ReLU (closed-form moments) and tanh
   (Mehler–Hermite moments), warm (after the first call).  Goal: milliseconds.

Time (best of repeats) and peak traced memory (tracemalloc, numpy buffers included) are printed;
nothing is asserted.  Run: python benchmarks/bench_fisher.py
"""

from __future__ import annotations

import warnings

import numpy as np
from timing import measure

from derive.fisher import FisherAccuracyWarning, empirical, fisher_spectrum
from derive.fisher.architecture import architecture
from derive.fisher.exact import gaussian_inputs
from derive.gaussian.blocks import single_threaded_blas

M, DEPTH, T, C = 2000, 4, 100, 10
ACT = ("relu", 2.0, 0.1)


@single_threaded_blas
def jacobian_route(width: int, seed: int = 0) -> np.ndarray:
    """What a user would write: the CT × P Jacobian from per-example gradients (one backward pass per
    output and input, each weight gradient flattened into a row), then eig(J Jᵀ)/T."""
    arch = architecture(*ACT, DEPTH, width=width, outputs=C)
    network, X = arch.draw(seed), gaussian_inputs(T, width, seed)
    forward = network.forward(X)
    rows = []
    for k in range(C):
        for t in range(T):
            delta = np.zeros((1, T, C))
            delta[0, t, k] = 1.0
            back = network.backward(forward, delta)
            rows.append(np.concatenate([np.concatenate([np.outer(D[0, t], H[t]).ravel(), D[0, t]])
                                        for _, H, D in back.dense]))
    J = np.array(rows)
    return np.linalg.eigvalsh(J @ J.T)[::-1] / T


def main() -> None:
    parameters = architecture(*ACT, DEPTH, width=M, outputs=C).parameters
    print(f"network: relu, L = {DEPTH}, M = {M}, T = {T}, C = {C}: P = {parameters:,} parameters")
    print(f"  the P x P FIM would need {parameters**2 * 8 / 2**50:.2f} PB, the CT x P Jacobian "
          f"{C * T * parameters * 8 / 2**30:.0f} GB")
    emp, seconds, peak = measure(lambda: empirical(*ACT, DEPTH, width=M, samples=T, outputs=C, seed=0), 2)
    print(f"derive.fisher.empirical: lambda_max = {emp.lambda_max:.6g} ({len(emp.eigenvalues)} nonzero "
          f"eigenvalues), {seconds:.2f} s, peak {peak:.0f} MB")

    small = 100
    reference, base_s, base_mb = measure(lambda: jacobian_route(small), 1)
    ours, ours_s, ours_mb = measure(lambda: empirical(*ACT, DEPTH, width=small, samples=T, outputs=C, seed=0))
    agree = np.max(np.abs(ours.eigenvalues - reference)) / reference[0]
    size = architecture(*ACT, DEPTH, width=small, outputs=C).parameters
    print(f"at M = {small} (P = {size:,}): Jacobian route {base_s:.2f} s, {base_mb:.0f} MB; empirical "
          f"{ours_s:.3f} s, {ours_mb:.0f} MB: {base_s / ours_s:.0f}x faster, {base_mb / ours_mb:.0f}x less "
          f"memory; spectra agree to {agree:.1e} (relative to lambda_max)")

    network_seconds = seconds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FisherAccuracyWarning)
        for act, w, b in (ACT, ("tanh", 1.5, 0.1)):
            fisher_spectrum(act, w, b, DEPTH, width=M, samples=T, outputs=C)  # warm: moments compiled
            theory, seconds, _ = measure(lambda act=act, w=w, b=b: fisher_spectrum(
                act, w, b, DEPTH, width=M, samples=T, outputs=C), 20)
            print(f"derive.fisher_spectrum ({act}): lambda_max = {theory.lambda_max:.6g}, "
                  f"{seconds * 1e3:.2f} ms (one network's spectrum: {network_seconds:.2f} s)")
    print(f"  (the network above: lambda_max = {emp.lambda_max:.6g}; the relu theory is within its "
          "finite-width scatter, tests/test_fisher.py)")


if __name__ == "__main__":
    main()
