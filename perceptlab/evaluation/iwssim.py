"""IW-SSIM: information content weighted multi-scale SSIM, in numpy and scipy.

Z. Wang, Q. Li, "Information content weighting for perceptual image quality assessment",
IEEE TIP 20(5), 1185-1198, 2011, doi:10.1109/TIP.2010.2092435. Where the paper leaves a
detail open (edge handling, crops, tolerances), this follows the authors' MATLAB code
``iwssim.m`` (https://ece.uwaterloo.ca/~z70wang/research/iwssim/: ``scale_quality_maps``,
``info_content_weight_map``, ``imenlarge2``), with the paper's parameters:

1. Both images, grey levels in [0, 255], are split into a 5-level Laplacian pyramid (P. J. Burt,
   E. H. Adelson, IEEE Trans. Commun. 31(4), 1983) as matlabPyrTools' ``buildLpyr(im, 5)``
   builds it: separable filter f = √2·[1 4 6 4 1]/16 ("binom5"), edges reflected about the
   edge sample, keep the even samples; each band is the level minus its coarser level expanded
   back (zeros between the samples, filtered with f, same edges). Bands 1-4 are band-pass, band 5
   the low-pass residual. Nothing rescales the bands, so band 5 is 16× the grey levels.
2. Per band s, contrast-structure maps over an 11×11 Gaussian window (σ 1.5), "valid" part
   only, as in SSIM (Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, IEEE TIP 13(4), 2004):
   cs = (2σxy + C2) / (σx² + σy² + C2); band 5 is multiplied by the luminance term
   l = (2μxμy + C1) / (μx² + μy² + C1); C1 = (0.01·255)², C2 = (0.03·255)².
3. Information content weights for bands 1-4 under a Gaussian scale mixture model of the
   reference band (M. J. Wainwright, E. P. Simoncelli, NIPS 1999): U = 3×3
   neighbourhood of reference coefficients, plus the parent coefficient (band s+1 enlarged
   ×2 by ``imenlarge2``) for bands 1-3; C_U = E[U Uᵀ] with eigenvalues λ_k (negative ones set
   to 0, the rest rescaled to keep the trace); multiplier s² = Uᵀ C_U⁻¹ U / K (K = 9 or 10);
   distortion channel D = g·R + V fitted in 3×3 windows (g = σ_rd / σ_r², σ_v² = σ_d² - g·σ_rd);
   visual noise σ_n² = 0.4 (H. R. Sheikh, A. C. Bovik, IEEE TIP 15(2), 2006). The weight is
   w = Σ_k log2(1 + ((σ_v² + (1 + g²)·σ_n²)·s²·λ_k + σ_n²·σ_v²) / σ_n⁴),
   the paper's I(R;E) + I(D;F) - I(E;F) in bits as the reference code computes it (up to a
   constant factor, which cancels in the weighted mean).
4. Per band, the weighted mean of cs (weights cropped to the "valid" map), band 5 the plain mean
   of cs·l; IW-SSIM = Π_s mean_s^β_s with the MS-SSIM exponents β = (0.0448, 0.2856, 0.3001,
   0.2363, 0.1333) normalised to sum 1 (Z. Wang, E. P. Simoncelli, A. C. Bovik, Asilomar 2003).

Two cases the reference code leaves undefined get a value here: a band where the reference has
no information (a flat crop: every weight 0, so 0/0) is pooled with equal weights, as MS-SSIM
pools; and a negative pooled similarity (anti-correlated bands, which makes the product
complex in MATLAB; the Python ports take its absolute value) counts as 0, the worst score.
Neither happens on the golden cases (tests/evaluation/golden/iwssim.json).

The images must be at least ``MIN_SIDE`` = 11·2⁴ = 176 px on each side, the check in
``iwssim.m``. IW-SSIM is not symmetric: the weights come from the reference.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

Floats = npt.NDArray[np.float64]

SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""MS-SSIM exponents β_1..β_5, finest first (Wang, Simoncelli, Bovik, Asilomar 2003)."""
SCALES = len(SCALE_WEIGHTS)
K1, K2 = 0.01, 0.03
"""SSIM stability constants (Wang et al., IEEE TIP 2004), for grey levels in [0, 255]."""
WINDOW, WINDOW_SIGMA = 11, 1.5
NEIGHBOURHOOD = 3
"""Side of the GSM neighbourhood and of the window that fits the distortion channel."""
SIGMA_NSQ = 0.4
"""Visual noise variance σ_n², grey levels² (Sheikh & Bovik, IEEE TIP 2006)."""
MIN_SIDE = WINDOW * 2 ** (SCALES - 1)
"""176 px: the smallest side ``iwssim.m`` accepts."""
GREY_LEVELS = 255.0
"""The model's constants (C1, C2, σ_n²) are for grey levels in [0, 255]."""

