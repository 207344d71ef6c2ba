"""Gradient descent on actual networks against the learning-rate bound η_c = 2/λ_max.

Near a global minimum (targets y = f(x) + 10⁻³·noise) the outputs move linearly,
f − y ← (I − ηG/T)(f − y), so the residual along the FIM's top eigenvector scales by
|1 − ηλ_max| per step: the run converges below η_c and diverges above it.  At width 1500 the
theory's λ_max is within ≈ 2–4 % of each network's (tests/test_fisher.py), so η = 0.9 η_c and
1.1 η_c of the theory fall on the two sides for the same network.
"""

import numpy as np
import pytest

from derive.fisher import learning_rate_diagram, train
from derive.fisher.training import digits

NETS = [("relu", 2.0, 0.1), ("tanh", 1.5, 0.1)]


@pytest.mark.parametrize("net", NETS)
def test_descent_converges_at_0_9_and_diverges_at_1_1_of_the_theory_bound(net):
    below, above = train(*net, 4, width=1500, samples=50, eta=[0.9, 1.1], relative="theory", steps=20,
                         seed=1, near_minimum=1e-3)  # two runs from the same network
    assert below.converged and below.growth < 1
    assert not above.converged and above.growth > 1
    for run in (below, above):  # the measured factor per step is |1 − η λ_max| of the network
        predicted = abs(1 - 2 * run.eta / run.eta_c_network)
        assert run.growth == pytest.approx(predicted, abs=2e-3)


def test_the_learning_rate_diagram_has_its_boundary_on_the_theory_line_near_a_minimum():
    etas = np.geomspace(5e-4, 1.6e-2, 6)
    diagram = learning_rate_diagram("relu", 2.0, 0.1, 4, widths=[128, 512], etas=etas, samples=64,
                                    steps=20, near_minimum=1e-3)
    assert diagram.ratio.shape == (2, 6)
    for row, eta_c in zip(diagram.exploded, diagram.eta_c, strict=True):
        assert not np.any(row[etas < 0.8 * eta_c]) and np.all(row[etas > 1.25 * eta_c])
    assert diagram.eta_c[0] / diagram.eta_c[1] == pytest.approx(4, rel=0.02)  # η_c ∝ 1/M


def test_from_random_targets_the_explosion_boundary_lies_above_the_line():
    """From the initialisation with N(0, 1) targets a step above η_c can lower the curvature (a
    catapult) before it explodes: runs explode only above 2/λ_max, here first at 4.7 η_c and
    10.5 η_c (on a grid of ratio 1.8; 3.6–7.8 η_c for M = 64…1024 on a finer one)."""
    etas = np.geomspace(1e-3, 0.2, 10)
    diagram = learning_rate_diagram("relu", 2.0, 0.1, 4, widths=[64, 256], etas=etas, samples=64, steps=20)
    boundary = np.array([etas[np.argmax(row)] for row in diagram.exploded]) / diagram.eta_c
    assert np.all(diagram.exploded[:, -1]) and not np.any(diagram.exploded[:, 0])
    assert np.all(boundary > 1)


def test_digits_inputs_are_normalised_and_their_diagram_runs():
    X, Y = digits(40)
    np.testing.assert_allclose(np.sum(X**2, axis=1), X.shape[1])
    assert Y.shape == (40, 10) and np.all(Y.sum(axis=1) == 1)
    diagram = learning_rate_diagram("relu", 2.0, 0.1, 3, widths=[64], etas=[1e-4, 0.5], samples=40, steps=5,
                                    data="digits")
    assert not diagram.exploded[0, 0] and diagram.exploded[0, 1]
    assert 0 < diagram.eta_c[0] < 0.5
