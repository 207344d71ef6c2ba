"""Safe parsing: formulas become SymPy, anything else is a ParseError and nothing runs."""

import cmath

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import derive
from derive.parsing import MAX_LENGTH, as_expr, parse
from derive.symbols import c, q, sigma_b2, sigma_w2, x


@pytest.mark.parametrize(("text", "expected"), [
    ("x*tanh(x)", x * sp.tanh(x)),
    ("sigma_w2*q + sigma_b2", sigma_w2 * q + sigma_b2),
    ("2/pi*asin(2*q/(1+2*q))", 2 / sp.pi * sp.asin(2 * q / (1 + 2 * q))),
    ("x^2", x**2),
    ("max(0, x)", sp.Max(0, x)),
    ("(pi - acos(c))/(2*pi)", (sp.pi - sp.acos(c)) / (2 * sp.pi)),
    ("0.1*x", sp.Rational(1, 10) * x),
    ("-x**-2", -x**-2),
    ("Piecewise", sp.Symbol("Piecewise", real=True)),
])
def test_formulas_parse_to_canonical_symbols(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "token"), [
    ("__import__('os').system('echo pwned')", "__import__"),
    ("x.__class__", "__class__"),
    ("().__class__.__bases__[0].__subclasses__()", "may not start with '_'"),
    ("exp.func(x)", ".func"),
    ("lambda: 1", "Lambda"),
    ("[t for t in x]", "ListComp"),
    ("{1: 2}", "Dict"),
    ("x if x else 1", "IfExp"),
    ("9**9**9", "too large"),
    ("2**10000", "too large"),
    ("open('/etc/passwd')", "'open'"),
    ("eval('1')", "'eval'"),
    ("tanh(x, y)", "2 arguments"),
    ("tanh(x", "never closed"),
    ("x = 1", "not a formula"),
    ("'text'", "not a number"),
    ("x @ x", "MatMult"),
    ("exp(x=1)", "keywords"),
])
def test_unsafe_or_malformed_input_is_refused_naming_the_token(text, token):
    with pytest.raises(derive.ParseError, match=None) as info:
        parse(text)
    assert token in str(info.value)


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "ran"
    for text in (f"__import__('pathlib').Path('{marker}').touch()",
                 f"open('{marker}', 'w')"):
        with pytest.raises(derive.ParseError):
            parse(text)
    assert not marker.exists()


def test_over_long_and_deeply_nested_input():
    with pytest.raises(derive.ParseError, match="limit"):
        parse("x+" * MAX_LENGTH + "x")
    with pytest.raises(derive.ParseError):
        parse("(" * 200 + "x" + ")" * 200 + "+x" * 300)


def test_as_expr_is_the_door_for_user_input():
    assert as_expr("x**2") == x**2
    assert as_expr(2) == 2 and as_expr(0.5) == sp.Float(0.5)
    with pytest.raises(derive.ParseError):
        as_expr(object())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_parse_error(text):
    try:
        result = parse(text)
    except derive.ParseError:
        return
    assert isinstance(result, sp.Basic)


_atoms = st.sampled_from(["x", "q", "c", "1", "2", "0.5", "pi"])
_exprs = st.recursive(
    _atoms,
    lambda e: st.one_of(
        st.tuples(e, st.sampled_from(["+", "-", "*", "/"]), e).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(["tanh", "erf", "exp", "sin", "Abs"]), e).map(lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_exprs)
def test_parse_agrees_with_sympy_on_generated_formulas(text):
    try:
        ours = parse(text)
    except derive.ParseError:
        return
    theirs = sp.sympify(text, locals={"x": x, "q": q, "c": c})  # trusted, generated text
    point = {x: sp.Rational(3, 10), q: sp.Rational(7, 10), c: sp.Rational(1, 5)}
    a, b = complex(ours.evalf(30, subs=point)), complex(theirs.evalf(30, subs=point))
    if all(map(cmath.isfinite, (a, b))):
        assert abs(a - b) <= 1e-12 * max(1.0, abs(b))
