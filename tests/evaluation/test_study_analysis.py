"""A study's judgments → frames → analysis, report page, exports and the bundle round trip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import studykit
from django.core.management import call_command
from django.urls import reverse
from evalkit import rated_study

from perceptlab.evaluation import exports, frames
from perceptlab.evaluation.study_analysis import analyse_study, config_for
from perceptlab.studies.models import Judgment

pytestmark = pytest.mark.django_db

ACR = {"judgments_per_item": 6, "trials_per_session": 8}


@pytest.fixture
def acr_study():  # type: ignore[no-untyped-def]
    return rated_study("acr", images=2, raters=6, seed=1, **ACR)


@pytest.fixture
def afc_study():  # type: ignore[no-untyped-def]
    return rated_study(
        "2afc", images=2, raters=8, seed=2, judgments_per_item=8, trials_per_session=12
    )


def test_the_judgments_frame_has_one_row_per_stored_judgment(acr_study) -> None:  # type: ignore[no-untyped-def]
    frame = frames.judgments_frame(acr_study)
    assert list(frame.columns) == frames.JUDGMENT_COLUMNS
    assert len(frame) == Judgment.objects.filter(trial__session__study=acr_study).count() == 48
    assert frame["rater"].nunique() == 6
    stimuli = frames.stimuli_frame(acr_study)
    assert set(frame["a"]) <= set(stimuli["stimulus"])
    assert stimuli["stimulus"].is_unique


def test_condition_mos_is_the_mean_of_the_stored_scores(acr_study) -> None:  # type: ignore[no-untyped-def]
    _, analysis = analyse_study(acr_study, config_for(acr_study))
    table = analysis.scores.loc[analysis.scores["level"] == "condition"].set_index("key")
    judgments = Judgment.objects.filter(trial__session__study=acr_study).select_related(
        "trial__item__a__reconstruction"
    )
    by_condition: dict[str, list[float]] = {}
    for j in judgments:
        r = j.trial.item.a.reconstruction
        by_condition.setdefault(f"{r.codec}@{r.target_bpp:g}", []).append(j.score)
    for condition, scores in by_condition.items():
        assert table.loc[condition, "mos"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)
        assert table.loc[condition, "n"] == len(scores)
    curves = analysis.curves
    assert len(curves) == 4 and set(curves["codec"]) == {"jpeg", "webp"}
    assert (curves["low"] <= curves["quality"]).all() and (
        curves["quality"] <= curves["high"]
    ).all()


def test_more_bits_rate_higher_in_the_simulated_acr_study(acr_study) -> None:  # type: ignore[no-untyped-def]
    _, analysis = analyse_study(acr_study, config_for(acr_study))
    for _, curve in analysis.curves.groupby("codec"):
        assert curve.sort_values("bpp")["quality"].is_monotonic_increasing
    assert len(analysis.bd_table) == 1 and analysis.bd_table.loc[0, "codec"] == "webp"


def test_the_bd_table_gives_the_bitrate_at_equal_quality_with_its_interval(acr_study) -> None:  # type: ignore[no-untyped-def]
    from perceptlab.evaluation.stats.bdrate import bitrate_at_equal_quality

    _, analysis = analyse_study(acr_study, config_for(acr_study))
    row = analysis.bd_table.iloc[0]
    curves = analysis.curves
    anchor, test = curves[curves["codec"] == "jpeg"], curves[curves["codec"] == "webp"]
    expected = bitrate_at_equal_quality(
        anchor["bpp"], anchor["quality"], test["bpp"], test["quality"], monotone="isotonic"
    )
    assert row["rate_ratio"] == pytest.approx(expected.ratio)
    assert row["rate_ratio"] == pytest.approx(1 + row["bd_rate"] / 100)
    assert row["rate_ratio_low"] == pytest.approx(1 + row["bd_rate_low"] / 100)
    assert row["rate_ratio_low"] <= row["rate_ratio"] <= row["rate_ratio_high"]


def test_pairwise_study_scales_conditions_on_the_elo_scale(afc_study) -> None:  # type: ignore[no-untyped-def]
    _, analysis = analyse_study(afc_study, config_for(afc_study))
    conditions = analysis.scores.loc[analysis.scores["level"] == "condition"]
    assert set(conditions["condition"]) == {"jpeg@0.5", "jpeg@1", "webp@0.5", "webp@1"}
    assert conditions["bt_elo"].mean() == pytest.approx(2000.0, abs=1e-6)
    assert analysis.win_matrix is not None and analysis.win_matrix.shape == (4, 4)
    assert len(analysis.curves) == 4


def test_the_report_page_shows_figures_to_staff_only(acr_study, client, admin_client) -> None:  # type: ignore[no-untyped-def]
    url = reverse("evaluation:report", args=[acr_study.pk])
    assert client.get(url).status_code == 302
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert reverse("evaluation:plotly_js") in body
    assert "plotly" in body.lower() and "jpeg" in body
    assert admin_client.get(url + "?screening=bt500&anchor=webp").status_code == 200


def test_a_report_without_judgments_says_so_instead_of_failing(admin_client) -> None:  # type: ignore[no-untyped-def]
    study = studykit.make_study("acr", images=1)
    response = admin_client.get(reverse("evaluation:report", args=[study.pk]))
    assert response.status_code == 200
    assert "No analysis yet" in response.content.decode()


@pytest.mark.parametrize("name", ["judgments.csv", "stimuli.csv", "metrics.csv", "scores.csv"])
def test_each_csv_export_downloads(acr_study, admin_client, name: str) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.get(reverse("evaluation:export", args=[acr_study.pk, name]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    frame = pd.read_csv(io.BytesIO(response.content))
    expected = {
        "judgments.csv": frames.JUDGMENT_COLUMNS,
        "stimuli.csv": frames.STIMULUS_COLUMNS,
        "metrics.csv": frames.METRIC_COLUMNS,
    }
    if name in expected:
        assert list(frame.columns) == expected[name]


@pytest.mark.parametrize("study_fixture", ["acr_study", "afc_study"])
def test_the_bundle_reopens_into_the_same_numbers(
    study_fixture: str,
    request,
    admin_client,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    study = request.getfixturevalue(study_fixture)
    response = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert response.status_code == 200
    path = tmp_path / "bundle.zip"
    path.write_bytes(response.content)
    names = set(zipfile.ZipFile(path).namelist())
    assert {"manifest.json", "judgments.csv", "stimuli.csv", "scores.csv", "report.html"} <= names
    bundle = exports.open_bundle(path)
    again = exports.reanalyse(bundle)
    assert exports.csv_bytes(exports.read_csv_bytes(exports.csv_bytes(again.scores))) == (
        exports.csv_bytes(bundle.scores)
    )
    out = io.StringIO()
    call_command("score", bundle=path, out=tmp_path / "again.csv", stdout=out)
    assert "reproduces scores.csv exactly" in out.getvalue()


def test_a_tampered_bundle_is_refused(acr_study, admin_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.get(reverse("evaluation:export", args=[acr_study.pk, "bundle.zip"]))
    source = zipfile.ZipFile(io.BytesIO(response.content))
    path = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "judgments.csv":
                data = data.replace(b",test,", b",gold,", 1)  # a test trial relabelled
            target.writestr(name, data)
    with pytest.raises(exports.StatsInputError, match=r"judgments\.csv has SHA-256"):
        exports.open_bundle(path)


@pytest.mark.slow
def test_the_bundle_carries_the_guidance_replay_and_reopens_into_it(
    admin_client,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """An ACR study of 18 stimuli with crop metrics: the bundle holds metric_guidance.csv (the
    report's replay), and reanalysing the bundle gives the same replay."""
    study = rated_study("acr", images=3, raters=6, seed=4, target_bpps=[0.5, 1.0, 2.0], **ACR)
    studykit.with_crop_metrics(study, seed=5)
    response = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert response.status_code == 200
    path = tmp_path / "bundle.zip"
    path.write_bytes(response.content)
    stored = exports.read_csv_bytes(zipfile.ZipFile(path).read("metric_guidance.csv"))
    assert list(stored["measured"])[-1] == 18 and (stored["stimuli"] == 18).all()
    again = exports.reanalyse(exports.open_bundle(path))
    assert exports.csv_bytes(again.guidance) == exports.csv_bytes(stored)
