from __future__ import annotations

import uuid

import pytest
from studykit import answer_current, complete, make_study, rating_session

from perceptlab.studies.assignment import upcoming
from perceptlab.studies.judging import Answer, JudgmentRejected, record
from perceptlab.studies.models import Item, Judgment, Session, Stimulus, Trial

pytestmark = pytest.mark.django_db


def _answer(session: Session, **fields: object) -> Answer:
    trial = upcoming(session=session).current
    assert trial is not None
    values: dict = {"position": trial.position, "key": uuid.uuid4(), "flips": 3, "view_ms": 5000}
    values.update(fields)
    return Answer(**values)


def test_a_score_outside_the_scale_is_refused_and_nothing_is_stored() -> None:
    session = rating_session(make_study("acr"))
    for bad in (0.0, 6.0, 2.5, None):
        with pytest.raises(JudgmentRejected) as refused:
            record(session=session, answer=_answer(session, score=bad))
        assert refused.value.code == "bad_score"
    assert not Judgment.objects.exists()


def test_the_continuous_scale_takes_any_value_from_0_to_100() -> None:
    session = rating_session(make_study("acr", scale="continuous"))
    recorded = record(session=session, answer=_answer(session, score=37.25))
    assert recorded.judgment.score == 37.25
    with pytest.raises(JudgmentRejected, match="0 to 100"):
        record(session=session, answer=_answer(session, score=100.5))


def test_the_eleven_point_scale_runs_from_0_to_10() -> None:
    session = rating_session(make_study("dcr", scale="11"))
    assert record(session=session, answer=_answer(session, score=0.0)).judgment.score == 0.0


def test_a_2afc_choice_is_resolved_to_the_stimulus_that_was_shown() -> None:
    session = rating_session(make_study("2afc"))
    for _ in range(6):
        trial = upcoming(session=session).current
        assert trial is not None
        _, shown_b = trial.shown_as()
        judgment = record(session=session, answer=_answer(session, choice="b")).judgment
        assert judgment.chosen == shown_b
        expected = trial.item.a if trial.swapped else trial.item.b
        assert judgment.chosen == expected
    swaps = set(Trial.objects.filter(session=session).values_list("swapped", flat=True))
    assert swaps <= {True, False}


def test_cannot_decide_is_stored_as_such_and_only_when_the_study_allows_it() -> None:
    session = rating_session(make_study("2afc"))
    judgment = record(session=session, answer=_answer(session, choice="undecided")).judgment
    assert judgment.choice == "undecided" and judgment.chosen is None
    strict = rating_session(make_study("2afc", allow_undecided=False))
    with pytest.raises(JudgmentRejected, match="pick A or B"):
        record(session=strict, answer=_answer(strict, choice="undecided"))
    with pytest.raises(JudgmentRejected):
        record(session=strict, answer=_answer(strict, choice="left"))


def test_the_same_key_sent_twice_stores_one_judgment() -> None:
    session = rating_session(make_study("acr"))
    answer = _answer(session, score=4.0)
    first = record(session=session, answer=answer)
    again = record(session=session, answer=answer)
    assert first.created and not again.created
    assert again.judgment.pk == first.judgment.pk
    assert Judgment.objects.count() == 1


def test_a_second_answer_to_an_answered_trial_is_a_conflict() -> None:
    session = rating_session(make_study("acr"))
    answer = _answer(session, score=4.0)
    record(session=session, answer=answer)
    with pytest.raises(JudgmentRejected) as refused:
        record(session=session, answer=Answer(answer.position, uuid.uuid4(), score=1.0))
    assert refused.value.code == "conflict"
    assert list(Judgment.objects.values_list("score", flat=True)) == [4.0]


def test_only_the_current_trial_can_be_answered() -> None:
    session = rating_session(make_study("acr"))
    coming = upcoming(session=session)
    assert coming.next is not None
    with pytest.raises(JudgmentRejected) as refused:
        record(session=session, answer=Answer(coming.next.position, uuid.uuid4(), score=3.0))
    assert refused.value.code == "out_of_order"
    with pytest.raises(JudgmentRejected) as unknown:
        record(session=session, answer=Answer(999, uuid.uuid4(), score=3.0))
    assert unknown.value.code == "unknown_trial"


