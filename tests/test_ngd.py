"""derive.ngd's formulas: α of every method, the tridiagonal closed form, γ against 30-digit
quadrature, the dynamics they imply, and the errors bad input gets.  The networks are in
tests/test_ngd_networks.py."""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.errors import DeriveError, DomainError
from derive.ngd import METHODS, ngd_alpha, tridiagonal, tridiagonal_alpha, unit_gamma
from derive.ngd.notation import L, M, N, eta, f0, ft, gamma, t, y
from derive.symbols import q

DPS = 30


# --- the block tri-diagonal constant ------------------------------------------------------------------


@pytest.mark.parametrize("depth", range(1, 31))
def test_one_T_plus_one_is_the_ceiling_of_a_third_exactly(depth):
    T, one = tridiagonal(depth), sp.ones(depth, 1)
    exact = (one.T * T.pinv() * one)[0]
    assert exact == tridiagonal_alpha(depth) == sp.ceiling(sp.Rational(depth, 3))
    if depth % 3 == 2:  # singular: the kernel is orthogonal to 1, which lies in the range
        assert T.det() == 0
        kernel = T.nullspace()
        assert len(kernel) == 1 and (one.T * kernel[0])[0] == 0
        assert T * (T.pinv() * one) == one
    else:
        assert T.det() != 0 and exact == (one.T * T.inv() * one)[0]


def test_the_symbolic_tridiagonal_alpha_evaluates_to_the_integer_ones():
    assert all(tridiagonal_alpha(L).subs(L, d) == tridiagonal_alpha(d) for d in range(1, 13))


# --- α of every method, and the dynamics ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("convention", ["paper", "averaged"])
def test_alpha_at_numbers_is_the_symbolic_alpha_substituted(method, convention):
    symbolic = ngd_alpha(method, depth=L, activation="relu", convention=convention).value
    for depth, width, samples in ((2, 64, 10), (5, 300, 40)):
        numeric = ngd_alpha(method, depth=depth, width=width, samples=samples, activation="relu",
                            convention=convention).value
        assert numeric == symbolic.subs({L: depth, M: width, N: samples})
        assert numeric.is_number and numeric > 0


@pytest.mark.parametrize("method", METHODS)
def test_eta_one_over_alpha_reaches_the_targets_in_one_step_and_stays(method):
    a = ngd_alpha(method, depth=L, activation="tanh")
    for steps in (1, 2, 7):
        solved = sp.solve(a.dynamics.subs({eta: a.learning_rate, t: steps}), ft)
        assert solved == [y]
    half = sp.solve(a.dynamics.subs({eta: a.learning_rate / 2, t: 3}), ft)[0]
    assert sp.simplify(half - (y + (f0 - y) / 8)) == 0
    assert sp.simplify(a.value * a.learning_rate) == 1


def test_the_two_conventions_differ_by_the_output_layer_only():
    kfac = {c: ngd_alpha("kfac", depth=L, convention=c).value for c in ("paper", "averaged")}
    unit = {c: ngd_alpha("unit_wise", depth=L, convention=c).value for c in ("paper", "averaged")}
    # K-FAC: the output layer's block is N I in the paper's scaling, I (the exact block) when averaged
    assert sp.expand(kfac["paper"] - kfac["averaged"]) == N - 1
    assert sp.expand(unit["averaged"] - unit["paper"]) == 1
    assert unit["paper"] == gamma * (L - 1) * M  # γ left a symbol without an activation
    for method in ("exact", "block_diagonal", "block_tridiagonal"):
        assert (ngd_alpha(method, depth=L, convention="paper").value
                == ngd_alpha(method, depth=L, convention="averaged").value)


def test_the_result_states_its_conditions_and_prints_as_latex():
    a = ngd_alpha("unit_wise", depth=4, width=100, activation="relu")
    text = " ".join(a.conditions)
    assert "isotropic" in text and "C = 1" in text and "1/2" in text and "rank" in text
    assert "C = 1" in " ".join(ngd_alpha("kfac", depth=3).conditions)
    assert "L ≡ 2 (mod 3)" in " ".join(ngd_alpha("block_tridiagonal", depth=5).conditions)
    ceiling = r"\alpha = \left\lceil{\frac{L}{3}}\right\rceil"
    assert derive.latex(ngd_alpha("block_tridiagonal", depth=L)) == ceiling
    assert derive.latex(a) == r"\alpha = 150"
    assert float(a) == 150.0
    with pytest.raises(DomainError, match="free symbols"):
        float(ngd_alpha("kfac", depth=3))
    assert "q" in " ".join(ngd_alpha("unit_wise", depth=3, activation="hard_tanh").conditions)


