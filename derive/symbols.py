"""Canonical symbols of the theory, with their assumptions and LaTeX names.

Everything `derive` builds uses these objects, so that expressions from different
modules combine and substitute into each other.  Python names are identifiers
(``sigma_w2``); the LaTeX printer (:mod:`derive.latex`) renders them as the
field writes them (``\\sigma_w^2``).

>>> from derive.symbols import q, sigma_w2
>>> q.is_positive, sigma_w2.is_positive
(True, True)
"""

import sympy as sp

#: integration variables (pre-activations)
x, y = sp.symbols("x y", real=True)
#: standard normal variables of the Dz notation
z, z1, z2 = sp.symbols("z z_1 z_2", real=True)
#: pre-activation variances and the correlation coefficient
q, q1, q2 = sp.symbols("q q_1 q_2", positive=True)
c = sp.Symbol("c", real=True)
#: weight and bias variances
sigma_w2 = sp.Symbol("sigma_w2", positive=True)
sigma_b2 = sp.Symbol("sigma_b2", nonnegative=True)
#: fixed points and order parameters
q_star = sp.Symbol("q_star", positive=True)
c_star = sp.Symbol("c_star", real=True)
chi1 = sp.Symbol("chi_1", positive=True)
kappa1 = sp.Symbol("kappa_1", positive=True)
kappa2 = sp.Symbol("kappa_2", real=True)
#: the layer index, NTK entries, residual weight, dropout keep probability
l = sp.Symbol("l", integer=True, nonnegative=True)
theta = sp.Symbol("Theta", real=True)
alpha = sp.Symbol("alpha", real=True)
rho = sp.Symbol("rho", positive=True)

#: LaTeX for symbols whose name SymPy would not render as the field writes it
LATEX_NAMES: dict[sp.Symbol, str] = {
    sigma_w2: r"\sigma_w^2",
    sigma_b2: r"\sigma_b^2",
    q_star: r"q^*",
    c_star: r"c^*",
    chi1: r"\chi_1",
    kappa1: r"\kappa_1",
    kappa2: r"\kappa_2",
}

#: plain-text names (messages, explanations)
TEXT_NAMES: dict[sp.Symbol, str] = {
    sigma_w2: "σ_w²", sigma_b2: "σ_b²", q_star: "q*", c_star: "c*", chi1: "χ₁", kappa1: "κ₁", kappa2: "κ₂",
}
