"""derive: a symbolic-numeric derivation assistant for the mean-field and
random-matrix theory of wide random deep networks.

The public names below are imported lazily (PEP 562), so ``import derive``
stays fast; each lives in the module of its concept.

>>> import derive
>>> derive.expect("x**2", "x", "q")
q
"""

from importlib import import_module

from derive.errors import (
    DeriveError,
    DivergenceError,
    DomainError,
    NoFixedPointError,
    NumericError,
    ParseError,
    UnknownActivationError,
)

_LAZY = {
    "Activation": "derive.activations",
    "activation": "derive.activations",
    "GaussianExpectation": "derive.gaussian",
    "expect": "derive.gaussian",
    "expect2": "derive.gaussian",
    "lambdify": "derive.numeric",
    "verify": "derive.verification",
    "check": "derive.verification",
    "parse": "derive.parsing",
    "latex": "derive.printing",
    "symbols": "derive.symbols",
    "KernelState": "derive.kernel_state",
    "Dense": "derive.layers",
    "serial": "derive.layers",
    "repeat": "derive.layers",
    "Residual": "derive.layers",
    "Dropout": "derive.layers",
    "LayerNorm": "derive.layers",
    "MeanField": "derive.meanfield",
    "fisher": "derive.fisher",
    "fisher_spectrum": "derive.fisher",
}

__all__ = [
    "DeriveError",
    "DivergenceError",
    "DomainError",
    "NoFixedPointError",
    "NumericError",
    "ParseError",
    "UnknownActivationError",
    *_LAZY,
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'derive' has no attribute {name!r}")
    module = import_module(_LAZY[name])
    value = module if module.__name__ == f"derive.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
