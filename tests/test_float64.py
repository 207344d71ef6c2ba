"""Float64 right over the whole domain, and error bounds that hold.

Every reference here is an adaptive mpmath integral (or root) written in this file, split at the
kinks and at the scale 1/√q of the integrand — never the engine's own reference routines.  A
moment's reported error bound must contain its actual error, and where its method claims float64
accuracy the error must be <= 1e-12 relative (to |V|, |D|, or √(V₁V₂), √(D₁D₂) for C, C_d).
"""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import derive
from derive.activations import BUILTINS
from derive.gaussian.moments import moments_of
from derive.layers import Dense, serial
from derive.meanfield import MeanField, Regime
from derive.symbols import x

DPS = 25
QS = (1e-6, 1e-2, 1.0, 1e2, 1e4, 1e8)
#: oscillating integrands (sin, cos): adaptive quadrature is a trustworthy reference only while a
#: period 2π/√q spans a fair part of the Gaussian; beyond, E cos(a z) = e^{−a²/2} is the reference
OSCILLATING = {"sin", "cos"}


def _mp_function(expr):
    return sp.lambdify(x, expr, modules=[{"Heaviside": lambda t, h0=0.5: mp.mpf(t > 0) + (t == 0) * h0,
                                          "sign": mp.sign, "Max": max, "Min": min}, "mpmath"])


def _mp_1d(expr, qv, kinks=()):
    """E f(√q z) by adaptive mpmath quadrature, split at the kinks and the scale 1/√q."""
    f = _mp_function(expr)
    with mp.workdps(DPS):
        r = mp.sqrt(mp.mpf(qv))
        cuts = {mp.mpf(0), *(mp.mpf(k) / r for k in kinks), *(s / r for s in (-4, -1, 1, 4))}
        cuts = sorted(c for c in cuts if abs(c) < 40)
        return mp.quad(lambda z: f(r * z) * mp.npdf(z), [-mp.inf, *cuts, mp.inf])


def _relative(value, reference, scale) -> float:
    return float(abs(mp.mpf(float(value)) - reference) / scale)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_one_dimensional_moments_meet_their_bounds_from_q_1e_minus_6_to_1e8(name):
    act = derive.activation(name)
    moments = moments_of(act)
    integrands = {"V": act(x) ** 2}
    if not moments.has_jump:
        integrands["D"] = act.derivative(x) ** 2
    kinks = [float(k) for k in act.kinks if k.is_number]
    for label, integrand in integrands.items():
        e = getattr(moments, label).evaluate(np.array(QS))
        for i, qv in enumerate(QS):
            if name in OSCILLATING and qv > 1e2:  # sin² and cos² = (1 ∓ cos 2u)/2, E cos(2√q z) = e^{−2q}
                with mp.workdps(DPS):
                    sign = -1 if (name == "sin") == (label == "V") else 1
                    reference = (1 + sign * mp.exp(-2 * mp.mpf(qv))) / 2
            else:
                reference = _mp_1d(integrand, qv, kinks)
            error = abs(mp.mpf(float(e.value[i])) - reference)
            assert error <= e.error[i] + 1e-300, (label, qv, float(error), e.error[i])
            assert error <= 1e-12 * abs(reference) + 1e-300, (label, qv, float(error / abs(reference)))


# E g(μ + σ w), w ~ N(0, 1), in closed form: the inner integral of the 2-D references below
PHI, phi = mp.ncdf, mp.npdf
INNER = {
    "relu": (lambda m, s: m * PHI(m / s) + s * phi(m / s), lambda m, s: PHI(m / s)),
    "erf": (lambda m, s: mp.erf(m / mp.sqrt(1 + 2 * s * s)),
            lambda m, s: 2 / mp.sqrt(mp.pi) * mp.exp(-m * m / (1 + 2 * s * s)) / mp.sqrt(1 + 2 * s * s)),
    "hard_tanh": (lambda m, s: -PHI((-1 - m) / s) + PHI((m - 1) / s)
                  + m * (PHI((1 - m) / s) - PHI((-1 - m) / s)) + s * (phi((-1 - m) / s) - phi((1 - m) / s)),
                  lambda m, s: PHI((1 - m) / s) - PHI((-1 - m) / s)),
    "elu": (lambda m, s: mp.exp(m + s * s / 2) * PHI(-(m + s * s) / s) - PHI(-m / s) + m * PHI(m / s)
            + s * phi(m / s),
            lambda m, s: mp.exp(m + s * s / 2) * PHI(-(m + s * s) / s) + PHI(m / s)),
}
POINTS_2D = [(1.0, 1.0, 0.3), (0.7, 1.3, -0.6), (1e-3, 2e-3, 0.9), (50.0, 20.0, -0.2),
             (2.0, 2.0, 1 - 1e-12), (3.0, 0.5, -(1 - 1e-12)), (1e4, 1e4, 0.999999)]


