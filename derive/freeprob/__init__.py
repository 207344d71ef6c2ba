"""Free probability for wide random networks: spectral laws, transforms, free convolutions,
Jacobian (dynamical isometry) and CK/NTK spectra.  See :mod:`derive.freeprob.laws` for the
convention (G, M, S, R) used throughout."""

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
