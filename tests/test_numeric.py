"""derive.lambdify: numpy evaluators of closed forms and unevaluated Gaussian expectations."""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.gaussian import GaussianExpectation
from derive.gaussian.reference import mp_expectation
from derive.numeric import TABULATE_FROM, lambdify
from derive.symbols import c, q, q1, q2, sigma_b2, sigma_w2, x, y

a = sp.Symbol("a", positive=True)


def test_closed_forms_broadcast_like_ufuncs():
    f = lambdify(sigma_w2 * q / 2 + sigma_b2, [sigma_w2, q, sigma_b2])
    out = f(np.array([[1.0], [2.0]]), np.array([0.5, 1.0, 4.0]), 0.1)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, np.array([[1.0], [2.0]]) * np.array([0.5, 1.0, 4.0]) / 2 + 0.1)
    assert isinstance(lambdify(sp.Integer(3), [q])(2.0), float)
    assert lambdify(sp.Integer(3), [q])(np.zeros(4)).shape == (4,)


def test_kink_functions_heaviside_piecewise_max_min_sign_erf():
    t = sp.Symbol("t", real=True)
    expr = sp.Heaviside(t - 1) + sp.Piecewise((t, t < 2), (4, True)) + sp.Max(t, 3) - sp.Min(t, 0) \
        + sp.sign(t - 1) + sp.erf(t) + sp.Abs(t - 2)
    values = np.array([-1.0, 1.0, 2.5])
    expected = [0 + -1 + 3 + 1 - 1 + math.erf(-1) + 3,
                0.5 + 1 + 3 - 0 + 0 + math.erf(1) + 1,
                1 + 4 + 3 - 0 + 1 + math.erf(2.5) + 0.5]
    np.testing.assert_allclose(lambdify(expr, [t])(values), expected, rtol=1e-15)
    assert lambdify(sp.Heaviside(q, 1), [q])(0.0) == 1.0


def test_arguments_may_be_names_and_text():
    assert lambdify("q**2 + 1", ["q"])(3.0) == 10.0


def test_free_symbols_outside_the_arguments_are_named():
    with pytest.raises(derive.NumericError, match=r"\['sigma_b2'\]"):
        lambdify(sigma_w2 * q + sigma_b2, [sigma_w2, q])
    E = GaussianExpectation(sp.Piecewise((a * x, x < 0), (x, True)) ** 2, (x,), (q,))
    with pytest.raises(derive.NumericError, match=r"\['a'\]"):
        lambdify(E, [q])


def test_a_dirac_delta_is_refused():
    with pytest.raises(derive.NumericError, match="Dirac"):
        lambdify(sp.DiracDelta(q - 1), [q])


def test_non_finite_results_raise_unless_asked_for():
    f = lambdify(sp.sqrt(1 - c**2), [c])
    with pytest.raises(derive.NumericError, match="c=2"):
        f(np.array([0.5, 2.0]))
    out = lambdify(sp.sqrt(1 - c**2), [c], nonfinite="nan")(np.array([0.5, 2.0]))
    assert out[0] == math.sqrt(0.75) and np.isnan(out[1])
    assert np.isnan(f(np.nan))  # a nan argument may give nan: it is not produced by the formula


def test_wrong_number_of_arguments():
    with pytest.raises(derive.NumericError, match="expected 2 arguments"):
        lambdify(q1 + q2, [q1, q2])(1.0)


def _mp_reference(E, values):
    body = E.integrand
    params = [sp.Float(p.subs(values), 30) for p in E.parameters]
    return mp_expectation(body.subs(values), E.variables, params, dps=25)


def test_expectation_with_a_composite_variance_broadcasts():
    E = GaussianExpectation(sp.tanh(x) ** 2, (x,), (sigma_w2 * q + sigma_b2,))
    f = lambdify(sigma_w2 * E + sigma_b2, [sigma_w2, q, sigma_b2])
    sw, qs, sb = np.array([[1.5], [3.0]]), np.array([0.1, 2.0, 40.0]), 0.05
    out = f(sw, qs, sb)
    assert out.shape == (2, 3)
    for i, j in np.ndindex(out.shape):
        point = {sigma_w2: sp.Float(sw[i, 0], 30), q: sp.Float(qs[j], 30), sigma_b2: sp.Float(sb, 30)}
        reference = point[sigma_w2] * _mp_reference(E, point) + sb
        assert abs(out[i, j] - reference) <= 1e-13 * abs(reference)


def test_activation_parameters_inside_the_integrand_are_arguments():
    leaky = sp.Piecewise((a * x, x < 0), (x, True))
    E = GaussianExpectation(leaky**2, (x,), (q,))
    out = lambdify(E, [q, a])(2.0, np.array([0.0, 0.1, 1.0]))
    np.testing.assert_allclose(out, 2.0 * (1 + np.array([0.0, 0.01, 1.0])) / 2, rtol=1e-13)
    shifted = GaussianExpectation(sp.Heaviside(x - a), (x,), (q,))  # kink at a moves with the parameter
    out = lambdify(shifted, [q, a])(1.0, np.array([-1.0, 0.5]))
    np.testing.assert_allclose(out, [0.5 * math.erfc(-1 / math.sqrt(2)), 0.5 * math.erfc(0.5 / math.sqrt(2))],
                               rtol=1e-13)


