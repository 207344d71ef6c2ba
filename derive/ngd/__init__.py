r"""Natural gradient descent in the NTK regime: approximate Fisher matrices, their α, and one-step
convergence (Karakida & Osawa, "Understanding approximate Fisher information for fast convergence
of natural gradient descent in wide neural networks", NeurIPS 2020, arXiv 2010.00879).

* :mod:`~derive.ngd.methods` — the approximations by name (exact, block diagonal, block
  tri-diagonal, K-FAC, unit-wise) and the two conventions;
* :mod:`~derive.ngd.alpha` — :func:`ngd_alpha`: α symbolic in L, M, N, with its conditions;
* :mod:`~derive.ngd.gamma` — γ = P(φ′(u) ≠ 0) of unit-wise NGD for any activation;
* :mod:`~derive.ngd.preconditioner` — each method's step from the layer factors of the Jacobian,
  every pseudo-inverse on the side of the samples (push-through identity, zero damping);
* :mod:`~derive.ngd.operator` — :func:`function_space_operator`: J G⁺ Jᵀ/N of an actual network,
  its mean eigenvalue and its distance from α I;
* :mod:`~derive.ngd.isotropy` — :func:`isotropy`: the operator's spread over widths and seeds, and
  :func:`fitted_exponent`, its power law in the width;
* :mod:`~derive.ngd.dynamics` — :func:`kernel_prediction`: the wide-limit kernel regression each
  approximation converges to on unseen inputs;
* :mod:`~derive.ngd.training` — :func:`train`: NGD on a drawn network of the simulator, loss per step
  against (1 − αη)^{2t}, test outputs against the kernel prediction.

>>> import derive
>>> derive.ngd_alpha("block_diagonal", depth=4).value
4
>>> op = derive.ngd.function_space_operator("relu", 2.0, 0.1, 4, width=200, samples=20, method="kfac", seed=0)
>>> round(op.alpha, 9), derive.ngd_alpha("kfac", depth=4, samples=20).value
(80.0, 80)
>>> run = derive.ngd.train("relu", 2.0, 0.1, 3, width=300, samples=20, method="kfac", steps=1, seed=0)
>>> run.alpha, bool(run.residual_ratios[1] < 0.1)
(60.0, True)
>>> import numpy as np
>>> X, X_test = np.random.default_rng(0).standard_normal((2, 10, 32))
>>> prediction = derive.ngd.kernel_prediction("relu", 2.0, 0.1, 3, width=(32, 300, 300), X=X,
...                                           residual=np.ones(10), X_test=X_test, method="block_diagonal")
>>> round(prediction.alpha, 9), prediction.converged.shape
(3.0, (10, 1))
"""

from derive.ngd.alpha import NGDAlpha, ngd_alpha, tridiagonal, tridiagonal_alpha
from derive.ngd.dynamics import KernelPrediction, kernel_prediction
from derive.ngd.gamma import unit_gamma
from derive.ngd.isotropy import Isotropy, fitted_exponent, isotropy
from derive.ngd.methods import CONVENTIONS, METHODS
from derive.ngd.operator import FunctionSpaceOperator, function_space_operator, operator_of
from derive.ngd.preconditioner import Preconditioner, preconditioner
from derive.ngd.training import NGDRun, train

__all__ = ["ngd_alpha", "NGDAlpha", "tridiagonal", "tridiagonal_alpha", "unit_gamma", "METHODS",
           "CONVENTIONS", "function_space_operator", "operator_of", "FunctionSpaceOperator", "Preconditioner",
           "preconditioner", "kernel_prediction", "KernelPrediction", "train", "NGDRun",
           "isotropy", "Isotropy", "fitted_exponent"]
