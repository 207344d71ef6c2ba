"""The numerics under algebraic laws (derive.freeprob.inversion, derive.freeprob.sampling.cdf):
the Rouché certificate of a continuation step against the roots found by mpmath at 30 digits,
the Newton march against the eigenvalue march it replaces, and the CDF against mpmath quadrature
(30 digits, split at the edges) of the exact Marchenko–Pastur density and of the float64 density
of the depth-8 ReLU Jacobian."""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import derive
from derive.freeprob.inversion import _ACCEPT, g_coefficients
from derive.freeprob.relation import G_, Z
from derive.freeprob.sampling import cdf
from derive.freeprob.tanh_sinh import IndefiniteTanhSinh


@pytest.fixture(scope="module")
def relu8():
    law = derive.jacobian_spectrum("relu", depth=8).law
    law.support()
    return law


def _mp_roots(relation, z):
    """All roots of P(z, zG − 1) in G at 30 digits (exact coefficients, mpmath's polyroots)."""
    poly = sp.Poly(relation.equation("G", factored=False), G_)
    with mp.workdps(30):
        coeffs = [mp.mpc(complex(sp.N(c.subs(Z, sp.Rational(z.real) + sp.I * sp.Rational(z.imag)), 40)))
                  if c.has(Z) else mp.mpc(complex(sp.N(c, 40))) for c in poly.all_coeffs()]
        return [complex(r) for r in mp.polyroots(coeffs, maxsteps=200, extraprec=60)]


def test_certified_steps_are_the_nearest_root_by_the_margin(relu8):
    # whenever the certificate holds, the root next to ζ is the nearest to the reference and every
    # other root is farther than its distance / _ACCEPT (mpmath's roots of the exact polynomial)
    tracker = relu8._tracker
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.uniform(0.5, 43, 6), rng.uniform(0.5, 43, 6) + 1j * rng.uniform(0.01, 5, 6)])
    outcomes = []
    for zi in z:
        roots = _mp_roots(relu8.relation, zi)
        zeta = tracker._newton(np.full(len(roots), zi), np.array(roots))
        for scale in (1e-3, 1e-2, 5e-2, 0.2):
            reference = zeta + scale * np.abs(zeta) * np.exp(2j * np.pi * rng.uniform(size=zeta.size))
            ok = tracker.certified(np.full(zeta.size, zi), zeta, reference)
            for i in np.flatnonzero(ok):
                dist = sorted(abs(r - reference[i]) for r in roots)
                assert abs(roots[int(np.argmin([abs(r - zeta[i]) for r in roots]))] - reference[i]) == dist[0]
                assert dist[0] <= _ACCEPT * dist[1]
            outcomes += list(ok)
    assert 0 < sum(outcomes) < len(outcomes)  # both verdicts occur: the test is not vacuous


LAWS = {
    "relu8": lambda: derive.jacobian_spectrum("relu", depth=8).law,
    "mp2": lambda: derive.MarchenkoPastur(2),
    "mp+semicircle": lambda: derive.free_sum(derive.MarchenkoPastur(sp.Rational(1, 2)), derive.Semicircle(1)),
    "hard_tanh": lambda: derive.jacobian_spectrum("hard_tanh", depth=2, weights="orthogonal",
                                                  sigma_b2=0.05).law,
}


