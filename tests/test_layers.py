"""The layer algebra: objects, special cases that must agree, bad input, and the recursion."""

import numpy as np
import pytest
import sympy as sp

import derive
from derive.errors import DeriveError, DomainError, UnknownActivationError
from derive.layers import Dense, Dropout, KernelState, LayerNorm, Nonlinearity, Residual, repeat, serial
from derive.symbols import alpha, c, q, q1, q2, sigma_b2, sigma_w2

T11, T22, T12, CHI = sp.symbols("T11 T22 T12 chi", positive=True)
PAIR = KernelState(q1, q2, c * sp.sqrt(q1 * q2), T11, T22, T12, CHI)
X = np.random.default_rng(5).standard_normal((6, 7))


def same_state(a: KernelState, b: KernelState) -> bool:
    return all(sp.simplify(getattr(a, f) - getattr(b, f)) == 0
               for f in ("k11", "k22", "k12", "t11", "t22", "t12", "chi"))


def grams(net, X=X):
    k = net.kernels(X)
    return np.asarray(k.nngp), np.asarray(k.ntk)


# --- objects: repr, equality, hashing, LaTeX ----------------------------------------------------


def test_layers_are_readable_equal_hashable_and_print_latex():
    net = serial(Dense(2, "1/10"), Residual(serial(Dense(sigma_w2, sigma_b2), "tanh"), alpha=alpha),
                 Dropout("9/10"), LayerNorm())
    assert repr(net) == ("serial(Dense(2, 1/10), Residual(serial(Dense(sigma_w2, sigma_b2), tanh), "
                         "alpha=alpha), Dropout(9/10), LayerNorm())")
    twin = serial(Dense(2, sp.Rational(1, 10)), Residual(serial(Dense(sigma_w2, sigma_b2), "tanh"), alpha),
                  Dropout(sp.Rational(9, 10)), LayerNorm())
    assert net == twin and hash(net) == hash(twin) and len({net, twin}) == 1
    assert net != serial(Dense(2, "1/10"), LayerNorm())
    text = derive.latex(net)
    assert r"\mathrm{LayerNorm}" in text and r"\mathrm{Dropout}" in text and r"\sigma_w^2" in text
    assert r"\alpha" in text and r"\tanh" in text
    assert net._repr_latex_().startswith("$")


def test_an_activation_or_its_name_is_a_layer():
    relu = derive.activation("relu")
    assert serial(relu) == serial("relu") == serial(Nonlinearity(relu))
    with pytest.raises(UnknownActivationError, match="did you mean"):
        serial(Dense(1), "rleu")
    with pytest.raises(DomainError, match="not a layer"):
        serial(Dense(1), 42)


# --- the maps of each layer ------------------------------------------------------------------------


def test_dropout_divides_the_diagonal_by_keep_and_leaves_the_pair_entries():
    p = sp.Symbol("p", positive=True)
    out = Dropout(p).forward(PAIR)
    assert (out.k11, out.k22, out.k12) == (q1 / p, q2 / p, PAIR.k12)
    assert (out.t11, out.t22, out.t12, out.chi) == (T11 / p, T22 / p, T12, CHI / p)
    assert sp.simplify(out.c - p * c) == 0  # c' = p c: c = 1 is no longer a fixed point


def test_layernorm_fixes_q_to_one_and_preserves_the_correlation():
    out = LayerNorm().forward(PAIR)
    assert (out.k11, out.k22) == (1, 1)
    assert sp.simplify(out.c - c) == 0
    assert out.chi == CHI / q1
    K, _ = grams(serial(Dense(3.0, 0.2), "tanh", Dense(1.7, 0.1), LayerNorm()))
    assert np.allclose(np.diag(K), 1.0, rtol=0, atol=1e-15)


