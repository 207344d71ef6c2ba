"""derive.freeprob: transforms against mpmath, densities integrating to their moments, Jacobian
spectra against eigenvalues of actual random products, bad input."""

import functools
import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from threadpoolctl import threadpool_limits

import derive
from derive.errors import DomainError, NoFixedPointError
from derive.freeprob import affine
from derive.freeprob.relation import W, g_
from derive.freeprob.sampling import cdf, jacobian_eigenvalues, ks_distance

mp.mp.dps = 30


def _mp_mp_density(gamma, v):
    """Marchenko–Pastur a.c. density written out (Marchenko & Pastur 1967)."""
    lo, hi = v * (1 - mp.sqrt(gamma)) ** 2, v * (1 + mp.sqrt(gamma)) ** 2
    return (lambda t: mp.sqrt((hi - t) * (t - lo)) / (2 * mp.pi * gamma * v * t)), lo, hi


@pytest.mark.parametrize("gamma", [sp.Rational(1, 2), 1, 2])
def test_marchenko_pastur_stieltjes_against_mpmath(gamma):
    law = derive.MarchenkoPastur(gamma, sp.Rational(3, 2))
    rho, lo, hi = _mp_mp_density(mp.mpf(gamma), mp.mpf(1.5))
    atom = max(0, 1 - 1 / mp.mpf(gamma))
    for z in [2 + 1j, -1 + 0.5j, 0.3 + 0.01j, 10.0 + 0j]:
        points = [lo, *([mp.mpf(z.real)] if lo < z.real < hi else []), hi]
        ref = mp.quad(lambda t, z=z: rho(t) / (z - t), points) + atom / z
        assert abs(law.stieltjes(np.array([z]))[0] - complex(ref)) < 1e-12 * (1 + abs(complex(ref)))


def test_s_and_r_transforms_satisfy_voiculescu_identity():
    # S(w) R(w S(w)) = 1 for laws with an S-transform (Voiculescu; Nica & Speicher, Lecture 18)
    for law in [derive.MarchenkoPastur(2, 3), derive.MarchenkoPastur(sp.Rational(1, 3)), derive.PointMass(5),
                derive.TwoPoint(sp.Rational(1, 4), 1, 3)]:
        s, r = law.S, law.R
        for w in [sp.Rational(1, 10), sp.Rational(-1, 7), sp.Rational(1, 5)]:
            sw = s.subs(W, w)
            assert abs(complex(sp.N(sw * r.subs(g_, w * sw), 40)) - 1) < 1e-25


def _mp_moment_check(law, k_max, tol, dps=18):
    """Moments and mass from integrating the float64 density with mpmath quadrature (split at
    the edges), plus the atoms, against the exact moments."""
    support = law.support()
    exact = [float(m) for m in law.moments(k_max)]

    def rho(t):
        return mp.mpf(float(law.density(np.array([float(t)]))[0]))

    for k in range(0, k_max + 1):
        with mp.workdps(dps):  # float64 density: mpmath's rule (depth at singular ends) is the point
            total = sum(mp.quad(lambda t, k=k: t**k * rho(t), [a, b]) for a, b in support.bands)
        total += sum(m * a**k for a, m in support.atoms)
        target = 1.0 if k == 0 else exact[k - 1]
        assert abs(float(total) - target) < tol * max(1.0, abs(target)), (law, k, float(total), target)


@pytest.mark.parametrize("law", [
    derive.MarchenkoPastur(2), derive.MarchenkoPastur(sp.Rational(1, 2), 2), derive.Semicircle(3),
    derive.free_product(derive.MarchenkoPastur(sp.Rational(1, 2)), derive.TwoPoint(sp.Rational(1, 3), 1, 2)),
    derive.free_sum(derive.MarchenkoPastur(sp.Rational(1, 2)), derive.Semicircle(1)),
    affine(derive.MarchenkoPastur(2), sp.Rational(1, 2), 3),
], ids=["mp2", "mp-half", "semicircle", "mp-x-twopoint", "mp+semicircle", "affine-mp"])
def test_density_integrates_to_the_moments(law):
    _mp_moment_check(law, 3, 1e-10)


