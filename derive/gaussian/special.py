"""Special functions for float64-safe forms: SymPy classes that evaluate in mpmath and numpy.

Each class denotes an elementary or error-function expression exactly (``.evalf`` goes through
mpmath at the requested precision plus guard bits; ``rewrite(sp.exp)`` / ``rewrite(sp.erfc)``
gives the textbook form), while its numpy implementation, in :data:`NUMPY_FUNCTIONS`, avoids the
overflow and cancellation of that textbook form:

* ``Expm1(u)`` = eᵘ − 1 and ``Log1p(u)`` = log(1 + u) (numpy's ``expm1``, ``log1p``);
* ``Log1pExp(u)`` = log(1 + eᵘ) = max(u, 0) + log1p(e^{−|u|}) (the softplus);
* ``Erfcx(u)`` = e^{u²} erfc(u), the scaled complementary error function;
* ``Erfc(u)`` = erfc(u) kept as written: SymPy turns erfc(−v) into 2 − erfc(v), which
  cancels for large v.

>>> import sympy as sp
>>> u = sp.Symbol("u", real=True)
>>> Erfcx(u).rewrite(sp.erfc)
exp(u**2)*erfc(u)
>>> Erfcx(30).evalf(20)
0.018795888861416751497
>>> float(erfcx(30.0))
0.018795888861416754
>>> float(log1pexp(-800.0)), float(log1pexp(800.0))
(0.0, 800.0)
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp

#: erfc elementwise on float arrays (libm's, correctly rounded to about an ulp)
erfc = np.vectorize(math.erfc, otypes=[float])
_SQRT_PI = math.sqrt(math.pi)
#: from here on erfcx is its asymptotic series (erfc(26) ~ 1e-296 is still a normal float)
_ERFCX_SERIES_FROM = 26.0
_ERFCX_TERMS = 11


def _exp_square(x: np.ndarray) -> np.ndarray:
    """exp(x²) with x² = h + l split exactly (Dekker 1971, the product of two doubles), so
    that the rounding of x² (relative u, i.e. absolute u·x²) does not reach the result."""
    split = 134217729.0 * x  # 2^27 + 1
    xh = split - (split - x)
    xl = x - xh
    h = x * x
    low = ((xh * xh - h) + 2 * xh * xl) + xl * xl
    return np.exp(h) * (1 + low)


def erfcx(x) -> np.ndarray:
    """e^{x²} erfc(x) in float64: the product with x² split (|x| < 26, erfc from libm), the
    asymptotic series 1/(x√π) Σ (−1)ᵏ (2k−1)!!/(2x²)ᵏ with 11 terms beyond (Abramowitz & Stegun
    1964, eq. 7.1.23; truncation < 1e-24 relative at x = 26), and erfcx(x) = 2e^{x²} − erfcx(−x)
    for x < 0 (which overflows where the value does, x < −26.6)."""
    x = np.asarray(x, dtype=float)
    a = np.abs(x)
    out = np.empty(x.shape)
    far = a >= _ERFCX_SERIES_FROM
    near = ~far & ~np.isnan(a)
    out[near] = _exp_square(a[near]) * erfc(a[near])
    inv = 1 / (2 * a[far] * a[far])
    series = np.zeros(inv.shape)
    for k in range(_ERFCX_TERMS - 1, 0, -1):
        series = -(2 * k - 1) * inv * (1 + series)
    out[far] = (1 + series) / (a[far] * _SQRT_PI)
    out[np.isnan(a)] = np.nan
    negative = x < 0
    with np.errstate(over="ignore"):
        out[negative] = 2 * _exp_square(x[negative]) - out[negative]
    return out[()] if out.ndim == 0 else out


def log1pexp(x) -> np.ndarray:
    """log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}): no overflow, full relative accuracy for x → −∞."""
    x = np.asarray(x, dtype=float)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class _Float64Function(sp.Function):
    """A function with an exact mpmath evaluation (``_mp``) and a numpy implementation named
    like the class in :data:`NUMPY_FUNCTIONS`."""

    nargs = 1

    @staticmethod
    def _mp(v):
        raise NotImplementedError

    def _eval_evalf(self, prec):
        arg = self.args[0].evalf(mpmath.libmp.prec_to_dps(prec) + 15)
        if not (arg.is_number and arg.is_real) or not arg.is_Float and not arg.is_Integer:
            return None
        with mpmath.workprec(prec + 30):
            value = self._mp(mpmath.mpf(arg._mpf_ if arg.is_Float else int(arg)))
        return sp.Float._new(mpmath.libmp.mpf_pos(value._mpf_, prec, "n"), prec)

    def _eval_is_real(self):
        return self.args[0].is_real or None

    def _numpycode(self, printer) -> str:
        return f"{type(self).__name__}({printer._print(self.args[0])})"

    def _eval_rewrite_as_exp(self, u, **kwargs):
        return self._textbook(u)

    _eval_rewrite_as_erfc = _eval_rewrite_as_log = _eval_rewrite_as_exp

    def _eval_nseries(self, x, n, logx, cdir=0):
        return self._textbook(self.args[0])._eval_nseries(x, n, logx, cdir)

    def _eval_as_leading_term(self, x, logx=None, cdir=0):
        return self._textbook(self.args[0]).as_leading_term(x, logx=logx, cdir=cdir)


class Expm1(_Float64Function):
    """eᵘ − 1."""

    _mp = staticmethod(mpmath.expm1)

    @staticmethod
    def _textbook(u):
        return sp.exp(u) - 1

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])


class Log1p(_Float64Function):
    """log(1 + u)."""

    _mp = staticmethod(mpmath.log1p)

    @staticmethod
    def _textbook(u):
        return sp.log(1 + u)

    def fdiff(self, argindex=1):
        return 1 / (1 + self.args[0])


class Log1pExp(_Float64Function):
    """log(1 + eᵘ), the softplus."""

    @staticmethod
    def _mp(v):
        return mpmath.log1p(mpmath.exp(v))

    @staticmethod
    def _textbook(u):
        return sp.log(1 + sp.exp(u))

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))


class Erfcx(_Float64Function):
    """e^{u²} erfc(u)."""

    @staticmethod
    def _mp(v):
        return mpmath.exp(v * v) * mpmath.erfc(v)

    @staticmethod
    def _textbook(u):
        return sp.exp(u**2) * sp.erfc(u)

    def fdiff(self, argindex=1):
        u = self.args[0]
        return 2 * u * Erfcx(u) - 2 / sp.sqrt(sp.pi)


class Erfc(_Float64Function):
    """erfc(u) as written (no erfc(−v) → 2 − erfc(v))."""

    _mp = staticmethod(mpmath.erfc)

    @staticmethod
    def _textbook(u):
        return sp.erfc(u)

    def fdiff(self, argindex=1):
        return -2 * sp.exp(-self.args[0] ** 2) / sp.sqrt(sp.pi)


#: numpy implementations by class name (a namespace for ``sympy.lambdify``)
class Approximated(sp.Function):
    """``Approximated(exact, approximation, error)`` denotes `exact`.  Its float64 evaluation is
    `approximation` (a Piecewise of a truncated series and `exact`), which differs from `exact`
    by at most |`error`|; ``evalf`` and derivatives are those of `exact`."""

    nargs = 3

    @classmethod
    def eval(cls, *args):
        return None

    def _eval_evalf(self, prec):
        return self.args[0].evalf(mpmath.libmp.prec_to_dps(prec))

    def _eval_derivative(self, s):
        return sp.diff(self.args[0], s)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _numpycode(self, printer) -> str:
        return printer._print(self.args[1])

    def _latex(self, printer) -> str:
        return printer._print(self.args[0])


NUMPY_FUNCTIONS = {"Expm1": np.expm1, "Log1p": np.log1p, "Log1pExp": log1pexp, "Erfcx": erfcx,
                   "Erfc": erfc}

#: the classes above, for rewriting back to textbook SymPy (series, simplification)
CLASSES = (Expm1, Log1p, Log1pExp, Erfcx, Erfc)


def textbook(expr: sp.Expr) -> sp.Expr:
    """`expr` with the classes of this module written as exp, log and erfc."""
    return expr.replace(lambda e: isinstance(e, CLASSES), lambda e: e._textbook(e.args[0]))
