"""evaluation/ssim.py against piq 0.8, its reference: exact in float64, float32 to rounding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.needs_torch


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _tensors(reference: np.ndarray, distorted: np.ndarray, dtype: str) -> tuple:
    import torch

    return tuple(
        torch.from_numpy(image.astype(dtype) / 255).permute(2, 0, 1)[None].contiguous()
        for image in (distorted, reference)
    )


# Sizes: square, odd sides (MS-SSIM pads before pooling), wider than tall, SSIM's pre-pooling
# (f = 2 from a 384-px short side; even sides: SSIM is the pyramid's second scale), the
# 11-px minimum, MS-SSIM's 161-px minimum.
CASES = [
    *[
        ("ssim", "ssim", box)
        for box in [(0, 0, 64, 64), (3, 5, 71, 53), (0, 0, 11, 30), (40, 60, 385, 511)]
    ],
    *[
        ("ms_ssim", "multi_scale_ssim", box)
        for box in [(0, 0, 161, 161), (7, 9, 163, 201), (100, 20, 256, 384), (0, 0, 384, 400)]
    ],
]


@pytest.mark.parametrize(("ours_name", "piq_name", "box"), CASES)
def test_equal_to_piq_exactly_in_float64_and_to_rounding_in_float32(
    kodim01: np.ndarray, ours_name: str, piq_name: str, box: tuple[int, int, int, int]
) -> None:
    import piq

    from perceptlab.evaluation import ssim

    ours_of, theirs_of = getattr(ssim, ours_name), getattr(piq, piq_name)
    y, x, height, width = box
    reference = np.ascontiguousarray(kodim01[y : y + height, x : x + width])
    distorted = _jpeg(reference, 15)
    exact_x, exact_y = _tensors(reference, distorted, "float64")
    expected = float(theirs_of(exact_x, exact_y, data_range=1.0))
    assert ours_of(exact_x, exact_y) == pytest.approx(expected, abs=1e-12)
    # float32 (what the platform stores): within float32 rounding of the exact value, no
    # further from it than piq's own float32 result (measured: ours ≤ 1.8e-6, piq ≤ 7.0e-6)
    x32, y32 = _tensors(reference, distorted, "float32")
    ours = ours_of(x32, y32)
    assert abs(ours - expected) <= max(
        3e-6, abs(float(theirs_of(x32, y32, data_range=1.0)) - expected)
    )
    assert 0.3 < expected < 1
    # with a pyramid shared by both metrics, the same values as each computed alone
    if min(height, width) >= ssim.MS_MIN_SIDE:
        pyramid = ssim.Pyramid(x32, y32)
        assert ssim.ssim(x32, y32, pyramid) == ssim.ssim(x32, y32)
        assert ssim.ms_ssim(x32, y32, pyramid) == ssim.ms_ssim(x32, y32)


def test_the_window_is_piqs_two_dimensional_gaussian_factored() -> None:
    import piq
    import torch

    from perceptlab.evaluation import ssim

    window = ssim.gaussian_window(torch.float64)
    full = piq.functional.gaussian_filter(11, 1.5, dtype=torch.float64)[0]
    assert torch.allclose(torch.outer(window, window), full, atol=1e-15, rtol=0)
    assert float(window.sum()) == pytest.approx(1.0, abs=1e-15)


def test_identical_images_score_one_and_too_small_ones_are_refused() -> None:
    import torch

    from perceptlab.evaluation import ssim

    x = torch.rand(1, 3, 170, 180, generator=torch.Generator().manual_seed(1))
    assert ssim.ssim(x, x.clone()) == pytest.approx(1.0, abs=1e-6)
    assert ssim.ms_ssim(x, x.clone()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="161"):
        ssim.ms_ssim(x[..., :160, :], x[..., :160, :])
    with pytest.raises(ValueError, match="11-px window"):
        ssim.scale(x[..., :10, :], x[..., :10, :])