_TOL = 1e-15  # the reference code's threshold for "no variance" and "no information"
_BINOM5 = math.sqrt(2) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def iw_ssim(reference: Floats, distorted: Floats, *, data_range: float) -> Floats:
    """IW-SSIM of each (reference, distorted) pair of grey-level images; higher is better.

    ``reference``, ``distorted``: (N, H, W) float in [0, ``data_range``], H and W at least
    :data:`MIN_SIDE`. Values are scaled to [0, 255] first (the model's constants are in grey
    levels). Returns (N,) float64, 1.0 for identical images.
    """
    _check(reference, distorted, data_range)
    scale = GREY_LEVELS / data_range
    pairs = zip(reference, distorted, strict=True)
    return np.array([_iw_ssim_one(r * scale, d * scale) for r, d in pairs], dtype=np.float64)


def _check(reference: Floats, distorted: Floats, data_range: float) -> None:
    if not data_range > 0 or not math.isfinite(data_range):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    for role, images in (("reference", reference), ("distorted", distorted)):
        if images.ndim != 3 or not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                f"{role} is {images.dtype} {images.shape}, expected (N, H, W) float grey levels"
            )
        if not np.all(np.isfinite(images)):
            raise ValueError(f"{role} has NaN or infinite values")
        low, high = float(images.min(initial=math.inf)), float(images.max(initial=-math.inf))
        slack = 1e-9 * data_range  # luma of white can be data_range·(1 + 1 ulp)
        if low < -slack or high > data_range + slack:
            raise ValueError(
                f"{role} has values in [{low:g}, {high:g}], outside [0, data_range={data_range:g}]"
            )
    if reference.shape != distorted.shape:
        raise ValueError(f"reference {reference.shape} and distorted {distorted.shape} differ")
    height, width = reference.shape[1:]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"{width}×{height} px is smaller than the {MIN_SIDE}×{MIN_SIDE} px IW-SSIM needs "
            f"({WINDOW}-px window at {SCALES} scales: {WINDOW}·2^{SCALES - 1})"
        )


def _iw_ssim_one(reference: Floats, distorted: Floats) -> float:
    """IW-SSIM of one pair of (H, W) grey-level images in [0, 255]."""
    bands_r = laplacian_pyramid(reference, SCALES)
    bands_d = laplacian_pyramid(distorted, SCALES)
    crop = WINDOW // 2 - NEIGHBOURHOOD // 2  # weights (interior) → the "valid" SSIM map
    pooled = []
    for s, (band_r, band_d) in enumerate(zip(bands_r, bands_d, strict=True)):
        cs, luminance = _similarity_maps(band_r, band_d)
        if s == SCALES - 1:
            pooled.append(float(np.mean(cs * luminance)))
            continue
        parent = bands_r[s + 1] if s + 1 < SCALES - 1 else None  # the residual is no parent
        weights = information_weights(band_r, band_d, parent)[crop:-crop, crop:-crop]
        total = float(weights.sum())
        pooled.append(float((cs * weights).sum()) / total if total > 0 else float(np.mean(cs)))
    betas = np.asarray(SCALE_WEIGHTS) / sum(SCALE_WEIGHTS)
    return float(np.prod(np.maximum(pooled, 0.0) ** betas))


# --- the Laplacian pyramid (matlabPyrTools buildLpyr, 'binom5', 'reflect1') -----------------


def laplacian_pyramid(image: Floats, levels: int) -> list[Floats]:
    """Bands of ``image`` (H, W), finest first: ``levels - 1`` band-pass, then the low-pass.

    Burt & Adelson 1983, as ``buildLpyr(image, levels)`` of matlabPyrTools builds it: reduce =
    correlate with f = √2·binom(4)/16 along each axis, reflecting about the edge sample, and keep
    samples 0, 2, 4, ...; expand = put the samples back at even positions of the finer grid,
    zeros between, and correlate with f under the same edge rule (matlabPyrTools' ``upConv``
    with 'reflect1' equals this, which tests/evaluation/golden/make_iwssim_golden.py checks
    against pyrtools, its Python wrapper of the same C code).
    """
    bands = []
    current = image
    for _ in range(levels - 1):
        coarser = _reduce(current)
        bands.append(current - _expand(coarser, current.shape))
        current = coarser
    bands.append(current)
    return bands


