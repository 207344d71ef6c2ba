"""Mean-field signal propagation (derive.meanfield) and the derivative of Gaussian expectations."""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.errors import DomainError, NoFixedPointError, UnknownActivationError
from derive.gaussian import GaussianExpectation
from derive.gaussian.equal_variances import equal_variances
from derive.gaussian.reference import mp_expectation
from derive.layers import Dense, KernelState, serial
from derive.meanfield import MeanField, Regime
from derive.symbols import c, q, q1, q2, sigma_b2, sigma_w2, x, y

DPS = 30

# --- d/dq of an unevaluated expectation: Price's theorem and the score form ----------------------


def test_derivative_of_a_smooth_expectation_follows_the_heat_equation():
    assert GaussianExpectation(x**4, (x,), (q,)).diff(q) == 6 * q
    # E[exp(x/2 - y/3)] = exp((q1/4 + q2/9 - c sqrt(q1 q2)/3)/2) (moment generating function)
    E = GaussianExpectation(sp.exp(x / 2 - y / 3), (x, y), (q1, q2, c))
    exact = sp.exp((q1 / 4 + q2 / 9 - c * sp.sqrt(q1 * q2) / 3) / 2)
    point = {q1: sp.Rational(1, 2), q2: 2, c: sp.Rational(-1, 3)}
    for s in (c, q1, q2):
        assert abs((E.diff(s) - exact.diff(s)).subs(point).evalf(15)) < 1e-12
    inner = GaussianExpectation(x**4, (x,), (sigma_w2 * q + sigma_b2,))
    assert sp.simplify(inner.diff(q) - 6 * sigma_w2 * (sigma_w2 * q + sigma_b2)) == 0


def test_derivative_of_an_unevaluated_expectation_matches_a_finite_difference():
    E = GaussianExpectation(sp.tanh(x) ** 2, (x,), (q,))
    dE = E.diff(q)
    assert isinstance(dE, GaussianExpectation)
    with mp.workdps(50):
        value = mp.mpf(str(dE.subs(q, sp.Rational(7, 10)).evalf(35)))
        h = mp.mpf(10) ** -13
        at = lambda t: mp_expectation(sp.tanh(x) ** 2, (x,), (sp.Float(t, 50),), dps=50)  # noqa: E731
        central = (at(mp.mpf("0.7") + h) - at(mp.mpf("0.7") - h)) / (2 * h)  # error O(h^2)
        assert abs(value - central) < mp.mpf(10) ** -24


def test_derivative_of_a_kinked_expectation_uses_the_score_and_misses_no_jump():
    # E[relu(x)^2] = q/2, E[sign(x) x^3] = E|x|^3 = 2 sqrt(2/pi) q^(3/2): slopes 1/2 and
    # 3 sqrt(2 q/pi) at q = 3/2, although sympy's derivative of the sign would drop the jump.
    for f, slope in ((sp.Max(0, x) ** 2, sp.Rational(1, 2)), (sp.sign(x) * x**3, 3 * sp.sqrt(3 / sp.pi))):
        d = GaussianExpectation(f, (x,), (q,)).diff(q).subs(q, sp.Rational(3, 2))
        assert abs((d - slope).evalf(30)) < 1e-25
    step = GaussianExpectation(sp.Heaviside(x) * sp.Heaviside(y), (x, y), (q1, q2, c))
    d = step.diff(c).subs({q1: 1, q2: 2, c: sp.Rational(1, 3)})
    exact = 1 / (2 * sp.pi * sp.sqrt(1 - sp.Rational(1, 9)))  # Sheppard: E = 1/4 + asin(c)/(2 pi)
    assert abs(d.evalf(15) - exact.evalf(15)) < 1e-10


# --- the maps, symbolically ------------------------------------------------------------------------


def _mp(expr, point, dps=DPS + 5):
    """A closed-form SymPy expression at a point, as an mpmath number."""
    return mp.mpf(str(sp.N(expr.subs(point), dps)))


def _reference(integrand, variables, params, dps=DPS + 5):
    return mp_expectation(integrand, variables, tuple(sp.nsimplify(p) for p in params), dps=dps)


