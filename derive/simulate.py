r"""Finite random networks in numpy: the ground truth every theory of `derive` is tested against.

:func:`draw` draws the weights of an actual finite network for any layer stack of
:mod:`derive.layers` — each ``Dense`` with its ensemble (i.i.d. Gaussian W_ij ~ N(0, σ_w²/M_in),
or σ_w-scaled Haar-orthogonal; Mezzadri 2007) and its parametrisation, every hidden width given
— and returns a :class:`Network`.  ``network.forward(X)`` runs the rows of X through it and keeps
every layer's input and output (a :class:`Pass`); ``network.backward(forward, delta)`` pulls
cotangents delta (probes × n × M_out) back to every layer and returns, per ``Dense`` layer, its
input H and the cotangent Δ at its output — the factors of the parameter Jacobian, so that the
tangent kernel, the Fisher Gram or a natural-gradient operator is formed without the P × P
matrix:

* NTK parametrisation (W = σ_w ω/√M_in, b = σ_b β): Θ̂ = Σ_layers (σ_w² HHᵀ/M_in + σ_b²) ∘ ΔΔᵀ;
* standard parametrisation (W, b trained themselves): Σ_layers (HHᵀ + 1) ∘ ΔΔᵀ.

On top of it, the two statistics the kernel and mean-field theories are checked with:
:func:`kernels` (the empirical NNGP, NTK and backward factor of a network over seeds) and
:func:`propagation` (per-layer q^l, c^l, squared gradients and weight gradients of two inputs).
Each seed is an independent network (weights, dropout masks, probes), so the spread over seeds
is the statistical error of every mean (:meth:`Samples.sem`, :meth:`Samples.zscores`).

>>> import numpy as np, derive
>>> net = derive.serial(derive.Dense(2.0, 0.1), "relu", derive.Dense(2.0, 0.1))
>>> emp = kernels(net, np.eye(3), width=500, seeds=range(4))
>>> emp.nngp.shape, emp.ntk.shape, emp.chi.shape
((4, 3, 3), (4, 3, 3), (4, 3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import singledispatch

import numpy as np

from derive.errors import DomainError
from derive.gaussian.moments import moments_of
from derive.layers import (
    Dense,
    Dropout,
    Ensemble,
    Layer,
    LayerNorm,
    Nonlinearity,
    Parametrisation,
    Repeat,
    Residual,
    Serial,
    as_layer,
)

__all__ = ["Network", "Pass", "Samples", "backward_layer", "draw", "draw_layer", "forward_layer", "kernels",
           "propagation"]


# --- drawing a network ----------------------------------------------------------------------------


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A Haar-distributed matrix with orthonormal rows (rows <= cols) or columns: QR of a Gaussian
    matrix with the signs of R's diagonal divided out (Mezzadri 2007)."""
    tall = rows >= cols
    g = rng.standard_normal((rows, cols) if tall else (cols, rows))
    qmat, r = np.linalg.qr(g)
    qmat *= np.sign(np.diag(r))
    return qmat if tall else qmat.T


@dataclass(frozen=True, eq=False)
class DrawnDense:
    """A Dense layer with its weights W (M_out × M_in) and biases b drawn."""

    layer: Dense
    W: np.ndarray
    b: np.ndarray

    @property
    def scales(self) -> tuple:
        """The factors (of HHᵀ, of the constant) of this layer's parameter-Jacobian Gram."""
        if self.layer.parametrisation is Parametrisation.NTK:
            return float(self.layer.sigma_w2) / self.W.shape[1], float(self.layer.sigma_b2)
        return 1.0, 1.0


def _width(widths: list, owner: Dense) -> int:
    if not widths:
        raise DomainError(f"fewer widths than Dense layers: none left for {owner!r}")
    return widths.pop(0)