def test_residual_with_alpha_zero_is_the_identity():
    for branch in (serial(Dense(sigma_w2, sigma_b2), "tanh"), serial("relu", Dense(2, 1)), "erf"):
        assert same_state(Residual(branch, 0).forward(PAIR), PAIR)
    base = serial(Dense(1.3, 0.1), "tanh", Dense(1.3, 0.1))
    with_skip = serial(Dense(1.3, 0.1), "tanh", Dense(1.3, 0.1), Residual(serial("tanh", Dense(1.1, 0.2)), 0))
    for a, b in zip(grams(base), grams(with_skip), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


def test_residual_adds_the_branch_with_weight_alpha_squared():
    branch = serial(Dense(sigma_w2, sigma_b2), "relu", Dense(2, 0))
    out, b = Residual(branch, alpha).forward(PAIR), branch.forward(PAIR)
    for f in ("k11", "k12", "t12", "chi"):
        assert sp.simplify(getattr(out, f) - getattr(PAIR, f) - alpha**2 * getattr(b, f)) == 0


def test_a_residual_branch_of_activations_only_is_the_activation_x_plus_alpha_phi():
    res = Residual("tanh", sp.Rational(1, 2))
    assert res.elementwise.expr == derive.symbols.x + sp.tanh(derive.symbols.x) / 2
    direct = serial(Dense(1.5, 0.1), derive.activation("x + tanh(x)/2"), Dense(1.5, 0.1))
    via_residual = serial(Dense(1.5, 0.1), res, Dense(1.5, 0.1))
    for a, b in zip(grams(direct), grams(via_residual), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_leaky_relu_with_zero_slope_is_relu():
    leaky = derive.activation("leaky_relu", a=0)
    relu = derive.activation("relu")
    assert same_state(Nonlinearity(leaky).forward(PAIR), Nonlinearity(relu).forward(PAIR))
    net = lambda act: serial(Dense(2.0, 0.1), act, Dense(2.0, 0.1), act, Dense(2.0, 0.1))  # noqa: E731
    for a, b in zip(grams(net(leaky)), grams(net(relu)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


def test_dense_then_activation_blocks_give_the_mean_field_maps():
    """derive.MeanField is the special case repeat(serial(act, Dense), L) of the same algebra:
    its q-map, c-map and χ₁ are the block's entries."""
    mf = derive.MeanField("erf")
    block = serial("erf", Dense(sigma_w2, sigma_b2))
    single, pair = block.forward(KernelState.single(q)), block.forward(KernelState.pair(q, q, c))
    assert sp.simplify(mf.q_map - single.k11) == 0
    assert sp.simplify(mf.c_map - pair.k12 / pair.k11) == 0
    assert sp.simplify(mf.chi1 - single.chi) == 0
    # and the numbers: the Gram of two inputs of equal norm follows the MeanField trajectory (an
    # independent numerical route: Chebyshev tables in derive.meanfield, Mehler sums here)
    w, b, depth = 1.7, 0.1, 6
    x1, x2 = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    net = serial(Dense(w, b), repeat(serial("tanh", Dense(w, b)), depth - 1))
    K = np.asarray(net.nngp(np.array([x1, x2])))
    q1_ = w * 0.5 + b
    traj = derive.MeanField("tanh", w, b).propagate(depth, q1=q1_, c1=(w * 0.3 + b) / q1_)
    assert np.isclose(K[0, 0], traj.q[-1], rtol=1e-9, atol=0)
    assert np.isclose(K[0, 1] / K[0, 0], traj.c[-1], rtol=1e-9, atol=0)


# --- what the maps assume, checked when the network is built ----------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda: serial(Dense(1), "relu", "tanh"), "Gaussian pre-activations"),
    (lambda: serial(Dense(1), "relu", LayerNorm()), "non-zero mean"),
    (lambda: serial(Dense(1), "relu", Residual(serial(Dense(1), "relu"))), "non-zero means"),
    (lambda: Residual(serial("tanh", Dropout(0.5))), "path without a Dense layer"),
    (lambda: serial(Dense(1), Dropout(0.5), "tanh"), "non-Gaussian"),
])
def test_architectures_outside_the_theory_are_refused_with_a_reason(build, message):
    with pytest.raises(DomainError, match=message):
        build()


def test_architectures_inside_the_theory_are_accepted():
    serial(Dense(1), "tanh", Residual(serial(Dense(1), "relu")))  # odd φ: the stream is centred
    serial(Dense(1), "relu", Residual(serial(Dense(1), "relu", Dense(1))))  # branch ends with Dense
    serial(Dense(1), Residual(serial("relu", Dense(1))), LayerNorm(), "tanh")


@pytest.mark.parametrize("build, message", [
    (lambda: Dense(-1), "negative"),
    (lambda: Dense(1, float("nan")), "finite"),
    (lambda: Dense("oo"), "finite"),
    (lambda: Dropout(0), r"\(0, 1\]"),
    (lambda: Dropout(1.5), r"\(0, 1\]"),
    (lambda: Dropout(float("nan")), r"\(0, 1\]"),
    (lambda: Residual(serial(Dense(1), "tanh"), alpha=float("inf")), "finite real"),
    (lambda: Residual(serial(Dense(1), "tanh"), alpha=1j), "finite real"),
    (lambda: repeat(Dense(1), -2), "non-negative integer"),
    (lambda: repeat(Dense(1), 2.5), "non-negative integer"),
])
def test_bad_parameters_raise_a_derive_error_saying_what_to_do(build, message):
    with pytest.raises(DeriveError, match=message):
        build()


# --- the recursion, for a paper ----------------------------------------------------------------------


def test_recursion_names_the_integrals_and_writes_the_ntk_like_the_papers():
    rec = serial("tanh", Dense(sigma_w2, sigma_b2)).recursion()
    names = [str(eq.lhs) for eq in rec.definitions]
    assert names == [r"\hat{q}^{l}", r"\hat{q}_{12}^{l}", r"\dot{q}^{l}", r"\dot{q}_{12}^{l}"]
    text = derive.latex(rec)
    assert text.startswith(r"\begin{aligned}") and text.endswith(r"\end{aligned}")
    assert r"q^{l+1} &= \hat{q}^{l} \sigma_w^2 + \sigma_b^2" in text
    assert r"\Theta_{12}^{l+1} &= \Theta_{12}^{l} \dot{q}_{12}^{l} \sigma_w^2 + c^{l+1} q^{l+1}" in text
    assert text.count("{") == text.count("}")
    paper = rec.align()
    assert paper.startswith(r"\begin{align}") and paper.endswith(r"\end{align}")


def test_recursion_expands_back_to_the_block_map():
    block = serial(Residual(serial("relu", Dropout("4/5"), Dense(sigma_w2, sigma_b2)), alpha), LayerNorm())
    rec = block.recursion(equal_variances=False)
    by_name = {str(eq.lhs): eq.rhs for eq in rec.expanded()}
    syms = {s.name: s for eq in rec.expanded() for s in eq.rhs.free_symbols}
    nxt = {by_name["q_{1}^{l+1}"], by_name["q_{2}^{l+1}"]}
    assert nxt == {1}
    state = KernelState(syms["q_{1}^{l}"], syms["q_{2}^{l}"],
                        syms["c^{l}"] * sp.sqrt(syms["q_{1}^{l}"] * syms["q_{2}^{l}"]),
                        *(syms[rf"\Theta_{{{i}}}^{{l}}"] for i in (11, 22, 12)), syms[r"\chi^{l}"])
    direct = block.forward(state)
    point = {s: v for s, v in zip(sorted(direct.k12.free_symbols | direct.chi.free_symbols, key=str),
                                  (0.4, 0.7, 0.3, 1.3, 0.9, 1.1, 0.2, 0.5, 0.8, 0.6), strict=False)}
    for name, entry in (("c^{l+1}", direct.c), (r"\chi^{l+1}", direct.chi)):
        assert abs(sp.N((by_name[name] - entry).subs(point), 20)) < 1e-15


def test_relu_recursion_names_the_angle_once():
    rec = repeat(serial("relu", Dense(sigma_w2, sigma_b2)), 10).recursion()
    assert [str(eq.lhs) for eq in rec.definitions] == [r"\theta^{l}"]
    text = derive.latex(rec)
    assert r"\sin{\left(\theta^{l} \right)}" in text and r"\operatorname{acos}" in text


def test_recursion_gives_chi1_and_the_critical_surface_of_the_residual_dropout_block():
    keep = sp.Symbol("rho", positive=True)
    block = serial(Residual(serial("tanh", Dropout(keep), Dense(sigma_w2, sigma_b2)), alpha), LayerNorm())
    rec = block.recursion()
    s = rec.state()
    chi1 = sp.simplify(rec.expand(rec["chi"] / s["chi"], only=[r"\bar{q}^{l}"]).subs(s["q"], 1))
    (critical,) = sp.solve(sp.Eq(chi1, 1), sigma_b2)
    names = {sym.name for sym in critical.free_symbols}
    assert names == {r"\dot{q}^{l}", r"\hat{q}^{l}", "sigma_w2", "rho"}  # independent of alpha
    with pytest.raises(KeyError, match="definitions"):
        rec["nothing"]


# --- the per-layer trace, backward factors, Dense's ensemble and parametrisation ----------------------


def test_the_trace_records_every_primitive_layer_with_named_states():
    net = serial(Dense(sigma_w2, sigma_b2), repeat(serial("tanh", Dense(sigma_w2, sigma_b2)), 2))
    trace = net.trace(KernelState.single(q))
    assert [type(step.layer).__name__ for step in trace] == ["Dense", "Nonlinearity", "Dense",
                                                          "Nonlinearity", "Dense"]
    assert len(trace.of(Dense)) == 3 and trace.output == trace.steps[-1].after
    assert trace.steps[1].before == trace.steps[0].after
    assert trace.steps[0].after.k11 == sigma_w2 * q + sigma_b2 and trace.steps[0].after.chi == sigma_w2


def test_the_ntk_is_the_sum_over_weight_layers_of_input_kernel_times_backward_cross_factor():
    """Θ = Σ_l Σ^l Π_{m>l} Σ̇^m (Jacot et al. 2018, eq. 6 unrolled): from the trace, each Dense
    layer's output kernel k12 times the cross backward factor from there to the output."""
    X = np.random.default_rng(3).standard_normal((5, 7))
    net = serial(Dense(1.7, 0.1), repeat(serial("relu", Dense(1.7, 0.1)), 3))
    out = net.kernels(X, trace=True)
    chi_out = out.trace.output.chi12
    total = sum(step.after.k12 * chi_out / step.after.chi12 for step in out.trace.of(Dense))
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(total[off], np.asarray(out.ntk)[off], rtol=1e-13)
    np.testing.assert_allclose(np.broadcast_to(out.trace.output.chi11, (5, 1))[:, 0], out.chi, rtol=1e-15)


def test_dense_carries_its_ensemble_and_parametrisation():
    d = Dense(2, 0.1, ensemble="orthogonal", parametrisation="standard")
    assert repr(d) == "Dense(2, 0.1, ensemble='orthogonal', parametrisation='standard')"
    assert d != Dense(2, 0.1) and repr(Dense(2, 0.1)) == "Dense(2, 0.1)"
    s = d.forward(KernelState.single(q))
    assert s.t11 == q and s.k11 == 2 * q + sp.Float(0.1)  # standard: the weights' k, no bias term
    with pytest.raises(DomainError, match="ensemble"):
        Dense(1, 0, ensemble="uniform")
    with pytest.raises(DomainError, match="parametrisation"):
        Dense(1, 0, parametrisation="mup")


@pytest.mark.parametrize("name", ["relu", "tanh", "erf"])
def test_the_diagonal_of_each_gram_is_the_variance_map_exactly(name):
    """c = 1 between an input and itself: C is V and C_d is D to the last bit at every layer, so
    no layer sees c = 1 − ulp there (where the arc-cosine C_d of ReLU loses 1e-8 and the Mehler
    series of tanh would need its most terms)."""
    from derive.layers import Nonlinearity

    X = np.random.default_rng(4).standard_normal((40, 9))
    net = serial(Dense(1.5, 0.05), repeat(serial(name, Dense(1.5, 0.05)), 3))
    out = net.kernels(X, trace=True)
    for step in out.trace.of(Nonlinearity):
        s = step.after
        assert np.array_equal(np.diag(s.k12), s.k11[:, 0]) and np.array_equal(np.diag(s.t12), s.t11[:, 0])
