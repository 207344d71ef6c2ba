r"""The symbols of natural gradient descent in the NTK regime and how they print.

Depth L, width M and outputs C are those of :mod:`derive.fisher.notation` (one network, one
notation); N is the number of training samples (Karakida & Osawa 2020 write N, where the Fisher
papers write T); γ the fraction of units a unit-wise block sees (:mod:`derive.ngd.gamma`);
α the isotropic constant of the function-space preconditioner, J G⁺ Jᵀ/N = α I; η the
learning rate and t the step.

>>> from derive.printing import latex
>>> latex((1 - alpha * eta) ** t * (f0 - y))
'\\left(f_{0} - y\\right) \\left(- \\alpha \\eta + 1\\right)^{t}'
"""

import sympy as sp

from derive.fisher.notation import C, L, M, Named

__all__ = ["C", "L", "M", "N", "alpha", "eta", "f0", "ft", "gamma", "t", "y"]

#: the number of training samples
N = sp.Symbol("N", positive=True, integer=True)
#: the unit-wise fraction γ = P(φ′(u) ≠ 0)
gamma = sp.Symbol("gamma", positive=True)
#: the isotropic constant (printed α; a symbol of its own, not the Fisher papers' α = Σ α_l α_{l−1})
alpha = Named("alpha_ngd", r"\alpha", positive=True)
#: learning rate and step
eta = sp.Symbol("eta", positive=True)
t = sp.Symbol("t", integer=True, nonnegative=True)
#: the outputs on the training set at step t and at the start, and the targets
ft, f0, y = sp.symbols("f_t f_0 y", real=True)
