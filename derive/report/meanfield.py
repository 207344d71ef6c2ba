"""Report section: mean-field signal propagation -- critical lines and the phase diagram.

For linear, ReLU, erf and tanh networks: the critical line χ₁ = 1 in the best closed form
`derive` finds, each beside its checks -- against mpmath (closed forms at 30 digits,
quadrature-based values against an independent mpmath root of q − V(q)/D(q) = σ_b²),
against the reference values of REFERENCES.md §1, and against simulated random networks
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
from derive.printing import latex
from derive.report import Check, Section
from derive.simulate import propagation
from derive.symbols import q, sigma_w2

ACTIVATIONS = ("linear", "relu", "erf", "tanh")
K = 6.0  # standard errors (10 seeds: Student t with 9 degrees of freedom, P(|t| > 6) ≈ 2e-4)


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
        return [Check(f"{name}: critical σ_w² at σ_b² = 0 is {exact:g}",
                      abs(mf.critical_sigma_w2(0.0) - exact), 1e-14)]
    if name == "erf":
        line = mf.critical_line()
        at = sp.Rational(3, 4)
        explicit = line.equation.rhs.subs(sigma_w2, line.sigma_w2_of_q.subs(q, at))
        gap = sp.N(explicit - line.sigma_b2_of_q.subs(q, at), 35)
        with mp.workdps(40):
            at_zero = abs(mf.critical_sigma_w2(0.0, dps=30) - mp.pi / 4)
        return [Check("erf: critical σ_w² at σ_b² = 0 vs π/4 (30 digits)", float(at_zero), 1e-28),
                Check("erf: explicit σ_b²(σ_w²) vs parametric form at q* = 3/4 (35 digits)",
                      abs(float(gap)), 1e-30)]
    reference = _tanh_critical_reference("0.05")
    point = mf.critical_point(0.05)
    fp = mf.fixed_point(1.5, 0.05)
    return [
        Check("tanh: critical σ_w²(0.05), float64 vs independent mpmath root (25 digits)",
              float(abs(point.sigma_w2 - reference) / reference), 1e-12),
        Check("tanh: critical σ_w²(0.05) vs REFERENCES.md 1.76095463961", abs(point.sigma_w2 - 1.76095463961),
              6e-12),
        Check("tanh: q* at (1.5, 0.05) vs REFERENCES.md 0.418037201", abs(fp.q_star - 0.418037201), 6e-10),
        Check("tanh: χ₁ at (1.5, 0.05) vs REFERENCES.md 0.938636268", abs(fp.chi1 - 0.938636268), 6e-10),
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
        where = f"tanh ({sw}, {sb}), width {width}, depth {depth}"
        checks.append(Check(f"simulation {where}: q^l = q* (std. errors)", sim.deviation("q", fp.q_star), K))
        powers = fp.chi1 ** np.arange(depth - 1, -1, -1)
        checks.append(Check(f"simulation {where}: gradients χ₁^(L−l) (std. errors)",
                            sim.deviation("delta_sq", powers, slice(0, -1)), K))
        if fp.c_star < 1:
            checks.append(Check(f"simulation {where}: c^l = c* (std. errors)",
                                sim.deviation("c", fp.c_star), K))
    return checks


def _figures(figdir: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diagram = MeanField("tanh").phase_diagram(np.linspace(0.5, 4, 200), np.linspace(0, 0.3, 200))
    fig = diagram.plot()
    fig.savefig(figdir / "meanfield_phase_tanh.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name in ACTIVATIONS:
        MeanField(name).critical_line().plot(ax=ax, sigma_b2_max=0.3)
    ax.set_xlim(0.5, 4)
    fig.tight_layout()
    fig.savefig(figdir / "meanfield_critical_lines.png", dpi=90)
    plt.close(fig)
    return "figures/meanfield_phase_tanh.png", "figures/meanfield_critical_lines.png"


def section(figdir: Path) -> Section:
    """Critical lines (LaTeX) of linear, ReLU, erf and tanh networks and the tanh phase diagram."""
    blocks, checks = [], []
    tanh = MeanField("tanh")
    intro = ("Layer maps of a wide random network (Poole et al. 2016; Schoenholz et al. 2017), "
             "here for $\\phi = \\tanh$, from the block `serial(φ, Dense(σ_w², σ_b²))`:\n\n"
             f"$$\n{latex(tanh)}\n$$\n\n"
             "The critical line $\\chi_1 = 1$ separates the ordered phase ($\\chi_1 < 1$, $c^* = 1$) "
             "from the chaotic one ($\\chi_1 > 1$, $c^* < 1$).\n")
    for name in ACTIVATIONS:
        mf = MeanField(name)
        line = mf.critical_line()
        blocks.append(f"### {name}\n\n$$\n{latex(line)}\n$$\n\n{line.explanation} "
                      f"Obtained by: {line.method}.\n")
        checks += _checks(name, mf)
    checks += _simulation_checks()
    phase, lines = _figures(figdir)
    figures = (f"![critical lines]({lines})\n\nThe tanh phase diagram: depth scale $\\xi_c$ and "
               "$c^*$ over $(\\sigma_w^2, \\sigma_b^2)$, with the critical line.\n\n"
               f"![tanh phase diagram]({phase})\n")
    return Section("Mean-field signal propagation", intro + "\n".join(blocks) + "\n" + figures, tuple(checks))
