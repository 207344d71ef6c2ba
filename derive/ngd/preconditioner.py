r"""The NGD step of each approximate Fisher matrix, from the layer factors of the Jacobian, without
the P × P matrix: the push-through identity (Xᵀ X)⁺ Xᵀ = Xᵀ (X Xᵀ)⁺ puts every pseudo-inverse on
the side of the N samples (zero damping, as in Karakida & Osawa 2020, section "NGD for
over-parameterized models" of the talk).

Notation (:class:`derive.fisher.exact.LayerFactors`): layer l has inputs H̃_l (N × (M_{l−1} + 1),
the bias column included, scaled by the parametrisation), K_l = H̃_l H̃_lᵀ, and cotangents
D_l[k] (N × M_l, output k); its Jacobian J_l has the rows D_l[k][n, :] ⊗ H̃_l[n, :] and the Gram
Θ_l = J_l J_lᵀ (CN × CN).  The loss (1/2N) Σ ‖f − y‖² has the gradient Jᵀ r / N, r = f − y, and
the step Δθ = −η G⁺ Jᵀ r / N.  Every method's step is, per layer, Δθ̃_l = −η C_lᵀ H̃_l for an
N × M_l matrix C_l of *effective cotangents* (:meth:`Preconditioner.cotangents`), so the outputs
at any inputs x* move, to first order, by −η Σ_l Σ_i D*_l[n*, i] (H̃*_l H̃_lᵀ C_l)[n*, i]
(:meth:`Preconditioner.change`); at the training inputs that is −η J G⁺ Jᵀ r / N.

* exact, G = Jᵀ J/N: C_l = Σ_k v_k D_l[k] with v = Θ⁺ r, Θ = Σ_l Θ_l, so J G⁺ Jᵀ/N = Θ Θ⁺ = I;
* block diagonal: v_l = Θ_l⁺ r per layer, so J G⁺ Jᵀ/N = Σ_l Θ_l Θ_l⁺ = L I;
* block tri-diagonal, G = Ĵᵀ (T ⊗ I) Ĵ / N with Ĵ = diag(J_1, …, J_L) and T the tridiagonal matrix
  of ones: with S = K̂^{1/2}, K̂ = Ĵ Ĵᵀ = diag(Θ_l), the stacked dual vectors are
  u = S⁻¹ (S (T ⊗ I) S)⁺ S (1 ⊗ r), exact whether or not T is invertible, so
  J G⁺ Jᵀ/N = (1ᵀ ⊗ I) S (S (T ⊗ I) S)⁺ S (1 ⊗ I) = (1ᵀ T⁺ 1) I (derived here);
* K-FAC (C = 1), G_l = A_{l−1} ⊗ B_l with A = H̃ᵀ H̃ / N and B = Dᵀ D / N (Martens & Grosse
  2015): the preconditioned gradient of W̃_l is B⁺ (Dᵀ diag(r) H̃ / N) A⁺ = N D⁺ diag(r) H̃⁺ᵀ, i.e.
  C_l = N K_l⁺ diag(r) D_l⁺ᵀ, and J_l G_l⁺ J_lᵀ / N = N (P_H ∘ P_D) (P the projections onto the
  ranges of H̃_l and D_l): N I for a hidden layer, I for the output layer (D_L = 1, P_D = 11ᵀ/N);
  convention "paper" scales the output layer by N (B_L = 1/N) so that α = NL;
* unit-wise (C = 1): one block per unit i, J_{l,i} = diag(δ_i) H̃_l (δ_i = D_l[0][:, i]): the
  dual vector of unit i is c_i = (J_{l,i} J_{l,i}ᵀ)⁺ r, C_l[:, i] = δ_i ∘ c_i, and
  J_{l,i} J_{l,i}⁺ = diag(1[δ_i ≠ 0]) when H̃_l has rank N: the operator is diagonal.

Every Gram that is inverted must be nonsingular (a rank-deficient Jacobian block: too narrow a
layer for the samples, or repeated inputs); the DomainError says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derive.errors import DomainError
from derive.ngd.methods import check_outputs

EPS = np.finfo(float).eps
ADVICE = ("so the pseudo-inverse is not the identity on the training outputs: give every layer at least as "
          "many units as samples (hidden widths M_l >= N and, for K-FAC and unit-wise NGD, the input "
          "dimension M_0 + 1 >= N), use fewer samples, or remove repeated inputs")


def inverse(K: np.ndarray, what: str, inner: int) -> tuple:
    """(K⁻¹, condition number) of a positive semi-definite Gram K = X Xᵀ (X with `inner` columns);
    a DomainError naming `what` when K is singular to within the roundoff of forming it."""
    K = (K + K.T) / 2
    w, V = np.linalg.eigh(K)
    top = max(float(w[-1]), 0.0)
    tol = 10 * (inner + K.shape[0]) * EPS * top
    if top == 0.0 or w[0] <= tol:
        rank = int(np.sum(w > tol))
        raise DomainError(f"{what} has rank {rank} < {K.shape[0]}, {ADVICE}")
    return (V / w) @ V.T, top / float(w[0])


def pseudo_inverse(K: np.ndarray, floor: float) -> np.ndarray:
    """The pseudo-inverse of the symmetric K, eigenvalues with |λ| <= floor taken as zero."""
    w, V = np.linalg.eigh((K + K.T) / 2)
    keep = np.abs(w) > floor
    return (V[:, keep] / w[keep]) @ V[:, keep].T


def _dual_to_cotangents(factors, duals) -> list:
    """C_l = Σ_k v_l[k] ∘ D_l[k] (per batch entry): duals[l] is (B, C, N)."""
    return [np.einsum("bkn,kni->bni", v, f.D) for f, v in zip(factors, duals, strict=True)]


@dataclass(frozen=True, eq=False)
class Preconditioner:
    """NGD with one approximate Fisher matrix at one point: built by :func:`preconditioner` from
    the layer factors at the N training inputs.  ``condition`` is the largest condition number of
    the Grams it inverts (the roundoff of its results is of order condition × CN × ε)."""

    method: str
    factors: tuple
    condition: float
    _solve: object

    @property
    def samples(self) -> int:
        return self.factors[0].D.shape[1]

    @property
    def outputs(self) -> int:
        return self.factors[0].D.shape[0]

    def cotangents(self, R) -> list:
        """The effective cotangents C_l (B × N × M_l per layer) of the residuals R (B × C × N, or C × N)."""
        R = np.asarray(R, dtype=float)
        return self._solve(R if R.ndim == 3 else R[None])

    def change(self, cotangents, at=None) -> np.ndarray:
        """J* Δθ / (−η): the first-order change (B × C × N*) of the outputs at the inputs of the layer
        factors `at` (those of the same network at other inputs; None: the training inputs)."""
        at = self.factors if at is None else at
        out = 0.0
        for train, test, C in zip(self.factors, at, cotangents, strict=True):
            cross = test.a * (test.H @ train.H.T) + test.b
            out = out + np.einsum("kni,bni->bkn", test.D, np.matmul(cross, C))
        return out

    def operator(self) -> np.ndarray:
        """J G⁺ Jᵀ / N on the training set, a CN × CN matrix (rows ordered (output k, sample n))."""
        C, N = self.outputs, self.samples
        basis = np.eye(C * N).reshape(C * N, C, N)
        return self.change(self.cotangents(basis)).reshape(C * N, C * N).T


def _exact(factors, convention):
    C, N = factors[0].D.shape[:2]
    theta = sum(f.gram for f in factors).reshape(C * N, C * N)
    inv, cond = inverse(theta, "the Jacobian J (its Gram J Jᵀ)", sum(f.H.shape[1] + 1 for f in factors))

    def solve(R):
        v = (R.reshape(len(R), C * N) @ inv).reshape(R.shape)
        return _dual_to_cotangents(factors, [v] * len(factors))

    return solve, cond


def _layer_inverses(factors) -> tuple:
    C, N = factors[0].D.shape[:2]
    pairs = [inverse(f.gram.reshape(C * N, C * N), f"the Jacobian of layer {l} (its Gram Θ_{l})",
                     f.H.shape[1] + 1) for l, f in enumerate(factors, 1)]
    return [p[0] for p in pairs], max(p[1] for p in pairs)


def _block_diagonal(factors, convention):
    C, N = factors[0].D.shape[:2]
    inverses, cond = _layer_inverses(factors)

    def solve(R):
        flat = R.reshape(len(R), C * N)
        return _dual_to_cotangents(factors, [(flat @ inv).reshape(R.shape) for inv in inverses])

    return solve, cond


def _block_tridiagonal(factors, convention):
    C, N = factors[0].D.shape[:2]
    L, n = len(factors), C * N
    _layer_inverses(factors)  # the rank checks, with their messages
    roots = []
    for f in factors:
        w, V = np.linalg.eigh(f.gram.reshape(n, n))
        roots.append(((V * np.sqrt(w)) @ V.T, (V / np.sqrt(w)) @ V.T, float(w[-1]), float(w[0])))
    T = np.eye(L) + np.eye(L, k=1) + np.eye(L, k=-1)
    middle = np.zeros((L * n, L * n))
    for i in range(L):
        for j in range(max(i - 1, 0), min(i + 2, L)):
            middle[i * n:(i + 1) * n, j * n:(j + 1) * n] = roots[i][0] @ roots[j][0]
    # S (T ⊗ I) S has the kernel S⁻¹(ker T ⊗ Rⁿ), numerically of size ε‖·‖, and nonzero eigenvalues of
    # modulus at least λ_min(K̂) σ (σ the smallest nonzero |eigenvalue| of T): cut at their geometric mean
    t = np.abs(np.linalg.eigvalsh(T))
    sigma = float(np.min(t[t > 10 * L * EPS]))
    noise = 30 * L * n * EPS * max(r[2] for r in roots)
    plus = pseudo_inverse(middle, np.sqrt(noise * min(r[3] for r in roots) * sigma))
    S, S_inv = [r[0] for r in roots], [r[1] for r in roots]

    def solve(R):
        flat = R.reshape(len(R), n)
        stacked = np.concatenate([flat @ s.T for s in S], axis=1) @ plus.T
        duals = [(stacked[:, i * n:(i + 1) * n] @ S_inv[i].T).reshape(R.shape) for i in range(L)]
        return _dual_to_cotangents(factors, duals)

    return solve, max(r[2] / r[3] for r in roots)


def _cotangent_pseudo_inverse(D: np.ndarray, l: int) -> tuple:
    """(D⁺ᵀ, condition) for the cotangents D (N × M_out) of layer l, from the smaller side."""
    N, width = D.shape
    if width >= N:
        inv, cond = inverse(D @ D.T, f"the cotangents D_{l} of layer {l}", width)
        return inv @ D, cond
    inv, cond = inverse(D.T @ D, f"the cotangents D_{l} of layer {l} (output side)", N)
    return D @ inv, cond


def _kfac(factors, convention):
    N = factors[0].D.shape[1]
    parts, cond = [], 1.0
    for l, f in enumerate(factors, 1):
        K_inv, c1 = inverse(f.input_gram, f"the inputs H̃_{l - 1} of layer {l}", f.H.shape[1] + 1)
        Dpt, c2 = _cotangent_pseudo_inverse(f.D[0], l)
        scale = N * (N if (convention == "paper" and l == len(factors)) else 1)
        parts.append((scale * K_inv, Dpt))
        cond = max(cond, c1, c2)

    def solve(R):
        r = R[:, 0, :]
        return [np.einsum("nm,bm,mi->bni", K_inv, r, Dpt) for K_inv, Dpt in parts]

    return solve, cond


def _unit_wise(factors, convention):
    parts, cond = [], 1.0
    for l, f in enumerate(factors, 1):
        K = f.input_gram
        _, c = inverse(K, f"the inputs H̃_{l - 1} of layer {l}", f.H.shape[1] + 1)
        lower = np.linalg.cholesky((K + K.T) / 2)
        delta = f.D[0].T  # (units, N)
        U, s, _ = np.linalg.svd(delta[:, :, None] * lower[None], full_matrices=False)
        keep = s > 10 * s.shape[1] * EPS * s[:, :1]
        inv_sq = np.where(keep, 1.0 / np.where(keep, s, 1.0) ** 2, 0.0)
        parts.append((delta, U, inv_sq))
        cond = max(cond, c, float(np.max(s[:, 0] ** 2 * np.max(inv_sq, axis=1))))  # κ of J_i J_iᵀ

    def solve(R):
        r = R[:, 0, :]
        out = []
        for delta, U, inv_sq in parts:
            c = np.einsum("inj,bij->bin", U, np.einsum("imj,bm->bij", U, r) * inv_sq)  # (J_i J_iᵀ)⁺ r
            out.append(np.transpose(c * delta[None], (0, 2, 1)))
        return out

    return solve, cond


_BUILDERS = {"exact": _exact, "block_diagonal": _block_diagonal, "block_tridiagonal": _block_tridiagonal,
             "kfac": _kfac, "unit_wise": _unit_wise}


def preconditioner(method: str, factors, convention: str = "paper") -> Preconditioner:
    """The :class:`Preconditioner` of `method` (a canonical name) and `convention` from the layer
    factors of the training inputs (:func:`derive.fisher.exact.jacobian_factors`, one probe per
    output)."""
    factors = tuple(factors)
    check_outputs(method, factors[0].D.shape[0])
    solve, cond = _BUILDERS[method](factors, convention)
    return Preconditioner(method, factors, float(cond), solve)
