"""NNGP and NTK Gram matrices against independent references: bare-numpy recursions of the
published closed forms, mpmath at 40 digits, and 2-D trapezoid quadrature per entry."""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.errors import DeriveError, DivergenceError, DomainError
from derive.gaussian.moments import Method, moments_of
from derive.layers import Dense, Dropout, LayerNorm, Residual, repeat, serial
from derive.symbols import c, q, q1, q2

RNG = np.random.default_rng(11)
X = RNG.standard_normal((7, 5))


# --- independent references -------------------------------------------------------------------


def arccos_recursion(X, w, b, depth, keep=1.0):
    """REFERENCES.md §2 for ReLU (Cho & Saul 2009), NTK parametrisation, written out by hand;
    `keep` < 1 applies inverted dropout after each activation (diagonal / keep)."""
    K = w * X @ X.T / X.shape[1] + b
    T = K.copy()
    for _ in range(depth):
        d = np.sqrt(np.diag(K))
        cos = np.clip(K / np.outer(d, d), -1, 1)
        np.fill_diagonal(cos, 1.0)  # exactly: arccos is infinitely steep at 1
        theta = np.arccos(cos)
        phi = np.outer(d, d) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
        dphi = (np.pi - theta) / (2 * np.pi)
        phi[np.diag_indices_from(phi)] /= keep
        dphi[np.diag_indices_from(dphi)] /= keep
        K = w * phi + b
        T = K + w * dphi * T
    return K, T


def arcsine_recursion(X, w, b, depth):
    """The erf kernel (Williams 1997), REFERENCES.md §2, written out by hand."""
    K = w * X @ X.T / X.shape[1] + b
    T = K.copy()
    for _ in range(depth):
        s = 1 + 2 * np.diag(K)
        phi = 2 / np.pi * np.arcsin(2 * K / np.sqrt(np.outer(s, s)))
        dphi = 4 / np.pi / np.sqrt(np.outer(s, s) - 4 * K**2)
        K = w * phi + b
        T = K + w * dphi * T
    return K, T


def trapezoid_2d(f, qa, qb, cc, h=0.04, half=12.0):
    """E f(u) f(v) by the 2-D trapezoid rule in (z1, z2) (spectrally accurate for analytic f)."""
    z = np.arange(-half, half + h / 2, h)
    w = h * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    u = np.sqrt(qa) * z
    v = np.sqrt(qb) * (cc * z[:, None] + np.sqrt(max(1 - cc * cc, 0.0)) * z[None, :])
    return float(w @ (f(u)[:, None] * f(v)) @ w)


def quadrature_recursion(f, df, X, w, b, depth):
    """Σ, Θ through `depth` activation layers, every entry by trapezoid_2d."""
    K = w * X @ X.T / X.shape[1] + b
    T = K.copy()
    n = K.shape[0]
    for _ in range(depth):
        d = np.diag(K)
        phi, dphi = np.empty_like(K), np.empty_like(K)
        for i in range(n):
            for j in range(i, n):
                cc = min(K[i, j] / math.sqrt(d[i] * d[j]), 1.0)
                phi[i, j] = phi[j, i] = trapezoid_2d(f, d[i], d[j], cc)
                dphi[i, j] = dphi[j, i] = trapezoid_2d(df, d[i], d[j], cc)
        K = w * phi + b
        T = K + w * dphi * T
    return K, T


def deep(act, w, b, depth, **extra):
    return serial(Dense(w, b), repeat(serial(act, Dense(w, b)), depth))


# --- closed forms through any depth -----------------------------------------------------------------


def test_relu_grams_equal_the_arc_cosine_recursion():
    K, T = arccos_recursion(X, 2.0, 0.1, 5)
    k = deep("relu", 2.0, 0.1, 5).kernels(X)
    assert k.nngp.methods == (("relu", {Method.CLOSED_FORM}),) and k.nngp.method == "relu: closed form"
    assert k.nngp.error <= 1e-13  # float64 rounding of the closed form
    np.testing.assert_allclose(np.asarray(k.nngp), K, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(k.ntk), T, rtol=1e-13, atol=0)


