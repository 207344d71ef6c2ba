r"""The architecture algebra: layers that map a kernel state to a kernel state.

A network is built from small immutable layers, as in neural-tangents' ``stax``
(Novak et al. 2020), but each layer here has a readable repr, equality and
LaTeX, and maps a *symbolic* :class:`KernelState`: the second-order statistics
of two inputs' representations (NNGP kernel entries k, NTK entries t and the
backward factor chi), each a SymPy expression.  The same formulas evaluate
float64 Gram matrices (:meth:`Layer.kernels`) and mpmath numbers
(:meth:`Layer.kernels_mp`): a layer states its map once, through an *algebra*
(:data:`SYMBOLIC`, or the numeric ones of :mod:`derive.ntk`).

Conventions (Poole et al. 2016; Jacot et al. 2018; the NTK parametrisation of ``stax``;
p = keep probability), for each of the entries 11, 22, 12 of the state:

* ``Dense(σ_w², σ_b²)``: k′ = σ_w² k + σ_b², t′ = σ_w² t + k′ (NTK parametrisation; standard:
  t′ = σ_w² t + k, see :class:`Dense`), χ′ = σ_w² χ;
* an activation φ: k′₁₁ = E φ(u)², k′₁₂ = E φ(u)φ(v), t′ = t · E φ′φ′, χ′ = χ · E φ′φ′,
  with (u, v) ~ N(0, [[k₁₁, k₁₂], [k₁₂, k₂₂]]);
* ``Dropout(p)`` (inverted: y = m x / p, m ~ Bernoulli(p), one mask per input and pass):
  k′₁₁ = k₁₁/p, k′₁₂ = k₁₂ (two inputs see independent masks), likewise t and χ;
* ``LayerNorm()``: k′₁₁ = 1, k′₁₂ = k₁₂/√(k₁₁k₂₂) (c is preserved), t and χ divided likewise;
* ``Residual(branch, α)`` (y = x + α·branch(x), the branch containing a Dense layer on
  every path): k′ = k + α² k_branch, t′ = t + α² t_branch, χ′ = χ + α² χ_branch; a branch
  made of activations only is the elementwise activation x + α φ(x).

χ is the factor by which the squared norm of a back-propagated gradient grows from the
network's output back to this representation (per unit when all widths are equal);
:meth:`Layer.trace` records the state before and after every layer.

A mean-field block is ``serial(act, Dense(σ_w², σ_b²))``: it maps the
pre-activation variance q to σ_w² ∫Dz φ(√q z)² + σ_b² (Poole et al. 2016).

>>> import derive
>>> from derive.symbols import q
>>> block = serial(derive.activation("relu"), Dense(2, 0))
>>> block
serial(relu, Dense(2, 0))
>>> block.forward(KernelState.single(q)).k11
q
>>> Dropout("1/2").forward(KernelState.pair(q, q, 0.5)).k11
2*q
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property, lru_cache

import sympy as sp

from derive.activations import Activation
from derive.errors import DomainError
from derive.kernel_state import SYMBOLIC, KernelState, Kind, Recorder, Trace, join
from derive.parsing import as_expr
from derive.symbols import x


@lru_cache(maxsize=256)
def is_odd(act: Activation) -> bool:
    """φ(−x) = −φ(x): symbolically, or at several irrational points when SymPy cannot decide."""
    difference = act(-x) + act(x)
    if sp.simplify(difference) == 0:
        return True
    if act.parameters:
        return False
    points = [sp.sqrt(2) / 7, sp.pi / 5, sp.E / 2, sp.sqrt(3), sp.pi, sp.sqrt(29)]
    return all(abs(sp.N(difference.subs(x, t), 30)) < 1e-25 for t in points)


# --- layers --------------------------------------------------------------------------------------


class Layer:
    """What every layer, and so every network, offers (see :mod:`derive.ntk` for the numbers)."""

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        """The layer's map of `s` evaluated by `algebra`; each primitive layer reports its step
        to `recorder` (see :meth:`trace`)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def forward(self, s: KernelState) -> KernelState:
        """The layer's map on a symbolic kernel state."""
        return self.apply(s, SYMBOLIC)

    def trace(self, s: KernelState, algebra=SYMBOLIC) -> Trace:
        """The forward pass from `s` with the state before and after every primitive layer."""
        recorder = Recorder()
        out = self.apply(s, algebra, recorder)
        return Trace(tuple(recorder.steps), out)

    def activations(self) -> list[Activation]:
        """The activations of the layer, in order (those of a residual branch included)."""
        return []

    @property
    def repeated_block(self):
        """The block a recursion is written for: the block of a ``repeat`` (at the top, or the only
        one in a ``serial``), else the layer itself."""
        return self

    def kind(self, incoming: Kind) -> Kind:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def mixes(self) -> bool:
        """True when every path through the layer passes a Dense layer, so that in the wide
        limit its output units are independent of its input units (given the kernel)."""
        return False

    def recursion(self, equal_variances: bool = True):
        """The layer-to-layer maps of q, c, Θ and χ as SymPy equations
        (a :class:`derive.recursion.Recursion`)."""
        from derive.recursion import recursion

        return recursion(self, equal_variances=equal_variances)

    def kernels(self, X, *, tol: float = 1e-12, ntk: bool = True, trace: bool = False):
        """NNGP and NTK Gram matrices of the rows of X (:func:`derive.ntk.kernels`); with
        ``trace=True`` also the state before and after every layer."""
        from derive.ntk import kernels

        return kernels(self, X, tol=tol, ntk=ntk, trace=trace)

    def nngp(self, X, *, tol: float = 1e-12):
        """The NNGP Gram matrix of the rows of X, as a :class:`derive.ntk.Gram` (computed with the
        NTK where that exists, and kept: ``ntk(X)`` afterwards costs nothing)."""
        from derive.ntk import remembered_kernels

        return remembered_kernels(self, X, tol).nngp

    def ntk(self, X, *, tol: float = 1e-12):
        """The NTK Gram matrix of the rows of X, as a :class:`derive.ntk.Gram`."""
        from derive.ntk import remembered_kernels

        out = remembered_kernels(self, X, tol)
        return out.ntk if out.ntk is not None else self.kernels(X, tol=tol).ntk  # raises why

    def kernels_mp(self, x1, x2, dps: int = 30, *, ntk: bool = True):
        """NNGP and NTK of two inputs at `dps` digits (:func:`derive.ntk.kernels_mp`)."""
        from derive.ntk import kernels_mp

        return kernels_mp(self, x1, x2, dps=dps, ntk=ntk)

    def _repr_latex_(self) -> str:
        from derive.printing import latex

        return f"$\\displaystyle {latex(self)}$"


