r"""The Fisher information of wide random networks: its eigenvalue statistics, the largest
eigenvalue and the learning rate it allows, batch normalisation, the softmax loss and dynamical
isometry — as formulas, numbers, and the exact spectrum of actual networks beside them.

* :mod:`~derive.fisher.architecture` — the network (L weight layers, widths α_l M, C outputs) from
  an activation, a block or a whole network; the parametrisation;
* :mod:`~derive.fisher.order` — the forward and backward order parameters q̂, q̃ of every layer,
  read from the layer algebra's trace;
* :mod:`~derive.fisher.theory` — κ₁, κ₂, m_λ, s_λ, λ_max, η_c = 2/λ_max (Karakida, Akaho & Amari
  2019): :func:`fisher_spectrum`; the mean-field Gram on given inputs;
* :mod:`~derive.fisher.formulas` — the same as SymPy equations, closed forms in the depth;
* :mod:`~derive.fisher.exact` — the exact nonzero spectrum of a drawn network through the CT × CT
  Gram: :func:`empirical`;
* :mod:`~derive.fisher.batchnorm` — batch norm in the last layer (the reduced λ_max) and in the
  middle layers (:class:`BatchNorm`, a lower bound);
* :mod:`~derive.fisher.softmax` — the cross-entropy FIM's outliers;
* :mod:`~derive.fisher.isometry` — the conditional FIM under dynamical isometry;
* :mod:`~derive.fisher.training` — gradient descent on actual networks, :func:`learning_rate_diagram`.

>>> import derive
>>> spec = derive.fisher_spectrum("relu", 2.0, 0.1, 6, width=1024, samples=256)
>>> f"{spec.learning_rate_bound:.3e}"
'8.317e-04'
>>> bn = derive.fisher_spectrum("relu", 2.0, 0.1, 6, width=1024, samples=256, last_layer="mean_subtracted")
>>> bn.lambda_max < spec.lambda_max / 50
True
"""

from derive.fisher.batchnorm import BatchNorm, MeanSubtraction, middle_bound
from derive.fisher.exact import EmpiricalSpectrum, empirical, spectrum_of
from derive.fisher.isometry import ConditionalFisher, conditional_empirical, conditional_fisher
from derive.fisher.softmax import SoftmaxOutliers
from derive.fisher.theory import (
    DataSpectrum,
    FisherAccuracyWarning,
    FisherSpectrum,
    fisher_spectrum,
    mean_field_gram,
    mean_field_spectrum,
)
from derive.fisher.training import LearningRateDiagram, Run, learning_rate_diagram, train

__all__ = ["fisher_spectrum", "FisherSpectrum", "FisherAccuracyWarning", "empirical", "EmpiricalSpectrum",
           "spectrum_of", "mean_field_gram", "mean_field_spectrum", "DataSpectrum", "BatchNorm",
           "MeanSubtraction", "middle_bound", "SoftmaxOutliers", "conditional_fisher",
           "conditional_empirical", "ConditionalFisher", "learning_rate_diagram", "LearningRateDiagram",
           "train", "Run"]