def test_two_dimensional_expectations_follow_moving_kinks():
    E = GaussianExpectation(sp.Max(x, y), (x, y), (q1, q2, c))
    cs = np.array([-1.0, -0.3, 0.0, 0.8, 1.0])
    out = lambdify(E, [q1, q2, c])(1.0, 2.0, cs)
    np.testing.assert_allclose(out, np.sqrt((3 - 2 * cs * np.sqrt(2)) / (2 * np.pi)), rtol=1e-12)
    relu = GaussianExpectation(sp.Max(0, x) * sp.Max(0, y), (x, y), (q1, q2, c))
    theta = np.arccos(cs)
    expected = np.sqrt(2) * (np.sin(theta) + (np.pi - theta) * cs) / (2 * np.pi)
    np.testing.assert_allclose(lambdify(relu, [q1, q2, c])(1.0, 2.0, cs), expected, rtol=1e-12, atol=1e-15)


def test_large_arrays_go_through_a_checked_interpolant():
    E = GaussianExpectation(sp.tanh(x) ** 2, (x,), (q,))
    qs = np.logspace(-6, 4, TABULATE_FROM + 1)
    tabulated = lambdify(E, [q])(qs)
    integrated = lambdify(E, [q], tabulate=False)(qs[::50])
    np.testing.assert_allclose(tabulated[::50], integrated, rtol=1e-12)
    with mp.workdps(30):
        for value, qq in zip(tabulated[::400], qs[::400], strict=True):
            reference = mp_expectation(sp.tanh(x) ** 2, (x,), (sp.Float(qq, 30),), dps=25)
            assert abs(value - reference) <= 1e-12 * reference
    assert lambdify(E, [q])(np.zeros(TABULATE_FROM))[0] == 0.0


def test_blocked_evaluation_is_the_unblocked_one_to_the_bit(monkeypatch):
    """Large arrays are evaluated by blocks of rows (derive.gaussian.blocks); the values, including
    a Piecewise whose branches mix shapes and overflow outside their own domain, are the same
    numbers as from one call on the whole arrays."""
    from derive.gaussian import blocks
    from derive.gaussian.compiled import numpy_function

    f = numpy_function([sp.Piecewise((sp.exp(-q * c) / (1 + sp.exp(-q * c)), q * c > 0),
                                     (1 / (1 + sp.exp(q * c)), True)), sp.sqrt(q) * c], (q, c))
    rng = np.random.default_rng(5)
    qv, cv = rng.uniform(0, 800, (3001, 1)), rng.uniform(-1, 1, (1, 57))
    monkeypatch.setattr(blocks, "BLOCK", 10_000)
    blocked = f(qv, cv)
    assert len(blocks.row_blocks((3001, 57))) == 18
    monkeypatch.setattr(blocks, "BLOCK", 10**9)
    whole = f(qv, cv)
    assert len(blocks.row_blocks((3001, 57))) == 1
    for a, b in zip(blocked, whole, strict=True):
        assert a.shape == (3001, 57) and np.array_equal(a, b) and np.all(np.isfinite(a))


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_a_symmetric_closed_form_gram_is_its_upper_triangle_mirrored(name, monkeypatch):
    """The closed-form Gram of inputs with themselves is evaluated on and above the diagonal (by
    blocks of rows) and mirrored: exactly symmetric, and entrywise the closed form at each pair's
    own correlation to rounding (the mirrored entries use c of (a, b), equal to that of (b, a) up
    to rounding) — against the same moments evaluated as a general, non-Gram array."""
    from derive.gaussian import blocks
    from derive.gaussian.moments import CLOSED_FORM_ROUNDING, moments_of

    monkeypatch.setattr(blocks, "BLOCK", 3000)  # many row blocks of a 150 x 150 Gram
    rng = np.random.default_rng(11)
    X = rng.normal(size=(150, 7)) * rng.uniform(0.2, 3, (150, 1))
    K = X @ X.T / 7
    qv = np.diag(K).copy()
    m = moments_of(derive.activation(name))
    (_, _, C), (_, _, Cd), _, _ = m.gram(qv[:, None], qv[None, :], K)
    c = np.clip(K / np.sqrt(np.outer(qv, qv)), -1, 1)
    np.fill_diagonal(c, 1.0)
    general = [m.C.evaluate(np.outer(qv, np.ones(150)), np.outer(np.ones(150), qv), c).value,
               m.Cd.evaluate(np.outer(qv, np.ones(150)), np.outer(np.ones(150), qv), c).value]
    for got, expected in zip((C, Cd), general, strict=True):
        assert np.array_equal(got, got.T)
        # both within the rounding bound the closed-form Gram reports (16 CLOSED_FORM_ROUNDING of the scale)
        assert np.max(np.abs(got - expected) / np.abs(expected).max()) <= 2 * 16 * CLOSED_FORM_ROUNDING


def test_moments_of_no_points_are_no_values():
    """An empty selection (the c* search of a phase diagram asks for the points near c = 1, which
    may be none) gives empty arrays on every route: ELU's C_d (the Mehler route) raised a
    ValueError from inside the Hermite projections, and MeanField("elu").phase_diagram with it."""
    from derive.gaussian.moments import moments_of

    for name in ("elu", "relu", "tanh"):
        m = moments_of(derive.activation(name))
        for moment in (m.C, m.Cd):
            out = moment.evaluate(np.empty(0), np.empty(0), np.empty(0))
            assert out.value.shape == (0,) and out.error.shape == (0,)
        assert m.V.evaluate(np.empty(0)).value.shape == (0,)
