"""Report section: free probability — the spectrum of JJᵀ for the input–output Jacobian
(Pennington, Schoenholz & Ganguli 2017, 2018) and the CK/NTK spectra of Fan & Wang (2020).

S_{JJᵀ} of the built-ins as formulas; theory densities over the pooled eigenvalue histograms of
networks drawn by :mod:`derive.simulate` (checks: Kolmogorov–Smirnov distance against its
threshold at level 1e-3); the relative spread σ²/m₁² against depth (theory lines, networks as
points; checks in Student-t standard errors); the CK and NTK spectra of a one-hidden-layer network
of the normalised ReLU over the eigenvalues of actual kernels.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import sympy as sp

from derive.freeprob import MarchenkoPastur, ck_spectrum, jacobian_spectrum, ntk_spectrum
from derive.freeprob.engine import critical_point
from derive.freeprob.sampling import jacobian_eigenvalues, kernel_eigenvalues, ks_distance
from derive.gaussian.blocks import single_threaded_blas
from derive.report import Check, Checks, Heading, Listing, Paragraph, Section, Table, figures, text

#: (activation, σ_b², weights) of the density figure; σ_w² on the critical line
CASES = (("relu", 0, "gaussian"), ("hard_tanh", sp.Rational(1, 20), "orthogonal"), ("linear", 0, "gaussian"))
ALPHA = 1e-3


@functools.cache
def _critical(act: str, sigma_b2) -> tuple:
    """(σ_w², q*) on the critical line, once per activation (the section needs 17 spectra of 3)."""
    return critical_point(act, float(sigma_b2))


def _spectrum(act: str, sigma_b2, depth: int = 1, weights: str = "gaussian"):
    sigma_w2, q = _critical(act, sigma_b2)
    return jacobian_spectrum(act, sigma_w2, sigma_b2, depth, weights, q_star=q)


def _threshold(n: int) -> float:
    """Kolmogorov's threshold √(ln(2/α)/(2n)) for n i.i.d. samples (conservative for eigenvalues)."""
    return math.sqrt(math.log(2 / ALPHA) / (2 * n))


def _table(depth: int) -> Table:
    rows = []
    for act, sb, _ in CASES:
        for weights in ("gaussian", "orthogonal"):
            J = _spectrum(act, sb, depth, weights)
            rows.append((act, weights, text(sp.Float(float(J.sigma_w2), 6)), text(J.S),
                         text(sp.Float(float(J.isometry.slope), 4)), J.isometry.verdict))
    header = ("φ", "W", "σ_w²", text("S_{JJᵀ}(w), L = ", depth), "κ", "verdict")
    return Table(header, tuple(rows))


def _density_figure(figdir: Path, depth: int, width: int, seeds: int) -> tuple:
    checks = []
    with figures.print_style():
        fig, axes = figures.new(len(CASES), height=2.4)
        for ax, (act, sb, weights) in zip(axes, CASES, strict=True):
            J = _spectrum(act, sb, depth, weights)
            pooled = np.sort(np.concatenate([jacobian_eigenvalues(J, width, s) for s in range(seeds)]))
            upper = J.max_eigenvalue
            grid = np.linspace(0, upper, 400)[1:]
            ax.hist(pooled[pooled > 1e-9 * upper], bins=40, range=(0, upper), density=False, color="0.8",
                    weights=np.full((pooled > 1e-9 * upper).sum(), 40 / (upper * pooled.size)))
            ax.plot(grid, J.density(grid), "C0-")
            top = np.nanpercentile(J.density(grid), 95)
            ax.set(xlabel=r"$\lambda$", title=f"{act}, {weights}", ylim=(0, 1.3 * top))
            ks = ks_distance(J.law, pooled)
            checks.append(Check(f"{act}, {weights} weights, L = {depth}: KS distance of {pooled.size} pooled "
                                f"eigenvalues (width {width}) vs its threshold at α = {ALPHA:g}",
                                float(ks), _threshold(pooled.size)))
        figure = figures.save(fig, figdir, "freeprob_densities", text(
            f"Density of JJᵀ at depth {depth} on the critical line (curves, Stieltjes inversion) over the "
            f"pooled eigenvalues of {seeds} networks of width {width} (histograms; the atom at 0 of "
            "ReLU is not drawn)."))
    return figure, checks