def _show(value: sp.Expr) -> str:
    """A parameter as typed: floats shortest (0.1, not 0.100000000000000), the rest as SymPy prints."""
    return repr(float(value)) if isinstance(value, sp.Float) else str(value)


def _variance(value, owner: str, name: str) -> sp.Expr:
    value = as_expr(value)
    if value.is_number and (value.has(sp.nan, sp.zoo) or value.is_real is False or not value.is_finite):
        raise DomainError(f"{owner}: {name} = {value} must be a finite variance >= 0")
    if value.is_negative:
        raise DomainError(f"{owner}: {name} = {value} is negative; a variance must be >= 0")
    return value


class Ensemble(Enum):
    """How the weight matrix of a :class:`Dense` layer is drawn."""

    GAUSSIAN = "gaussian"    # i.i.d. N(0, σ_w²/M_in) entries
    ORTHOGONAL = "orthogonal"  # σ_w √(M/M_in)-scaled Haar-orthogonal (rows or columns orthonormal)


class Parametrisation(Enum):
    """Which parameters the tangent kernel differentiates (Jacot et al. 2018, remark 1)."""

    NTK = "ntk"            # W = σ_w ω/√M_in, b = σ_b β, the trained parameters ω, β ~ N(0, 1)
    STANDARD = "standard"  # the trained parameters are W ~ N(0, σ_w²/M_in), b ~ N(0, σ_b²) themselves


def _choice(enum, value, owner: str, name: str):
    try:
        return enum(value.value if isinstance(value, Enum) else str(value).lower())
    except ValueError:
        options = ", ".join(repr(e.value) for e in enum)
        raise DomainError(f"{owner}: {name} = {value!r} is not one of {options}") from None


@dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer h = W x + b with W_ij ~ N(0, σ_w²/M_in) (or a scaled Haar-orthogonal
    W, ``ensemble="orthogonal"``) and b_i ~ N(0, σ_b²).

    The kernels do not depend on the ensemble in the wide limit (the Jacobian spectra do:
    :mod:`derive.freeprob`).  ``parametrisation`` fixes what the NTK differentiates: "ntk"
    (default; W = σ_w ω/√M_in, b = σ_b β with ω, β ~ N(0, 1) trained: t′ = σ_w² t + k′) or
    "standard" (W and b trained themselves; their tangent kernel grows with the width, so the
    NTK entries are per unit fan-in: the weights contribute k, the biases O(1/M_in), t′ = σ_w² t + k).
    """

    sigma_w2: sp.Expr
    sigma_b2: sp.Expr = sp.S.Zero
    ensemble: Ensemble = Ensemble.GAUSSIAN
    parametrisation: Parametrisation = Parametrisation.NTK

    def __post_init__(self):
        for name in ("sigma_w2", "sigma_b2"):
            object.__setattr__(self, name, _variance(getattr(self, name), "Dense", name))
        object.__setattr__(self, "ensemble", _choice(Ensemble, self.ensemble, "Dense", "ensemble"))
        object.__setattr__(self, "parametrisation",
                           _choice(Parametrisation, self.parametrisation, "Dense", "parametrisation"))

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        w, b = algebra.const(self.sigma_w2), algebra.const(self.sigma_b2)
        k11, k22, k12 = (w * k + b for k in (s.k11, s.k22, s.k12))
        tangent = (k11, k22, k12) if self.parametrisation is Parametrisation.NTK else (s.k11, s.k22, s.k12)
        out = KernelState(k11=k11, k22=k22, k12=k12, t11=w * s.t11 + tangent[0],
                          t22=w * s.t22 + tangent[1], t12=w * s.t12 + tangent[2],
                          chi11=w * s.chi11, chi22=w * s.chi22, chi12=w * s.chi12, gap=w * s.gap)
        return recorder.add(self, s, out) if recorder else out

    def kind(self, incoming: Kind) -> Kind:
        return Kind.GAUSSIAN

    @property
    def mixes(self) -> bool:
        return True

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value.value!r}" for name, value, default in (
            ("ensemble", self.ensemble, Ensemble.GAUSSIAN),
            ("parametrisation", self.parametrisation, Parametrisation.NTK)) if value is not default)
        return f"Dense({_show(self.sigma_w2)}, {_show(self.sigma_b2)}{extra})"

    def _latex(self, printer) -> str:
        return rf"\mathrm{{Dense}}({printer._print(self.sigma_w2)}, {printer._print(self.sigma_b2)})"


@dataclass(frozen=True)
class Nonlinearity(Layer):
    """The layer that applies an :class:`~derive.activations.Activation` elementwise.

    Its input must be a centred Gaussian representation (after a Dense layer): that is
    what makes E φ(u)φ(v) a function of the kernel alone.
    """

    activation: Activation

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        out = algebra.activation(self.activation, s)
        return recorder.add(self, s, out) if recorder else out

    def activations(self) -> list[Activation]:
        return [self.activation]

    def kind(self, incoming: Kind) -> Kind:
        if incoming is not Kind.GAUSSIAN:
            what = ("the raw inputs" if incoming is Kind.DATA
                    else f"a {incoming.value} (non-Gaussian) representation")
            raise DomainError(
                f"activation {self.activation.name} is applied to {what}; the kernel maps need "
                "Gaussian pre-activations: put a Dense layer before it, or compose consecutive "
                "activations into one, e.g. derive.activation('tanh(Max(0, x))')")
        return Kind.CENTRED if is_odd(self.activation) else Kind.GENERAL

    def __repr__(self) -> str:
        return self.activation.name

    def _latex(self, printer) -> str:
        return self.activation.latex_name


@dataclass(frozen=True)
class Dropout(Layer):
    """Inverted dropout: y = m ∘ x / p with m_i ~ Bernoulli(p) (p = `keep`), so E y = x.

    Each input draws its own mask; the diagonal of a Gram matrix (an input with itself,
    same mask) is E[m²]/p² = 1/p times the input's, the off-diagonal (independent masks)
    is unchanged: k′₁₁ = k₁₁/p, k′₁₂ = k₁₂, so c′ = p c and c = 1 stops being a fixed
    point (Schoenholz et al. 2017, §5).  The NTK entries follow the same rule, and the
    backward factor χ is divided by p.
    """

    keep: sp.Expr

    def __post_init__(self):
        p = as_expr(self.keep)
        if p.is_number and (p.has(sp.nan, sp.zoo) or p.is_real is False or not (0 < p <= 1)):
            raise DomainError(f"Dropout: keep = {p} must be a probability in (0, 1] "
                              "(the fraction of units kept; keep = 1 is no dropout)")
        if p.is_nonpositive:
            raise DomainError(f"Dropout: keep = {p} must be positive")
        object.__setattr__(self, "keep", p)

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        p = algebra.const(self.keep)
        out = replace(s, k11=s.k11 / p, k22=s.k22 / p, t11=s.t11 / p, t22=s.t22 / p,
                      chi11=s.chi11 / p, chi22=s.chi22 / p, gap=s.gap + (s.k11 + s.k22) * (1 / p - 1) / 2)
        return recorder.add(self, s, out) if recorder else out

    def kind(self, incoming: Kind) -> Kind:
        return Kind.CENTRED if incoming is Kind.GAUSSIAN else incoming

    def __repr__(self) -> str:
        return f"Dropout({_show(self.keep)})"

    def _latex(self, printer) -> str:
        return rf"\mathrm{{Dropout}}({printer._print(self.keep)})"


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Layer normalisation without gain and bias: y = (x − μ)/σ over the units of each input.

    On a centred representation μ → 0 in the wide limit, so the layer divides each input
    by √k₁₁: it fixes q = 1 and preserves the correlation c; NTK entries are divided
    like the kernel (the projection onto the mean and the direction of x costs O(1/M)),
    the backward factor by k₁₁.
    """

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        v11, v22 = algebra.variance(s.k11), algebra.variance(s.k22)
        norm = algebra.sqrt(v11 * v22)
        spread = (algebra.sqrt(v11) - algebra.sqrt(v22)) ** 2 / 2
        out = KernelState(k11=s.k11 * 0 + 1, k22=s.k22 * 0 + 1, k12=s.k12 / norm,
                          t11=s.t11 / v11, t22=s.t22 / v22, t12=s.t12 / norm,
                          chi11=s.chi11 / v11, chi22=s.chi22 / v22, chi12=s.chi12 / norm,
                          gap=(s.gap - spread) / norm)
        return recorder.add(self, s, out) if recorder else out

    def kind(self, incoming: Kind) -> Kind:
        if not incoming.centred:
            what = "the raw inputs" if incoming is Kind.DATA else "a representation with non-zero mean"
            raise DomainError(
                f"LayerNorm is applied to {what}; its mean over units is not zero and the kernel "
                "state does not track means. Put LayerNorm after a Dense or residual layer "
                "(or normalise the inputs X yourself)")
        return incoming

    def __repr__(self) -> str:
        return "LayerNorm()"

    def _latex(self, printer) -> str:
        return r"\mathrm{LayerNorm}"


