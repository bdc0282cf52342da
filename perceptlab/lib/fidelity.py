"""Full-reference fidelity measures with one home, used by the metrics and the model cards."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def psnr(reference: Floats, distorted: Floats, *, data_range: float = 1.0) -> Floats:
    """PSNR = 10·log10(data_range² / MSE) per image, MSE over every sample (all channels).

    ``reference``, ``distorted``: (N, H, W, C) float in [0, data_range]. Returns (N,) float64
    in dB, ``inf`` where the images are identical.
    Reference: Q. Huynh-Thu, M. Ghanbari, "Scope of validity of PSNR in image/video quality
    assessment", Electronics Letters 44(13), 2008, doi:10.1049/el:20080522.
    """
    mse = np.mean((reference - distorted) ** 2, axis=tuple(range(1, reference.ndim)))
    with np.errstate(divide="ignore"):
        return np.asarray(10.0 * np.log10(data_range**2 / mse), dtype=np.float64)