@singledispatch
def draw_layer(layer, rng, fan_in: int, widths: list):
    """(drawn layer, output width) of `layer` on inputs of width `fan_in`.  With
    :func:`forward_layer` and :func:`backward_layer` this is how a new layer type is simulated:
    register it on the three single-dispatch functions (``@draw_layer.register``)."""
    raise DomainError(f"cannot simulate the layer {layer!r}")


@draw_layer.register
def _(layer: Dense, rng, fan_in, widths):
    width = _width(widths, layer)
    sw, sb = math.sqrt(float(layer.sigma_w2)), math.sqrt(float(layer.sigma_b2))
    if layer.ensemble is Ensemble.GAUSSIAN:
        W = rng.standard_normal((width, fan_in)) * (sw / math.sqrt(fan_in))
    else:
        W = _orthogonal(rng, width, fan_in) * (sw * math.sqrt(max(width, fan_in) / fan_in))
    return DrawnDense(layer, W, rng.standard_normal(width) * sb), width


@dataclass(frozen=True, eq=False)
class DrawnActivation:
    layer: Nonlinearity
    phi: object
    dphi: object


@draw_layer.register
def _(layer: Nonlinearity, rng, fan_in, widths):
    moments = moments_of(layer.activation)
    moments.check_numeric()
    dphi = None if moments.has_jump else moments.dphi
    return DrawnActivation(layer, moments.phi, dphi), fan_in


@dataclass(frozen=True, eq=False)
class DrawnDropout:
    layer: Dropout
    rng: np.random.Generator


@draw_layer.register
def _(layer: Dropout, rng, fan_in, widths):
    return DrawnDropout(layer, rng), fan_in


@dataclass(frozen=True, eq=False)
class DrawnLayerNorm:
    layer: LayerNorm


@draw_layer.register
def _(layer: LayerNorm, rng, fan_in, widths):
    return DrawnLayerNorm(layer), fan_in


@dataclass(frozen=True, eq=False)
class DrawnResidual:
    layer: Residual
    branch: Network


@draw_layer.register
def _(layer: Residual, rng, fan_in, widths):
    if layer.elementwise is not None:
        return draw_layer(Nonlinearity(layer.elementwise), rng, fan_in, widths)
    branch, out = _draw_all(layer.branch, rng, fan_in, widths)
    if out != fan_in:
        raise DomainError(f"Residual: the branch maps width {fan_in} to {out}; the skip connection needs "
                          "them equal (a residual block on the raw inputs needs d = width)")
    return DrawnResidual(layer, Network(branch, fan_in, out)), fan_in


def _draw_all(layer: Layer, rng, fan_in: int, widths: list) -> tuple:
    """The drawn primitive layers of `layer` in order, and the output width."""
    if isinstance(layer, Serial | Repeat):
        parts = layer.layers if isinstance(layer, Serial) else (layer.block,) * layer.n
        drawn = []
        for part in parts:
            more, fan_in = _draw_all(part, rng, fan_in, widths)
            drawn += more
        return drawn, fan_in
    one, fan_in = draw_layer(layer, rng, fan_in, widths)
    return [one], fan_in


def _dense_count(layer: Layer) -> int:
    if isinstance(layer, Dense):
        return 1
    if isinstance(layer, Serial):
        return sum(_dense_count(part) for part in layer.layers)
    if isinstance(layer, Repeat):
        return layer.n * _dense_count(layer.block)
    if isinstance(layer, Residual) and layer.elementwise is None:
        return _dense_count(layer.branch)
    return 0


def draw(net, input_dim: int, width, seed=None) -> Network:
    """A finite random network with the layers of `net` on inputs of dimension `input_dim`.

    `width` is the output width of every Dense layer (an int), or a sequence with one width per
    Dense layer in forward order (residual branches included); `seed` seeds numpy's generator.
    """
    net = as_layer(net)
    count = _dense_count(net)
    if isinstance(width, int | np.integer) and not isinstance(width, bool):
        widths = [int(width)] * count
    else:
        try:
            widths = [int(w) for w in width]
        except TypeError:
            raise DomainError(f"width must be an integer or a sequence of integers, not {width!r}") from None
        if len(widths) != count:
            raise DomainError(f"{len(widths)} widths for {count} Dense layers; give one per Dense layer")
    if not (isinstance(input_dim, int | np.integer) and input_dim >= 1) or min(widths, default=1) < 1:
        raise DomainError(f"input_dim = {input_dim!r} and every width must be positive integers")
    layers, out = _draw_all(net, np.random.default_rng(seed), int(input_dim), widths)
    return Network(tuple(layers), int(input_dim), out)


