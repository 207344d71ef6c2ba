"""Report section: recursions of example architectures, and their NNGP/NTK against simulations.

Three built-in examples -- a ReLU network, an erf network, and a residual tanh network with
dropout and LayerNorm -- each with the layer-to-layer recursion derived by
:meth:`derive.layers.Layer.recursion` as a LaTeX ``aligned`` block.  Checks: the ReLU Gram
against the arc-cosine recursion written out in numpy, the erf dual kernel against its
defining integral at 30 digits, the tanh (numerical) Gram against per-entry quadrature, q = 1
after LayerNorm, and the NNGP/NTK of the residual network against an ensemble of finite random
networks (the figure), in standard errors over seeds.
"""

from __future__ import annotations

from pathlib import Path

import mpmath as mp
import numpy as np
import sympy as sp

from derive.activations import activation
from derive.gaussian import GaussianExpectation
from derive.gaussian.moments import moments_of
from derive.layers import Dense, Dropout, LayerNorm, Residual, repeat, serial
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
from derive.simulate import kernels as simulate
from derive.symbols import alpha, c, l, q, q1, q2, rho, sigma_b2, sigma_w2, x

EXAMPLES = {
    "ReLU network": serial("relu", Dense(sigma_w2, sigma_b2)),
    "erf network": serial("erf", Dense(sigma_w2, sigma_b2)),
    "residual tanh network with dropout and LayerNorm":
        serial(Residual(serial("tanh", Dropout(rho), Dense(sigma_w2, sigma_b2)), alpha), LayerNorm()),
}


def residual_network(depth: int = 3, keep: float = 0.8, a: float = 0.7, w: float = 1.5, b: float = 0.05):
    """The residual example with numbers: an input layer, `depth` blocks, a read-out."""
    block = serial(Residual(serial("tanh", Dropout(keep), Dense(w, b)), a), LayerNorm())
    return serial(Dense(1.0, 0.1), LayerNorm(), repeat(block, depth), Dense(1.0, 0.0))


def _relu_check(X) -> Check:
    w, b, depth = 2.0, 0.1, 6
    K = w * X @ X.T / X.shape[1] + b
    T = K.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(K))
        cos = np.clip(K / np.outer(d, d), -1, 1)
        np.fill_diagonal(cos, 1.0)
        theta = np.arccos(cos)
        K = w * np.outer(d, d) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi) + b
        T = K + w * (np.pi - theta) / (2 * np.pi) * T
    ours = serial(Dense(w, b), repeat(serial("relu", Dense(w, b)), depth)).kernels(X)
    error = max(float(np.max(np.abs(np.asarray(ours.nngp) / K - 1))),
                float(np.max(np.abs(np.asarray(ours.ntk) / T - 1))))
    return Check("ReLU NNGP/NTK, depth 6, vs the arc-cosine recursion in numpy (relative)", error, 1e-13)


def _erf_check() -> Check:
    """E erf(u) erf(v) = ∫Dz erf(√q₁ z) erf(c√q₂ z / √(1 + 2 q₂(1 − c²))) (inner integral in closed
    form), 1-D mpmath quadrature at 40 digits, against the arcsine closed form."""
    a, b, cc = sp.Rational(7, 10), sp.Rational(13, 10), sp.Rational(3, 5)
    form = moments_of(activation("erf")).C.expr
    with mp.workdps(40):
        A, B, C = (mp.mpf(sp.Float(v, 50)) for v in (a, b, cc))
        inner = lambda z: mp.erf(C * mp.sqrt(B) * z / mp.sqrt(1 + 2 * B * (1 - C**2)))  # noqa: E731
        ref = mp.quad(lambda z: mp.erf(mp.sqrt(A) * z) * inner(z) * mp.npdf(z), [-mp.inf, 0, mp.inf])
        value = mp.mpf(sp.Float(form.subs({q1: a, q2: b, c: cc}).evalf(40), 40)._mpf_)
        error = float(abs(value - ref) / abs(ref))
    return Check("erf arcsine kernel vs its defining integral (mpmath, 40 digits)", error, 1e-30)


