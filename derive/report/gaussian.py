"""Report section: the Gaussian-expectation table of every built-in activation.

For each activation φ it shows E φ(u)², E φ′(u)² (u ~ N(0, q)) and the
cross moments E φ(u)φ(v), E φ′(u)φ′(v) ((u, v) with variances q₁, q₂ and
correlation c): the closed form when one was derived, else the integral,
marked as numerical.  Each is checked at a sample point against mpmath
quadrature of the defining integral: a closed form to 30 digits, its numpy
evaluator against the same reference (20 digits where no closed form exists:
that check is to 1e-11); a figure per activation shows the numpy evaluator over
q and c against independent quadrature.
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
from derive.report import Check, Checks, Heading, Paragraph, Section, Table, figures, text
from derive.report.notation import E, dphi, phi, u, v
from derive.symbols import c, q, q1, q2, x, y, z

POINT_1D = {q: sp.Rational(7, 10)}
POINT_2D = {q1: sp.Rational(7, 10), q2: sp.Rational(13, 10), c: sp.Rational(3, 5)}
#: digits of the references: a closed form is checked to 1e-25, a numpy evaluator to 1e-11 (so
#: where it is the only check, 20 digits are ample), the figure's dots are read by eye
DPS, NUMERIC_DPS, DOT_DPS = 30, 20, 8


def _moments(act):
    """The expectations of the table, each with its integrand, variables and parameters.

    Where φ′ is a Dirac delta (step, sign) E φ′(u)² is infinite and the rows of φ′ are left out.
    """
    f, df = act(x), act.derivative(x)
    f_y, df_y = act(y), act.derivative(y)
    rows = (
        (E(phi(u)**2), f**2, (x,), (q,)),
        (E(phi(u) * phi(v)), f * f_y, (x, y), (q1, q2, c)),
        (E(dphi(u)**2), df**2, (x,), (q,)),
        (E(dphi(u) * dphi(v)), df * df_y, (x, y), (q1, q2, c)),
    )
    return rows[:2] if df.has(sp.DiracDelta) else rows


def _derive(integrand, variables, parameters):
    if len(variables) == 1:
        return expect(integrand, *variables, *parameters)
    return expect2(integrand, *variables, *parameters)


def _relative(a, b) -> float:
    return float(abs(mp.mpf(a) - mp.mpf(b)) / max(abs(mp.mpf(b)), mp.mpf(10) ** -DPS))


def _check_one(name, expr, numeric, integrand, variables, parameters) -> list[Check]:
    point = POINT_1D if len(variables) == 1 else POINT_2D
    values = tuple(p.xreplace(point) for p in parameters)
    exact = not isinstance(expr, GaussianExpectation)
    reference = mp_expectation(integrand, variables, values, dps=DPS if exact else NUMERIC_DPS)
    checks = []
    if exact:
        closed = sp.N(expr.xreplace(point), DPS + 5)
        checks.append(Check(text(name, f": closed form vs mpmath ({DPS} digits)"),
                            _relative(str(closed), reference), 1e-25))
    checks.append(Check(text(name, ": numpy evaluator vs mpmath"),
                        _relative(float(numeric(*map(float, values))), reference),
                        1e-11))
    return checks


def _figure(act, rows, figdir: Path):
    with figures.print_style():
        fig, (left, right) = figures.new(2, height=2.8)
        qs = np.geomspace(1e-2, 1e2, 200)
        q_marks = np.geomspace(1e-2, 1e2, 7)
        for label, numeric, integrand, variables in rows[::2]:
            left.plot(qs, numeric(qs), label=f"${latex(label)}$")
            ref = [float(mp_expectation(integrand, variables, (sp.Float(v),), dps=DOT_DPS)) for v in q_marks]
            left.plot(q_marks, ref, "k.", ms=4)
        left.set(xscale="log", xlabel="$q$", title="1-D (lines: numpy, dots: mpmath)")
        cs = np.linspace(-1, 1, 101)
        for label, numeric, *_ in rows[1::2]:
            right.plot(cs, numeric(1.0, 1.0, cs), label=f"${latex(label)}$")
        right.set(xlabel="$c$ ($q_1 = q_2 = 1$)", title="2-D")
        for ax in (left, right):
            figures.legend_below(ax, ncols=1)
        fig.suptitle(f"{act.name}: Gaussian expectations")
        caption = text(f"{act.name}: the numpy evaluators of the table over ", q, " (left; dots: mpmath "
                       "quadrature of the defining integral) and over ", c, " at ", sp.Eq(q1, 1), ", ",
                       sp.Eq(q2, 1), " (right).")
        return figures.save(fig, figdir, f"gaussian_{act.name.split('(')[0]}", caption)


def _activation_block(act, figdir: Path) -> list:
    """Heading, source, the table of expectations, their checks and the figure of one activation."""
    rows, checks, cells = [], [], []
    for label, integrand, variables, parameters in _moments(act):
        expr = _derive(integrand, variables, parameters)
        how = "numerical quadrature" if isinstance(expr, GaussianExpectation) else "closed form"
        cells.append((text(label), text(expr), how))
        numeric = lambdify(expr, list(parameters))  # compiled once: the checks and the figure use it
        rows.append((label, numeric, integrand, variables))
        checks += _check_one(text(f"{act.name} ", label), expr, numeric, integrand, variables, parameters)
    blocks = [Heading(text(f"{act.name}: ", sp.Eq(phi(x), act.expr, evaluate=False))),
              Paragraph(f"Source: {act.source}."),
              Table(("expectation", "result", "obtained by"), tuple(cells))]
    if len(rows) == 2:
        blocks.append(Paragraph(text(dphi(x), " is a Dirac delta: ",
                                     sp.Eq(E(dphi(u)**2), sp.oo, evaluate=False), ".")))
    blocks += [Checks(tuple(checks)), _figure(act, rows, figdir)]
    return blocks


def section(figdir: Path, activations=BUILTINS) -> Section:
    """The Gaussian-expectation table of the built-in activations (or those named)."""
    f = sp.Function("f")
    density = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    measure = sp.Eq(GaussianExpectation(f(x), (x,), (q,)),
                    sp.Integral(f(sp.sqrt(q) * z) * density, (z, -sp.oo, sp.oo)), evaluate=False)
    intro = Paragraph(text(
        "Conventions: ", u, " is Gaussian with mean 0 and variance ", q, "; ", sp.Tuple(u, v),
        " are jointly Gaussian with mean 0, variances ", q1, ", ", q2, " and correlation ", c,
        "; integrals are over the standard Gaussian measure, ", measure, ".  Checks at ",
        sp.Eq(q, POINT_1D[q]), " and ",
        sp.Eq(sp.Tuple(q1, q2, c), sp.Tuple(*POINT_2D.values()), evaluate=False), "."))
    blocks = [intro]
    for name in activations:
        blocks += _activation_block(activation(name), figdir)
    return Section("Gaussian expectations of the built-in activations", tuple(blocks))