def test_erf_grams_equal_the_arcsine_recursion():
    K, T = arcsine_recursion(X, 1.6, 0.2, 6)
    k = deep("erf", 1.6, 0.2, 6).kernels(X)
    np.testing.assert_allclose(np.asarray(k.nngp), K, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(k.ntk), T, rtol=1e-13, atol=0)


def test_dropout_divides_only_the_diagonal_of_each_layer():
    K, T = arccos_recursion(X, 2.0, 0.1, 3, keep=0.8)
    net = serial(Dense(2.0, 0.1), repeat(serial("relu", Dropout(0.8), Dense(2.0, 0.1)), 3))
    k = net.kernels(X)
    np.testing.assert_allclose(np.asarray(k.nngp), K, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(k.ntk), T, rtol=1e-13, atol=0)


def _inner(name, mu, s):
    """E g(μ + s z), z ~ N(0, 1), for g = φ or φ′: standard Gaussian identities, not derive's rules."""
    if name == ("relu", "phi"):
        return mu * mp.ncdf(mu / s) + s * mp.npdf(mu / s)
    if name == ("relu", "dphi"):
        return mp.ncdf(mu / s)
    if name == ("erf", "phi"):
        return mp.erf(mu / mp.sqrt(1 + 2 * s**2))
    if name == ("erf", "dphi"):
        return 2 / mp.sqrt(mp.pi) * mp.exp(-mu**2 / (1 + 2 * s**2)) / mp.sqrt(1 + 2 * s**2)
    r = mp.sqrt(1 + s**2)  # gelu: E[X Φ(X)] = μ Φ(μ/r) + s²/r φ(μ/r) for X ~ N(μ, s²)
    return mu * mp.ncdf(mu / r) + s**2 / r * mp.npdf(mu / r)


PHI = {"relu": (lambda t: max(t, 0), lambda t: 1 if t > 0 else 0),
       "erf": (mp.erf, lambda t: 2 / mp.sqrt(mp.pi) * mp.exp(-t * t)),
       "gelu": (lambda t: t * mp.ncdf(t), None)}


def _defining_integrals(act, which, point):
    """(E g(u)g(v), E g(u)²) for g = φ or φ′ at 40 digits: the first as ∫Dz₁ g(√q₁ z₁) E[g(μ + s z₂)]
    with μ = c√q₂ z₁, s = √(q₂(1 − c²)), a 1-D mpmath quadrature of a textbook inner expectation."""
    a, b, cc = (mp.mpf(sp.Float(v, 50)) for v in point)
    s = mp.sqrt(b * (1 - cc**2))
    g = PHI[act][0] if which == "phi" else PHI[act][1]
    two = mp.quad(lambda z: g(mp.sqrt(a) * z) * _inner((act, which), cc * mp.sqrt(b) * z, s) * mp.npdf(z),
                  [-mp.inf, 0, mp.inf])
    one = mp.quad(lambda z: g(mp.sqrt(a) * z) ** 2 * mp.npdf(z), [-mp.inf, 0, mp.inf])
    return two, one


@pytest.mark.parametrize("point", [(sp.Rational(7, 10), sp.Rational(13, 10), sp.Rational(2, 5)),
                                   (sp.Rational(3, 2), sp.Rational(1, 3), sp.Rational(-5, 7))])
@pytest.mark.parametrize("act, which", [("relu", "phi"), ("relu", "dphi"), ("erf", "phi"), ("erf", "dphi"),
                                        ("gelu", "phi")])
def test_closed_form_dual_kernels_equal_their_defining_integrals_to_30_digits(act, which, point):
    moments = moments_of(derive.activation(act))
    two_name, one_name = ("C", "V") if which == "phi" else ("Cd", "D")
    with mp.workdps(40):
        two, one = _defining_integrals(act, which, point)
        value = getattr(moments, two_name).expr.subs({q1: point[0], q2: point[1], c: point[2]}).evalf(40)
        assert abs(mp.mpf(sp.Float(value, 40)._mpf_) - two) < mp.mpf(10) ** -30 * max(1, abs(two))
        value = getattr(moments, one_name).expr.subs(q, point[0]).evalf(40)
        assert abs(mp.mpf(sp.Float(value, 40)._mpf_) - one) < mp.mpf(10) ** -30 * max(1, abs(one))


