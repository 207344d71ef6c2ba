r"""Eigenvalues of the finite random matrices whose limits :mod:`derive.freeprob` derives, drawn by
the one simulator (:mod:`derive.simulate`): the ground truth the spectra are tested against.

* :func:`jacobian_eigenvalues`: the eigenvalues of JJᵀ, J = ∂x^L/∂x^0 the input–output Jacobian
  of the network of a :class:`~derive.freeprob.jacobian.JacobianSpectrum` (``spectrum.network``),
  at an input whose first pre-activations have variance q* (squared norm per unit
  (q* − σ_b²)/σ_w², so that h¹ = W¹x⁰ + b¹ has E (h¹_i)² = q*).

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
