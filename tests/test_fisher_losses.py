"""The softmax cross-entropy FIM and the conditional FIM under dynamical isometry, against actual
networks.  Tolerances: K = 5 standard errors over the seeds (P(|t| > 5) < 4·10⁻³ per check at
5 degrees of freedom)."""

import numpy as np
import pytest

from derive.errors import DomainError
from derive.fisher import conditional_empirical, conditional_fisher, empirical, fisher_spectrum
from derive.fisher.exact import gaussian_inputs
from derive.meanfield import MeanField

K_SE = 5.0
SEEDS = range(6)


def sem(values, axis=0):
    values = np.asarray(values)
    return values.std(axis=axis, ddof=1) / np.sqrt(values.shape[axis])


# --- softmax ----------------------------------------------------------------------------------------------

SOFTMAX = [("relu", 2.0, 0.1), ("tanh", 1.5, 0.3)]
C, T, M = 5, 50, 1000


@pytest.mark.parametrize("net", SOFTMAX)
def test_the_softmax_outliers_are_the_eigenvalues_of_the_mean_softmax_covariance(net):
    """Given each network's own logits, the top C − 1 eigenvalues are αM[κ₂μ_i + (κ₁−κ₂)/T·…] with
    μ_i the eigenvalues of Q̄ = mean_t(diag p_t − p_t p_tᵀ); the C-th joins the bulk."""
    theory = fisher_spectrum(*net, 3, width=M, samples=T, outputs=C, loss="cross_entropy")
    ratios, bulk = [], []
    for seed in SEEDS:
        emp = empirical(*net, 3, width=M, samples=T, outputs=C, seed=seed, loss="cross_entropy")
        ratios.append(emp.top(C - 1) / theory.softmax.given(emp.outputs_at_inputs) - 1)
        bulk.append(emp.eigenvalues[C - 1] / emp.eigenvalues[C])
    ratios = np.array(ratios)
    assert np.all(np.abs(ratios.mean(axis=0)) < K_SE * sem(ratios))
    assert np.all(np.abs(ratios.mean(axis=0)) < 0.06)  # finite-width error at M = 1000
    assert max(bulk) < 1.5  # the C-th eigenvalue sits with the bulk, not with the outliers


def test_softmax_with_last_layer_batch_norm_is_not_claimed():
    with pytest.raises(DomainError, match="not derived"):
        fisher_spectrum("relu", 2.0, 0.1, 3, width=10, samples=5, outputs=3, loss="cross_entropy",
                        last_layer="mean_subtracted")


def test_softmax_disperses_the_c_fold_outlier_of_the_squared_loss():
    mse = empirical("relu", 2.0, 0.1, 3, width=M, samples=T, outputs=C, seed=0)
    ce = empirical("relu", 2.0, 0.1, 3, width=M, samples=T, outputs=C, seed=0, loss="cross_entropy")
    assert mse.top()[0] / mse.top()[-1] < 1.2  # C-fold degenerate up to finite-width error
    assert ce.top(C - 1)[0] / ce.top(C - 1)[-1] > 2  # dispersed
    assert ce.lambda_max < mse.lambda_max / 2  # the eigenvalues of Q̄ are below 1/2


def test_the_monte_carlo_means_match_the_means_over_networks():
    """Over networks: the outliers, m_λ = g₁ E tr Q / P and s_λ of the cross-entropy FIM."""
    theory = fisher_spectrum("tanh", 1.5, 0.3, 3, width=M, samples=T, outputs=C, loss="cross_entropy")
    nets = [empirical("tanh", 1.5, 0.3, 3, width=M, samples=T, outputs=C, seed=s, loss="cross_entropy")
            for s in range(12)]
    tops = np.array([net.top(C - 1) for net in nets])
    spread = np.hypot(sem(tops), theory.softmax.mean_top_error)
    assert np.all(np.abs(tops.mean(axis=0) - theory.softmax.mean_top) < K_SE * spread)
    for stat in ("mean", "second_moment"):
        values = np.array([getattr(net, stat) for net in nets])
        assert abs(values.mean() - getattr(theory, stat)) < K_SE * sem(values)


# --- conditional FIM under dynamical isometry ------------------------------------------------------------


def test_a_deep_linear_orthogonal_network_has_the_conditional_fim_l_times_the_input_norm():
    for depth in (2, 5):
        emp = conditional_empirical("linear", 1.0, 0.0, depth, width=64, seed=depth)
        x_norm2 = float(np.sum(gaussian_inputs(1, 64, depth) ** 2))  # every layer's input has ‖x‖²
        np.testing.assert_allclose(emp.eigenvalues, depth * (x_norm2 + 1), rtol=1e-10)  # (+1: biases)
        assert conditional_fisher("linear", 1.0, 0.0, depth, width=64).spread == 0.0


def _near_isometry():
    point = MeanField("tanh").critical_point(1e-5)
    w = float(point.sigma_w2)
    return w, (float(point.q_star) - 1e-5) / w  # σ_w², the input variance that starts at q*


@pytest.mark.parametrize("ensemble", ["orthogonal", "gaussian"])
def test_the_conditional_fim_moments_match_networks(ensemble):
    w, v = _near_isometry()
    for depth in (2, 8):
        theory = conditional_fisher("tanh", w, 1e-5, depth, width=200, ensemble=ensemble, input_variance=v)
        rows = []
        for seed in range(4):
            ev = conditional_empirical("tanh", w, 1e-5, depth, width=200, ensemble=ensemble,
                                       input_variance=v, seed=seed).eigenvalues
            rows.append((ev.mean(), ev.std() / ev.mean()))
        rows = np.array(rows)
        mean_error = abs(rows[:, 0].mean() - theory.mean)
        assert mean_error < K_SE * sem(rows[:, 0]) + 0.02 * theory.mean  # O(1/M): ‖x‖² of one draw
        assert abs(rows[:, 1].mean() - theory.spread) < 0.1 * theory.spread + K_SE * sem(rows[:, 1])


def test_under_isometry_the_spectrum_concentrates_and_its_maximum_grows_linearly_with_depth():
    """Orthogonal weights at the critical point of tanh with q* ≈ 0.02: relative spread ≤ 0.12 up
    to L = 16 and λ_max ∝ L^p with p ≈ 1 (and 2/λ_max ∝ 1/L); Gaussian weights: spread > 0.5 and
    λ_max growing much faster (p ≈ 1.9)."""
    w, v = _near_isometry()
    depths = (2, 4, 8, 16)
    tops = {}
    for ensemble in ("orthogonal", "gaussian"):
        tops[ensemble] = []
        for depth in depths:
            emp = conditional_empirical("tanh", w, 1e-5, depth, width=200, ensemble=ensemble,
                                        input_variance=v)
            theory = conditional_fisher("tanh", w, 1e-5, depth, width=200, ensemble=ensemble,
                                        input_variance=v)
            tops[ensemble].append(emp.lambda_max)
            if ensemble == "orthogonal":
                assert theory.spread < 0.13
                own = emp.eigenvalues.mean()  # the network's own m₁ (its ‖x‖² is one draw)
                assert own <= emp.lambda_max <= own * (1 + 4 * theory.spread)
            else:
                assert theory.spread > 0.49
    slope = {e: np.polyfit(np.log(depths), np.log(t), 1)[0] for e, t in tops.items()}
    assert 0.9 < slope["orthogonal"] < 1.2
    assert slope["gaussian"] > 1.6
