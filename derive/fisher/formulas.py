r"""The Fisher-information theory as SymPy equations (Karakida, Akaho & Amari 2019).

:func:`fisher_formulas` writes, for a :class:`~derive.fisher.theory.FisherSpectrum`, the layer maps
of the order parameters (the paper's recursions; forward q̂ from the pre-activation variances q,
backward q̃ from the layer above), κ₁ and κ₂ and the eigenvalue statistics (the paper's theorems)
as equations that print as LaTeX (an ``align`` block through :func:`derive.latex`).  The maps come
from the block's own layer formulas (:meth:`derive.layers.Layer.trace` on symbols), so a closed form
appears wherever the Gaussian engine has one (ReLU: the arc-cosine kernel; linear) and an
unevaluated ∫Dz integral otherwise.

:func:`kappa_closed_form` gives κ₁ (and κ₂ where it exists) in closed form in the depth L for
activations whose maps are homogeneous — q̂₁ = a q₁ and ∫φ′² = b constant (linear, ReLU, leaky ReLU,
abs; for these positively homogeneous φ, b = a): with r = aσ_w², q^l = r^{l−1}(σ_w² + σ_b²) +
σ_b²(1 − r^{l−1})/(1 − r), q̃^l = r^{L−l}, and (equal widths, α = L − 1)

    (L − 1) κ₁ = r^{L−1} + Σ_{l=2}^{L} r^{L−l} a q^{l−1}
               = r^{L−1} + a(σ_w² + σ_b²)(L − 1) r^{L−2}
                 + aσ_b² [(1 − r^{L−1})/(1 − r) − (L − 1) r^{L−2}]/(1 − r),

at r = 1 (criticality) 1 + a(L − 1)[σ_w² + σ_b² + σ_b²(L − 2)/2]; κ₂ likewise from q̂⁰₂ = 0,
q¹₂ = σ_b² when its maps are homogeneous too (the linear network).

>>> from derive.printing import latex
>>> k1 = kappa_closed_form("relu").kappa1
>>> from derive.fisher.notation import L
>>> from derive.symbols import sigma_b2, sigma_w2
>>> k1.subs({sigma_w2: 2, sigma_b2: 0}).simplify()
L/(L - 1)
>>> kappa_closed_form("tanh") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

import derive.fisher.notation as n
from derive.kernel_state import KernelState
from derive.layers import Dense
from derive.symbols import q1 as Q1
from derive.symbols import q2 as Q2
from derive.symbols import sigma_b2, sigma_w2


@dataclass(frozen=True)
class FisherFormulas:
    """``forward`` (q̂ maps and the Dense map to the next q), ``backward`` (q̃ maps), ``kappa``
    (κ₁, κ₂), ``statistics`` (m_λ, s_λ, λ_max, η_c) — tuples of SymPy equations — and ``closed``
    (the closed forms in L of :func:`kappa_closed_form`, or None)."""

    forward: tuple
    backward: tuple
    kappa: tuple
    statistics: tuple
    closed: object = None

    @property
    def equations(self) -> tuple:
        closed = () if self.closed is None else self.closed.equations
        return (*self.forward, *self.backward, *self.kappa, *closed, *self.statistics)

    def _latex(self, printer) -> str:
        rows = [rf"{printer._print(eq.lhs)} &= {printer._print(eq.rhs)}" for eq in self.equations]
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"


def _block_maps(block):
    """(q̂₁, q̂₂, backward factor₁, backward factor₂) of one block in the symbols q₁, q₂ of the
    pre-activations entering it, from its trace up to (and including) its Dense layer."""
    trace = block.trace(KernelState(Q1, Q1, Q2))
    dense = trace.of(Dense)[0]
    return dense.before.k11, dense.before.k12, dense.after.chi11, dense.after.chi12


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Whole-number floats as integers (2.0·q/2 prints as q, not 1.0·q); other floats as typed."""
    return expr.xreplace({f: sp.Integer(int(f)) for f in expr.atoms(sp.Float) if float(f).is_integer()})


def _statistics(last_layer: str, parametrisation: str) -> tuple:
    M, T, C, alpha, k1, k2 = n.M, n.T, n.C, n.alpha, n.kappa1, n.kappa2
    if last_layer == "mean_subtracted":
        lam = n.rho * alpha * (k1 - k2)
        stats = (sp.Eq(n.m_lambda, C * (T - 1) * (k1 - k2) / (T * M)),
                 sp.Eq(n.s_lambda, alpha * C * (T - 1) * (k1 - k2) ** 2 / T**2),
                 sp.Eq(n.lambda_max, lam), sp.Eq(n.rho, M / T))
    else:
        stats = (sp.Eq(n.m_lambda, k1 * C / M),
                 sp.Eq(n.s_lambda, alpha * C * ((T - 1) / T * k2**2 + k1**2 / T)),
                 sp.Eq(n.lambda_max, alpha * M * ((T - 1) / T * k2 + k1 / T)))
    return (*stats, sp.Eq(n.eta_c, 2 / n.lambda_max))


