"""Objective metrics stored per stimulus: full image and crop, reasons for unavailable ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import studykit

from perceptlab.codecs.files import read_bytes
from perceptlab.evaluation.models import StimulusMetric
from perceptlab.evaluation.objective import compute_study_metrics, measured_stimuli
from perceptlab.evaluation.tasks import compute_metrics
from perceptlab.lib.images import decode_png

pytestmark = [pytest.mark.django_db, pytest.mark.needs_torch]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture
def study(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings.PERCEPTLAB_WEIGHTS_DIR = tmp_path / "no-weights"
    return studykit.make_study("acr", images=2)


def test_every_reconstructed_stimulus_gets_full_and_crop_values(study) -> None:  # type: ignore[no-untyped-def]
    report = compute_study_metrics(study=study, metrics=["psnr", "ssim", "ms_ssim", "dists"])
    stimuli = measured_stimuli(study)
    assert report.computed == 2 * len(stimuli)
    assert StimulusMetric.objects.count() == len(stimuli) * 2 * 4
    for stimulus in stimuli:
        source = decode_png(read_bytes(str(stimulus.study_image.source.png.name)))
        decoded = decode_png(read_bytes(str(stimulus.reconstruction.png.name)))
        x, y, w, h = stimulus.study_image.crop_box()
        full = StimulusMetric.objects.get(stimulus=stimulus, region="full", metric="psnr")
        crop = StimulusMetric.objects.get(stimulus=stimulus, region="crop", metric="psnr")
        assert full.value == pytest.approx(_psnr(source, decoded), abs=1e-9)
        expected = _psnr(source[y : y + h, x : x + w], decoded[y : y + h, x : x + w])
        assert crop.value == pytest.approx(expected, abs=1e-9)
        assert full.version.startswith("perceptlab") or full.version


def test_unavailable_metrics_are_stored_with_their_reason_not_a_number(study) -> None:  # type: ignore[no-untyped-def]
    report = compute_study_metrics(study=study, metrics=["psnr", "ms_ssim", "dists"])
    dists = StimulusMetric.objects.filter(metric="dists")
    assert dists.exists() and all(m.value is None for m in dists)
    assert all(
        "weights missing" in m.unavailable and "fetch_weights" in m.unavailable for m in dists
    )
    small = StimulusMetric.objects.filter(metric="ms_ssim", region="crop")
    assert all(m.value is None and m.unavailable for m in small)  # 64-px crops < 161 px
    assert "dists" in report.unavailable


def test_a_second_run_measures_nothing_again(study) -> None:  # type: ignore[no-untyped-def]
    compute_study_metrics(study=study, metrics=["psnr"])
    again = compute_study_metrics(study=study, metrics=["psnr"])
    assert again.computed == 0 and again.skipped == len(measured_stimuli(study))


def test_the_task_measures_the_study(study) -> None:  # type: ignore[no-untyped-def]
    compute_metrics.enqueue(study.pk)
    assert StimulusMetric.objects.filter(stimulus__study=study, metric="psnr").count() == 2 * len(
        measured_stimuli(study)
    )
