"""Safe parsing of user text into SymPy: a whitelist walk over Python's ``ast``.

Nothing in a user string is ever executed: no ``eval``, ``exec``, ``sympify``
or ``parse_expr``.  The text is parsed by :func:`ast.parse` (which only builds
a tree) and each node is translated by hand; any node type, function or name
outside the whitelist is a :class:`~derive.errors.ParseError` naming it.

>>> parse("x*tanh(x) + 2**-3")
x*tanh(x) + 1/8
>>> parse("sigma_w2*q + sigma_b2")
q*sigma_w2 + sigma_b2
>>> parse("__import__('os').system('ls')")
Traceback (most recent call last):
...
derive.errors.ParseError: '__import__' is not allowed: names may not start with '_'
"""

from __future__ import annotations

import ast
import operator

import sympy as sp

from derive import symbols as S
from derive.errors import ParseError

MAX_LENGTH = 2000
MAX_NODES = 500
MAX_EXPONENT = 1000

FUNCTIONS = {
    "Abs": sp.Abs, "abs": sp.Abs, "Heaviside": sp.Heaviside, "step": sp.Heaviside,
    "sign": sp.sign, "Max": sp.Max, "max": sp.Max, "Min": sp.Min, "min": sp.Min,
    "sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "ln": sp.log,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
    "atan": sp.atan, "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "erf": sp.erf, "erfc": sp.erfc,
    "sigmoid": lambda t: 1 / (1 + sp.exp(-t)), "softplus": lambda t: sp.log(1 + sp.exp(t)),
    "relu": lambda t: sp.Max(0, t), "Phi": lambda t: (1 + sp.erf(t / sp.sqrt(2))) / 2,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E, "e": sp.E, "oo": sp.oo, "inf": sp.oo}
SYMBOLS = {s.name: s for s in (S.x, S.y, S.z, S.q, S.q1, S.q2, S.c, S.sigma_w2, S.sigma_b2,
                                S.q_star, S.c_star, S.chi1, S.kappa1, S.kappa2, S.alpha, S.rho)}
SYMBOLS |= {"z1": S.z1, "z2": S.z2, "q11": S.q1, "q22": S.q2, "chi1": S.chi1,
            "kappa1": S.kappa1, "kappa2": S.kappa2}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}


def _symbol(name: str) -> sp.Symbol:
    if name in SYMBOLS:
        return SYMBOLS[name]
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name.startswith("_") or len(name) > 24:
        raise ParseError(f"{name!r} is not an allowed name: names may not start with '_' "
                         "and are at most 24 characters")
    if name in FUNCTIONS:
        raise ParseError(f"{name!r} is a function: call it, as in {name}(x)")
    return sp.Symbol(name, real=True)


def _number(value) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{value!r} is not a number; only numbers, names and operators are allowed")
    return sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(value))


def _power(base, exponent):
    if exponent.is_number and abs(exponent) > MAX_EXPONENT:
        raise ParseError(f"exponent {exponent} is too large (limit {MAX_EXPONENT})")
    if base.is_number and exponent.is_number and abs(base) > 1 and abs(exponent) > 64:
        raise ParseError(f"power {base}**{exponent} is too large to build")
    return base**exponent


def _translate(node) -> sp.Expr:
    match node:
        case ast.Expression(body=body):
            return _translate(body)
        case ast.Constant(value=value):
            return _number(value)
        case ast.Name(id=name):
            return _symbol(name)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _translate(left), _translate(right)
            return _power(a, b) if isinstance(op, ast.Pow) else _BINARY[type(op)](a, b)
        case ast.BinOp(op=op):
            raise ParseError(f"operator {type(op).__name__!r} is not allowed; use + - * / **")
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_translate(operand))
        case ast.Compare(left=left, ops=[op], comparators=[right]) if type(op) in _COMPARE:
            return _COMPARE[type(op)](_translate(left), _translate(right))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            return _call(name, [_translate(a) for a in args])
        case ast.Call(func=ast.Attribute(attr=attr)):
            raise ParseError(f"attribute access '.{attr}' is not allowed")
        case ast.Call(func=ast.Name(id=name)):
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ParseError(f"{name!r} is not an allowed function (keywords are not allowed "
                             f"either); allowed: {allowed}")
        case ast.Attribute(attr=attr):
            raise ParseError(f"attribute access '.{attr}' is not allowed")
        case _:
            raise ParseError(f"{type(node).__name__} ({_snippet(node)!r}) is not allowed in a "
                             "formula; use numbers, names, + - * / **, and functions like tanh(x)")


def _call(name: str, args: list) -> sp.Expr:
    try:
        return FUNCTIONS[name](*args)
    except TypeError:
        raise ParseError(f"{name}() got {len(args)} arguments") from None


def _snippet(node) -> str:
    try:
        return ast.unparse(node)[:40]
    except Exception:  # unparse of a partial tree: the node type is message enough
        return type(node).__name__


def parse(text: str) -> sp.Expr:
    """A SymPy expression from user text, built without executing anything.

    Known names map to the canonical symbols of :mod:`derive.symbols` (``x``,
    ``q``, ``c``, ``sigma_w2``, ...); other plain names become real symbols.
    ``^`` is read as a power, as in mathematics.
    """
    if not isinstance(text, str):
        raise ParseError(f"parse() takes text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"input is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ParseError(f"not a formula: {exc.msg} at column {exc.offset} of {text!r}") from None
    except (ValueError, MemoryError, RecursionError):
        raise ParseError(f"cannot parse {text[:40]!r}: it is malformed or too deeply nested") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ParseError(f"formula has more than {MAX_NODES} parts; split it up")
    for node in nodes:  # private names first: they are the usual way out of a sandbox
        name = getattr(node, "id", None) or getattr(node, "attr", None)
        if isinstance(name, str) and name.startswith("_"):
            raise ParseError(f"{name!r} is not allowed: names may not start with '_'")
    try:
        return _translate(tree)
    except RecursionError:
        raise ParseError("formula is too deeply nested") from None


def as_expr(obj) -> sp.Expr:
    """Text through :func:`parse`, anything else (numbers, SymPy objects) through SymPy.

    This is the single door through which user input enters `derive`.
    """
    if isinstance(obj, str):
        return parse(obj)
    if isinstance(obj, sp.Basic):
        return obj
    if isinstance(obj, float):
        return sp.Float(obj)
    if isinstance(obj, int | sp.Rational):
        return sp.Integer(obj)
    try:
        return sp.sympify(obj, strict=True)
    except sp.SympifyError:
        raise ParseError(f"cannot use a {type(obj).__name__} as a formula") from None
