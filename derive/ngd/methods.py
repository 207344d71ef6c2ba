"""The approximate Fisher matrices of natural gradient descent, by name, and the conventions.

Karakida & Osawa (NeurIPS 2020, arXiv 2010.00879) compare NGD with the exact Fisher
information matrix G = Jᵀ J / N against four approximations (their section 4 and 5):

* ``"exact"`` — G itself;
* ``"block_diagonal"`` — the layer-wise blocks J_lᵀ J_l / N only (Heskes 2000; Martens & Grosse 2015);
* ``"block_tridiagonal"`` — the blocks of neighbouring layers too (Martens & Grosse 2015);
* ``"kfac"`` — each layer's block as a Kronecker product A_{l−1} ⊗ B_l of the input and the
  cotangent second moments (Martens & Grosse 2015), one output (C = 1);
* ``"unit_wise"`` — one block per unit: its incoming weights and bias (Roux et al. 2008;
  Ollivier 2015; Amari, Karakida & Oizumi 2019), one output (C = 1).

Conventions (:data:`CONVENTIONS`): ``"paper"`` gives α as the paper states it; ``"averaged"``
the α of the plain implementation in which every block and every Kronecker factor is the
1/N-average over the samples, the output layer treated like the others.  They differ for K-FAC
(NL against N(L − 1) + 1) and unit-wise NGD (γ(L − 1)M against γ(L − 1)M + 1); see
:func:`derive.ngd.ngd_alpha`.

>>> method("K-FAC"), method("block diagonal"), method("unitwise")
('kfac', 'block_diagonal', 'unit_wise')
>>> method("tridiagonal")
Traceback (most recent call last):
...
derive.errors.DomainError: method = 'tridiagonal' is not one of 'exact', 'block_diagonal', \
'block_tridiagonal', 'kfac', 'unit_wise'; did you mean 'block_tridiagonal' or 'block_diagonal'?
"""

from __future__ import annotations

import difflib

from derive.errors import DomainError

#: the method names, in the order of the paper
METHODS = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise")
#: the methods defined for one output only (C = 1)
ONE_OUTPUT = ("kfac", "unit_wise")
#: how K-FAC's output layer and unit-wise NGD's output unit are counted
CONVENTIONS = ("paper", "averaged")


def _normalised(value: str) -> str:
    return str(value).strip().lower().replace("-", "").replace(" ", "_")


def _pick(value, options: tuple, name: str) -> str:
    text = _normalised(value)
    for option in options:
        if text in (option, option.replace("_", "")):
            return option
    close = difflib.get_close_matches(text, options, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise DomainError(f"{name} = {value!r} is not one of {', '.join(map(repr, options))}{hint}")


def method(value) -> str:
    """The canonical method name (case, '-' and spaces ignored); a DomainError suggesting the close
    names otherwise."""
    return _pick(value, METHODS, "method")


def convention(value) -> str:
    """The canonical convention name, or a DomainError naming both."""
    return _pick(value, CONVENTIONS, "convention")


def check_outputs(name: str, outputs) -> int:
    """The number of outputs C, refused above 1 for K-FAC and unit-wise NGD."""
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise DomainError(f"outputs = {outputs!r} must be a positive integer (the C linear outputs)")
    if name in ONE_OUTPUT and outputs > 1:
        raise DomainError(f"{name} NGD is derived for one output (C = 1; Karakida & Osawa 2020), not "
                          f"C = {outputs}: train one output per network, or use 'exact', "
                          "'block_diagonal' or 'block_tridiagonal', whose α holds for any C")
    return outputs