def _activations_only(layer) -> list[Activation] | None:
    """The activations of a branch made of activations only (in order), else None."""
    if isinstance(layer, Nonlinearity):
        return [layer.activation]
    if isinstance(layer, Serial):
        parts = [_activations_only(inner) for inner in layer.layers]
        return None if any(p is None for p in parts) else [a for p in parts for a in p]
    return None


@dataclass(frozen=True)
class Residual(Layer):
    """A skip connection y = x + α · branch(x).

    When every path of the branch passes a Dense layer, the branch's output units are, in
    the wide limit, independent of the input units, and (one of the two being centred) the
    cross terms vanish: k′ = k + α² k_b, t′ = t + α² t_b, χ′ = χ + α² χ_b (Yang &
    Schoenholz 2017).  A branch of activations only is the elementwise activation
    x + α φ(x).  ``alpha = 0`` is the identity.
    """

    branch: Layer
    alpha: sp.Expr = sp.S.One

    def __post_init__(self):
        object.__setattr__(self, "branch", as_layer(self.branch))
        a = as_expr(self.alpha)
        if a.is_number and (a.has(sp.nan, sp.zoo) or a.is_real is False or not a.is_finite):
            raise DomainError(f"Residual: alpha = {a} must be a finite real number")
        object.__setattr__(self, "alpha", a)
        if self.elementwise is None and not self.branch.mixes:
            raise DomainError(
                f"Residual: the branch {self.branch!r} has a path without a Dense layer, so its "
                "output is correlated with its input in a way the kernel state does not track; "
                "start the branch with Dense(...), or use a branch of activations only")
        self.kind(Kind.GAUSSIAN)

    @cached_property
    def elementwise(self) -> Activation | None:
        """The activation x + α φ(x) when the branch is made of activations only."""
        acts = _activations_only(self.branch)
        if acts is None:
            return None
        inner = x
        for act in acts:
            inner = act(inner)
        name = f"x + {_show(self.alpha)}*{'∘'.join(a.name for a in reversed(acts))}(x)"
        return Activation.from_expr(x + self.alpha * inner, name=name, source="residual branch")

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        if self.elementwise is not None:
            out = algebra.activation(self.elementwise, s)
            return recorder.add(self, s, out) if recorder else out
        a2 = algebra.const(self.alpha) ** 2
        inner = Recorder() if recorder else None
        out = s.combine(self.branch.apply(s, algebra, inner), lambda own, b: own + a2 * b)
        return recorder.add(self, s, out, tuple(inner.steps)) if recorder else out

    def activations(self) -> list[Activation]:
        return [self.elementwise] if self.elementwise is not None else self.branch.activations()

    def kind(self, incoming: Kind) -> Kind:
        if self.elementwise is not None:
            return Nonlinearity(self.elementwise).kind(incoming)
        out = self.branch.kind(incoming)
        if not (incoming.centred or out.centred):
            raise DomainError(
                f"Residual: both the input and the branch output {self.branch!r} have non-zero means, "
                "so x·branch(x) does not vanish; end the branch with a Dense layer")
        return join(incoming, out)

    def __repr__(self) -> str:
        return f"Residual({self.branch!r}, alpha={_show(self.alpha)})"

    def _latex(self, printer) -> str:
        return rf"\left(\mathrm{{id}} + {printer._print(self.alpha)}\, {printer._print(self.branch)}\right)"