def _spread_figure(figdir: Path, width: int, seeds: int) -> tuple:
    depths = np.arange(1, 9)
    sampled = (4,)
    t = 12.924  # two-sided 1e-3 quantile of Student's t with 3 degrees of freedom
    checks = []
    with figures.print_style():
        fig, (ax,) = figures.new(1, width=5.0, height=3.0)
        for i, (act, sb, _) in enumerate(CASES):
            for weights, style in (("gaussian", "-"), ("orthogonal", "--")):
                slope = float(_spectrum(act, sb, weights=weights).isometry.slope)
                ax.plot(depths, slope * depths, style, color=f"C{i}", label=f"{act}, {weights}")
        for act, sb, weights in (("relu", 0, "gaussian"), ("hard_tanh", sp.Rational(1, 20), "orthogonal")):
            for depth in sampled:
                J = _spectrum(act, sb, depth, weights)
                values = np.array([e.var() / e.mean() ** 2 for e in
                                   (jacobian_eigenvalues(J, width, s) for s in range(max(seeds, 4)))])
                ax.plot([depth], [values.mean()], "ko", ms=3)
                stderr = values.std(ddof=1) / math.sqrt(values.size)
                checks.append(Check(f"{act}, {weights}, L = {depth}: σ²/m₁² of {values.size} networks "
                                    f"(width {width}) vs theory, in standard errors (3 dof)",
                                    float(abs(values.mean() - float(J.isometry.spread)) / stderr), t))
        ax.set(xlabel="depth L", ylabel=r"$\sigma^2_{JJ^\top}/m_1^2$", yscale="log")
        figures.legend_below(ax, ncols=3)
        figure = figures.save(fig, figdir, "freeprob_spread", text(
            "Relative spread of the spectrum of JJᵀ against depth: κL (lines; solid Gaussian, dashed "
            "orthogonal weights), networks as points."))
    return figure, checks


def _kernel_figure(figdir: Path, n: int, seeds: int) -> tuple:
    mu0 = MarchenkoPastur(sp.Rational(1, 2))
    laws = {"CK": ck_spectrum("relu", mu0, ["1/2"], normalise=True),
            "NTK": ntk_spectrum("relu", mu0, ["1/2"], normalise=True)}
    eig = {"CK": [], "NTK": []}
    for seed in range(seeds):
        x0 = np.random.default_rng([5, seed]).standard_normal((2 * n, n))
        x0 /= np.linalg.norm(x0, axis=0)
        ck, ntk = kernel_eigenvalues(laws["CK"], x0, seed)
        eig["CK"].append(ck)
        eig["NTK"].append(ntk)
    checks = []
    with figures.print_style():
        fig, axes = figures.new(2, height=2.4)
        for ax, (kind, law) in zip(axes, laws.items(), strict=True):
            pooled = np.sort(np.concatenate(eig[kind]))
            lo, hi = law.support().bands[0][0], law.support().upper
            grid = np.linspace(lo, hi, 300)
            ax.hist(pooled, bins=40, density=True, color="0.8")
            ax.plot(grid, law.density(grid), "C0-")
            ax.set(xlabel=r"$\lambda$", title=f"{kind}, normalised ReLU, L = 1")
            checks.append(Check(f"{kind}: KS distance of {pooled.size} pooled eigenvalues (n = {n}) vs its "
                                f"threshold at α = {ALPHA:g}", float(ks_distance(law, pooled)),
                                _threshold(pooled.size)))
        shift, scale = laws["CK"].normalisation
        figure = figures.save(fig, figdir, "freeprob_kernels", text(
            "Fan & Wang's limiting CK and NTK spectra (curves) over the eigenvalues of the kernels of "
            f"{seeds} networks (histograms), n = {n} samples, d₀ = d₁ = 2n; σ = (ReLU − {float(shift):.6f})/"
            f"{float(scale):.6f} (the normalisation applied)."))
    return figure, checks


@single_threaded_blas
def section(figdir: Path, depth: int = 3, width: int = 300, seeds: int = 2, samples: int = 400) -> Section:
    """The free-probability results; `width`, `seeds`, `samples` make it cheaper for tests.  BLAS
    runs single-threaded: the report builds its sections in parallel processes, one per core, and
    the QR and eigendecompositions of the simulated networks took 10x longer with two threads
    each spinning against the other processes."""
    figdir = Path(figdir)
    density_figure, density_checks = _density_figure(figdir, depth, width, seeds)
    spread_figure, spread_checks = _spread_figure(figdir, width, seeds)
    kernel_figure, kernel_checks = _kernel_figure(figdir, samples, seeds)
    blocks = [
        Paragraph(text(
            "The input–output Jacobian J = D_L W_L ⋯ D_1 W_1 at the fixed point q*: the factors are "
            "asymptotically free, so S_{JJᵀ} = S_{WWᵀ}^L S_{D²}^L, with S_{WWᵀ} = 1/(σ_w²(1 + w)) for "
            "Gaussian and 1/σ_w² for orthogonal weights.  The relative spread is σ²/m₁² = κL; κ = 0 is "
            "dynamical isometry.")),
        Listing('import derive\n\n'
                'J = derive.jacobian_spectrum("relu", depth=3, weights="orthogonal")\n'
                'J.S, J.mean, J.variance, J.isometry.verdict'),
        Heading(text("S-transforms of the built-ins on the critical line")), _table(depth),
        Heading("Densities against networks"), density_figure, Checks(tuple(density_checks)),
        Heading("Spread against depth"), spread_figure, Checks(tuple(spread_checks)),
        Heading("Conjugate kernel and NTK (Fan & Wang 2020)"), kernel_figure, Checks(tuple(kernel_checks)),
    ]
    return Section("Free probability and dynamical isometry", tuple(blocks))

