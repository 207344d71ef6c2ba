"""The Gaussian engine: every Gaussian expectation `derive` needs, symbolic and numeric.

Modules, in pipeline order:

* :mod:`~derive.gaussian.expectation` -- ``expect``, ``expect2`` and the unevaluated
  :class:`GaussianExpectation` (prints as its ∫Dz integral);
* :mod:`~derive.gaussian.terms`, :mod:`~derive.gaussian.rules`,
  :mod:`~derive.gaussian.closed_forms` -- the closed-form rule engine (a new rule goes in ``rules``);
* :mod:`~derive.gaussian.quadrature` -- quadrature: the mpmath reference and float64 panels;
* :mod:`~derive.gaussian.tables` -- piecewise Chebyshev tables.

>>> from derive.gaussian import expect
>>> from derive.symbols import x, q
>>> expect(x**2, x, q)
q
"""

from derive.gaussian.expectation import GaussianExpectation, expect, expect2

__all__ = ["GaussianExpectation", "expect", "expect2"]
