"""Fan & Wang (2020) CK and NTK spectra of deep networks against eigenvalues of the kernels of
actual random networks (derive.simulate through derive.freeprob.sampling), their densities against
their exact moments, and bad input.

Statistics: each moment is estimated on SEEDS independent networks with n = 1000 samples; the
tolerance is t·(standard error over the seeds), t the two-sided 1e-3 quantile of Student's t with
SEEDS − 1 degrees of freedom (computed below with mpmath), so a correct limit fails a check with
probability 1e-3 plus what the O(1/n) finite-size bias adds.  Densities: Kolmogorov–Smirnov
distance of the pooled eigenvalues from the CDF of the limit, against Kolmogorov's threshold
√(ln(2/α)/(2N)) at α = 1e-3 for N i.i.d. samples (eigenvalues repel: their empirical CDF is closer
to the limit than i.i.d. samples, so the threshold is conservative).
"""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from threadpoolctl import threadpool_limits

import derive
from derive.errors import DomainError
from derive.freeprob.sampling import kernel_eigenvalues, ks_distance
from derive.freeprob.tanh_sinh import tanh_sinh

N, D0, SEEDS, ALPHA = 1000, 2000, 4, 1e-3
RATIOS = ["1/2", "2/3"]  # widths d_1 = 2000, d_2 = 1500


def student_quantile(dof: int, alpha: float) -> float:
    """t with P(|T| > t) = alpha for Student's T with `dof` degrees of freedom:
    P(|T| > t) = I_{dof/(dof + t²)}(dof/2, 1/2) (regularised incomplete beta), solved by mpmath."""
    tail = lambda t: mp.betainc(dof / 2, mp.mpf(1) / 2, 0, dof / (dof + t**2), regularized=True)  # noqa: E731
    return float(mp.findroot(lambda t: tail(t) - alpha, 5))


def _mp(value) -> mp.mpf:
    return mp.mpf(str(sp.N(value, 35)))


def test_student_quantile():
    assert abs(student_quantile(1, 0.05) - 12.706204736) < 1e-8  # t-table values
    assert abs(student_quantile(9, 0.001) - 4.780912586) < 1e-8


@pytest.fixture(scope="module")
def tanh_kernels():
    """(CK, NTK, their eigenvalues per seed) for the normalised tanh, two hidden layers."""
    mu0 = derive.MarchenkoPastur(sp.Rational(N, D0))
    ck = derive.ck_spectrum("tanh", mu0, RATIOS, normalise=True)
    ntk = derive.ntk_spectrum("tanh", mu0, RATIOS, normalise=True)
    with threadpool_limits(1):  # multithreaded LAPACK on 2 shared cores can be many times slower
        eig = _draw(ck)
    return {"CK": ck, "NTK": ntk}, eig


def _draw(ck) -> dict:
    """Eigenvalues of the CK and the NTK of SEEDS networks on unit Gaussian inputs."""
    eig = {"CK": [], "NTK": []}
    for seed in range(SEEDS):
        x0 = np.random.default_rng([3, seed]).standard_normal((D0, N))
        x0 /= np.linalg.norm(x0, axis=0)  # unit inputs: their Gram has the limit MP(n/d0)
        c, t = kernel_eigenvalues(ck, x0, seed)
        eig["CK"].append(c)
        eig["NTK"].append(t)
    return eig


def test_normalisation_applied_and_reported(tanh_kernels):
    laws, _ = tanh_kernels
    ck = laws["CK"]
    shift, scale = ck.normalisation
    with mp.workdps(35):  # not the global precision: another test module may have set it, or not
        second = mp.quad(lambda u: mp.tanh(u) ** 2 * mp.npdf(u), [-mp.inf, 0, mp.inf])
        assert shift == 0 and abs(_mp(scale) - mp.sqrt(second)) < 1e-28  # 30-digit rationals
        # b² = (E σ′)²/Var σ, a = E σ′²/Var σ for the normalised tanh
        b = mp.quad(lambda u: (1 - mp.tanh(u) ** 2) * mp.npdf(u), [-mp.inf, 0, mp.inf])
        a = mp.quad(lambda u: (1 - mp.tanh(u) ** 2) ** 2 * mp.npdf(u), [-mp.inf, 0, mp.inf])
        assert abs(_mp(ck.b2) - b**2 / second) < 1e-28
        assert abs(_mp(ck.a) - a / second) < 1e-28
    assert "normalisation" in repr(ck)


@pytest.mark.parametrize("kind", ["CK", "NTK"])
def test_moments_against_random_networks(tanh_kernels, kind):
    laws, eig = tanh_kernels
    law = laws[kind]
    t = student_quantile(SEEDS - 1, ALPHA)
    per_seed = np.array([[np.mean(e**k) for k in (1, 2, 3)] for e in eig[kind]])
    for k, theory in enumerate(law.moments(3)):
        values = per_seed[:, k]
        stderr = values.std(ddof=1) / math.sqrt(SEEDS)
        assert abs(values.mean() - float(theory)) <= t * stderr, (kind, k + 1, values, float(theory), stderr)