# --- γ against quadrature ----------------------------------------------------------------------------------

#: φ′ written here (not derived by the library), with the kinks quadrature splits at
DERIVATIVES = {
    "relu": (lambda u: 1 if u > 0 else 0, (0,)),
    "leaky_relu": (lambda u: 1 if u > 0 else mp.mpf("0.01"), (0,)),
    "abs": (lambda u: 1 if u > 0 else -1, (0,)),
    "elu": (lambda u: 1 if u > 0 else mp.exp(u), (0,)),
    "hard_tanh": (lambda u: 1 if -1 < u < 1 else 0, (-1, 1)),
    "tanh": (lambda u: 1 - mp.tanh(u) ** 2, ()),
    "gelu": (lambda u: mp.ncdf(u) + u * mp.npdf(u), ()),
}


def _gamma_by_quadrature(name: str, variance) -> mp.mpf:
    """∫Dz 1[φ′(√q z) ≠ 0] by mp.quad, split at the kinks (the indicator is constant between them
    except at isolated zeros of a smooth φ′, which carry no mass)."""
    dphi, points = DERIVATIVES[name]
    root = mp.sqrt(variance)
    edges = [-mp.inf, *sorted(mp.mpf(p) / root for p in points), mp.inf]
    return mp.fsum(mp.quad(lambda z: (1 if dphi(root * z) != 0 else 0) * mp.npdf(z), [a, b])
                   for a, b in zip(edges[:-1], edges[1:], strict=True))


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
@pytest.mark.parametrize("variance", ["0.3", "1", "4.5"])
def test_gamma_is_the_gaussian_mass_where_the_derivative_is_nonzero(name, variance):
    with mp.workdps(DPS + 5):
        reference = _gamma_by_quadrature(name, mp.mpf(variance))
        value = mp.mpf(str(sp.N(unit_gamma(name).subs(q, sp.Rational(variance)), DPS + 5)))
        assert abs(value - reference) < mp.mpf(10) ** -DPS


def test_gamma_is_a_half_for_relu_and_one_where_the_derivative_has_isolated_zeros():
    assert unit_gamma("relu") == sp.Rational(1, 2)
    assert all(unit_gamma(a) == 1 for a in ("tanh", "erf", "gelu", "x**2", "leaky_relu"))
    assert unit_gamma("hard_tanh").has(q)
    assert ngd_alpha("unit_wise", depth=3, width=10, activation="relu").value == 10


# --- bad input -----------------------------------------------------------------------------------------


def test_unknown_methods_get_the_close_names():
    with pytest.raises(DomainError, match="did you mean 'block_tridiagonal'"):
        ngd_alpha("block_tri_diagonals", depth=3)
    with pytest.raises(DomainError, match="did you mean 'kfac'"):
        ngd_alpha("kfca", depth=3)
    with pytest.raises(DomainError, match="is not one of 'paper', 'averaged'"):
        ngd_alpha("kfac", depth=3, convention="scaled")
    assert ngd_alpha("K-FAC", depth=2).method == "kfac"


@pytest.mark.parametrize("method", ["kfac", "unit_wise"])
def test_kfac_and_unit_wise_refuse_several_outputs(method):
    with pytest.raises(DomainError, match="C = 1"):
        ngd_alpha(method, depth=3, outputs=10, activation="relu")
    with pytest.raises(DomainError, match="C = 1"):
        derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, width=50, samples=5, outputs=3, method=method)
    assert ngd_alpha("block_diagonal", depth=3, outputs=10).value == 3


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_depth_must_be_a_positive_integer(bad):
    with pytest.raises(DomainError, match="depth"):
        ngd_alpha("exact", depth=bad)


def test_unit_wise_of_depth_one_has_no_hidden_units_and_no_paper_alpha():
    with pytest.raises(DomainError, match="no hidden units.*convention='averaged'"):
        ngd_alpha("unit_wise", depth=1, width=10, activation="relu")
    assert ngd_alpha("unit_wise", depth=1, width=10, activation="relu", convention="averaged").value == 1
    assert ngd_alpha("block_diagonal", depth=1).value == 1


