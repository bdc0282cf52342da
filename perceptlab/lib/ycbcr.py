"""BT.709 full-range YCbCr and planar 4:2:0 (I420) frames for codecs that code YCbCr only.

vvenc codes 4:2:0 (and 4:0:0) only, so RGB must become YCbCr 4:2:0 before it can be
encoded. This module is that conversion, and its inverse, done once and in the open:

1. RGB uint8 → float in [0, 1] (:func:`to_unit_float`, the one uint8 → float conversion).
2. ITU-R BT.709-6 Item 3.2 luma and colour-difference equations, full range
   (Kr = 0.2126, Kb = 0.0722, Kg = 1 - Kr - Kb)::

       Y  = Kr R + Kg G + Kb B
       Cb = 0.5 (B - Y) / (1 - Kb) + 0.5
       Cr = 0.5 (R - Y) / (1 - Kr) + 0.5

   so Y, Cb and Cr all lie in [0, 1] (Cb and Cr offset by 0.5). These are the equations of
   CompressAI's ``rgb2ycbcr``.
3. Chroma 4:2:0 by averaging each 2x2 block (the chroma sample sits at the block's centre),
   then ``round(v * 1023)`` into 10-bit codes, written planar Y, Cb, Cr as little-endian
   uint16 (``<u2``), which is vvencapp's ``-c yuv420_10`` input and vvdecapp's output for a
   10-bit stream.
4. Back: chroma upsampled 2x bicubically (Pillow, float images; Pillow's resize maps pixel
   centres, which matches the centre-sited averaging), the inverse equations, and RGB
   rounded and clipped to uint8.

Width and height must be even; :func:`pad_to_even` replicates the last row/column so the
caller can crop after decoding. The conversion alone limits PSNR-RGB on Kodak to about
41-51 dB (tests/lib/test_ycbcr.py).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

KR = 0.2126
"""BT.709 red luma coefficient."""
KB = 0.0722
"""BT.709 blue luma coefficient."""
KG = 1.0 - KR - KB
"""BT.709 green luma coefficient (0.7152)."""

_MAX_10BIT = 1023
_MAX_8BIT = 255


def to_unit_float(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → float64 in [0, 1]."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    return rgb.astype(np.float64) / 255.0


def rgb_to_ycbcr709(rgb: np.ndarray) -> np.ndarray:
    """RGB → full-range YCbCr by ITU-R BT.709 (Kr = 0.2126, Kb = 0.0722).

    ``rgb``: (H, W, 3) uint8. Returns (H, W, 3) float64 Y, Cb, Cr in [0, 1], Cb and Cr
    offset by 0.5 (white → (1, 0.5, 0.5); red → (0.2126, 0.3854, 1.0)).
    """
    x = to_unit_float(rgb)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    cb = 0.5 * (b - y) / (1.0 - KB) + 0.5
    cr = 0.5 * (r - y) / (1.0 - KR) + 0.5
    return np.stack([y, cb, cr], axis=-1)


def ycbcr709_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Full-range BT.709 YCbCr → RGB, the exact inverse of :func:`rgb_to_ycbcr709`.

    ``ycbcr``: (H, W, 3) float, Y, Cb, Cr nominally in [0, 1]. Returns (H, W, 3) uint8,
    rounded to the nearest code and clipped to [0, 255].
    """
    y = ycbcr[..., 0].astype(np.float64)
    cb = ycbcr[..., 1].astype(np.float64) - 0.5
    cr = ycbcr[..., 2].astype(np.float64) - 0.5
    r = y + 2.0 * (1.0 - KR) * cr
    b = y + 2.0 * (1.0 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """Replicate the last row and/or column so both sides of ``rgb`` are even.

    Returns ``rgb`` itself when no padding is needed; crop with ``[:H, :W]`` after decoding.
    """
    height, width = rgb.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    if pad[0][1] == 0 and pad[1][1] == 0:
        return rgb
    return np.pad(rgb, pad, mode="edge")


def to_i420_10bit(rgb: np.ndarray) -> bytes:
    """RGB uint8 → planar BT.709 full-range YCbCr 4:2:0, 10-bit, little-endian uint16.

    ``rgb``: (H, W, 3) uint8 with H and W even (see :func:`pad_to_even`). Returns
    ``H*W*3/2`` samples of 2 bytes: the Y plane (H x W), then Cb and Cr (H/2 x W/2 each,
    the mean of each 2x2 block), each sample ``round(v * 1023)``.
    """
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(
            f"4:2:0 needs an even width and height, got {width}x{height}; pad with pad_to_even()"
        )
    ycbcr = rgb_to_ycbcr709(rgb)
    blocks = ycbcr[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    planes = [ycbcr[..., 0], blocks[..., 0], blocks[..., 1]]
    return b"".join(_quantize(plane, _MAX_10BIT).astype("<u2").tobytes() for plane in planes)


def from_i420(data: bytes, width: int, height: int) -> np.ndarray:
    """Planar YCbCr 4:2:0 (8-bit, or 10-bit in little-endian uint16) → RGB uint8.

    The sample size is read from the length: ``W*H*3/2`` bytes means 8-bit samples,
    twice that means 10-bit samples (vvdecapp writes a stream's own bit depth and has no
    option to change it). Chroma is upsampled 2x bicubically, then the inverse BT.709
    full-range transform applies. Returns (height, width, 3) uint8.
    """
    if height <= 0 or width <= 0 or height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs a positive, even width and height, got {width}x{height}")
    samples = width * height * 3 // 2
    if len(data) == samples:
        codes, max_code = np.frombuffer(data, dtype=np.uint8), _MAX_8BIT
    elif len(data) == 2 * samples:
        codes, max_code = np.frombuffer(data, dtype="<u2"), _MAX_10BIT
    else:
        raise ValueError(
            f"{len(data)} bytes is not a {width}x{height} 4:2:0 frame: expected {samples} "
            f"(8-bit) or {2 * samples} (10-bit)"
        )
    values = codes.astype(np.float64) / max_code
    luma = values[: width * height].reshape(height, width)
    chroma = values[width * height :].reshape(2, height // 2, width // 2)
    cb, cr = (_upsample2x(plane, width, height) for plane in chroma)
    return ycbcr709_to_rgb(np.stack([luma, cb, cr], axis=-1))


def _quantize(plane: np.ndarray, max_code: int) -> np.ndarray:
    return np.rint(np.clip(plane, 0.0, 1.0) * max_code)


def _upsample2x(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a float chroma plane to (height, width)."""
    image = Image.fromarray(plane.astype(np.float32))  # float32 → Pillow mode "F"
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float64)
