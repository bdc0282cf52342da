"""Analyses computed once and stored: the report and the exports read the stored result,
a change of the data requests a new one (the page shows the last with "updating…"), a
failure keeps its reason and never loses the raw data, and the worker's pass refreshes
changed studies at most once per debounce interval."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from evalkit import rated_study
from studykit import make_study

from perceptlab.evaluation import stored, study_analysis
from perceptlab.evaluation.models import StudyAnalysis
from perceptlab.evaluation.simulation import simulate_raters
from perceptlab.evaluation.study_analysis import config_for, study_frames
from perceptlab.studies.models import Session, Study

pytestmark = pytest.mark.django_db

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


@pytest.fixture(autouse=True)
def small_bootstrap(settings: Any) -> None:
    settings.EVALUATION_RESAMPLES = 100


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the analyses actually run."""
    runs: list[int] = []
    real = study_analysis.analyse_study

    def counting(study: Study, config: Any) -> Any:
        runs.append(study.pk)
        return real(study, config)

    monkeypatch.setattr(stored, "analyse_study", counting)
    return runs


def _report(client: Client, study: Study, query: str = "") -> Any:
    return client.get(reverse("evaluation:report", args=[study.pk]) + query)


def test_the_report_is_computed_once_and_then_read(
    admin_client: Client, counted: list[int]
) -> None:
    study = rated_study("acr", images=2, raters=4, seed=1)
    first = _report(admin_client, study)
    assert first.status_code == 200 and "plotly" in first.content.decode().lower()
    for _ in range(3):
        again = _report(admin_client, study)
        assert again.content.decode().count("report-section") == (
            first.content.decode().count("report-section")
        )
    for name in ("scores.csv", "report.html", "bundle.zip"):
        assert (
            admin_client.get(reverse("evaluation:export", args=[study.pk, name])).status_code == 200
        )
    assert counted == [study.pk]  # one analysis for four pages and three exports
    row = StudyAnalysis.objects.get(study=study)
    assert row.state == StudyAnalysis.State.DONE and row.seconds is not None
    assert row.data_sha256 == stored.data_sha256(study_frames(study))
    assert any(m.startswith("MOS") for m in row.versions["models"])
    assert row.counts["judgments"] == len(study_frames(study).judgments) > 0


def test_other_options_are_another_stored_analysis(
    admin_client: Client, counted: list[int]
) -> None:
    study = rated_study("acr", images=2, raters=4, seed=1)
    _report(admin_client, study)
    _report(admin_client, study, "?screening=bt500")
    _report(admin_client, study, "?screening=bt500")
    assert len(counted) == 2
    keys = set(StudyAnalysis.objects.filter(study=study).values_list("options_key", flat=True))
    assert len(keys) == 2


def test_new_judgments_show_the_last_analysis_while_a_new_one_computes(
    admin_client: Client, settings: Any
) -> None:
    study = rated_study("acr", images=2, raters=4, seed=1)
    _report(admin_client, study)  # computed inline (the tests' immediate backend)
    first = StudyAnalysis.objects.get(study=study)
    settings.TASKS = DUMMY  # from now on a worker would compute it: nobody does
    simulate_raters(study=study, raters=2, seed=7)
    page = _report(admin_client, study)
    body = page.content.decode()
    assert "Updating…" in body and page["Refresh"] == "5"
    assert f"{first.counts['judgments']} judgments" in body  # the last analysis, shown
    pending = StudyAnalysis.objects.get(study=study, state=StudyAnalysis.State.PENDING)
    _report(admin_client, study)
    assert StudyAnalysis.objects.filter(study=study).count() == 2  # not requested twice
    assert stored.compute(pending.pk) == StudyAnalysis.State.DONE  # what the worker runs
    assert stored.compute(pending.pk) == "taken"  # never twice
    page = _report(admin_client, study)
    assert "Updating…" not in page.content.decode() and "Refresh" not in page
    newer = StudyAnalysis.objects.get(pk=pending.pk)
    assert newer.counts["judgments"] > first.counts["judgments"]
    scores = admin_client.get(reverse("evaluation:export", args=[study.pk, "scores.csv"]))
    table = pd.read_csv(io.BytesIO(scores.content))
    assert int(table.loc[table["level"] == "condition", "n"].max()) > 0


