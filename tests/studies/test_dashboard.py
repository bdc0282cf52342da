"""The dashboard's numbers, checked against the database they summarise."""

from __future__ import annotations

import statistics

import pytest
from django.db.models import QuerySet
from studykit import answer_current, make_study, rating_session

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.models import GenerationJob
from perceptlab.studies import dashboard
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.models import Item, Judgment, Method, Session, Study, Trial
from perceptlab.studies.stimuli import plan_generation

pytestmark = pytest.mark.django_db


def answer_until_done(session: Session, *, gold_score: float = 5.0) -> None:
    """Answer every trial: 4 on test trials, ``gold_score`` on gold ones."""
    while session.state == Session.State.RATING:
        current = upcoming(session=session).current
        if current is None:
            break
        score = gold_score if current.kind == Trial.Kind.GOLD else 4.0
        answer_current(session, score=score, view_ms=1500)
        session.refresh_from_db()


@pytest.fixture
def rated_study() -> Study:
    """An ACR study with one rater of each kind: completed, screened out, active, not
    started, declined, and a researcher's preview."""
    study = make_study(
        Method.ACR,
        practice_trials=0,
        gold_trials=1,
        repeat_trials=0,
        trials_per_session=4,
        judgments_per_item=2,
        min_view_seconds=1,
        gold_min_answered=1,
    )
    answer_until_done(rating_session(study, participant_id="done"))
    careless = rating_session(study, participant_id="careless")
    careless.schedule = sorted(careless.schedule, key=lambda kind: kind == "gold")
    careless.save(update_fields=["schedule"])  # test trials first, then the failed gold
    answer_until_done(careless, gold_score=1.0)
    active = rating_session(study, participant_id="busy")
    while upcoming(session=active).current.kind != Trial.Kind.TEST:  # type: ignore[union-attr]
        answer_current(active, score=4.0, view_ms=1500)
    answer_current(active, score=4.0, view_ms=500)  # under the 1 s minimum: too_fast
    Session.objects.create(study=study, participant_id="reading")
    Session.objects.create(study=study, participant_id="no", state=Session.State.DECLINED)
    preview = rating_session(study, platform=Session.Platform.PREVIEW)
    answer_current(preview, score=4.0, view_ms=1500)
    return study


def counted(study: Study) -> QuerySet[Judgment]:
    return Judgment.objects.filter(trial__session__study=study).exclude(
        trial__session__platform=Session.Platform.PREVIEW
    )


def test_raters_are_counted_by_state_and_previews_kept_apart(rated_study: Study) -> None:
    raters = dashboard.raters(study=rated_study)
    assert (raters.completed, raters.screened_out, raters.active) == (1, 1, 1)
    assert (raters.not_started, raters.declined, raters.previews) == (1, 1, 1)
    [screened] = raters.screened
    assert "careless" in screened.rater and "passed 0 of 1 gold trials" in screened.reason


def test_coverage_counts_test_judgments_per_item_without_previews(rated_study: Study) -> None:
    coverage = dashboard.coverage(study=rated_study)
    tests = counted(rated_study).filter(trial__kind=Trial.Kind.TEST)
    per_item = {
        item.pk: tests.filter(trial__item=item).count()
        for item in rated_study.items.filter(kind=Item.Kind.TEST)
    }
    assert {row.item_id: row.judgments for row in coverage.rows} == per_item
    assert coverage.judgments == tests.count() == sum(per_item.values())
    assert coverage.wanted == len(per_item) * 2
    screened = tests.filter(trial__session__state=Session.State.SCREENED_OUT).count()
    assert screened > 0
    assert sum(row.screened_judgments for row in coverage.rows) == screened
    valid = {
        item: tests.filter(trial__item=item)
        .exclude(trial__session__state=Session.State.SCREENED_OUT)
        .count()
        for item in per_item
    }
    assert {row.item_id: row.valid for row in coverage.rows} == valid
    assert coverage.valid == sum(valid.values()) == coverage.judgments - screened
    assert coverage.minimum == min(valid.values())
    assert coverage.maximum == max(valid.values()) <= 2
    assert coverage.median == statistics.median(valid.values())


