r"""The layer-to-layer recursion of a network, as SymPy equations written the way papers do.

:func:`recursion` applies one block of the network (the block of its ``repeat``, or the whole
network) to the symbolic state of two inputs at layer l -- variance q^l (both inputs, the
mean-field setting; or q_1^l, q_2^l), correlation c^l, NTK entries Θ_{11}^l, Θ_{12}^l and
backward factor χ^l -- and writes the result as equations for layer l + 1.  Sub-expressions
get names, as a person would write them, instead of a blob:

* Gaussian integrals of the activation: q̂^l = ∫Dz φ(√q z)², q̂_{12}^l = ∫Dz₁Dz₂ φ(u₁)φ(u₂),
  q̇^l = ∫Dz φ′(√q z)², q̇_{12}^l = ∫Dz₁Dz₂ φ′(u₁)φ′(u₂);
* compound variances and correlations they are taken at: q̃^l, c̃^l;
* angles of closed forms: θ^l = arccos(·) (sin θ for √(1 − cos² θ)), ψ^l = arcsin(·);
* q^{l+1} and c^{l+1} inside the NTK and c equations.

``derive.latex(rec)`` is an ``aligned`` block (for ``$$…$$`` or ``equation``);
:meth:`Recursion.align` a complete ``align`` environment for a paper.

>>> import derive
>>> from derive.symbols import sigma_w2, sigma_b2
>>> rec = derive.serial(derive.activation("tanh"), derive.Dense(sigma_w2, sigma_b2)).recursion()
>>> rec.equations[0]
Eq(q^{l+1}, \hat{q}^{l}*sigma_w2 + sigma_b2)
>>> rec.definitions[0]
Eq(\hat{q}^{l}, Integral(sqrt(2)*exp(-z**2/2)*tanh(sqrt(q^{l})*z)**2/(2*sqrt(pi)), (z, -oo, oo)))
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import sympy as sp

from derive.activations import Activation
from derive.gaussian import GaussianExpectation
from derive.kernel_state import KernelState, SymbolicAlgebra
from derive.symbols import x, y

__all__ = ["Recursion", "recursion"]


def _sym(name: str, **assumptions) -> sp.Symbol:
    return sp.Symbol(name, **assumptions)


def _state_symbols(level: str, equal: bool) -> dict:
    """The symbols of the state at layer `level` ('l' or 'l+1')."""
    sup = f"^{{{level}}}"
    out = {"c": _sym(f"c{sup}", real=True), "t12": _sym(rf"\Theta_{{12}}{sup}", real=True),
           "t11": _sym(rf"\Theta_{{11}}{sup}", real=True), "chi": _sym(rf"\chi{sup}", positive=True)}
    if equal:
        return out | {"q1": _sym(f"q{sup}", positive=True)}
    return out | {"q1": _sym(f"q_{{1}}{sup}", positive=True), "q2": _sym(f"q_{{2}}{sup}", positive=True),
                  "t22": _sym(rf"\Theta_{{22}}{sup}", real=True)}


@dataclass(frozen=True)
class Recursion:
    """The maps of one block from layer l to l + 1: `equations` (q, c, Θ, χ at l + 1) in
    terms of named sub-expressions defined by `definitions` (in dependency order)."""

    block: object
    definitions: tuple
    equations: tuple
    equal_variances: bool = True

    def state(self, level: str = "l") -> dict:
        """The state symbols at `level` ('l' or 'l+1'): keys q (or q1, q2), c, Theta_11,
        Theta_12 (Theta_22), chi."""
        names = {"q1": "q" if self.equal_variances else "q1", "q2": "q2", "c": "c",
                 "t11": "Theta_11", "t22": "Theta_22", "t12": "Theta_12", "chi": "chi"}
        return {names[k]: v for k, v in _state_symbols(level, self.equal_variances).items()}

    def __getitem__(self, name: str) -> sp.Expr:
        """The right-hand side for `name`: a key of :meth:`state` (the equation for layer l + 1)
        or the LaTeX name of a definition (e.g. ``r"\\hat{q}^{l}"``)."""
        target = self.state("l+1").get(name)
        for eq in (*self.equations, *self.definitions):
            if eq.lhs == target or eq.lhs.name == name:
                return eq.rhs
        raise KeyError(f"no equation or definition named {name!r}; equations: "
                       f"{list(self.state('l+1'))}, definitions: {[d.lhs.name for d in self.definitions]}")

    def expand(self, expr: sp.Expr, only=None) -> sp.Expr:
        """`expr` with named sub-expressions replaced by their definitions (all, or those whose
        LaTeX names are in `only`)."""
        expr = sp.sympify(expr)
        if only is None:
            return expr.xreplace(self.substitutions)
        subs = {d.lhs: d.rhs for d in self.definitions if d.lhs.name in only}
        while expr.has(*subs):
            expr = expr.xreplace(subs)
        return expr

    @property
    def substitutions(self) -> dict:
        """name → its definition, fully expanded (later names in terms of earlier ones resolved)."""
        out = {}
        for eq in self.definitions:
            out[eq.lhs] = eq.rhs.xreplace(out)
        return out

    def expanded(self) -> tuple:
        """The equations with every named sub-expression substituted back."""
        subs = self.substitutions
        return tuple(sp.Eq(eq.lhs, eq.rhs.xreplace(subs)) for eq in self.equations)

    def _lines(self, printer) -> list[str]:
        return [f"{printer._print(eq.lhs)} &= {printer._print(eq.rhs)}"
                for eq in (*self.definitions, *self.equations)]

    def _latex(self, printer) -> str:
        return "\\begin{aligned}\n" + " \\\\\n".join(self._lines(printer)) + "\n\\end{aligned}"

    def align(self) -> str:
        """A LaTeX ``align`` environment (needs amsmath) to paste into a paper."""
        from derive.printing import DeriveLatexPrinter

        return "\\begin{align}\n" + " \\\\\n".join(self._lines(DeriveLatexPrinter())) + "\n\\end{align}"

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$$\n{latex(self)}\n$$"

    def __repr__(self) -> str:
        lines = [f"  {eq.lhs} = {eq.rhs}" for eq in (*self.definitions, *self.equations)]
        return f"Recursion of {self.block!r}:\n" + "\n".join(lines)


#: names of quantities that are >= 0 (variances, integrals of squares)
_NONNEGATIVE = (r"\hat{q}", r"\dot{q}", r"\tilde{q}", r"\bar{q}")
#: the order in which integrals of one batch are defined
_ORDER = (r"\hat{q}", r"\hat{q}_{12}", r"\dot{q}", r"\dot{q}_{12}", r"\mathcal{E}")


class _Namer:
    """Gives sub-expressions the names a paper would use, each name once."""

    def __init__(self, activations: list[Activation]):
        self.activations = list(dict.fromkeys(activations))
        self.names: dict[sp.Expr, sp.Symbol] = {}
        self.definitions: list[sp.Eq] = []
        self.taken: set[str] = set()

    def _new(self, base: str, suffix: str, nonnegative: bool) -> sp.Symbol:
        name, k = f"{base}^{{l}}{suffix}", 1
        while name in self.taken:
            k += 1
            name = f"{base}^{{l}}{suffix}_{{({k})}}"
        self.taken.add(name)
        return _sym(name, nonnegative=True) if nonnegative else _sym(name, real=True)

    def name(self, expr: sp.Expr, base: str, suffix: str = "") -> sp.Symbol:
        if expr not in self.names:
            nonnegative = base in _NONNEGATIVE or bool(expr.is_nonnegative)
            symbol = self._new(base, suffix, nonnegative)
            self.names[expr] = symbol
            self.definitions.append(sp.Eq(symbol, expr))
        return self.names[expr]

    def _integral_name(self, ge: GaussianExpectation) -> tuple[str, str]:
        f, variables = ge.integrand, ge.variables
        canonical = f.xreplace(dict(zip(variables, (x, y)[:len(variables)], strict=True)))
        many = len(self.activations) > 1
        for act in self.activations:
            suffix = f"_{{{act.latex_name}}}" if many else ""
            phi, dphi = act(x), act.derivative(x)
            if len(variables) == 1:
                table = {phi**2: r"\hat{q}", dphi**2: r"\dot{q}"}
            else:
                table = {phi * act(y): r"\hat{q}_{12}", dphi * act.derivative(y): r"\dot{q}_{12}"}
            for body, base in table.items():
                if sp.simplify(canonical - body) == 0:
                    return base, suffix
        return r"\mathcal{E}", ""

    def integrals(self, expr: sp.Expr, state: set) -> sp.Expr:
        """Name the Gaussian integrals of expr, innermost first, and the compound variances and
        correlations they are taken at."""
        while True:
            inner = [g for g in expr.atoms(GaussianExpectation)
                     if not any(p.has(GaussianExpectation) for p in g.parameters)]
            if not inner:
                return expr
            batch = []
            for g in inner:
                params = []
                for i, p in enumerate(g.parameters):
                    if p.is_number or p in state or p in self.names.values():
                        params.append(p)
                    else:
                        params.append(self.name(p, r"\tilde{c}" if i == 2 else r"\tilde{q}"))
                canonical = (x, y)[:len(g.variables)]
                body = g.integrand.xreplace(dict(zip(g.variables, canonical, strict=True)))
                renamed = GaussianExpectation(body, canonical, params)
                batch.append((g, renamed, self._integral_name(renamed)))
            batch.sort(key=lambda item: (_ORDER.index(item[2][0]), sp.default_sort_key(item[1])))
            expr = expr.xreplace({g: self.name(renamed, *how) for g, renamed, how in batch})

    def variance(self, expr: sp.Expr) -> sp.Expr:
        """A compound variance (the input of a normalisation) as \\bar{q}^l."""
        return expr if expr.is_Atom else self.name(expr, r"\bar{q}")

    def angles(self, exprs: list[sp.Expr]) -> list[sp.Expr]:
        """Name arccos/arcsin atoms that occur more than once; √(1 − cos²θ) becomes sin θ."""
        counts: dict = {}
        for e in exprs:
            for atom in e.atoms(sp.acos, sp.asin):
                counts[atom] = counts.get(atom, 0) + sum(1 for _ in sp.preorder_traversal(e) if _ == atom)
        out = list(exprs)
        for atom, n in sorted(counts.items(), key=lambda kv: sp.default_sort_key(kv[0])):
            if n < 2 or atom in self.names:
                continue
            base = r"\theta" if isinstance(atom, sp.acos) else r"\psi"
            symbol = self.name(atom, base)
            out = [e.xreplace({atom: symbol}) for e in out]
            if isinstance(atom, sp.acos):
                out = [e.subs(sp.sqrt(1 - atom.args[0] ** 2), sp.sin(symbol)) for e in out]
        return out


class _NamingAlgebra(SymbolicAlgebra):
    """The symbolic algebra, naming the variance a LayerNorm divides by."""

    def __init__(self, namer: _Namer, state: set):
        self.namer, self.state = namer, state

    def variance(self, value):
        return self.namer.variance(self.namer.integrals(value, self.state))


def recursion(net, equal_variances: bool = True) -> Recursion:
    """The recursion of `net`'s block from layer l to l + 1 (see the module docstring)."""
    block = net.repeated_block
    now, nxt = _state_symbols("l", equal_variances), _state_symbols("l+1", equal_variances)
    q_1 = now["q1"]
    q_2 = q_1 if equal_variances else now["q2"]
    state = KernelState(k11=q_1, k22=q_2, k12=now["c"] * sp.sqrt(q_1 * q_2), t11=now["t11"],
                        t22=now["t11"] if equal_variances else now["t22"], t12=now["t12"],
                        chi11=now["chi"], chi22=now["chi"])
    namer = _Namer(block.activations())
    known = set(now.values())
    out = block.apply(state, _NamingAlgebra(namer, known))
    e = {f.name: namer.integrals(getattr(out, f.name), known) for f in fields(out)}
    e["chi"] = e["chi11"]
    for definition in [d for d in namer.definitions if d.lhs.name.startswith(r"\tilde")]:
        e = {k: v.subs(definition.rhs, definition.lhs) for k, v in e.items()}
    if equal_variances:
        norm, scale = nxt["q1"], e["k11"]
        lhs = [nxt["q1"], nxt["c"], nxt["t11"], nxt["t12"], nxt["chi"]]
        rhs = [e["k11"], None, e["t11"], e["t12"], e["chi"]]
    else:
        norm, scale = sp.sqrt(nxt["q1"] * nxt["q2"]), sp.sqrt(e["k11"] * e["k22"])
        lhs = [nxt["q1"], nxt["q2"], nxt["c"], nxt["t11"], nxt["t22"], nxt["t12"], nxt["chi"]]
        rhs = [e["k11"], e["k22"], None, e["t11"], e["t22"], e["t12"], e["chi"]]
    rhs[rhs.index(None)] = e["k12"] / (scale if scale.is_number else norm)
    rhs = _refer_to_next(lhs, rhs, e, nxt, scale if scale.is_number else norm)
    rhs = namer.angles(rhs)
    equations = tuple(sp.Eq(a, b) for a, b in zip(lhs, rhs, strict=True))
    return Recursion(block, tuple(namer.definitions), equations, equal_variances)


def _refer_to_next(lhs, rhs, e, nxt, norm) -> list:
    """The NTK equations through q^{l+1} and q^{l+1} c^{l+1} where their expressions occur
    (Θ^{l+1} = Σ^{l+1} + Σ̇^{l+1} Θ^l, as the papers write it)."""
    swaps = [(e["k12"], norm * nxt["c"])]
    swaps += [(e[k], nxt[q]) for k, q in (("k11", "q1"), ("k22", "q2")) if q in nxt]
    out = []
    for symbol, expr in zip(lhs, rhs, strict=True):
        if symbol.name.startswith(r"\Theta"):
            for old, new in swaps:
                if not old.is_number:
                    expr = expr.subs(old, new)
        out.append(expr)
    return out
