from __future__ import annotations

import io
import itertools
import json
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from perceptlab.evaluation import butteraugli
from perceptlab.evaluation.butteraugli import ButteraugliDistance, ButteraugliError
from perceptlab.evaluation.metrics import METRICS, MetricSession, MetricValue

SLUGS = ["butteraugli", "butteraugli_3norm"]

# What butteraugli_main of libjxl-devtools 0.7.0-10+deb12u1 (Debian 12) printed for the
# 384x256 crop of kodim01 below against its JPEG at quality 30, and for the crop against
# itself: stdout, then stderr (run_tool returns them in that order).
COLOR_HINT = (
    "./lib/extras/dec/color_hints.cc:54: No color_space/icc_pathname given, assuming sRGB\n"
)
RECORDED_Q30 = "4.0129222870\n3-norm: 2.130863\n" + 2 * COLOR_HINT
RECORDED_IDENTICAL = "0.0000000000\n3-norm: 0.000000\n" + 2 * COLOR_HINT

# Fake binaries: Python scripts butteraugli.find_binary() finds via settings.METRIC_BINARIES.
PRINTS = """\
import json, pathlib, shutil, sys
here = pathlib.Path(__file__).parent
runs = sorted(here.glob("run-*"))
keep = here / ("run-" + str(len(runs)))
keep.mkdir()
(keep / "args.json").write_text(json.dumps(sys.argv[1:]))
for name in sys.argv[1:3]:
    shutil.copyfile(name, keep / name)
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
"""
FAILS = "import sys\nsys.stderr.write('Failed to read image from dist.png\\n')\nsys.exit(1)\n"
SLEEPS = "import time\ntime.sleep(30)\n"

Install = Callable[[str], Path]


def prints(stdout: str, stderr: str = 2 * COLOR_HINT) -> str:
    return PRINTS.format(stdout=stdout, stderr=stderr)


@pytest.fixture
def install(tmp_path: Path, settings: Any) -> Install:
    """``install(script)`` writes a fake butteraugli_main and points $BUTTERAUGLI at it."""

    def _install(script: str) -> Path:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        fake = folder / "butteraugli_main"
        fake.write_text(f"#!{sys.executable}\n{script}")
        fake.chmod(0o755)
        settings.METRIC_BINARIES = {"butteraugli": str(fake)}
        return fake

    return _install


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder temporary directories are made in, to check that they are removed."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def crop(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels[128:384, 192:576])


def require_butteraugli() -> str:
    __tracebackhide__ = True  # report the skip at the test, not here
    binary = butteraugli.find_binary()
    if binary is None:
        pytest.skip(
            "butteraugli_main not found on PATH or $BUTTERAUGLI; install libjxl-devtools to run"
        )
    return binary


# --- the real program ---------------------------------------------------------------------------


@pytest.mark.needs_binary
def test_identical_images_are_at_distance_zero(kodim01: np.ndarray) -> None:
    binary = require_butteraugli()
    image = crop(kodim01)
    assert butteraugli.distance(image, image.copy(), binary=binary) == ButteraugliDistance(0, 0)


@pytest.mark.needs_binary
def test_more_jpeg_compression_is_further_away_on_a_kodak_crop(kodim01: np.ndarray) -> None:
    binary = require_butteraugli()
    reference = crop(kodim01)
    runs = [butteraugli.distance(reference, jpeg(reference, q), binary=binary) for q in (90, 30, 5)]
    for near, far in itertools.pairwise(runs):
        assert near.max_norm < far.max_norm and near.p_norm < far.p_norm
    # libjxl-devtools 0.7.0: q90 1.456 / 0.687, q30 4.013 / 2.131, q5 13.37 / 6.998
    assert 1 < runs[0].max_norm < 2 < runs[1].max_norm < 6 < runs[2].max_norm < 20
    assert all(run.p_norm < run.max_norm for run in runs)


