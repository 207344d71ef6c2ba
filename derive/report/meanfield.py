"""Report section: mean-field signal propagation -- critical lines and the phase diagram.

For linear, ReLU, erf and tanh networks: the critical line χ₁ = 1 in the best closed form
`derive` finds, each beside its checks -- against mpmath (closed forms at 30 digits,
quadrature-based values against an independent mpmath root of q − V(q)/D(q) = σ_b²),
against reference values of the tanh critical point and fixed point, and against simulated random networks
(studentised deviation of the simulated mean from the prediction, tolerance 6 standard
errors over 10 seeds).  Figures: the tanh phase diagram (Schoenholz et al. 2017, fig. 1)
and the critical lines of the four activations.
"""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np
import sympy as sp

from derive.meanfield import MeanField
from derive.report import (
    Check,
    Checks,
    Code,
    Equation,
    Figure,
    Heading,
    Listing,
    Paragraph,
    Section,
    figures,
    text,
)
from derive.report.notation import phi
from derive.simulate import propagation
from derive.symbols import c_star, chi1, l, q, q_star, sigma_b2, sigma_w2, x

ACTIVATIONS = ("linear", "relu", "erf", "tanh")
K = 6.0  # standard errors (10 seeds: Student t with 9 degrees of freedom, P(|t| > 6) ≈ 2e-4)
#: notation of the check names
Q_L, C_L, DEPTH = sp.Symbol("q^l"), sp.Symbol("c^l"), sp.Symbol("L")
_SE = " (standard errors)"
_AT_B = sp.Eq(sigma_b2, sp.Float("0.05"))


def _at(w: float, b: float):
    """(σ_w², σ_b²) = (w, b)."""
    return sp.Eq(sp.Tuple(sigma_w2, sigma_b2), sp.Tuple(w, b), evaluate=False)


def _tanh_critical_reference(sigma_b2: str, dps: int = 25):
    """σ_w² with q − V(q)/D(q) = σ_b² for tanh, by mpmath quadrature and findroot only."""
    with mp.workdps(dps):
        def E(f, q):
            return mp.quad(lambda z: f(mp.sqrt(q) * z) * mp.npdf(z), [-mp.inf, 0, mp.inf])

        def D(q):
            return E(lambda u: mp.sech(u) ** 4, q)

        root = mp.findroot(lambda q: q - E(lambda u: mp.tanh(u) ** 2, q) / D(q) - mp.mpf(sigma_b2), 0.5)
        return 1 / D(root)


def _checks(name: str, mf: MeanField) -> list[Check]:
    if name in ("linear", "relu"):
        exact = {"linear": 1.0, "relu": 2.0}[name]
        return [Check(text(f"{name}: critical ", sigma_w2, " at ", sp.Eq(sigma_b2, 0), f" is {exact:g}"),
                      abs(mf.critical_sigma_w2(0.0) - exact), 1e-14)]
    if name == "erf":
        line = mf.critical_line()
        at = sp.Rational(3, 4)
        explicit = line.equation.rhs.subs(sigma_w2, line.sigma_w2_of_q.subs(q, at))
        gap = sp.N(explicit - line.sigma_b2_of_q.subs(q, at), 35)
        with mp.workdps(40):
            at_zero = abs(mf.critical_sigma_w2(0.0, dps=30) - mp.pi / 4)
        return [Check(text("erf: critical ", sigma_w2, " at ", sp.Eq(sigma_b2, 0), " vs ", sp.pi / 4,
                           " (30 digits)"), float(at_zero), 1e-28),
                Check(text("erf: explicit ", sigma_b2, " as a function of ", sigma_w2, " vs the parametric "
                           "form at ", sp.Eq(q_star, at), " (35 digits)"),
                      abs(float(gap)), 1e-30)]
    reference = _tanh_critical_reference("0.05")
    point = mf.critical_point(0.05)
    fp = mf.fixed_point(1.5, 0.05)
    return [
        Check(text("tanh: critical ", sigma_w2, " at ", _AT_B, ", float64 vs an independent mpmath root "
                   "(25 digits)"),
              float(abs(point.sigma_w2 - reference) / reference), 1e-12),
        Check(text("tanh: critical ", sigma_w2, " at ", _AT_B, " vs the reference value 1.76095463961"),
              abs(point.sigma_w2 - 1.76095463961), 6e-12),
        Check(text("tanh: ", q_star, " at ", _at(1.5, 0.05), " vs the reference value 0.418037201"),
              abs(fp.q_star - 0.418037201), 6e-10),
        Check(text("tanh: ", chi1, " at ", _at(1.5, 0.05), " vs the reference value 0.938636268"),
              abs(fp.chi1 - 0.938636268), 6e-10),
    ]


