"""Report section: the Gaussian-expectation table of every built-in activation.

For each activation φ it shows E φ(u)², E φ′(u)² (u ~ N(0, q)) and the
cross moments E φ(u)φ(v), E φ′(u)φ′(v) ((u, v) with variances q₁, q₂ and
correlation c): the closed form when one was derived, else the integral,
marked as numerical.  Each is checked at a sample point against mpmath
quadrature of the defining integral (30 digits), and its numpy evaluator
against the same reference; a figure per activation shows the numpy
evaluator over q and c against independent quadrature.
"""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import BUILTINS, activation
from derive.gaussian import GaussianExpectation, expect, expect2
from derive.gaussian.reference import mp_expectation
from derive.numeric import lambdify
from derive.printing import latex
from derive.report import Check, Section
from derive.symbols import c, q, q1, q2, x, y

POINT_1D = {q: sp.Rational(7, 10)}
POINT_2D = {q1: sp.Rational(7, 10), q2: sp.Rational(13, 10), c: sp.Rational(3, 5)}
DPS = 30


def _moments(act):
    """The expectations of the table, each with its integrand, variables and parameters.

    Where φ′ is a Dirac delta (step, sign) E φ′(u)² is infinite and the rows of φ′ are left out.
    """
    phi, dphi = act(x), act.derivative(x)
    phi_y, dphi_y = act(y), act.derivative(y)
    rows = (
        (r"\mathbb{E}\,\phi(u)^2", phi**2, (x,), (q,)),
        (r"\mathbb{E}\,\phi(u)\phi(v)", phi * phi_y, (x, y), (q1, q2, c)),
        (r"\mathbb{E}\,\phi'(u)^2", dphi**2, (x,), (q,)),
        (r"\mathbb{E}\,\phi'(u)\phi'(v)", dphi * dphi_y, (x, y), (q1, q2, c)),
    )
    return rows[:2] if dphi.has(sp.DiracDelta) else rows


def _derive(integrand, variables, parameters):
    if len(variables) == 1:
        return expect(integrand, *variables, *parameters)
    return expect2(integrand, *variables, *parameters)


def _relative(a, b) -> float:
    return float(abs(mp.mpf(a) - mp.mpf(b)) / max(abs(mp.mpf(b)), mp.mpf(10) ** -DPS))


def _check_one(name, expr, integrand, variables, parameters) -> list[Check]:
    point = POINT_1D if len(variables) == 1 else POINT_2D
    values = tuple(p.xreplace(point) for p in parameters)
    reference = mp_expectation(integrand, variables, values, dps=DPS)
    checks = []
    if not isinstance(expr, GaussianExpectation):
        closed = sp.N(expr.xreplace(point), DPS + 5)
        checks.append(Check(f"{name}: closed form vs mpmath ({DPS} digits)",
                            _relative(str(closed), reference), 1e-25))
    numeric = lambdify(expr, list(parameters))(*map(float, values))
    checks.append(Check(f"{name}: numpy evaluator vs mpmath", _relative(float(numeric), reference), 1e-11))
    return checks


def _figure(act, rows, figdir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    qs = np.geomspace(1e-2, 1e2, 200)
    q_marks = np.geomspace(1e-2, 1e2, 7)
    for label, expr, integrand, variables, _ in rows[::2]:
        left.plot(qs, lambdify(expr, [q])(qs), label=f"${label}$")
        ref = [float(mp_expectation(integrand, variables, (sp.Float(v),), dps=15)) for v in q_marks]
        left.plot(q_marks, ref, "k.", ms=4)
    left.set(xscale="log", xlabel="$q$", title="1-D (lines: numpy, dots: mpmath)")
    cs = np.linspace(-1, 1, 101)
    for label, expr, *_ in rows[1::2]:
        right.plot(cs, lambdify(expr, [q1, q2, c])(1.0, 1.0, cs), label=f"${label}$")
    right.set(xlabel="$c$ ($q_1 = q_2 = 1$)", title="2-D")
    for ax in (left, right):
        ax.legend(fontsize=7)
    fig.suptitle(f"{act.name}: Gaussian expectations")
    fig.tight_layout()
    path = figdir / f"gaussian_{act.name.split('(')[0]}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"figures/{path.name}"


def _activation_block(act, figdir: Path) -> tuple[str, list[Check]]:
    rows, checks, lines = [], [], []
    for label, integrand, variables, parameters in _moments(act):
        expr = _derive(integrand, variables, parameters)
        how = "numerical quadrature" if isinstance(expr, GaussianExpectation) else "closed form"
        lines.append(f"| ${label}$ | ${latex(expr)}$ | {how} |")
        rows.append((label, expr, integrand, variables, parameters))
        checks += _check_one(f"{act.name} {label}", expr, integrand, variables, parameters)
    table = "\n".join(["| expectation | result | obtained by |", "|---|---|---|", *lines])
    figure = _figure(act, rows, figdir)
    if len(rows) == 2:
        table += "\n\n$\\phi'$ is a Dirac delta: $\\mathbb{E}\\,\\phi'(u)^2 = \\infty$."
    text = (f"### {act.name}: $\\phi(x) = {latex(act.expr)}$\n\nSource: {act.source}.\n\n"
            f"{table}\n\n![{act.name}]({figure})\n")
    return text, checks


def section(figdir: Path) -> Section:
    """The Gaussian-expectation table of all built-in activations."""
    blocks, checks = [], []
    for name in BUILTINS:
        text, found = _activation_block(activation(name), figdir)
        blocks.append(text)
        checks += found
    intro = ("Conventions: $u \\sim \\mathcal N(0, q)$; $(u, v)$ centred Gaussian with variances "
             "$q_1, q_2$ and correlation $c$; $\\int \\mathcal{D}z$ is the standard Gaussian measure. "
             f"Checks at $q = {POINT_1D[q]}$ and $(q_1, q_2, c) = ({POINT_2D[q1]}, {POINT_2D[q2]}, "
             f"{POINT_2D[c]})$.\n\n")
    return Section("Gaussian expectations of the built-in activations", intro + "\n".join(blocks),
                   tuple(checks))