def as_layer(obj) -> Layer:
    """An object usable as a layer: layers pass through, activations (or their names) are wrapped."""
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, Activation):
        return Nonlinearity(obj)
    if isinstance(obj, str):
        from derive.activations import activation

        return Nonlinearity(activation(obj))
    raise DomainError(f"{obj!r} is not a layer: use Dense, Dropout, LayerNorm, Residual, an activation, "
                      "serial(...) or repeat(...)")


@dataclass(frozen=True)
class Serial(Layer):
    """Layers applied one after another."""

    layers: tuple

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(as_layer(layer) for layer in self.layers))
        self.kind(Kind.GAUSSIAN)

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        for layer in self.layers:
            s = layer.apply(s, algebra, recorder)
        return s

    def activations(self) -> list[Activation]:
        return [a for layer in self.layers for a in layer.activations()]

    @property
    def repeated_block(self):
        repeats = [layer for layer in self.layers if isinstance(layer, Repeat)]
        return repeats[0].block if len(repeats) == 1 else self

    def kind(self, incoming: Kind) -> Kind:
        for layer in self.layers:
            incoming = layer.kind(incoming)
        return incoming

    @property
    def mixes(self) -> bool:
        return any(layer.mixes for layer in self.layers)

    def __repr__(self) -> str:
        return f"serial({', '.join(map(repr, self.layers))})"

    def _latex(self, printer) -> str:
        if not self.layers:
            return r"\mathrm{id}"
        return r" \circ ".join(printer._print(layer) for layer in reversed(self.layers))


@dataclass(frozen=True)
class Repeat(Layer):
    """A layer or block applied n times, each copy with its own independent weights."""

    block: Layer
    n: int

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise DomainError(f"repeat: n = {self.n!r} must be a non-negative integer")
        object.__setattr__(self, "block", as_layer(self.block))
        self.kind(Kind.GAUSSIAN)

    def apply(self, s: KernelState, algebra, recorder: Recorder | None = None) -> KernelState:
        for _ in range(self.n):
            s = self.block.apply(s, algebra, recorder)
        return s

    def activations(self) -> list[Activation]:
        return self.block.activations() if self.n else []

    @property
    def repeated_block(self):
        return self.block

    def kind(self, incoming: Kind) -> Kind:
        seen = []
        for _ in range(self.n):
            incoming = self.block.kind(incoming)
            if incoming in seen:  # the kind sequence has become periodic (period 1 in practice)
                break
            seen.append(incoming)
        return incoming

    @property
    def mixes(self) -> bool:
        return self.n > 0 and self.block.mixes

    def __repr__(self) -> str:
        return f"repeat({self.block!r}, {self.n})"

    def _latex(self, printer) -> str:
        return rf"\left({printer._print(self.block)}\right)^{{\circ {self.n}}}"


def serial(*layers) -> Serial:
    """The network that applies `layers` in order (activations, or their names, are layers)."""
    return Serial(layers)


def repeat(layer, n: int) -> Repeat:
    """`layer` (or a block made by :func:`serial`) applied `n` times, with independent weights."""
    return Repeat(layer, n)