def _mp_2d(act, which, q1, q2, c):
    """E f(u) f(v) = ∫Dz f(√q₁ z) E[f(v) | u], the inner expectation in closed form (at 45 digits:
    near c = −1 the value of ReLU's kernel is ~1e-19 of its parts)."""
    f = _mp_function(act(x) if which == 0 else act.derivative(x))
    inner = INNER[act.name.split("(")[0]][which]
    with mp.workdps(45):
        r1, r2, cc = mp.sqrt(mp.mpf(q1)), mp.sqrt(mp.mpf(q2)), mp.mpf(c)
        s = r2 * mp.sqrt((1 - cc) * (1 + cc))
        cuts = {mp.mpf(0), *(k / r1 for k in (-1, 1)), *(k / (r2 * cc) for k in (-1, 1))}
        cuts = sorted(t for t in cuts if abs(t) < 40)
        return mp.quad(lambda z: f(r1 * z) * inner(r2 * cc * z, s) * phi(z), [-mp.inf, *cuts, mp.inf])


@pytest.mark.parametrize("name", list(INNER))
def test_two_dimensional_moments_meet_their_bounds_including_c_near_plus_and_minus_one(name):
    act = derive.activation(name)
    moments = moments_of(act)
    for which, label in enumerate(("C", "Cd")):
        one = moments.V if which == 0 else moments.D
        for q1, q2, c in POINTS_2D:
            e = getattr(moments, label).evaluate(np.array([q1]), np.array([q2]), np.array([c]))
            reference = _mp_2d(act, which, q1, q2, c)
            scale = mp.sqrt(mp.mpf(float(one(q1))) * mp.mpf(float(one(q2))))
            error = abs(mp.mpf(float(e.value[0])) - reference)
            bound = e.error[0] if e.error is not None else e.relative * float(scale)
            assert error <= bound + 1e-300, (label, q1, q2, c, float(error), bound, e.methods)
            assert error <= 1e-12 * scale, (label, q1, q2, c, float(error / scale), e.methods)


# --- fixed points at large variance, against independent mpmath roots --------------------------------


def _mp_q_star(phi_expr, sw, sb, guess, kinks=(0,)):
    f = _mp_function(phi_expr)
    with mp.workdps(20):
        def V(qv):
            r = mp.sqrt(qv)
            cuts = sorted({mp.mpf(k) / r for k in kinks} | {-4 / r, -1 / r, 1 / r, 4 / r})
            return mp.quad(lambda z: f(r * z) ** 2 * mp.npdf(z), [-mp.inf, *cuts, mp.inf])
        return mp.findroot(lambda qv: sw * V(qv) + sb - qv, mp.mpf(guess))


@pytest.mark.parametrize("name, sw, sb, expected", [("elu", 1.99, 1.0, 386.930932900),
                                                    ("softplus", 1.999, 1.0, 2083.897),
                                                    ("silu", 1.99, 3.0, 578.5386169670)])
def test_fixed_points_beyond_the_old_cap_on_q(name, sw, sb, expected):
    q_star = MeanField(name).q_star(sw, sb)
    reference = _mp_q_star(derive.activation(name).expr, mp.mpf(repr(sw)), mp.mpf(repr(sb)), expected)
    assert abs(q_star / float(reference) - 1) < 1e-11
    assert abs(q_star - expected) < 1e-3  # the value quoted when the cap turned it into inf


def test_fixed_point_depth_scales_and_phase_diagram_of_silu_at_large_variance():
    """Once NumericError (silu′ overflowed at x = −928 for q* in the hundreds); (1.9, 60) is
    ordered at q* ≈ 1200."""
    mf = MeanField("silu")
    fp = mf.fixed_point(1.9, 60.0)
    assert fp.regime == Regime.ORDERED and fp.chi_q < 1 and fp.q_star > 1000
    assert np.isfinite(mf.depth_scales(1.9, 60.0).xi_q)
    assert np.all(np.isfinite(mf.phase_diagram([1.8, 1.9], [40.0, 60.0]).q_star))


def test_silu_critical_point_at_large_variance():
    point = MeanField("silu").critical_point(10.0)
    f = derive.activation("silu")
    with mp.workdps(20):
        V = lambda t: _mp_1d(f.expr ** 2, t)  # noqa: E731
        D = lambda t: _mp_1d(f.derivative(x) ** 2, t)  # noqa: E731
        root = mp.findroot(lambda t: t - V(t) / D(t) - 10, mp.mpf(3423.3))
        w = 1 / D(root)
    assert abs(point.sigma_w2 / float(w) - 1) < 1e-11 and abs(point.q_star / float(root) - 1) < 1e-10
    assert abs(point.sigma_w2 - 1.99418382324386) < 1e-12


# --- cancellation in closed forms through the Gram --------------------------------------------------


