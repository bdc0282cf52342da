from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import kodak_path

from perceptlab.lib.ycbcr import (
    from_i420,
    pad_to_even,
    rgb_to_ycbcr709,
    to_i420_10bit,
    ycbcr709_to_rgb,
)

# PSNR-RGB of RGB → 10-bit 4:2:0 → RGB alone (no coding), measured with this module on the
# four images (research note: 41.2-51.3 dB, mean 47.0 over all 24; kodim24 is the worst).
# The floors sit about 1 dB under the measurements so an upsampler change is caught.
MEASURED_DB = {"kodim01": 48.45, "kodim05": 45.10, "kodim15": 46.17, "kodim23": 46.03}
FLOOR_DB = 44.0
MEAN_FLOOR_DB = 45.5


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def round_trip(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    return from_i420(to_i420_10bit(rgb), width, height)


def load_kodak(name: str) -> np.ndarray:
    with Image.open(kodak_path(name)) as image:
        return np.asarray(image.convert("RGB"))


def test_it_keeps_kodak_images_above_the_measured_4_2_0_psnr() -> None:
    images = {name: load_kodak(name) for name in MEASURED_DB}
    scores = {name: psnr_rgb(rgb, round_trip(rgb)) for name, rgb in images.items()}
    for name, score in scores.items():
        assert score >= FLOOR_DB, f"{name}: {score:.2f} dB"
        assert score == pytest.approx(MEASURED_DB[name], abs=1.0), name
    assert np.mean(list(scores.values())) >= MEAN_FLOOR_DB


def test_it_round_trips_a_flat_grey_image_within_one_code_value() -> None:
    grey = np.full((16, 24, 3), 128, dtype=np.uint8)
    back = round_trip(grey)
    assert back.shape == grey.shape
    assert np.abs(back.astype(int) - grey).max() <= 1


def test_it_inverts_the_4_4_4_transform_within_one_code_value() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    back = ycbcr709_to_rgb(rgb_to_ycbcr709(rgb))
    assert np.abs(back.astype(int) - rgb).max() <= 1


def test_it_maps_white_to_full_luma_and_neutral_chroma() -> None:
    white = np.full((1, 1, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_ycbcr709(white)[0, 0], [1.0, 0.5, 0.5], atol=1e-12)


def test_it_maps_pure_red_by_the_bt709_equations() -> None:
    # BT.709 with R = 1, G = B = 0: Y = Kr = 0.2126,
    # Cb = 0.5 (0 - Y) / (1 - Kb) + 0.5 = 0.3854, Cr = 0.5 (1 - Kr) / (1 - Kr) + 0.5 = 1.0
    red = np.array([[[255, 0, 0]]], dtype=np.uint8)
    y, cb, cr = rgb_to_ycbcr709(red)[0, 0]
    assert y == pytest.approx(0.2126)
    assert cb == pytest.approx(0.5 - 0.5 * 0.2126 / 0.9278)
    assert cr == pytest.approx(1.0)


def test_it_writes_ten_bit_codes_planar_in_little_endian() -> None:
    white = np.full((2, 4, 3), 255, dtype=np.uint8)
    samples = np.frombuffer(to_i420_10bit(white), dtype="<u2")
    assert samples.tolist() == [1023] * 8 + [512] * 2 + [512] * 2


def test_it_averages_each_2x2_block_for_chroma() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)  # one red pixel in four: Cr = (1.0 + 3 * 0.5) / 4
    samples = np.frombuffer(to_i420_10bit(rgb), dtype="<u2")
    assert samples[-1] == round(0.625 * 1023)


@pytest.mark.parametrize("shape", [(3, 4, 3), (4, 5, 3), (7, 9, 3)])
def test_it_rejects_odd_sizes_for_4_2_0(shape: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="even width and height"):
        to_i420_10bit(np.zeros(shape, dtype=np.uint8))


def test_it_pads_odd_sizes_by_replicating_the_edge() -> None:
    rgb = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = pad_to_even(rgb)
    assert padded.shape == (4, 6, 3)
    np.testing.assert_array_equal(padded[:3, :5], rgb)
    np.testing.assert_array_equal(padded[3, :5], rgb[2])
    np.testing.assert_array_equal(padded[:3, 5], rgb[:, 4])


def test_it_leaves_even_sizes_unpadded() -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    assert pad_to_even(rgb) is rgb


def test_it_rejects_a_frame_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="not a 4x2 4:2:0 frame"):
        from_i420(b"\x00" * 13, 4, 2)


def test_it_reads_eight_bit_frames_by_their_length() -> None:
    # 4x2 frame: 8 luma samples, then 2 Cb and 2 Cr, one byte each.
    frame = bytes([255] * 8 + [128] * 2 + [128] * 2)
    rgb = from_i420(frame, 4, 2)
    assert rgb.shape == (2, 4, 3)
    assert np.abs(rgb.astype(int) - 255).max() <= 1


def test_it_reads_eight_and_ten_bit_versions_of_one_frame_alike() -> None:
    rgb = load_kodak("kodim05")[:64, :96]
    ten = np.frombuffer(to_i420_10bit(rgb), dtype="<u2")
    eight = np.rint(ten.astype(np.float64) * 255 / 1023).astype(np.uint8).tobytes()
    from_eight, from_ten = from_i420(eight, 96, 64), from_i420(ten.tobytes(), 96, 64)
    assert psnr_rgb(from_eight, from_ten) > 40.0
