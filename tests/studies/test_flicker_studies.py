"""Flicker studies (JPEG AIC-2): design, answers, thresholds in the report, QUEST sampling."""

from __future__ import annotations

import io
import math
import random
import uuid
import zipfile

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse
from scipy.stats import norm
from studykit import answer_current, make_study, rate_until_full, rating_session

from perceptlab.evaluation.analysis import analyse
from perceptlab.evaluation.reports import standalone_html
from perceptlab.evaluation.study_analysis import config_for, report_data, study_frames
from perceptlab.lib import psychometric as pm
from perceptlab.studies import adaptive
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.judging import Answer, JudgmentRejected, record
from perceptlab.studies.models import Item, ItemTally, Judgment, Stimulus, Study, Trial

pytestmark = pytest.mark.django_db

LADDER = [0.25, 0.5, 1.0, 2.0]
# the simulated observers' μ (log2 bpp) per codec: webp is visually lossless at half jpeg's rate
TRUTH = {"jpeg": 0.4, "webp": -0.6}


def _flicker(**fields: object) -> Study:
    fields.setdefault("target_bpps", LADDER)
    fields.setdefault("trials_per_session", 8)
    fields.setdefault("judgments_per_item", 400)
    return make_study("flicker", images=2, **fields)


def _observer(trial: Trial, rng: random.Random) -> str:
    """Names the flickering side with the model's probability at the test image's rate."""
    test = trial.item.b
    assert test is not None and test.reconstruction is not None
    x = math.log2(test.reconstruction.achieved_bpp)
    p = pm.GUESS + (1 - pm.GUESS - pm.LAPSE) * norm.cdf(
        (TRUTH[test.reconstruction.codec] - x) / 0.5
    )
    correct = rng.random() < p
    shown_a, _ = trial.shown_as()
    test_side = "a" if shown_a.pk == test.pk else "b"
    return test_side if correct else ("b" if test_side == "a" else "a")


def test_each_condition_is_an_item_against_the_still_original() -> None:
    study = _flicker(gold_trials=1)
    tests = study.items.filter(kind=Item.Kind.TEST).select_related("a", "b__reconstruction")
    assert tests.count() == 2 * 2 * len(LADDER)  # images × codecs × rates
    for item in tests:
        assert item.a.role == Stimulus.Role.HIDDEN and item.b is not None
        assert item.b.role == Stimulus.Role.CONDITION
    (gold, *_) = study.items.filter(kind=Item.Kind.GOLD)
    assert gold.expected == Item.Expect.B  # the heavy compression flickers
    assert study.panes() == 2 and study.required_flips() == 0 and not study.offers_undecided


def test_a_flicker_answer_is_forced_and_its_gold_is_checked() -> None:
    study = _flicker(gold_trials=1, allow_undecided=True)
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None
    with pytest.raises(JudgmentRejected, match="flickers"):
        record(
            session=session,
            answer=Answer(
                position=trial.position,
                key=uuid.uuid4(),
                score=None,
                choice="undecided",
                flips=0,
                view_ms=4000,
                age_ms=0,
                viewing={},
            ),
        )


def _rated(raters: int, seed: int) -> Study:
    study = _flicker(trials_per_session=16)
    rng = random.Random(seed)
    random.seed(seed)  # the binding's own draws (which item, which side): a fixed run
    for _ in range(raters):
        session = rating_session(study)
        while (trial := upcoming(session=session).current) is not None:
            answer_current(session, choice=_observer(trial, rng))
    return study


def test_thresholds_and_savings_reach_the_report() -> None:
    study = _rated(30, seed=3)
    data = study_frames(study)
    analysis = analyse(
        stimuli=data.stimuli,
        judgments=data.judgments,
        metrics=data.metrics,
        config=config_for(study),
    )
    table = analysis.scores.set_index(["image", "codec"])
    offset = float(pm.criterion_offset(0.5))
    for (image, codec), row in table.iterrows():
        expected = 2 ** (TRUTH[codec] + offset)
        assert row["threshold_bpp"] == pytest.approx(expected, rel=0.5), (image, codec)
        assert row["answers"] == 30 * len(LADDER)
        assert row["censored"] == "", (image, codec)  # every truth lies inside the ladder
        assert row["ci_low_bpp"] < row["threshold_bpp"] < row["ci_high_bpp"], (image, codec)
    saved = analysis.flicker_savings.set_index("codec")
    assert saved.loc["webp", "reference"] == "jpeg"
    assert 0.2 < saved.loc["webp", "saving"] < 0.75  # truth: 0.5
    html = standalone_html(report_data(study, analysis))
    for title in ("Visually lossless thresholds", "Thresholds per image", "Bit-rate saving"):
        assert title in html
    assert "Rate–quality" not in html  # no curves for a threshold study


def test_quest_asks_near_each_ladders_threshold_and_stops_at_the_target() -> None:
    study = _flicker(sampling="adaptive", target_width=0.6, trials_per_session=4)
    rng = random.Random(5)
    # The binding's and the planner's own draws: a fixed run. Unseeded, about one run in
    # four asked a ladder's four rates almost evenly before its width reached the target.
    random.seed(5)
    rate_until_full(study, lambda trial: _observer(trial, rng), most=150)
    progress = adaptive.study_progress(study)
    assert progress.done and progress.unit == "log2 bpp"
    assert all(row.widest <= 0.6 for row in progress.images) and len(progress.images) == 4
    # the questions went mostly to the two rates around each codec's threshold
    asked = {}
    tests = study.items.filter(kind=Item.Kind.TEST).select_related("b__reconstruction", "tally")
    for item in tests:
        assert item.b is not None and item.b.reconstruction is not None
        codec = item.b.reconstruction.codec
        asked.setdefault(codec, {}).setdefault(item.b.target(), 0)
        asked[codec][item.b.target()] += item.tally.answers if hasattr(item, "tally") else 0
    for codec, by_rate in asked.items():
        threshold = 2 ** (TRUTH[codec] + float(pm.criterion_offset(0.5)))
        near = sorted(by_rate, key=lambda rate: abs(np.log2(rate / threshold)))[:2]
        assert sum(by_rate[r] for r in near) > 0.5 * sum(by_rate.values()), (codec, by_rate)
    assert Judgment.objects.filter(trial__session__study=study).count() == sum(
        ItemTally.objects.filter(item__study=study).values_list("answers", flat=True)
    )


def test_the_report_page_the_scores_and_the_bundle_of_a_flicker_study(admin_client: Client) -> None:
    study = _rated(6, seed=8)
    page = admin_client.get(reverse("evaluation:report", args=[study.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visually lossless thresholds" in html and "threshold_bpp" in html
    scores = admin_client.get(reverse("evaluation:export", args=[study.pk, "scores.csv"]))
    assert scores.status_code == 200
    table = pd.read_csv(io.BytesIO(scores.content))
    assert len(table) == 2 * 2 and {"threshold_bpp", "ci_low_bpp", "censored"} <= set(table.columns)
    bundle = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert bundle.status_code == 200
    content = b"".join(bundle.streaming_content) if bundle.streaming else bundle.content
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = set(archive.namelist())
        assert {"scores.csv", "flicker_savings.csv", "report.html"} <= names
        assert "sureal_dataset.json" not in names