def _simulation_checks() -> list[Check]:
    """Inputs placed at the fixed point of tanh networks stay there; gradients scale by χ₁."""
    checks, depth, width = [], 10, 400
    mf = MeanField("tanh")
    for sw, sb in ((1.5, 0.05), (2.5, 0.05)):
        fp = mf.fixed_point(sw, sb)
        c_in = (fp.c_star * fp.q_star - sb) / (fp.q_star - sb) if fp.c_star < 1 else 0.99
        sim = propagation(mf.network(depth, sw, sb), [width] * (depth + 1), c_in=c_in,
                          norm2=(fp.q_star - sb) / sw)
        where = text("tanh at ", _at(sw, sb), f", width {width}, depth {depth}: ")
        checks.append(Check(text(where, sp.Eq(Q_L, q_star), _SE), sim.deviation("q", fp.q_star), K))
        powers = fp.chi1 ** np.arange(depth - 1, -1, -1)
        checks.append(Check(text(where, "gradients as ", chi1 ** (DEPTH - l), _SE),
                            sim.deviation("delta_sq", powers, slice(0, -1)), K))
        if fp.c_star < 1:
            checks.append(Check(text(where, sp.Eq(C_L, c_star), _SE), sim.deviation("c", fp.c_star), K))
    return checks


def _figures(figdir: Path) -> tuple[Figure, Figure]:
    import matplotlib.pyplot as plt

    diagram = MeanField("tanh").phase_diagram(np.linspace(0.5, 4, 200), np.linspace(0, 0.3, 200))
    with figures.print_style():
        fig = diagram.plot(fig=plt.figure(figsize=(figures.PAGE_WIDTH, 2.8)))
        phase = figures.save(fig, figdir, "meanfield_phase_tanh", text(
            "The tanh phase diagram: depth scale ", sp.Symbol("xi_c"), " and ", c_star, " over ",
            sp.Tuple(sigma_w2, sigma_b2), ", with the critical line."))
        fig, (ax,) = figures.new(1, width=5.0, height=3.0)
        for name in ACTIVATIONS:
            MeanField(name).critical_line().plot(ax=ax, sigma_b2_max=0.3)
        for line, (marker, color) in zip([ln for ln in ax.lines if ln.get_label().endswith("point")],
                                         (("s", "C2"), ("D", "C3")), strict=True):
            line.set(marker=marker, color=color, markersize=6, clip_on=False, zorder=5)
        ax.set_xlim(0.5, 4)
        ax.set_ylim(-0.01, 0.31)
        figures.figure_legend(fig)
        lines = figures.save(fig, figdir, "meanfield_critical_lines", text(
            "The critical lines ", sp.Eq(chi1, 1), " of erf and tanh networks, and the critical points of "
            "linear and ReLU networks (on the axis ", sp.Eq(sigma_b2, 0), ")."))
    return phase, lines


def section(figdir: Path) -> Section:
    """Critical lines of linear, ReLU, erf and tanh networks and the tanh phase diagram."""
    tanh = MeanField("tanh")
    blocks = [
        Paragraph(text("Layer maps of a wide random network (Poole et al. 2016; Schoenholz et al. 2017), "
                       "here for ", sp.Eq(phi(x), sp.tanh(x), evaluate=False), ", from the block ",
                       Code('serial("tanh", Dense(sigma_w2, sigma_b2))'), ":")),
        Equation(tanh),
        Paragraph(text("The critical line ", sp.Eq(chi1, 1), " separates the ordered phase (", chi1 < 1, ", ",
                       sp.Eq(c_star, 1), ") from the chaotic one (", chi1 > 1, ", ", c_star < 1, ").")),
        Listing('from derive.meanfield import MeanField\n\nMeanField("tanh").critical_line()'),
    ]
    for name in ACTIVATIONS:
        mf = MeanField(name)
        line = mf.critical_line()
        blocks += [Heading(name), Equation(line),
                   Paragraph(f"{line.explanation} Obtained by: {line.method}."),
                   Checks(tuple(_checks(name, mf)))]
    simulations = Checks(tuple(_simulation_checks()))
    phase, lines = _figures(figdir)
    blocks += [lines, phase, Heading("Simulated tanh networks"),
               Paragraph(text("Inputs placed at the fixed point of random tanh networks stay there, and "
                              "squared gradients scale by ", chi1, " per layer: the deviation of the "
                              "simulated mean from the prediction over 10 seeds, in standard errors.")),
               simulations]
    return Section("Mean-field signal propagation", tuple(blocks))