@pytest.mark.parametrize("args", [("relu", "gaussian", 3), ("hard_tanh", "orthogonal", 2),
                                  ("linear", "gaussian", 2)])
def test_jacobian_density_integrates_to_the_moments(args):
    act, weights, depth = args
    sb = 0.05 if act == "hard_tanh" else 0
    J = derive.jacobian_spectrum(act, depth=depth, weights=weights, sigma_b2=sb)
    # the support's own check (tanh-sinh) and mpmath's both give mass 1 and the moments
    assert abs(J.support().mass - 1) < 1e-8
    _mp_moment_check(J.law, 2, 1e-8, dps=30)  # divergent at 0: mpmath needs its full depth


def test_known_variances_at_criticality():
    # Pennington et al. 2017: ReLU at criticality, σ²/m₁² = 2L (Gaussian), L (orthogonal)
    for depth in (1, 4, 16):
        assert derive.jacobian_spectrum("relu", depth=depth).variance == 2 * depth
        assert derive.jacobian_spectrum("relu", depth=depth, weights="orthogonal").variance == depth
        assert derive.jacobian_spectrum("linear", depth=depth, weights="orthogonal").variance == 0
    J = derive.jacobian_spectrum("relu", depth=5)
    assert J.moments(2)[1] - J.moments(1)[0] ** 2 == J.variance


def test_derivative_laws_against_mpmath():
    q = mp.mpf("0.37")
    ht = derive.derivative_law("hard_tanh", "0.37")
    mass = mp.quad(lambda h: mp.npdf(h, 0, mp.sqrt(q)), [-1, 0, 1])
    assert abs(float(dict(ht.points)[1]) - float(mass)) < 1e-25
    tanh = derive.derivative_law("tanh", "0.37")
    d = lambda u: (1 - mp.tanh(mp.sqrt(q) * u) ** 2) ** 2  # noqa: E731
    for k, m in enumerate(tanh.moments(3), start=1):
        ref = mp.quad(lambda u, k=k: d(u) ** k * mp.npdf(u), [-mp.inf, 0, mp.inf])
        assert abs(sp.N(m, 25) - ref) < 1e-20
    for z in [2 + 0.5j, 0.5 + 0.05j, -1 + 0j]:
        ref = mp.quad(lambda u, z=z: mp.npdf(u) / (z - d(u)), [-mp.inf, -2, 0, 2, mp.inf])
        assert abs(tanh.stieltjes(np.array([z]))[0] - complex(ref)) < 1e-11
    assert abs(tanh.support().mass - 1) < 1e-8




def _gaussian_mass_below(d2, t, a, b):
    """P(a < h < b, d2(h) <= t) for h ~ N(0, 1) and d2 monotone on [a, b]."""
    lo, hi = d2(a) - t, d2(b) - t
    if lo <= 0 and hi <= 0:
        return mp.ncdf(b) - mp.ncdf(a)
    if lo > 0 and hi > 0:
        return mp.mpf(0)
    root = mp.findroot(lambda h: d2(h) - t, (a, b), solver="bisect")
    return mp.ncdf(root) - mp.ncdf(a) if lo <= 0 else mp.ncdf(b) - mp.ncdf(root)


