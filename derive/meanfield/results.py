"""Result objects of :mod:`derive.meanfield`: fixed points, depth scales, critical line and
points, phase diagrams, forward trajectories and backward gradient ratios.

Each is a frozen dataclass; those holding formulas render as LaTeX (``_latex``/``_repr_latex_``),
those holding arrays plot themselves (``.plot()``, matplotlib), and every numeric one carries
``method``: how its numbers were obtained and their estimated error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import mpmath as mp
import numpy as np
import sympy as sp

from derive.gaussian import GaussianExpectation
from derive.printing import text
from derive.symbols import q, q_star
from derive.symbols import sigma_b2 as SIGMA_B2
from derive.symbols import sigma_w2 as SIGMA_W2


class Regime(IntEnum):
    """How the iterated maps behave at a point (σ_w², σ_b²).

    ORDERED (χ₁ < 1, c* = 1), CHAOTIC (χ₁ > 1, c* < 1), CRITICAL (χ₁ = 1), Q_INFINITE (the variance
    grows without bound), Q_ZERO (it decays to zero), MARGINAL (q* = 0 approached with χ₁ → 1, as
    tanh at (1, 0): no finite fixed point, and gradients neither grow nor decay at the limit)."""

    ORDERED = 0
    CHAOTIC = 1
    CRITICAL = 2
    Q_INFINITE = 3
    Q_ZERO = 4
    MARGINAL = 5


def latex_of(obj) -> str:
    from derive.printing import latex

    return latex(obj)


def xi(chi):
    """−1/log χ, with ξ = ∞ where χ = 1 (and NaN where χ is)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(chi)
        return np.where(log == 0, np.inf, -1.0 / log)


def output(values, shape):
    """An array of `shape`, or a single number (float, or mpf for object arrays) for shape ()."""
    values = np.asarray(values).reshape(shape)
    if shape != ():
        return values
    return values.item() if values.dtype == object else float(values)



@dataclass(frozen=True)
class FixedPoint:
    """The fixed point of the mean-field maps at each (σ_w², σ_b²) and how it was obtained.

    ``regime`` holds :class:`Regime` codes: where q* is inf (q grows without bound) or 0 (q
    decays to zero), c*, χ₁, χ_q, χ_c are NaN."""

    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi1: np.ndarray
    chi_q: np.ndarray
    chi_c: np.ndarray
    regime: np.ndarray
    method: str
    dps: int | None = None

    def reshaped(self, shape) -> FixedPoint:
        values = {}
        for name in ("sigma_w2", "sigma_b2", "q_star", "c_star", "chi1", "chi_q", "chi_c", "regime"):
            v = np.asarray(getattr(self, name)).reshape(shape)
            values[name] = v.item() if shape == () else v
        if shape == ():
            values["regime"] = Regime(values["regime"])
        return FixedPoint(**values, method=self.method, dps=self.dps)

    @property
    def regime_names(self):
        """The regimes as names ('ORDERED', 'CHAOTIC', ...)."""
        if np.ndim(self.regime) == 0:
            return Regime(self.regime).name
        return np.vectorize(lambda r: Regime(r).name)(self.regime)


@dataclass(frozen=True)
class DepthScales:
    """ξ_q = −1/log χ_q, ξ_c = −1/log χ_c, ξ_∇ = −1/log χ₁ (Schoenholz et al. 2017, eqs. 7-13).

    ξ_c = ∞ on the critical line; ξ_∇ < 0 in the chaotic phase means gradients *grow*
    over |ξ_∇| layers instead of decaying.  Where they are NaN, `reason` says why (no finite
    fixed point: the regime)."""

    xi_q: object
    xi_c: object
    xi_grad: object
    chi_q: object
    chi_c: object
    chi1: object
    method: str
    regime: object = None

    @property
    def reason(self) -> str:
        """Why the depth scales are NaN (a scalar point), or the empty string."""
        if np.ndim(self.regime) or self.regime is None:
            return ""
        return {Regime.Q_INFINITE: "q grows without bound (q* = ∞): there is no fixed point to relax to",
                Regime.Q_ZERO: "q decays to 0 and χ₁ < 1 there: the signal vanishes, no fixed point q* > 0",
                Regime.MARGINAL: "q decays to 0 with χ₁ → 1: the marginal point, ξ_c = ξ_∇ = ∞",
                }.get(Regime(self.regime), "")

    @classmethod
    def of(cls, fp: FixedPoint) -> DepthScales:
        if fp.dps is not None:
            with mp.workdps(fp.dps):
                length = np.vectorize(lambda x: mp.inf if x == 1 else -1 / mp.log(x), otypes=[object])
                values = [length(np.asarray(v, dtype=object)) for v in (fp.chi_q, fp.chi_c, fp.chi1)]
                values = [v.item() if v.ndim == 0 else v for v in values]
        else:
            values = [output(xi(v), np.shape(v)) for v in (fp.chi_q, fp.chi_c, fp.chi1)]
        return cls(*values, fp.chi_q, fp.chi_c, fp.chi1, fp.method, fp.regime)

    def _latex(self, printer) -> str:
        def value(v):
            return f" = {float(v):.6g}" if np.ndim(v) == 0 else ""

        return (r"\begin{aligned}\xi_q &= -1/\log\chi_q" + value(self.xi_q)
                + r" \\ \xi_c &= -1/\log\chi_c" + value(self.xi_c)
                + r" \\ \xi_\nabla &= -1/\log\chi_1" + value(self.xi_grad) + r"\end{aligned}")

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {latex_of(self)}$"


