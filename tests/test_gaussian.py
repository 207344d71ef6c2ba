"""The Gaussian-expectation API: unevaluated objects, precision, and bad input."""

import mpmath as mp
import pytest
import sympy as sp

import derive
from derive.gaussian import GaussianExpectation
from derive.gaussian.reference import mp_expectation
from derive.symbols import c, q, q1, q2, x, y


def test_unevaluated_expectation_prints_as_its_integral():
    E = derive.expect(sp.tanh(x) ** 2, x, q)
    assert isinstance(E, GaussianExpectation)
    assert str(E).startswith("Integral(") and "tanh(sqrt(q)*z)**2" in str(E)
    assert derive.latex(E) == r"\int \mathcal{D}z\, \tanh^{2}{\left(\sqrt{q} z \right)}"
    E2 = derive.expect2(sp.tanh(x) * sp.tanh(y), x, y, q1, q2, c)
    assert r"\mathcal{D}z_1\, \mathcal{D}z_2" in derive.latex(E2)
    assert E2.free_symbols == {q1, q2, c}


def test_integration_variables_are_bound():
    E = derive.expect(sp.tanh(x) ** 2, x, q)
    assert E.subs(x, 5) == E
    assert E.subs(q, 2).free_symbols == set()


@pytest.mark.parametrize("digits", [15, 30, 50])
def test_evalf_reaches_the_requested_precision(digits):
    E = derive.expect(sp.tanh(x) ** 2, x, q).subs(q, sp.Rational(3, 2))
    with mp.workdps(digits + 20):
        reference = mp_expectation(sp.tanh(x) ** 2, (x,), (sp.Rational(3, 2),), dps=digits + 20)
        assert abs(mp.mpf(str(E.evalf(digits))) - reference) <= mp.mpf(10) ** (2 - digits) * reference


def test_expectation_of_a_constant_is_the_constant():
    assert derive.expect(sp.Integer(3), x, q) == 3
    assert derive.expect2(sp.tanh(x), x, y, q1, q2, c) == derive.expect(sp.tanh(x), x, q1)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), sp.I])
def test_bad_variance_is_a_domain_error(bad):
    with pytest.raises(derive.DomainError, match="q"):
        derive.expect(sp.tanh(x), x, bad)


@pytest.mark.parametrize("bad", [1.5, -1.0001, float("nan")])
def test_bad_correlation_is_a_domain_error(bad):
    with pytest.raises(derive.DomainError, match="c"):
        derive.expect2(sp.tanh(x) * sp.tanh(y), x, y, 1, 1, bad)


def test_divergent_expectation_is_an_error_not_a_number():
    E = GaussianExpectation(sp.exp(x**2) * sp.tanh(x) ** 2, (x,), (q,))
    with pytest.raises(derive.DivergenceError, match="diverges"):
        E.subs(q, 1).evalf(20)


def test_text_input_goes_through_the_safe_parser():
    assert derive.expect("x**2", "x", "q") == q
    with pytest.raises(derive.ParseError):
        derive.expect("__import__('os')", "x", "q")
