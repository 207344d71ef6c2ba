"""Mean-field predictions against simulations of actual random networks (derive.simulate).

Each statistic is estimated on 10 independent networks (seeds); the tolerance is K standard
errors of the mean over the seeds, the standard error estimated from the seeds themselves.
With 10 seeds the studentised error has 9 degrees of freedom: P(|t| > 6) ≈ 2e-4 per check,
so K = 6.  Finite-width biases are O(1/M), far below that at these widths.
"""

import numpy as np
import pytest

from derive.meanfield import MeanField, Regime
from derive.simulate import propagation

K = 6.0
WIDTH = 600


def simulate(activation, sw, sb, widths, **options):
    """Random networks h^1 = W x + b, h^{l+1} = W φ(h^l) + b of the given widths (M_0, ..., M_L)."""
    net = MeanField(activation).network(len(widths) - 1, sw, sb)
    return propagation(net, widths, **options)


def test_the_simulator_reproduces_exact_first_layer_statistics():
    # h^1 = W x + b: E q^1 = sw |x|^2/M0 + sb, and E h_a h_b = sw c_in |x|^2/M0 + sb, exactly
    sw, sb, norm2, c_in = 1.7, 0.2, 0.8, -0.3
    sim = simulate("tanh", sw, sb, [WIDTH, WIDTH], c_in=c_in, norm2=norm2)
    assert sim.deviation("q", sw * norm2 + sb) < K
    assert sim.deviation("c", (sw * c_in * norm2 + sb) / (sw * norm2 + sb)) < K
    assert np.all(sim.delta_sq == 1)


@pytest.mark.parametrize("sw,sb", [(2.5, 0.05), (1.5, 0.05)], ids=["chaotic", "ordered"])
def test_tanh_fixed_point_is_stationary_in_simulated_networks(sw, sb):
    """Inputs placed at (q*, c*) stay there layer after layer; gradients scale by χ₁ per layer."""
    fp = MeanField("tanh").fixed_point(sw, sb)
    assert fp.regime == (Regime.CHAOTIC if sw > 2 else Regime.ORDERED)
    depth = 16
    norm2 = (fp.q_star - sb) / sw  # q^1 = sw |x|^2/M0 + sb = q*
    c_in = (fp.c_star * fp.q_star - sb) / (fp.q_star - sb) if fp.c_star < 1 else 0.999
    sim = simulate("tanh", sw, sb, [WIDTH] * (depth + 1), c_in=c_in, norm2=norm2)
    assert sim.deviation("q", fp.q_star) < K
    if fp.c_star < 1:
        assert sim.deviation("c", fp.c_star) < K
    powers = fp.chi1 ** np.arange(depth - 1, -1, -1)
    assert sim.deviation("delta_sq", powers, slice(0, -1)) < K
    assert sim.deviation("weight_grad_sq", powers, slice(1, -1)) < K
    # negative control: the same check refuses a χ₁ off by 5 % (a factor 2 over the 15 layers)
    wrong = (1.05 * fp.chi1) ** np.arange(depth - 1, -1, -1)
    assert sim.deviation("delta_sq", wrong, slice(0, -1)) > K


@pytest.mark.parametrize("sw,sb", [(2.5, 0.05), (1.5, 0.05)], ids=["chaotic", "ordered"])
def test_tanh_transients_follow_the_mean_field_maps(sw, sb):
    depth, c_in = 20, 0.6
    widths = [WIDTH] * (depth + 1)
    sim = simulate("tanh", sw, sb, widths, c_in=c_in)
    mf = MeanField("tanh")
    q1 = sw + sb
    path = mf.propagate(depth, sw, sb, q1=q1, c1=(sw * c_in + sb) / q1)
    assert sim.deviation("q", path.q) < K
    assert sim.deviation("c", path.c) < K
    grads = mf.gradients(depth, sw, sb, widths=widths[1:], q1=q1)
    assert sim.deviation("delta_sq", grads.delta_sq, slice(0, -1)) < K
    assert sim.deviation("weight_grad_sq", grads.weight_grad_sq, slice(1, -1)) < K