def test_the_maps_are_those_of_the_block_serial_phi_dense():
    mf = MeanField("tanh")
    block = serial(mf.activation, Dense(sigma_w2, sigma_b2))
    assert mf.block == block
    assert mf.q_map == block.forward(KernelState.single(q)).k11
    assert mf.chi1 == block.forward(KernelState.single(q)).chi
    pair = block.forward(KernelState.pair(q, q, c))
    assert mf.c_map == pair.k12 / pair.k11 and pair.k11 == mf.q_map
    assert mf.q_map.has(GaussianExpectation) and mf.q_map.coeff(sigma_b2) == 1


def _conditional(name: str, derivative: bool, m, s):
    """E[f(m + s z)] for f = φ or φ′ by textbook identities (independent of derive):
    relu: m Φ(m/s) + s φ(m/s), Φ(m/s); erf: erf(m/√(1+2s²)), (2/√π) e^{-m²/(1+2s²)}/√(1+2s²)."""
    if name == "linear":
        return mp.mpf(1) if derivative else m
    if name == "relu":
        return mp.ncdf(m / s) if derivative else m * mp.ncdf(m / s) + s * mp.npdf(m / s)
    a = 1 + 2 * s**2
    return 2 / mp.sqrt(mp.pi * a) * mp.exp(-(m**2) / a) if derivative else mp.erf(m / mp.sqrt(a))


def _pair_reference(name, derivative, qv, cv):
    """E f(u) f(v), (u, v) with variances q, q and correlation c: the outer integral over u by
    mpmath, the inner one (v | u ~ N(c u, q (1 - c^2))) by :func:`_conditional`."""
    act = derive.activation(name)
    f = sp.lambdify(x, act.derivative(x) if derivative else act(x), "mpmath")
    s = mp.sqrt(qv * (1 - cv**2))
    return mp.quad(lambda z: f(mp.sqrt(qv) * z) * _conditional(name, derivative, cv * mp.sqrt(qv) * z, s)
                   * mp.npdf(z), [-mp.inf, 0, mp.inf])


@pytest.mark.parametrize("name", ["relu", "erf", "linear"])
def test_closed_form_maps_match_mpmath_quadrature_to_30_digits(name):
    mf = MeanField(name)
    act = mf.activation
    point = {sigma_w2: sp.Rational(17, 10), sigma_b2: sp.Rational(1, 20), q: sp.Rational(7, 10),
             c: sp.Rational(-3, 10)}
    w, b, qv, cv = (point[s] for s in (sigma_w2, sigma_b2, q, c))
    with mp.workdps(DPS + 5):
        V = _reference(act(x) ** 2, (x,), (qv,))
        D = _reference(act.derivative(x) ** 2, (x,), (qv,))
        qm, cm = mp.mpf(7) / 10, -mp.mpf(3) / 10
        C, Cd = _pair_reference(name, False, qm, cm), _pair_reference(name, True, qm, cm)
        w, b = mp.mpf(17) / 10, mp.mpf(1) / 20
        checks = [(mf.q_map, w * V + b), (mf.chi1, w * D), (mf.c_map, (w * C + b) / (w * V + b)),
                  (mf.chi_c, w * Cd)]
        for expr, exact in checks:
            assert not expr.has(GaussianExpectation)
            assert abs(_mp(expr, point) - exact) <= mp.mpf(10) ** -DPS * max(1, abs(exact))


def test_chi_q_is_the_derivative_of_the_q_map_and_equals_the_references_integrand():
    # REFERENCES §1: chi_q = sigma_w^2 ∫Dz [phi'^2 + phi phi''](sqrt(q) z)
    mf = MeanField("tanh")
    phi = mf.activation
    point = {sigma_w2: sp.Rational(3, 2), q: sp.Rational(2, 5)}
    with mp.workdps(DPS + 5):
        value = mp.mpf(str(mf.chi_q.subs(point).evalf(DPS + 3)))
        exact = 1.5 * _reference(phi.derivative(x) ** 2 + phi(x) * phi.derivative(x, 2), (x,), (point[q],))
    assert abs(value - exact) < mp.mpf(10) ** -DPS


def test_erf_chi_c_reaches_chi1_at_c_equal_one_and_the_c_map_fixes_c_equal_one_at_q_star():
    mf = MeanField("erf")
    assert sp.simplify(mf.chi_c.subs(c, 1) - mf.chi1) == 0
    assert sp.simplify(mf.c_map.subs(c, 1) - 1) == 0


