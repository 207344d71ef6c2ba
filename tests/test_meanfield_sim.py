"""Mean-field predictions against simulations of actual random networks (numpy).

Networks: h^1 = W^1 x + b^1, h^{l+1} = W^{l+1} φ(h^l) + b^{l+1}, W_ij ~ N(0, σ_w²/M_in),
b_i ~ N(0, σ_b²); two inputs with ‖x‖²/M_0 = 1 and correlation c_in; a random N(0, 1)
gradient at the last layer, propagated back with the same weights.  Each quantity is
estimated on independent networks (seeds); the tolerance is K standard errors of the
mean over the seeds, the standard error estimated from the seeds themselves.  With 10
seeds the studentised error has 9 degrees of freedom: P(|t| > 6) ≈ 2e-4 per check, so
K = 6.  Finite-width biases are O(1/M), far below that here.
"""

import numpy as np
import pytest

from derive.meanfield import MeanField

SEEDS = 10
K = 6.0


def _simulate(name, sw, sb, widths, c_in, norm2=1.0, seeds=SEEDS):
    """Per seed and layer: q̂^l, ĉ^l, ‖δ^l‖²/M_l (ratio to the last layer), ‖∇W^l‖² (ratio)."""
    phi = {"tanh": np.tanh, "relu": lambda t: np.maximum(t, 0)}[name]
    dphi = {"tanh": lambda t: 1 - np.tanh(t) ** 2, "relu": lambda t: (t > 0).astype(t.dtype)}[name]
    m0, depth = widths[0], len(widths) - 1
    out = {k: np.empty((seeds, depth)) for k in ("q", "c", "delta", "weight")}
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        a, b = rng.standard_normal((2, m0))
        a /= np.linalg.norm(a)
        b -= (b @ a) * a
        b /= np.linalg.norm(b)
        x = np.sqrt(m0 * norm2) * np.stack([a, c_in * a + np.sqrt(1 - c_in**2) * b], axis=1)  # (M0, 2)
        hs, Ws, inputs = [], [], [x]
        for l in range(1, depth + 1):
            W = rng.standard_normal((widths[l], widths[l - 1]), dtype=np.float32)
            W *= np.float32(np.sqrt(sw / widths[l - 1]))
            bias = rng.standard_normal((widths[l], 1)) * np.sqrt(sb)
            h = W @ inputs[-1] + bias
            hs.append(h)
            Ws.append(W)
            inputs.append(phi(h))
        delta = rng.standard_normal(widths[-1])
        deltas = [delta]
        for l in range(depth - 1, 0, -1):  # δ^l = φ'(h^l) ⊙ W^{l+1}ᵀ δ^{l+1}
            deltas.insert(0, dphi(hs[l - 1][:, 0]) * (Ws[l].T @ deltas[0]))
        for l in range(depth):
            h = hs[l]
            out["q"][seed, l] = np.mean(h[:, 0] ** 2)
            out["c"][seed, l] = (h[:, 0] @ h[:, 1]) / np.sqrt((h[:, 0] @ h[:, 0]) * (h[:, 1] @ h[:, 1]))
            out["delta"][seed, l] = (deltas[l] @ deltas[l]) / widths[l + 1]
            out["weight"][seed, l] = (deltas[l] @ deltas[l]) * (inputs[l][:, 0] @ inputs[l][:, 0])
        out["delta"][seed] /= out["delta"][seed, -1]
        out["weight"][seed] /= out["weight"][seed, -1]
    return out


def _agree(samples, prediction, what):
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    bad = np.abs(mean - prediction) > K * se
    assert not np.any(bad), (f"{what}: layers {np.flatnonzero(bad) + 1}: simulated {mean[bad]} ± {se[bad]}, "
                             f"mean field {prediction[bad]}")


@pytest.mark.parametrize("sw,sb", [(2.5, 0.05), (1.5, 0.05)], ids=["chaotic", "ordered"])
def test_tanh_fixed_point_is_stationary_in_simulated_networks(sw, sb):
    """Inputs placed at (q*, c*) stay there layer after layer, and gradients scale by χ₁ per layer."""
    fp = MeanField("tanh").fixed_point(sw, sb)
    assert fp.regime.name == ("CHAOTIC" if sw > 2 else "ORDERED")
    depth = 16
    norm2 = (fp.q_star - sb) / sw  # q^1 = sw |x|^2/M0 + sb = q*
    c_in = (fp.c_star * fp.q_star - sb) / (fp.q_star - sb) if fp.c_star < 1 else 0.999
    sim = _simulate("tanh", sw, sb, [600] * (depth + 1), c_in, norm2)
    _agree(sim["q"], np.full(depth, fp.q_star), "q*")
    if fp.c_star < 1:
        _agree(sim["c"], np.full(depth, fp.c_star), "c*")
    powers = fp.chi1 ** np.arange(depth - 1, -1, -1)
    _agree(sim["delta"], powers, "chi1^(L-l)")
    _agree(sim["weight"][:, 1:], powers[1:], "weight gradients chi1^(L-l)")


@pytest.mark.parametrize("sw,sb", [(2.5, 0.05), (1.5, 0.05)], ids=["chaotic", "ordered"])
def test_tanh_transients_follow_the_mean_field_maps(sw, sb):
    depth, c_in = 20, 0.6
    widths = [600] * (depth + 1)
    sim = _simulate("tanh", sw, sb, widths, c_in)
    mf = MeanField("tanh")
    q1 = sw + sb
    path = mf.propagate(depth, sw, sb, q1=q1, c1=(sw * c_in + sb) / q1)
    _agree(sim["q"], path.q, "q^l")
    _agree(sim["c"], path.c, "c^l")
    grads = mf.gradients(depth, sw, sb, widths=widths[1:], q1=q1)
    _agree(sim["delta"], grads.delta_sq, "gradient ratios")
    _agree(sim["weight"][:, 1:], grads.weight_grad_sq[1:], "weight-gradient ratios")


def test_gradient_ratios_with_varying_widths():
    sw, sb, depth = 1.8, 0.1, 16
    widths = [600] + [400 if l % 2 else 900 for l in range(1, depth + 1)]
    sim = _simulate("tanh", sw, sb, widths, 0.5)
    grads = MeanField("tanh").gradients(depth, sw, sb, widths=widths[1:], q1=sw + sb)
    assert not np.allclose(grads.delta_sq, MeanField("tanh").gradients(depth, sw, sb, q1=sw + sb).delta_sq)
    _agree(sim["delta"], grads.delta_sq, "gradient ratios, varying widths")


@pytest.mark.parametrize("sw,sb,regime", [(2.5, 0.1, "Q_INFINITE"), (1.5, 0.0, "Q_ZERO")])
def test_relu_without_a_fixed_point_grows_or_decays_as_flagged(sw, sb, regime):
    depth = 15
    widths = [600] * (depth + 1)
    sim = _simulate("relu", sw, sb, widths, 0.3)
    mf = MeanField("relu")
    fp = mf.fixed_point(sw, sb)
    assert fp.regime.name == regime and fp.q_star == (np.inf if regime == "Q_INFINITE" else 0.0)
    path = mf.propagate(depth, sw, sb, q1=sw + sb)
    _agree(sim["q"] / path.q, np.ones(depth), "q^l / mean field")  # relative: q spans decades
    ratio = path.q[-1] / path.q[-2]
    assert abs(ratio - sw / 2) <= sb / path.q[-2] + 1e-14  # q^{l+1} = (sw/2) q^l + sb: geometric
