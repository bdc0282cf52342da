from __future__ import annotations

import dataclasses
import io
import json
import math
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import flip_evaluator
import numpy as np
import pytest
import support
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from ssimulacra2 import compute_ssimulacra2

from perceptlab.evaluation.metrics import (
    METRICS,
    MetricInputError,
    MetricSession,
    MetricValue,
)
from perceptlab.lib import weights

WEIGHT_FREE = ["psnr", "psnr_y", "ssim", "ms_ssim", "haarpsi", "ssimulacra2", "flip", "iw_ssim"]
PROGRAMS = ["butteraugli", "butteraugli_3norm"]  # butteraugli_main (libjxl-devtools)
NUMPY_ONLY = ["psnr", "psnr_y", "ssimulacra2", "flip"]


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def crop(pixels: np.ndarray) -> np.ndarray:
    """A 256x384 crop: big enough for MS-SSIM, small enough to keep the tests fast."""
    return np.ascontiguousarray(pixels[128:384, 192:576])


def values(session: MetricSession, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    return [{k: v.value for k, v in row.items()} for row in session.compute(pairs)]


def block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or call a downloader fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args[:2]}")

    import torch.hub
    import torchvision.models._api

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def jpeg_pairs(kodim01: np.ndarray, kodim23: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(crop(image), jpeg(crop(image), 30)) for image in (kodim01, kodim23)]


def test_importing_the_metrics_module_does_not_import_torch() -> None:
    code = "import sys, perceptlab.evaluation.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_psnr_matches_skimage_and_the_textbook_formula_on_kodak_crops(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    ours = values(MetricSession(["psnr"], weights_dir=tmp_path), jpeg_pairs)
    for (reference, distorted), row in zip(jpeg_pairs, ours, strict=True):
        skimage_db = peak_signal_noise_ratio(reference, distorted, data_range=255)
        assert row["psnr"] == pytest.approx(skimage_db, abs=1e-9)
        assert row["psnr"] == pytest.approx(support.psnr(reference, distorted), abs=1e-9)
        assert 25 < row["psnr"] < 40


def test_psnr_y_is_the_psnr_of_bt601_luma(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    ours = values(MetricSession(["psnr_y"], weights_dir=tmp_path), jpeg_pairs)
    for (reference, distorted), row in zip(jpeg_pairs, ours, strict=True):
        luma = [img.astype(np.float64) @ [0.299, 0.587, 0.114] for img in (reference, distorted)]
        mse = np.mean((luma[0] - luma[1]) ** 2)
        assert row["psnr_y"] == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-9)


def test_identical_images_get_infinite_psnr_which_json_writes_as_infinity(
    kodim23: np.ndarray, tmp_path: Path
) -> None:
    image = crop(kodim23)
    [row] = MetricSession(NUMPY_ONLY, weights_dir=tmp_path).compute([(image, image.copy())])
    assert row["psnr"].value == math.inf and row["psnr_y"].value == math.inf
    assert row["ssimulacra2"].value == 100.0
    assert row["flip"].value == 0.0
    text = json.dumps(row["psnr"].to_json(), allow_nan=False)
    assert json.loads(text) == {"value": "Infinity", "unavailable": None}
    assert float(json.loads(text)["value"]) == math.inf


