"""Activation functions: immutable objects holding φ as a SymPy expression.

An :class:`Activation` knows its expression in the canonical variable
:data:`derive.symbols.x`, its derivative (kinks handled through Heaviside,
sign and Piecewise), the points where it is not smooth, its LaTeX name and
the paper it comes from.  Built-ins are made by name through
:func:`activation`; custom ones from text (parsed safely) or a SymPy
expression.

>>> import derive
>>> relu = derive.activation("relu")
>>> relu.derivative()
Heaviside(x)
>>> relu.kinks
(0,)
>>> derive.activation("leaky_relu", a=0.1)(-2)
-1/5
>>> derive.activation("x*tanh(x)").name
'x*tanh(x)'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from derive.errors import DomainError, UnknownActivationError
from derive.piecewise import check_defined, derivative, is_smooth, kinks
from derive.symbols import x


@dataclass(frozen=True)
class Activation:
    """φ(x) as a SymPy expression in :data:`derive.symbols.x`.

    Calling it substitutes: ``act(e)`` is φ(e); ``act.derivative(e)`` is φ′(e).
    """

    expr: sp.Expr
    name: str = "phi"
    latex_name: str = r"\phi"
    source: str = ""

    @classmethod
    def from_expr(cls, expr, name: str | None = None, latex_name: str | None = None,
                  source: str = "user-defined") -> Activation:
        """Make an activation from a SymPy expression in one variable.

        The variable may be any symbol; it is renamed to ``x``.  Further free
        symbols are allowed only if ``x`` itself appears: they are parameters.
        """
        expr = sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr
        free = expr.free_symbols
        if x not in free:
            if len(free) > 1:
                raise DomainError(
                    f"activation {expr} has several free symbols {sorted(map(str, free))}; "
                    "write it in the variable x so the others are read as parameters")
            if free:
                expr = expr.xreplace({free.pop(): x})
        expr = expr.xreplace({s: x for s in expr.free_symbols if s.name == "x" and s != x})
        check_defined(expr)
        text = name or str(expr)
        return cls(expr=expr, name=text, latex_name=latex_name or sp.latex(expr), source=source)

    def __call__(self, e=x) -> sp.Expr:
        """φ(e) for a SymPy expression or number `e`."""
        return self.expr.xreplace({x: sp.sympify(e)})

    def derivative(self, e=x, n: int = 1) -> sp.Expr:
        """The n-th derivative φ⁽ⁿ⁾(e); at kinks it contains Heaviside, sign or DiracDelta."""
        d = self._first_derivative if n == 1 else derivative(self.expr, x, n)
        return d.xreplace({x: sp.sympify(e)})

    @cached_property
    def _first_derivative(self) -> sp.Expr:
        return derivative(self.expr, x)

    @cached_property
    def kinks(self) -> tuple:
        """Points where φ or φ′ switches branch (sorted)."""
        return kinks(self.expr + self.derivative(), x)

    @cached_property
    def is_smooth(self) -> bool:
        return is_smooth(self.expr)

    @property
    def parameters(self) -> frozenset:
        """Free symbols of φ other than x."""
        return frozenset(self.expr.free_symbols - {x})

    def __repr__(self) -> str:
        return f"Activation({self.name!r}, {self.expr})"

    def _latex(self, printer) -> str:
        return printer._print(self.expr)

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle \\phi(x) = {latex(self)}$"


def _piecewise(*pieces) -> sp.Piecewise:
    return sp.Piecewise(*pieces)


def _positive(name: str, value):
    value = sp.Rational(repr(value)) if isinstance(value, float) else sp.sympify(value)
    if value.is_real is False or value.is_negative:
        raise DomainError(f"activation parameter {name}={value} must be a non-negative real number")
    return value


def _linear() -> Activation:
    return Activation(x, "linear", r"\mathrm{id}", "identity")


def _relu() -> Activation:
    return Activation(sp.Max(0, x), "relu", r"\mathrm{ReLU}", "Nair & Hinton 2010; Cho & Saul 2009 (kernel)")


def _leaky_relu(a=0.01) -> Activation:
    a = _positive("a", a)
    return Activation(_piecewise((a * x, x < 0), (x, True)), f"leaky_relu(a={a})",
                      r"\mathrm{LReLU}", "Maas, Hannun & Ng 2013")


def _abs() -> Activation:
    return Activation(sp.Abs(x), "abs", r"|\cdot|", "absolute value")


def _hard_tanh() -> Activation:
    return Activation(_piecewise((-1, x < -1), (x, x < 1), (1, True)), "hard_tanh",
                      r"\mathrm{htanh}", "Pennington, Schoenholz & Ganguli 2017")


def _step() -> Activation:
    return Activation(sp.Heaviside(x), "step", r"\Theta", "Heaviside step (McCulloch & Pitts 1943)")


def _sign() -> Activation:
    return Activation(sp.sign(x), "sign", r"\mathrm{sign}", "sign function")


def _tanh() -> Activation:
    return Activation(sp.tanh(x), "tanh", r"\tanh", "Poole et al. 2016; Schoenholz et al. 2017")


def _erf() -> Activation:
    return Activation(sp.erf(x), "erf", r"\mathrm{erf}", "Williams 1997 (arcsine kernel)")


def _sigmoid() -> Activation:
    return Activation(1 / (1 + sp.exp(-x)), "sigmoid", r"\sigma", "logistic function")


def _softplus() -> Activation:
    return Activation(sp.log(1 + sp.exp(x)), "softplus", r"\mathrm{softplus}", "Dugas et al. 2001")


def _gelu() -> Activation:
    return Activation(x * (1 + sp.erf(x / sp.sqrt(2))) / 2, "gelu", r"\mathrm{GELU}",
                      "Hendrycks & Gimpel 2016: x Phi(x)")


def _silu() -> Activation:
    return Activation(x / (1 + sp.exp(-x)), "silu", r"\mathrm{SiLU}",
                      "Elfwing et al. 2018; Ramachandran et al. 2017 (swish)")


def _elu(alpha=1) -> Activation:
    alpha = _positive("alpha", alpha)
    return Activation(_piecewise((alpha * (sp.exp(x) - 1), x < 0), (x, True)), f"elu(alpha={alpha})",
                      r"\mathrm{ELU}", "Clevert, Unterthiner & Hochreiter 2016")


def _sin() -> Activation:
    return Activation(sp.sin(x), "sin", r"\sin", "sine")


def _cos() -> Activation:
    return Activation(sp.cos(x), "cos", r"\cos", "cosine")


def _monomial(n=2) -> Activation:
    if not (isinstance(n, int) and n >= 0):
        raise DomainError(f"monomial degree n={n!r} must be a non-negative integer")
    return Activation(x**n, f"monomial(n={n})", f"x^{{{n}}}", "monomial")


BUILTINS: dict[str, Callable[..., Activation]] = {
    "linear": _linear,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "abs": _abs,
    "hard_tanh": _hard_tanh,
    "step": _step,
    "sign": _sign,
    "tanh": _tanh,
    "erf": _erf,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "gelu": _gelu,
    "silu": _silu,
    "elu": _elu,
    "sin": _sin,
    "cos": _cos,
    "monomial": _monomial,
}

ALIASES = {"identity": "linear", "swish": "silu", "logistic": "sigmoid", "heaviside": "step",
           "hardtanh": "hard_tanh", "lrelu": "leaky_relu"}


def activation(name_or_text, **params) -> Activation:
    """A built-in activation by name, or a custom one from text or a SymPy expression.

    Parameters go as keywords: ``activation("leaky_relu", a=0.1)``,
    ``activation("monomial", n=3)``.  Text that is not a built-in name is parsed
    safely (:func:`derive.parse`) as an expression in ``x``.
    """
    if isinstance(name_or_text, Activation):
        return name_or_text
    if isinstance(name_or_text, sp.Basic):
        return Activation.from_expr(name_or_text)
    if not isinstance(name_or_text, str):
        raise UnknownActivationError(
            f"activation must be a name, text or SymPy expression, not {type(name_or_text).__name__}")
    key = name_or_text.strip().lower()
    key = ALIASES.get(key, key)
    if key in BUILTINS:
        try:
            return BUILTINS[key](**params)
        except TypeError as exc:
            raise DomainError(f"activation {key!r}: {exc}") from None
    if key.isidentifier() and key not in ("x",):
        close = difflib.get_close_matches(key, [*BUILTINS, *ALIASES], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownActivationError(
            f"unknown activation {name_or_text!r}{hint} Built-ins: {', '.join(BUILTINS)}; "
            "or write a formula in x such as 'x*tanh(x)'")
    if params:
        raise DomainError("keyword parameters apply to built-in activations only; "
                          "write numbers into the formula instead")
    from derive.parsing import parse

    return Activation.from_expr(parse(name_or_text), name=name_or_text.strip())