def _reduce(image: Floats) -> Floats:
    out = ndimage.correlate1d(image, _BINOM5, axis=1, mode="mirror")[:, ::2]
    return ndimage.correlate1d(out, _BINOM5, axis=0, mode="mirror")[::2, :]


def _expand(image: Floats, shape: tuple[int, ...]) -> Floats:
    rows = np.zeros((shape[0], image.shape[1]))
    rows[::2] = image
    rows = ndimage.correlate1d(rows, _BINOM5, axis=0, mode="mirror")
    out = np.zeros((shape[0], shape[1]))
    out[:, ::2] = rows
    return ndimage.correlate1d(out, _BINOM5, axis=1, mode="mirror")


# --- SSIM terms per band ----------------------------------------------------------------------


def _gaussian_taps() -> Floats:
    """1-D factor of MATLAB's ``fspecial('gaussian', 11, 1.5)`` (separable, sums to 1)."""
    x = np.arange(WINDOW) - WINDOW // 2
    taps = np.exp(-(x**2) / (2 * WINDOW_SIGMA**2))
    return np.asarray(taps / taps.sum(), dtype=np.float64)


_GAUSSIAN = _gaussian_taps()


def _similarity_maps(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    """(cs, l) maps over the 11×11 Gaussian window, "valid" part (``filter2(w, ·, 'valid')``).

    cs = (2σxy + C2) / (σx² + σy² + C2), l = (2μxμy + C1) / (μx² + μy² + C1), with σx², σy²
    clipped at 0 (Wang et al. 2004 with α = β = γ = 1 and C3 = C2/2).
    """
    c1, c2 = (K1 * GREY_LEVELS) ** 2, (K2 * GREY_LEVELS) ** 2
    mu_x, mu_y, xx, yy, xy = _valid_filter(np.stack([x, y, x * x, y * y, x * y]), _GAUSSIAN)
    var_x = np.maximum(xx - mu_x**2, 0.0)
    var_y = np.maximum(yy - mu_y**2, 0.0)
    cs = (2 * (xy - mu_x * mu_y) + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return cs, luminance


def _valid_filter(maps: Floats, taps: Floats) -> Floats:
    """Separable correlation of each (H, W) map in ``maps`` with ``taps``, "valid" part."""
    k = len(taps) // 2
    out = ndimage.correlate1d(maps, taps, axis=-2, mode="constant")[..., k:-k, :]
    return np.asarray(ndimage.correlate1d(out, taps, axis=-1, mode="constant")[..., k:-k])


# --- information content weights ---------------------------------------------------------------


def information_weights(reference: Floats, distorted: Floats, parent: Floats | None) -> Floats:
    """Information content weight (bits) at each interior coefficient of one band.

    ``reference``, ``distorted``: (h, w) bands; ``parent``: the reference's next coarser
    band-pass band, or None. Returns (h - 2, w - 2): the module docstring's w, 0 where below
    1e-15 (``info_content_weight_map`` of ``iwssim.m``).
    """
    gain, noise = _distortion_channel(reference, distorted)
    neighbourhoods = _neighbourhoods(reference, parent)
    multiplier, eigenvalues = _gsm_multiplier(neighbourhoods)
    multiplier = multiplier.reshape(gain.shape)
    signal = (noise + (1 + gain**2) * SIGMA_NSQ) * multiplier
    weights = np.zeros_like(gain)
    for eigenvalue in eigenvalues:
        weights += np.log2(1 + (signal * eigenvalue + SIGMA_NSQ * noise) / SIGMA_NSQ**2)
    weights[weights < _TOL] = 0.0
    return weights


def _distortion_channel(reference: Floats, distorted: Floats) -> tuple[Floats, Floats]:
    """Gain g and noise variance σ_v² of D = g·R + V in each 3×3 window, interior only.

    g = σ_rd / σ_r², σ_v² = σ_d² - g·σ_rd; where σ_r² < 1e-15, g = 0 and σ_v² = σ_d²; where
    σ_d² < 1e-15, g = 0 and σ_v² = 0 (the gain-plus-noise distortion model of VIF, Sheikh &
    Bovik, IEEE TIP 15(2), 2006).
    """
    taps = np.full(NEIGHBOURHOOD, 1.0 / NEIGHBOURHOOD)
    stacked = np.stack([reference, distorted, reference**2, distorted**2, reference * distorted])
    mean_r, mean_d, rr, dd, rd = _valid_filter(stacked, taps)
    var_r = np.maximum(rr - mean_r**2, 0.0)
    var_d = np.maximum(dd - mean_d**2, 0.0)
    cov = rd - mean_r * mean_d
    gain = cov / (var_r + _TOL)
    noise = var_d - gain * cov
    flat_r, flat_d = var_r < _TOL, var_d < _TOL
    gain[flat_r] = 0.0
    noise[flat_r] = var_d[flat_r]
    gain[flat_d] = 0.0
    noise[flat_d] = 0.0
    return gain, noise


def _neighbourhoods(band: Floats, parent: Floats | None) -> Floats:
    """(n, K) vectors U: the 3×3 neighbourhood of each interior coefficient, then its parent."""
    h, w = band.shape
    half = NEIGHBOURHOOD // 2
    windows = sliding_window_view(band, (NEIGHBOURHOOD, NEIGHBOURHOOD))
    columns = [windows.reshape(-1, NEIGHBOURHOOD**2)]
    if parent is not None:
        enlarged = _enlarge2(parent)[:h, :w]
        columns.append(enlarged[half : h - half, half : w - half].reshape(-1, 1))
    return np.concatenate(columns, axis=1)


def _gsm_multiplier(neighbourhoods: Floats) -> tuple[Floats, Floats]:
    """(s², λ): s² = Uᵀ C_U⁻¹ U / K per row of ``neighbourhoods`` (n, K), and C_U's eigenvalues.

    C_U = E[U Uᵀ] over the band; negative eigenvalues are set to 0 and the others scaled to keep
    the trace (as ``iwssim.m``). C_U⁻¹ is applied in its eigenbasis, leaving out directions of
    eigenvalue 0 (no coefficient has a component there: a flat band gives s² = 0, where
    ``inv`` would give infinities).
    """
    count, size = neighbourhoods.shape
    covariance = neighbourhoods.T @ neighbourhoods / count
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    positive = eigenvalues * (eigenvalues > 0)
    kept = positive.sum()
    eigenvalues = positive * eigenvalues.sum() / (kept + (kept == 0))
    projected = neighbourhoods @ eigenvectors
    usable = eigenvalues > 0
    multiplier = (projected[:, usable] ** 2 / eigenvalues[usable]).sum(axis=1) / size
    return multiplier, eigenvalues


def _enlarge2(band: Floats) -> Floats:
    """``imenlarge2``: (M, N) → (2M, 2N) for the parent of a finer band.

    Bilinear resize to (4M - 3, 4N - 3) (MATLAB ``imresize``: x_in = (x_out + ½)·M/(4M - 3) - ½,
    clamped to the image), one row/column added on each side by linear extrapolation, then every
    other sample.
    """
    m, n = band.shape
    grown = _resize_linear(_resize_linear(band, 4 * m - 3, axis=0), 4 * n - 3, axis=1)
    padded = np.zeros((4 * m - 1, 4 * n - 1))
    padded[1:-1, 1:-1] = grown
    padded[0, :] = 2 * padded[1, :] - padded[2, :]
    padded[-1, :] = 2 * padded[-2, :] - padded[-3, :]
    padded[:, 0] = 2 * padded[:, 1] - padded[:, 2]
    padded[:, -1] = 2 * padded[:, -2] - padded[:, -3]
    return padded[::2, ::2]


def _resize_linear(image: Floats, size: int, *, axis: int) -> Floats:
    """Linear interpolation of ``image`` along ``axis`` to ``size`` samples (pixel centres)."""
    length = image.shape[axis]
    position = (np.arange(size) + 0.5) * length / size - 0.5
    position = np.clip(position, 0, length - 1)
    left = np.floor(position).astype(np.intp)
    right = np.minimum(left + 1, length - 1)
    fraction = position - left
    shape = [1, 1]
    shape[axis] = size
    fraction = fraction.reshape(shape)
    return np.asarray(
        np.take(image, left, axis=axis) * (1 - fraction)
        + np.take(image, right, axis=axis) * fraction
    )
