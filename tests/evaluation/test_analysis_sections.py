"""The analyses a report adds to MOS and Elo: ACR-HR DMOS curves, the Li–Bampis subject model
and the lapse-weighted 2AFC scale. Each is held to a direct call of its statistics function
(those are tested against sureal and known parameters in test_mos.py, test_subject_model.py
and test_lapse.py) on the study's counted judgments, and must show on the report page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse
from evalkit import rated_study

from perceptlab.evaluation.analysis import (
    AnalysisConfig,
    counted_judgments,
    ratings_frame,
    trials_frame,
)
from perceptlab.evaluation.forms import ReportOptions
from perceptlab.evaluation.stats import lapse, mos, subject_model
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.study_analysis import analyse_study, config_for, study_frames
from perceptlab.studies.models import Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_bootstrap(settings: Any) -> None:
    settings.EVALUATION_RESAMPLES = 100


def _report(client: Client, study_pk: int, query: str = "") -> str:
    url = reverse("evaluation:report", args=[study_pk]) + query
    return client.get(url).content.decode()


def test_acr_hr_gives_a_dmos_curve_per_condition_as_p910_defines_it(admin_client: Client) -> None:
    study = rated_study("acr", images=3, raters=5, seed=21, hidden_reference=True)
    config = config_for(study)
    data, analysis = analyse_study(study, config)
    ratings = ratings_frame(counted_judgments(data.judgments, config.policy()), data.stimuli)
    stimuli = data.stimuli
    refs = stimuli.loc[stimuli["role"] == "hidden"].set_index("image")["stimulus"]
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    reference_of = dict(zip(conditions["stimulus"], conditions["image"].map(refs), strict=True))
    direct = mos.dmos_acr_hr(
        ratings,
        by="condition",
        reference_of=reference_of,
        scale_max=config.scale_max,
        n_resamples=config.n_resamples,
        seed=config.seed,
    ).table.set_index("condition")
    curves = analysis.dmos_curves
    assert len(curves) == conditions["condition"].nunique() > 0
    codec_target = conditions.drop_duplicates("condition").set_index(["codec", "target_bpp"])
    for row in curves.itertuples():
        key = codec_target.loc[(row.codec, row.target), "condition"]
        assert row.quality == pytest.approx(direct.loc[key, "mos"])
        assert row.low <= row.quality <= row.high
    # by hand for one condition: mean over (rater, stimulus) of V(PVS) − V(REF) + 5
    key = str(curves.iloc[0]["codec"]), float(curves.iloc[0]["target"])
    condition = codec_target.loc[key, "condition"]
    pvs = ratings[ratings["condition"] == condition]
    ref_scores = ratings.groupby(["rater", "stimulus"])["score"].mean()
    dv = [
        r.score - ref_scores[(r.rater, reference_of[r.stimulus])] + 5
        for r in pvs.itertuples()
        if (r.rater, reference_of[r.stimulus]) in ref_scores.index
    ]
    assert curves.iloc[0]["quality"] == pytest.approx(np.mean(dv))
    dmos_rows = analysis.scores[analysis.scores["measure"] == "DMOS-ACR-HR"]
    assert set(dmos_rows["level"]) == {"stimulus", "condition"}
    assert "DMOS" in set(analysis.bd_table["measure"])
    page = _report(admin_client, study.pk)
    assert "Rate–DMOS curves (ACR-HR)" in page


def test_plain_acr_has_no_dmos_curve() -> None:
    study = rated_study("acr", images=2, raters=3, seed=22)
    _, analysis = analyse_study(study, config_for(study))
    assert analysis.dmos_curves.empty


def _spread_scores(study: Any, seed: int) -> None:
    """Replace the simulated scores (mostly 1–2 on the test studies' heavily compressed
    images) by draws of the subject model itself, round(ψ_e + Δ_s + υ_s·ε) on 1–5 with ψ
    spread over the scale, keyed by the item's and the rater's rank (not their database ids,
    which differ between databases), so every database gets the same ratings."""
    judgments = list(
        Judgment.objects.filter(trial__session__study=study, trial__kind="test")
        .select_related("trial")
        .order_by("id")
    )
    items = {pk: i for i, pk in enumerate(sorted({j.trial.item_id for j in judgments}))}
    raters = {pk: i for i, pk in enumerate(sorted({j.trial.session_id for j in judgments}))}
    for judgment in judgments:
        item, rater = items[judgment.trial.item_id], raters[judgment.trial.session_id]
        psi = np.random.default_rng([seed, 0, item]).uniform(1.5, 4.5)
        draws = np.random.default_rng([seed, 1, rater])
        bias, noise = draws.normal(0, 0.4), draws.uniform(0.5, 1.0)
        value = psi + bias + noise * np.random.default_rng([seed, 2, item, rater]).normal()
        judgment.score = float(np.clip(np.rint(value), 1, 5))
        judgment.save(update_fields=["score"])


@pytest.mark.parametrize("method", ["acr", "dcr"])
def test_the_subject_model_is_fitted_on_the_counted_ratings(
    admin_client: Client, method: str
) -> None:
    # the likelihood is unbounded (a rater fitted exactly: υ → 0) unless each rater scores
    # enough stimuli; 24 each here
    study = rated_study(
        method, images=6, raters=8, seed=23, judgments_per_item=8, trials_per_session=24
    )
    _spread_scores(study, seed=23)
    judgments = Judgment.objects.filter(trial__session__study=study, trial__kind="test")
    assert judgments.count() == 8 * 24  # a complete design: the same ratings on any database
    config = config_for(study)
    data, analysis = analyse_study(study, config)
    ratings = ratings_frame(counted_judgments(data.judgments, config.policy()), data.stimuli)
    fit = subject_model.mle_subject_model(ratings, variant="content_oblivious")
    raters = analysis.subject_raters.set_index("rater")
    direct = fit.raters.set_index("rater")
    assert sorted(raters.index) == sorted(ratings["rater"].unique())
    for column in ("bias", "inconsistency", "bias_ci95_low", "inconsistency_ci95_high"):
        assert raters[column].to_numpy() == pytest.approx(direct.loc[raters.index, column])
    # per condition: the mean ψ of its images, SE √(Σ SE²)/n
    psi = fit.scores.set_index("stimulus")
    info = data.stimuli.set_index("stimulus")
    table = analysis.subject_scores.set_index("condition")
    for condition, row in table.iterrows():
        members = [s for s in psi.index if info.loc[s, "condition"] == condition]
        assert row["images"] == len(members) == 6
        assert row["quality"] == pytest.approx(psi.loc[members, "quality"].mean())
        se = np.sqrt(np.sum(psi.loc[members, "std"] ** 2)) / len(members)
        assert row["se"] == pytest.approx(se)
        assert row["ci95_low"] == pytest.approx(row["quality"] - 1.959963984540054 * se)
    assert any(m.name == "MLE_CO" for m in analysis.models)
    page = _report(admin_client, study.pk)
    assert "Subject model: quality per condition" in page
    assert "Subject model: raters" in page


def test_a_subject_model_that_cannot_be_fitted_says_why(admin_client: Client) -> None:
    study = rated_study("acr", images=1, raters=1, seed=24)
    _, analysis = analyse_study(study, config_for(study))
    assert analysis.subject_scores.empty
    assert analysis.subject_scores.attrs["problem"]
    assert not analysis.curves.empty  # the MOS still shows
    assert "Subject model: quality per condition" in _report(admin_client, study.pk)


def test_lapse_weighting_scales_with_each_rater_weighted_by_one_minus_q(
    admin_client: Client,
) -> None:
    study = rated_study(
        "2afc", images=3, raters=6, seed=25, judgments_per_item=6, trials_per_session=24
    )
    report_only = config_for(study)
    assert report_only.lapse == "report"
    _, plain = analyse_study(study, report_only)
    assert plain.lapse_weighted.empty
    config = config_for(study, ReportOptions(lapse="weight"))
    data, analysis = analyse_study(study, config)
    counted = counted_judgments(data.judgments, config.policy())
    weights = analysis.lapse.set_index("rater")["weight"]
    pooled = trials_frame(counted, data.stimuli, level="condition").drop(columns=["group"])
    direct = lapse.weighted_bradley_terry(pooled, weights=weights).scores.set_index("condition")
    table = analysis.lapse_weighted.set_index("condition")
    assert sorted(table.index) == sorted(direct.index)
    assert table["elo"].to_numpy() == pytest.approx(direct.loc[table.index, "elo"].to_numpy())
    assert (table["elo_low"] < table["elo"]).all() and (table["elo"] < table["elo_high"]).all()
    assert any(m.name == "weighted-bradley-terry-map" for m in analysis.models)
    page = _report(admin_client, study.pk, "?lapse=weight&policy=chosen&exclude=too_fast")
    assert "Lapse-weighted scale" in page
    assert "Lapse-weighted scale" not in _report(admin_client, study.pk)


def test_the_configuration_is_typed_and_refuses_what_it_does_not_know() -> None:
    with pytest.raises(StatsInputError, match=r"method='mos'.*'acr', 'dcr', '2afc'"):
        AnalysisConfig(method="mos")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="bd_method='linear'"):
        AnalysisConfig(method="acr", bd_method="linear")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="lapse='drop'"):
        AnalysisConfig(method="2afc", lapse="drop")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match=r"unknown analysis option.*colour"):
        AnalysisConfig.from_json({"method": "acr", "colour": "red"})
    config = AnalysisConfig(method="2afc", lapse="weight", screening="")
    assert AnalysisConfig.from_json(config.as_dict()) == config


def test_the_page_and_the_standalone_file_render_the_same_sections(admin_client: Client) -> None:
    from perceptlab.evaluation import exports, stored

    study = rated_study("acr", images=2, raters=3, seed=26)
    page = _report(admin_client, study.pk)
    row = stored.for_page(study, config_for(study)).done
    assert row is not None
    standalone = exports.export_bytes(study, "report.html").decode()
    sections = stored.page_sections(row)
    assert len(sections) > 8
    for section in sections:
        assert section in page and section in standalone
    frame = pd.DataFrame(study_frames(study).judgments)
    assert len(frame)  # the study has data: the sections are not all notices
    assert page.count('class="report-section"') == len(sections) + 1  # + methods


def test_the_lapse_rule_leaves_out_raters_above_the_threshold(admin_client: Client) -> None:
    study = rated_study(
        "2afc", images=3, raters=6, seed=27, judgments_per_item=6, trials_per_session=24
    )
    _, plain = analyse_study(study, config_for(study))
    q = plain.lapse.set_index("rater")["q"]
    threshold = float(q.sort_values().iloc[-2])  # the most random rater is above it
    study.max_lapse = threshold
    study.save(update_fields=["max_lapse"])
    config = config_for(study)
    assert config.max_lapse == threshold
    data, analysis = analyse_study(study, config)
    out = set(q[q > threshold].index)
    assert len(out) == 1
    table = analysis.lapse.set_index("rater")
    assert set(table.index[table["excluded"]]) == out  # the table still lists them, marked
    kept = counted_judgments(data.judgments, config.policy())
    theirs = int(kept["rater"].astype(str).isin(out).sum())
    row = analysis.exclusion.set_index("rule").loc[f"removed: lapse rate > {threshold:g}"]
    assert (row["judgments"], row["raters"]) == (theirs, 1) and theirs > 0
    assert analysis.counts["judgments"] == len(kept) - theirs
    page = _report(admin_client, study.pk)
    assert f"raters whose lapse rate exceeds {threshold:g}" in page
    acr = rated_study("acr", images=1, raters=2, seed=28)
    acr.max_lapse = 0.1  # a 2AFC rule: an ACR study's analysis ignores it
    assert config_for(acr).max_lapse is None