def test_general_c_map_reduces_to_the_equal_variance_one():
    mf = MeanField("erf")
    assert sp.simplify(mf.c_map_general.subs({q1: q, q2: q}) - mf.c_map) == 0


def test_fixed_point_equations_and_closed_form_q_star():
    relu = MeanField("relu")
    eq_q, eq_c = relu.fixed_point_equations
    assert eq_q.lhs == derive.symbols.q_star and eq_q.rhs == sigma_w2 * derive.symbols.q_star / 2 + sigma_b2
    assert sp.simplify(relu.q_star_closed_form - sigma_b2 / (1 - sigma_w2 / 2)) == 0
    assert MeanField("tanh").q_star_closed_form is None


# --- the critical line ----------------------------------------------------------------------------


def test_linear_critical_line_is_sigma_w2_equal_one():
    line = MeanField("linear").critical_line()
    assert line.kind == "point" and line.equation == sp.Eq(sigma_w2, 1) and line.point == (1, 0)


def test_relu_critical_set_is_the_point_2_0_with_the_reason():
    line = MeanField("relu").critical_line()
    assert line.kind == "point" and line.point == (2, 0)
    assert "only at σ_b² = 0" in line.explanation
    assert r"(\sigma_w^2, \sigma_b^2) &= (2, 0)" in derive.latex(line)
    assert MeanField("relu").critical_sigma_w2(0.0) == pytest.approx(2, rel=1e-15)
    with pytest.raises(NoFixedPointError, match="only at σ_b² = 0"):
        MeanField("relu").critical_sigma_w2(0.1)
    both = MeanField("relu").critical_sigma_w2([0.0, 0.1])
    assert both[0] == pytest.approx(2) and np.isnan(both[1])


def test_erf_critical_line_is_closed_form_parametric_and_explicit():
    line = MeanField("erf").critical_line()
    assert line.kind == "explicit"
    assert sp.simplify(line.sigma_w2_of_q - sp.pi * sp.sqrt(1 + 4 * q) / 4) == 0
    assert not line.sigma_b2_of_q.has(GaussianExpectation)
    assert sp.limit(line.sigma_w2_of_q, q, 0) == sp.pi / 4 and sp.limit(line.sigma_b2_of_q, q, 0) == 0
    # the explicit sigma_b2(sigma_w2) agrees with the parametric form (30 digits)
    at = sp.Rational(3, 4)
    explicit = line.equation.rhs.subs(sigma_w2, line.sigma_w2_of_q.subs(q, at))
    assert abs(sp.N(explicit - line.sigma_b2_of_q.subs(q, at), DPS)) < 1e-28
    # and the numeric solver returns pi/4 at sigma_b2 = 0 to 30 digits
    value = MeanField("erf").critical_sigma_w2(0.0, dps=DPS)
    with mp.workdps(DPS + 10):
        assert abs(value - mp.pi / 4) < mp.mpf(10) ** (1 - DPS)


def test_tanh_critical_line_is_parametric_in_integrals():
    line = MeanField("tanh").critical_line()
    assert line.kind == "parametric" and line.sigma_w2_of_q.has(GaussianExpectation)
    assert r"\int \mathcal{D}z" in derive.latex(line)
    assert "quadrature" in line.method


def _mp_tanh_expectation(f, qv):
    return mp.quad(lambda z: f(mp.sqrt(qv) * z) * mp.npdf(z), [-mp.inf, 0, mp.inf])


def test_tanh_critical_sigma_w2_at_sigma_b2_005_to_10_digits_and_to_30_with_dps():
    mf = MeanField("tanh")
    assert abs(mf.critical_sigma_w2(0.05) - 1.76095463961) < 6e-12  # REFERENCES §1
    point = mf.critical_point(0.05)
    assert abs(point.q_star - 0.570047881641) < 6e-13
    # independently: q - V(q)/D(q) = 0.05 by mpmath quadrature and findroot, 40 digits
    with mp.workdps(40):
        V = lambda t: _mp_tanh_expectation(lambda u: mp.tanh(u) ** 2, t)  # noqa: E731
        D = lambda t: _mp_tanh_expectation(lambda u: mp.sech(u) ** 4, t)  # noqa: E731
        qc = mp.findroot(lambda t: t - V(t) / D(t) - mp.mpf("0.05"), mp.mpf("0.57"))
        exact = 1 / D(qc)
    value = mf.critical_sigma_w2(0.05, dps=DPS)
    with mp.workdps(40):
        assert abs(value - exact) < mp.mpf(10) ** (2 - DPS)


