r"""The network whose Fisher information :mod:`derive.fisher` describes.

Karakida, Akaho & Amari (AISTATS 2019, arXiv 1806.01316, the model of their section 2): L weight layers

    u^l = W^l h^{l−1} + b^l,  h^l = φ(u^l)  (l < L),  f = u^L  (C linear outputs),

W^l_ij ~ N(0, σ_w²/M_{l−1}), b^l_i ~ N(0, σ_b²), input dimension M_0 = α_0 M, hidden widths
M_l = α_l M, and T i.i.d. inputs x ~ N(0, I), so that the input order parameters are
q̂⁰₁ = ‖x‖²/M_0 = 1 and q̂⁰₂ = x·x′/M_0 = 0.

An :class:`Architecture` is that network as a layer of the layer algebra, ``serial(Dense₁,
repeat(block, L − 1))`` with block = ``serial(φ, Dense(σ_w², σ_b²))``, or built from any block
holding one Dense layer (e.g. ``serial(LayerNorm(), "relu", Dense(2, 0.1))``), or a whole network
given as a layer, together with its widths, the number of outputs and the parametrisation.

Parametrisation.  The FIM is taken with respect to the trained parameters.  The default,
"standard", is that of Karakida et al.: the trained parameters are W and b as drawn.  "ntk"
trains ω, β with W = σ_w ω/√M_{l−1}, b = σ_b β (Jacot et al. 2018), whose FIM is the NTK Gram
(λ_max = O(1)).  Every Dense layer of the network gets the parametrisation asked for here (a
block's own ``parametrisation`` flags are replaced, so that the activation and the block forms of
one network agree).

>>> arch = architecture("relu", 2, 0.1, 3, width=100, outputs=2)
>>> arch.net  # doctest: +NORMALIZE_WHITESPACE
serial(Dense(2, 0.1, parametrisation='standard'),
       repeat(serial(relu, Dense(2, 0.1, parametrisation='standard')), 2))
>>> arch.widths, arch.M, arch.ratios, arch.alpha
((100, 100, 100), 100, (1.0, 1.0, 1.0), 2.0)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.layers import (
    Dense,
    Layer,
    LayerNorm,
    Nonlinearity,
    Parametrisation,
    Repeat,
    Serial,
    as_layer,
    repeat,
    serial,
)

#: the losses whose FIM is described (the FIM of a softmax cross-entropy is the Gauss–Newton matrix)
LOSSES = ("mse", "cross_entropy")
#: what can follow the last Dense layer: nothing, or the mean subtraction of batch norm
LAST_LAYERS = ("plain", "mean_subtracted")


def positive_count(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise DomainError(f"{name} = {value!r} must be an integer >= {least}")
    return int(value)


def choice(value, options: tuple, name: str) -> str:
    """`value` if it is one of `options` (case-insensitive), else a DomainError naming them."""
    text = str(value).lower()
    if text not in options:
        raise DomainError(f"{name} = {value!r} is not supported; use one of {', '.join(map(repr, options))}")
    return text


def _dense_layers(layer: Layer) -> list:
    """The Dense layers of `layer` in forward order (Serial and Repeat unrolled)."""
    if isinstance(layer, Dense):
        return [layer]
    if isinstance(layer, Serial):
        return [d for part in layer.layers for d in _dense_layers(part)]
    if isinstance(layer, Repeat):
        return _dense_layers(layer.block) * layer.n
    return []


def _with_parametrisation(layer: Layer, parametrisation: Parametrisation) -> Layer:
    """`layer` with every Dense layer in `parametrisation`; refuses what the theory cannot read."""
    if isinstance(layer, Dense):
        return dataclasses.replace(layer, parametrisation=parametrisation)
    if isinstance(layer, Serial):
        return Serial(tuple(_with_parametrisation(part, parametrisation) for part in layer.layers))
    if isinstance(layer, Repeat):
        return Repeat(_with_parametrisation(layer.block, parametrisation), layer.n)
    if isinstance(layer, Nonlinearity | LayerNorm) or getattr(layer, "batch_coupled", False):
        return layer
    raise DomainError(f"the Fisher information of a network with {layer!r} is not derived here (Dense "
                      "layers, activations, LayerNorm and derive.fisher.BatchNorm are); build the "
                      "network from those")


@dataclass(frozen=True)
class Architecture:
    """A network of L weight layers with C linear outputs (see the module docstring).

    ``widths`` = (M_0, …, M_{L−1}), the input width of every Dense layer; ``M`` the reference
    width (the first hidden width M_1) and ``ratios`` α_l = M_l/M; ``alpha`` = Σ_{l=1}^{L−1}
    α_l α_{l−1}, so that the number of weights is P ≈ αM² (Karakida et al. 2019).
    """

    net: Layer
    widths: tuple
    outputs: int
    parametrisation: Parametrisation
    name: str

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def M(self) -> int:
        return self.widths[1]

    @property
    def ratios(self) -> tuple:
        return tuple(m / self.M for m in self.widths)

    @property
    def alpha(self) -> float:
        r = self.ratios
        return float(sum(r[l] * r[l - 1] for l in range(1, self.depth)))

    @property
    def parameters(self) -> int:
        """The exact number of trained parameters (weights and biases of every layer)."""
        out = (*self.widths[1:], self.outputs)
        return int(sum(m_in * m_out + m_out for m_in, m_out in zip(self.widths, out, strict=True)))

    @property
    def dense(self) -> list:
        return _dense_layers(self.net)

    @property
    def batch_coupled(self) -> bool:
        """True when a layer normalises over the batch (derive.fisher.BatchNorm)."""
        return _has_batch_layer(self.net)

    def draw(self, seed=None):
        """A finite random network of this architecture (:func:`derive.simulate.draw`)."""
        from derive.simulate import draw

        return draw(self.net, self.widths[0], [*self.widths[1:], self.outputs], seed)


def _has_batch_layer(layer: Layer) -> bool:
    if getattr(layer, "batch_coupled", False):
        return True
    if isinstance(layer, Serial):
        return any(_has_batch_layer(part) for part in layer.layers)
    if isinstance(layer, Repeat):
        return layer.n > 0 and _has_batch_layer(layer.block)
    return False


def _widths(width, depth: int) -> tuple:
    if isinstance(width, int | np.integer) and not isinstance(width, bool):
        return (positive_count(width, "width", 1),) * depth
    try:
        widths = tuple(positive_count(w, "every width", 1) for w in width)
    except TypeError:
        raise DomainError(f"width = {width!r} must be an integer or a sequence of integers") from None
    if len(widths) != depth:
        raise DomainError(f"width has {len(widths)} entries for {depth} weight layers: give the input width "
                          "and the L − 1 hidden widths (M_0, …, M_{L−1}), or one integer")
    return widths


def architecture(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width, outputs: int = 1,
                 parametrisation="standard") -> Architecture:
    """The network of an activation and its variances, of a block repeated, or of a whole network.

    * ``architecture(φ, σ_w², σ_b², L)``: serial(Dense(σ_w², σ_b²), repeat(serial(φ, Dense(σ_w², σ_b²)),
      L − 1));
    * ``architecture(block, depth=L)``: the first Dense layer of the block on the inputs, then the
      block L − 1 times (the block must hold exactly one Dense layer and end with it);
    * ``architecture(network)``: a whole network (a layer starting and ending with a Dense layer;
      L = its number of Dense layers).

    The last Dense layer has `outputs` units; `width` is M or (M_0, …, M_{L−1}).
    """
    outputs = positive_count(outputs, "outputs", 1)
    mode = Parametrisation(choice(getattr(parametrisation, "value", parametrisation),
                                  tuple(p.value for p in Parametrisation), "parametrisation"))
    if isinstance(activation, Layer) and not isinstance(activation, Nonlinearity):
        if sigma_w2 is not None or sigma_b2 is not None:
            raise DomainError("a block or network takes its variances from its Dense layers; do not pass "
                              "sigma_w2, sigma_b2 with it")
        net, name = _from_layer(activation, depth)
    else:
        if sigma_w2 is None or sigma_b2 is None or depth is None:
            raise DomainError("give the activation with sigma_w2, sigma_b2 and depth, e.g. "
                              "fisher_spectrum('relu', 2.0, 0.1, 6, width=1024, samples=256)")
        layer = as_layer(activation)
        positive_count(depth, "depth", 2)
        dense = Dense(sigma_w2, sigma_b2)
        net, name = serial(dense, repeat(serial(layer, dense), depth - 1)), repr(layer)
    net = _with_parametrisation(net, mode)
    depth = len(_dense_layers(net))
    return Architecture(net, _widths(width, depth), outputs, mode, name)


def _from_layer(layer: Layer, depth) -> tuple:
    dense = _dense_layers(layer)
    if depth is None:
        if len(dense) < 2:
            raise DomainError(f"the network {layer!r} has {len(dense)} Dense layer(s); it needs depth >= 2 "
                              "weight layers")
        if not (_first(layer) is dense[0] and _last(layer) is dense[-1]):
            raise DomainError(f"the network {layer!r} must start with a Dense layer (on the inputs) and end "
                              "with one (the C linear outputs)")
        return layer, repr(layer)
    positive_count(depth, "depth", 2)
    if len(dense) != 1 or _last(layer) is not dense[0]:
        raise DomainError(f"the block {layer!r} must hold exactly one Dense layer and end with it (one "
                          "weight layer of the L, linear outputs at the end); for other architectures pass "
                          "the whole network without depth")
    return serial(dense[0], repeat(layer, depth - 1)), repr(layer)


def _first(layer: Layer):
    while isinstance(layer, Serial | Repeat):
        parts = layer.layers if isinstance(layer, Serial) else (layer.block,) * min(layer.n, 1)
        if not parts:
            return None
        layer = parts[0]
    return layer


def _last(layer: Layer):
    while isinstance(layer, Serial | Repeat):
        parts = layer.layers if isinstance(layer, Serial) else (layer.block,) * min(layer.n, 1)
        if not parts:
            return None
        layer = parts[-1]
    return layer
