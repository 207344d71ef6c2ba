r"""How isotropic each approximation is as the width grows: J G⁺ Jᵀ/N of S random networks per width.

:func:`isotropy` draws, per width M and seed, the network and inputs of
:func:`derive.ngd.function_space_operator` and records the operator's mean eigenvalue α̂ and its
``spread`` ‖O − α̂ I‖_F / (α̂ √CN).  Exact, block-diagonal, block tri-diagonal and K-FAC NGD stay at
roundoff at every width (their isotropy is exact, :mod:`derive.ngd.preconditioner`); unit-wise NGD
is diagonal with binomial counts, so its spread falls like M^{−1/2}, ≈ √((1 − γ)/(γ(L − 1)M)) for
independent units (Karakida & Osawa 2020 state its isotropy as M → ∞).
:func:`fitted_exponent` gives the least-squares exponent p of value ∝ M^p with its standard error.

>>> study = isotropy("relu", 2.0, 0.1, 3, widths=(100, 400), samples=20, method="unit_wise", seeds=range(3))
>>> study.spreads.shape, bool(study.spreads[1].mean() < study.spreads[0].mean())
((2, 3), True)
>>> slope, se = fitted_exponent((1, 10, 100), [[2.0, 2.0], [0.2, 0.2], [0.02, 0.02]])
>>> round(slope, 12), round(se, 12)
(-1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.ngd.methods import method as pick_method
from derive.ngd.operator import function_space_operator


def fitted_exponent(widths, values) -> tuple[float, float]:
    """(p, its standard error): the least-squares slope of log(value) on log(width) over every entry
    of `values` (one row per width, one column per seed; all positive)."""
    values = np.asarray(values, dtype=float)
    widths = np.asarray(widths, dtype=float)
    if values.ndim != 2 or values.shape[0] != widths.size or widths.size < 2 or values.size < 3:
        raise DomainError("fitted_exponent needs one row of values per width, at least 2 widths and 3 values")
    if np.any(values <= 0) or np.any(widths <= 0):
        raise DomainError("fitted_exponent fits logarithms: every width and value must be positive")
    x, z = np.repeat(np.log(widths), values.shape[1]), np.log(values).ravel()
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    sigma2 = float(np.sum((z - design @ coef) ** 2)) / (z.size - 2)
    return float(coef[1]), float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1]))


@dataclass(frozen=True, eq=False)
class Isotropy:
    """The operators of one method over widths × seeds: ``alphas`` and ``spreads`` (one row per
    width), ``roundoff`` (each operator's roundoff scale, condition × CN × ε)."""

    method: str
    widths: tuple
    alphas: np.ndarray
    spreads: np.ndarray
    roundoff: np.ndarray

    @property
    def exponent(self) -> tuple[float, float]:
        """The fitted exponent of the spread against width, with its standard error."""
        return fitted_exponent(self.widths, self.spreads)


def isotropy(activation, sigma_w2=None, sigma_b2=None, depth=None, *, widths, samples, method,
             seeds=range(6), convention="paper", parametrisation="standard") -> Isotropy:
    """The :class:`Isotropy` of `method`: J G⁺ Jᵀ/N for each width of `widths` (hidden widths and
    input dimension M) and each seed of `seeds`, on `samples` Gaussian inputs."""
    name = pick_method(method)
    widths, seeds = tuple(int(w) for w in widths), tuple(seeds)
    if not widths or not seeds:
        raise DomainError("give at least one width and one seed")
    ops = [[function_space_operator(activation, sigma_w2, sigma_b2, depth, width=w, samples=samples,
                                    method=name, convention=convention, parametrisation=parametrisation,
                                    seed=s) for s in seeds] for w in widths]

    def table(field):
        return np.array([[getattr(op, field) for op in row] for row in ops])

    return Isotropy(name, widths, table("alpha"), table("spread"), table("roundoff"))