def test_one_session_cannot_answer_another_sessions_trial() -> None:
    study = make_study("acr")
    mine, theirs = rating_session(study), rating_session(study)
    their_trial = upcoming(session=theirs).current
    assert their_trial is not None
    complete(mine)
    with pytest.raises(JudgmentRejected):
        record(session=mine, answer=Answer(their_trial.position, uuid.uuid4(), score=3.0))
    assert not Judgment.objects.filter(trial=their_trial).exists()


def test_fast_trials_and_too_few_flips_are_flagged_not_refused() -> None:
    session = rating_session(make_study("2afc", min_view_seconds=3.0, min_flips=3))
    judgment = answer_current(session, view_ms=800, flips=1)
    assert judgment is not None
    assert judgment.judgment.flags == ["too_fast", "too_few_flips"]
    careful = answer_current(session, view_ms=4000, flips=3, sent_ms_ago=0)
    assert careful is not None
    # The server clock also counts: answered within milliseconds of being sent, so the
    # browser's 4 s cannot be true either.
    assert careful.judgment.flags == ["too_fast", "clock_mismatch"]


def _to_gold(session: Session) -> Trial:
    while True:
        trial = upcoming(session=session).current
        assert trial is not None
        if trial.kind == Trial.Kind.GOLD:
            return trial
        answer_current(session)


def test_a_rater_failing_the_gold_trials_is_screened_out_and_their_data_kept() -> None:
    study = make_study("acr", gold_trials=2, gold_min_answered=2, trials_per_session=4)
    session = rating_session(study)
    for _ in range(2):
        _to_gold(session)
        recorded = answer_current(session, score=1.0)  # "Bad" for the original itself
        assert recorded is not None and recorded.judgment.gold_passed is False
        assert "gold_failed" in recorded.judgment.flags
    session.refresh_from_db()
    assert session.state == Session.State.SCREENED_OUT
    assert session.screened_reason == "passed 0 of 2 gold trials (needs 75%)"
    assert Judgment.objects.filter(trial__session=session).count() >= 2
    assert not session.trials.filter(holds_slot=True, judgment__isnull=True).exists()
    with pytest.raises(JudgmentRejected) as refused:
        record(session=session, answer=Answer(99, uuid.uuid4(), score=3.0))
    assert refused.value.code in {"unknown_trial", "not_rating"}


def test_one_gold_failure_below_the_minimum_count_does_not_screen_out() -> None:
    study = make_study("acr", gold_trials=2, gold_min_answered=2, trials_per_session=4)
    session = rating_session(study)
    _to_gold(session)
    answer_current(session, score=1.0)
    session.refresh_from_db()
    assert session.state == Session.State.RATING


def test_a_2afc_gold_passes_when_the_original_is_picked() -> None:
    study = make_study("2afc", gold_trials=2, trials_per_session=3, gold_min_answered=1)
    session = rating_session(study)
    trial = _to_gold(session)
    original = trial.item.a
    assert original.role == Stimulus.Role.HIDDEN
    shown_a, _ = trial.shown_as()
    recorded = answer_current(session, choice="a" if shown_a == original else "b")
    assert recorded is not None and recorded.judgment.gold_passed is True
    assert recorded.judgment.flags == []


def test_practice_on_a_gold_item_gives_feedback_and_does_not_count_as_gold() -> None:
    study = make_study("2afc", practice_trials=1, gold_trials=1)
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None and trial.kind == Trial.Kind.PRACTICE
    assert trial.item.kind == Item.Kind.GOLD
    shown_a, _ = trial.shown_as()
    wrong = "b" if shown_a == trial.item.a else "a"
    recorded = answer_current(session, choice=wrong)
    assert recorded is not None
    assert (
        recorded.feedback
        == f"Not quite: {'A' if wrong == 'b' else 'B'} was identical to the original."
    )
    assert "gold_failed" not in recorded.judgment.flags
    session.refresh_from_db()
    assert session.state == Session.State.RATING