# --- fixed points and depth scales ----------------------------------------------------------------


def test_tanh_fixed_point_and_depth_scales_reproduce_the_reference_values():
    scales = MeanField("tanh").depth_scales(1.5, 0.05)  # REFERENCES §1
    fp = MeanField("tanh").fixed_point(1.5, 0.05)
    assert fp.regime == Regime.ORDERED and fp.c_star == 1
    assert abs(fp.q_star - 0.418037201) < 6e-10
    assert abs(fp.chi1 - 0.938636268) < 6e-10
    assert abs(scales.xi_q - 1.68283) < 6e-6 and abs(scales.xi_c - 15.7910) < 6e-5
    assert scales.xi_grad == pytest.approx(scales.xi_c, rel=1e-14)  # chi_c = chi1 when ordered


def _erf_reference(w, b):
    """q*, c*, chi1, chi_c of erf from its closed forms by mpmath findroot (40 digits)."""
    with mp.workdps(40):
        w, b = mp.mpf(repr(w)), mp.mpf(repr(b))  # the decimals, as fixed_point(dps=...) reads them
        V = lambda t: 2 / mp.pi * mp.asin(2 * t / (1 + 2 * t))  # noqa: E731
        qs = mp.findroot(lambda t: w * V(t) + b - t, 1)
        chi1 = w * 4 / mp.pi / mp.sqrt(1 + 4 * qs)
        if chi1 <= 1:
            return qs, mp.mpf(1), chi1, chi1
        G = lambda t: (V(qs) - 2 / mp.pi * mp.asin(2 * qs * t / (1 + 2 * qs))) / (1 - t)  # noqa: E731
        cs = mp.findroot(lambda t: G(t) - qs / w, (mp.mpf(0), 1 - mp.mpf(10) ** -30), solver="anderson")
        chi_c = w * 4 / mp.pi / mp.sqrt((1 + 2 * qs) ** 2 - 4 * qs**2 * cs**2)
        return qs, cs, chi1, chi_c


@pytest.mark.parametrize("w,b", [(0.7, 0.01), (1.5, 0.05), (3.0, 0.1), (5.0, 0.5), (1.0, 0.0), (1.3, 0.3)])
def test_erf_fixed_points_match_mpmath_closed_forms(w, b):
    fp = MeanField("erf").fixed_point(w, b)
    qs, cs, chi1, chi_c = _erf_reference(w, b)
    assert abs(fp.q_star / float(qs) - 1) < 1e-13
    assert abs(fp.c_star - float(cs)) < 1e-12
    assert abs(fp.chi1 / float(chi1) - 1) < 1e-13 and abs(fp.chi_c / float(chi_c) - 1) < 1e-12
    assert fp.regime == (Regime.CHAOTIC if chi1 > 1 else Regime.ORDERED)


def test_erf_fixed_point_at_30_digits():
    fp = MeanField("erf").fixed_point(3.0, 0.1, dps=DPS)
    assert isinstance(fp.q_star, mp.mpf) and fp.dps == DPS
    with mp.workdps(40):
        for value, exact in zip((fp.q_star, fp.c_star, fp.chi1, fp.chi_c), _erf_reference(3.0, 0.1),
                                strict=True):
            assert abs(value - exact) < mp.mpf(10) ** (1 - DPS)


def test_arrays_broadcast_like_numpy_and_match_scalars():
    mf = MeanField("erf")
    w, b = np.array([[1.2], [2.5], [4.0]]), np.array([0.0, 0.05, 0.2, 1.0])
    qs = mf.q_star(w, b)
    assert qs.shape == (3, 4)
    assert qs[1, 2] == pytest.approx(mf.q_star(2.5, 0.2), rel=1e-14)
    assert mf.c_star(w, b).shape == (3, 4) and mf.chi1_star(w, b).shape == (3, 4)
    assert MeanField("erf", 2.5, 0.2).q_star() == pytest.approx(qs[1, 2], rel=1e-14)