def test_a_screened_out_raters_slots_go_back_so_items_reach_the_target_on_valid_judgments() -> None:
    study = make_study(
        Method.ACR,
        gold_trials=1,
        trials_per_session=8,
        judgments_per_item=1,
        gold_min_answered=1,
    )  # 8 test items, one valid judgment wanted each
    careless = rating_session(study, participant_id="careless")
    careless.schedule = sorted(careless.schedule, key=lambda kind: kind == "gold")
    careless.save(update_fields=["schedule"])  # all test trials, then the failed gold
    answer_until_done(careless, gold_score=1.0)
    careless.refresh_from_db()
    assert careless.state == Session.State.SCREENED_OUT
    given = Judgment.objects.filter(trial__session=careless, trial__kind=Trial.Kind.TEST)
    assert given.exists()  # kept, marked by the session's state
    assert not careless.trials.filter(holds_slot=True).exists()
    while (coverage := dashboard.coverage(study=study)).valid < coverage.wanted:
        rater = rating_session(study)
        assert rater.state == Session.State.RATING
        answer_until_done(rater)
    assert all(row.valid == 1 for row in coverage.rows)  # today: "8/8, 100 %" with gaps
    assigned = list(study.items.filter(kind=Item.Kind.TEST).values_list("assigned", flat=True))
    assert assigned == [1] * 8


def test_coverage_rows_name_each_items_codec_and_bitrates() -> None:
    study = make_study(Method.AFC2, practice_trials=0, gold_trials=0)
    rows = dashboard.coverage(study=study).rows
    assert rows and all(len(row.conditions) == 2 for row in rows)
    codecs = {cond.codec for row in rows for cond in row.conditions}
    assert codecs == {"jpeg", "webp"}
    for row in rows:
        for cond in row.conditions:
            assert cond.target_bpp in (0.5, 1.0) and cond.achieved_bpp is not None


def test_the_hidden_reference_is_listed_as_the_original() -> None:
    study = make_study(Method.ACR, hidden_reference=True)
    conditions = [row.conditions[0] for row in dashboard.coverage(study=study).rows]
    assert sum(c.codec == "original" for c in conditions) == 2
    assert all(c.achieved_bpp is None for c in conditions if c.codec == "original")


def test_timing_is_the_median_over_answered_non_practice_trials(rated_study: Study) -> None:
    timing = dashboard.timing(study=rated_study)
    rows = counted(rated_study).exclude(trial__kind=Trial.Kind.PRACTICE)
    assert timing.trials == rows.count()
    assert timing.median_server_ms == statistics.median(rows.values_list("server_ms", flat=True))
    assert timing.median_view_ms == 1500


def test_quality_control_counts_flags_and_the_gold_pass_rate(rated_study: Study) -> None:
    qc = dashboard.quality_control(study=rated_study)
    judgments = counted(rated_study)
    assert qc.flags["too_fast"] == 1  # the one answer given in 0.5 s
    assert qc.flags["gold_failed"] == 1
    assert qc.flags["too_few_flips"] == qc.flags["inconsistent_repeat"] == 0
    golds = judgments.filter(trial__kind=Trial.Kind.GOLD)
    assert (qc.gold_answered, qc.gold_passed) == (
        golds.count(),
        golds.filter(gold_passed=True).count(),
    )
    assert qc.gold_pass_rate == pytest.approx(qc.gold_passed / qc.gold_answered)


def test_generation_lists_jobs_by_state_and_failed_ones_with_their_error() -> None:
    study = make_study(Method.ACR, build=False)
    assert dashboard.generation(study=study).note == "stimuli not generated yet"
    jobs = plan_generation(study=study)
    run_job(jobs[0].pk)
    GenerationJob.objects.filter(pk=jobs[1].pk).update(
        state=GenerationJob.State.FAILED, error="jpeg: boom"
    )
    generation = dashboard.generation(study=study)
    assert generation.counts == {"pending": 6, "running": 0, "done": 1, "failed": 1}
    assert (generation.total, generation.finished) == (8, 2)
    [failed] = generation.failed
    assert failed.error == "jpeg: boom" and failed.codec == jobs[1].codec
    assert GenerationJob.objects.get(pk=jobs[1].pk).state == GenerationJob.State.FAILED


def test_an_empty_study_has_an_empty_dashboard() -> None:
    board = dashboard.study_dashboard(study=make_study(Method.ACR, build=False))
    assert board.coverage.items == board.coverage.judgments == 0
    assert board.coverage.median == 0.0
    assert board.timing.median_server_ms is None
    assert board.quality.gold_pass_rate is None