@pytest.mark.parametrize("name", LAWS)
def test_newton_march_takes_the_roots_of_the_eigenvalue_march(name):
    law = LAWS[name]()
    law.support()
    tracker, proved, steps = law._tracker, 0, 0
    for piece in law._inversion.pieces:
        s = np.linspace(-4, 4, 401)  # a double-exponential path into both ends, and a uniform one
        de = piece.lo + (piece.hi - piece.lo) / (1 + np.exp(-np.pi * np.sinh(s)))
        for x in (de, np.linspace(piece.lo, piece.hi, 503)[1:-1]):
            for side in (x[x >= piece.x0], x[x < piece.x0][::-1]):
                path = np.concatenate([[piece.x0], side])
                fast, slow = tracker._march(path, piece.g0), tracker._eigen_march(path, piece.g0)
                assert np.array_equal(np.isnan(fast), np.isnan(slow))
                # the same root: the eigenvalue nearest to Newton's value is the eigenvalue march's root,
                # and where both are proved, Newton's value is within the radii of the eigenvalue polished
                z, ok = path.astype(complex), np.isfinite(slow)
                roots = tracker.roots(path[ok])
                nearest = roots[np.arange(ok.sum()), np.argmin(np.abs(roots - fast[ok, None]), axis=1)]
                assert np.array_equal(nearest, slow[ok])
                polished = tracker._newton(z, slow)
                radius = tracker.root_radius(z, fast) + tracker.root_radius(z, polished)
                both = np.isfinite(radius)
                assert np.all(np.abs(fast - polished)[both] <= radius[both])
                if x.size == 501:  # away from the edges the certificate carries the march (not vacuous)
                    q = tracker._scaled(z)
                    proved += tracker.certified(z[1:], polished[1:], q[:-1] * polished[:-1] / q[1:]).sum()
                    steps += path.size - 1
    assert proved >= 0.95 * steps


def _mp_marchenko_pastur_cdf(gamma, x):
    lo, hi = (1 - mp.sqrt(gamma)) ** 2, (1 + mp.sqrt(gamma)) ** 2
    atom = max(0, 1 - 1 / mp.mpf(gamma))
    rho = lambda t: mp.sqrt((hi - t) * (t - lo)) / (2 * mp.pi * gamma * t)  # noqa: E731
    return (atom if x >= 0 else 0) + (mp.quad(rho, [lo, min(max(x, lo), hi)]) if x > lo else 0)


@pytest.mark.parametrize("gamma", [sp.Rational(1, 2), 2])
def test_cdf_against_mpmath(gamma):
    law = derive.MarchenkoPastur(gamma)
    (lo, hi), = law.support().bands
    x = np.concatenate([[-1.0, 0.0, lo, lo + 1e-12, lo + 1e-6], np.linspace(lo, hi, 13)[1:-1],
                        [hi - 1e-9, hi, hi + 1]])
    with mp.workdps(30):
        ref = [float(_mp_marchenko_pastur_cdf(mp.mpf(gamma), mp.mpf(float(t)))) for t in x]
    assert np.max(np.abs(cdf(law, x) - ref)) <= 1e-10


def test_cdf_of_a_divergent_density_against_mpmath(relu8):
    # ρ ~ λ^(-7/8) at 0: mpmath's tanh-sinh at 30 digits on the float64 density, bin by bin, the first
    # in u = λ^(1/8) (ρ(u⁸)·8u⁷ is bounded; in λ the nodes stop at ~1e-30, ~1e-4 of mass short of 0)
    edges = np.linspace(0, relu8.support().upper, 41)[[1, 2, 10, 30, 39, 40]]

    def rho(t):
        return mp.mpf(float(relu8.density(np.array([float(t)]))[0]))

    with mp.workdps(30):
        first = mp.quad(lambda u: rho(u**8) * 8 * u**7, [0, mp.mpf(edges[0]) ** (mp.mpf(1) / 8)])
        bins = [first] + [mp.quad(rho, [a, b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ref = 0.5 + np.cumsum([float(b) for b in bins])
    assert np.max(np.abs(cdf(relu8, edges) - ref)) <= 1e-10


def test_indefinite_rule_refuses_what_it_cannot_resolve():
    # a jump inside the band is not analytic: the rule does not settle to 1e-14 and says so
    with pytest.raises(derive.errors.NumericError, match="not resolved"):
        IndefiniteTanhSinh(lambda t: (t > 0.3).astype(float), 0.0, 1.0).integral(np.array([0.5]), 1e-14)


def test_a_fresh_law_shares_the_exact_derivations_not_the_numerics():
    # the relation's G-coefficients (exact work) are derived once; support, continuation and the
    # mass check's samples are computed again for every law object
    a, b = (derive.jacobian_spectrum("relu", depth=4).law for _ in range(2))
    assert a.relation == b.relation and g_coefficients(a.relation) is g_coefficients(b.relation)
    assert not g_coefficients(a.relation).flags.writeable
    assert a._tracker is not b._tracker and a.support() is not b.support()
    assert a.support().integrals[0] is not b.support().integrals[0]