def test_no_fixed_point_cases_are_flagged_not_faked():
    relu = MeanField("relu")
    fp = relu.fixed_point([2.5, 1.5, 1.5, 2.0], [0.1, 0.0, 0.1, 0.0])
    assert fp.q_star[0] == np.inf and fp.regime[0] == Regime.Q_INFINITE and np.isnan(fp.c_star[0])
    assert fp.q_star[1] == 0 and fp.regime[1] == Regime.Q_ZERO and np.isnan(fp.chi1[1])
    assert fp.q_star[2] == pytest.approx(0.1 / (1 - 0.75)) and fp.regime[2] == Regime.ORDERED
    assert fp.q_star[3] == 1.0 and fp.regime[3] == Regime.CRITICAL  # every q is fixed: q* = q0
    assert list(fp.regime_names) == ["Q_INFINITE", "Q_ZERO", "ORDERED", "CRITICAL"]
    assert MeanField("tanh").q_star(0.8, 0.0) == 0.0
    exact = relu.fixed_point([2.0, 1.5, 1.0], [0.0, 0.0, 0.1], dps=20)  # flags survive refinement
    assert exact.q_star[:2].tolist() == [1, 0] and mp.isnan(exact.c_star[1])
    with mp.workdps(20):
        assert exact.q_star[2] == mp.mpf("0.2")  # 0.1/(1 - 1/2), the decimals read exactly


def test_bad_input_raises_derive_errors_with_a_hint():
    with pytest.raises(UnknownActivationError, match="did you mean"):
        MeanField("tanhh")
    with pytest.raises(DomainError, match="negative"):
        MeanField("tanh", -1.0)
    with pytest.raises(DomainError, match="sigma_w2"):
        MeanField("tanh").q_star(-1.0, 0.1)
    with pytest.raises(DomainError, match="sigma_b2"):
        MeanField("tanh").q_star(1.0, float("nan"))
    with pytest.raises(DomainError, match="give sigma_w2"):
        MeanField("tanh").q_star()
    with pytest.raises(DomainError, match=r"\[-1, 1\]"):
        MeanField("erf").apply_c_map(1.0, 1.5, 2.0, 0.1)
    with pytest.raises(DomainError, match="free parameters"):
        MeanField("tanh(a*x)").q_star(1.0, 0.1)
    with pytest.raises(DomainError, match="positive integer"):
        MeanField("erf").gradients(-1, 1.5, 0.1)
    with pytest.raises(DomainError, match="a number or an array"):
        MeanField("erf").q_star("abc", 0.1)


# --- the tables behind the numbers ----------------------------------------------------------------


def _mp_1d(f, qv, dps=30):
    """E f(√q z) by adaptive mpmath quadrature, split at 0 and at the scale 1/√q."""
    with mp.workdps(dps):
        r = mp.sqrt(mp.mpf(qv))
        cuts = [-mp.inf, -1 / r, 0, 1 / r, mp.inf]
        return mp.quad(lambda z: f(r * z) * mp.npdf(z), cuts)


def _mp_hermite_moment(f, g, qv, cv, terms=40, dps=18):
    """E f(u) g(v) at equal variances from the Hermite projections α_k = E[f(√q z) He_k(z)]/√k!,
    each an adaptive 1-D mpmath integral, summed as Σ c^k α_k β_k (Mehler 1866); the tail bound
    |c|^{K+1} √(T_f T_g) (T = E f² − Σ α_k²) is returned with it."""
    with mp.workdps(dps):
        r, cc = mp.sqrt(mp.mpf(qv)), mp.mpf(cv)

        def project(h, k):
            he = lambda z: mp.hermite(k, z / mp.sqrt(2)) / mp.sqrt(2) ** k  # noqa: E731  He_k
            integral = mp.quad(lambda z: h(r * z) * he(z) * mp.npdf(z), [-mp.inf, 0, mp.inf])
            return integral / mp.sqrt(mp.factorial(k))

        alpha = [project(f, k) for k in range(terms + 1)]
        beta = alpha if f is g else [project(g, k) for k in range(terms + 1)]
        total = mp.fsum(cc**k * a * b for k, (a, b) in enumerate(zip(alpha, beta, strict=True)))
        tails = [_mp_1d(lambda t, h=h: h(t) ** 2, qv) - mp.fsum(a * a for a in coeffs)
                 for h, coeffs in ((f, alpha), (g, beta))]
        return total, abs(cc) ** (terms + 1) * mp.sqrt(max(tails[0], 0) * max(tails[1], 0))


