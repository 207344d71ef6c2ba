r"""Full-batch gradient descent on actual networks, and the learning-rate diagram of the talk.

Gradient descent on E(θ) = (1/2T) Σ_t ‖f(x_t) − y_t‖² near a minimum θ* moves along the FIM's
eigenvectors as θ − θ* ← (1 − ηλ)(θ − θ*): it converges iff η < η_c = 2/λ_max (LeCun, Kanter &
Solla 1991; Karakida, Akaho & Amari 2019).  For a wide network in the standard
parametrisation, η = O(1/M), so the Jacobian hardly changes over the first steps and the outputs
follow f − y ← (I − ηG/T)(f − y): the loss shrinks below η_c and the outlier mode grows as
|1 − ηλ_max|^n above it.  :func:`train` runs that on a drawn network (the simulator's backward pass
gives ∂E/∂W = Σ_t Δ_tᵀ H_t per Dense layer); :func:`learning_rate_diagram` runs it on a grid of
(width, η) and sets the theory line 2/λ_max(M) of :func:`derive.fisher.fisher_spectrum` over it
("Exploded / Converged").  Inputs: standard Gaussian (the theory's), or scikit-learn's
``load_digits`` (``data="digits"``, the optional extra ``derive[data]``), whose theory line is the
mean-field spectrum on the data (:func:`derive.fisher.theory.mean_field_spectrum`).

>>> run = train("relu", 2.0, 0.1, 3, width=200, samples=20, eta=0.5, relative="theory", steps=5, seed=0)
>>> run.losses.shape, bool(run.converged), run.eta_c > 0
((6,), True, True)
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.fisher.architecture import LAST_LAYERS, architecture, choice
from derive.gaussian.blocks import single_threaded_blas

#: a run whose loss grows past this factor of its start has exploded (it is stopped there)
EXPLODED = 1e6


def _loss_and_delta(f, Y, last_layer: str):
    if last_layer == "mean_subtracted":
        f = f - f.mean(axis=0, keepdims=True)
    residual = f - Y
    T = f.shape[0]
    delta = residual / T
    if last_layer == "mean_subtracted":  # d f̄ / d f = P
        delta = delta - delta.mean(axis=0, keepdims=True)
    return 0.5 * float(np.sum(residual**2)) / T, delta


def moved(network, steps: dict):
    """The drawn network with the Dense layers' weights moved: `steps` maps id(drawn layer) to its
    (ΔW, Δb); the other layers are kept."""
    from derive.simulate import DrawnDense, Network

    def step(layer):
        if not (isinstance(layer, DrawnDense) and id(layer) in steps):
            return layer
        dW, db = steps[id(layer)]
        return dataclasses.replace(layer, W=layer.W + dW, b=layer.b + db)

    return Network(tuple(map(step, network.layers)), network.input_dim, network.output_dim)


def _step(network, X, Y, eta: float, last_layer: str):
    """(loss and residual at the current weights, the network after one step of size eta)."""
    forward = network.forward(X)
    loss, delta = _loss_and_delta(forward.output, Y, last_layer)
    back = network.backward(forward, delta[None])
    steps = {id(drawn): (-eta * (D[0].T @ H), -eta * D[0].sum(axis=0)) for drawn, H, D in back.dense}
    return loss, delta * X.shape[0], moved(network, steps)


@single_threaded_blas
def descend(network, X, Y, eta: float, steps: int, *, last_layer: str = "plain", direction=None) -> tuple:
    """Full-batch gradient descent with step `eta` on a drawn network: (losses E(θ_0), …, E(θ_steps),
    the residual's component along `direction` (a unit vector over (output, input), e.g. the FIM's
    top eigenvector; None: not recorded)).  From the step where the loss exceeds EXPLODED × its
    start or is not finite, both are inf."""
    last_layer = choice(last_layer, LAST_LAYERS, "last_layer")
    if not (isinstance(steps, int) and steps >= 1 and eta > 0):
        raise DomainError(f"steps = {steps!r} must be a positive integer and eta = {eta!r} positive")
    losses, modes = np.full(steps + 1, np.inf), np.full(steps + 1, np.inf)
    for n in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            loss, residual, network = _step(network, X, Y, eta, last_layer)
        if not np.isfinite(loss) or (n and loss > EXPLODED * losses[0]):
            break
        losses[n] = loss
        if direction is not None:
            modes[n] = float(residual.T.ravel() @ direction)
    return losses, modes


@dataclass(frozen=True, eq=False)
class Run:
    """One gradient-descent run: ``losses`` per step, ``top_mode`` (the residual f − y along the top
    eigenvector of the network's FIM at initialisation, predicted to scale as (1 − ηλ_max)^n),
    ``eta``, the theory's ``eta_c`` = 2/λ_max and the network's own ``eta_c_network``."""

    losses: np.ndarray
    top_mode: np.ndarray
    eta: float
    eta_c: float
    eta_c_network: float

    @property
    def converged(self) -> bool:
        """The loss at the end is below its start."""
        return bool(np.isfinite(self.losses[-1]) and self.losses[-1] < self.losses[0])

    @property
    def growth(self) -> float:
        """|top mode at the end / at the start|^(1/steps): the measured factor per step."""
        n = len(self.top_mode) - 1
        return float(abs(self.top_mode[-1] / self.top_mode[0]) ** (1.0 / n))


def _targets(samples: int, outputs: int, seed) -> np.ndarray:
    rng = np.random.default_rng([np.random.SeedSequence(seed).entropy, 11])
    return rng.standard_normal((samples, outputs))


def train(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width, samples, eta, steps=10, outputs=1,
          last_layer="plain", seed=0, relative=None, near_minimum: float | None = None) -> Run:
    """Gradient descent on one drawn network with Gaussian inputs and N(0, 1) targets, or, with
    ``near_minimum=ε``, targets y = f(x) + ε·N(0, 1) so that the start lies near a global minimum
    (where the stability condition η < 2/λ_max is exact; from random targets a large residual can
    change the curvature within a few steps — the catapult of Lewkowycz et al. 2020).  `eta` is
    the step, or with ``relative="theory"`` (``"network"``) its multiple of the theory's η_c (of
    this network's exact η_c); a sequence of them gives a tuple of runs from the same network."""
    from derive.fisher.exact import gaussian_inputs, spectrum_of
    from derive.fisher.theory import fisher_spectrum

    relative = None if relative is None else choice(relative, ("theory", "network"), "relative")
    theory = fisher_spectrum(activation, sigma_w2, sigma_b2, depth, width=width, samples=samples,
                             outputs=outputs, last_layer=last_layer)
    arch = theory.architecture
    network = single_threaded_blas(arch.draw)(seed)
    X, Y = gaussian_inputs(samples, arch.widths[0], seed), _targets(samples, outputs, seed)
    exact = spectrum_of(network, X, last_layer=last_layer)
    if near_minimum is not None:
        f = exact.outputs_at_inputs
        Y = f + near_minimum * Y
    top = np.linalg.eigh(exact.gram)[1][:, -1]
    unit = {"theory": theory.learning_rate_bound, "network": exact.learning_rate_bound, None: 1.0}[relative]
    runs = []
    for step in np.atleast_1d(np.asarray(eta, dtype=float)) * unit:
        losses, modes = descend(network, X, Y, float(step), steps, last_layer=last_layer, direction=top)
        runs.append(Run(losses, modes, float(step), theory.learning_rate_bound, exact.learning_rate_bound))
    return runs[0] if np.ndim(eta) == 0 else tuple(runs)


def digits(samples: int):
    """(X, Y): the first `samples` of scikit-learn's handwritten digits (8 × 8 = 64 features), each
    feature centred and scaled to unit variance over the whole set and each image then scaled to
    ‖x‖² = 64 (so q̂⁰₁ = 1), with one-hot targets over the 10 classes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DomainError("data='digits' needs scikit-learn: pip install 'derive[data]'") from None
    data = load_digits()
    X = data.data[:, data.data.std(axis=0) > 0]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X = X[:samples]
    X *= np.sqrt(X.shape[1]) / np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.eye(10)[data.target[:samples]]


@dataclass(frozen=True, eq=False)
class LearningRateDiagram:
    """Loss after `steps` of gradient descent over its start, on a grid (``widths`` × ``etas``),
    with the theory line ``eta_c`` (2/λ_max per width)."""

    widths: np.ndarray
    etas: np.ndarray
    ratio: np.ndarray
    eta_c: np.ndarray
    steps: int
    data: str
    name: str

    @property
    def exploded(self) -> np.ndarray:
        return ~(self.ratio < 1)

    def plot(self, ax=None):
        """The "Exploded / Converged" picture: final/initial loss (log colour), exploded runs grey,
        the theory line 2/λ_max on top."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm

        if ax is None:
            fig, ax = plt.subplots(figsize=(5.2, 3.6), constrained_layout=True)
        else:
            fig = ax.figure
        shown = np.ma.masked_where(self.exploded, self.ratio)
        mesh = ax.pcolormesh(self.widths, self.etas, shown.T, shading="nearest", cmap="viridis",
                             norm=LogNorm(vmin=max(float(np.min(self.ratio)), 1e-4), vmax=1.0))
        ax.pcolormesh(self.widths, self.etas, np.ma.masked_where(~self.exploded, np.ones_like(self.ratio)).T,
                      shading="nearest", cmap="Greys", vmin=0, vmax=2)
        ax.plot(self.widths, self.eta_c, "r-", lw=2, label=r"theory $2/\lambda_{\max}$")
        ax.set(xscale="log", yscale="log", xlabel="width $M$", ylabel=r"learning rate $\eta$",
               title=f"{self.name}: loss after {self.steps} steps ({self.data} inputs)")
        ax.set_xticks(self.widths, [str(m) for m in self.widths])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        fig.colorbar(mesh, ax=ax, label="final / initial loss (grey: exploded)")
        ax.legend(loc="upper right", frameon=True)
        return fig


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def learning_rate_diagram(activation, sigma_w2=None, sigma_b2=None, depth=None, *, widths, etas, samples=64,
                          steps=20, outputs=1, data="gaussian", last_layer="plain", seed=0,
                          near_minimum: float | None = None, progress=None) -> LearningRateDiagram:
    """Train one network per (width, η) for `steps` full-batch steps and record final/initial loss,
    with the theory line η_c(M) = 2/λ_max (``data="gaussian"``: Karakida et al.'s formula;
    ``data="digits"``: the mean-field spectrum on the digits, 10 outputs).

    From the random initialisation with random targets (the default) a step above η_c first
    amplifies the outlier mode and can then lower the curvature (a catapult, Lewkowycz et al.
    2020), so the explosion boundary sits a constant factor above the line, parallel to it (∝ 1/M);
    with ``near_minimum=ε`` (targets f(x) + ε·N(0, 1), a start near a global minimum) the boundary
    is the line itself."""
    from derive.fisher.theory import fisher_spectrum, mean_field_spectrum

    data = choice(data, ("gaussian", "digits"), "data")
    widths, etas = np.asarray(widths, dtype=int), np.asarray(etas, dtype=float)
    if widths.ndim != 1 or etas.ndim != 1 or widths.size < 1 or etas.size < 1 or np.any(etas <= 0):
        raise DomainError("widths and etas must be non-empty 1-D sequences (etas positive)")
    if data == "digits":
        X, Y = digits(samples)
        outputs = Y.shape[1]
    ratio = np.empty((widths.size, etas.size))
    eta_c = np.empty(widths.size)
    for i, M in enumerate(widths):
        (progress or (lambda m: None))(f"width {M} ({i + 1}/{widths.size})")
        if data == "digits":
            eta_c[i] = mean_field_spectrum(activation, sigma_w2, sigma_b2, depth, X=X, width=int(M),
                                           outputs=outputs, last_layer=last_layer).learning_rate_bound
            arch = architecture(activation, sigma_w2, sigma_b2, depth, width=int(M), outputs=outputs)
            arch = dataclasses.replace(arch, widths=(X.shape[1], *arch.widths[1:]))
            inputs, targets = X, Y
        else:
            theory = fisher_spectrum(activation, sigma_w2, sigma_b2, depth, width=int(M), samples=samples,
                                     outputs=outputs, last_layer=last_layer)
            eta_c[i], arch = theory.learning_rate_bound, theory.architecture
            from derive.fisher.exact import gaussian_inputs

            inputs, targets = gaussian_inputs(samples, arch.widths[0], seed), _targets(samples, outputs, seed)
        network = single_threaded_blas(arch.draw)(seed)
        if near_minimum is not None:
            f = network.forward(inputs).output
            targets = (f - f.mean(axis=0) if last_layer == "mean_subtracted" else f) + near_minimum * targets
        for j, eta in enumerate(etas):
            losses, _ = descend(network, inputs, targets, float(eta), steps, last_layer=last_layer)
            ratio[i, j] = losses[-1] / losses[0]
    name = architecture(activation, sigma_w2, sigma_b2, depth, width=2).name
    return LearningRateDiagram(widths, etas, ratio, eta_c, steps, data, name)
