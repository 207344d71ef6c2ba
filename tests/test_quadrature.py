"""Vectorised float64 Gaussian quadrature (np_expectation_1d/2d) against mpmath references."""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.gaussian.quadrature import np_expectation_1d, np_expectation_2d
from derive.gaussian.reference import mp_expectation
from derive.symbols import x, y

Q_GRID = [1e-6, 1e-3, 0.1, 1.0, 3.7, 50.0, 1e4]
C_GRID = [-1.0, -1 + 1e-9, -0.6, 0.0, 0.35, 0.99, 1 - 1e-7, 1.0]

_np_erf = np.vectorize(math.erf, otypes=[float])


def _hard_tanh(t):
    return np.clip(t, -1.0, 1.0)


def _sp_hard_tanh(t):
    return sp.Piecewise((-1, t < -1), (t, t < 1), (1, True))


def _np_gelu_prime(t):
    return (1 + _np_erf(t / np.sqrt(2))) / 2 + t * np.exp(-t**2 / 2) / np.sqrt(2 * np.pi)


# (sympy integrand, numpy integrand, kinks)
ONE_D = {
    "tanh^2": (sp.tanh(x) ** 2, lambda t: np.tanh(t) ** 2, ()),
    "erf^2": (sp.erf(x) ** 2, lambda t: _np_erf(t) ** 2, ()),
    "sigmoid": (1 / (1 + sp.exp(-x)), lambda t: 1 / (1 + np.exp(-t)), ()),
    "gelu'^2": (((1 + sp.erf(x / sp.sqrt(2))) / 2 + x * sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)) ** 2,
                lambda t: _np_gelu_prime(t) ** 2, ()),
    "relu^2": (sp.Max(0, x) ** 2, lambda t: np.maximum(0, t) ** 2, (0,)),
    "hard_tanh^2": (_sp_hard_tanh(x) ** 2, lambda t: _hard_tanh(t) ** 2, (-1, 1)),
    "elu": (sp.Piecewise((sp.exp(x) - 1, x < 0), (x, True)), lambda t: np.where(t < 0, np.expm1(t), t), (0,)),
    "shifted step": (sp.Heaviside(x - sp.Rational(1, 3)), lambda t: (t > 1 / 3).astype(float), (1 / 3,)),
}


def _relative_error(value, reference) -> float:
    return float(abs(mp.mpf(float(value)) - reference) / abs(reference))


def _close(value, reference) -> bool:
    """Within 1e-12 relative, or within the Gaussian mass beyond 10.5 standard deviations (< 1e-24),
    which the quadrature cuts off (it matters only for integrands whose mass lies that far out)."""
    return abs(mp.mpf(float(value)) - reference) <= 1e-12 * abs(reference) + 1e-24


@pytest.mark.parametrize("name", ONE_D)
def test_one_dimensional_expectations_match_mpmath_over_eight_decades_of_q(name):
    body, f, kinks = ONE_D[name]
    values = np_expectation_1d(f, np.array(Q_GRID), kinks=kinks)
    assert values.shape == (len(Q_GRID),)
    for value, q in zip(values, Q_GRID, strict=True):
        reference = mp_expectation(body, (x,), (sp.Float(q, 30),), dps=25)
        assert _close(value, reference), (name, q)


def test_arrays_broadcast_and_scalars_stay_scalars():
    q = np.array([[0.5], [2.0]])
    a = np.array([0.1, 0.2, 0.3])
    out = np_expectation_1d(lambda t, s: np.where(t < 0, s * t, t) ** 2, q, kinks=[0], args=[a])
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, q * (1 + a**2) / 2, rtol=1e-13)  # E[x^2 Θ(±x)] = q/2
    scalar = np_expectation_1d(np.cos, 2.0)
    assert np.ndim(scalar) == 0 and abs(scalar - math.exp(-1)) < 1e-15


