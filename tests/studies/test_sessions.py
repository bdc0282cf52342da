"""The rater session's state machine (studies/sessions.py) and what it guarantees:
one transition per conditional UPDATE, slots given back on screen-out, nobody paid for
practice alone, and ACR-HR raters who rate every reference they need."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from studykit import answer_current, complete, make_study, rating_session

from perceptlab.evaluation.stats import mos
from perceptlab.studies import sessions
from perceptlab.studies.assignment import REFERENCE, upcoming
from perceptlab.studies.models import Item, Judgment, Session, Stimulus, Trial

pytestmark = pytest.mark.django_db

State = Session.State


def test_each_transition_applies_once_from_its_own_state() -> None:
    study = make_study("acr")
    session = Session.objects.create(study=study)
    assert sessions.agree(session=session) is True
    assert session.state == State.INSTRUCTIONS and session.consented is not None
    assert sessions.agree(session=session) is False  # a second tab's click changes nothing
    assert sessions.decline(session=session) is False
    assert session.state == State.INSTRUCTIONS
    assert sessions.start_rating(session=session, rng=random.Random(1)) is True
    schedule = list(session.schedule)
    assert sessions.start_rating(session=session) is False
    session.refresh_from_db()
    assert session.state == State.RATING and session.schedule == schedule


def test_a_declined_session_cannot_start_rating() -> None:
    session = Session.objects.create(study=make_study("acr"))
    assert sessions.decline(session=session) is True
    assert sessions.start_rating(session=session) is False
    assert session.state == State.DECLINED and not session.trials.exists()


def test_screening_out_gives_back_every_slot_answered_or_not() -> None:
    study = make_study("acr", judgments_per_item=1, trials_per_session=4)
    session = rating_session(study)
    answer_current(session)
    answer_current(session)
    upcoming(session=session)  # binds the next two: four slots held
    assert sum(study.items.values_list("assigned", flat=True)) == 4
    assert sessions.screen_out(session=session, reason="passed 0 of 2 gold trials") is True
    assert sum(study.items.values_list("assigned", flat=True)) == 0
    assert session.trials.count() == 2  # the answered ones stay, with their judgments
    assert not session.trials.filter(holds_slot=True).exists()
    assert Judgment.objects.filter(trial__session=session).count() == 2
    assert sessions.screen_out(session=session, reason="again") is False
    assert session.screened_reason == "passed 0 of 2 gold trials"


def test_a_screened_out_session_cannot_complete() -> None:
    study = make_study("acr")
    session = rating_session(study)
    answer_current(session)
    sessions.screen_out(session=session, reason="test")
    assert sessions.finish(session=session) is False
    assert session.state == State.SCREENED_OUT


def test_a_rater_arriving_at_a_full_study_is_screened_out_before_practice() -> None:
    study = make_study("acr", judgments_per_item=1, trials_per_session=8, practice_trials=2)
    complete(rating_session(study))
    late = Session.objects.create(study=study, state=State.INSTRUCTIONS)
    assert sessions.start_rating(session=late) is True
    assert late.state == State.SCREENED_OUT
    assert late.screened_reason == sessions.STUDY_FULL
    assert not late.trials.exists()  # not one practice trial


def test_practice_and_gold_alone_never_complete_a_session() -> None:
    study = make_study("2afc", judgments_per_item=1, trials_per_session=12, practice_trials=1)
    second = rating_session(study)  # admitted while every slot was free
    complete(rating_session(study))  # the first rater takes all 12 pairs' slots
    practised = complete(second)
    assert [trial.kind for trial in practised] == [Trial.Kind.PRACTICE]
    second.refresh_from_db()
    assert second.state == State.SCREENED_OUT  # no completion code for practice alone
    assert second.screened_reason == sessions.STUDY_FULL


def _acr_hr_study(**fields: object) -> object:
    values: dict[str, object] = {
        "hidden_reference": True,
        "images": 3,
        "trials_per_session": 4,
        "judgments_per_item": 3,
    }
    values.update(fields)
    return make_study("acr", **values)


def test_an_acr_hr_schedule_has_a_reference_position_per_image_the_rater_needs() -> None:
    study = _acr_hr_study()  # 3 images × 4 conditions; 4 tests → one image's worth
    session = rating_session(study)
    assert session.schedule.count(REFERENCE) == 1
    assert session.schedule.count("test") == 4


def test_every_acr_hr_rater_rates_the_hidden_reference_of_each_image_they_rate() -> None:
    study = _acr_hr_study(trials_per_session=6)
    raters = [rating_session(study, participant_id=f"r{i}") for i in range(6)]
    for index, session in enumerate(raters):
        answered = complete(session)
        assert answered, f"rater {index} answered nothing"
        rows = Trial.objects.filter(session=session, kind=Trial.Kind.TEST, judgment__isnull=False)
        roles = rows.values_list("item__a__study_image_id", "item__a__role")
        rated = {image for image, role in roles if role == Stimulus.Role.CONDITION}
        referenced = {image for image, role in roles if role == Stimulus.Role.HIDDEN}
        assert rated and rated <= referenced, (index, rated, referenced)
    hidden = study.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.HIDDEN)
    assert sum(hidden.values_list("assigned", flat=True)) == 0  # references take no slot
    conditions = study.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.CONDITION)
    assert max(conditions.values_list("assigned", flat=True)) <= 3


def test_acr_hr_dmos_keeps_every_raters_every_rating() -> None:
    """P.910 DMOS is a per-rater difference; today it rested on 1–2 raters of 3."""
    study = _acr_hr_study(trials_per_session=4, judgments_per_item=2)
    for index in range(6):
        complete(rating_session(study, participant_id=f"r{index}"))
    rows = Judgment.objects.filter(
        trial__session__study=study, trial__kind=Trial.Kind.TEST
    ).values_list("trial__session__participant_id", "trial__item__a_id", "score")
    ratings = pd.DataFrame(rows, columns=["rater", "stimulus", "score"]).astype({"stimulus": str})
    hidden = {s.study_image_id: str(s.pk) for s in study.stimuli.filter(role=Stimulus.Role.HIDDEN)}
    reference_of = {
        str(s.pk): hidden[s.study_image_id]
        for s in study.stimuli.filter(role=Stimulus.Role.CONDITION)
    }
    result = mos.dmos_acr_hr(ratings, reference_of=reference_of, scale_max=5, n_resamples=50)
    condition_ratings = ratings[ratings["stimulus"].isin(reference_of)]
    assert int(result.table["n"].sum()) == len(condition_ratings) > 0
