"""derive.verify and derive.check against mpmath quadrature of the defining integrals.

The references are unevaluated GaussianExpectation objects, evaluated by mp_expectation, so these
tests do not depend on the closed-form rules."""

import pytest
import sympy as sp

import derive
from derive.gaussian import GaussianExpectation
from derive.symbols import c, q, sigma_b2, sigma_w2, x, y
from derive.verification import random_points

ERF_QMAP = "2/pi*asin(2*q/(1+2*q))"  # Williams 1997, REFERENCES.md §1
E_ERF2 = GaussianExpectation(sp.erf(x) ** 2, (x,), (q,))


def test_check_confirms_a_correct_hand_calculation_numerically_at_50_digits():
    result = derive.check(ERF_QMAP, E_ERF2, ["q"])
    assert result.equal and bool(result)
    assert result.method.startswith("numerical: 50 digits at 5 random")
    assert "q in [1e-06, 1e+06]" in result.method
    assert result.relative_difference <= 1e-45
    assert str(result).startswith("EQUAL (numerical")


def test_check_catches_a_missing_factor_of_two():
    result = derive.check("1/pi*asin(2*q/(1+2*q))", E_ERF2, ["q"])
    assert not result.equal
    assert abs(result.relative_difference - 0.5) < 1e-12
    assert "factor 1/2" in result.hint
    assert "NOT EQUAL" in str(result) and f"q={float(result.worst_point[q]):.6g}" in str(result)


def test_check_catches_a_sign_slip():
    result = derive.check("-2/pi*asin(2*q/(1+2*q))", E_ERF2, ["q"], n_points=3)
    assert not result.equal and "sign slip" in result.hint


def test_check_catches_a_wrong_argument_and_names_the_worst_point():
    result = derive.check("2/pi*asin(2*q/(1+4*q))", E_ERF2, ["q"], points=[0.01, 0.5, 3.0])
    assert not result.equal and result.method == "numerical: 50 digits at 3 given points"
    assert result.worst_point == {q: 3}
    assert result.hint == ""  # neither a constant factor nor a constant offset


def test_check_is_symbolic_when_sympy_can_show_the_difference_is_zero():
    result = derive.check("sigma_w2*q/2 + sigma_b2", sigma_b2 + sigma_w2 * q * sp.Rational(1, 2),
                          ["sigma_w2", "q", "sigma_b2"])
    assert result.equal and result.method.startswith("symbolic")
    assert derive.check("sin(q)**2 + cos(q)**2", "1", ["q"]).method.startswith("symbolic")


def test_check_the_relu_derivative_kernel_in_two_dimensions():
    """Story 2: E[Θ(u)Θ(v)] = (π − arccos c)/(2π) (Cho & Saul 2009), at unit variances."""
    E = GaussianExpectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (1, 1, c))
    result = derive.check("(pi - acos(c))/(2*pi)", E, ["c"], points=[0.3], quadrature_dps=15)
    assert result.equal and result.method == "numerical: 15 digits at 1 given points"


def test_check_refuses_symbols_that_are_not_arguments():
    with pytest.raises(derive.NumericError, match="sigma_b2"):
        derive.check("sigma_w2*q + sigma_b2", "sigma_w2*q", ["sigma_w2", "q"])


def test_verify_passes_a_correct_closed_form_and_reports_every_comparison():
    report = derive.verify(ERF_QMAP, ["q"], reference=E_ERF2, n_points=3)
    assert report.passed
    assert [cmp.name for cmp in report.comparisons] == ["numpy vs mpmath (50 digits)",
                                                        "mpmath vs quadrature of the reference (50 digits)"]
    assert report.comparisons[0].max_error <= 1e-13
    assert report.comparisons[1].max_error <= 1e-45
    assert "PASSED" in str(report) and "<table>" in report._repr_html_()


def test_verify_catches_a_deliberately_wrong_closed_form():
    wrong = "2/pi*asin(2*q/(1+2*q)) + q**3/1000"
    report = derive.verify(wrong, ["q"], reference=E_ERF2, points=[[0.2], [1.0], [4.0]])
    assert not report.passed
    numpy_vs_mp, closed_vs_quadrature = report.comparisons
    assert numpy_vs_mp.passed  # the evaluator is faithful to the (wrong) formula
    assert not closed_vs_quadrature.passed and closed_vs_quadrature.worst_point == {q: 4}
    assert "FAILED" in str(report) and "FAIL" in report._repr_html_()


def test_verify_an_expression_containing_an_unevaluated_expectation():
    E = GaussianExpectation(sp.tanh(x) ** 2, (x,), (sigma_w2 * q + sigma_b2,))
    report = derive.verify(sigma_w2 * E + sigma_b2, [sigma_w2, q, sigma_b2], n_points=3, dps=30)
    assert report.passed and report.comparisons[0].max_error <= 1e-13


def test_random_points_are_reproducible_and_in_their_domains():
    points = random_points([q, c, x], n=50, seed=3)
    assert points == random_points([q, c, x], n=50, seed=3)
    r = sp.Rational
    assert all(r(1, 10**6) <= p[q] <= 10**6 and abs(p[c]) <= r(999, 1000) and abs(p[x]) <= 1000
               for p in points)
    assert min(p[q] for p in points) == sp.Rational(1, 10**6) and max(p[q] for p in points) == 10**6
    assert all(isinstance(v, sp.Rational) for p in points for v in p.values())
    assert all(1 <= p[q] <= 2 for p in random_points([q], n=10, domain={"q": (1, 2)}))


def test_check_samples_the_whole_domain_and_finds_an_error_placed_at_large_variance():
    E = GaussianExpectation(sp.Max(0, x) ** 2, (x,), (q,))
    result = derive.check("q/2 + Heaviside(q - 20)", E, ["q"])
    assert not result.equal and result.worst_point[q] > 20


def test_a_ratio_close_to_one_is_not_rounded_into_a_factor():
    E = GaussianExpectation(sp.Max(0, x) ** 2, (x,), (q,))
    result = derive.check("q/2*(1 + 1e-8)", E, ["q"], n_points=3)
    assert not result.equal and "factor 1" not in result.hint and "1.00000001" in result.hint


@pytest.mark.parametrize("bad", [0, -5, 100000, 2.5])
def test_absurd_precision_is_refused(bad):
    with pytest.raises(derive.DeriveError, match="dps"):
        derive.check("q", "q", ["q"], dps=bad)