def test_gradient_ratios_with_varying_widths():
    sw, sb, depth = 1.8, 0.1, 16
    widths = [600] + [400 if l % 2 else 900 for l in range(1, depth + 1)]
    sim = simulate("tanh", sw, sb, widths)
    mf = MeanField("tanh")
    grads = mf.gradients(depth, sw, sb, widths=widths[1:], q1=sw + sb)
    assert not np.allclose(grads.delta_sq, mf.gradients(depth, sw, sb, q1=sw + sb).delta_sq)
    assert sim.deviation("delta_sq", grads.delta_sq, slice(0, -1)) < K


@pytest.mark.parametrize("sw,sb,regime", [(2.5, 0.1, Regime.Q_INFINITE), (1.5, 0.0, Regime.Q_ZERO)])
def test_relu_without_a_fixed_point_grows_or_decays_as_flagged(sw, sb, regime):
    depth = 15
    mf = MeanField("relu")
    fp = mf.fixed_point(sw, sb)
    assert fp.regime == regime and fp.q_star == (np.inf if regime == Regime.Q_INFINITE else 0.0)
    path = mf.propagate(depth, sw, sb, q1=sw + sb)
    sim = simulate("relu", sw, sb, [WIDTH] * (depth + 1), c_in=0.3)
    ratio = sim.q / path.q  # relative: q spans decades
    z = np.abs(ratio.mean(0) - 1) / (ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0]))
    assert np.all(z < K)
    assert abs(path.q[-1] / path.q[-2] - sw / 2) <= sb / path.q[-2] + 1e-14  # q' = (sw/2) q + sb


def test_swish_variance_explodes_where_flagged():
    """Beyond the fold (σ_w² = 2.5, σ_b² = 0.15) swish networks have no finite q*: the variance
    grows layer after layer, as the mean-field iteration predicts."""
    sw, sb, depth = 2.5, 0.15, 12
    mf = MeanField("x/(1 + exp(-x))")
    assert mf.fixed_point(sw, sb).regime == Regime.Q_INFINITE
    path = mf.propagate(depth, sw, sb, q1=sw + sb)
    assert np.all(np.diff(path.q) > 0) and path.q[-1] / path.q[-2] > 1.1  # towards σ_w²/2 per layer
    sim = simulate("silu", sw, sb, [WIDTH] * (depth + 1), c_in=0.3)
    ratio = sim.q / path.q
    z = np.abs(ratio.mean(0) - 1) / (ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0]))
    assert np.all(z < K)


def test_a_residual_layernorm_block_reaches_its_own_fixed_point_and_gradient_factor():
    """MeanField(block) of serial(Residual(serial(tanh, Dense), 0.7), LayerNorm()): q* = 1, and the
    c* and χ₁ of the block's own maps are what finite networks of such blocks show."""
    from derive.layers import Dense, LayerNorm, Residual, repeat, serial
    from derive.symbols import sigma_b2, sigma_w2

    block = serial(Residual(serial("tanh", Dense(sigma_w2, sigma_b2)), 0.7), LayerNorm())
    sw, sb, depth = 3.0, 0.05, 10
    fp = MeanField(block).fixed_point(sw, sb)
    assert fp.q_star == 1.0 and fp.regime == Regime.CHAOTIC
    numbers = serial(Residual(serial("tanh", Dense(sw, sb)), 0.7), LayerNorm())
    net = serial(Dense(1.0, 0.0), LayerNorm(), repeat(numbers, depth))
    sim = propagation(net, [WIDTH] * (depth + 2), c_in=fp.c_star, record=LayerNorm)
    assert sim.deviation("c", fp.c_star) < K
    # the Dense of block l reaches the last block's after depth − l blocks (entry 0: the input layer)
    blocks_to_go = depth - np.arange(depth + 1)
    assert sim.deviation("delta_sq", fp.chi1**blocks_to_go, slice(1, -1)) < K
    assert sim.deviation("delta_sq", (1.05 * fp.chi1) ** blocks_to_go, slice(1, -1)) > K