@pytest.mark.parametrize("name", ["silu", "sin", "gelu", "elu"])
def test_non_monotone_derivative_laws_against_mpmath(name):
    # φ′² not monotone on either side of 0 (silu, gelu: a local maximum low in the band; sin: 13
    # extrema on |h| <= 10.5) or constant on a half-line (elu: an atom 1/2 at 1).  The density
    # ρ(t) = Σ_{φ′(h)² = t} N(h)/|∂_h φ′(h)²| with every root found here by mpmath in each monotone
    # piece (between critical points located on a grid of step 0.01 and refined by findroot),
    # including t next to the critical values; the CDF against the Gaussian mass of {φ′(h)² <= t}
    # from the same roots; and the law's own mass check.  The pieces used to be
    # found on a grid: two roots within a step were missed (silu, sin integrated to 0.9967 and
    # 0.999998; gelu's mass check passed at 1.023)
    x = sp.Symbol("x")
    d2 = sp.lambdify(x, derive.activation(name).derivative(x) ** 2, "mpmath")
    slope = sp.lambdify(x, sp.diff(derive.activation(name).derivative(x) ** 2, x).subs(sp.DiracDelta(x), 0),
                        "mpmath")  # elu: φ′ is continuous at its kink
    law = derive.derivative_law(name, 1)
    support = law.support()
    with mp.workdps(25):
        grid = [mp.mpf(h) / 100 for h in range(-1050, 1051)]
        signs = [mp.sign(slope(h)) for h in grid]
        isolated = [h for i, h in enumerate(grid[1:-1], 1)  # zeros of the slope (not a flat run)
                    if signs[i] == 0 and signs[i - 1] != 0 and signs[i + 1] != 0]
        critical = sorted(isolated + [mp.findroot(slope, (a, b), solver="anderson") for a, b, sa, sb in
                                      zip(grid, grid[1:], signs, signs[1:], strict=False) if sa * sb < 0])
        ends = [grid[0], *critical, grid[-1]]
        pieces = [(a, b) for a, b in zip(ends, ends[1:], strict=False) if slope((a + b) / 2) != 0]
        top = support.upper
        near = [v + e * top for v in sorted(float(d2(h)) for h in critical) for e in (-1e-6, 1e-6)]
        ts = np.array([*np.linspace(0.02, 0.98, 9) * top, *(t for t in near if 0 < t < top)])
        density, distribution = law.density(ts), cdf(law, ts)
        for t, got, below in zip(ts, density, distribution, strict=True):
            roots = [mp.findroot(lambda h, t=t: d2(h) - t, (a, b), solver="bisect")
                     for a, b in pieces if (d2(a) - t) * (d2(b) - t) < 0]
            exact = mp.fsum(mp.npdf(h) / abs(slope(h)) for h in roots)
            assert abs(got - exact) <= 1e-9 * exact, (name, t, got, exact)
            mass = mp.fsum(_gaussian_mass_below(d2, t, a, b) for a, b in pieces) + (
                sum(m for a, m in support.atoms if a <= t))  # the flat pieces are the atoms
            assert abs(below - mass) < 1e-9, (name, t)
    assert abs(support.mass - 1) < 1e-8
    atoms = dict(support.atoms)
    assert (name == "elu") == bool(atoms) and all(abs(a - 1) < 1e-15 and abs(m - 0.5) < 1e-15
                                                  for a, m in atoms.items())


def test_derivative_law_stieltjes_next_to_its_support_against_mpmath():
    # E[1/(z − d)] just above the support of D², where the poles of the integrand pinch the real
    # u-axis: the contour rule against mp.quad split at the roots of d(√q u) = Re z (30 digits).
    # sigmoid at z = 0.05 + 1e-4 i sits next to its critical value 1/16: two successive levels of a
    # rule that refined only some panels agreed there on a value 4e-10 off
    q = mp.mpf("0.5")
    sigmoid, tanh = (lambda h: (mp.exp(-h) / (1 + mp.exp(-h)) ** 2) ** 2), (lambda h: mp.sech(h) ** 4)
    cases = [("sigmoid", sigmoid, 0.05 + 1e-4j), ("tanh", tanh, 0.3 + 1e-6j), ("tanh", tanh, 0.999 + 1e-9j)]
    with mp.workdps(30):
        for name, d, z in cases:
            law = derive.derivative_law(name, "0.5")
            r = mp.findroot(lambda u, d=d, z=z: d(mp.sqrt(q) * u) - z.real, 0.5)
            r = abs(r)
            points = [-mp.inf, -r - 0.1, -r, -r + 1e-3, 0, r - 1e-3, r, r + 0.1, mp.inf]
            integrand = lambda u, d=d, z=z: mp.npdf(u) / (z - d(mp.sqrt(q) * u))  # noqa: E731
            ref = complex(mp.quad(integrand, points, maxdegree=10))
            assert abs(law.stieltjes(np.array([z]))[0] - ref) <= 1e-11 * abs(ref), (name, z, ref)