def test_tanh_tables_agree_with_independent_mpmath_quadrature():
    fns = equal_variances(derive.activation("tanh"))
    qv = np.array([3e-3, 0.2, 1.0, 4.5])
    sech2 = lambda t: mp.sech(t) ** 2  # noqa: E731
    V, Vq, D, _ = fns.one(qv)
    for i, qi in enumerate(qv):
        assert abs(V[i] / float(_mp_1d(lambda t: mp.tanh(t) ** 2, qi)) - 1) < 1e-12
        assert abs(D[i] / float(_mp_1d(lambda t: sech2(t) ** 2, qi)) - 1) < 1e-12
        # V' = E[phi'^2 + phi phi''] (Schoenholz et al. 2017, the chi_q integrand), phi'' = -2 tanh sech^2
        slope = _mp_1d(lambda t: sech2(t) ** 2 - 2 * mp.tanh(t) ** 2 * sech2(t), qi)
        assert abs(Vq[i] / float(slope) - 1) < 1e-11
    for qi, ci in ((0.2, -0.6), (1.0, 0.3)):
        cd, tail = _mp_hermite_moment(sech2, sech2, qi, ci)
        assert tail < 1e-16 and abs(fns.cd(np.array([qi]), np.array([ci]))[0] / float(cd) - 1) < 1e-11
        C, tail = _mp_hermite_moment(mp.tanh, mp.tanh, qi, ci)
        V_here = fns.one(np.array([qi]))[0][0]
        C_here = fns.c_numerator(np.array([qi]), np.array([ci]))[0]
        assert tail < 1e-16 and abs(C_here - float(C)) / V_here < 1e-11
    assert np.allclose(fns.g(qv, np.ones_like(qv)), qv * D, rtol=1e-12, atol=0)  # G(q, 1) = q D(q)
    assert fns.error < 1e-11
    # far out the Gaussian is flat on the scale of sech^4: D(q) = (4/3)/sqrt(2 pi q) (1 + O(1/q))
    far = np.array([1e4, 1e6, 1e8])
    assert np.allclose(fns.one(far)[2], 4 / 3 / np.sqrt(2 * np.pi * far), rtol=1e-4)


def test_phase_diagram_matches_pointwise_solutions_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    mf = MeanField("tanh")
    w, b = np.linspace(0.5, 4, 45), np.linspace(0, 0.3, 41)
    pd = mf.phase_diagram(w, b, stride=4)
    assert pd.q_star.shape == pd.c_star.shape == pd.xi_c.shape == pd.chi1.shape == (45, 41)
    for i, j in [(3, 5), (30, 0), (44, 40), (20, 20)]:
        fp = mf.fixed_point(w[i], b[j])
        assert pd.q_star[i, j] == pytest.approx(fp.q_star, rel=1e-12, abs=0)
        assert pd.c_star[i, j] == pytest.approx(fp.c_star, rel=1e-11, abs=1e-12)
    below = w[:, None] < pd.critical_sigma_w2[None, :]
    clear = np.isfinite(pd.chi1) & (np.abs(w[:, None] - pd.critical_sigma_w2[None, :]) > 1e-9)
    assert np.array_equal((pd.chi1 < 1)[clear], below[clear])
    assert np.array_equal(pd.regime == Regime.CHAOTIC, np.isfinite(pd.chi1) & (pd.chi1 > 1))
    assert np.all(pd.c_star[pd.chi1 > 1] < 1) and np.all(pd.c_star[pd.chi1 < 1] == 1)
    fig = pd.plot()
    fig.savefig(tmp_path / "pd.png")
    assert (tmp_path / "pd.png").stat().st_size > 1000