def test_relu_kernel_of_nearly_antipodal_inputs_is_positive_and_as_right_as_its_inputs_allow():
    """1 + c ≈ 5e-13 is computed from the rounded Gram entries (relative error ~ε/(1 + c)); the
    kernel ∝ ψ³, ψ = arccos(−c), inherits 1.5 times that — and no more (it once came out negative)."""
    X = np.array([[1.0, 0.0], [-1.0, 1e-6]])
    K = np.asarray(serial(Dense(2, 0), "relu", Dense(2, 0)).nngp(X))
    with mp.workdps(40):
        a, b = mp.matrix([1, 0]), mp.matrix([-1, mp.mpf(1e-6)])
        cos = (a.T * b)[0] / (mp.norm(a) * mp.norm(b))
        psi = mp.acos(-cos)  # π − θ
        exact = 2 * mp.norm(a) * mp.norm(b) * (mp.sin(psi) - psi * mp.cos(psi)) / (2 * mp.pi)
        conditioning = 1.5 * np.finfo(float).eps / float(1 + cos)
    assert K[0, 1] > 0 and abs(K[0, 1] / float(exact) - 1) < 4 * conditioning


def test_relu_ntk_of_near_duplicate_inputs_is_as_accurate_as_float64_allows():
    """‖δx‖/‖x‖ = 1e-4 through depth 5, against the 40-digit recursion, and at least as good as the
    naive float64 recursion (arccos of the rounded correlation)."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(50)
    X = np.stack([x0, x0 + 1e-4 * np.linalg.norm(x0) * rng.standard_normal(50) / np.sqrt(50)])
    net = serial(Dense(2.0, 0.1), *[layer for _ in range(5) for layer in ("relu", Dense(2.0, 0.1))])
    ours = np.asarray(net.ntk(X))
    exact = net.kernels_mp(X[0], X[1], dps=40)
    reference = np.array(exact.ntk.tolist(), dtype=float)
    K = 2.0 * X @ X.T / 50 + 0.1
    T = K.copy()
    for _ in range(5):
        d = np.sqrt(np.diag(K))
        cos = np.clip(K / np.outer(d, d), -1, 1)
        theta = np.arccos(cos)
        K = 2.0 * np.outer(d, d) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi) + 0.1
        T = K + 2.0 * (np.pi - theta) / (2 * np.pi) * T
    assert np.max(np.abs(ours / reference - 1)) <= max(np.max(np.abs(T / reference - 1)), 4e-16)


# --- exact fixed points -----------------------------------------------------------------------------


@pytest.mark.parametrize("sw", [1.001, 1.01, 1.1, 2.0])
def test_tanh_without_bias_has_c_star_exactly_zero_by_every_route(sw):
    mf = MeanField("tanh")
    assert mf.c_star(sw, 0.0) == 0.0
    assert mf.fixed_point(np.array([sw, sw]), np.array([0.0, 0.0])).c_star.tolist() == [0.0, 0.0]
    assert mf.phase_diagram([sw, 3.0], [0.0, 0.2]).c_star[0, 0] == 0.0
    assert mf.c_star(sw, 0.0, dps=20) == 0


def test_tanh_at_unit_weight_variance_without_bias_is_the_marginal_point():
    fp = MeanField("tanh").fixed_point(1.0, 0.0)
    assert fp.regime == Regime.MARGINAL and fp.q_star == 0.0 and fp.chi1 == 1.0
    scales = MeanField("tanh").depth_scales(1.0, 0.0)
    assert scales.xi_c == np.inf and scales.xi_grad == np.inf


# --- kernels that are positive semi-definite and non-negative ---------------------------------------


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["relu", "step"]), st.floats(0.5, 3.0), st.floats(0.0, 0.5))
def test_relu_and_step_grams_are_psd_and_nonnegative(seed, name, sw, sb):
    X = np.random.default_rng(seed).standard_normal((8, 5))
    X[1] = -X[0] * (1 + 1e-9)  # a nearly antipodal pair
    K = np.asarray(serial(Dense(sw, sb), name, Dense(sw, sb), name, Dense(sw, sb)).nngp(X))
    assert np.all(K >= 0)
    assert np.min(np.linalg.eigvalsh(K)) >= -1e-13 * np.max(np.abs(K))


def test_chaotic_fixed_point_of_a_kinked_activation_without_closed_form():
    """Hard tanh has no closed form for C.  c* solves R(s) = s′/s − 1 = 0 from s → 0, where
    R → χ₁ − 1; the divided difference s′/s formed as (V − C)/s would carry rounding 1e-16/s
    (1e-4 at s = 1e-12, far above χ₁ − 1 ≈ 3e-3's neighbourhood here) and the solver failed.
    c* must be the fixed point of the c-map, bracketed to 1e-9."""
    mf = MeanField("hard_tanh")
    sw, sb = 1.5, 0.2692307692307692
    fp = mf.fixed_point(sw, sb)
    assert fp.regime == Regime.CHAOTIC and 0.999 < fp.c_star < 1
    delta = 1e-9  # c′ − c = (χ_c − 1)(c − c*) there is ±1.3e-12, far above the c-map's rounding 1e-16
    assert abs(fp.chi_c - 1) * delta > 1e3 * np.finfo(float).eps
    below, above = (float(mf.apply_c_map(fp.q_star, c, sw, sb)) - c
                    for c in (fp.c_star - delta, fp.c_star + delta))
    assert below > 0 > above  # the c-map crosses the diagonal there, downwards (stable)