# --- tanh: the subordination route against an independent mpmath solution -------------------
# The law of JJᵀ for tanh has no algebraic equation: ρ comes from Newton's method on the
# subordination equations, G_{D²} by quadrature on a deformed contour (derive.freeprob.derivative).
# Here the same equations are written out from the S-transforms, S_{JJᵀ} = S_{WWᵀ}^L S_{D²}^L:
# with w = M(z) and χ = M_{D²}⁻¹(w), z = M⁻¹(w) = (1 + w)/(w S_{JJᵀ}(w)) and
# S_{D²}(w) = (1 + w)/(w χ) give z = σ_w^{2L} w^{L−1}(1 + w) χ^L (Gaussian W, S_{WWᵀ} = 1/(σ_w²(1 + w)))
# or z = σ_w^{2L} (w/(1 + w))^{L−1} χ^L (orthogonal, S_{WWᵀ} = 1/σ_w²), and w = M_{D²}(χ) by mp.quad;
# solved by mp.findroot at 25 digits from the float64 G (public .stieltjes) on the branch with Im χ >= 0.


def _mp_tanh_density(J, x):
    q, v, L = mp.mpf(float(J.q_star)), mp.mpf(float(J.sigma_w2)), J.depth
    sq = mp.sqrt(q)

    def one_plus_m(chi):  # 1 + M_{D²}(χ) = χ E[1/(χ − sech⁴(√q u))], split where d = Re χ
        points = [-mp.inf, 0, mp.inf]
        if 0 < chi.real < 1:
            r = mp.acosh(chi.real ** mp.mpf(-0.25)) / sq
            points = [-mp.inf, -r - 1, -r, 0, r, r + 1, mp.inf]
        return chi * mp.quad(lambda u: mp.npdf(u) / (chi - mp.sech(sq * u) ** 4), points)

    def a(p):  # z / χ^L as a function of p = 1 + w
        return v**L * (p - 1) ** (L - 1) * p if J.weights == "gaussian" else v**L * ((p - 1) / p) ** (L - 1)

    p0 = x * complex(J.stieltjes(np.array([float(x) + 0j]))[0])
    p0 = mp.mpc(p0.real, p0.imag)
    roots = [(x / a(p0)) ** (mp.mpf(1) / L) * mp.expjpi(2 * mp.mpf(k) / L) for k in range(L)]
    chi0 = min((r for r in roots if mp.im(r) >= 0), key=lambda r: abs(one_plus_m(r) - p0))
    chi = mp.findroot(lambda c: a(one_plus_m(c)) * c**L - x, chi0, tol=mp.mpf(10) ** -40)
    return float(-mp.im(one_plus_m(chi) / x) / mp.pi)


@pytest.mark.parametrize("weights,points", [("gaussian", (1e-6, 1.0, 8.0)), ("orthogonal", (1e-4, 0.5))])
def test_tanh_jacobian_density_against_an_independent_mpmath_solution(weights, points):
    # next to the divergence at 0 (Gaussian: ρ ~ λ^{-3/4}), in the bulk, and where the orthogonal
    # density rises towards 0: within the stated 1e-10 relative (derive.freeprob.subordination)
    J = derive.jacobian_spectrum("tanh", depth=3, sigma_b2=0.05, weights=weights)
    with mp.workdps(25):
        for x in points:
            ref = _mp_tanh_density(J, mp.mpf(x))
            assert abs(J.density(np.array([x]))[0] - ref) <= 1e-10 * ref, (x, ref)
    assert abs(J.support().mass - 1) <= 1e-8


