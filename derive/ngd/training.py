r"""NGD with each approximate Fisher matrix on an actual wide network: loss against step, one-step
convergence at η = 1/α, and the test outputs against the kernel-regression prediction.

Each step recomputes the Jacobian factors at the current weights (:func:`derive.fisher.exact.
jacobian_factors`) and moves every Dense layer by Δθ̃_l = −η C_lᵀ H̃_l (:mod:`derive.ngd.
preconditioner`; in the weights of the parametrisation ΔW = −η a C_lᵀ H, Δb = −η b C_lᵀ 1).  The
squared loss is E = (1/2N) Σ_n ‖f(x_n) − y_n‖²; the theory (Karakida & Osawa 2020) predicts
E_t = (1 − αη)^{2t} E_0 while the Jacobian stays at its initial value, i.e. up to the finite-width
curvature of the network.  Inputs are N + N* i.i.d. N(0, I) vectors (N for training, N* for the
test), targets a single-index teacher y_k = tanh(v_k · x) with v_k ~ N(0, I/M_0).

Unit-wise NGD is the exception (measured here, not derived): its operator is α I exactly for tanh,
yet one step at η = 1/α leaves a residual of O(1) at every width, because its per-unit steps
η r_n/δ_i(n) are heavy-tailed (δ_i Gaussian) and the network leaves its linearisation; the
wide-limit statement of Karakida & Osawa is about J held fixed.

>>> runs = train("relu", 2.0, 0.1, 3, width=300, samples=20, method=("exact", "block_diagonal"), steps=2,
...              seed=0)
>>> [bool(r.losses[1] < 0.05 * r.losses[0]) for r in runs]
[True, True]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.fisher.exact import gaussian_inputs, jacobian_factors
from derive.fisher.training import moved
from derive.gaussian.blocks import single_threaded_blas
from derive.ngd.alpha import ngd_alpha
from derive.ngd.dynamics import kernel_prediction
from derive.ngd.methods import convention as pick_convention
from derive.ngd.methods import method as pick_method
from derive.ngd.operator import drawn
from derive.ngd.preconditioner import preconditioner


def ngd_step(network, X, Y, method: str, eta: float, convention: str, parametrisation):
    """(the network after one NGD step of size eta, the preconditioner at the step's start)."""
    factors, f = jacobian_factors(network, X, parametrisation)
    pre = preconditioner(method, factors, convention)
    cotangents = pre.cotangents((f - Y).T)
    steps = {id(fac.layer): (-eta * fac.a * (C[0].T @ fac.H), -eta * fac.b * C[0].sum(axis=0))
             for fac, C in zip(factors, cotangents, strict=True)}
    return moved(network, steps), pre


def _loss(f, Y) -> float:
    return 0.5 * float(np.sum((f - Y) ** 2)) / f.shape[0]


@dataclass(frozen=True, eq=False)
class NGDRun:
    """One NGD run: ``losses`` (training loss per step, from the start), ``test_losses``, the test
    outputs per step of the network (``test_outputs``), of its own linearisation at the start
    (``linearised_test``) and of the wide-limit kernel regression (``kernel_test``, None for
    unit-wise NGD), the ``test_targets``, the theory's ``alpha`` and the step ``eta``."""

    method: str
    convention: str
    alpha: float
    eta: float
    losses: np.ndarray
    test_losses: np.ndarray
    test_outputs: np.ndarray
    linearised_test: np.ndarray
    kernel_test: np.ndarray | None
    test_targets: np.ndarray

    @property
    def predicted_losses(self) -> np.ndarray:
        """E_0 (1 − αη)^{2t}: the theory's loss curve."""
        return self.losses[0] * (1 - self.alpha * self.eta) ** (2 * np.arange(len(self.losses)))

    @property
    def residual_ratios(self) -> np.ndarray:
        """‖f_t − y‖/‖f_0 − y‖ on the training set (the theory: |1 − αη|^t)."""
        return np.sqrt(self.losses / self.losses[0])

    def _test_loss(self, outputs) -> np.ndarray:
        return np.array([_loss(o, self.test_targets) for o in outputs])

    @property
    def linearised_test_losses(self) -> np.ndarray:
        return self._test_loss(self.linearised_test)

    @property
    def kernel_test_losses(self) -> np.ndarray | None:
        return None if self.kernel_test is None else self._test_loss(self.kernel_test)

    def __repr__(self) -> str:
        train, test = (np.array2string(v, precision=3) for v in (self.losses, self.test_losses))
        return (f"NGDRun({self.method!r}, alpha={self.alpha:.6g}, eta={self.eta:.4g}: losses {train}, "
                f"test {test})")


def _theory_alpha(name, arch, samples, activation, convention) -> float:
    hidden = set(arch.widths[1:]) or {1}
    if name == "unit_wise" and len(hidden) > 1:
        raise DomainError("the unit-wise α is given for equal hidden widths; pass eta (relative=False) for "
                          f"the widths {arch.widths}")
    act = activation if isinstance(activation, str) else None
    value = ngd_alpha(name, depth=arch.depth, width=min(hidden), samples=samples, outputs=arch.outputs,
                      activation=act, convention=convention).value
    if not value.is_number:
        raise DomainError(f"α = {value} is not a number here (unit-wise NGD needs an activation name whose γ "
                          "does not depend on q): pass eta with relative=False")
    return float(value)


def _linearised(pre, test_factors, R0, eta: float, steps: int) -> np.ndarray:
    """The test outputs' changes of the linearised network over `steps` NGD steps: (steps+1, N*, C)."""
    C, N = R0.shape
    basis = np.eye(C * N).reshape(C * N, C, N)
    cot = pre.cotangents(basis)
    op = pre.change(cot).reshape(C * N, C * N).T
    cross = pre.change(cot, at=test_factors).reshape(C * N, -1).T  # (C N*, C N)
    r, out = R0.ravel(), [np.zeros(cross.shape[0])]
    for _ in range(steps):
        out.append(out[-1] - eta * cross @ r)
        r = r - eta * op @ r
    return np.array([o.reshape(C, -1).T for o in out])


@single_threaded_blas
def train(activation, sigma_w2=None, sigma_b2=None, depth=None, *, width, samples, method, eta=1.0,
          relative=True, steps=3, test_samples=50, outputs=1, convention="paper", parametrisation="standard",
          seed=0):
    """NGD on one drawn network (the arguments of :func:`derive.fisher.empirical`) for `steps` steps of
    size `eta` × 1/α (``relative=True``, α of :func:`derive.ngd.ngd_alpha`) or `eta` itself; a
    sequence of methods gives a tuple of :class:`NGDRun` from the same network and data."""
    one = isinstance(method, str)
    names = [pick_method(m) for m in ((method,) if one else method)]
    conv = pick_convention(convention)
    if not (isinstance(steps, int) and steps >= 1 and eta > 0):
        raise DomainError(f"steps = {steps!r} must be a positive integer and eta = {eta!r} positive")
    network, _, arch = drawn(activation, sigma_w2, sigma_b2, depth, width=width, samples=samples,
                             outputs=outputs, parametrisation=parametrisation, seed=seed)
    inputs = gaussian_inputs(samples + test_samples, arch.widths[0], seed)
    rng = np.random.default_rng([np.random.SeedSequence(seed).entropy, 13])
    targets = np.tanh(inputs @ rng.standard_normal((arch.widths[0], outputs)) / np.sqrt(arch.widths[0]))
    X, X_test, Y, Y_test = inputs[:samples], inputs[samples:], targets[:samples], targets[samples:]
    test_start, _ = jacobian_factors(network, X_test, arch.parametrisation)
    runs = []
    for name in names:
        alpha = _theory_alpha(name, arch, samples, activation, conv)
        step = eta / alpha if relative else float(eta)
        net, losses, test_losses, test_out, start = network, [], [], [], None
        for n in range(steps + 1):
            f, f_test = net.forward(X).output, net.forward(X_test).output
            losses.append(_loss(f, Y))
            test_losses.append(_loss(f_test, Y_test))
            test_out.append(f_test)
            if n < steps:
                net, pre = ngd_step(net, X, Y, name, step, conv, arch.parametrisation)
                start = pre if start is None else start
        R0 = (network.forward(X).output - Y).T
        linear = test_out[0] + _linearised(start, test_start, R0, step, steps)
        kernel = None
        if name != "unit_wise":
            pred = kernel_prediction(activation, sigma_w2, sigma_b2, depth, width=width, X=X, residual=R0.T,
                                     X_test=X_test, start=test_out[0], method=name, outputs=outputs,
                                     convention=conv, parametrisation=arch.parametrisation)
            kernel = np.array([pred.outputs(t, step) for t in range(steps + 1)])
        runs.append(NGDRun(name, conv, alpha, step, np.array(losses), np.array(test_losses),
                           np.array(test_out), linear, kernel, Y_test))
    return runs[0] if one else tuple(runs)
