"""The simulator of finite random networks: exact identities, and its statistics against theory.

Statistical checks compare a mean over S independent networks with the theory in units of its
standard error estimated from the same S seeds (Student t with S − 1 degrees of freedom);
K = 6 leaves a false-alarm rate of ~1e-3 per entry at S = 8.
"""

import numpy as np
import pytest

from derive.errors import DomainError
from derive.layers import Dense, LayerNorm, repeat, serial
from derive.simulate import draw, kernels

K = 6.0


def test_orthogonal_weights_are_scaled_haar_matrices():
    net = draw(serial(Dense(1.7, 0.0, ensemble="orthogonal"), Dense(2.0, 0.0, ensemble="orthogonal")), 30,
               [30, 60], seed=1)
    W1, W2 = net.layers[0].W, net.layers[1].W
    np.testing.assert_allclose(W1 @ W1.T, 1.7 * np.eye(30), atol=1e-13)
    np.testing.assert_allclose(W2.T @ W2, 2.0 * 60 / 30 * np.eye(30), atol=1e-12)  # E W_ij² = σ_w²/M_in


def test_the_backward_pass_is_the_input_jacobian():
    net = draw(serial(Dense(1.5, 0.1), "tanh", Dense(1.5, 0.1), LayerNorm(), "erf", Dense(1.0, 0.0)), 7,
               [9, 8, 3], seed=2)
    x = np.random.default_rng(0).standard_normal(7)
    J = net.input_jacobian(x)
    h = 1e-6
    numeric = np.stack([(net.forward((x + h * e)[None]).output - net.forward((x - h * e)[None]).output)[0]
                        / (2 * h) for e in np.eye(7)], axis=1)
    np.testing.assert_allclose(J, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("ensemble", ["gaussian", "orthogonal"])
def test_empirical_kernels_match_the_layer_algebra_for_both_ensembles(ensemble):
    X = np.random.default_rng(5).standard_normal((4, 400))
    dense = Dense(2.0, 0.1, ensemble=ensemble)
    net = serial(dense, repeat(serial("relu", dense), 2))
    theory = net.kernels(X)
    emp = kernels(net, X, width=400, seeds=range(8))
    assert np.max(np.abs(emp.zscores("nngp", theory.nngp))) < K
    assert np.max(np.abs(emp.zscores("ntk", theory.ntk))) < K


def test_the_standard_parametrisation_ntk_per_unit_fan_in():
    """With every fan-in equal to M (input dimension d = M), the standard-parametrisation tangent
    Gram is M times the per-fan-in NTK of the algebra, up to the O(1/M) biases."""
    M = 500
    X = np.random.default_rng(6).standard_normal((3, M))
    dense = Dense(1.5, 0.05, parametrisation="standard")
    net = serial(dense, "tanh", dense)
    theory = np.asarray(net.kernels(X).ntk) * M
    emp = kernels(net, X, width=M, seeds=range(8))
    assert np.max(np.abs(emp.zscores("ntk", theory))) < K


def test_widths_must_match_the_dense_layers():
    with pytest.raises(DomainError, match="one per Dense layer"):
        draw(serial(Dense(1.0), "tanh", Dense(1.0)), 3, [4, 5, 6])
