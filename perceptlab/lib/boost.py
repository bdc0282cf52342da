"""The boosts of a boosted triplet comparison (BTC, JPEG AIC-3), as pure functions on pixels.

In a BTC trial the pivot (the reference) is shown between two distorted images, and the
distorted images are "boosted" so that near-threshold differences become easier to judge
(Men, Lin, Jenadeleh and Saupe, "Subjective image quality assessment with boosted triplet
comparisons", IEEE Access 9, 2021, arXiv 2108.00201; Testolina et al., "Fine-grained subjective
visual quality assessment for high-fidelity compressed images", DCC 2025, arXiv 2410.09501):

1. artefact amplification, :func:`amplify`: ``v' = v + α (v̂ − v)`` per pixel and channel,
   v the reference and v̂ the distorted sample, α = 2, clamped to the 8-bit range;
2. zoom, :func:`zoom` and :func:`half_size_box`: the centred half-size part of the crop is
   upscaled ×2 with a 3-lobe Lanczos filter (AIC-3; Men et al. used bicubic), so the shown
   image has the size of the crop it stands for;
3. flicker: each image alternates with the pivot at 10 Hz. That runs in the browser, not here.

:func:`boosted_pair` applies 1 and 2 to one (reference, distorted) pair and zooms the pivot the
same way, so the two images a rater sees share one geometry. Everything here is computed once
per stimulus and stored like any other stimulus. Images are (H, W, 3) uint8 RGB throughout;
a box is ``(x, y, width, height)`` in pixels, as ``StudyImage.crop_box()`` returns it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]
"""(x, y, width, height) in pixels, x and y of the top-left corner."""

AIC3_ALPHA = 2.0
"""The amplification factor α of AIC-3 BTC (and of Men et al. 2021)."""
AIC3_ZOOM = 2
"""The zoom factor of AIC-3 BTC: a half-size crop shown at twice its size."""

_MAX_8BIT = 255


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays field by field is ambiguous
class Amplified:
    """The result of :func:`amplify`.

    ``pixels`` is (H, W, 3) uint8. A sample is *clipped* when its rounded value
    ``v + α (v̂ − v)`` lay outside 0..255 and the clamp changed it; ``clipped_pixels``
    counts pixels with at least one clipped channel.
    """

    pixels: Pixels
    clipped_samples: int
    clipped_pixels: int

    @property
    def clipped_share(self) -> float:
        """Clipped samples over all samples (H·W·3).

        For AIC-3 stimuli at α = 2 about 0.5 % of pixels clip (second-hand, via the research
        note on Men et al. 2021); :attr:`clipped_pixel_share` is the figure to compare.
        """
        return self.clipped_samples / self.pixels.size

    @property
    def clipped_pixel_share(self) -> float:
        """Pixels with any clipped channel over all pixels (H·W)."""
        return self.clipped_pixels / (self.pixels.shape[0] * self.pixels.shape[1])


def amplify(reference: Pixels, distorted: Pixels, alpha: float = AIC3_ALPHA) -> Amplified:
    """Artefact amplification ``v' = v + α (v̂ − v)``, rounded and clamped to 0..255.

    ``reference`` (v) and ``distorted`` (v̂) are (H, W, 3) uint8 of the same shape; ``alpha``
    is finite and ≥ 0. α = 1 returns ``distorted`` and α = 0 ``reference``, sample for sample;
    α > 1 exaggerates the distortion (Men et al. 2021, arXiv 2108.00201; AIC-3 BTC uses
    α = 2, Testolina et al. 2025, arXiv 2410.09501).

    Arithmetic: v̂ − v is formed in integers, then ``v + α (v̂ − v)`` in float64. That is exact
    for every α that is a multiple of 1/1024 below 1000 (2, 1.5, 2.25, 3 …), because the
    result's numerator stays below 2**29; so ties are real ties. Rounding is to the nearest
    integer, **ties away from zero**: at α = 2 there are no ties at all, and on the values that
    survive the clamp this is MATLAB's ``round``, C's ``round()`` and JavaScript's
    ``Math.round``, so a re-implementation in those gives the same codes. NumPy's default
    (ties to even) would send 10.5 down and 11.5 up, a pattern that depends on the parity of
    the pixel value rather than on the distortion. At both ends of the range a value at least
    half a code outside (≤ −0.5 or ≥ 255.5) is clamped and counted as clipped.

    Raises ``ValueError`` naming the bad input: a shape or dtype other than (H, W, 3) uint8,
    two different shapes, or an α that is negative or not finite.
    """
    _check_pair(reference, distorted)
    alpha = _check_alpha(alpha)
    difference = distorted.astype(np.int16) - reference.astype(np.int16)
    boosted = _round_half_away_from_zero(reference.astype(np.float64) + alpha * difference)
    clipped = (boosted < 0) | (boosted > _MAX_8BIT)
    return Amplified(
        pixels=np.clip(boosted, 0, _MAX_8BIT).astype(np.uint8),
        clipped_samples=int(np.count_nonzero(clipped)),
        clipped_pixels=int(np.count_nonzero(clipped.any(axis=-1))),
    )


def zoom(image: Pixels, box: Box, factor: int = AIC3_ZOOM) -> Pixels:
    """Crop ``box`` = (x, y, width, height) from ``image`` and upscale it ``factor`` times.

    The filter is Pillow's ``Image.Resampling.LANCZOS`` (3-lobe Lanczos, the AIC-3 zoom;
    Testolina et al. 2025, arXiv 2410.09501), applied to the crop alone: the result depends
    only on the pixels inside ``box``, and Pillow renormalises the kernel at the crop's edges.
    Ringing that overshoots 0..255 is clamped by Pillow. A constant crop stays constant
    (checked for every grey level at factors 2 and 3).

    ``image`` is (H, W, 3) uint8, ``box`` must lie inside it with width and height ≥ 1, and
    ``factor`` is an integer ≥ 1. Returns (height·factor, width·factor, 3) uint8, a new array.
    Raises ``ValueError`` naming the bad input.
    """
    _check_pixels(image, what="image")
    x, y, width, height = _check_box_in(box, image)
    if not _is_integer(factor) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1 (AIC-3 zooms ×2); got {factor!r}")
    crop = Image.fromarray(np.ascontiguousarray(image[y : y + height, x : x + width]))
    size = (width * int(factor), height * int(factor))
    zoomed = crop.resize(size, Image.Resampling.LANCZOS)
    return np.array(zoomed, dtype=np.uint8)


def half_size_box(crop_box: Box) -> Box:
    """The box of half the width and height of ``crop_box``, centred inside it.

    Half sizes round down (``width // 2``), so the zoomed ×2 image is never larger than the
    crop: ``2 · (width // 2)`` equals the crop width when it is even and is one pixel less when
    it is odd. The margin left over is split with the odd pixel on the right (bottom): for a
    crop (x, y, w, h) the box is ``(x + (w − w // 2) // 2, y + (h − h // 2) // 2, w // 2, h // 2)``.
    A 800×620 crop at (0, 0) gives (200, 155, 400, 310); a 7×5 crop gives (2, 1, 3, 2).

    ``crop_box`` needs x, y ≥ 0 and width, height ≥ 2. Raises ``ValueError`` otherwise.
    """
    x, y, width, height = _check_box(crop_box, what="crop_box")
    if width < 2 or height < 2:
        raise ValueError(
            f"crop_box {crop_box!r} is {width}x{height}; halving needs width and height >= 2"
        )
    half_width, half_height = width // 2, height // 2
    return (
        x + (width - half_width) // 2,
        y + (height - half_height) // 2,
        half_width,
        half_height,
    )


def boosted_pair(
    reference: Pixels, distorted: Pixels, crop_box: Box, alpha: float = AIC3_ALPHA
) -> tuple[Pixels, Pixels]:
    """``(pivot_shown, distorted_shown)``: the pivot and one boosted image of a BTC triplet.

    Both are the centred half-size part of ``crop_box`` (:func:`half_size_box`) zoomed ×2 with
    Lanczos (:func:`zoom`); the distorted side is first amplified against the reference with
    ``alpha`` (:func:`amplify`). So both have the same shape, (2·(h // 2), 2·(w // 2), 3), and
    the same geometry, and a ``distorted`` equal to ``reference`` gives two identical images,
    as a bias triplet needs. Amplification is per pixel, so amplifying only the half-size part
    gives the same pixels as amplifying the whole image; call :func:`amplify` on that part for
    the clipped share of what is shown. Call it once per side of the triplet: the pivot comes
    out the same both times. The 10 Hz flicker against the pivot runs in the browser.
    (Men et al. 2021, arXiv 2108.00201; Testolina et al. 2025, arXiv 2410.09501.)

    ``reference`` and ``distorted`` are (H, W, 3) uint8 of one shape, ``crop_box`` lies inside
    them. Raises ``ValueError`` naming the bad input.
    """
    _check_pair(reference, distorted)
    _check_box_in(crop_box, reference, what="crop_box")
    x, y, width, height = half_size_box(crop_box)
    rows, columns = slice(y, y + height), slice(x, x + width)
    pivot = reference[rows, columns]
    boosted = amplify(pivot, distorted[rows, columns], alpha).pixels
    whole = (0, 0, width, height)
    return zoom(pivot, whole, AIC3_ZOOM), zoom(boosted, whole, AIC3_ZOOM)


# --- checks -----------------------------------------------------------------------------------


def _check_pixels(pixels: Pixels, *, what: str) -> None:
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"{what} must be an (H, W, 3) uint8 array, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"{what} must be (H, W, 3) uint8 RGB, got shape {pixels.shape} dtype {pixels.dtype}"
        )


def _check_pair(reference: Pixels, distorted: Pixels) -> None:
    _check_pixels(reference, what="reference")
    _check_pixels(distorted, what="distorted")
    if reference.shape != distorted.shape:
        raise ValueError(
            f"reference and distorted differ in shape: {reference.shape} vs {distorted.shape}"
        )


def _check_alpha(alpha: float) -> float:
    real = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
    if not real or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0 (AIC-3 uses 2); got {alpha!r}")
    return float(alpha)


def _check_box(box: Box, *, what: str) -> Box:
    """Four integers (x, y, width, height) with x, y >= 0 and width, height >= 1."""
    if not isinstance(box, tuple | list) or len(box) != 4 or not all(map(_is_integer, box)):
        raise ValueError(f"{what} must be four integers (x, y, width, height); got {box!r}")
    x, y, width, height = (int(v) for v in box)
    if x < 0 or y < 0 or width < 1 or height < 1:
        raise ValueError(f"{what} {box!r} needs x, y >= 0 and width, height >= 1")
    return x, y, width, height


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_box_in(box: Box, image: Pixels, *, what: str = "box") -> Box:
    x, y, width, height = _check_box(box, what=what)
    image_height, image_width = image.shape[:2]
    if x + width > image_width or y + height > image_height:
        raise ValueError(
            f"{what} {box!r} does not fit in the {image_width}x{image_height} image: "
            f"it reaches x = {x + width}, y = {y + height}"
        )
    return x, y, width, height


def _round_half_away_from_zero(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # x − trunc(x) is exact in float64, so ties are found exactly (floor(x + 0.5) is not:
    # 0.49999999999999994 + 0.5 rounds up to 1.0).
    whole = np.trunc(values)
    return whole + np.where(np.abs(values - whole) >= 0.5, np.sign(values), 0.0)
