r"""α: the isotropic constant of natural gradient descent with an approximate Fisher matrix.

Karakida & Osawa (NeurIPS 2020, arXiv 2010.00879) train f(x; θ) on N samples with the squared
loss (1/2N) Σ_n ‖f(x_n) − y_n‖² by θ ← θ − η G⁺ ∇_θ loss, G an approximation of the Fisher
information Jᵀ J / N (J the CN × P Jacobian on the training set), in the zero-damping limit
(G⁺ the pseudo-inverse).  In the NTK regime the outputs move by f ← f − η J G⁺ Jᵀ (f − y)/N, and
every approximation they study satisfies their *isotropic condition*

    J G⁺ Jᵀ / N = α I   (on the training set),

so that f_t − y = (1 − αη)^t (f_0 − y) and η = 1/α converges in one step (their Theorem 1 and
the slides "NTK regimeにおける自然勾配法" of the talk).  α per method:

* exact Fisher: α = 1;
* layer-wise block diagonal: α = L (each layer's block gives the projection J_l J_l⁺ = I);
* block tri-diagonal: α = 1ᵀ T⁺ 1, T the L × L tridiagonal matrix of ones (the paper writes
  T⁻¹); in closed form α = ⌈L/3⌉ (:func:`tridiagonal_alpha`, derived here);
* K-FAC (C = 1): α = NL as the paper states it (``convention="paper"``); N(L − 1) + 1 when every
  Kronecker factor is the 1/N-average over the samples (``"averaged"``: each hidden layer's
  factors give N (P_H ∘ P_D) = N I, while the output layer's block, with the scalar factor
  B_L = 1, is the exact block and gives I — derived here and checked on networks);
* unit-wise (C = 1): α = γ(L − 1)M (paper: γ = 1/2 for ReLU, :mod:`derive.ngd.gamma` for γ in
  general), isotropic only as M → ∞; γ(L − 1)M + 1 with the output unit's block counted
  (``"averaged"``; the exact mean eigenvalue at any width for ReLU-like and smooth activations).

All but unit-wise hold *exactly* at any finite width whose Jacobian blocks have full row rank
(derived here through the push-through identity, :mod:`derive.ngd.preconditioner`): the limit of
infinite width is what keeps J constant during training (the paper's Lipschitz condition), not
what makes the operator isotropic.

>>> from derive.ngd.notation import L
>>> ngd_alpha("kfac", depth=3, samples=20).value
60
>>> ngd_alpha("kfac", depth=L, convention="averaged").value
N*(L - 1) + 1
>>> ngd_alpha("block_tridiagonal", depth=5).value
2
>>> a = ngd_alpha("unit_wise", depth=L, activation="relu")
>>> a.value, a.learning_rate
(M*(L - 1)/2, 2/(M*(L - 1)))
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

import derive.ngd.notation as n
from derive.errors import DomainError
from derive.ngd.gamma import unit_gamma
from derive.ngd.methods import check_outputs
from derive.ngd.methods import convention as pick_convention
from derive.ngd.methods import method as pick_method
from derive.symbols import q


def tridiagonal(depth: int) -> sp.Matrix:
    """T: the depth × depth matrix with ones on the diagonal and the two next to it."""
    return sp.Matrix(depth, depth, lambda i, j: 1 if abs(i - j) <= 1 else 0)


def tridiagonal_alpha(depth) -> sp.Expr:
    r"""1ᵀ T⁺ 1 = ⌈L/3⌉ for the L × L tridiagonal all-ones matrix T (derived here).

    T x = 1 reads x_{i−1} + x_i + x_{i+1} = 1 with x_0 = x_{L+1} = 0, so x has period 3,
    (x_{3k+1}, x_{3k+2}, x_{3k+3}) = (a, 1 − a, 0).  x_{L+1} = 0 fixes a = 0 for L ≡ 0 (mod 3) and
    a = 1 for L ≡ 1; for L ≡ 2 every a solves it: T is singular there (det T_L = det T_{L−1} −
    det T_{L−2}, period 6), its kernel spanned by (1, −1, 0, 1, −1, 0, …), orthogonal to 1, so 1
    lies in the range and 1ᵀ T⁺ 1 = 1ᵀ x for any solution x.  Summing, 1ᵀ x = L/3, (L + 2)/3 and
    (L + 1)/3: ⌈L/3⌉ in every case (L = 2 gives 1: two layers' tri-diagonal blocks are the whole
    Fisher matrix).

    >>> [tridiagonal_alpha(L) for L in range(1, 9)]
    [1, 1, 1, 2, 2, 2, 3, 3]
    """
    return sp.ceiling(sp.sympify(depth) / 3)


def _count(value, name: str, symbol: sp.Symbol, least: int = 1):
    if value is None:
        return symbol
    if isinstance(value, sp.Symbol):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise DomainError(f"{name} = {value!r} must be an integer >= {least} (or a SymPy symbol, or None "
                          "for the symbol)")
    return sp.Integer(value)


#: the conditions every method shares
COMMON = ("NTK regime: the width large enough that J stays at its initial value during training "
          "(Karakida & Osawa 2020, their Lipschitz condition)",
          "zero damping: G⁺ is the pseudo-inverse, applied on the CN × CN side (push-through identity)",
          "the isotropic condition J G⁺ Jᵀ/N = α I on the training set")

_CONDITIONS = {
    "exact": ("J has full row rank CN (P ≥ CN, distinct inputs); α = 1 then holds exactly at any width",),
    "block_diagonal": (
        "every layer's Jacobian J_l has full row rank CN (its Gram (H̃H̃ᵀ) ∘ (DDᵀ) is invertible when either "
        "factor is; the output layer's is I_C ⊗ H̃H̃ᵀ, so M_{L−1} + 1 ≥ N); α = L then holds exactly at any "
        "width",),
    "block_tridiagonal": (
        "every J_l has full row rank CN (as for block_diagonal); α = 1ᵀT⁺1 = ⌈L/3⌉ (T the L × L tridiagonal "
        "all-ones matrix) then holds exactly at any width",
        "T is singular for L ≡ 2 (mod 3): 1 lies in its range and the pseudo-inverse gives the same value"),
    "kfac": (
        "C = 1 output",
        "every layer's input H̃_{l−1} (bias column included; the inputs themselves for l = 1, so M_0 + 1 ≥ N) "
        "and every hidden layer's cotangents D_l have rank N; α then holds exactly at any width"),
    "unit_wise": (
        "C = 1 output",
        "every layer's input H̃_{l−1} (bias column included) has rank N: the operator is then exactly "
        "diagonal, its n-th entry 1 + the number of hidden units with φ′(u) ≠ 0 at x_n",
        "isotropic only as M → ∞: the diagonal fluctuates about α with relative spread "
        "≈ √((1 − γ)/(γ(L − 1)M)) (independent units)"),
}

_CONVENTION_NOTES = {
    ("kfac", "paper"): "convention 'paper': α = NL as Karakida & Osawa state it; realised by the output "
                       "layer's cotangent factor B_L = 1/N, so that every layer contributes N I",
    ("kfac", "averaged"): "convention 'averaged': every Kronecker factor the 1/N-average, B_L = 1 for the "
                          "output layer, whose block is then the exact one and contributes I",
    ("unit_wise", "paper"): "convention 'paper': the leading term γ(L − 1)M of the paper (the output unit's "
                            "contribution 1 dropped)",
    ("unit_wise", "averaged"): "convention 'averaged': the output unit's block (the exact last-layer block, "
                               "contributing 1) counted: the exact mean at any width when γ does not depend "
                               "on q",
}


@dataclass(frozen=True)
class NGDAlpha:
    """α of one method: ``value`` (SymPy, in L, M, N, γ where those were not given), the
    ``conditions`` under which the isotropic condition holds, ``gamma`` (unit-wise), and the
    consequences: ``learning_rate`` = 1/α (one-step convergence) and ``dynamics``, the equation
    f_t − y = (1 − αη)^t (f_0 − y) on the training set."""

    method: str
    convention: str
    value: sp.Expr
    conditions: tuple
    outputs: int = 1
    gamma: sp.Expr | None = None

    @property
    def learning_rate(self) -> sp.Expr:
        """η = 1/α: one step to the global minimum on the training set."""
        return 1 / self.value

    @property
    def dynamics(self) -> sp.Eq:
        return sp.Eq(n.ft - n.y, (1 - self.value * n.eta) ** n.t * (n.f0 - n.y))

    @property
    def equations(self) -> tuple:
        return (sp.Eq(n.alpha, self.value), self.dynamics, sp.Eq(n.eta, self.learning_rate))

    def __float__(self) -> float:
        if not self.value.is_number:
            free = sorted(map(str, self.value.free_symbols))
            raise DomainError(f"α = {self.value} has free symbols {free}: "
                              "give depth, width, samples (and the activation for unit-wise)")
        return float(self.value)

    def _latex(self, printer) -> str:
        return f"{printer._print(n.alpha)} = {printer._print(self.value)}"

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"

    def __repr__(self) -> str:
        return f"NGDAlpha({self.method!r}, convention={self.convention!r}: alpha = {self.value})"


def _value(name: str, conv: str, L, M, N, gamma) -> sp.Expr:
    if name == "exact":
        return sp.Integer(1)
    if name == "block_diagonal":
        return L
    if name == "block_tridiagonal":
        return tridiagonal_alpha(L)
    if name == "kfac":
        return N * L if conv == "paper" else N * (L - 1) + 1
    leading = M * (L - 1) * gamma
    return leading if conv == "paper" else leading + 1


def ngd_alpha(method, *, depth, width=None, samples=None, outputs=1, activation=None,
              convention="paper") -> NGDAlpha:
    """α of NGD with the approximate Fisher matrix `method` (one of
    :data:`derive.ngd.methods.METHODS`) for a network of `depth` = L weight layers of hidden width
    `width` = M on `samples` = N training points with `outputs` = C linear outputs (width,
    samples: None for the symbols M, N; depth a SymPy symbol for the symbolic form).  Unit-wise
    NGD needs the `activation` for γ (:func:`derive.ngd.gamma.unit_gamma`; None leaves γ a
    symbol).  `convention`: "paper" or "averaged" (:mod:`derive.ngd.methods`)."""
    name, conv = pick_method(method), pick_convention(convention)
    check_outputs(name, outputs)
    L = _count(depth, "depth", n.L)
    if name == "unit_wise" and conv == "paper" and L == 1:
        raise DomainError("unit-wise NGD of depth 1 has no hidden units, so the paper's α = γ(L − 1)M is 0 "
                          "and η = 1/α does not exist: give depth >= 2, or convention='averaged' (α = 1, "
                          "the output unit's block is the exact one)")
    M = _count(width, "width", n.M)
    N = _count(samples, "samples", n.N)
    conditions = list(COMMON) + list(_CONDITIONS[name])
    gamma = None
    if name == "unit_wise":
        gamma = n.gamma if activation is None else unit_gamma(activation)
        varies = " (it depends on q: α = Σ_l γ(q^l) M_l, here at one common q)" if gamma.has(q) else ""
        value = "give activation= to evaluate it" if activation is None else f"{gamma} for this activation"
        conditions.append(f"γ = P(φ′(u) ≠ 0), u ~ N(0, q): {value}{varies}")
    if (name, conv) in _CONVENTION_NOTES:
        conditions.append(_CONVENTION_NOTES[name, conv])
    return NGDAlpha(name, conv, _value(name, conv, L, M, N, gamma), tuple(conditions), outputs, gamma)