def test_a_repeat_answered_differently_is_flagged_inconsistent() -> None:
    study = make_study("acr", trials_per_session=3, repeat_trials=1)
    session = rating_session(study)
    scores: dict[int, float] = {}
    flags: list[str] = []
    while (trial := upcoming(session=session).current) is not None:
        if trial.kind == Trial.Kind.REPEAT:
            recorded = answer_current(session, score=5.0 - 3 * (scores[trial.item_id] == 5.0))
        else:
            recorded = answer_current(session, score=5.0)
            scores[trial.item_id] = 5.0
        assert recorded is not None
        flags += recorded.judgment.flags
    assert flags == ["inconsistent_repeat"]


def test_the_last_answer_completes_the_session() -> None:
    study = make_study("dcr", trials_per_session=3, practice_trials=1, gold_trials=1)
    session = rating_session(study)
    answered = complete(session)
    assert [t.kind for t in answered].count("test") == 3
    assert session.state == Session.State.COMPLETED and session.finished is not None
    assert Judgment.objects.filter(trial__session=session).count() == len(session.schedule)


def test_a_replayed_answer_keeps_the_time_it_was_given() -> None:
    """An answer sent 30 s late (offline) is timed from when the rater gave it."""
    session = rating_session(make_study("acr"))
    recorded = answer_current(session, view_ms=4000, sent_ms_ago=34_100, age_ms=30_000)
    assert recorded is not None
    judgment = recorded.judgment
    assert 4000 <= judgment.server_ms < 4000 + 1000  # not 34 s
    assert judgment.flags == []
    assert judgment.answered is not None and judgment.answered < judgment.created


def test_the_server_keeps_the_viewing_report_and_flags_a_hidden_or_cut_pane() -> None:
    session = rating_session(make_study("acr"))
    report = {"dpr": 1.5, "window_width": 1280, "hidden_ms": 2500, "cut": True, "evil": "x"}
    recorded = answer_current(session, viewing=report)
    assert recorded is not None
    judgment = Judgment.objects.get(pk=recorded.judgment.pk)
    assert judgment.viewing == {"dpr": 1.5, "window_width": 1280, "hidden_ms": 2500, "cut": True}
    assert judgment.flags == ["pane_hidden", "pane_cut"]


def test_sequential_dcr_needs_its_flips_too() -> None:
    study = make_study("dcr", dcr_layout="sequential", min_flips=2)
    session = rating_session(study)
    lazy = answer_current(session, flips=0)
    assert lazy is not None and lazy.judgment.flags == ["too_few_flips"]
    unseen = rating_session(make_study("dcr", dcr_layout="sequential", min_flips=0))
    blind = answer_current(unseen, flips=0)  # answered without ever seeing the test image
    assert blind is not None and blind.judgment.flags == ["too_few_flips"]
    seen = answer_current(unseen, flips=1)
    assert seen is not None and seen.judgment.flags == []
    side = rating_session(make_study("dcr", min_flips=2))  # side by side: nothing to flip
    calm = answer_current(side, flips=0)
    assert calm is not None and calm.judgment.flags == []


@pytest.mark.parametrize(("scale", "top"), [("9", "9 (near “Excellent”)"), ("11", "10")])
def test_practice_feedback_on_unlabelled_scales_names_a_real_label(scale: str, top: str) -> None:
    study = make_study("acr", scale=scale, practice_trials=1, gold_trials=0)
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None and trial.kind == Trial.Kind.PRACTICE
    recorded = answer_current(session)
    assert recorded is not None
    assert "“”" not in recorded.feedback
    assert "Excellent" in recorded.feedback, recorded.feedback
    assert study.label_of(study.scale_range()[1]).startswith(top.split(" ")[0])


def test_a_gold_item_seen_in_practice_is_never_a_scored_gold() -> None:
    study = make_study("2afc", practice_trials=2, gold_trials=2, images=3)  # 3 gold items
    for _ in range(3):
        session = rating_session(study)
        complete(session)
        practised = set(
            session.trials.filter(kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True)
        )
        golds = set(session.trials.filter(kind=Trial.Kind.GOLD).values_list("item_id", flat=True))
        assert len(practised) == 2 and len(golds) == 1  # the one gold item left
        assert not practised & golds