@pytest.mark.needs_binary
def test_the_metrics_report_the_programs_two_distances_and_its_version(
    kodim01: np.ndarray, tmp_path: Path
) -> None:
    binary = require_butteraugli()
    reference = crop(kodim01)
    distorted = jpeg(reference, 30)
    [row] = MetricSession(SLUGS, weights_dir=tmp_path).compute([(reference, distorted)])
    expected = butteraugli.distance(reference, distorted, binary=binary)
    assert row["butteraugli"].value == expected.max_norm
    assert row["butteraugli_3norm"].value == expected.p_norm
    for slug in SLUGS:
        version = METRICS[slug].version()
        assert version.startswith("libjxl-devtools ") and "not installed" not in version


# --- the output and its parsing -------------------------------------------------------------------


def test_it_reads_the_recorded_output_of_libjxl_0_7() -> None:
    assert butteraugli.parse_output(RECORDED_Q30) == ButteraugliDistance(4.012922287, 2.130863)
    assert butteraugli.parse_output(RECORDED_IDENTICAL) == ButteraugliDistance(0.0, 0.0)
    assert butteraugli.parse_output("1e-05\n3-norm: 2.5e-06\n") == ButteraugliDistance(1e-5, 2.5e-6)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "printed 0 distance line\\(s\\) and 0 '3-norm:' line\\(s\\), expected one of each; "
             "its output: ''"),
        ("4.0129222870\n" + COLOR_HINT, "printed 1 distance line\\(s\\) and 0 '3-norm:'"),
        ("4.01\n3.99\n3-norm: 2.1\n", "printed 2 distance line\\(s\\) and 1 '3-norm:'"),
        ("4.01\n2-norm: 2.1\n", "printed 1 distance line\\(s\\) and 0 '3-norm:' line"),
        ("-nan\n3-norm: -nan\n", "printed 0 distance line"),
        ("4.01\n3-norm: -nan\n", "printed the distance '-nan', expected a number ≥ 0; its output: "
                                 "'4.01 \\| 3-norm: -nan'"),
        ("4.01\n3-norm: inf\n", "printed the distance 'inf'"),
        ("Usage: butteraugli_main <reference> <distorted>\n",
         "printed 0 .*; its output: 'Usage: butteraugli_main <reference> <distorted>'$"),
    ],
    ids=["empty", "no-3-norm", "two-distances", "other-norm", "nan", "nan-norm", "inf", "usage"],
)  # fmt: skip
def test_output_it_cannot_read_is_an_error_that_quotes_it(output: str, message: str) -> None:
    with pytest.raises(ButteraugliError, match=f"^butteraugli_main {message}"):
        butteraugli.parse_output(output)


def test_it_hands_the_tool_the_exact_pixels_as_png_files(
    install: Install, scratch: Path, kodim01: np.ndarray
) -> None:
    fake = install(prints("4.0129222870\n3-norm: 2.130863\n"))
    reference = crop(kodim01)
    distorted = jpeg(reference, 30)
    result = butteraugli.distance(reference, distorted, binary=str(fake))
    assert result == ButteraugliDistance(4.012922287, 2.130863)
    run = fake.parent / "run-0"
    assert json.loads((run / "args.json").read_text()) == ["ref.png", "dist.png", "--pnorm", "3"]
    for name, pixels in (("ref.png", reference), ("dist.png", distorted)):
        with Image.open(run / name) as written:
            assert written.mode == "RGB" and np.array_equal(np.asarray(written), pixels)
    assert list(scratch.iterdir()) == []


def test_both_metrics_read_one_run_per_pair(
    install: Install, tmp_path: Path, kodim01: np.ndarray
) -> None:
    fake = install(prints(RECORDED_Q30))
    image = crop(kodim01)
    pairs = [(image, jpeg(image, 30)), (image, jpeg(image, 60)), (image[:64], image[:64])]
    rows = MetricSession(SLUGS, weights_dir=tmp_path).compute(pairs)
    assert len(list(fake.parent.glob("run-*"))) == 3
    assert [(r["butteraugli"].value, r["butteraugli_3norm"].value) for r in rows] == 3 * [
        (4.012922287, 2.130863)
    ]


