"""ColorVideoVDP (issue 15): JOD per stimulus on the study's display model, through pycvvdp."""

from __future__ import annotations

import builtins
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import studykit
from PIL import Image
from support import data

from perceptlab.evaluation.metrics import METRICS, BuildContext, MetricSession, MetricUnavailable
from perceptlab.evaluation.models import StimulusMetric
from perceptlab.evaluation.objective import compute_study_metrics, measured_stimuli

pycvvdp = pytest.importorskip("pycvvdp", reason="the [cvvdp] extra is not installed")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.needs_torch


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    image = np.asarray(Image.open(data("kodak", "kodim23.png")).convert("RGB"))
    return np.ascontiguousarray(image[150:278, 300:428])  # 128×128 of the parrots


def _session(display: str = "standard_4k") -> MetricSession:
    return MetricSession(["cvvdp"], weights_dir=Path("/nonexistent"), display=display)


def test_an_identical_image_is_10_jod_and_quality_falls_with_the_jpeg_quality(crop) -> None:  # type: ignore[no-untyped-def]
    pairs = [(crop, crop)] + [(crop, _jpeg(crop, q)) for q in (90, 50, 10)]
    values = [v["cvvdp"].value for v in _session().compute(pairs)]
    assert values[0] == pytest.approx(10.0, abs=1e-6)
    assert all(v is not None for v in values)
    assert values[0] > values[1] > values[2] > values[3] > 0  # type: ignore[operator]


def test_the_value_is_pycvvdps_own_with_test_and_reference_in_their_places(crop) -> None:  # type: ignore[no-untyped-def]
    distorted = _jpeg(crop, 30)
    ours = _session("standard_fhd").compute([(crop, distorted)])[0]["cvvdp"].value
    reference = pycvvdp.cvvdp(display_name="standard_fhd", device=torch.device("cpu"))
    jod, _ = reference.predict(distorted, crop, dim_order="HWC")
    assert ours == pytest.approx(float(jod), abs=1e-9)
    swapped, _ = reference.predict(crop, distorted, dim_order="HWC")
    assert abs(float(swapped) - float(jod)) > 1e-6  # the order matters, so it was checked


def test_the_display_model_changes_the_prediction_and_is_recorded(crop) -> None:  # type: ignore[no-untyped-def]
    distorted = _jpeg(crop, 30)
    desk = _session("standard_4k").compute([(crop, distorted)])[0]["cvvdp"].value
    phone = _session("standard_phone").compute([(crop, distorted)])[0]["cvvdp"].value
    assert desk is not None and phone is not None and abs(desk - phone) > 0.01
    assert _session("standard_phone").version("cvvdp").endswith("display standard_phone")
    assert METRICS["cvvdp"].version().startswith("cvvdp 0.")
    assert METRICS["psnr"].version_for("standard_phone") == METRICS["psnr"].version()


def test_too_small_an_image_and_a_missing_package_are_reasons_not_numbers(
    crop: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = _session().compute([(crop[:8, :8], crop[:8, :8])])[0]["cvvdp"]
    assert tiny.value is None and "smaller than the 16×16 px" in str(tiny.unavailable)
    real_import = builtins.__import__

    def without_pycvvdp(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pycvvdp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pycvvdp)
    session = _session()
    assert "pip install -e '.[cvvdp]'" in session.unavailable["cvvdp"]
    monkeypatch.setattr(builtins, "__import__", real_import)
    with pytest.raises(MetricUnavailable, match="unknown CVVDP display"):
        METRICS["cvvdp"].build(BuildContext({}, "cpu", "no_such_display"))


@pytest.mark.django_db
def test_a_study_stores_jod_on_its_display_and_recomputes_when_it_changes(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings.PERCEPTLAB_WEIGHTS_DIR = tmp_path / "no-weights"
    study = studykit.make_study("acr", images=1)
    stimuli = measured_stimuli(study)
    report = compute_study_metrics(study=study, metrics=["cvvdp"])
    assert report.computed == 2 * len(stimuli)
    stored = StimulusMetric.objects.filter(metric="cvvdp")
    assert stored.count() == 2 * len(stimuli)
    assert all(m.value is not None and 0 < m.value <= 10 for m in stored)
    assert {m.version for m in stored} == {METRICS["cvvdp"].version_for("standard_4k")}
    assert compute_study_metrics(study=study, metrics=["cvvdp"]).computed == 0
    study.cvvdp_display = "standard_phone"
    study.save(update_fields=["cvvdp_display"])
    again = compute_study_metrics(study=study, metrics=["cvvdp"])
    assert again.computed == 2 * len(stimuli)
    assert {m.version for m in StimulusMetric.objects.filter(metric="cvvdp")} == {
        METRICS["cvvdp"].version_for("standard_phone")
    }


@pytest.mark.django_db
def test_stored_jod_reaches_the_reports_metric_tables(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from perceptlab.evaluation.analysis.tables import higher_is_better, metric_table
    from perceptlab.evaluation.frames import metrics_frame

    settings.PERCEPTLAB_WEIGHTS_DIR = tmp_path / "no-weights"
    study = studykit.make_study("acr", images=1)
    compute_study_metrics(study=study, metrics=["psnr", "cvvdp"])
    for region in ("full", "crop"):
        table = metric_table(metrics_frame(study), region=region)
        assert "cvvdp" in table.columns and table["cvvdp"].notna().all()
        assert ((table["cvvdp"] > 0) & (table["cvvdp"] <= 10)).all()
    assert higher_is_better()["cvvdp"] is True