def test_gradient_ratios_follow_chi1_and_the_widths():
    mf = MeanField("erf")
    grads = mf.gradients(6, 1.5, 0.05)
    chi1 = mf.chi1_star(1.5, 0.05)
    assert np.allclose(grads.delta_sq, chi1 ** np.arange(5, -1, -1), rtol=1e-12)
    widths = [100, 200, 100, 400, 100, 100]
    wide = mf.gradients(6, 1.5, 0.05, widths=widths)
    ratio = np.array([np.prod([widths[k + 1] / widths[k] for k in range(l, 5)]) for l in range(6)])
    assert np.allclose(wide.delta_sq, chi1 ** np.arange(5, -1, -1) * ratio, rtol=1e-12)
    assert grads.xi_grad == pytest.approx(-1 / np.log(chi1), rel=1e-13)


def test_trajectories_converge_to_the_fixed_point():
    mf = MeanField("erf")
    fp = mf.fixed_point(3.0, 0.1)
    path = mf.propagate(250, 3.0, 0.1, q1=2.0, c1=0.9)  # chi_c = 0.85: 0.85^250 ~ 1e-18
    assert path.q[-1] == pytest.approx(fp.q_star, rel=1e-12)
    assert path.c[-1] == pytest.approx(fp.c_star, rel=1e-11)


def test_results_render_as_latex():
    mf = MeanField("tanh")
    assert mf._repr_latex_().startswith("$\\displaystyle \\begin{aligned}q^{l+1} &=")
    text = MeanField("erf").depth_scales(3.0, 0.1)._repr_latex_()
    assert r"\xi_c &= -1/\log\chi_c = 6.1578" in text and r"\xi_\nabla &= -1/\log\chi_1 = -3.54" in text
    assert r"\sigma_w^2(q^*)" in derive.latex(MeanField("erf").critical_line())


# --- the command line -------------------------------------------------------------------------------


def test_cli_critical_line_prints_the_line_and_the_point(capsys):
    import json

    from derive.cli import main

    assert main(["critical-line", "erf", "--sigma-b2", "0", "--dps", "25", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "explicit" and result["sigma_w2_of_q"] == "pi*sqrt(4*q + 1)/4"
    with mp.workdps(30):
        assert abs(mp.mpf(result["at"]["sigma_w2"]) - mp.pi / 4) < mp.mpf(10) ** -23
    assert main(["critical-line", "relu"]) == 0
    assert "(2, 0)" in capsys.readouterr().out
    assert main(["critical-line", "relu", "--sigma-b2", "0.1"]) == 2
    assert "only at σ_b² = 0" in capsys.readouterr().err
    assert main(["critical-line", "tanhh"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_cli_phase_diagram_writes_a_png(tmp_path, capsys):
    from derive.cli import main

    out = tmp_path / "erf.png"
    assert main(["phase-diagram", "erf", "--out", str(out), "--n", "40"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "chaotic" in capsys.readouterr().out


def test_critical_points_need_a_stable_variance_fixed_point():
    # swish: every point of the parametric line has chi_q > 1 (a repelling q*), so no critical
    # sigma_w2 at sigma_b2 > 0; iterating the maps, the stable q* meets the unstable one and the
    # variance explodes (fold) while chi1 < 1: ordered, then q -> inf, never chaotic
    swish = MeanField("x/(1 + exp(-x))")
    line = swish.critical_line()
    w, b = 2.53139314970363, 0.08  # a point of the parametric line: chi1 = 1 at q = 1.2513
    qv = sp.Float(1.2512999354475112)
    assert abs(float(line.sigma_w2_of_q.subs(q, qv).evalf(20)) - w) < 1e-9
    assert float(line.sigma_b2_of_q.subs(q, qv).evalf(20)) == pytest.approx(b, abs=1e-9)
    assert w * float(swish.chi_q.subs({q: qv, sigma_w2: 1}).evalf(20)) > 1  # repelling
    assert np.isnan(swish.critical_point(b).sigma_w2)
    path = swish.fixed_point(np.linspace(2.0, 2.8, 17), 0.15)
    assert set(path.regime.tolist()) == {Regime.ORDERED, Regime.Q_INFINITE}
    assert np.all(path.chi1[path.regime == Regime.ORDERED] < 1)
    assert MeanField("tanh").critical_point(0.05).sigma_w2 == pytest.approx(1.76095463961, abs=6e-12)
