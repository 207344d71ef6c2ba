"""Integrands of Gaussian expectations as structured products, the input of the rules.

A :class:`Term` is one product in the variables X = (x,) or (x, y)::

    coef · Πᵢ Xᵢ^pᵢ · exp(XᵀAX + b·X) · T(k·X + φ) · Πⱼ erf(αⱼ·X + γⱼ)
         · Πₖ Θ(Lₖ·X − tₖ) · Πₘ δ^(nₘ)(Mₘ·X − sₘ)

with T = sin or cos and the step and delta forms L, M scaled to leading
coefficient 1.  A :class:`Gaussian` is the centred law of X.  :func:`parse_term`
reads a SymPy product into a Term or raises :class:`Unsupported`.

>>> import sympy as sp
>>> from derive.symbols import x
>>> t = parse_term(3 * x**2 * sp.exp(-x**2) * sp.Heaviside(x - 1), (x,))
>>> t.coef, t.powers, t.quad, t.steps
(3, (2,), (-1,), (((1,), 1),))
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from derive.piecewise import Unsupported, leading, linear_form

ZERO = sp.S.Zero


@dataclass(frozen=True)
class Gaussian:
    """The centred Gaussian law of X: variances (v,) in 1-D, (v₁, v₂) and correlation in 2-D."""

    variances: tuple
    corr: sp.Expr = ZERO

    @property
    def dim(self) -> int:
        return len(self.variances)

    def entry(self, i: int, j: int) -> sp.Expr:
        """Σᵢⱼ, with Σ₁₂ = c √v₁ √v₂."""
        if i == j:
            return self.variances[i]
        return self.corr * sp.sqrt(self.variances[0]) * sp.sqrt(self.variances[1])

    def cov(self, f: tuple, g: tuple) -> sp.Expr:
        """Cov(f·X, g·X) = fᵀ Σ g."""
        return sp.Add(*(f[i] * g[j] * self.entry(i, j)
                        for i in range(self.dim) for j in range(self.dim) if f[i] != 0 and g[j] != 0))


@dataclass(frozen=True)
class Term:
    """One structured product; see the module docstring.  Tuples so that it hashes."""

    coef: sp.Expr
    powers: tuple
    quad: tuple = ()      # 1-D (a,): a x²; 2-D (a₁₁, a₁₂, a₂₂): a₁₁x² + a₁₂xy + a₂₂y²
    lin: tuple = ()       # b
    trig: tuple = ()      # ((sp.sin | sp.cos, form, phase),)
    erfs: tuple = ()      # ((form, offset), ...)
    steps: tuple = ()     # ((form, threshold), ...): Θ(form·X − threshold)
    deltas: tuple = ()    # ((form, point, order), ...): δ^(order)(form·X − point)

    def with_(self, **changes) -> Term:
        return replace(self, **changes)

    @property
    def has_exp(self) -> bool:
        return any(a != 0 for a in self.quad + self.lin)

    def as_expr(self, variables: tuple) -> sp.Expr:
        """The product as a SymPy expression (deltas included)."""
        X = variables
        dot = lambda f: sp.Add(*(a * v for a, v in zip(f, X, strict=True)))  # noqa: E731
        factors = [self.coef, *(v**p for v, p in zip(X, self.powers, strict=True)),
                   sp.exp(_quadratic(self.quad, X) + dot(self.lin)) if self.quad else 1]
        factors += [kind(dot(f) + phase) for kind, f, phase in self.trig]
        factors += [sp.erf(dot(f) + g) for f, g in self.erfs]
        factors += [sp.Heaviside(dot(f) - t) for f, t in self.steps]
        factors += [sp.DiracDelta(dot(f) - s, n) if n else sp.DiracDelta(dot(f) - s)
                    for f, s, n in self.deltas]
        return sp.Mul(*factors)


def _quadratic(quad: tuple, X: tuple) -> sp.Expr:
    if len(X) == 1:
        return quad[0] * X[0] ** 2
    return quad[0] * X[0] ** 2 + quad[1] * X[0] * X[1] + quad[2] * X[1] ** 2


def parse_term(product: sp.Expr, variables: tuple) -> Term:
    """Read a product of supported factors into a :class:`Term` (Unsupported otherwise).

    Steps on the same linear form are merged (Θ(L − s)Θ(L − t) = Θ(L − max(s, t))).
    """
    n = len(variables)
    coef, powers = sp.S.One, [0] * n
    exponent, trig, erfs, steps, deltas = ZERO, [], [], [], []
    for factor in sp.Mul.make_args(product):
        if not factor.has(*variables):
            coef *= factor
            continue
        if isinstance(factor, sp.exp):
            exponent += factor.args[0]
            continue
        base, k = factor.as_base_exp()
        if not (k.is_Integer and k > 0):
            raise Unsupported(f"factor {factor} is not a positive integer power")
        k = int(k)
        if base in variables:
            powers[variables.index(base)] += k
        elif isinstance(base, (sp.sin, sp.cos)):
            form, phase = linear_form(base.args[0], variables)
            trig += [(base.func, form, phase)] * k
        elif isinstance(base, sp.erf):
            erfs += [linear_form(base.args[0], variables)] * k
        elif isinstance(base, sp.Heaviside):
            steps.append(_scaled(base.args[0], variables)[:2])
        elif isinstance(base, sp.DiracDelta):
            form, point, lead = _scaled(base.args[0], variables)
            order = int(base.args[1]) if len(base.args) > 1 else 0
            coef /= (lead if lead.is_positive else -lead) * lead**order
            deltas += [(form, point, order)] * k
        else:
            raise Unsupported(f"no rule for the factor {factor}")
    quad, lin, const = _quadratic_form(exponent, variables)
    if len(trig) > 1:
        raise Unsupported("products of trigonometric factors must be turned into sums first")
    return Term(coef * sp.exp(const), tuple(powers), quad, lin, tuple(trig), tuple(erfs),
                _merge_steps(steps), tuple(deltas))


def _scaled(arg: sp.Expr, variables: tuple):
    """(form / lead, −constant / lead, lead) for the argument form·X + constant."""
    form, const = linear_form(arg, variables)
    lead = leading(form)
    if not (lead.is_positive or lead.is_negative):
        raise Unsupported(f"the sign of {lead} in {arg} is unknown")
    return tuple(a / lead for a in form), -const / lead, lead


def _quadratic_form(exponent: sp.Expr, variables: tuple):
    if exponent == 0:
        zero = (ZERO,) * (1 if len(variables) == 1 else 3)
        return zero, (ZERO,) * len(variables), ZERO
    grad = [sp.diff(exponent, v) for v in variables]
    hess = [[sp.diff(g, v) for v in variables] for g in grad]
    if any(h.has(*variables) for row in hess for h in row):
        raise Unsupported(f"exp({exponent}) is not the exponential of a quadratic")
    at0 = {v: 0 for v in variables}
    lin = tuple(g.xreplace(at0) for g in grad)
    quad = (hess[0][0] / 2,) if len(variables) == 1 else (hess[0][0] / 2, hess[0][1], hess[1][1] / 2)
    return quad, lin, exponent.xreplace(at0)


def _merge_steps(steps) -> tuple:
    merged: dict = {}
    for form, t in steps:
        if form not in merged:
            merged[form] = t
            continue
        d = t - merged[form]
        if d.is_nonnegative:
            merged[form] = t
        elif not d.is_nonpositive:
            raise Unsupported(f"cannot order the thresholds {t} and {merged[form]}")
    return tuple(merged.items())