def test_tanh_depth_one_orthogonal_is_the_scaled_law_of_d2():
    # σ_w² D² exactly: the subordinate variable χ = z/σ_w² lies on the real axis inside the support of
    # D², where only the deformed contour reaches G_{D²}(x + i0); against the change of variables
    # ρ(λ) = 2 N(u; 0, 1)/(σ_w² |∂_u sech⁴(√q u)|), sech⁴(√q u) = λ/σ_w², at 30 digits
    J = derive.jacobian_spectrum("tanh", depth=1, sigma_b2=0.05, weights="orthogonal")
    q, v = mp.mpf(float(J.q_star)), mp.mpf(float(J.sigma_w2))
    for t in (1e-6, 0.3, 0.99):
        x = float(v * t)
        u = mp.acosh((mp.mpf(x) / v) ** mp.mpf(-0.25)) / mp.sqrt(q)
        slope = 4 * mp.sqrt(q) * mp.sech(mp.sqrt(q) * u) ** 4 * mp.tanh(mp.sqrt(q) * u)
        ref = float(2 * mp.npdf(u) / (v * slope))
        assert abs(J.density(np.array([x]))[0] - ref) <= 1e-10 * ref, (t, ref)
    assert abs(J.support().upper - float(v)) <= 1e-9 * float(v)


# --- against actual random products ----------------------------------------------------------
# JJᵀ of networks drawn by derive.simulate (derive.freeprob.sampling.jacobian_eigenvalues), depth 3,
# width WIDTH, SEEDS seeds.  Moments: the tolerance is t·(standard error over the seeds), t the
# two-sided 1e-3 quantile of Student's t with SEEDS − 1 degrees of freedom (12.92 for 3); the
# O(1/width) finite-size bias is not modelled.  Densities: KS of the pooled eigenvalues against
# Kolmogorov's threshold (derive.freeprob.sampling.ks_distance).

WIDTH, SEEDS, T_QUANTILE = 1000, 4, 12.924  # t_{0.9995}(3 dof), checked in test_freeprob_kernels

CASES = [("relu", "gaussian"), ("relu", "orthogonal"), ("hard_tanh", "gaussian"),
         ("hard_tanh", "orthogonal"), ("tanh", "gaussian"), ("tanh", "orthogonal"), ("linear", "gaussian"),
         ("linear", "orthogonal"), ("elu", "gaussian")]  # elu: D² an atom 1/2 at 1 beside a density


@functools.cache
def _simulated(act, weights):
    """(spectrum, eigenvalues of JJᵀ per seed) for one case, at its critical point."""
    sb = 0.0 if act in ("relu", "linear") else 0.05
    J = derive.jacobian_spectrum(act, depth=3, weights=weights, sigma_b2=sb)
    with threadpool_limits(1):  # multithreaded LAPACK QR on 2 shared cores: 1.6 s instead of 0.03 s
        return J, [jacobian_eigenvalues(J, WIDTH, seed) for seed in range(SEEDS)]


@pytest.mark.parametrize("act,weights", CASES)
def test_jacobian_mean_and_variance_against_random_products(act, weights):
    J, eig = _simulated(act, weights)
    means = np.array([e.mean() for e in eig])
    variances = np.array([e.var() for e in eig])
    for values, theory in ((means, float(J.mean)), (variances, float(J.variance))):
        stderr = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - theory) <= T_QUANTILE * stderr + 1e-12, (values, theory, stderr)


@pytest.mark.parametrize("act,weights", CASES)
def test_jacobian_density_against_pooled_eigenvalues(act, weights):
    J, eig = _simulated(act, weights)
    pooled = np.sort(np.concatenate(eig))
    ks = ks_distance(J.law, pooled)
    n = pooled.size
    # Kolmogorov's threshold at level 1e-3 for n i.i.d. samples: sqrt(ln(2/α)/(2n)); eigenvalues
    # repel, so their empirical CDF is closer to the limit than i.i.d. samples: conservative.
    threshold = math.sqrt(math.log(2 / 1e-3) / (2 * n))
    assert ks < threshold, (ks, threshold)