# --- forward and backward -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Record:
    """One drawn layer of a forward pass: its input, its output, what the backward pass needs."""

    layer: object
    input: np.ndarray
    output: np.ndarray
    cache: object = None


@dataclass(frozen=True, eq=False)
class Pass:
    """A forward pass: the records of every drawn layer (in order) and the output (n × M)."""

    records: tuple
    output: np.ndarray

    def outputs(self, kind: type = Dense) -> list:
        """The outputs of the layers of type `kind` (pre-activations for Dense), in order
        (residual branches not included)."""
        return [r.output for r in self.records if isinstance(r.layer.layer, kind)]


@dataclass(frozen=True, eq=False)
class Backward:
    """A backward pass: the cotangent at the input, and per Dense layer (in forward order, branches
    included) the layer, its input H (n × M_in) and the cotangent Δ at its output (P × n × M_out)."""

    input: np.ndarray
    dense: tuple


@dataclass(frozen=True, eq=False)
class Network:
    """A drawn finite random network: its primitive drawn layers, input and output widths."""

    layers: tuple
    input_dim: int
    output_dim: int

    def forward(self, X) -> Pass:
        """The rows of X (n × input_dim) through the network."""
        H = np.asarray(X, dtype=float)
        if H.ndim != 2 or H.shape[1] != self.input_dim or not np.all(np.isfinite(H)):
            raise DomainError(f"X must be a finite array of shape (n, {self.input_dim})")
        records = []
        for layer in self.layers:
            out, cache = forward_layer(layer, H)
            records.append(Record(layer, H, out, cache))
            H = out
        return Pass(tuple(records), H)

    def backward(self, forward: Pass, delta) -> Backward:
        """Pull the cotangents `delta` (probes × n × M_out, or n × M_out for one probe) back."""
        delta = np.asarray(delta, dtype=float)
        if delta.ndim == 2:
            delta = delta[None]
        dense = []
        for record in reversed(forward.records):
            delta = backward_layer(record.layer, record, delta, dense)
        return Backward(delta, tuple(reversed(dense)))

    def tangent_gram(self, backward: Backward) -> np.ndarray:
        """Σ over Dense layers of (a HHᵀ + b) ∘ Σ_p Δ_p Δ_pᵀ (the layer's parameter-Jacobian Gram,
        a, b from its parametrisation) for the probes of `backward`: an n × n array."""
        total = 0.0
        for layer, H, D in backward.dense:
            a, b = layer.scales
            total = total + (a * (H @ H.T) + b) * np.tensordot(D, D, axes=([0, 2], [0, 2]))  # BLAS
        return total

    def input_jacobian(self, x) -> np.ndarray:
        """∂(output)/∂x at one input x: an (output_dim × input_dim) array."""
        forward = self.forward(np.asarray(x, dtype=float)[None, :])
        eye = np.eye(self.output_dim)[:, None, :]
        return self.backward(forward, eye).input[:, 0, :]


@singledispatch
def forward_layer(layer, H):
    raise DomainError(f"cannot simulate {layer!r}")  # pragma: no cover - every drawn type is registered


@forward_layer.register
def _(layer: DrawnDense, H):
    return H @ layer.W.T + layer.b, None


@forward_layer.register
def _(layer: DrawnActivation, H):
    return layer.phi(H) * np.ones_like(H), layer.dphi