def test_training_and_the_kernel_prediction_refuse_bad_input_with_what_to_do():
    from derive.ngd.dynamics import kernel_prediction
    from derive.ngd.training import train

    with pytest.raises(DomainError, match=r"method = 'unitwize' is not one of .*did you mean 'unit_wise'\?"):
        train("relu", 2.0, 0.1, 3, width=50, samples=5, method=("exact", "unitwize"))
    with pytest.raises(DomainError, match="depth = 0 must be an integer"):
        train("relu", 2.0, 0.1, 0, width=50, samples=5, method="exact")
    with pytest.raises(DomainError, match="C = 1"):
        train("relu", 2.0, 0.1, 3, width=50, samples=5, method="kfac", outputs=2)
    with pytest.raises(DomainError, match="rank 11 < 30.*at least as many units as samples"):
        train("relu", 2.0, 0.1, 3, width=(50, 10, 10), samples=30, method="block_diagonal")
    with pytest.raises(DomainError, match="positive integer"):
        train("relu", 2.0, 0.1, 3, width=50, samples=5, method="exact", steps=0)
    X = np.random.default_rng(0).standard_normal((4, 50))
    X[2] = X[0]
    with pytest.raises(DomainError, match="repeated rows.*remove the repeated inputs"):
        kernel_prediction("relu", 2.0, 0.1, 3, width=50, X=X, residual=np.ones(4), X_test=X[:2],
                          method="exact")


def test_width_and_samples_must_be_positive_integers_and_gamma_needs_a_derivative():
    with pytest.raises(DomainError, match="width"):
        ngd_alpha("unit_wise", depth=3, width=0, activation="relu")
    with pytest.raises(DomainError, match="samples"):
        ngd_alpha("kfac", depth=3, samples=-1)
    with pytest.raises(DomainError, match="Dirac delta"):
        ngd_alpha("unit_wise", depth=3, activation="step")
    with pytest.raises(DeriveError):
        ngd_alpha("unit_wise", depth=3, activation="no_such_activation")


def test_a_last_hidden_layer_narrower_than_the_samples_is_refused_with_what_to_do():
    # the output layer's block is the Gram of its inputs: singular when M_{L−1} + 1 < N
    for method in METHODS[1:]:
        with pytest.raises(DomainError, match="layer 3 .*rank 21 < 30.*at least as many units as samples"):
            derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, width=(100, 100, 20), samples=30,
                                               method=method, seed=0)
    # the whole Jacobian keeps full rank: exact NGD is still isotropic
    op = derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, width=(100, 100, 20), samples=30,
                                            method="exact", seed=0)
    assert abs(op.alpha - 1) < 1e-9 and op.spread < 1e-9


@pytest.mark.parametrize("method", ["kfac", "unit_wise"])
def test_kfac_and_unit_wise_need_an_input_dimension_of_at_least_the_samples(method):
    with pytest.raises(DomainError, match="inputs H̃_0 of layer 1 has rank 11 < 30"):
        derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, width=(10, 100, 100), samples=30,
                                           method=method, seed=0)
    # the layer-wise blocks of layer 1 stay invertible (a Schur product with a positive definite factor)
    op = derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, width=(10, 100, 100), samples=30,
                                            method="block_diagonal", seed=0)
    assert abs(op.alpha - 3) < 1e-9


def test_repeated_inputs_and_missing_arguments_are_refused():
    arch = derive.fisher.architecture.architecture("tanh", 1.5, 0.1, 3, width=60)
    network = arch.draw(0)
    X = np.random.default_rng(0).standard_normal((6, 60))
    X[3] = X[1]
    with pytest.raises(DomainError, match="Jacobian J .*rank 5 < 6.*repeated inputs"):
        derive.ngd.function_space_operator(network, X=X, method="exact")
    with pytest.raises(DomainError, match="give the inputs X"):
        derive.ngd.function_space_operator(network, method="exact")
    with pytest.raises(DomainError, match="width= and samples="):
        derive.ngd.function_space_operator("relu", 2.0, 0.1, 3, method="exact")


def test_batch_norm_networks_are_refused():
    block = derive.serial(derive.fisher.BatchNorm(), "relu", derive.Dense(2.0, 0.1))
    with pytest.raises(DomainError, match="batch norm couples the samples"):
        derive.ngd.function_space_operator(block, depth=3, width=50, samples=10, method="exact", seed=0)
