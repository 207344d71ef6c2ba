"""Free probability for wide random networks: spectral laws, transforms, free convolutions,
Jacobian (dynamical isometry) and CK/NTK spectra.  See :mod:`derive.freeprob.laws` for the
convention (G, M, S, R) used throughout.  The modules, one line each:

* ``laws`` — spectral laws as objects (Marchenko–Pastur, semicircle, atoms, algebraic laws);
* ``relation`` — the polynomial equation P(z, M) = 0 of a law, in each transform;
* ``series`` — exact power series: moments, S-transform, free cumulants;
* ``convolution`` — free products and sums, affine maps;
* ``inversion`` — Stieltjes inversion of algebraic laws: the physical root, density, support;
* ``subordination`` — laws known through a system of equations, continued from large |z|;
* ``tanh_sinh`` — the tanh–sinh rule, definite and indefinite (mass checks and CDFs);
* ``derivative`` — the law of φ′(h)², the diagonal of one layer's Jacobian;
* ``engine`` — the calls into the mean-field engine (moments of φ′², q*, critical points);
* ``jacobian`` — the spectrum of JJᵀ of a deep network, dynamical isometry;
* ``kernels`` — the conjugate-kernel and NTK spectra of Fan & Wang (2020);
* ``sampling`` — eigenvalues of simulated networks, the CDF and the KS distance.
"""

from derive.freeprob.convolution import affine, free_product, free_sum
from derive.freeprob.derivative import DerivativeLaw, derivative_law
from derive.freeprob.jacobian import DynamicalIsometry, JacobianSpectrum, jacobian_spectrum
from derive.freeprob.kernels import KernelSpectrum, ck_spectrum, ntk_spectrum
from derive.freeprob.laws import (
    AlgebraicLaw,
    Atomic,
    MarchenkoPastur,
    PointMass,
    Semicircle,
    SpectralLaw,
    TwoPoint,
    weight_law,
)

__all__ = [
    "ck_spectrum",
    "KernelSpectrum",
    "ntk_spectrum",
    "DynamicalIsometry",
    "JacobianSpectrum",
    "jacobian_spectrum",
    "DerivativeLaw",
    "derivative_law",
    "AlgebraicLaw",
    "Atomic",
    "MarchenkoPastur",
    "PointMass",
    "Semicircle",
    "SpectralLaw",
    "TwoPoint",
    "affine",
    "free_product",
    "free_sum",
    "weight_law",
]