def _tanh_check() -> Check:
    X = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [1.0, 1e-3, 0.5]])
    w, b, depth = 1.5, 0.05, 4
    h, half = 0.04, 12.0
    z = np.arange(-half, half + h / 2, h)
    wz = h * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    K = w * X @ X.T / 3 + b
    for _ in range(depth):
        d = np.diag(K).copy()
        new = np.empty_like(K)
        for i in range(3):
            for j in range(3):
                cc = min(K[i, j] / np.sqrt(d[i] * d[j]), 1.0)
                v = np.tanh(np.sqrt(d[j]) * (cc * z[:, None] + np.sqrt(1 - cc * cc) * z[None, :]))
                new[i, j] = wz @ (np.tanh(np.sqrt(d[i]) * z)[:, None] * v) @ wz
        K = w * new + b
    ours = np.asarray(serial(Dense(w, b), repeat(serial("tanh", Dense(w, b)), depth)).nngp(X))
    error = float(np.max(np.abs(ours - K) / np.sqrt(np.outer(np.diag(K), np.diag(K)))))
    return Check("tanh NNGP (Mehler-Hermite), depth 4, vs per-entry 2-D trapezoid quadrature", error, 1e-11)


def _simulation(X, figdir: Path) -> tuple[list[Check], Figure]:
    net = residual_network()
    theory = net.kernels(X)
    emp = simulate(net, X, width=1000, seeds=range(10))
    checks = [Check(f"residual net: empirical {name} (width 1000, 10 seeds), largest z-score over entries",
                    float(np.max(np.abs(emp.zscores(key, value)))), 6.0)
              for name, key, value in (("NNGP", "nngp", theory.nngp), ("NTK", "ntk", theory.ntk))]
    before_readout = np.diag(np.asarray(serial(*net.layers[:-1]).nngp(X)))
    checks.append(Check(text("LayerNorm fixes ", sp.Eq(q, 1), ": largest deviation of diag ",
                             sp.Symbol("Sigma"), " from 1 before the read-out"),
                        float(np.max(np.abs(before_readout - 1))), 1e-14))
    with figures.print_style():
        fig, axes = figures.new(2, height=3.0)
        for ax, key, gram in ((axes[0], "nngp", theory.nngp), (axes[1], "ntk", theory.ntk)):
            th, mean, sem = np.asarray(gram).ravel(), emp.mean(key).ravel(), emp.sem(key).ravel()
            diag = np.eye(len(X), dtype=bool).ravel()
            for mask, label in ((diag, "$x = x'$ (same dropout mask)"), (~diag, r"$x \neq x'$")):
                ax.errorbar(th[mask], mean[mask], yerr=2 * sem[mask], fmt="o", ms=4, label=label)
            lo, hi = th.min(), th.max()
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            ax.set_xlabel(f"{key.upper()} (derive)")
            ax.set_ylabel("finite networks (mean ± 2 s.e.)")
            ax.set_title(key.upper())
        figures.figure_legend(fig, loc="outside lower center", ncols=2)
        fig.suptitle("Residual tanh + dropout(0.8) + LayerNorm, 3 blocks")
        figure = figures.save(fig, figdir, "kernels_residual_ntk", text(
            "NNGP and NTK of the residual network (3 blocks, keep probability 0.8) against 10 finite random "
            "networks of width 1000: entries of the Gram matrices of 6 inputs, bars ± 2 standard errors."))
    return checks, figure


def section(figdir: Path) -> Section:
    """The recursions of the examples and their kernels against references and simulations."""
    figdir = Path(figdir)
    X = np.random.default_rng(7).standard_normal((6, 40))
    relu, erf, tanh = _relu_check(X), _erf_check(), _tanh_check()
    sim_checks, figure = _simulation(X, figdir)
    blocks = [Paragraph(text(
        "Each architecture is one block of the network, mapping the state of two inputs at layer ", l,
        " (variance ", q, ", correlation ", c, ", NTK entries ", sp.Symbol("Theta_11"), ", ",
        sp.Symbol("Theta_12"), ", backward factor ", sp.Symbol("chi"), ") to layer ", l + 1,
        "; named integrals are Gaussian expectations ", GaussianExpectation(sp.Function("f")(x), (x,), (q,)),
        ".  NTK parametrisation as neural-tangents' stax; dropout is inverted with keep probability ", rho,
        ", so the diagonal (one input, one mask) is divided by ", rho, " and the pairs are not.")),
        Listing('from derive.layers import Dense, serial\nfrom derive.symbols import sigma_b2, sigma_w2\n\n'
                'serial("relu", Dense(sigma_w2, sigma_b2)).recursion()')]
    after = {"ReLU network": [Checks((relu,))], "erf network": [Checks((erf,))],
             "residual tanh network with dropout and LayerNorm": [figure, Checks(tuple(sim_checks))]}
    for title, block in EXAMPLES.items():
        blocks += [Heading(title), Paragraph(text("The block ", Code(repr(block)), ":")),
                   Equation(block.recursion()), *after[title]]
    blocks += [Heading("tanh network: the numerical Gram"), Checks((tanh,))]
    return Section("Architectures: recursions, NNGP and NTK", tuple(blocks))
