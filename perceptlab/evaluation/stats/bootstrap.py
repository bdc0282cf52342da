"""Bootstrap primitives shared by the MOS and pairwise statistics.

The resampling unit is the rater: a study samples raters, so intervals that resample single
ratings understate the uncertainty (ratings of one rater are correlated). Index matrices are drawn
exactly as ``scipy.stats.bootstrap`` draws them (``rng.integers(0, n, (B, n))``), so for the
same generator state both give the same resamples; the interval formulas follow Efron &
Tibshirani, *An Introduction to the Bootstrap* (1993), §13.3 (percentile) and §14.3 (BCa,
eq. 14.9–14.15), as scipy implements them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

DEFAULT_RESAMPLES = 10_000
DEFAULT_CONFIDENCE = 0.95


def rater_resamples(n_raters: int, n_resamples: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Indices of raters drawn with replacement, shape ``(n_resamples, n_raters)``."""
    if n_raters < 1 or n_resamples < 1:
        raise ValueError(f"need n_raters >= 1 and n_resamples >= 1, got {n_raters}, {n_resamples}")
    return rng.integers(0, n_raters, (n_resamples, n_raters))


def resample_counts(indices: NDArray[np.intp], n_raters: int) -> NDArray[np.float64]:
    """How often each rater occurs in each resample: shape ``(B, n_raters)``.

    Statistics that are sums over raters (MOS, win counts) are then one matrix product
    ``counts @ per_rater_sums`` instead of a loop over resamples.
    """
    b = indices.shape[0]
    offsets = (np.arange(b) * n_raters)[:, None]
    flat = np.bincount((indices + offsets).ravel(), minlength=b * n_raters)
    return flat.reshape(b, n_raters).astype(np.float64)


def percentile_interval(
    samples: NDArray[np.float64], confidence: float = DEFAULT_CONFIDENCE
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile interval over the last axis (resamples last), NaN-aware."""
    alpha = (1.0 - confidence) / 2.0
    low = np.nanpercentile(samples, 100 * alpha, axis=-1)
    high = np.nanpercentile(samples, 100 * (1 - alpha), axis=-1)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def bca_interval(
    samples: NDArray[np.float64],
    estimate: NDArray[np.float64],
    jackknife: NDArray[np.float64],
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bias-corrected and accelerated interval.

    ``samples``: bootstrap replicates, resamples on the last axis, shape ``(..., B)``.
    ``estimate``: the statistic on the full data, shape ``(...)``.
    ``jackknife``: leave-one-rater-out replicates, shape ``(..., n_raters)``.

    z0 = Φ⁻¹(share of replicates below the estimate, ties counted half),
    a = Σ(θ̄ − θ₍ᵢ₎)³ / (6 [Σ(θ̄ − θ₍ᵢ₎)²]^{3/2}), and the interval's ends are the replicates'
    percentiles at Φ(z0 + (z0 + z_α) / (1 − a (z0 + z_α))).
    """
    est = np.asarray(estimate, dtype=np.float64)[..., None]
    b = samples.shape[-1]
    share = (np.sum(samples < est, axis=-1) + np.sum(samples <= est, axis=-1)) / (2.0 * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = ndtri(share)
        centred = jackknife.mean(axis=-1, keepdims=True) - jackknife
        num = np.sum(centred**3, axis=-1)
        den = 6.0 * np.sum(centred**2, axis=-1) ** 1.5
        accel = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        alpha = (1.0 - confidence) / 2.0
        ends = []
        for z in (ndtri(alpha), ndtri(1.0 - alpha)):
            level = ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
            ends.append(level)
    low = _percentile_per_row(samples, ends[0])
    high = _percentile_per_row(samples, ends[1])
    return low, high


def _percentile_per_row(
    samples: NDArray[np.float64], levels: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``np.percentile`` with a different level for each leading index (NaN where undefined)."""
    flat = samples.reshape(-1, samples.shape[-1])
    lv = np.broadcast_to(np.asarray(levels, dtype=np.float64), samples.shape[:-1]).ravel()
    out = np.full(flat.shape[0], np.nan)
    for i, (row, level) in enumerate(zip(flat, lv, strict=True)):
        if np.isfinite(level):
            out[i] = np.percentile(row, 100.0 * level)
    return out.reshape(samples.shape[:-1])