def test_mpmath_kernels_of_a_relu_net_agree_with_the_recursion_at_40_digits():
    x1, x2 = ["0.3", "-1.2", "0.7"], ["1.1", "0.4", "-0.5"]
    net = deep("relu", "2", "1/10", 4)
    pk = net.kernels_mp(x1, x2, dps=40)
    assert pk.method == "relu: closed form"
    with mp.workdps(50):
        a, b = [mp.mpf(v) for v in x1], [mp.mpf(v) for v in x2]
        w, bias = mp.mpf(2), mp.mpf(1) / 10
        K = mp.matrix([[w * mp.fdot(u, v) / 3 + bias for v in (a, b)] for u in (a, b)])
        T = K.copy()
        for _ in range(4):
            d = [mp.sqrt(K[i, i]) for i in range(2)]
            new_K, dots = mp.matrix(2, 2), mp.matrix(2, 2)
            for i in range(2):
                for j in range(2):
                    cos = min(K[i, j] / (d[i] * d[j]), 1) if i != j else mp.mpf(1)
                    theta = mp.acos(cos)
                    arc = (mp.sin(theta) + (mp.pi - theta) * cos) / (2 * mp.pi)
                    new_K[i, j] = w * d[i] * d[j] * arc + bias
                    dots[i, j] = w * (mp.pi - theta) / (2 * mp.pi)
            T = mp.matrix([[new_K[i, j] + dots[i, j] * T[i, j] for j in range(2)] for i in range(2)])
            K = new_K
        for i in range(2):
            for j in range(2):
                assert abs(pk.nngp[i, j] - K[i, j]) < mp.mpf(10) ** -35
                assert abs(pk.ntk[i, j] - T[i, j]) < mp.mpf(10) ** -35
    floats = net.kernels(np.array([[float(v) for v in x1], [float(v) for v in x2]]))
    np.testing.assert_allclose(np.asarray(floats.ntk), np.array(pk.ntk.tolist(), dtype=float), rtol=1e-14)


# --- numerical activations ----------------------------------------------------------------------------


def test_tanh_grams_match_per_entry_quadrature_including_near_duplicates_and_large_variances():
    Xn = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [1.0, 1e-4, 0.5], [3.0, 2.0, 1.0]])
    w, b, depth = 2.5, 0.1, 3  # q up to ~ 12: the Hermite tails need the quadrature fallback
    dtanh = lambda t: 1 / np.cosh(t) ** 2  # noqa: E731
    K, T = quadrature_recursion(np.tanh, dtanh, Xn, w, b, depth)
    k = deep("tanh", w, b, depth).kernels(Xn)
    assert Method.MEHLER in dict(k.nngp.methods)["tanh"] and 0 < k.nngp.error <= 1e-12
    scale = np.sqrt(np.outer(np.diag(K), np.diag(K)))
    assert np.max(np.abs(np.asarray(k.nngp) - K) / scale) < 1e-11
    scale = np.sqrt(np.outer(np.diag(T), np.diag(T)))
    assert np.max(np.abs(np.asarray(k.ntk) - T) / scale) < 1e-11


def test_a_kinked_activation_without_closed_form_goes_through_2d_quadrature():
    elu = derive.activation("elu")
    moments = moments_of(elu)
    assert moments.methods["C"] is Method.MEHLER  # separable, kinked only at 0
    (qa, qb, cc) = (0.7, 1.3, 0.4)
    C = moments.C(np.array([[qa]]), np.array([[qb]]), np.array([[cc]]))
    with mp.workdps(30):
        s = mp.sqrt(qb * (1 - cc**2))

        def inner(mu):  # E elu(μ + s z): e^{μ+s²/2} Φ(−(μ+s²)/s) − Φ(−μ/s) + μ Φ(μ/s) + s φ(μ/s)
            return (mp.exp(mu + s**2 / 2) * mp.ncdf(-(mu + s**2) / s) - mp.ncdf(-mu / s)
                    + mu * mp.ncdf(mu / s) + s * mp.npdf(mu / s))

        elu_mp = lambda t: t if t >= 0 else mp.exp(t) - 1  # noqa: E731
        ref = mp.quad(lambda z: elu_mp(mp.sqrt(qa) * z) * inner(cc * mp.sqrt(qb) * z) * mp.npdf(z),
                      [-mp.inf, 0, mp.inf])
    assert abs(C[0, 0] - float(ref)) < 1e-12


