r"""Eigenvalues of the finite random matrices whose limits :mod:`derive.freeprob` derives, drawn by
the one simulator (:mod:`derive.simulate`): the ground truth the spectra are tested against.

* :func:`jacobian_eigenvalues`: the eigenvalues of JJᵀ, J = ∂x^L/∂x^0 the input–output Jacobian
  of the network of a :class:`~derive.freeprob.jacobian.JacobianSpectrum` (``spectrum.network``),
  at an input whose first pre-activations have variance q* (squared norm per unit
  (q* − σ_b²)/σ_w², so that h¹ = W¹x⁰ + b¹ has E (h¹_i)² = q*).
* :func:`kernel_eigenvalues`: the eigenvalues of the CK X_LᵀX_L and of the NTK of Fan & Wang's
  network for a :class:`~derive.freeprob.kernels.KernelSpectrum` on given inputs X_0 (d_0 × n):
  ``serial(Dense(1, 0), σ, …, Dense(1, 0), σ, Dense(1, 0))`` with widths d_ℓ = n/γ_ℓ and one
  output, NTK parametrisation (W = ω/√d_{ℓ−1}, the ω ~ N(0, 1) trained), input rows √d_0 X_0ᵀ:
  then X_ℓ = σ(h_ℓ)/√d_ℓ and the tangent Gram Σ_ℓ (H_ℓH_ℓᵀ/d_{ℓ−1}) ∘ Δ_ℓΔ_ℓᵀ is the NTK of
  f = wᵀX_L differentiated in the N(0, 1) weights (Fan & Wang 2020, sec. 2).

* :func:`cdf` and :func:`ks_distance`: the CDF of a law from its density and atoms, and the
  Kolmogorov–Smirnov distance of samples (e.g. pooled eigenvalues) from it.

>>> import derive
>>> from derive.freeprob.sampling import jacobian_eigenvalues
>>> ev = jacobian_eigenvalues(derive.jacobian_spectrum("linear", depth=2, weights="orthogonal"), 50, seed=0)
>>> bool(abs(ev - 1).max() < 1e-10)
True
"""

from __future__ import annotations

import math

import numpy as np

from derive.errors import DomainError
from derive.freeprob.tanh_sinh import IndefiniteTanhSinh
from derive.simulate import draw


def jacobian_eigenvalues(spectrum, width: int, seed) -> np.ndarray:
    """The eigenvalues of JJᵀ for one network of the given width drawn with `seed` (ascending)."""
    if not (isinstance(width, int) and width >= 1):
        raise DomainError(f"width={width!r} must be a positive integer")
    sw, sb, qs = float(spectrum.sigma_w2), float(spectrum.sigma_b2), float(spectrum.q_star)
    network = draw(spectrum.network, width, width, seed)
    u = np.random.default_rng([1, seed]).standard_normal(width)
    x = u * math.sqrt(width * max(qs - sb, 0.0) / sw) / np.linalg.norm(u)
    jac = network.input_jacobian(x)
    return np.linalg.eigvalsh(jac @ jac.T)


def kernel_network(spectrum) -> tuple:
    """(layer stack, widths) of the network of a kernel spectrum at n samples: see the module
    docstring; widths (d_1, …, d_L, 1) are given by :func:`kernel_eigenvalues`."""
    from derive.layers import Dense, serial

    layers = []
    for _ in spectrum.ratios:
        layers += [Dense(1, 0), spectrum.activation]
    return serial(*layers, Dense(1, 0))


def kernel_eigenvalues(spectrum, X0, seed) -> tuple:
    """(eigenvalues of the CK X_LᵀX_L, of the NTK) for one network drawn with `seed` on the inputs
    X0 (d_0 × n, columns of norm about 1), hidden widths d_ℓ = round(n/γ_ℓ)."""
    X0 = np.asarray(X0, dtype=float)
    if X0.ndim != 2:
        raise DomainError("X0 must be a d0 × n array (one input per column)")
    d0, n = X0.shape
    widths = [int(round(n / float(g))) for g in spectrum.ratios] + [1]
    network = draw(kernel_network(spectrum), d0, widths, seed)
    forward = network.forward(math.sqrt(d0) * X0.T)
    last = forward.records[-1].input  # σ(h_L), n × d_L
    ck = last @ last.T / last.shape[1]
    ntk = network.tangent_gram(network.backward(forward, np.ones((n, 1))))
    return np.linalg.eigvalsh(ck), np.linalg.eigvalsh(ntk)


def cdf(law, x, tol: float = 1e-10) -> np.ndarray:
    """F(x) = (atoms at or below x) + ∫ρ up to x by the indefinite tanh–sinh rule
    (:class:`~derive.freeprob.tanh_sinh.IndefiniteTanhSinh`, to ``tol``, else
    :class:`~derive.errors.NumericError`): over the pieces of the support's mass check where it
    kept its rules (algebraic laws: split at every candidate point, its samples reused), else
    over the bands."""
    x = np.asarray(x, dtype=float)
    support = law.support()
    rules = support.integrals or tuple(IndefiniteTanhSinh(law.density, a, b) for a, b in support.bands)
    total = sum((rule.integral(x, tol) for rule in rules), np.zeros_like(x))
    return total + sum(m * (x >= a - 1e-9 * (1 + abs(a))) for a, m in support.atoms)


def ks_distance(law, samples) -> float:
    """sup |F_n − F| between the empirical CDF of `samples` and the law's (samples within 1e-8 of an
    atom are taken at the atom: eigenvalues at an atom agree only to rounding)."""
    samples = np.sort(np.asarray(samples, dtype=float).ravel())
    atoms = law.support().atoms
    for a, _ in atoms:
        samples = np.where(np.abs(samples - a) < 1e-8 * (1 + abs(a)), a, samples)
    values, counts = np.unique(samples, return_counts=True)
    upper = cdf(law, values, tol=1e-8)
    lower = upper - sum(m * np.isclose(values, a, atol=1e-9) for a, m in atoms)
    empirical = np.cumsum(counts) / samples.size
    return float(max(np.max(np.abs(empirical - upper)),
                     np.max(np.abs(lower - (empirical - counts / samples.size)))))