def fisher_formulas(spec) -> FisherFormulas:
    """The :class:`FisherFormulas` of a :class:`~derive.fisher.theory.FisherSpectrum` (the block of
    its network's second weight layer gives the maps; the first layer acts on q̂⁰₁ = 1, q̂⁰₂ = 0)."""
    net = spec.architecture.net
    block = net.layers[1].block
    f1, f2, b1, b2 = _block_maps(block)
    l, L = n.l, n.L
    at = {Q1: n.q1(l), Q2: n.q2(l)}
    dense = spec.architecture.dense[-1]
    forward = (sp.Eq(n.qhat1(l), f1.xreplace(at)), sp.Eq(n.qhat2(l), f2.xreplace(at)),
               sp.Eq(n.q1(l + 1), dense.sigma_w2 * n.qhat1(l) + dense.sigma_b2),
               sp.Eq(n.q2(l + 1), dense.sigma_w2 * n.qhat2(l) + dense.sigma_b2))
    backward = (sp.Eq(n.qtilde1(l), n.qtilde1(l + 1) * b1.xreplace(at)),
                sp.Eq(n.qtilde2(l), n.qtilde2(l + 1) * b2.xreplace(at)))
    kappa = tuple(sp.Eq(k, sp.Sum(n.ratio(l - 1) / n.alpha * qt(l) * qh(l - 1), (l, 1, L)))
                  for k, qt, qh in ((n.kappa1, n.qtilde1, n.qhat1), (n.kappa2, n.qtilde2, n.qhat2)))
    activation = getattr(block.layers[0], "activation", None) if len(block.layers) == 2 else None
    closed = kappa_closed_form(activation) if activation is not None else None
    if closed is not None and equal_widths(spec.architecture):
        values = {sigma_w2: dense.sigma_w2, sigma_b2: dense.sigma_b2, n.L: spec.depth}
        closed = KappaClosedForm(closed.kappa1, closed.kappa2, values)
    forward, backward = (tuple(sp.Eq(eq.lhs, _tidy(eq.rhs)) for eq in eqs) for eqs in (forward, backward))
    return FisherFormulas(forward, backward, kappa,
                          _statistics(spec.last_layer, spec.architecture.parametrisation.value), closed)


def equal_widths(arch) -> bool:
    return len(set(arch.widths)) == 1


@dataclass(frozen=True)
class KappaClosedForm:
    """κ₁ (and κ₂, or None) in closed form in L, σ_w², σ_b² for equal widths (α = L − 1);
    ``values`` (σ_w², σ_b², L of a network) are substituted in ``equations`` when given."""

    kappa1: sp.Expr
    kappa2: sp.Expr | None
    values: dict | None = None

    @property
    def equations(self) -> tuple:
        out = [sp.Eq(n.kappa1, self.kappa1)]
        if self.kappa2 is not None:
            out.append(sp.Eq(n.kappa2, self.kappa2))
        if self.values:
            out = [sp.Eq(eq.lhs, sp.simplify(eq.rhs.subs(self.values))) for eq in out]
        return tuple(out)


def _homogeneous(expr: sp.Expr, variable: sp.Symbol):
    """The constant a with expr = a·variable, else None."""
    ratio = sp.simplify(expr / variable)
    return ratio if not ratio.free_symbols & {Q1, Q2} else None


def _constant(expr: sp.Expr):
    expr = sp.simplify(expr)
    return expr if not expr.free_symbols & {Q1, Q2} else None


def _geometric(a, first, start):
    """(L − 1)κ for q̂^l = a q^l (l ≥ 1), q̂⁰ = `first`, q¹ = `start` and q̃^l = r^{L−l}, r = aσ_w²
    (module docstring; the backward factor equals the forward one for these activations)."""
    L, r = n.L, a * sigma_w2
    geometric = (1 - r ** (L - 1)) / (1 - r)  # Σ_{m=1}^{L−1} r^{L−1−m}
    generic = (r ** (L - 1) * first + a * start * (L - 1) * r ** (L - 2)
               + a * sigma_b2 * (geometric - (L - 1) * r ** (L - 2)) / (1 - r))
    critical = first + a * (start * (L - 1) + sigma_b2 * (L - 1) * (L - 2) / 2)
    return sp.Piecewise((sp.expand(critical), sp.Eq(r, 1)), (generic, True))


@lru_cache(maxsize=32)
def kappa_closed_form(activation) -> KappaClosedForm | None:
    """κ₁ (and κ₂ when its maps are homogeneous too, as for the linear activation) in closed form
    in L for an activation with q̂₁ = a q₁ and ∫φ′² = b constant; None otherwise."""
    from derive.activations import activation as make_activation
    from derive.layers import serial

    act = make_activation(activation) if isinstance(activation, str) else activation
    f1, f2, b1, b2 = _block_maps(serial(act, Dense(sigma_w2, sigma_b2)))
    a1, d1 = _homogeneous(f1, Q1), _constant(b1 / sigma_w2)
    if a1 is None or d1 is None or sp.simplify(a1 - d1) != 0:
        return None
    kappa1 = _geometric(a1, 1, sigma_w2 + sigma_b2) / (n.L - 1)
    a2, d2 = _homogeneous(f2, Q2), _constant(b2 / sigma_w2)
    same = a2 is not None and d2 is not None and sp.simplify(a2 - d2) == 0
    return KappaClosedForm(kappa1, _geometric(a2, 0, sigma_b2) / (n.L - 1) if same else None)