def test_an_export_before_any_analysis_asks_to_retry(admin_client: Client, settings: Any) -> None:
    settings.TASKS = DUMMY
    study = rated_study("acr", images=1, raters=2, seed=2)
    response = admin_client.get(reverse("evaluation:export", args=[study.pk, "scores.csv"]))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    raw = admin_client.get(reverse("evaluation:export", args=[study.pk, "judgments.csv"]))
    assert raw.status_code == 200  # raw data never wait for an analysis
    page = _report(admin_client, study)
    assert "Computing the first analysis" in page.content.decode()


def test_a_failed_analysis_says_why_and_the_bundle_still_holds_the_raw_data(
    admin_client: Client,
) -> None:
    study = rated_study("acr", images=1, raters=3, seed=3)
    Session.objects.filter(study=study).update(state=Session.State.SCREENED_OUT)
    page = _report(admin_client, study)
    assert page.status_code == 200
    row = StudyAnalysis.objects.get(study=study)
    assert row.state == StudyAnalysis.State.FAILED and row.error
    assert row.error in page.content.decode()
    scores = admin_client.get(reverse("evaluation:export", args=[study.pk, "scores.csv"]))
    assert scores.status_code == 409 and row.error in scores.content.decode()
    bundle = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert bundle.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(bundle.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["analysis_failed"] == row.error
    judgments = pd.read_csv(io.BytesIO(archive.read("judgments.csv")))
    assert len(judgments) == len(study_frames(study).judgments) > 0
    _report(admin_client, study)
    assert StudyAnalysis.objects.filter(study=study).count() == 1  # not retried on the same data


def test_the_worker_pass_refreshes_changed_studies_at_most_once_per_interval(
    settings: Any,
) -> None:
    settings.TASKS = DUMMY
    settings.ANALYSIS_DEBOUNCE_SECONDS = 60
    study = rated_study("acr", images=1, raters=2, seed=4)
    make_study("acr", images=1)  # no judgments: nothing to analyse
    assert stored.refresh_pass() == 1
    assert stored.refresh_pass() == 0  # one is pending
    row = StudyAnalysis.objects.get(study=study)
    stored.compute(row.pk)
    assert stored.refresh_pass() == 0  # up to date
    simulate_raters(study=study, raters=1, seed=5)
    assert stored.refresh_pass() == 0  # changed, but the last request is under 60 s old
    StudyAnalysis.objects.filter(pk=row.pk).update(requested=timezone.now() - timedelta(minutes=2))
    assert stored.refresh_pass() == 1
    newest = StudyAnalysis.objects.filter(study=study).first()
    assert newest is not None and newest.options_key == stored.options_key(config_for(study))


def test_an_analysis_whose_worker_was_lost_is_requested_again(settings: Any) -> None:
    settings.TASKS = DUMMY
    study = rated_study("acr", images=1, raters=2, seed=6)
    config = config_for(study)
    row = stored.request(study, config)
    long_ago = timezone.now() - timedelta(seconds=settings.ANALYSIS_LOST_SECONDS + 1)
    StudyAnalysis.objects.filter(pk=row.pk).update(
        state=StudyAnalysis.State.RUNNING, started=long_ago
    )
    shown = stored.for_page(study, config)
    assert shown.updating and shown.failed is None
    assert StudyAnalysis.objects.get(pk=row.pk).state == StudyAnalysis.State.FAILED
    assert StudyAnalysis.objects.filter(study=study, state="pending").count() == 1


def test_only_the_last_finished_analyses_are_kept() -> None:
    study = rated_study("acr", images=1, raters=2, seed=8)
    config = config_for(study)
    for seed in range(stored.KEEP + 2):
        simulate_raters(study=study, raters=1, seed=20 + seed)
        stored.request(study, config)
    assert StudyAnalysis.objects.filter(study=study).count() == stored.KEEP
