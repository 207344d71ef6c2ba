"""Closed forms of Gaussian expectations: the rule engine behind :func:`derive.expect`.

``closed_form_1d(f, x, q)`` is E[f(x)] for x ~ N(0, q); ``closed_form_2d(f, x, y,
q1, q2, c)`` is E[f(x, y)] for centred (x, y) with variances q1, q2 and
correlation c.  Both return a SymPy expression or None when no rule applies;
they never return a partial answer.  The pipeline:

1. kinks to Heaviside form (:mod:`derive.piecewise`): Max(0, x) = xΘ(x),
   |x| = x(2Θ(x) − 1), sign, Min, Piecewise;
2. linearity: expand into products, products of sin/cos into sums;
3. each product read as a :class:`~derive.gaussian.terms.Term` and evaluated by the
   rules of :mod:`derive.gaussian.rules` (completing the square, Dirac deltas,
   moments and Stein's lemma, sign-type and trigonometric base kernels).

A delta at a point where the rest of the integrand jumps (Θ(x)δ(x)) is
ambiguous and gives None, unless the jumping part vanishes there to the order of
the delta.  Symbolic variances are taken positive and a symbolic c to lie in
(−1, 1); a numeric c = ±1 reduces to 1-D (y = ±√(q2/q1) x).  A growing Gaussian
factor e^{ax²} with 2aq ≥ 1 raises :class:`~derive.errors.DivergenceError` (numbers) or
gives ``Piecewise((value, 2aq < 1), (oo, True))`` (nan when the integrand's sign is
unknown) for symbols.  Results are cached in memory.

>>> import sympy as sp
>>> from derive.symbols import x, y, q, q1, q2, c
>>> closed_form_1d(sp.erf(x)**2, x, q)
2*asin(2*q/(2*q + 1))/pi
>>> closed_form_2d(sp.Max(0, x) * sp.Max(0, y), x, y, q1, q2, c)
sqrt(q_1)*sqrt(q_2)*(c*(pi - acos(c)) + sqrt(1 - c**2))/(2*pi)
>>> closed_form_2d(sp.Heaviside(x) * sp.Heaviside(y), x, y, q1, q2, c)
(pi - acos(c))/(2*pi)
>>> closed_form_1d(sp.cos(2*x + 1), x, q)
exp(-2*q)*cos(1)
>>> closed_form_1d(sp.tanh(x), x, q) is None
True
>>> closed_form_1d(sp.exp(x**2 / 4), x, q)
Piecewise((1/sqrt(1 - q/2), q < 2), (oo, True))
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp
from sympy.simplify.fu import TR8

from derive.gaussian.rules import TailDivergence, expectation
from derive.gaussian.terms import Gaussian, Term, parse_term
from derive.piecewise import Unsupported, reduce_deltas, to_heaviside

_TRIG = (sp.sin, sp.cos)


_STAND_INS = (sp.Dummy("v1", positive=True), sp.Dummy("v2", positive=True), sp.Dummy("r", real=True))


def closed_form_1d(expr, x, q) -> sp.Expr | None:
    """E[expr] for x ~ N(0, q) in closed form, or None."""
    (q,), back = _stand_ins((sp.sympify(q),))
    return _substituted(_closed_form(sp.sympify(expr), (x,), (q,), sp.S.Zero), back)


def closed_form_2d(expr, x, y, q1, q2, c) -> sp.Expr | None:
    """E[expr] for (x, y) centred Gaussian, Var x = q1, Var y = q2, corr = c; or None."""
    expr = sp.sympify(expr)
    (q1, q2, c), back = _stand_ins(tuple(map(sp.sympify, (q1, q2, c))))
    unit = c.is_number and ((c - 1).is_zero or (c + 1).is_zero)
    if unit and not (q1.is_zero or q2.is_zero):
        at_unit = expr.xreplace({y: c * sp.sqrt(q2) / sp.sqrt(q1) * x})
        return _substituted(_closed_form(at_unit, (x,), (q1,), sp.S.Zero), back)
    return _substituted(_closed_form(expr, (x, y), (q1, q2), c), back)


def _stand_ins(parameters: tuple):
    """Compound symbolic parameters (σ_w² q + σ_b²) replaced by positive (variances) or real
    (correlation) dummies, equal parameters by the same one: the rules then simplify as for
    a plain q, and one derivation serves every parametrisation (cache)."""
    out, back = [], {}
    for p, dummy in zip(parameters, _STAND_INS[:1] if len(parameters) == 1 else _STAND_INS,
                        strict=True):
        wanted = p.is_positive if dummy.is_positive else p.is_real
        if p.is_number or (p.is_Symbol and wanted):
            out.append(p)
            continue
        known = next((d for d, value in back.items() if value == p), None)
        if known is None:
            back[dummy], known = p, dummy
        out.append(known)
    return tuple(out), back


def _substituted(result, back: dict):
    return result if result is None or not back else result.xreplace(back)


@lru_cache(maxsize=4096)
def _closed_form(expr, variables, variances, corr) -> sp.Expr | None:
    try:
        normal = reduce_deltas(to_heaviside(expr, variables), variables)
        degenerate = [v for v, s in zip(variables, variances, strict=True) if s.is_zero]
        if degenerate:
            return _degenerate(normal, variables, variances, degenerate)
        return _derive(normal, variables, Gaussian(variances, corr))
    except Unsupported:
        return None


def _degenerate(normal, variables, variances, zero) -> sp.Expr | None:
    """A variable with variance 0 is 0: substitute it where the integrand is continuous there."""
    if any(n.has(*zero) for n in normal.atoms(sp.Heaviside, sp.DiracDelta)):
        return None
    rest = normal.xreplace({v: 0 for v in zero})
    live = [(v, s) for v, s in zip(variables, variances, strict=True) if v not in zero]
    return closed_form_1d(rest, *live[0]) if live else rest


def _derive(normal, variables, g: Gaussian) -> sp.Expr | None:
    terms = integrand_terms(normal, variables)
    kept = _without_coincident_deltas(terms, variables)
    try:
        values = [expectation(t, g) for t in kept]
    except TailDivergence:
        if _divergence_is_certain(terms, variables):
            raise
        return None  # steps or erfc may tame the growing factor: leave it to quadrature
    if any(v is None for v in values):
        return None
    result = sp.Add(*values)
    if result.has(sp.Piecewise):
        return _convergent_where(result) if _divergence_is_certain(terms, variables) else None
    return tidy(result)


def _divergence_is_certain(terms: list[Term], variables: tuple) -> bool:
    """Whether each group of terms sharing a growing factor e^{XᵀAX + b·X} surely diverges
    where the factor beats the density: the group has no steps (which may cut the tails off,
    e.g. e^{x²}1{|x|<1}) and no erf (erfc decays like a Gaussian), and does not sum to 0."""
    groups: dict = {}
    for t in terms:
        if t.has_exp and not all(a.is_nonpositive for a in t.quad[::2]):
            groups.setdefault((t.quad, t.lin), []).append(t)
    return all(not any(t.steps or t.erfs for t in group)
               and sp.expand(sp.Add(*(t.as_expr(variables) for t in group))) != 0
               for group in groups.values())


def _convergent_where(result: sp.Expr) -> sp.Piecewise:
    """One Piecewise((value, all convergence conditions), (±oo or nan, True)) from the
    Piecewise((value, condition), (divergent value, True)) of each Gaussian factor."""
    pieces = result.atoms(sp.Piecewise)
    value = result.xreplace({p: p.args[0][0] for p in pieces})
    fallbacks = {p.args[1][0] for p in pieces}
    fallback = fallbacks.pop() if len(fallbacks) == 1 else sp.nan
    return sp.Piecewise((tidy(value), sp.And(*(p.args[0][1] for p in pieces))), (fallback, True))


def integrand_terms(normal: sp.Expr, variables: tuple) -> list[Term]:
    """The products of the expanded integrand as Terms (trigonometric products as sums)."""
    normal = normal.replace(lambda n: isinstance(n, (sp.sinh, sp.cosh, sp.erfc)), _rewrite)
    terms = []
    for product in sp.Add.make_args(sp.expand(normal)):
        pieces = [product]
        if _trig_degree(product) > 1:
            pieces = sp.Add.make_args(sp.expand(TR8(product)))
        terms += [parse_term(p, variables) for p in pieces]
    return [t for t in terms if t.coef != 0]


def _rewrite(node):
    if isinstance(node, sp.erfc):
        return 1 - sp.erf(node.args[0])
    return node.rewrite(sp.exp)


def _trig_degree(product) -> int:
    degree = 0
    for factor in sp.Mul.make_args(product):
        base, k = factor.as_base_exp()
        if isinstance(base, _TRIG):
            degree += int(k) if k.is_Integer else 2
    return degree


def _without_coincident_deltas(terms: list[Term], variables: tuple) -> list[Term]:
    """Terms with a step Θ(L − t) times δ⁽ⁿ⁾(L − t) at the same point are dropped when their
    sum vanishes there to order n (then the product is Cⁿ, and pairs to 0 with δ⁽ⁿ⁾);
    otherwise the integrand is ambiguous: Unsupported."""
    kept, groups = [], {}
    for t in terms:
        hit = _coincidence(t)
        if hit is None:
            kept.append(t)
            continue
        delta, step = hit
        rest = t.with_(deltas=tuple(d for d in t.deltas if d is not delta),
                       steps=tuple(s for s in t.steps if s is not step))
        groups.setdefault(delta, []).append(rest.as_expr(variables))
    for (form, point, order), parts in groups.items():
        v = variables[[a != 0 for a in form].index(True)]
        h = sp.Add(*parts)
        for k in range(order + 1):
            if sp.expand(sp.diff(h, v, k).xreplace({v: point})) != 0:
                raise Unsupported(f"a delta at {v} = {point} meets a jump of its coefficient")
    return kept


def _coincidence(t: Term):
    """(delta, step) on the same form at the same point, or None; Unsupported if undecidable."""
    for delta in t.deltas:
        form, point, _ = delta
        if sum(d[0] == form and d[1] == point for d in t.deltas) > 1:
            return None  # a squared delta: the rules report the divergence
        for step in t.steps:
            if step[0] == form:
                same = (step[1] - point).is_zero
                if same:
                    return delta, step
                if same is None:
                    raise Unsupported(f"cannot compare the points {step[1]} and {point}")
    return None


def tidy(expr: sp.Expr) -> sp.Expr:
    """Cheap, targeted simplification: common factors pulled out of the sum; sums with error
    functions (truncated moments) expanded and collected over their erf, erfc and exp atoms,
    keeping the orthant factor π − arccos c whole."""
    if not expr.has(sp.erf, sp.erfc):
        return sp.factor_terms(expr)
    names: dict = {}

    def keep(node):
        return names.setdefault(node, sp.Dummy())

    kept = expr.replace(_is_orthant, keep).replace(_is_atom, keep)
    parts = sp.collect(sp.expand(kept), list(names.values()), evaluate=False)
    collected = sp.Add(*(sp.factor_terms(v) * k for k, v in parts.items()))
    return sp.factor_terms(collected).xreplace({d: node for node, d in names.items()})


def _is_orthant(node) -> bool:
    """π − arccos(ρ)."""
    return (isinstance(node, sp.Add) and len(node.args) == 2 and sp.pi in node.args
            and any(isinstance(-a, sp.acos) for a in node.args))


def _is_atom(node) -> bool:
    return isinstance(node, (sp.erf, sp.erfc, sp.exp, sp.asin, sp.acos)) and bool(node.free_symbols)
