"""The exceptions of `derive`: one base class, one subclass per kind of mistake.

Every message says what was wrong and what to do about it.
"""


class DeriveError(Exception):
    """Base class of every error `derive` raises on purpose."""


class ParseError(DeriveError, ValueError):
    """A user string is not a safe, well-formed mathematical expression."""


class UnknownActivationError(DeriveError, KeyError):
    """No built-in activation has the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DomainError(DeriveError, ValueError):
    """A parameter lies outside its domain (negative variance, |c| > 1, NaN, ...)."""


class DivergenceError(DeriveError, ArithmeticError):
    """A Gaussian expectation diverges (e.g. E[exp(x^2)] at q >= 1/2)."""


class NumericError(DeriveError, ArithmeticError):
    """A numeric evaluation was requested of an expression that cannot be evaluated
    numerically (free symbols left, quadrature did not converge, ...)."""


class NoFixedPointError(DeriveError, ArithmeticError):
    """A recursion has no finite fixed point (q grows without bound, or decays to 0)."""


class ReportError(DeriveError):
    """The report cannot be built as asked (unknown section or format, an output folder that
    cannot be written, no LaTeX compiler for --pdf, a formula a writer cannot render)."""


class UsageError(DeriveError, ValueError):
    """A command-line argument is out of its range or names something that does not exist."""
