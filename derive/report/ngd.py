"""Report section: natural gradient descent with approximate Fisher matrices in the NTK regime
(Karakida & Osawa 2020, NeurIPS).

The α table (exact, block diagonal, block tri-diagonal, K-FAC, unit-wise; both conventions) as
formulas in L, M, N, with one-step convergence at η = 1/α.  Checks: α against J G⁺ Jᵀ/N of actual
ReLU networks (to the operator's roundoff for the methods that are isotropic at finite width, in
standard errors over seeds for unit-wise); the isotropy figure (spread against width, unit-wise's
fitted exponent against −1/2); the training figure (loss per step at η = 1/α and 1/(2α)) with the
linear law checked within the full step's finite-width remainder, and the test losses of the
networks beside the kernel regressions they converge to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

from derive.ngd import METHODS, isotropy, ngd_alpha, train
from derive.ngd.notation import L, M, N, alpha, eta, gamma
from derive.report import Check, Checks, Equation, Heading, Listing, Paragraph, Section, Table, figures, text
from derive.report.document import number
from derive.report.notation import fisher_matrix, ngd_operator, one_T_one

#: how the table and the figures name the methods
NAMES = {"exact": "exact Fisher", "block_diagonal": "block diagonal (layer-wise)",
         "block_tridiagonal": "block tri-diagonal", "kfac": "K-FAC", "unit_wise": "unit-wise"}
#: the network of the checks and figures: ReLU at (σ_w², σ_b²) = (2, 0.1)
NET = ("relu", 2.0, 0.1)
DEPTH, SAMPLES = 3, 20
#: standard errors a mean of UNIT_SEEDS networks may be from its theory (7 degrees of freedom:
#: P(|t| > 5) ≈ 1.6·10⁻³)
K_SE, UNIT_SEEDS = 5.0, 8


def _table() -> Table:
    rows = []
    for name in METHODS:
        paper = ngd_alpha(name, depth=L)
        averaged = ngd_alpha(name, depth=L, convention="averaged")
        exact = "exactly" if name != "unit_wise" else "as M → ∞"
        rows.append((NAMES[name], text(paper.value), text(averaged.value), text(paper.learning_rate), exact))
    header = ("approximation", text(alpha, " (paper)"), text(alpha, " (1/N-averaged)"),
              text(eta, " = 1/", alpha, " (paper)"), "isotropic at finite width")
    return Table(header, tuple(rows))


def _alpha_checks(width: int) -> list[Check]:
    checks = []
    for name in METHODS:
        if name == "unit_wise":
            seeds = UNIT_SEEDS
            study = isotropy(*NET, DEPTH, widths=(width,), samples=SAMPLES, method=name, seeds=range(seeds))
            theory = float(ngd_alpha(name, depth=DEPTH, width=width, activation=NET[0],
                                     convention="averaged"))
            values = study.alphas[0]
            z = abs(values.mean() - theory) / (values.std(ddof=1) / np.sqrt(seeds))
            checks.append(Check(text(NAMES[name], ": mean eigenvalue of ", seeds, " networks (M = ", width,
                                     ") vs ", sp.Eq(alpha, gamma * (L - 1) * M + 1), ", in standard errors"),
                                float(z), K_SE))
            continue
        study = isotropy(*NET, DEPTH, widths=(width,), samples=SAMPLES, method=name, seeds=range(1))
        theory = ngd_alpha(name, depth=DEPTH, samples=SAMPLES).value
        error = abs(study.alphas[0, 0] / float(theory) - 1)
        checks.append(Check(text(NAMES[name], ": relative error of the mean eigenvalue of ", ngd_operator,
                                 " (M = ", width, ", N = ", SAMPLES, ") vs ", sp.Eq(alpha, theory),
                                 " (tolerance: the operator's roundoff)"),
                            float(error), float(study.roundoff[0, 0])))
    return checks


def _isotropy_figure(figdir: Path, widths, seeds: int) -> tuple:
    studies = {name: isotropy(*NET, DEPTH, widths=widths, samples=SAMPLES, method=name, seeds=range(seeds))
               for name in METHODS}
    unit = studies["unit_wise"]
    slope, se = unit.exponent
    with figures.print_style():
        fig, (ax,) = figures.new(1, width=5.0, height=3.2)
        for i, (name, study) in enumerate(studies.items()):
            ax.errorbar(widths, study.spreads.mean(axis=1), yerr=study.spreads.std(axis=1, ddof=1),
                        fmt="os^dv"[i], color=f"C{i}", capsize=2, label=NAMES[name])
        reference = np.sqrt(1 / ((DEPTH - 1) * np.asarray(widths, dtype=float)))  # γ = 1/2
        ax.plot(widths, reference, "--", color="C4", label=r"$\sqrt{(1-\gamma)/(\gamma(L-1)M)}$")
        ax.set(xscale="log", yscale="log", xlabel="width $M$",
               ylabel=r"spread $\|O-\hat\alpha I\|/\hat\alpha\sqrt{N}$",
               title=f"ReLU, L = {DEPTH}, N = {SAMPLES}")
        ax.set_xticks(widths, [str(w) for w in widths], minor=False)
        ax.set_xticks([], minor=True)
        figures.legend_below(ax)
        figure = figures.save(fig, figdir, "ngd_isotropy", text(
            "Distance of ", ngd_operator, " from ", alpha, " I on actual ReLU networks (mean and spread "
            "over ", seeds, " seeds per width): the layer-wise and Kronecker approximations are isotropic to "
            "roundoff at every width, unit-wise NGD only as ", M, " → ∞ (fitted exponent ", number(slope, 3),
            " ± ", number(se, 2), ")."))
    check = Check(text("unit-wise spread: |fitted exponent + 1/2| in standard errors of the fit"),
                  abs(slope + 0.5) / se, 4.0)
    return figure, check


def _training_figure(figdir: Path, width: int, steps: int) -> tuple:
    kw = dict(width=(width, width, width), samples=SAMPLES, method=METHODS, steps=steps, test_samples=50,
              seed=0)
    full, half = (train(*NET, DEPTH, eta=scale, **kw) for scale in (1.0, 0.5))
    with figures.print_style():
        fig, axes = figures.new(2, height=2.8)
        for ax, runs, title in ((axes[0], full, r"$\eta = 1/\alpha$"),
                                (axes[1], half, r"$\eta = 1/(2\alpha)$")):
            for i, run in enumerate(runs):
                ax.plot(range(steps + 1), run.losses / run.losses[0], "os^dv"[i] + "-", color=f"C{i}",
                        label=NAMES[run.method])
            ax.set(yscale="log", xlabel="step $t$", ylabel="training loss / start", title=title)
        axes[1].plot(range(steps + 1), 0.25 ** np.arange(steps + 1), "k--", label=r"$(1-\alpha\eta)^{2t}$")
        figures.figure_legend(fig)
        figure = figures.save(fig, figdir, "ngd_training", text(
            "NGD on a ReLU network (L = ", DEPTH, ", M = ", width, ", N = ", SAMPLES, ", float64) with each "
            "approximation: training loss per step.  At ", sp.Eq(eta, 1 / alpha), " the isotropic methods "
            "converge in one step up to the network's curvature; unit-wise NGD's per-unit steps are "
            "heavy-tailed and leave the linear regime."))
    checks, rows = [], []
    for f, h in zip(full, half, strict=True):
        remainder = f.residual_ratios[1]
        if f.method != "unit_wise":
            name = text(NAMES[f.method], ": |residual ratio at η = 1/(2α) − 1/2|, tolerance the remainder "
                                         "after the full step")
            checks.append(Check(name, float(abs(h.residual_ratios[1] - 0.5)), float(remainder)))
        kernel = "(no kernel limit)" if f.kernel_test is None else number(f.kernel_test_losses[-1], 3)
        rows.append((NAMES[f.method], number(remainder, 2), number(f.test_losses[-1], 3),
                     number(f.linearised_test_losses[-1], 3), kernel))
    header = ("approximation", "‖f₁ − y‖/‖f₀ − y‖ at η = 1/α", f"test loss after {steps} steps (network)",
              "linearised network", "wide-limit kernel regression")
    return figure, checks, Table(header, tuple(rows))


def section(figdir: Path, widths=(100, 200, 400, 800), seeds: int = 6, train_width: int = 400,
            steps: int = 4) -> Section:
    """The NGD results; `widths`, `seeds`, `train_width`, `steps` make it cheaper for tests."""
    figdir = Path(figdir)
    dynamics = ngd_alpha("exact", depth=L)
    iso_figure, iso_check = _isotropy_figure(figdir, widths, seeds)
    train_figure, train_checks, test_table = _training_figure(figdir, train_width, steps)
    blocks = [
        Paragraph(text(
            "Natural gradient descent θ ← θ − η G⁺ ∇θ loss on the squared loss of ", N, " samples, with G an "
            "approximation of the Fisher matrix ", fisher_matrix, " and zero damping.  In the NTK regime "
            "every approximation below satisfies the isotropic condition ", ngd_operator, " = ", alpha,
            " I on the training set, so the outputs follow ", dynamics.dynamics, " and ",
            sp.Eq(eta, 1 / alpha), " converges in one step.  ", L, " weight layers, hidden width ", M,
            ", one output for K-FAC and unit-wise NGD; ", gamma, " = P(φ′(u) ≠ 0) (1/2 for ReLU).")),
        Listing('import derive\n\n'
                'a = derive.ngd_alpha("kfac", depth=4, samples=20)\n'
                'op = derive.ngd.function_space_operator("relu", 2.0, 0.1, 4, width=200, samples=20,\n'
                '                                        method="kfac", seed=0)\n'
                'a.value, op.alpha, op.spread'),
        Heading(text("The constant ", alpha, " of each approximation")),
        _table(),
        Equation(sp.Eq(one_T_one, ngd_alpha("block_tridiagonal", depth=L).value)),
        Checks(tuple(_alpha_checks(widths[1]))),
        Heading("Isotropy at finite width"), iso_figure, Checks((iso_check,)),
        Heading("Training, and where the approximations differ"), train_figure, Checks(tuple(train_checks)),
        Paragraph("All the isotropic approximations fit the training set in one step, yet they converge to "
                  "different functions on unseen inputs: each to its own kernel regression."),
        test_table,
    ]
    return Section("Natural gradient in the NTK regime", tuple(blocks))
