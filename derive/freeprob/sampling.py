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
from functools import lru_cache

import numpy as np

from derive.errors import DomainError, NumericError
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
    """F(x) = (atoms at or below x) + ∫ρ up to x, on each band [a, b] by :func:`band_integral`
    (the indefinite tanh–sinh rule, error estimate below ``tol``, else
    :class:`~derive.errors.NumericError`)."""
    x = np.asarray(x, dtype=float)
    support = law.support()
    total = np.zeros_like(x)
    for a, b in support.bands:
        total = total + band_integral(law.density, a, b, x, tol)
    return total + sum(m * (x >= a - 1e-9 * (1 + abs(a))) for a, m in support.atoms)


#: the interpolant of the indefinite rule has degree 2·_HALF − 1 (nodes _HALF on either side of a cell)
_HALF = 6
_REACH = 49 / 8  # |s| <= 6.125: the nodes reach ~1e-300 of the ends, on every level h = 2^-k


def band_integral(density, a: float, b: float, x: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    r"""∫_a^{min(x, b)} ρ (0 for x <= a) for a density ρ integrable on [a, b] and analytic inside
    (endpoint divergences t^{−α}, α < 1, allowed), by the indefinite form of the tanh–sinh rule
    (Takahasi & Mori 1974): with t(s) = a + (b − a)(1 + tanh(π/2 sinh s))/2 (as logistic
    functions: no cancellation next to either end) the integrand g(s) = ρ(t(s)) t′(s) is smooth
    and decays double-exponentially; ∫_{−∞}^{σ} g over the nodes s_j = jh, |s| <= 6.125, is the
    sum over whole cells plus a part of one, each the exact integral of the interpolant through
    the 2·_HALF nodes around the cell (degree 11: the error falls like h^12 as long as g is
    resolved, so that the double-exponential grid needs ~200 nodes for 1e-12 where the cumulative
    trapezoid rule, O(h²), needed 4000 for 1e-7).  The step is halved from 1/8 (the density is
    evaluated at the new nodes only) until two successive rules agree to ``tol`` at every x; the
    finer is returned.  Nodes that round onto an end, or where ρ is nan (float64 cannot resolve
    it, next to an end where it vanishes or diverges), carry no mass.
    :class:`~derive.errors.NumericError` if h = 1/256 does not reach ``tol``.

    >>> import numpy as np
    >>> value = band_integral(lambda t: 1 / np.sqrt(t), 0.0, 4.0, np.array([1.0, 4.0]))  # 2√t
    >>> bool(np.all(np.abs(value - [2, 4]) < 1e-13))
    True
    """
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    inside = (x > a) & (x < b)
    with np.errstate(divide="ignore"):
        sigma = np.arcsinh(np.log((x[inside] - a) / (b - x[inside])) / np.pi)
    g = _band_integrand(density, a, b, 3)
    previous = _indefinite(g, 2.0**-3, sigma)
    for level in range(4, 9):
        fine = np.empty(2 * g.size - 1)
        fine[::2], fine[1::2] = g, _band_integrand(density, a, b, level, odd=True)
        g = fine
        value = _indefinite(g, 2.0**-level, sigma)
        change = np.max(np.abs(value - previous), initial=0.0)
        if change <= tol:
            break
        previous = value
    else:
        raise NumericError(f"the indefinite tanh-sinh rule on [{a:.12g}, {b:.12g}] changes by {change:.2g} "
                           f"at h = 1/256, more than tol = {tol:g}: the density is not resolved there")
    out[inside] = value[:-1]
    out[x >= b] = value[-1]
    return out


def _band_integrand(density, a: float, b: float, level: int, odd: bool = False) -> np.ndarray:
    """g(s) = ρ(t(s)) t′(s) at s = jh, h = 2^-level, |s| <= _REACH (only odd j when `odd`)."""
    h = 2.0**-level
    n = round(_REACH / h)
    j = np.arange(-n + 1, n, 2) if odd else np.arange(-n, n + 1)
    s = j * h
    inner = np.pi / 2 * np.sinh(s)
    with np.errstate(over="ignore"):  # (1 ± tanh)/2 as logistic functions: no cancellation
        t = np.where(s < 0, a + (b - a) / (1 + np.exp(-2 * inner)), b - (b - a) / (1 + np.exp(2 * inner)))
        weight = (b - a) / 2 * np.pi / 2 * np.cosh(s) / np.cosh(inner) ** 2
    g = np.zeros(s.size)
    interior = (t > a) & (t < b)  # nodes that rounded onto an end carry no mass
    g[interior] = np.nan_to_num(density(t[interior]), nan=0.0, posinf=0.0) * weight[interior]
    return g


def _indefinite(g: np.ndarray, h: float, sigma: np.ndarray) -> np.ndarray:
    """∫_{−∞}^{σ} g (see :func:`band_integral`) at each σ, and the whole integral last."""
    p = _HALF
    padded = np.concatenate([np.zeros(p), g, np.zeros(p)])  # g ~ 0 beyond the grid
    cells = h * np.correlate(padded, _cell_weights(np.ones(1))[0], "valid")[1:g.size]  # cell k: s_k..s_k+1
    nodes = np.concatenate([[0.0], np.cumsum(cells)])
    u = np.clip((sigma - (-_REACH)) / h, 0, g.size - 1)
    k = np.minimum(np.floor(u).astype(int), g.size - 2)
    near = padded[k[:, None] + 1 + np.arange(2 * p)]
    part = h * np.sum(_cell_weights(u - k) * near, axis=1)
    return np.concatenate([nodes[k] + part, [nodes[-1]]])


def _cell_weights(theta: np.ndarray) -> np.ndarray:
    """w_i(θ) = ∫_0^θ ℓ_i for the Lagrange basis ℓ_i on the nodes 1 − p, ..., p (p = _HALF), shape
    (len(θ), 2p): the integral over [0, θ] of a cell [0, 1] of the interpolant through its nodes."""
    rule = _integrated_basis()
    centred = theta[:, None] - 0.5
    value, start = np.zeros((theta.size, rule.shape[0])), np.zeros(rule.shape[0])
    for column in rule.T:  # Horner in τ − 1/2 (|τ − 1/2| <= 1/2: no cancellation)
        value = value * centred + column
        start = start * -0.5 + column
    return value - start


@lru_cache(maxsize=1)
def _integrated_basis() -> np.ndarray:
    """Row i: the coefficients (highest first) of an antiderivative of ℓ_i in τ − 1/2; the
    products of the half-integer nodes are exact in float64."""
    nodes = np.arange(1 - _HALF, _HALF + 1) - 0.5
    rows = [np.polyint(np.poly(np.delete(nodes, i))) / np.prod(n - np.delete(nodes, i))
            for i, n in enumerate(nodes)]
    out = np.array(rows)
    out.flags.writeable = False
    return out


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