@forward_layer.register
def _(layer: DrawnDropout, H):
    p = float(layer.layer.keep)
    mask = (layer.rng.random(H.shape) < p) / p
    return H * mask, mask


@forward_layer.register
def _(layer: DrawnLayerNorm, H):
    centred = H - H.mean(axis=1, keepdims=True)
    sigma = np.sqrt(np.mean(centred**2, axis=1, keepdims=True))
    Y = centred / sigma
    return Y, (Y, sigma)


@forward_layer.register
def _(layer: DrawnResidual, H):
    inner = layer.branch.forward(H)
    return H + float(layer.layer.alpha) * inner.output, inner


@singledispatch
def backward_layer(layer, record, delta, dense):
    raise DomainError(f"cannot differentiate {layer!r}")  # pragma: no cover


@backward_layer.register
def _(layer: DrawnDense, record, delta, dense):
    dense.append((layer, record.input, delta))
    return delta @ layer.W


@backward_layer.register
def _(layer: DrawnActivation, record, delta, dense):
    if layer.dphi is None:
        raise DomainError(f"{layer.layer.activation.name} has no derivative a network can be trained "
                          "with (φ′ is a Dirac delta): only its forward statistics can be simulated")
    return delta * layer.dphi(record.input)


@backward_layer.register
def _(layer: DrawnDropout, record, delta, dense):
    return delta * record.cache


@backward_layer.register
def _(layer: DrawnLayerNorm, record, delta, dense):
    Y, sigma = record.cache
    centred = delta - delta.mean(axis=-1, keepdims=True)
    return (centred - Y * np.mean(delta * Y, axis=-1, keepdims=True)) / sigma


@backward_layer.register
def _(layer: DrawnResidual, record, delta, dense):
    a = float(layer.layer.alpha)
    inner = layer.branch.backward(record.cache, a * delta)
    dense += inner.dense[::-1]
    return delta + inner.input


# --- statistics over seeds ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Samples:
    """Per-seed samples of named statistics (arrays whose first axis is the seed)."""

    values: dict
    width: object

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def mean(self, name: str) -> np.ndarray:
        """The mean over seeds."""
        return np.mean(self.values[name], axis=0)

    def sem(self, name: str) -> np.ndarray:
        """The standard error of that mean (sample standard deviation over seeds / √S)."""
        v = self.values[name]
        return np.std(v, axis=0, ddof=1) / np.sqrt(v.shape[0])

    def zscores(self, name: str, theory) -> np.ndarray:
        """(mean − theory) / standard error, entry by entry."""
        return (self.mean(name) - np.asarray(theory, dtype=float)) / np.maximum(self.sem(name), 1e-300)

    def deviation(self, name: str, prediction, layers=slice(None)) -> float:
        """max over `layers` of |mean − prediction| / standard error (a studentised deviation)."""
        prediction = np.broadcast_to(np.asarray(prediction, dtype=float), self.mean(name).shape)
        with np.errstate(invalid="ignore", divide="ignore"):  # entries with no spread (a ratio's last)
            z = np.abs(self.mean(name) - prediction) / self.sem(name)
        return float(np.max(z[layers]))


def _seeds(seeds) -> list:
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if len(seeds) < 2:
        raise DomainError("give at least two seeds: the spread across seeds is the error estimate")
    return seeds


