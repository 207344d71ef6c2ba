"""The Gaussian engine: every Gaussian expectation `derive` needs, symbolic and numeric.

Modules, in pipeline order:

* :mod:`~derive.gaussian.expectation` -- ``expect``, ``expect2`` and the unevaluated
  :class:`GaussianExpectation` (prints as its ∫Dz integral);
* :mod:`~derive.gaussian.terms`, :mod:`~derive.gaussian.rules`,
  :mod:`~derive.gaussian.closed_forms` -- the closed-form rule engine (a new rule goes in ``rules``);
* :mod:`~derive.gaussian.quadrature` -- quadrature: the mpmath reference and float64 panels;
* :mod:`~derive.gaussian.tables` -- piecewise Chebyshev tables, kept between processes by
  :mod:`~derive.gaussian.cache` (the user's cache folder; ``DERIVE_CACHE=0`` turns it off);
* :mod:`~derive.gaussian.stable` -- float64-stable forms of closed forms and integrands (what
  :func:`derive.lambdify` evaluates), on :mod:`~derive.gaussian.special` (erfcx, expm1, log1p,
  softplus as SymPy functions with mpmath and numpy evaluations) and
  :mod:`~derive.gaussian.roundoff` (a running bound on the float64 rounding error).

>>> from derive.gaussian import expect
>>> from derive.symbols import x, q
>>> expect(x**2, x, q)
q
"""

from derive.gaussian.expectation import GaussianExpectation, expect, expect2

__all__ = ["GaussianExpectation", "expect", "expect2"]