def test_zero_variance_gives_the_integrand_at_zero():
    out = np_expectation_1d(lambda t: np.cos(t) + 2, np.array([0.0, 1.0]))
    assert out[0] == 3.0 and abs(out[1] - (math.exp(-0.5) + 2)) < 1e-14


def test_array_valued_kinks_follow_a_parameter():
    shift = np.array([-0.5, 0.0, 0.7])
    out = np_expectation_1d(lambda t, b: (t > b).astype(float), 1.3, kinks=[shift], args=[shift])
    expected = [0.5 * math.erfc(b / math.sqrt(2 * 1.3)) for b in shift]
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_a_jump_left_out_of_the_kinks_is_reported_not_returned():
    with pytest.raises(derive.NumericError, match="kinks"):
        np_expectation_1d(lambda t: (t > 0.3).astype(float), 0.1)


def test_an_integrand_that_does_not_decay_is_an_error():
    with pytest.raises(derive.NumericError, match="decay"):
        np_expectation_1d(lambda t: np.exp(t**2), 1.0)


def test_a_non_finite_integrand_is_an_error():
    with pytest.raises(derive.NumericError, match="not finite"):
        np_expectation_1d(lambda t: np.where(t > 1, np.inf, 0.0), 1.0)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_variance_is_a_domain_error(bad):
    with pytest.raises(derive.DomainError):
        np_expectation_1d(np.tanh, np.array([1.0, bad]))
    with pytest.raises(derive.DomainError):
        np_expectation_2d(lambda u, v: u * v, 1.0, bad, 0.5)


def test_correlation_outside_the_unit_interval_is_a_domain_error():
    with pytest.raises(derive.DomainError, match="correlation"):
        np_expectation_2d(lambda u, v: u * v, 1.0, 1.0, 1.01)


# --- 2-D: kernels from the literature, evaluated in mpmath (REFERENCES.md §2) ----------------------


