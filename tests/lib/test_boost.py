from __future__ import annotations

import io
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pytest
from PIL import Image
from support import kodak_path

from perceptlab.lib.boost import amplify, boosted_pair, half_size_box, zoom

SEEDS = [0, 1, 2, 3, 4]


def random_image(seed: int, height: int = 37, width: int = 53) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def nudged(image: np.ndarray, seed: int, spread: int = 12) -> np.ndarray:
    """``image`` plus small random differences, like a near-threshold distortion."""
    noise = np.random.default_rng(seed + 100).integers(-spread, spread + 1, size=image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def direct_amplification(
    reference: np.ndarray, distorted: np.ndarray, alpha: float
) -> tuple[np.ndarray, int]:
    """The formula sample by sample in Python floats (float64), rounded by ``decimal``
    (ROUND_HALF_UP is ties away from zero; ``Decimal(float)`` is exact): (pixels, clipped)."""
    rounded = np.array(
        [
            int(Decimal(v + alpha * (w - v)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            for v, w in zip(reference.ravel().tolist(), distorted.ravel().tolist(), strict=True)
        ]
    ).reshape(reference.shape)
    clipped = int(np.count_nonzero((rounded < 0) | (rounded > 255)))
    return np.clip(rounded, 0, 255).astype(np.uint8), clipped


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def kodim23_crop() -> np.ndarray:
    with Image.open(kodak_path("kodim23")) as image:
        return np.asarray(image.convert("RGB"))[100:356, 200:520].copy()  # 256 x 320


# --- amplify ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("alpha", [2.0, 1.5, 2.5, 3.0, 0.5, 0.25])
def test_it_amplifies_random_images_as_the_float64_formula_does(seed: int, alpha: float) -> None:
    reference = random_image(seed)
    distorted = nudged(reference, seed, spread=40)
    result = amplify(reference, distorted, alpha)
    expected, clipped = direct_amplification(reference, distorted, alpha)
    assert result.pixels.dtype == np.uint8
    assert result.pixels.shape == reference.shape
    np.testing.assert_array_equal(result.pixels, expected)
    assert result.clipped_samples == clipped


@pytest.mark.parametrize("seed", SEEDS)
def test_it_amplifies_unrelated_random_images_with_heavy_clipping(seed: int) -> None:
    reference, distorted = random_image(seed), random_image(seed + 50)
    result = amplify(reference, distorted, 2.0)
    expected = np.clip(2 * distorted.astype(int) - reference.astype(int), 0, 255)
    np.testing.assert_array_equal(result.pixels, expected)
    assert 0.3 < result.clipped_share < 0.7  # 2v̂ − v leaves 0..255 for half the uniform pairs


def test_it_amplifies_a_kodak_crop_as_integer_arithmetic_does(kodim23_crop: np.ndarray) -> None:
    distorted = jpeg(kodim23_crop, quality=30)
    result = amplify(kodim23_crop, distorted)  # α = 2: v + 2(v̂ − v) = 2v̂ − v, no rounding
    unclamped = 2 * distorted.astype(int) - kodim23_crop.astype(int)
    np.testing.assert_array_equal(result.pixels, np.clip(unclamped, 0, 255))
    outside = (unclamped < 0) | (unclamped > 255)
    assert result.clipped_samples == np.count_nonzero(outside) > 0
    assert result.clipped_pixels == np.count_nonzero(outside.any(axis=-1))
    assert result.clipped_share == result.clipped_samples / kodim23_crop.size


def test_it_clips_little_of_a_kodak_crop_at_high_quality(kodim23_crop: np.ndarray) -> None:
    # The research note quotes ~0.5 % of pixels clipping at α = 2 on high-fidelity stimuli;
    # this crop at JPEG quality 90 measured 0.65 % of pixels (0.22 % of samples).
    result = amplify(kodim23_crop, jpeg(kodim23_crop, quality=90))
    assert 0.001 < result.clipped_pixel_share < 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_zero_gives_the_reference_and_alpha_one_the_distorted_image(seed: int) -> None:
    reference, distorted = random_image(seed), random_image(seed + 50)
    at_zero, at_one = amplify(reference, distorted, 0.0), amplify(reference, distorted, 1.0)
    np.testing.assert_array_equal(at_zero.pixels, reference)
    np.testing.assert_array_equal(at_one.pixels, distorted)
    assert at_zero.clipped_samples == at_one.clipped_samples == 0


def test_it_counts_clipped_samples_and_pixels_of_a_made_up_case() -> None:
    reference = np.full((2, 3, 3), 100, dtype=np.uint8)
    distorted = np.full((2, 3, 3), 101, dtype=np.uint8)  # 100 + 2·1 = 102: never clipped
    reference[0, 0], distorted[0, 0] = (250, 5, 253), (254, 1, 254)  # 258 → 255, −3 → 0, 255
    reference[1, 2, 1], distorted[1, 2, 1] = 200, 230  # 260 → 255
    result = amplify(reference, distorted, 2.0)
    assert result.clipped_samples == 3
    assert result.clipped_pixels == 2
    assert result.clipped_share == pytest.approx(3 / 18)
    assert result.clipped_pixel_share == pytest.approx(2 / 6)
    assert result.pixels[0, 0].tolist() == [255, 0, 255]
    assert result.pixels[1, 2].tolist() == [102, 255, 102]


@pytest.mark.parametrize(
    ("reference", "distorted", "alpha", "expected"),
    [
        (10, 11, 0.5, 11),  # 10.5: ties to even would give 10
        (11, 12, 0.5, 12),  # 11.5
        (12, 11, 0.5, 12),  # 11.5, the difference negative
        (11, 10, 0.5, 11),  # 10.5
        (0, 1, 1.5, 2),  # 1.5
        (2, 1, 1.5, 1),  # 0.5
        (10, 13, 2.5, 18),  # 17.5
        (10, 11, 0.25, 10),  # 10.25: not a tie, rounds down
        (10, 13, 0.25, 11),  # 10.75
    ],
)
def test_it_rounds_halves_away_from_zero(
    reference: int, distorted: int, alpha: float, expected: int
) -> None:
    result = amplify(pixel(reference), pixel(distorted), alpha)
    assert result.pixels.tolist() == [[[expected] * 3]]
    assert result.clipped_samples == 0


def test_half_a_code_outside_the_range_counts_as_clipped_at_both_ends() -> None:
    below = amplify(pixel(1), pixel(0), 1.5)  # −0.5 → −1 → 0
    above = amplify(pixel(251), pixel(254), 1.5)  # 255.5 → 256 → 255
    just_inside = amplify(pixel(252), pixel(254), 1.25)  # 254.5 → 255
    assert below.pixels.tolist() == [[[0] * 3]] and below.clipped_samples == 3
    assert above.pixels.tolist() == [[[255] * 3]] and above.clipped_samples == 3
    assert just_inside.pixels.tolist() == [[[255] * 3]] and just_inside.clipped_samples == 0


def pixel(value: int) -> np.ndarray:
    return np.full((1, 1, 3), value, dtype=np.uint8)


# --- zoom and half_size_box -------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_zoom_scales_the_box_by_the_factor(factor: int) -> None:
    zoomed = zoom(random_image(0), (5, 7, 20, 11), factor)
    assert zoomed.shape == (11 * factor, 20 * factor, 3)
    assert zoomed.dtype == np.uint8


def test_zoom_keeps_a_constant_image_constant() -> None:
    for colour in [(v, v, v) for v in range(256)] + [(17, 200, 93)]:
        flat = np.empty((40, 60, 3), dtype=np.uint8)
        flat[...] = colour
        zoomed = zoom(flat, (3, 4, 31, 27))
        assert (zoomed == np.array(colour, dtype=np.uint8)).all(), colour


@pytest.mark.parametrize("box", [(200, 155, 200, 101), (0, 0, 768, 512), (767, 511, 1, 1)])
def test_zoom_equals_pillows_own_lanczos_resize_of_the_crop(box: tuple[int, ...]) -> None:
    with Image.open(kodak_path("kodim23")) as image:
        source = image.convert("RGB")
    x, y, width, height = box
    crop = source.crop((x, y, x + width, y + height))  # Pillow's (left, upper, right, lower)
    expected = np.asarray(crop.resize((2 * width, 2 * height), Image.Resampling.LANCZOS))
    zoomed = zoom(np.asarray(source), (x, y, width, height), 2)
    np.testing.assert_array_equal(zoomed, expected)


def test_zoom_is_lanczos_not_bicubic(kodim23_crop: np.ndarray) -> None:
    height, width = kodim23_crop.shape[:2]
    bicubic = Image.fromarray(kodim23_crop).resize(
        (2 * width, 2 * height), Image.Resampling.BICUBIC
    )
    zoomed = zoom(kodim23_crop, (0, 0, width, height))
    assert not np.array_equal(zoomed, np.asarray(bicubic))


@pytest.mark.parametrize(
    ("crop_box", "expected"),
    [
        ((0, 0, 800, 620), (200, 155, 400, 310)),  # the AIC-3 SDR crop
        ((0, 0, 840, 944), (210, 236, 420, 472)),  # the AIC-3 HDR crop
        ((10, 20, 7, 5), (12, 21, 3, 2)),  # odd: the odd pixel of the margin on the right
        ((10, 20, 6, 4), (11, 21, 3, 2)),
        ((0, 0, 2, 3), (0, 1, 1, 1)),
    ],
)
def test_half_size_box_centres_half_the_crop(
    crop_box: tuple[int, int, int, int], expected: tuple[int, int, int, int]
) -> None:
    assert half_size_box(crop_box) == expected


@pytest.mark.parametrize("width", range(2, 30))
def test_half_size_box_stays_inside_the_crop_and_centred_within_half_a_pixel(width: int) -> None:
    x, y, half_width, half_height = half_size_box((3, 5, width, width + 1))
    assert half_width == width // 2 and half_height == (width + 1) // 2
    assert 3 <= x and x + half_width <= 3 + width
    assert 5 <= y and y + half_height <= 5 + width + 1
    assert abs((x + half_width / 2) - (3 + width / 2)) <= 0.5
    assert abs((y + half_height / 2) - (5 + (width + 1) / 2)) <= 0.5


# --- boosted_pair -----------------------------------------------------------------------------


def test_boosted_pair_shows_the_same_pixels_twice_when_nothing_is_distorted() -> None:
    with Image.open(kodak_path("kodim23")) as image:
        source = np.asarray(image.convert("RGB"))
    pivot, distorted = boosted_pair(source, source.copy(), (100, 50, 400, 310))
    assert pivot.shape == distorted.shape == (310, 400, 3)
    np.testing.assert_array_equal(pivot, distorted)


def test_boosted_pair_zooms_the_pivot_and_the_amplified_image_alike() -> None:
    with Image.open(kodak_path("kodim23")) as image:
        source = np.asarray(image.convert("RGB"))
    compressed = jpeg(source, quality=50)
    crop_box = (101, 50, 401, 311)  # odd sizes: shown 400 x 310
    pivot, shown = boosted_pair(source, compressed, crop_box, alpha=2.0)
    half = half_size_box(crop_box)
    assert pivot.shape == shown.shape == (310, 400, 3)
    np.testing.assert_array_equal(pivot, zoom(source, half))
    np.testing.assert_array_equal(shown, zoom(amplify(source, compressed).pixels, half))
    # the boost makes the distortion bigger than the plain zoomed distortion
    plain = zoom(compressed, half).astype(int)
    assert np.abs(shown.astype(int) - pivot).mean() > 1.5 * np.abs(plain - pivot).mean()


# --- bad inputs -------------------------------------------------------------------------------

GOOD = random_image(0, 8, 8)


@pytest.mark.parametrize(
    ("reference", "distorted", "alpha", "message"),
    [
        (GOOD.astype(np.float32), GOOD, 2.0, r"reference must be \(H, W, 3\) uint8.*float32"),
        (GOOD, GOOD[..., 0], 2.0, r"distorted must be \(H, W, 3\) uint8.*\(8, 8\)"),
        (GOOD, np.dstack([GOOD, GOOD[..., :1]]), 2.0, r"distorted .*\(8, 8, 4\)"),
        (GOOD, GOOD[:4], 2.0, r"differ in shape: \(8, 8, 3\) vs \(4, 8, 3\)"),
        (GOOD.tolist(), GOOD, 2.0, "reference must be an .* array, got list"),
        (GOOD, GOOD, -0.5, "alpha must be a finite number >= 0.*-0.5"),
        (GOOD, GOOD, float("nan"), "alpha must be a finite number >= 0.*nan"),
        (GOOD, GOOD, float("inf"), "alpha must be a finite number >= 0.*inf"),
        (GOOD, GOOD, "2", "alpha must be a finite number >= 0.*'2'"),
        (GOOD, GOOD, True, "alpha must be a finite number >= 0.*True"),
    ],
)
def test_amplify_rejects_bad_inputs_by_name(
    reference: Any, distorted: Any, alpha: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        amplify(reference, distorted, alpha)


@pytest.mark.parametrize(
    ("box", "factor", "message"),
    [
        ((4, 4, 5, 2), 2, r"does not fit in the 8x8 image: it reaches x = 9"),
        ((0, 7, 2, 2), 2, r"does not fit in the 8x8 image: .*y = 9"),
        ((-1, 0, 2, 2), 2, r"box \(-1, 0, 2, 2\) needs x, y >= 0"),
        ((0, 0, 0, 2), 2, r"width, height >= 1"),
        ((0, 0, 2.5, 2), 2, r"box must be four integers"),
        ((0, 0, 2), 2, r"box must be four integers"),
        ((0, 0, True, 2), 2, r"box must be four integers"),
        ("0022", 2, r"box must be four integers"),
        ((0, 0, 2, 2), 0, r"factor must be an integer >= 1.*0"),
        ((0, 0, 2, 2), 1.5, r"factor must be an integer >= 1.*1.5"),
    ],
)
def test_zoom_rejects_bad_boxes_and_factors_by_name(box: Any, factor: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zoom(GOOD, box, factor)


def test_zoom_accepts_numpy_integers_in_the_box() -> None:
    box = tuple(np.int64(v) for v in (1, 2, 3, 4))
    assert zoom(GOOD, box).shape == (8, 6, 3)  # type: ignore[arg-type]  # typed int, numpy ok


@pytest.mark.parametrize(
    ("crop_box", "message"),
    [
        ((0, 0, 1, 8), r"is 1x8; halving needs width and height >= 2"),
        ((0, 0, 8, 1), r"is 8x1"),
        ((0, -2, 8, 8), r"crop_box \(0, -2, 8, 8\) needs x, y >= 0"),
        ((0, 0, 8), r"crop_box must be four integers"),
    ],
)
def test_half_size_box_rejects_boxes_it_cannot_halve(crop_box: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        half_size_box(crop_box)


@pytest.mark.parametrize(
    ("distorted", "crop_box", "message"),
    [
        (GOOD, (4, 0, 8, 8), r"crop_box \(4, 0, 8, 8\) does not fit in the 8x8 image"),
        (GOOD, (0, 0, 1, 8), r"halving needs width and height >= 2"),
        (GOOD[:6], (0, 0, 4, 4), r"differ in shape: \(8, 8, 3\) vs \(6, 8, 3\)"),
        (GOOD.astype(np.int32), (0, 0, 4, 4), r"distorted must be \(H, W, 3\) uint8"),
    ],
)
def test_boosted_pair_rejects_bad_inputs_by_name(
    distorted: Any, crop_box: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        boosted_pair(GOOD, distorted, crop_box)
