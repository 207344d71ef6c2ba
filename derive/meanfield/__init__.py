"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017) for any block.

* :mod:`~derive.meanfield.theory` — :class:`MeanField`: the maps (symbolic), fixed points,
  χ₁, depth scales, critical line, phase diagram (numeric and at any precision);
* :mod:`~derive.meanfield.maps` — the block's maps evaluated over parameter arrays;
* :mod:`~derive.meanfield.solvers` — the fixed-point solvers;
* :mod:`~derive.meanfield.results` — the result objects and their plots.

>>> MeanField("relu").chi1
sigma_w2/2
"""

from derive.meanfield.results import (
    CriticalLine,
    CriticalPoint,
    DepthScales,
    FixedPoint,
    GradientRatios,
    PhaseDiagram,
    Regime,
    Trajectory,
)
from derive.meanfield.theory import MeanField

__all__ = ["MeanField", "CriticalLine", "CriticalPoint", "FixedPoint", "DepthScales", "PhaseDiagram",
           "GradientRatios", "Trajectory", "Regime"]