def kernels(net, X, *, width: int = 1000, seeds=range(8), probes: int = 4) -> Samples:
    """Empirical NNGP, NTK and backward factor χ of `net` at the inputs X (n × d), one network per
    seed: nngp = F Fᵀ/M of the output representation F, ntk = the parameter-Jacobian Gram of a
    random read-out g = vᵀf/√M averaged over `probes` read-outs (E_v of it is the per-unit NTK),
    chi = ‖∂g/∂x‖² / ‖∂g/∂f‖² per input (at the raw input of dimension d it carries an O(1/d)
    term, absent for ReLU: use d ≫ 1).  Samples named 'nngp', 'ntk' (S, n, n), 'chi' (S, n)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise DomainError("X must be a finite 2-D array (n inputs × d features)")
    if not (isinstance(width, int) and width >= 2 and isinstance(probes, int) and probes >= 1):
        raise DomainError("width must be an integer >= 2 and probes an integer >= 1")
    out = {"nngp": [], "ntk": [], "chi": []}
    for seed in _seeds(seeds):
        network = draw(net, X.shape[1], width, seed)
        forward = network.forward(X)
        F = forward.output
        rng = np.random.default_rng([seed, 1])
        top = np.broadcast_to(rng.standard_normal((probes, 1, F.shape[1])) / np.sqrt(F.shape[1]),
                              (probes, *F.shape))
        back = network.backward(forward, top)
        out["nngp"].append(F @ F.T / F.shape[1])
        out["ntk"].append(network.tangent_gram(back) / probes)
        out["chi"].append(np.sum(back.input**2, axis=(0, 2)) / np.sum(top**2, axis=(0, 2)))
    return Samples({k: np.array(v) for k, v in out.items()}, width)


def propagation(net, widths, *, c_in: float = 0.5, norm2: float = 1.0, seeds=10, seed: int = 0,
                record: type = Dense) -> Samples:
    """Two inputs of the given per-unit squared norm `norm2` and correlation `c_in` through
    `seeds` random networks with the layers of `net` (input dimension widths[0], Dense widths
    widths[1:]), and a N(0, 1) cotangent from the output back.  Per seed and per layer of type
    `record` (Dense: pre-activations h^l) the samples are

    * 'q' = ‖h^l‖²/M_l and 'c' = ⟨h^l_a, h^l_b⟩ / (‖h^l_a‖ ‖h^l_b‖);
    * 'delta_sq' = (‖δ^l‖²/M_l) / (‖δ^L‖²/M_L), the per-unit squared gradient at the layer's
      output relative to the last one (Dense layers);
    * 'weight_grad_sq' = ‖∇W^l‖² / ‖∇W^L‖², ‖∇W^l‖² = ‖δ^l‖² ‖x^{l−1}‖² (NaN for the first layer,
      which depends on the input).
    """
    widths = [int(m) for m in widths]
    if len(widths) < 2 or min(widths) < 2:
        raise DomainError("propagation needs widths (M_0, M_1, ...) with every M >= 2")
    if not (norm2 > 0 and -1 <= c_in <= 1):
        raise DomainError("propagation needs norm2 > 0 and c_in in [-1, 1]")
    out = {"q": [], "c": [], "delta_sq": [], "weight_grad_sq": []}
    for s in _seeds(seeds):
        rng = np.random.default_rng([seed, s])
        a, b = rng.standard_normal((2, widths[0]))
        a /= np.linalg.norm(a)
        b -= (b @ a) * a
        b /= np.linalg.norm(b)
        X = np.sqrt(widths[0] * norm2) * np.stack([a, c_in * a + np.sqrt(1 - c_in**2) * b])
        network = draw(net, widths[0], widths[1:], rng.integers(2**63))
        forward = network.forward(X)
        hs = forward.outputs(record)
        out["q"].append([h[0] @ h[0] / h.shape[1] for h in hs])
        out["c"].append([h[0] @ h[1] / np.sqrt((h[0] @ h[0]) * (h[1] @ h[1])) for h in hs])
        delta = np.zeros_like(forward.output)
        delta[0] = rng.standard_normal(forward.output.shape[1])
        dense = network.backward(forward, delta).dense
        per_unit = np.array([D[0, 0] @ D[0, 0] / D.shape[2] for _, _, D in dense])
        grads = np.array([(D[0, 0] @ D[0, 0]) * (H[0] @ H[0]) for _, H, D in dense])
        grads[0] = np.nan
        out["delta_sq"].append(per_unit / per_unit[-1])
        out["weight_grad_sq"].append(grads / grads[-1])
    return Samples({k: np.array(v) for k, v in out.items()}, widths)
