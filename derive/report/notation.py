r"""Notation the report writes but never computes with: 𝔼 f, φ(u), φ′(u), and the matrices of
natural gradient descent.

SymPy objects whose only job is to print as papers write them, through
:func:`derive.printing.latex` like every other formula (Poole et al. 2016 write
the Gaussian expectations of an activation this way).

>>> from derive.printing import latex
>>> from derive.report.notation import E, phi, dphi, u, v
>>> latex(E(phi(u)**2)), latex(E(dphi(u) * dphi(v)))
('\\mathbb{E}\\,\\phi(u)^{2}', "\\mathbb{E}\\,\\phi'(u) \\phi'(v)")
"""

from __future__ import annotations

import sympy as sp

from derive.fisher.notation import Named

#: the Gaussian pre-activations of the expectation tables
u, v = sp.symbols("u v", real=True)


class E(sp.Function):
    """The expectation 𝔼 of its argument (printing only)."""

    nargs = 1

    def _latex(self, printer, exp=None) -> str:
        body = rf"\mathbb{{E}}\,{printer._print(self.args[0])}"
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"


class _Named(sp.Function):
    """A function printed as ``name(arg)``, its powers as ``name(arg)^{n}``."""

    symbol = ""

    def _latex(self, printer, exp=None) -> str:
        body = rf"{self.symbol}({', '.join(printer._print(a) for a in self.args)})"
        return body if exp is None else f"{body}^{{{exp}}}"


class phi(_Named):
    """The activation φ."""

    symbol = r"\phi"


class dphi(_Named):
    """Its derivative φ′."""

    symbol = r"\phi'"


#: the Fisher matrix of N samples and NGD's function-space operator (Karakida & Osawa 2020)
fisher_matrix = Named("fisher_matrix", r"J^{\top} J / N")
ngd_operator = Named("ngd_operator", r"J G^{+} J^{\top} / N")
#: 1ᵀ T⁺ 1, T the tridiagonal matrix of ones
one_T_one = Named("one_T_one", r"\mathbf{1}^{\top} T^{+} \mathbf{1}")