@dataclass(frozen=True)
class CriticalPoint:
    """σ_w² and q* on the critical line at given σ_b² (NaN where the line does not reach)."""

    sigma_w2: object
    sigma_b2: object
    q_star: object
    method: str


@dataclass(frozen=True)
class CriticalLine:
    """The χ₁ = 1 line of an activation in the best closed form that exists.

    ``kind`` is "point" (χ₁ does not depend on q and a fixed point exists on χ₁ = 1 only at
    σ_b² = 0: linear, ReLU), "explicit" (σ_b² as a closed-form function of σ_w², e.g. erf),
    or "parametric" (σ_w²(q*), σ_b²(q*), closed form or with integrals evaluated numerically).
    """

    activation: str
    kind: str
    sigma_w2_of_q: sp.Expr
    sigma_b2_of_q: sp.Expr
    equation: sp.Eq | None
    point: tuple | None
    explanation: str
    method: str
    points: Callable = field(repr=False, compare=False)  # σ_b² array -> CriticalPoint

    @classmethod
    def of(cls, name: str, V: sp.Expr, D: sp.Expr, points: Callable) -> CriticalLine:
        """The line of the block serial(φ, Dense(σ_w², σ_b²)) from V(q) = E φ², D(q) = E φ′²
        (Schoenholz et al. 2017, eq. 9: σ_w² = 1/D(q*), σ_b² = q* − V(q*)/D(q*))."""
        sw_q = sp.simplify(1 / D)
        sb_q = sp.simplify(q - V / D)
        closed = not (V.has(GaussianExpectation) or D.has(GaussianExpectation))
        method = "closed form" if closed else "parametric form with Gaussian integrals (numerical quadrature)"
        if not D.has(q):
            equation = sp.Eq(SIGMA_W2, sw_q)
            chi1 = text(SIGMA_W2 / sw_q)
            if sb_q == 0:
                words = (f"χ₁ = σ_w² E φ′² = {chi1} does not depend on q, so χ₁ = 1 means σ_w² = "
                         f"{text(sw_q)}; there E φ(u)² = {text(q / sw_q)} and the q-map is q ↦ q + σ_b²: a "
                         f"finite fixed point exists only at σ_b² = 0. The critical set is the point "
                         f"({text(sw_q)}, 0), not a line.")
                return cls(name, "point", sw_q, sb_q, equation, (sw_q, sp.S.Zero), words, method, points)
            words = (f"χ₁ = {chi1} does not depend on q: χ₁ = 1 is the line σ_w² = {text(sw_q)}, at σ_b² = "
                     f"{text(sb_q)}.")
            return cls(name, "explicit", sw_q, sb_q, equation, None, words, method, points)
        equation = _explicit(sw_q, sb_q) if closed else None
        if equation is not None:
            words = "σ_w²(q*) inverts in closed form, so σ_b² is an explicit function of σ_w²."
            return cls(name, "explicit", sw_q, sb_q, equation, None, words, method, points)
        words = ("no closed form for σ_b² in terms of σ_w²; the line is parametrised by the fixed "
                 "point q* > 0" + ("." if closed else " with integrals evaluated by quadrature."))
        words += (" Numerically (critical_point, trace) only points whose fixed point q* is stable "
                  "(χ_q ≤ 1) are kept: the others repel, and the network never reaches them.")
        return cls(name, "parametric", sw_q, sb_q, None, None, words, method, points)

    @classmethod
    def implicit(cls, name: str, chi1: sp.Expr, q_map: sp.Expr, points: Callable) -> CriticalLine:
        """The critical surface of a general block: χ₁(q*) = 1 with q* = q-map(q*), no parametric
        form (the block's parameters are solved for numerically, :meth:`MeanField.critical_point`)."""
        words = ("the critical surface of the block: χ₁(q*) = 1 at the fixed point q* = q-map(q*); "
                 "σ_w² is solved for numerically at each σ_b² (the other parameters as given).")
        return cls(name, "implicit", chi1, q_map, sp.Eq(chi1.subs(q, q_star), 1), None, words,
                   "numerical root of χ₁(q*(σ_w², σ_b²)) = 1", points)

    def _latex(self, printer) -> str:
        w, b = printer._print(SIGMA_W2), printer._print(SIGMA_B2)
        if self.kind == "implicit":
            chi1, fixed = (printer._print(e.subs(q, q_star))
                           for e in (self.sigma_w2_of_q, self.sigma_b2_of_q))
            return rf"\begin{{aligned}}\chi_1(q^*) &= {chi1} = 1, \\ q^* &= {fixed}\end{{aligned}}"
        para = (rf"{w}(q^*) &= {printer._print(self.sigma_w2_of_q.subs(q, q_star))}, \\ "
                rf"{b}(q^*) &= {printer._print(self.sigma_b2_of_q.subs(q, q_star))}")
        if self.kind == "point":
            return (rf"\begin{{aligned}}\chi_1 = 1 &\iff {printer._print(self.equation)}, \\ "
                    rf"({w}, {b}) &= ({printer._print(self.point[0])}, {printer._print(self.point[1])})"
                    r"\end{aligned}")
        if self.kind == "explicit" and self.equation is not None and self.equation.lhs == SIGMA_B2:
            return (rf"\begin{{aligned}}{printer._print(self.equation.lhs)} &= "
                    rf"{printer._print(self.equation.rhs)} \\ {para}\end{{aligned}}")
        if self.kind == "explicit":
            return rf"\begin{{aligned}}{printer._print(self.equation)} \\ {para}\end{{aligned}}"
        return rf"\begin{{aligned}}{para}\end{{aligned}}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {latex_of(self)}$"

    def as_dict(self) -> dict:
        """The line as plain data (SymPy expressions as text and LaTeX), e.g. for JSON."""
        return {
            "activation": self.activation, "kind": self.kind, "method": self.method,
            "explanation": self.explanation,
            "equation": None if self.equation is None else str(self.equation),
            "point": None if self.point is None else [str(v) for v in self.point],
            "sigma_w2_of_q": str(self.sigma_w2_of_q), "sigma_b2_of_q": str(self.sigma_b2_of_q),
            "latex": latex_of(self),
        }

    def no_point_message(self, sigma_b2: float) -> str:
        if self.kind == "point":
            return (f"{self.activation}: no critical σ_w² at σ_b² = {sigma_b2}; " + self.explanation)
        if self.kind == "implicit":
            return (f"{self.activation}: no σ_w² in [1e-3, 1e3] with χ₁ = 1 at a finite, stable q* at "
                    f"σ_b² = {sigma_b2}")
        return (f"{self.activation}: the critical line χ₁ = 1 does not reach σ_b² = {sigma_b2} "
                "(no stable q* > 0 with q − V(q)/D(q) = σ_b²)")

    def trace(self, sigma_b2_max: float = 1.0, n: int = 200):
        """(σ_w², σ_b²) arrays along the line for σ_b² in [0, sigma_b2_max] (numerically)."""
        b = np.linspace(0.0, sigma_b2_max, n)
        point = self.points(b)
        return np.asarray(point.sigma_w2, dtype=float), b

    def plot(self, ax=None, sigma_b2_max: float = 1.0):
        """Plot the line in the (σ_w², σ_b²) plane."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        if self.kind == "point":
            ax.plot([float(self.point[0])], [0.0], "ko", label=f"{self.activation}: critical point")
        else:
            w, b = self.trace(sigma_b2_max)
            ax.plot(w, b, label=f"{self.activation}")
        ax.set(xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$", title=r"critical line $\chi_1 = 1$")
        ax.legend(loc="best", fontsize="small")
        return ax


def _explicit(sw_q, sb_q):
    """σ_b² = f(σ_w²) when σ_w²(q) is algebraic and inverts to a single positive branch."""
    if not sw_q.is_algebraic_expr(q):
        return None
    roots = [r for r in sp.solve(sp.Eq(SIGMA_W2, sw_q), q) if r.is_positive is not False]
    if len(roots) != 1:
        return None
    return sp.Eq(SIGMA_B2, sp.simplify(sb_q.subs(q, roots[0])))


@dataclass(frozen=True)
class PhaseDiagram:
    """q*, χ₁, c*, ξ_c on a grid (indexed [i_w, i_b]) and the critical curve σ_w²(σ_b²)."""

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    q_star: np.ndarray
    chi1: np.ndarray
    c_star: np.ndarray
    xi_c: np.ndarray
    regime: np.ndarray
    critical_sigma_w2: np.ndarray
    method: str

    def plot(self, quantities=("xi_c", "c_star"), fig=None, ax=None):
        """The Schoenholz et al. (2017, fig. 1) picture: each quantity as a heat map over
        (σ_w², σ_b²) with the critical line and the phases marked; grey where q* is not finite.
        Draws into `ax` (one axes per quantity: an Axes or a sequence of them), else into `fig`
        (a Figure or SubFigure), else a new figure; returns the figure.  Where the critical line
        does not cross the grid the title says so."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm

        quantities = (quantities,) if isinstance(quantities, str) else tuple(quantities)
        if ax is not None:
            axes = list(np.atleast_1d(ax))
            if len(axes) != len(quantities):
                from derive.errors import DomainError

                raise DomainError(f"give one axes per quantity: {len(quantities)} quantities, "
                                  f"{len(axes)} axes")
            fig = axes[0].figure
        else:
            if fig is None:
                fig = plt.figure(figsize=(4.5 * len(quantities), 3.6), layout="constrained")
            axes = fig.subplots(1, len(quantities), squeeze=False)[0]
        crossing = np.isfinite(self.critical_sigma_w2) & (self.critical_sigma_w2 >= self.sigma_w2[0]) & (
            self.critical_sigma_w2 <= self.sigma_w2[-1])
        extent = (self.sigma_w2[0], self.sigma_w2[-1], self.sigma_b2[0], self.sigma_b2[-1])
        for ax, name in zip(axes, quantities, strict=True):
            data = np.asarray(getattr(self, name), dtype=float).T
            finite = data[np.isfinite(data) & (data > 0)]
            log = name == "xi_c" and finite.size and finite.min() < min(finite.max(), 1e3)
            norm = LogNorm(vmin=finite.min(), vmax=min(finite.max(), 1e3)) if log else None
            image = ax.imshow(data, origin="lower", aspect="auto", extent=extent, norm=norm, cmap="viridis")
            if np.isfinite(data).any() and np.nanmin(data) < np.nanmax(data):
                ax.figure.colorbar(image, ax=ax, label=_LABELS.get(name, name))
            ax.plot(self.critical_sigma_w2, self.sigma_b2, "w-", lw=2, label=r"$\chi_1 = 1$")
            title = f"{self.activation}: {_LABELS.get(name, name)}"
            if not crossing.any():
                title += " (no critical line in range)"
            ax.set(xlim=extent[:2], ylim=extent[2:], xlabel=r"$\sigma_w^2$", ylabel=r"$\sigma_b^2$",
                   title=title, facecolor="0.85")
            for code, label in ((Regime.ORDERED, "ordered"), (Regime.CHAOTIC, "chaotic"),
                                (Regime.Q_INFINITE, "q → ∞"), (Regime.Q_ZERO, "q → 0")):
                iw, ib = np.nonzero(self.regime == code)
                if iw.size > 0.02 * self.regime.size:  # label regions of some size at their median
                    ax.text(np.median(self.sigma_w2[iw]), np.median(self.sigma_b2[ib]), label,
                            ha="center", va="center", color="k" if code >= Regime.Q_INFINITE else "w")
        return fig


