r"""J G⁺ Jᵀ / N on an actual finite network: how isotropic each approximate Fisher matrix is.

:func:`function_space_operator` draws a network and Gaussian inputs exactly as
:func:`derive.fisher.empirical` does (or takes a drawn network and its inputs), computes the
Jacobian factors layer by layer (:func:`derive.fisher.exact.jacobian_factors`) and the operator of
:mod:`derive.ngd.preconditioner` — never the P × P Fisher matrix — and reports its mean eigenvalue
α̂ = tr/CN, how far it is from α̂ I (``spread`` = ‖O − α̂ I‖_F / (α̂ √CN), the RMS relative
deviation of its eigenvalues) and its off-diagonal mass (``off_diagonal`` = ‖O − diag O‖_F /
‖O‖_F).  Exact, block-diagonal, block tri-diagonal and K-FAC NGD give α I to roundoff at any width
with full-rank blocks; unit-wise NGD is diagonal, its entries spread by O(1/√((L − 1)M)) for ReLU.

>>> op = function_space_operator("relu", 2.0, 0.1, 3, width=200, samples=20, method="unit_wise", seed=0)
>>> op.operator.shape, round(op.off_diagonal, 8), bool(0.02 < op.spread < 0.08)
((20, 20), 0.0, True)
>>> op = function_space_operator("relu", 2.0, 0.1, 4, width=200, samples=20, method="block_tridiagonal",
...                              seed=0)
>>> round(op.alpha, 10), op.spread < 1e-12
(2.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.fisher.architecture import architecture, positive_count
from derive.fisher.exact import gaussian_inputs, jacobian_factors
from derive.gaussian.blocks import single_threaded_blas
from derive.layers import Parametrisation
from derive.ngd.methods import check_outputs
from derive.ngd.methods import convention as pick_convention
from derive.ngd.methods import method as pick_method
from derive.ngd.preconditioner import EPS, preconditioner


@dataclass(frozen=True, eq=False)
class FunctionSpaceOperator:
    """J G⁺ Jᵀ / N of one network: ``operator`` (CN × CN, rows ordered (output k, sample n)),
    ``alpha`` (its mean eigenvalue), ``spread``, ``off_diagonal``, ``eigenvalues`` (ascending);
    ``condition`` is the largest condition number of the Grams inverted, ``roundoff`` the relative
    error scale of the entries it implies (condition × CN × ε)."""

    method: str
    convention: str
    operator: np.ndarray
    condition: float

    @property
    def size(self) -> int:
        return self.operator.shape[0]

    @property
    def eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh((self.operator + self.operator.T) / 2)

    @property
    def alpha(self) -> float:
        return float(np.trace(self.operator) / self.size)

    @property
    def spread(self) -> float:
        deviation = self.operator - self.alpha * np.eye(self.size)
        return float(np.linalg.norm(deviation) / (self.alpha * np.sqrt(self.size)))

    @property
    def off_diagonal(self) -> float:
        off = self.operator - np.diag(np.diag(self.operator))
        return float(np.linalg.norm(off) / np.linalg.norm(self.operator))

    @property
    def roundoff(self) -> float:
        return float(self.condition * self.size * EPS)

    def __repr__(self) -> str:
        return (f"FunctionSpaceOperator({self.method!r}, CN={self.size}: alpha={self.alpha:.6g}, "
                f"spread={self.spread:.3g}, off_diagonal={self.off_diagonal:.3g})")


def _uncoupled(network) -> None:
    if any(getattr(getattr(layer, "layer", None), "batch_coupled", False) for layer in network.layers):
        raise DomainError("batch norm couples the samples, so the layer Jacobians are not per-sample outer "
                          "products and NGD's blocks are not those derived here; use a network without it")


def operator_of(network, X, *, method, convention="paper",
                parametrisation="standard") -> FunctionSpaceOperator:
    """The :class:`FunctionSpaceOperator` of a drawn :class:`derive.simulate.Network` at the inputs X."""
    name, conv = pick_method(method), pick_convention(convention)
    _uncoupled(network)
    mode = Parametrisation(str(getattr(parametrisation, "value", parametrisation)).lower())
    factors, _ = single_threaded_blas(jacobian_factors)(network, X, mode)
    pre = single_threaded_blas(preconditioner)(name, factors, conv)
    return FunctionSpaceOperator(name, conv, single_threaded_blas(pre.operator)(), pre.condition)


def drawn(activation, sigma_w2, sigma_b2, depth, *, width, samples, outputs, parametrisation, seed) -> tuple:
    """(network, inputs, architecture) drawn as :func:`derive.fisher.empirical` draws them."""
    if width is None or samples is None:
        raise DomainError("give width= and samples= (or a drawn network and its inputs X)")
    samples = positive_count(samples, "samples", 1)
    arch = architecture(activation, sigma_w2, sigma_b2, depth, width=width, outputs=outputs,
                        parametrisation=parametrisation)
    network = single_threaded_blas(arch.draw)(seed)
    return network, gaussian_inputs(samples, arch.widths[0], seed), arch


def function_space_operator(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width=None, samples=None,
                            method, outputs=1, convention="paper", parametrisation="standard", seed=None,
                            X=None) -> FunctionSpaceOperator:
    """J G⁺ Jᵀ / N for the approximate Fisher matrix `method` on one random network: the arguments
    of :func:`derive.fisher.empirical` (weights and Gaussian inputs from `seed`), or a drawn
    :class:`derive.simulate.Network` as `activation` with its inputs `X` (N × M_0)."""
    from derive.simulate import Network

    check_outputs(pick_method(method), outputs)
    if isinstance(activation, Network):
        if X is None:
            raise DomainError("give the inputs X (N × input_dim) with a drawn network")
        return operator_of(activation, X, method=method, convention=convention,
                           parametrisation=parametrisation)
    network, inputs, arch = drawn(activation, sigma_w2, sigma_b2, depth, width=width, samples=samples,
                                  outputs=outputs, parametrisation=parametrisation, seed=seed)
    return operator_of(network, inputs if X is None else X, method=method, convention=convention,
                       parametrisation=arch.parametrisation)
