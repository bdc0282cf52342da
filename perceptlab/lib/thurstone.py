"""Thurstone Case V in JND units: the constants and the one numerically delicate function
that the triplet scale (``evaluation.stats.triplets``) and the adaptive planner
(``lib.adaptive``, used by ``studies.planners``) share. No Django.

One unit of the scale is one just-noticeable difference: a difference of 1 is answered
the right way 75 % of the time, Φ(1/σ) = 0.75 (Perez-Ortiz and Mantiuk, arXiv:1712.03686
§6.1; JPEG AIC-3, arXiv:2410.09501).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfcx, ndtri

Array = NDArray[np.float64]

SIGMA = float(1.0 / ndtri(0.75))
"""σ of the difference: Φ(1/σ) = 0.75, so 1 unit = 1 JND (1.482602…)."""

_SQRT2 = float(np.sqrt(2.0))
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


def mills_ratio(z: Array) -> Array:
    """φ(z)/Φ(z) = √(2/π) / erfcx(−z/√2): finite in both tails (→ −z below, → 0 above)."""
    return np.asarray(_SQRT_2_OVER_PI / erfcx(-z / _SQRT2), dtype=np.float64)
