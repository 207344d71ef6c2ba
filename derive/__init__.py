"""derive: a symbolic-numeric derivation assistant for the mean-field and
random-matrix theory of wide random deep networks.

The package is the pipeline activation → symbolic derivation → numeric evaluation →
verification; the module map, one line each (a new closed-form rule goes in
``gaussian/rules``, a new layer in ``layers``, a new theory in a module of its own that
reads the layer algebra's trace):

* foundation: ``errors`` (DeriveError and its kinds), ``symbols`` (the canonical symbols),
  ``parsing`` (user text through an AST whitelist), ``printing`` (LaTeX and text printers),
  ``piecewise`` (kinks, Heaviside normal form, derivatives of distributions);
* ``activations`` — immutable Activation objects, the built-ins;
* ``gaussian/`` — the engine, every Gaussian moment in one place: ``expectation`` (expect,
  expect2, GaussianExpectation), ``terms``/``rules``/``closed_forms`` (the closed-form rule
  engine), ``moments`` (the moment objects: one method picker, float64 with error bounds,
  any precision), ``mehler`` (the Mehler expansion), ``quadrature`` (float64 panels),
  ``reference`` (the mpmath reference), ``tables`` (Chebyshev tables), ``cache`` (their
  on-disk cache), ``equal_variances`` (the tables mean-field solvers read), ``compiled``
  (SymPy to numpy), ``blocks`` (large arrays walked by blocks of rows);
* ``numeric`` — lambdify: any expression, unevaluated expectations included, to numpy;
* ``kernel_state`` — the state the layer algebra maps, its algebras, the per-layer trace;
* ``layers`` — the architecture algebra: Dense, activations, Dropout, LayerNorm, Residual,
  serial, repeat;
* theories: ``ntk`` (NNGP and NTK Grams, float64 and mpmath), ``recursion`` (the layer-to-
  layer equations as a paper writes them), ``meanfield/`` (maps, fixed points, χ₁, depth
  scales, critical line and phase diagram of any block), ``freeprob/`` (spectral laws and
  free probability: Jacobian and CK/NTK spectra), ``fisher/`` (the Fisher spectrum), ``ngd/``
  (natural gradient with approximate Fisher matrices in the NTK regime);
* ``simulate`` — the one simulator of finite random networks, the ground truth of the tests;
* ``verification`` (verify, check), ``cli``, ``report/`` (one section per theory, one
  document model, HTML/Markdown/notebook/LaTeX writers).

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
    "MarchenkoPastur": "derive.freeprob",
    "Semicircle": "derive.freeprob",
    "PointMass": "derive.freeprob",
    "TwoPoint": "derive.freeprob",
    "weight_law": "derive.freeprob",
    "free_product": "derive.freeprob",
    "free_sum": "derive.freeprob",
    "derivative_law": "derive.freeprob",
    "jacobian_spectrum": "derive.freeprob",
    "ck_spectrum": "derive.freeprob",
    "ntk_spectrum": "derive.freeprob",
    "fisher": "derive.fisher",
    "fisher_spectrum": "derive.fisher",
    "ngd": "derive.ngd",
    "ngd_alpha": "derive.ngd",
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
