"""Metric-guided ACR and DCR studies: the ratings' sums kept with each answer, each stimulus's
estimate from its ratings and the calibrated metrics, the next stimulus where that estimate
is widest, the stop at the target width, the dashboard, and raters racing."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from studykit import (
    answer_current,
    make_study,
    race,
    rate_until_full,
    rating_session,
    with_crop_metrics,
)

from perceptlab.evaluation.models import StimulusMetric
from perceptlab.evaluation.reports import standalone_html
from perceptlab.evaluation.study_analysis import analyse_study, config_for, report_data
from perceptlab.lib import calibration
from perceptlab.studies import guidance, sessions
from perceptlab.studies.adaptive import item_counts
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.dashboard import study_dashboard
from perceptlab.studies.models import Item, ItemTally, Judgment, Session, Study, Trial
from perceptlab.studies.planners import Guided, SingleStimulus, planner_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    """Each test's metrics are read afresh (the per-process cache is keyed by study id,
    which a new test database may reuse)."""
    guidance._metric_cache.clear()
    guidance._prediction_cache.clear()


def _guided(images: int = 3, **fields: object) -> Study:
    fields.setdefault("judgments_per_item", 40)
    fields.setdefault("trials_per_session", 6)
    fields.setdefault("target_bpps", [0.5, 1.0, 2.0])
    return make_study("acr", images=images, sampling="adaptive", **fields)


def _tests(study: Study) -> list[Item]:
    return list(study.items.filter(kind=Item.Kind.TEST).select_related("a").order_by("pk"))


def _rater(truth: dict[int, float], rng: random.Random) -> Callable[[Trial], float]:
    """A rater whose ACR score is the true MOS plus N(0, 0.8), rounded onto 1–5."""
    return lambda trial: float(min(5, max(1, round(truth[trial.item_id] + rng.gauss(0, 0.8)))))


def test_adaptive_acr_and_dcr_are_metric_guided() -> None:
    study = make_study("acr", build=False, sampling="adaptive")
    study.full_clean()  # valid: metric guidance
    assert study.is_guided and isinstance(planner_for(study), Guided)
    dcr = make_study("dcr", build=False, sampling="adaptive")
    assert dcr.is_guided and isinstance(planner_for(dcr), Guided)
    balanced = make_study("acr", build=False)
    assert not balanced.is_guided and type(planner_for(balanced)) is SingleStimulus


def test_each_rating_adds_its_score_and_square_to_its_stimulus() -> None:
    study = _guided(images=1)
    session = rating_session(study)
    seen: dict[int, list[float]] = {}
    for score in (4.0, 2.0, 5.0):
        trial = upcoming(session=session).current
        assert trial is not None
        answer_current(session, score=score)
        seen.setdefault(trial.item_id, []).append(score)
    for item_id, scores in seen.items():
        tally = ItemTally.objects.get(item_id=item_id)
        assert (tally.answers, tally.score_sum, tally.score_squares) == (
            len(scores),
            sum(scores),
            sum(s * s for s in scores),
        )
    # a balanced study and a researcher's preview keep no sums
    balanced = make_study("acr", images=1)
    answer_current(rating_session(balanced), score=3.0)
    preview = rating_session(study, platform=Session.Platform.PREVIEW)
    answer_current(preview, score=1.0)
    assert not ItemTally.objects.filter(item__study=balanced).exists()
    assert ItemTally.objects.filter(item__study=study).count() == len(seen)


def test_a_stimulus_estimate_combines_its_ratings_with_the_calibrated_metrics() -> None:
    """The estimate is the normal posterior of a metric prior N(m, v) and n ratings of
    variance σ² (σ² pooled over the stimuli): checked against the formula, with m and v
    from lib.calibration on the same means and noise."""
    study = _guided(images=2, target_width=0.3)
    truth = with_crop_metrics(study, seed=1)
    items = _tests(study)
    rng = np.random.default_rng(2)
    ratings = {}
    for item in items:
        scores = np.clip(np.round(truth[item.pk] + rng.normal(0, 0.8, 4)), 1, 5)
        ratings[item.pk] = scores
        ItemTally.objects.create(
            item=item,
            answers=len(scores),
            score_sum=float(scores.sum()),
            score_squares=float((scores**2).sum()),
        )
        Item.objects.filter(pk=item.pk).update(assigned=len(scores))
    states = guidance.estimates(study)
    assert set(states) == {item.pk for item in items}
    within = sum(((s - s.mean()) ** 2).sum() for s in ratings.values())
    sigma2 = within / sum(len(s) - 1 for s in ratings.values())
    means = np.array([ratings[item.pk].mean() for item in items])
    metrics = np.array(
        [
            [
                StimulusMetric.objects.get(stimulus=item.a, metric=name).value
                for name in ("psnr", "ssim")
            ]
            for item in items
        ]
    )
    m, v = calibration.predict(
        metrics, np.ones(len(items), bool), means, np.full(len(items), sigma2 / 4)
    )
    for k, item in enumerate(items):
        state = states[item.pk]
        precision = 1 / v[k] + 4 / sigma2
        assert state.ratings == 4 and state.mean == pytest.approx(means[k])
        assert state.predicted == pytest.approx(m[k]) and state.predicted_var == pytest.approx(v[k])
        assert state.score == pytest.approx((m[k] / v[k] + 4 * means[k] / sigma2) / precision)
        assert state.half_width == pytest.approx(1.959964 / math.sqrt(precision))
        assert state.done == (state.half_width <= 0.3)
        if not state.done:  # the ratings projected to reach the target, from the same formula
            wanted = math.ceil(((1.959964 / 0.3) ** 2 - 1 / v[k]) * sigma2)
            assert state.needed == max(min(wanted, 40), 3) - 4
    # metrics that agree with the raters narrow the estimate below the ratings' own
    assert all(s.half_width < 1.96 * math.sqrt(sigma2 / 4) for s in states.values())


def _tally(item: Item, n: int, mean: float) -> None:
    """n ratings of ``item`` with this mean and a within-stimulus variance of 0.64."""
    ItemTally.objects.update_or_create(
        item=item,
        defaults={
            "answers": n,
            "score_sum": n * mean,
            "score_squares": n * mean**2 + (n - 1) * 0.64,
        },
    )
    Item.objects.filter(pk=item.pk).update(assigned=n)


def test_the_next_rating_goes_to_the_least_certain_stimulus() -> None:
    study = _guided(images=2, target_width=0.2)
    truth = with_crop_metrics(study, seed=3, fooled=[7])
    items = _tests(study)
    # none rated: every stimulus is under its minimum, all offered
    ranked = guidance.rank(study=study, candidates=items, rng=random.Random(1), explore=0.0)
    assert len(ranked) == len(items)
    # all rated 5 times but one rated once: it leads (under the minimum); each mean is off
    # its true MOS by the noise of 5 ratings (sd 0.8 / √5)
    noise = np.random.default_rng(4).normal(0, 0.8 / math.sqrt(5), len(items))
    means = {item.pk: truth[item.pk] + noise[k] for k, item in enumerate(items)}
    for item in items:
        _tally(item, 1 if item == items[3] else 5, means[item.pk])
    ranked = guidance.rank(study=study, candidates=items, rng=random.Random(2), explore=0.0)
    assert ranked[0] == items[3]
    # everyone at 5: the widest estimate leads, the stimulus whose metrics disagree there
    _tally(items[3], 5, means[items[3].pk])
    states = guidance.estimates(study)
    widest = max(states.values(), key=lambda s: s.half_width)
    assert widest.item == items[7].pk
    assert widest.predicted_var > 1.5 * np.median([s.predicted_var for s in states.values()])
    ranked = guidance.rank(study=study, candidates=items, rng=random.Random(3), explore=0.0)
    assert ranked[0] == items[7]
    # a stimulus at its cap or at its target is not offered, exploring or not
    _tally(items[0], 40, means[items[0].pk])
    states = guidance.estimates(study)
    assert states[items[0].pk].done and states[items[0].pk].ratings == 40
    for explore in (0.0, 1.0):
        ranked = guidance.rank(study=study, candidates=items, rng=random.Random(4), explore=explore)
        assert {item.pk for item in ranked} == {pk for pk, s in states.items() if not s.done}
    # a metric prior never claims to know a score better than a twentieth of the scale
    flat = {item.pk: 3.0 for item in items}
    for item in items:
        _tally(item, 5, flat[item.pk])
    guidance._prediction_cache.clear()
    assert min(s.predicted_var for s in guidance.estimates(study).values()) >= (4 / 40) ** 2


def test_a_guided_study_stops_at_its_target_with_fewer_ratings_where_metrics_agree(
    admin_client: Client,
) -> None:
    """Simulated raters (true MOS + N(0, 0.8), rounded) rate until the study is at its target
    width: every stimulus's half-width is within it, the stimuli whose metrics disagree got
    more ratings than those whose metrics agree, and the study used fewer ratings than the
    ratings alone would need for the same width. Newcomers are turned away "at target";
    the dashboard shows the widths."""
    random.seed(7)  # the assignment's tie-breaking
    study = _guided(images=6, target_width=0.45, judgments_per_item=40, trials_per_session=12)
    truth = with_crop_metrics(study, seed=5, fooled=[0, 1, 2])
    raters = rate_until_full(study, _rater(truth, random.Random(6)), most=120)
    assert sessions.full_reason(study=study) == sessions.STUDY_AT_TARGET
    states = guidance.estimates(study)
    assert len(states) == 36 and all(s.done and s.half_width <= 0.45 for s in states.values())
    items = _tests(study)
    fooled = [states[item.pk].ratings for item in items[:3]]
    agreeing = [states[item.pk].ratings for item in items[3:]]
    assert np.mean(fooled) > np.mean(agreeing), (fooled, agreeing)
    # …because their metrics disagree: the prediction is least certain there
    agreeing_var = np.median([states[item.pk].predicted_var for item in items[3:]])
    assert all(states[item.pk].predicted_var > agreeing_var for item in items[:3])
    # the ratings alone would need n ≥ (1.96 σ / target)² each
    counts = item_counts(study)
    rows = list(counts.values())
    sigma2 = calibration.pooled_variance(
        np.array([c.answers for c in rows]),
        np.array([c.score_sum for c in rows]),
        np.array([c.score_squares for c in rows]),
        span=4.0,
    )
    alone = math.ceil((1.959964 / 0.45) ** 2 * sigma2)
    total = sum(s.ratings for s in states.values())
    assert total < 0.9 * alone * len(states), (total, alone)  # 0.27–0.77 in nine runs
    # every rating stored once and counted once
    assert Judgment.objects.filter(trial__session__study=study).count() == total
    # the estimates are close to the truth, and their intervals honest
    error = [abs(s.score - truth[s.item]) for s in states.values()]
    covered = np.mean([abs(s.score - truth[s.item]) <= s.half_width for s in states.values()])
    assert np.mean(error) < 0.3 and covered >= 0.85  # 0.94–1.0 of the 95 % intervals in six runs
    # a newcomer is turned away; the dashboard says the study is at its target
    late = rating_session(study)
    assert late.state == Session.State.SCREENED_OUT
    progress = study_dashboard(study=study).adaptive
    assert progress is not None and progress.done and progress.unit == "MOS"
    assert sum(row.answered for row in progress.images) == total
    page = admin_client.get(reverse("admin:studies_study_dashboard", args=[study.pk]))
    assert "Every image reached the target" in page.content.decode()
    assert raters > 1
    # the report scores each stimulus as the planner did (on the same ratings: none excluded)
    guidance._prediction_cache.clear()
    fresh = guidance.estimates(study)
    _, analysis = analyse_study(study, config_for(study))
    table = analysis.guided_scores.set_index("stimulus")
    assert len(table) == 36 and (table["ratings"].sum()) == total
    by_ratings = sorted(
        (s.ratings, round(s.score, 9), round(s.half_width, 9)) for s in fresh.values()
    )
    reported = sorted(
        (int(r), round(float(v), 9), round(float(h), 9))
        for r, v, h in zip(table["ratings"], table["score"], table["half_width"], strict=True)
    )
    assert reported == by_ratings
    html = standalone_html(report_data(study, analysis))
    assert "Metric-guided scores" in html and "ratings alone" in html


@pytest.mark.django_db(transaction=True)
def test_raters_racing_on_a_guided_study_keep_its_sums_exact() -> None:
    """Eight raters at once (threads, each its own connection; PostgreSQL with
    DATABASE_URL): every rating is in its stimulus's sums once."""
    study = _guided(images=2, trials_per_session=5)
    race(study, raters=8, trials_each=5)
    for item in _tests(study):
        scores = [
            j.score for j in Judgment.objects.filter(trial__item=item, trial__kind=Trial.Kind.TEST)
        ]
        tally = ItemTally.objects.filter(item=item).first()
        if not scores:
            assert tally is None
            continue
        assert tally is not None
        assert (tally.answers, tally.score_sum) == (len(scores), pytest.approx(sum(scores)))
