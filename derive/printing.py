r"""LaTeX in the field's notation: a SymPy ``LatexPrinter`` subclass.

Symbols print as papers write them (σ_w², q*, χ₁, κ₁), Gaussian expectations
as ∫Dz integrals, and any object with a ``_latex(printer)`` method (the
result objects of `derive`) through that method.

>>> import sympy as sp
>>> from derive.symbols import sigma_w2, sigma_b2, q, x
>>> latex(sigma_w2 * q + sigma_b2)
'q \\sigma_w^2 + \\sigma_b^2'
>>> from derive.gaussian import GaussianExpectation
>>> latex(GaussianExpectation(sp.tanh(x)**2, (x,), (q,)))
'\\int \\mathcal{D}z\\, \\tanh^{2}{\\left(\\sqrt{q} z \\right)}'
"""

from __future__ import annotations

from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from derive.symbols import LATEX_NAMES, TEXT_NAMES


class DeriveLatexPrinter(LatexPrinter):
    """LaTeX printer with the conventional symbols of mean-field theory."""

    printmethod = "_latex"

    def _print_Symbol(self, expr, style="plain"):
        if expr in LATEX_NAMES:
            return LATEX_NAMES[expr]
        return super()._print_Symbol(expr, style=style)



def latex(obj, **settings) -> str:
    """LaTeX of a SymPy expression or of any `derive` result object."""
    return DeriveLatexPrinter(settings).doprint(obj)


class TextPrinter(StrPrinter):
    """Plain text in the field's notation (σ_w², q*, χ₁) for messages and explanations."""

    def _print_Symbol(self, expr):
        return TEXT_NAMES.get(expr, expr.name)


def text(obj) -> str:
    """A SymPy expression as readable text: ``text(sigma_w2/2)`` is 'σ_w²/2'.

    >>> from derive.symbols import sigma_w2
    >>> text(10001 * sigma_w2 / 20000)
    '10001*σ_w²/20000'
    """
    return TextPrinter().doprint(obj)
