r"""The symbols of the Fisher-information theory and how they print.

Layer-indexed order parameters are SymPy functions of the layer index that print as the papers
write them (Karakida, Akaho & Amari 2019): ``qhat1(l)`` is q̂^l_1, ``qtilde2(l + 1)`` is
q̃^{l+1}_2, ``ratio(l)`` is α_l.

>>> from derive.printing import latex
>>> latex(qhat1(l - 1) * qtilde1(l))
'\\hat{q}^{l - 1}_{1} \\tilde{q}^{l}_{1}'
>>> latex(lambda_max), latex(ratio(0))
('\\lambda_{\\max}', '\\alpha_{0}')
"""

import sympy as sp

from derive.symbols import kappa1, kappa2, rho, sigma_b2, sigma_w2

__all__ = ["C", "L", "M", "Named", "T", "alpha", "eta_c", "kappa1", "kappa2", "l", "lambda_max", "m_lambda",
           "q1", "q2", "qhat1", "qhat2", "qtilde1", "qtilde2", "ratio", "rho", "s_lambda", "sigma_b2",
           "sigma_w2"]

#: width, samples, outputs, depth, the layer index
M, T, C, L = sp.symbols("M T C L", positive=True, integer=True)
l = sp.Symbol("l", integer=True)
#: α = Σ_l α_l α_{l−1} (P ≈ αM²)
alpha = sp.Symbol("alpha", positive=True)
#: the eigenvalue statistics and the learning-rate bound
m_lambda = sp.Symbol("m_lambda", positive=True)
s_lambda = sp.Symbol("s_lambda", positive=True)
eta_c = sp.Symbol("eta_c", positive=True)


class _LayerParameter(sp.Function):
    """An order parameter of layer l, printed as base^{l}_{index}."""

    base = ""
    index = ""
    is_real = True

    def _latex(self, printer, exp=None):
        out = rf"{self.base}^{{{printer._print(self.args[0])}}}_{{{self.index}}}"
        return out if exp is None else rf"\left({out}\right)^{{{exp}}}"

    def _sympystr(self, printer):
        return f"{type(self).__name__}({printer._print(self.args[0])})"


class qhat1(_LayerParameter):
    """q̂^l_1 = ∫Du φ(√q^l_1 u)²: the second moment of h^l (q̂⁰₁ = 1 for Gaussian inputs)."""

    base, index = r"\hat{q}", "1"


class qhat2(_LayerParameter):
    """q̂^l_2 = E φ(u)φ(v), (u, v) with covariance [[q₁, q₂], [q₂, q₁]]: the cross moment of two inputs."""

    base, index = r"\hat{q}", "2"


class qtilde1(_LayerParameter):
    """q̃^l_1 = Σ_i (∂f_k/∂u^l_i)²: the backward order parameter of one input (q̃^L = 1)."""

    base, index = r"\tilde{q}", "1"


class qtilde2(_LayerParameter):
    """q̃^l_2 = Σ_i ∂f_k(x)/∂u^l_i ∂f_k(x′)/∂u^l_i: the backward order parameter of two inputs."""

    base, index = r"\tilde{q}", "2"


class q1(_LayerParameter):
    """q^l_1: the variance of the pre-activations u^l."""

    base, index = "q", "1"


class q2(_LayerParameter):
    """q^l_2: the covariance of the pre-activations of two inputs."""

    base, index = "q", "2"


class ratio(_LayerParameter):
    """α_l = M_l / M."""

    def _latex(self, printer, exp=None):
        out = rf"\alpha_{{{printer._print(self.args[0])}}}"
        return out if exp is None else rf"\alpha_{{{printer._print(self.args[0])}}}^{{{exp}}}"


class Named(sp.Symbol):
    """A symbol with a fixed LaTeX form."""

    def __new__(cls, name, tex, **assumptions):
        obj = super().__new__(cls, name, **assumptions)
        obj._tex = tex
        return obj

    def __getnewargs_ex__(self):
        return (self.name, self._tex), self.assumptions0

    def _latex(self, printer):
        return self._tex


lambda_max = Named("lambda_max", r"\lambda_{\max}", positive=True)
