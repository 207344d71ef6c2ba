"""NNGP, NTK and backward factor against finite random networks (width 2000, numpy).

Each seed draws a whole network (weights, dropout masks, read-out probes); the tolerance is
k standard errors of the mean over the S = 10 seeds, entry by entry.  With S − 1 = 9 degrees
of freedom P(|t| > 6) ≈ 2·10⁻⁴, so over the ~35 entries of a network a correct theory fails
with probability < 1 %; the seeds are fixed, so the outcome is reproducible.  The finite-width
bias, O(1/width) ≈ 5·10⁻⁴ relative, is far below one standard error (≈ 1-3 %); so is the O(1/d)
bias of χ̂ at the raw input (the input weights correlate with φ′ of their own pre-activation).  The last test
shows the check has teeth: dropping the dropout factor from the theory is rejected.
"""

from functools import cache

import numpy as np
import pytest

from derive.layers import Dense, Dropout, LayerNorm, Residual, repeat, serial
from derive.simulate import kernels as simulate

K_SE = 6.0
WIDTH = 2000
SEEDS = range(10)
X = np.random.default_rng(3).standard_normal((5, 100))  # d ≫ 1: χ's O(1/d) input-layer term is small

NETWORKS = {
    "relu": serial(Dense(2.0, 0.1), repeat(serial("relu", Dense(2.0, 0.1)), 2)),
    "erf": serial(Dense(1.5, 0.2), repeat(serial("erf", Dense(1.5, 0.2)), 2)),
    "residual tanh, dropout, LayerNorm": serial(
        Dense(1.0, 0.1),
        repeat(serial(Residual(serial("tanh", Dropout(0.5), Dense(1.5, 0.05)), alpha=0.7), LayerNorm()), 2),
        Dense(1.0, 0.0)),
}


@cache
def simulated(name):
    return simulate(NETWORKS[name], X, width=WIDTH, seeds=SEEDS)


@pytest.fixture(scope="module", params=list(NETWORKS))
def case(request):
    net = NETWORKS[request.param]
    return net, net.kernels(X), simulated(request.param)


def test_nngp_matches_the_simulation(case):
    net, theory, emp = case
    assert np.max(np.abs(emp.zscores("nngp", theory.nngp))) < K_SE


def test_ntk_matches_the_empirical_ntk(case):
    net, theory, emp = case
    assert np.max(np.abs(emp.zscores("ntk", theory.ntk))) < K_SE


def test_backward_factor_matches_the_gradient_norms(case):
    net, theory, emp = case
    assert np.max(np.abs(emp.zscores("chi", theory.chi))) < K_SE


def test_the_check_rejects_a_theory_without_the_dropout_factor():
    wrong = serial(Dense(1.0, 0.1),
                   repeat(serial(Residual(serial("tanh", Dense(1.5, 0.05)), alpha=0.7), LayerNorm()), 2),
                   Dense(1.0, 0.0))
    emp = simulated("residual tanh, dropout, LayerNorm")
    assert np.max(np.abs(emp.zscores("ntk", wrong.kernels(X).ntk))) > K_SE