_LABELS = {"xi_c": r"$\xi_c$", "c_star": r"$c^*$", "q_star": r"$q^*$", "chi1": r"$\chi_1$"}


@dataclass(frozen=True)
class Trajectory:
    """Forward mean-field iterates: q^l (and c^l) for l = 1..L."""

    q: np.ndarray
    c: np.ndarray | None

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        layers = np.arange(1, self.q.size + 1)
        ax.plot(layers, self.q, "o-", label="$q^l$")
        if self.c is not None:
            ax.plot(layers, self.c, "s-", label="$c^l$")
        ax.set(xlabel="layer $l$")
        ax.legend()
        return ax


@dataclass(frozen=True)
class GradientRatios:
    """Backward mean-field: q̃^l/q̃^L (per-unit squared gradient w.r.t. pre-activations h^l) and
    ‖∇W^l‖²/‖∇W^L‖² (NaN at l = 1, which depends on the input) for l = 1..L, the forward
    variances q^l used, the widths, and ξ_∇ = −1/log χ₁ at the fixed point."""

    q: np.ndarray
    widths: np.ndarray
    delta_sq: np.ndarray
    weight_grad_sq: np.ndarray
    xi_grad: float

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3))
        layers = np.arange(1, self.delta_sq.size + 1)
        ax.semilogy(layers, self.delta_sq, "o-", label=r"$\tilde q^l / \tilde q^L$")
        ax.semilogy(layers, self.weight_grad_sq, "s-", label=r"$\|\nabla W^l\|^2 / \|\nabla W^L\|^2$")
        ax.set(xlabel="layer $l$", title=rf"$\xi_\nabla = {self.xi_grad:.3g}$")
        ax.legend()
        return ax