def _arccos_kernel(q1, q2, c, which):
    """Cho & Saul 2009: E[relu relu] and E[Θ Θ]; Williams 1997: E[erf erf]."""
    q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
    theta = mp.acos(c)
    if which == "relu":
        return mp.sqrt(q1 * q2) * (mp.sin(theta) + (mp.pi - theta) * c) / (2 * mp.pi)
    if which == "step":
        return (mp.pi - theta) / (2 * mp.pi)
    return 2 / mp.pi * mp.asin(2 * c * mp.sqrt(q1 * q2) / mp.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


TWO_D = {
    "relu": (lambda u, v: np.maximum(u, 0) * np.maximum(v, 0), (0,), (0,)),
    "step": (lambda u, v: np.heaviside(u, 0.5) * np.heaviside(v, 0.5), (0,), (0,)),
    "erf": (lambda u, v: _np_erf(u) * _np_erf(v), (), ()),
}


@pytest.mark.parametrize("which", TWO_D)
@pytest.mark.parametrize("q1, q2", [(1.0, 1.0), (1e-6, 2.0), (30.0, 1e-3), (1e4, 1e4)])
def test_two_dimensional_kernels_match_the_literature(which, q1, q2):
    f, kx, ky = TWO_D[which]
    values = np_expectation_2d(f, q1, q2, np.array(C_GRID), kx, ky)
    with mp.workdps(30):
        scale = abs(_arccos_kernel(q1, q2, 1, which))
        for value, c in zip(values, C_GRID, strict=True):
            reference = _arccos_kernel(q1, q2, c, which)
            assert abs(mp.mpf(float(value)) - reference) <= 1e-12 * scale, (which, q1, q2, c)


def test_a_kink_along_a_line_is_followed_by_the_inner_integral():
    """E[max(u, v)] = sqrt((q1 + q2 - 2c sqrt(q1 q2)) / (2 pi)) (the mean of |u - v| / 2)."""
    q1, q2 = np.array([0.3, 1.0, 5.0]), 2.0
    c = np.array([[-0.9], [0.2], [0.95]])
    out = np_expectation_2d(np.maximum, q1, q2, c, kinks_y=[lambda u: u])
    expected = np.sqrt((q1 + q2 - 2 * c * np.sqrt(q1 * q2)) / (2 * np.pi))
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_parameters_pass_through_to_a_two_dimensional_integrand():
    a = np.array([0.0, 0.1, 1.0])
    leaky = lambda t, s: np.where(t < 0, s * t, t)  # noqa: E731
    out = np_expectation_2d(lambda u, v, s: leaky(u, s) * leaky(v, s), 1.0, 1.0, 0.4, [0], [0], args=[a])
    with mp.workdps(30):
        for value, s in zip(out, a, strict=True):
            # leaky(u) = (1 - s) relu(u) + s u, and E[relu(u) v] = c/2 for unit variances
            c = mp.mpf(0.4)
            reference = (1 - s) ** 2 * _arccos_kernel(1, 1, c, "relu") + (1 - s) * s * c + s * s * c
            assert abs(value - reference) <= 1e-13


@pytest.mark.parametrize("q1, q2, c", [(1.0, 1.0, 0.5), (0.2, 3.0, -0.85), (40.0, 0.5, 0.9)])
def test_two_dimensional_tanh_and_hard_tanh_match_mp_expectation(q1, q2, c):
    cases = [(sp.tanh(x) * sp.tanh(y), lambda u, v: np.tanh(u) * np.tanh(v), (), ()),
             (_sp_hard_tanh(x) * _sp_hard_tanh(y), lambda u, v: _hard_tanh(u) * _hard_tanh(v),
              (-1, 1), (-1, 1))]
    for body, f, kx, ky in cases:
        value = np_expectation_2d(f, q1, q2, c, kx, ky)
        reference = mp_expectation(body, (x, y), tuple(sp.Float(p, 30) for p in (q1, q2, c)), dps=20)
        assert _relative_error(value, reference) <= 1e-12, (body, q1, q2, c)


def test_near_degenerate_two_dimensional_reference_by_iterated_quadrature():
    """|c| > 0.9 and non-separable integrands take the iterated (not the Mehler) path."""
    point = tuple(sp.Float(p, 30) for p in (0.7, 1.3, -0.97))
    value = np_expectation_2d(lambda u, v: np.tanh(u) * np.tanh(v), *map(float, point))
    reference = mp_expectation(sp.tanh(x) * sp.tanh(y), (x, y), point, dps=15)
    assert _relative_error(value, reference) <= 1e-12
    with mp.workdps(20):  # E[max(u, v)] = sqrt((q1 + q2 - 2 c sqrt(q1 q2)) / (2 pi))
        exact = mp.sqrt((point[0] + point[1] - 2 * point[2] * mp.sqrt(point[0] * point[1])) / (2 * mp.pi))
        assert abs(mp_expectation(sp.Max(x, y), (x, y), point, dps=15) - exact) <= 1e-14 * exact


def test_both_two_dimensional_reference_paths_against_characteristic_functions():
    """Separable (Mehler path): E[exp(u/3) cos v] = exp(q1/18 - q2/2) cos(c sqrt(q1 q2)/3);
    non-separable (iterated path): E[cos(u - v)] = exp(-(q1 + q2 - 2 c sqrt(q1 q2))/2)."""
    point = (sp.Integer(2), sp.Integer(1), sp.Rational(7, 10))
    with mp.workdps(40):
        q1, q2, c = mp.mpf(2), mp.mpf(1), mp.mpf(7) / 10
        separable = mp.exp(q1 / 18 - q2 / 2) * mp.cos(c * mp.sqrt(q1 * q2) / 3)
        assert abs(mp_expectation(sp.exp(x / 3) * sp.cos(y), (x, y), point, dps=30) - separable) \
            <= 1e-30 * separable
        joint = mp.exp(-(q1 + q2 - 2 * c * mp.sqrt(q1 * q2)) / 2)
        assert abs(mp_expectation(sp.cos(x - y), (x, y), point, dps=15) - joint) <= 1e-15 * joint
