"""What every FIM spectrum offers: λ_max and the learning-rate bound 2/λ_max.

>>> import numpy as np
>>> DescendingEigenvalues(np.array([4.0, 1.0])).learning_rate_bound
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class DescendingEigenvalues:
    """λ_max and the learning-rate bound 2/λ_max of a spectrum whose ``eigenvalues`` are sorted
    in descending order (Karakida, Akaho & Amari 2019: gradient descent on the squared loss
    diverges for η > 2/λ_max)."""

    eigenvalues: np.ndarray

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def learning_rate_bound(self) -> float:
        return 2.0 / self.lambda_max