@pytest.mark.parametrize("kind", ["CK", "NTK"])
def test_density_against_pooled_eigenvalues(tanh_kernels, kind):
    laws, eig = tanh_kernels
    pooled = np.sort(np.concatenate(eig[kind]))
    threshold = math.sqrt(math.log(2 / ALPHA) / (2 * pooled.size))
    assert ks_distance(laws[kind], pooled) < threshold


@pytest.mark.parametrize("kind", ["CK", "NTK"])
def test_density_integrates_to_the_exact_moments(tanh_kernels, kind):
    law = tanh_kernels[0][kind]
    support = law.support()
    assert abs(support.mass - 1) <= 1e-8 + support.mass_error  # the reported bound holds
    exact = [float(m) for m in law.moments(3)]
    for k in range(4):
        total = sum(tanh_sinh(lambda t, k=k: t**k * law.density(t), a, b)[0] for a, b in support.bands)
        total += sum(m * a**k for a, m in support.atoms)
        target = 1.0 if k == 0 else exact[k - 1]
        assert abs(total - target) < 1e-8 * target, (kind, k, total, target)


def test_stieltjes_against_the_moment_series(tanh_kernels):
    # far from the support G(z) = Σ m_k z^{-k-1}: the continuation against the exact series
    for law in tanh_kernels[0].values():
        ms = [1.0] + [float(m) for m in law.moments(8)]  # truncation (1/40)^9 ≈ 4e-15 relative
        z = 40 * law.support().upper * np.exp(0.7j)
        series = sum(m / z ** (k + 1) for k, m in enumerate(ms))
        assert abs(law.stieltjes(np.array([z]))[0] - series) < 1e-12 * abs(series)


def test_linear_ck_is_the_free_product_and_ntk_the_sum_of_kernels():
    # σ(x) = x: b = a = 1 and K_ℓ = X_{ℓ−1}ᵀ Z_ℓ X_{ℓ−1}, Z_ℓ = W_ℓᵀW_ℓ/d_ℓ: the CK is
    # MP_{γ_2} ⊠ MP_{γ_1} ⊠ μ_0 exactly (Fan & Wang 2020, Thm 3.4 at b = 1).  The NTK is
    # K_2 + K_1 + K_0 (r₊ = 0, q_ℓ = 1): mean 3, and since Z_ℓ is free of the layers below with
    # normalised trace 1, tr(K_ℓ K_ℓ′)/n → tr(K_{ℓ−1} K_ℓ′)/n → … → m₂(K_ℓ′) for ℓ′ < ℓ.
    mu0 = derive.MarchenkoPastur(sp.Rational(1, 2))
    ck = derive.ck_spectrum("x", mu0, RATIOS)
    product = derive.free_product(derive.MarchenkoPastur(sp.Rational(2, 3)),
                                  derive.MarchenkoPastur(sp.Rational(1, 2)), mu0)
    assert ck.moments(5) == product.moments(5)
    ntk = derive.ntk_spectrum("x", mu0, RATIOS)
    assert ntk.r_plus == 0 and ntk.q == (1, 1, 1)
    m2 = [mu0.moments(2)[1]] + [derive.ck_spectrum("x", mu0, RATIOS[:ell]).moments(2)[1] for ell in (1, 2)]
    cross = m2[0] + m2[1] + m2[0]  # (ℓ, ℓ′) = (1, 0), (2, 1), (2, 0)
    assert ntk.moments(2) == (3, sum(m2) + 2 * cross)


def test_bad_input():
    mu0 = derive.MarchenkoPastur(1)
    with pytest.raises(DomainError, match=r"E σ = .*normalise=True"):
        derive.ck_spectrum("tanh", mu0, [1])
    with pytest.raises(DomainError, match=r"E σ = 0.3989"):  # ReLU: E σ = 1/√(2π)
        derive.ntk_spectrum("relu", mu0, [1])
    with pytest.raises(DomainError, match="ratio"):
        derive.ck_spectrum("x", mu0, [0])
    with pytest.raises(DomainError, match="at least one layer"):
        derive.ntk_spectrum("x", mu0, [])
    with pytest.raises(DomainError, match="spectral law"):
        derive.ck_spectrum("x", 1, [1])
    relu = derive.ntk_spectrum("relu", mu0, [1], normalise=True)
    shift, scale = relu.normalisation
    assert abs(_mp(shift) - 1 / mp.sqrt(2 * mp.pi)) < 1e-28
    assert abs(_mp(scale) - mp.sqrt(0.5 - 0.5 / mp.pi)) < 1e-28
