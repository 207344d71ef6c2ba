"""The Gaussian engine: every Gaussian expectation `derive` needs, symbolic and numeric.

Modules, in pipeline order:

* :mod:`~derive.gaussian.expectation` -- ``expect``, ``expect2`` and the unevaluated
  :class:`GaussianExpectation` (prints as its ∫Dz integral);
* :mod:`~derive.gaussian.terms`, :mod:`~derive.gaussian.rules`,
  :mod:`~derive.gaussian.closed_forms` -- the closed-form rule engine (a new rule goes in ``rules``);
* :mod:`~derive.gaussian.moments` -- the moment objects (V, D, C, C_d, E φ′^{2k}): the one
  method picker, float64 values with error bounds, any precision;
* :mod:`~derive.gaussian.mehler` -- the Mehler–Hermite expansion (float64 and mpmath);
* :mod:`~derive.gaussian.piecewise_polynomial` -- conditional expectations of piecewise
  polynomials in closed form (the conditional route);
* :mod:`~derive.gaussian.quadrature` -- float64 panel quadrature; :mod:`~derive.gaussian.reference`
  -- the mpmath reference quadrature;
* :mod:`~derive.gaussian.tables` -- piecewise Chebyshev tables, kept between processes by
  :mod:`~derive.gaussian.cache` (the user's cache folder; ``DERIVE_CACHE=0`` turns it off);
  :mod:`~derive.gaussian.equal_variances` -- the tables the mean-field solvers read;
* :mod:`~derive.gaussian.compiled` -- SymPy to numpy, evaluated by the blocks of rows of
  :mod:`~derive.gaussian.blocks`;
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
