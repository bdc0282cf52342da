from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from support import kodak_path

from perceptlab.evaluation.iwssim import MIN_SIDE, iw_ssim
from perceptlab.evaluation.metrics import METRICS, MetricSession, MetricValue

GOLDEN = Path(__file__).parent / "golden" / "iwssim.json"
REGENERATE = (
    "regenerate with tests/evaluation/golden/make_iwssim_golden.py (its docstring says how)"
)


@functools.cache
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def case_id(case: dict[str, Any]) -> str:
    top, left, height, width = case["box"]
    return f"{case['image']}-{width}x{height}+{left}+{top}-q{case['jpeg_quality']}"


@functools.cache
def kodak(name: str) -> np.ndarray:
    with Image.open(kodak_path(name)) as image:
        return np.asarray(image.convert("RGB"))


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def golden_pair(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The case's (reference, distorted) crop, made as make_iwssim_golden.py made it."""
    top, left, height, width = case["box"]
    reference = np.ascontiguousarray(kodak(case["image"])[top : top + height, left : left + width])
    distorted = jpeg(reference, case["jpeg_quality"])
    if hashlib.sha256(distorted.tobytes()).hexdigest() != case["distorted_sha256"]:
        pytest.fail(
            f"{case_id(case)}: Pillow's JPEG codec now decodes to other pixels than the ones "
            f"the golden numbers were computed on; {REGENERATE}"
        )
    return reference, distorted


def grey(pixels: np.ndarray, conversion: str) -> np.ndarray:
    """(1, H, W) grey levels in [0, 255], as the golden file's ``greys`` describe."""
    rgb = pixels.astype(np.float64)
    if conversion == "bt601":
        return (rgb @ [0.299, 0.587, 0.114])[None]
    return np.round(rgb @ [0.2989, 0.5870, 0.1140])[None]


def crop(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels[128:384, 192:576])


def luma(pixels: np.ndarray) -> np.ndarray:
    """(1, H, W) BT.601 luma in [0, 1], the metric's input."""
    return (pixels / 255.0 @ [0.299, 0.587, 0.114])[None]


def one(reference: np.ndarray, distorted: np.ndarray) -> float:
    return float(iw_ssim(luma(reference), luma(distorted), data_range=1.0)[0])


# --- against the reference implementation -----------------------------------------------------


@pytest.mark.parametrize("case", golden()["cases"], ids=case_id)
def test_it_matches_the_reference_port_of_iwssim_m_on_kodak_crops(case: dict[str, Any]) -> None:
    reference, distorted = golden_pair(case)
    atol = golden()["tolerance"]["atol"]
    for conversion in ("bt601", "rgb2gray"):
        ours = iw_ssim(grey(reference, conversion), grey(distorted, conversion), data_range=255)
        assert ours[0] == pytest.approx(case[f"reference_{conversion}"], abs=atol), conversion


def test_the_golden_file_documents_its_reference_and_tolerance() -> None:
    data = golden()
    assert data["reference"]["repository"] == "https://github.com/Jack-guo-xy/Python-IW-SSIM"
    assert data["reference"]["commit"] == "f9de37cdb4c459fd188c611e377a87a54516d3cd"
    assert data["tolerance"]["atol"] <= 1e-9
    assert len(data["cases"]) >= 5
    assert {case["image"] for case in data["cases"]} == {"kodim01", "kodim05", "kodim23"}


def test_the_iw_ssim_metric_is_iw_ssim_of_unrounded_bt601_luma(tmp_path: Path) -> None:
    cases = [case for case in golden()["cases"] if case["image"] == "kodim01"]
    pairs = [golden_pair(case) for case in cases]
    rows = MetricSession(["iw_ssim"], weights_dir=tmp_path).compute(pairs)
    for case, row in zip(cases, rows, strict=True):
        assert row["iw_ssim"].value == pytest.approx(case["reference_bt601"], abs=1e-12)


# --- properties -------------------------------------------------------------------------------


def test_identical_images_score_one(kodim01: np.ndarray) -> None:
    image = crop(kodim01)
    assert one(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


def test_it_falls_as_jpeg_quality_falls_on_a_kodak_crop(kodim23: np.ndarray) -> None:
    reference = crop(kodim23)
    scores = [one(reference, jpeg(reference, q)) for q in (95, 80, 60, 40, 20, 10, 5)]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert 0.99 < scores[0] < 1 and 0.8 < scores[-1] < 0.95


def test_transposing_both_images_leaves_it_unchanged(kodim01: np.ndarray) -> None:
    reference = crop(kodim01)
    distorted = jpeg(reference, 20)
    turned = [np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (reference, distorted)]
    assert one(*turned) == pytest.approx(one(reference, distorted), abs=1e-12)


def test_it_is_not_symmetric_because_the_weights_come_from_the_reference(
    kodim01: np.ndarray,
) -> None:
    reference = crop(kodim01)
    distorted = jpeg(reference, 10)
    forward, backward = one(reference, distorted), one(distorted, reference)
    assert abs(forward - backward) > 1e-5  # 0.945881 against 0.945826: beyond rounding
    assert 0.9 < min(forward, backward) and max(forward, backward) < 1


def test_a_batch_scores_each_pair_as_it_would_alone(kodim01: np.ndarray) -> None:
    reference = crop(kodim01)
    distorted = [jpeg(reference, q) for q in (80, 30)]
    together = iw_ssim(
        np.concatenate([luma(reference)] * 2),
        np.concatenate([luma(d) for d in distorted]),
        data_range=1.0,
    )
    assert together.tolist() == [one(reference, d) for d in distorted]


def test_data_range_only_rescales_the_input(kodim01: np.ndarray) -> None:
    reference, distorted = crop(kodim01), jpeg(crop(kodim01), 30)
    in_grey_levels = iw_ssim(luma(reference) * 255, luma(distorted) * 255, data_range=255.0)
    assert in_grey_levels[0] == pytest.approx(one(reference, distorted), abs=1e-12)


def test_a_flat_reference_is_pooled_with_equal_weights_instead_of_nan() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((1, 192, 192), 0.5)
    noisy = np.clip(flat + rng.normal(0, 0.05, flat.shape), 0, 1)
    assert iw_ssim(flat, flat.copy(), data_range=1.0)[0] == 1.0
    value = iw_ssim(flat, noisy, data_range=1.0)[0]
    assert np.isfinite(value) and 0 < value < 1


def test_an_inverted_image_scores_zero_rather_than_a_complex_number(kodim01: np.ndarray) -> None:
    reference = crop(kodim01)
    assert one(reference, 255 - reference) == 0.0


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "distorted", "data_range", "message"),
    [
        (np.zeros((1, 176, 200)), np.zeros((1, 176, 201)), 1.0, r"\(1, 176, 200\) and .* differ"),
        (np.zeros((1, 175, 300)), np.zeros((1, 175, 300)), 1.0, "300×175 px is smaller than the "
         "176×176 px IW-SSIM needs"),
        (np.zeros((176, 176)), np.zeros((176, 176)), 1.0, r"reference is float64 \(176, 176\), "
         r"expected \(N, H, W\) float"),
        (np.zeros((1, 176, 176), np.uint8), np.zeros((1, 176, 176)), 255, "reference is uint8"),
        (np.zeros((1, 176, 176)), np.full((1, 176, 176), 255.0), 1.0,
         r"distorted has values in \[255, 255\], outside \[0, data_range=1\]"),
        (np.zeros((1, 176, 176)), np.full((1, 176, 176), np.nan), 1.0, "distorted has NaN"),
        (np.zeros((1, 176, 176)), np.zeros((1, 176, 176)), 0.0, "data_range must be a positive"),
    ],
    ids=["sizes", "too-small", "no-batch-axis", "uint8", "range", "nan", "data-range"],
)  # fmt: skip
def test_it_rejects_unusable_inputs_naming_the_problem(
    reference: np.ndarray, distorted: np.ndarray, data_range: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        iw_ssim(reference, distorted, data_range=data_range)


def test_the_metric_reports_a_crop_below_176_px_as_unavailable(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    small = np.ascontiguousarray(kodim01[:175, :300])
    [row] = MetricSession(["iw_ssim"], weights_dir=tmp_path).compute([(small, small)])
    assert row["iw_ssim"] == MetricValue(
        None,
        "300×175 px is smaller than the 176×176 px IW-SSIM (BT.601 luma) needs "
        "(11-px window at the 5th scale: 11·2⁴, the check of the authors' iwssim.m)",
    )
    assert MIN_SIDE == METRICS["iw_ssim"].min_side == 176


def test_the_metric_is_registered_weight_free_higher_is_better_and_cited() -> None:
    spec = METRICS["iw_ssim"]
    assert spec.higher_is_better and not spec.needs_torch and not spec.needs_weights
    assert "doi:10.1109/TIP.2010.2092435" in spec.citation
    assert spec.version().startswith("perceptlab ")