def test_ssimulacra2_and_flip_equal_their_packages_reading_the_png_files(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    session = MetricSession(["ssimulacra2", "flip"], weights_dir=tmp_path)
    for index, ((reference, distorted), row) in enumerate(
        zip(jpeg_pairs, values(session, jpeg_pairs), strict=True)
    ):
        paths = [tmp_path / f"{index}-{role}.png" for role in ("ref", "dist")]
        for path, pixels in zip(paths, (reference, distorted), strict=True):
            Image.fromarray(pixels).save(path)
        assert row["ssimulacra2"] == compute_ssimulacra2(str(paths[0]), str(paths[1]))
        _, mean_error, _ = flip_evaluator.evaluate(
            str(paths[0]), str(paths[1]), "LDR", applyMagma=False
        )
        assert row["flip"] == pytest.approx(mean_error, abs=1e-6)
        assert 0 < row["flip"] < 0.2 and 20 < row["ssimulacra2"] < 90


def test_images_below_a_metrics_minimum_size_are_reported_with_the_reason(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    small = np.ascontiguousarray(kodim01[:7, :150])
    [row] = MetricSession(["psnr", "ssimulacra2"], weights_dir=tmp_path).compute([(small, small)])
    assert row["psnr"].value == math.inf
    assert row["ssimulacra2"] == MetricValue(
        None,
        "150×7 px is smaller than the 8×8 px SSIMULACRA 2 needs "
        "(below 8 px the package scores no scale and returns 100)",
    )


def test_a_session_rejects_unknown_metrics_and_unusable_pairs(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(MetricInputError, match=r"unknown metric\(s\) 'vmaf'; known: psnr, "):
        MetricSession(["psnr", "vmaf"], weights_dir=tmp_path)
    session = MetricSession(["psnr"], weights_dir=tmp_path)
    with pytest.raises(MetricInputError, match=r"pair 1: reference \(512, 768, 3\) and"):
        session.compute([(kodim01, kodim01), (kodim01, kodim01[:, :-1])])
    with pytest.raises(MetricInputError, match="pair 0: distorted is float64"):
        session.compute([(kodim01, kodim01 / 255.0)])  # type: ignore[list-item]


def test_every_registered_metric_is_fully_described() -> None:
    listed = [*WEIGHT_FREE[:5], "dists", "lpips", *WEIGHT_FREE[5:], *PROGRAMS, "cvvdp"]
    assert list(METRICS) == listed
    for slug, spec in METRICS.items():
        assert spec.slug == slug and spec.name and spec.citation
        assert spec.version().startswith(f"{spec.package} ")
        if slug not in [*PROGRAMS, "cvvdp"]:  # a missing program or extra: their own tests
            assert "not installed" not in spec.version()
    assert METRICS["dists"].needs_weights == ("vgg16-397923af.pth", "dists_weights.pt")
    assert METRICS["lpips"].needs_weights == ("vgg16-397923af.pth", "lpips_weights.pt")
    assert all(not METRICS[slug].needs_weights for slug in WEIGHT_FREE)
    lower_is_better = {s for s, spec in METRICS.items() if not spec.higher_is_better}
    assert lower_is_better == {"dists", "lpips", "flip", *PROGRAMS}


# --- torch / piq ----------------------------------------------------------------------------


def piq_direct(name: str, reference: np.ndarray, distorted: np.ndarray, dtype: str) -> float:
    """piq called on one pair of 0..255 tensors with data_range=255, as piq's README does."""
    import piq
    import torch

    x, y = (
        torch.tensor(image).permute(2, 0, 1)[None].to(getattr(torch, dtype))
        for image in (distorted, reference)
    )
    return float(getattr(piq, name)(x, y, data_range=255))


@pytest.mark.needs_torch
def test_ssim_ms_ssim_and_haarpsi_equal_direct_piq_calls_on_uint8_tensors(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    session = MetricSession(["ssim", "ms_ssim", "haarpsi"], weights_dir=tmp_path)
    functions = {
        "ssim": ("ssim", "float32"),
        "ms_ssim": ("multi_scale_ssim", "float32"),
        "haarpsi": ("haarpsi", "float32"),
    }
    for (reference, distorted), row in zip(jpeg_pairs, values(session, jpeg_pairs), strict=True):
        for slug, (name, dtype) in functions.items():
            expected = piq_direct(name, reference, distorted, dtype)
            # SSIM and MS-SSIM are evaluation/ssim.py's (separable windows: float32 sums in
            # another order; tests/evaluation/test_ssim.py checks them exactly in float64)
            assert row[slug] == pytest.approx(expected, abs=1e-5 if "ssim" in slug else 1e-6)
            assert 0.5 < row[slug] < 1


@pytest.mark.needs_torch
def test_float32_haarpsi_lies_within_1e_5_of_float64(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    session = MetricSession(["haarpsi"], weights_dir=tmp_path)
    for (reference, distorted), row in zip(jpeg_pairs, values(session, jpeg_pairs), strict=True):
        exact = piq_direct("haarpsi", reference, distorted, "float64")
        assert row["haarpsi"] == pytest.approx(exact, abs=1e-5)  # measured: 3.2e-6


@pytest.mark.needs_torch
def test_psnr_y_agrees_with_piq_greyscale_psnr(
    jpeg_pairs: list[tuple[np.ndarray, np.ndarray]], tmp_path: Path
) -> None:
    import piq
    import torch

    ours = values(MetricSession(["psnr_y"], weights_dir=tmp_path), jpeg_pairs)
    for (reference, distorted), row in zip(jpeg_pairs, ours, strict=True):
        x, y = (torch.tensor(i).permute(2, 0, 1)[None].double() for i in (distorted, reference))
        piq_db = float(piq.psnr(x, y, data_range=255, convert_to_greyscale=True))
        # piq computes -10·log10(MSE + 1e-8) (MSE of [0, 1] values); ours has no 1e-8.
        mse = 10 ** (-row["psnr_y"] / 10)
        assert piq_db == pytest.approx(-10 * np.log10(mse + 1e-8), abs=1e-9)
        assert 0 < row["psnr_y"] - piq_db < 2e-4


@pytest.mark.needs_torch
def test_batched_scores_equal_one_by_one_scores(
    kodim01: np.ndarray, kodim23: np.ndarray, tmp_path: Path
) -> None:
    session = MetricSession(WEIGHT_FREE, weights_dir=tmp_path, max_batch=2)
    pairs = [(crop(kodim01), jpeg(crop(kodim01), q)) for q in (20, 50, 80)]
    pairs.insert(1, (kodim23[:200, :180].copy(), jpeg(kodim23[:200, :180], 40)))
    together = values(session, pairs)
    alone = [values(session, [pair])[0] for pair in pairs]
    for batched, single in zip(together, alone, strict=True):
        assert batched.keys() == single.keys() == set(WEIGHT_FREE)
        for slug in WEIGHT_FREE:
            assert batched[slug] == pytest.approx(single[slug], abs=1e-6), slug


@pytest.mark.needs_torch
def test_identical_images_score_perfectly_on_every_weight_free_metric(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    image = crop(kodim01)
    [row] = values(MetricSession(WEIGHT_FREE, weights_dir=tmp_path), [(image, image.copy())])
    assert row["psnr"] == row["psnr_y"] == math.inf
    for slug in ("ssim", "ms_ssim", "haarpsi"):
        assert row[slug] == pytest.approx(1.0, abs=1e-6), slug
    assert row["haarpsi"] == 1.0  # float32 rounding passed 1 (1.0000024): clamped
    assert row["ssimulacra2"] == 100.0 and row["flip"] == 0.0


@pytest.mark.needs_torch
def test_stronger_jpeg_compression_scores_worse_on_every_available_metric(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    session = MetricSession(list(METRICS), weights_dir=tmp_path)
    reference = crop(kodim01)
    rows = session.compute([(reference, jpeg(reference, q)) for q in (90, 30, 5)])
    available = [slug for slug in METRICS if rows[0][slug].value is not None]
    assert set(WEIGHT_FREE) <= set(available)
    for slug in available:
        sign = 1 if METRICS[slug].higher_is_better else -1
        better = [sign * v for row in rows if (v := row[slug].value) is not None]
        assert len(better) == 3 and better[0] > better[1] > better[2], (slug, better)


@pytest.mark.needs_torch
def test_ms_ssim_reports_a_crop_below_161_px_as_unavailable(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    small = np.ascontiguousarray(kodim01[:100, :150])
    [row] = MetricSession(["ssim", "ms_ssim"], weights_dir=tmp_path).compute([(small, small)])
    assert row["ssim"].value == pytest.approx(1.0)
    assert row["ms_ssim"].value is None
    assert row["ms_ssim"].unavailable == (
        "150×100 px is smaller than the 161×161 px MS-SSIM needs "
        "(11-px window at 5 scales: (11 - 1)·2⁴ + 1)"
    )


@pytest.mark.needs_torch
def test_without_weights_dists_and_lpips_are_unavailable_and_nothing_is_downloaded(
    kodim01: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block_network(monkeypatch)
    session = MetricSession(["dists", "lpips", "psnr"], weights_dir=tmp_path)
    image = crop(kodim01)
    [row] = session.compute([(image, jpeg(image, 30))])
    assert row["psnr"].value is not None
    for slug, own in (("dists", "dists_weights.pt"), ("lpips", "lpips_weights.pt")):
        assert row[slug].value is None
        assert (
            row[slug].unavailable
            == session.unavailable[slug]
            == (
                f"weights missing: vgg16-397923af.pth, {own}, put them in {tmp_path} "
                "(or run `manage.py fetch_weights`)"
            )
        )


@pytest.fixture
def fake_weights(tmp_path: Path) -> tuple[Path, dict[str, weights.WeightFile]]:
    """Tiny stand-ins with the shapes piq expects (each VGG tensor is one stored value,
    broadcast), registered in a test manifest under their own SHA-256."""
    import torch
    import torchvision

    folder = tmp_path / "weights"
    folder.mkdir()
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None).state_dict()
    torch.save(
        {k: torch.full((1,), 0.01).expand(v.shape) for k, v in vgg.items()},
        folder / "vgg16-397923af.pth",
    )
    # DISTS = 1 - Σ (α·structure + β·texture); α and β summing to 1 make DISTS(x, x) = 0.
    half = torch.full((1, 1475, 1, 1), 1 / 2950)
    torch.save({"alpha": half, "beta": half}, folder / "dists_weights.pt")
    lpips = [torch.full((1, c, 1, 1), 0.1) for c in (64, 128, 256, 512, 512)]
    torch.save(lpips, folder / "lpips_weights.pt")
    metric_files = ("vgg16-397923af.pth", "dists_weights.pt", "lpips_weights.pt")
    manifest = {
        name: dataclasses.replace(weights.MANIFEST[name], sha256=weights.sha256_of(folder / name))
        for name in metric_files
    }
    return folder, manifest


@pytest.mark.slow  # builds two full-size VGG16 networks
@pytest.mark.needs_torch
def test_dists_and_lpips_load_weights_from_the_weights_dir_only(
    kodim01: np.ndarray,
    fake_weights: tuple[Path, dict[str, weights.WeightFile]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.hub

    folder, manifest = fake_weights
    block_network(monkeypatch)
    blocked_loader = torch.hub.load_state_dict_from_url
    session = MetricSession(["dists", "lpips"], weights_dir=folder, manifest=manifest)
    assert session.unavailable == {}
    assert torch.hub.load_state_dict_from_url is blocked_loader  # swapped back after building
    assert session.weights_used["dists"] == {
        "vgg16-397923af.pth": manifest["vgg16-397923af.pth"].sha256,
        "dists_weights.pt": manifest["dists_weights.pt"].sha256,
    }
    image = np.ascontiguousarray(kodim01[:64, :96])
    same, distorted = values(session, [(image, image.copy()), (image, jpeg(image, 5))])
    assert same["dists"] == pytest.approx(0.0, abs=1e-5) and same["lpips"] == 0.0
    assert distorted["dists"] > 1e-3


@pytest.mark.needs_torch
def test_a_weight_file_with_the_wrong_hash_makes_the_metric_unavailable(
    fake_weights: tuple[Path, dict[str, weights.WeightFile]],
) -> None:
    folder, _ = fake_weights
    session = MetricSession(["dists"], weights_dir=folder)  # the real manifest
    got = weights.sha256_of(folder / "vgg16-397923af.pth")
    assert session.unavailable["dists"] == (
        f"weights corrupt: {folder / 'vgg16-397923af.pth'} has SHA-256 {got}, expected "
        f"{weights.MANIFEST['vgg16-397923af.pth'].sha256}; delete it and run "
        "`manage.py fetch_weights`"
    )