def test_conjugate_kernel_of_an_already_normalised_activation():
    # the normalised ReLU written out is used as it is (no normalisation reported) and agrees with
    # normalise=True; the spectra against random networks: tests/test_freeprob_kernels.py
    act = "(Max(0,x) - 1/sqrt(2*pi))/sqrt(1/2 - 1/(2*pi))"
    mu0 = derive.MarchenkoPastur(sp.Rational(1, 2))
    law = derive.ck_spectrum(act, mu0, [sp.Rational(1, 2)])
    assert law.normalisation is None
    assert law.moments(3) == derive.ck_spectrum("relu", mu0, [sp.Rational(1, 2)], normalise=True).moments(3)
    with pytest.raises(DomainError, match="E σ"):
        derive.ck_spectrum("tanh", derive.MarchenkoPastur(1), [1])


def test_dynamical_isometry_verdicts():
    assert derive.jacobian_spectrum("linear", depth=50, weights="orthogonal").isometry.verdict.startswith(
        "dynamical isometry")
    assert "linearly" in derive.jacobian_spectrum("relu", depth=10, weights="orthogonal").isometry.verdict
    small_q = derive.jacobian_spectrum("hard_tanh", sigma_w2=1.05, sigma_b2=1e-6, depth=10,
                                       weights="orthogonal")
    assert small_q.isometry.verdict.startswith("approximate")
    growth = derive.jacobian_spectrum("relu", depth=1).max_eigenvalue_growth([1, 2, 4])
    assert np.all(np.diff(growth) > 0)


def test_block_of_the_layer_algebra_as_activation():
    from derive.layers import Dense, as_layer, serial

    block = derive.jacobian_spectrum(serial(Dense(2, 0, ensemble="orthogonal"), "relu"), depth=3)
    plain = derive.jacobian_spectrum("relu", sigma_w2=2, depth=3, weights="orthogonal")
    assert (block.S, block.variance, block.q_star) == (plain.S, plain.variance, plain.q_star)
    layer = derive.jacobian_spectrum(as_layer("relu"), depth=2)
    assert layer.S == derive.jacobian_spectrum("relu", depth=2).S
    with pytest.raises(DomainError, match="fixes the variances"):
        derive.jacobian_spectrum(serial(Dense(2, 0), "relu"), sigma_w2=2)
    with pytest.raises(DomainError, match="not of that form"):
        derive.jacobian_spectrum(serial(Dense(2, 0), "relu", Dense(1, 0), "relu"))


def test_readable_s_transform():
    J = derive.jacobian_spectrum("hard_tanh", sigma_b2=0.05, depth=2, weights="orthogonal")
    assert all(isinstance(a, sp.Float) for a in J.S.atoms(sp.Number) if not a.is_Integer)
    assert all(abs(a) < 10 for a in J.S.atoms(sp.Number))  # no 30-digit rationals


def test_latex():
    J = derive.jacobian_spectrum("relu", depth=2)
    assert derive.latex(J) == r"S_{JJ^\top}(w) = \frac{1}{\left(2 w + 1\right)^{2}}"
    assert "MP" in derive.MarchenkoPastur(2)._repr_latex_()


def test_bad_input():
    with pytest.raises(DomainError, match="ratio"):
        derive.MarchenkoPastur(0)
    with pytest.raises(DomainError, match="probability"):
        derive.TwoPoint(1.5, 0, 1)
    with pytest.raises(DomainError, match="sum to"):
        derive.freeprob.Atomic(((0, 0.5), (1, 0.2)))
    with pytest.raises(DomainError, match="depth"):
        derive.jacobian_spectrum("relu", depth=0)
    with pytest.raises(NoFixedPointError, match="fixed point"):
        derive.jacobian_spectrum("relu", sigma_w2=3, sigma_b2=0.1, depth=2)
    with pytest.raises(DomainError, match="Dirac"):
        derive.derivative_law("step", 1)
    with pytest.raises(DomainError, match="mean 0"):
        _ = derive.Semicircle(1).S
