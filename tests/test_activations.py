"""Activations: built-ins, derivatives at kinks, custom ones, bad names."""

import pytest
import sympy as sp

import derive
from derive.activations import BUILTINS
from derive.symbols import x


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_is_made_by_name_and_is_a_function_of_x(name):
    act = derive.activation(name)
    assert act.expr.free_symbols <= {x}
    assert act(0).is_number


def test_derivatives_record_kinks():
    relu = derive.activation("relu")
    assert relu.derivative() == sp.Heaviside(x)
    assert relu.kinks == (0,)
    assert derive.activation("hard_tanh").kinks == (-1, 1)
    assert derive.activation("tanh").kinks == ()
    assert derive.activation("abs").derivative(2) == sp.sign(2)


def test_call_substitutes_and_derivative_matches_diff():
    tanh = derive.activation("tanh")
    assert tanh(2 * x) == sp.tanh(2 * x)
    assert sp.simplify(tanh.derivative(x) - (1 - sp.tanh(x) ** 2)) == 0


def test_parameters_and_leaky_relu_at_zero_is_relu():
    assert derive.activation("leaky_relu", a=0.1)(-2) == sp.Rational(-1, 5)
    leaky0 = derive.activation("leaky_relu", a=0)
    for v in (-2, -0.5, 0.5, 3):
        assert leaky0(v) == derive.activation("relu")(v)


def test_custom_activation_from_text_and_expr():
    act = derive.activation("x*tanh(x)")
    assert act.expr == x * sp.tanh(x)
    t = sp.Symbol("t")
    assert derive.Activation.from_expr(t**3).expr == x**3


def test_unknown_name_suggests_close_names():
    with pytest.raises(derive.DeriveError, match="did you mean 'relu'"):
        derive.activation("rleu")


def test_bad_parameters_are_domain_errors():
    with pytest.raises(derive.DomainError):
        derive.activation("monomial", n=-1)
    with pytest.raises(derive.DomainError):
        derive.activation("relu", a=1)
