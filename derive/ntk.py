r"""NNGP and NTK Gram matrices of a network, in float64 for many inputs and in mpmath for two.

The network's layers (:mod:`derive.layers`) state their maps once; here they are evaluated
on numbers.  The input state is K⁰ = X Xᵀ/d, Θ⁰ = 0, so a first ``Dense(σ_w², σ_b²)`` gives
Σ¹ = σ_w² x·x′/d + σ_b² and Θ¹ = Σ¹, and every later layer follows the NTK parametrisation
of neural-tangents' ``stax`` (Jacot et al. 2018; Arora et al. 2019; Novak et al. 2020):

    Σ^{l+1} = σ_w² E φ(u)φ(v) + σ_b²,   Θ^{l+1} = Σ^{l+1} + σ_w² E φ′(u)φ′(v) Θ^l.

Activation layers read the Gaussian engine (:mod:`derive.gaussian.moments`): closed forms of
:func:`derive.expect2` where they exist (the arc-cosine kernel of ReLU, the arcsine kernel of
erf, GELU, ...), the Mehler expansion or panel quadrature otherwise; the result records which
(:attr:`Gram.methods`, readable as :attr:`Gram.method`).  The diagonal of
a Gram is each input with itself (one forward pass: with dropout, the same mask); the
off-diagonal entries are pairs of inputs.

>>> import numpy as np, derive
>>> net = derive.serial(derive.Dense(2, 0), derive.activation("relu"), derive.Dense(2, 0))
>>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> K = net.nngp(X)
>>> K.method
'relu: closed form'
>>> np.asarray(K)  # orthogonal inputs: 2·q/2 = 1 on the diagonal, 2·1/(2π) = 1/π off it
array([[1.        , 0.31830989],
       [0.31830989, 1.        ]])
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import mpmath as mp
import numpy as np
import sympy as sp

from derive.errors import DomainError, NumericError
from derive.gaussian.moments import Method, moments_of
from derive.kernel_state import UNTRACKED, Algebra, KernelState, Kind
from derive.parsing import as_expr

__all__ = ["Gram", "Kernels", "PairKernels", "kernels", "kernels_mp"]


# --- results -------------------------------------------------------------------------------------


def _describe(methods: tuple) -> str:
    """'relu: closed form; tanh: Mehler-Hermite expansion, panel quadrature' from the structure."""
    if not methods:
        return "no activation: linear algebra only"
    order = list(Method)
    return "; ".join(f"{name}: " + ", ".join(m.value for m in sorted(used, key=order.index))
                     for name, used in methods)


@dataclass(frozen=True, eq=False)
class Gram:
    """A Gram matrix (read-only float64) and how it was obtained.

    ``np.asarray(gram)`` is the matrix.  `methods` holds, for each activation layer (by name),
    the set of :class:`~derive.gaussian.moments.Method` its moments used; `method` says it in
    words.  `error` is the largest error bound of any activation layer, relative to √(K_aa K_bb)
    of that layer's kernel.
    """

    name: str
    matrix: np.ndarray
    methods: tuple
    error: float = 0.0

    @property
    def method(self) -> str:
        return _describe(self.methods)

    def __post_init__(self):
        self.matrix.setflags(write=False)

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self.matrix, dtype=dtype)
        return self.matrix if dtype is None else self.matrix.astype(dtype)

    @property
    def shape(self) -> tuple:
        return self.matrix.shape

    def __repr__(self) -> str:
        return f"Gram({self.name}, shape={self.shape}, method={self.method!r}, error<={self.error:.1e})"


@dataclass(frozen=True, eq=False)
class Kernels:
    """The NNGP and NTK Gram matrices of one evaluation, and the backward factor χ of each input
    (the growth of a squared gradient norm from the output back to the input; None with the NNGP only)."""

    nngp: Gram
    ntk: Gram | None
    chi: np.ndarray | None = None
    trace: object = None  # a derive.kernel_state.Trace of Gram states, with kernels(..., trace=True)

    @property
    def method(self) -> str:
        return self.nngp.method

    @property
    def methods(self) -> tuple:
        return self.nngp.methods


@dataclass(frozen=True)
class PairKernels:
    """NNGP and NTK of two inputs at `dps` digits: 2×2 mpmath matrices [[x·x, x·x′], [x′·x, x′·x′]]."""

    nngp: mp.matrix = field(repr=False)
    ntk: mp.matrix | None = field(repr=False)
    dps: int
    method: str

    def __repr__(self) -> str:
        with mp.workdps(self.dps):
            show = lambda m: [[mp.nstr(m[i, j], 12) for j in range(2)] for i in range(2)]  # noqa: E731
            ntk = show(self.ntk) if self.ntk is not None else None
            return f"PairKernels(nngp={show(self.nngp)}, ntk={ntk}, dps={self.dps})"


# --- float64 ------------------------------------------------------------------------------------


class Float64Algebra(Algebra):
    """Layer formulas on float64 arrays: k11 (n, 1), k22 (1, n), k12 (n, n) (likewise t, chi (n, 1))."""

    name = "float64"

    def __init__(self, tol: float, with_ntk: bool):
        self.tol, self.with_ntk = tol, with_ntk
        self.used: dict[str, frozenset] = {}
        self.error = 0.0

    def const(self, value: sp.Expr) -> float:
        if not value.is_number:
            raise DomainError(f"the network has a symbolic parameter {value}; substitute numbers "
                              "(e.g. Dense(2.0, 0.1)) before computing Gram matrices")
        number = float(value)
        if not np.isfinite(number):
            raise DomainError(f"parameter {value} is not finite")
        return number

    def sqrt(self, value):
        return np.sqrt(value)

    def activation(self, act, s: KernelState) -> KernelState:
        (k11, k22, k12), derivs, error, used = moments_of(act).gram(s.k11, s.k22, s.k12, self.tol,
                                                                    self.with_ntk)
        self.used[act.name] = self.used.get(act.name, frozenset()) | used
        self.error = max(self.error, error)
        gap = UNTRACKED if s.gap is UNTRACKED else (k11 + k22) / 2 - k12
        if not self.with_ntk:
            return replace(s, k11=k11, k22=k22, k12=k12, gap=gap)
        d11, d22, dd12 = derivs
        return KernelState(k11=k11, k22=k22, k12=k12, t11=s.t11 * d11, t22=s.t22 * d22, t12=s.t12 * dd12,
                           chi11=s.chi11 * d11, chi22=s.chi22 * d22, chi12=s.chi12 * dd12, gap=gap)

    @property
    def methods(self) -> tuple:
        return tuple(self.used.items())


def _inputs(X) -> np.ndarray:
    try:
        X = np.array(X, dtype=float)
    except (TypeError, ValueError):
        raise DomainError("X must be an array of numbers, one input per row") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DomainError(f"X must be a 2-D array (n inputs × d features) with n, d >= 1; got shape "
                          f"{X.shape}. For one input use X[None, :]")
    if not np.all(np.isfinite(X)):
        rows = np.flatnonzero(~np.all(np.isfinite(X), axis=1))[:5].tolist()
        raise DomainError(f"X has non-finite entries (NaN or inf) in rows {rows}")
    return X


def _check_network(net) -> None:
    net.kind(Kind.DATA)


def kernels(net, X, *, tol: float = 1e-12, ntk: bool = True, trace: bool = False) -> Kernels:
    """NNGP (and NTK) Gram matrices of the rows of X (n × d) through `net`.

    With ``trace=True`` the result also holds the per-layer :class:`~derive.kernel_state.Trace`
    (each state's k11 an (n, 1), k22 a (1, n) and k12 an (n, n) array; likewise t and χ).

    `tol` bounds the truncation error of numerical activation layers per layer, relative to
    the layer's √(K_aa K_bb).  Raises :class:`DomainError` for a network that starts with
    an activation (its input must first pass a Dense layer) or X of the wrong shape.
    """
    X = _inputs(X)
    _check_network(net)
    if not (0 < tol < 1):
        raise DomainError(f"tol = {tol} must lie in (0, 1)")
    n, d = X.shape
    K0 = X @ X.T / d
    diag = np.diag(K0).copy()
    zeros = np.zeros((n, n))
    # χ₂₂, χ₁₂ and the gap are n × n statistics only a trace shows
    shown = dict(chi22=np.ones((1, n)), chi12=np.ones((n, n))) if trace else dict(
        chi22=UNTRACKED, chi12=UNTRACKED, gap=UNTRACKED)
    state = KernelState(k11=diag[:, None], k22=diag[None, :], k12=K0, t11=zeros[:, :1], t22=zeros[:1, :],
                        t12=zeros, chi11=np.ones((n, 1)), **shown)
    algebra = Float64Algebra(tol, ntk)
    with np.errstate(over="raise"):
        try:
            steps = net.trace(state, algebra) if trace else None
            out = steps.output if trace else net.apply(state, algebra)
        except FloatingPointError:
            raise NumericError("overflow while propagating the kernels: the variances grow without "
                               "bound through this network (reduce sigma_w2 or the depth)") from None
    nngp = _assemble(out.k12, out.k11, n)
    methods = algebra.methods
    grams = [Gram("NNGP", nngp, methods, algebra.error)]
    grams.append(Gram("NTK", _assemble(out.t12, out.t11, n), methods, algebra.error) if ntk else None)
    for gram in grams:
        if gram is not None and not np.all(np.isfinite(gram.matrix)):
            raise NumericError(f"the {gram.name} Gram has non-finite entries ({gram.method})")
    chi = np.array(np.broadcast_to(out.chi, (n, 1))[:, 0]) if ntk else None
    return Kernels(*grams, chi, steps)


def remembered_kernels(net, X, tol: float) -> Kernels:
    """kernels(net, X) with the NTK where it is defined (the NNGP alone otherwise), remembered for
    the last few (net, X, tol): nngp(X) then ntk(X) runs the recursion once."""
    X = _inputs(X)
    key = (net, X.shape, X.tobytes(), tol)
    if key not in _REMEMBERED:
        from derive.errors import DivergenceError

        try:
            found = kernels(net, X, tol=tol)
        except DivergenceError:
            found = kernels(net, X, tol=tol, ntk=False)
        _REMEMBERED[key] = found
        while len(_REMEMBERED) > 4:
            _REMEMBERED.pop(next(iter(_REMEMBERED)))
    return _REMEMBERED[key]


_REMEMBERED: dict = {}


def _assemble(off: np.ndarray, diag: np.ndarray, n: int) -> np.ndarray:
    """The Gram: off-diagonal entries from the pair map, the diagonal from the single-input map."""
    off = np.broadcast_to(off, (n, n))
    out = np.add(off, off.T)  # exactly symmetric (quadrature of (a, b) and (b, a) may differ in rounding)
    out *= 0.5
    np.fill_diagonal(out, np.broadcast_to(diag, (n, 1))[:, 0])
    return out


# --- mpmath ---------------------------------------------------------------------------------


class MpAlgebra(Algebra):
    """Layer formulas on mpmath numbers at `dps` digits (plus guard digits); activations through
    the moments' any-precision path (closed forms evaluate directly, integrals by the mpmath
    reference quadrature)."""

    name = "mpmath"

    def __init__(self, dps: int, with_ntk: bool = True):
        self.dps, self.with_ntk = dps, with_ntk
        self.prec = dps + 10
        self.used: dict[str, str] = {}

    def const(self, value: sp.Expr) -> mp.mpf:
        out = sp.sympify(value).evalf(self.prec)
        if not out.is_number:
            raise DomainError(f"the network has a symbolic parameter in {value}; substitute numbers")
        return mp.mpf(sp.Float(out, self.prec)._mpf_)

    def sqrt(self, value):
        return mp.sqrt(value)

    def activation(self, act, s: KernelState) -> KernelState:
        moments = moments_of(act)
        moments.check_numeric()
        used = [moments.V, moments.C] + ([moments.D, moments.Cd] if self.with_ntk else [])
        closed = all(m.method is Method.CLOSED_FORM for m in used)
        self.used[act.name] = ("closed form" if closed
                               else "closed form where derived, mpmath quadrature otherwise")
        product = s.k11 * s.k22
        corr = max(min(s.k12 / mp.sqrt(product), mp.mpf(1)), mp.mpf(-1)) if product else mp.mpf(0)
        digits = self.prec
        k = (moments.V.mp(s.k11, dps=digits), moments.V.mp(s.k22, dps=digits),
             moments.C.mp(s.k11, s.k22, corr, dps=digits))
        if not self.with_ntk:
            return replace(s, k11=k[0], k22=k[1], k12=k[2], gap=(k[0] + k[1]) / 2 - k[2])
        d11, d22 = moments.D.mp(s.k11, dps=digits), moments.D.mp(s.k22, dps=digits)
        dd12 = moments.Cd.mp(s.k11, s.k22, corr, dps=digits)
        return replace(s, k11=k[0], k22=k[1], k12=k[2], gap=(k[0] + k[1]) / 2 - k[2],
                       t11=s.t11 * d11, t22=s.t22 * d22,
                       t12=s.t12 * dd12, chi11=s.chi11 * d11, chi22=s.chi22 * d22, chi12=s.chi12 * dd12)


def kernels_mp(net, x1, x2, dps: int = 30, *, ntk: bool = True) -> PairKernels:
    """NNGP and NTK (None with ``ntk=False``) of two inputs at `dps` significant digits (mpmath).

    Closed-form layers cost nothing; numerical ones evaluate their defining integrals by
    mpmath quadrature (seconds per layer at 30 digits).
    """
    if isinstance(dps, bool) or not isinstance(dps, int) or not 15 <= dps <= 1000:
        raise DomainError(f"dps = {dps!r} must be an integer from 15 to 1000")
    a, b = _mp_vector(x1, dps + 20), _mp_vector(x2, dps + 20)
    if len(a) != len(b):
        raise DomainError(f"x1 and x2 have different lengths ({len(a)} and {len(b)})")
    _check_network(net)
    algebra = MpAlgebra(dps, ntk)
    d = len(a)
    with mp.workdps(algebra.prec):
        k11, k22, k12 = (mp.fsum(ui * vi for ui, vi in zip(u, v, strict=True)) / d
                         for u, v in ((a, a), (b, b), (a, b)))
        zero = mp.mpf(0)
        out = net.apply(KernelState(k11=k11, k22=k22, k12=k12, t11=zero, t22=zero, t12=zero,
                                    chi11=mp.mpf(1), chi22=mp.mpf(1), chi12=mp.mpf(1)), algebra)
    with mp.workdps(dps):
        nngp = mp.matrix([[+out.k11, +out.k12], [+out.k12, +out.k22]])
        theta = mp.matrix([[+out.t11, +out.t12], [+out.t12, +out.t22]]) if ntk else None
    method = "; ".join(f"{k}: {v}" for k, v in algebra.used.items()) or "no activation"
    return PairKernels(nngp, theta, dps, method)


def _mp_vector(v, digits: int) -> list:
    """An input as mpmath numbers: decimal strings and SymPy numbers to `digits` digits, floats exactly."""
    if isinstance(v, str):
        raise DomainError("an input must be a sequence of numbers, not a string")
    items = list(np.atleast_1d(np.asarray(v, dtype=object)).ravel())
    if not items:
        raise DomainError("an input must have at least one feature")
    out = []
    for item in items:
        if isinstance(item, str):
            try:
                value = sp.Float(item.strip(), digits)
            except ValueError:
                value = as_expr(item)
        else:
            value = sp.sympify(item) if not isinstance(item, sp.Basic) else item
        if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or value.is_real is False:
            raise DomainError(f"input entry {item!r} is not a finite real number")
        with mp.workdps(digits):  # an mpf is rounded to the working precision when made
            out.append(mp.mpf(sp.Float(value.evalf(digits), digits)._mpf_))
    return out
