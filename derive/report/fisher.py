"""Report section: the Fisher information of random networks, the learning rate it allows, and
batch norm (Karakida, Akaho & Amari 2019, AISTATS and NeurIPS).

For the built-in activations: κ₁, κ₂ (the closed form in the depth where it exists), λ_max and
η_c = 2/λ_max as formulas and numbers; the derivation for ReLU as an ``aligned`` block.  Checks:
κ₁'s closed form against its recursion by 30-digit quadrature, the theory's λ_max against actual
networks (z-score over seeds), gradient descent near a minimum on both sides of η_c (the
learning-rate figure), and batch norm (the BN figure): the last-layer leading term bounds the
networks' λ_max from below, the middle-layer bound holds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import sympy as sp

from derive.fisher import (
    BatchNorm,
    FisherAccuracyWarning,
    empirical,
    fisher_spectrum,
    learning_rate_diagram,
    middle_bound,
)
from derive.fisher.formulas import kappa_closed_form
from derive.fisher.notation import L, M, T, eta_c, kappa1, kappa2, lambda_max, rho
from derive.layers import Dense, serial
from derive.report import Check, Checks, Equation, Heading, Listing, Paragraph, Section, Table, figures, text
from derive.report.document import number
from derive.symbols import sigma_b2, sigma_w2

#: (σ_w², σ_b²) per built-in of the table
PARAMETERS = {"relu": (2.0, 0.1), "tanh": (1.5, 0.1), "erf": (1.5, 0.1), "linear": (1.0, 0.1)}
DEPTH, WIDTH, SAMPLES = 4, 1024, 256


def _closed_form_check() -> Check:
    """κ₁ of ReLU at (3/2, 1/5), L = 5: closed form against the recursion with every ∫Dz by mp.quad."""
    closed = kappa_closed_form("relu").kappa1.subs({sigma_w2: sp.Rational(3, 2), sigma_b2: sp.Rational(1, 5),
                                                    L: 5})
    with mp.workdps(40):
        w, b = mp.mpf(3) / 2, mp.mpf(1) / 5

        def gauss(f, q):
            return mp.quad(lambda z: f(mp.sqrt(q) * z) * mp.npdf(z), [-mp.inf, 0, mp.inf])

        q_hat, factors = [mp.mpf(1)], []
        for _ in range(4):
            q = w * q_hat[-1] + b
            q_hat.append(gauss(lambda u: max(u, 0) ** 2, q))
            factors.append(w * gauss(lambda u: 1 if u > 0 else 0, q))
        reference = mp.fsum(q_hat[l] * mp.fprod(factors[l:]) for l in range(5)) / 4
        error = abs(mp.mpf(str(sp.N(closed, 40))) - reference) / reference
    return Check(text("ReLU ", kappa1, " in closed form in ", L,
                      " vs its recursion by quadrature (40 digits)"), float(error), 1e-30)


def _table(activations) -> tuple[Table, list]:
    rows, specs = [], []
    for name in activations:
        w, b = PARAMETERS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FisherAccuracyWarning)
            spec = fisher_spectrum(name, w, b, DEPTH, width=WIDTH, samples=SAMPLES)
        closed = kappa_closed_form(name)
        form = closed.kappa1 if closed is not None else "(recursion; no closed form in L)"
        rows.append((name, text(sp.Tuple(sp.Float(w, 3), sp.Float(b, 3))), text(form), number(spec.kappa1, 6),
                     number(spec.kappa2, 6), number(spec.lambda_max, 6), number(spec.learning_rate_bound, 4)))
        specs.append((name, w, b, spec))
    header = ("φ", text("(", sigma_w2, ", ", sigma_b2, ")"), text(kappa1, " in closed form"), text(kappa1),
              text(kappa2), text(lambda_max), text(eta_c))
    return Table(header, tuple(rows)), specs


def _network_checks(specs, width: int, seeds: int) -> list[Check]:
    checks = []
    for name, w, b, _ in specs:
        theory = fisher_spectrum(name, w, b, DEPTH, width=width, samples=50)
        values = np.array([empirical(name, w, b, DEPTH, width=width, samples=50, seed=s).lambda_max
                           for s in range(seeds)])
        z = abs(values.mean() - theory.lambda_max) / (values.std(ddof=1) / np.sqrt(seeds))
        checks.append(Check(text(name, ": ", lambda_max, f" of {seeds} networks (M = {width}, T = 50) vs "
                                 "theory, in standard errors"), float(z), 5.0))
    return checks


def _learning_rate_figure(figdir: Path, widths) -> tuple:
    etas = np.geomspace(2e-4, 5e-2, 12)
    diagram = learning_rate_diagram("relu", 2.0, 0.1, DEPTH, widths=widths, etas=etas, samples=64, steps=20,
                                    near_minimum=1e-3)
    wrong = 0  # a network's own λ_max scatters by up to ≈ 20 % around the theory at M ≥ 100
    for row, bound in zip(diagram.exploded, diagram.eta_c, strict=True):
        wrong += int(np.sum(row[etas < 0.7 * bound]) + np.sum(~row[etas > 1.4 * bound]))
    with figures.print_style():
        fig, (ax,) = figures.new(1, width=5.0, height=3.2)
        diagram.plot(ax)
        figure = figures.save(fig, figdir, "fisher_learning_rate", text(
            "Gradient descent on ReLU networks (L = 4, T = 64) started near a global minimum: loss after "
            "20 steps over its start (grey: exploded) on a grid of width and learning rate, with the "
            "theory line ",
            sp.Eq(eta_c, 2 / lambda_max), "."))
    return figure, Check(text("runs on the wrong side of ", eta_c, " (below 0.7, above 1.4 of it; count)"),
                         wrong, 0.5)


def _batch_norm_figure(figdir: Path, widths, seeds: int) -> tuple:
    samples = 50
    rows = {"plain": [], "last": [], "middle": []}
    theory = {"plain": [], "leading": [], "estimate": [], "bound": []}
    block = serial(BatchNorm(), "relu", Dense(2.0, 0.1))
    for width in widths:
        plain = fisher_spectrum("relu", 2.0, 0.1, DEPTH, width=width, samples=samples)
        bn = fisher_spectrum("relu", 2.0, 0.1, DEPTH, width=width, samples=samples,
                             last_layer="mean_subtracted")
        theory["plain"].append(plain.lambda_max)
        theory["leading"].append(bn.mean_subtraction.leading)
        theory["estimate"].append(bn.mean_subtraction.estimate)
        theory["bound"].append(middle_bound("relu", width=width, samples=samples).lambda_max_lower)
        for key, kwargs in (("plain", {}), ("last", {"last_layer": "mean_subtracted"})):
            rows[key].append([empirical("relu", 2.0, 0.1, DEPTH, width=width, samples=samples, seed=s,
                                        **kwargs).lambda_max for s in range(seeds)])
        rows["middle"].append([empirical(block, depth=DEPTH, width=width, samples=samples, seed=s).lambda_max
                               for s in range(seeds)])
    rows = {k: np.array(v) for k, v in rows.items()}
    with figures.print_style():
        fig, (ax,) = figures.new(1, width=5.0, height=3.2)
        for key, label, marker in (("plain", "no normalisation", "o"),
                                   ("middle", "batch norm in the middle", "s"),
                                   ("last", "batch norm in the last layer", "^")):
            ax.plot(widths, rows[key].mean(axis=1), marker, label=f"{label} (networks)")
        ax.plot(widths, theory["plain"], "-", color="C0", label=r"$\alpha M((T-1)\kappa_2 + \kappa_1)/T$")
        ax.plot(widths, theory["bound"], "--", color="C1", label="middle-layer lower bound")
        ax.plot(widths, theory["leading"], "-", color="C2",
                label=r"$\rho\alpha(\kappa_1-\kappa_2)$ (leading)")
        ax.plot(widths, theory["estimate"], ":", color="C2", label="+ input-overlap correction")
        ax.set(xscale="log", yscale="log", xlabel="width $M$", ylabel=r"$\lambda_{\max}$",
               title="ReLU, L = 4, T = 50")
        figures.legend_below(ax)
        figure = figures.save(fig, figdir, "fisher_batch_norm", text(
            "Largest FIM eigenvalue of ReLU networks without normalisation, with batch norm in the middle "
            "layers and with batch norm (mean subtraction) in the last layer: networks (mean over seeds) "
            "and theory."))
    checks = [Check(text("last-layer batch norm: networks below ", rho, "α(κ₁ − κ₂) (count)"),
                    int(np.sum(rows["last"] < np.array(theory["leading"])[:, None])), 0.5),
              Check("middle-layer batch norm: networks below the lower bound (count)",
                    int(np.sum(rows["middle"] < np.array(theory["bound"])[:, None])), 0.5)]
    return figure, checks


def section(figdir: Path, activations=("relu", "tanh", "erf", "linear"), widths=(100, 200, 400, 800),
            seeds: int = 6) -> Section:
    """The Fisher-information results; `activations`, `widths`, `seeds` make it cheaper for tests."""
    figdir = Path(figdir)
    table, specs = _table(activations)
    relu = fisher_spectrum("relu", 2.0, 0.1, DEPTH, width=WIDTH, samples=SAMPLES)
    lr_figure, lr_check = _learning_rate_figure(figdir, widths)
    with warnings.catch_warnings():  # the lower-bound warning of last-layer batch norm: the figure shows it
        warnings.simplefilter("ignore", FisherAccuracyWarning)
        bn_figure, bn_checks = _batch_norm_figure(figdir, widths, seeds)
    blocks = [
        Paragraph(text(
            "A network of ", L, " weight layers of width ", M, " (standard parametrisation: the FIM of W "
            "and b as drawn, W_ij ~ N(0, σ_w²/M)), C linear outputs and ", T, " Gaussian inputs.  The FIM's "
            "nonzero eigenvalues are those of the CT × CT Gram of the output gradients; to leading order "
            "in ", M,
            " they are set by the order parameters κ₁ and κ₂, and gradient descent is stable near a minimum "
            "iff the learning rate is below ", sp.Eq(eta_c, 2 / lambda_max), ".")),
        Listing('import derive\n\n'
                'spec = derive.fisher_spectrum("relu", 2.0, 0.1, 6, width=1024, samples=256)\n'
                'spec.lambda_max, spec.learning_rate_bound'),
        Heading("The derivation (ReLU)"), Equation(relu.formulas), Checks((_closed_form_check(),)),
        Heading(text("Built-in activations at ", L, f" = {DEPTH}, ", M, f" = {WIDTH}, ", T, f" = {SAMPLES}")),
        table, Checks(tuple(_network_checks(specs, widths[-1], seeds))),
        Heading("The learning-rate boundary"), lr_figure, Checks((lr_check,)),
        Heading("Batch normalisation"),
        Paragraph(text(
            "With the outputs centred over the batch the outlier direction is removed: the leading term ",
            rho, "α(κ₁ − κ₂), ", sp.Eq(rho, M / T), ", is the mean nonzero eigenvalue, so a lower bound on ",
            lambda_max, "; the inputs' random overlaps add a derived correction growing like √ρ, and the "
            "finite-width feature fluctuations a further excess of the same order that is not derived.  "
            "Batch norm in the middle layers leaves an outlier of order M.")),
        bn_figure, Checks(tuple(bn_checks)),
    ]
    return Section("Fisher information and the learning rate", tuple(blocks))