def test_a_failing_run_is_an_error_with_its_status_and_stderr_and_leaves_no_files(
    install: Install, scratch: Path, tmp_path: Path, kodim01: np.ndarray
) -> None:
    install(FAILS)
    image = crop(kodim01)
    session = MetricSession(SLUGS, weights_dir=tmp_path)
    with pytest.raises(
        ButteraugliError,
        match=r"^butteraugli: butteraugli_main exited with status 1: Failed to read image from",
    ):
        session.compute([(image, image)])
    assert list(scratch.iterdir()) == []


def test_malformed_output_from_the_tool_is_an_error_and_leaves_no_files(
    install: Install, scratch: Path, tmp_path: Path, kodim01: np.ndarray
) -> None:
    install(prints("butteraugli distance 4.01\n"))
    image = crop(kodim01)
    with pytest.raises(ButteraugliError, match="printed 0 distance line"):
        MetricSession(SLUGS, weights_dir=tmp_path).compute([(image, image)])
    assert list(scratch.iterdir()) == []


def test_a_run_past_the_timeout_is_killed_and_leaves_no_files(
    install: Install, scratch: Path, kodim01: np.ndarray
) -> None:
    fake = install(SLEEPS)
    image = crop(kodim01)
    with pytest.raises(ButteraugliError, match="butteraugli_main timed out after 1 s"):
        butteraugli.distance(image, image, binary=str(fake), timeout=1)
    assert list(scratch.iterdir()) == []


def test_a_binary_no_package_owns_has_an_unknown_version(install: Install) -> None:
    fake = install(prints(RECORDED_Q30))
    assert METRICS["butteraugli"].version() == f"libjxl-devtools unknown ({fake})"


# --- unavailable --------------------------------------------------------------------------------


def test_without_the_binary_both_metrics_are_unavailable_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any, kodim01: np.ndarray
) -> None:
    settings.METRIC_BINARIES = {"butteraugli": "butteraugli_main"}
    monkeypatch.setenv("PATH", str(tmp_path))
    session = MetricSession([*SLUGS, "psnr"], weights_dir=tmp_path)
    reason = (
        "binary 'butteraugli_main' not found on PATH; install libjxl-devtools "
        "or set BUTTERAUGLI=/path/to/butteraugli_main"
    )
    assert session.unavailable == dict.fromkeys(SLUGS, reason)
    image = crop(kodim01)
    [row] = session.compute([(image, jpeg(image, 30))])
    assert row["butteraugli"] == row["butteraugli_3norm"] == MetricValue(None, reason)
    assert row["psnr"].value is not None and math.isfinite(row["psnr"].value)
    assert METRICS["butteraugli"].version() == "libjxl-devtools (not installed)"


def test_a_configured_path_that_is_not_there_is_named_in_the_reason(
    tmp_path: Path, settings: Any
) -> None:
    missing = tmp_path / "nowhere" / "butteraugli_main"
    settings.METRIC_BINARIES = {"butteraugli": str(missing)}
    session = MetricSession(["butteraugli"], weights_dir=tmp_path)
    assert session.unavailable["butteraugli"] == (
        f"binary 'butteraugli_main' not found ($BUTTERAUGLI is '{missing}'); install "
        "libjxl-devtools or set BUTTERAUGLI=/path/to/butteraugli_main"
    )


def test_images_below_8_px_are_unavailable_because_the_tool_scores_them_0(
    install: Install, tmp_path: Path, kodim01: np.ndarray
) -> None:
    install(prints(RECORDED_Q30))
    small = np.ascontiguousarray(kodim01[:7, :100])
    [row] = MetricSession(SLUGS, weights_dir=tmp_path).compute([(small, 255 - small)])
    assert row["butteraugli"] == MetricValue(
        None,
        "100×7 px is smaller than the 8×8 px Butteraugli (max-norm) needs "
        "(below 8 px butteraugli_main reports 0 for any pair)",
    )


def test_both_metrics_are_registered_lower_is_better_with_a_citation() -> None:
    for slug in SLUGS:
        spec = METRICS[slug]
        assert not spec.higher_is_better and not spec.needs_weights and not spec.needs_torch
        assert spec.package == "libjxl-devtools" and "arXiv:1703.04421" in spec.citation
        assert spec.min_side == butteraugli.MIN_SIDE == 8