# --- results and bad input ---------------------------------------------------------------------------


def test_results_are_read_only_arrays_that_say_how_they_were_made():
    k = serial(Dense(1.5, 0.05), "tanh", Dense(1.5, 0.05), LayerNorm()).kernels(X)
    K = np.asarray(k.nngp)
    assert K.dtype == np.float64 and K.shape == (7, 7) and k.nngp.shape == (7, 7)
    with pytest.raises(ValueError):
        K[0, 0] = 1.0
    assert "tanh: Mehler" in repr(k.ntk)
    assert np.allclose(K, K.T) and np.all(np.linalg.eigvalsh(K) > -1e-12)
    assert serial(Dense(2.0)).nngp(X).method == "no activation: linear algebra only"


def test_activations_with_a_jump_have_an_nngp_but_no_ntk():
    net = serial(Dense(1.0), "step", Dense(1.0))
    K = np.asarray(net.nngp(X))
    assert np.allclose(np.diag(K), 0.5)
    with pytest.raises(DivergenceError, match="nngp"):
        net.ntk(X)


@pytest.mark.parametrize("bad, message", [
    (np.ones(3), "2-D"),
    (np.ones((2, 3, 4)), "2-D"),
    (np.ones((0, 3)), "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "non-finite"),
    (np.array([[1.0, np.inf]]), "non-finite"),
    ([["a", "b"]], "numbers"),
])
def test_bad_inputs_raise_domain_errors(bad, message):
    with pytest.raises(DomainError, match=message):
        deep("relu", 2.0, 0.0, 2).nngp(bad)


@pytest.mark.parametrize("net, message", [
    (serial("relu", Dense(2.0)), "raw inputs"),
    (serial(LayerNorm(), Dense(2.0)), "raw inputs"),
    (serial(Dense(sp.Symbol("s")), "tanh"), "symbolic parameter"),
    (serial(Dense(1.0), derive.activation("leaky_relu", a=sp.Symbol("a", positive=True))), "free parameters"),
])
def test_networks_that_cannot_be_evaluated_say_why(net, message):
    with pytest.raises(DeriveError, match=message):
        net.kernels(X)


def test_tolerance_and_precision_are_checked():
    with pytest.raises(DomainError, match="tol"):
        deep("tanh", 1.0, 0.0, 1).kernels(X, tol=0)
    with pytest.raises(DomainError, match="dps"):
        deep("relu", 1.0, 0.0, 1).kernels_mp([1, 0], [0, 1], dps=5)
    with pytest.raises(DomainError, match="lengths"):
        deep("relu", 1.0, 0.0, 1).kernels_mp([1, 0], [0, 1, 2])


def test_residual_networks_on_inputs_of_other_dimension_still_have_kernels():
    net = serial(Dense(1.0, 0.1), Residual(serial("relu", Dense(2.0, 0.0)), 0.5), "tanh", Dense(1.0))
    k = net.kernels(X)
    assert np.all(np.isfinite(np.asarray(k.ntk)))


def test_numerical_layers_at_any_precision_agree_with_the_float64_grams():
    net = serial(Dense(1.5, 0.05), repeat(serial("tanh", Dense(1.5, 0.05)), 2))
    x1, x2 = ["1", "0.5"], ["0.2", "1"]
    low, high = net.kernels_mp(x1, x2, dps=25), net.kernels_mp(x1, x2, dps=35)
    assert "mpmath quadrature" in high.method
    with mp.workdps(40):
        for i in range(2):
            for j in range(2):
                assert abs(high.nngp[i, j] - low.nngp[i, j]) < mp.mpf(10) ** -23
                assert abs(high.ntk[i, j] - low.ntk[i, j]) < mp.mpf(10) ** -23
    floats = net.kernels(np.array([[1.0, 0.5], [0.2, 1.0]]))
    for gram, exact in ((floats.nngp, high.nngp), (floats.ntk, high.ntk)):
        exact = np.array(exact.tolist(), dtype=float)
        scale = np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
        assert np.max(np.abs(np.asarray(gram) - exact) / scale) < 1e-12
