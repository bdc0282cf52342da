"""Raters complete real sessions in headless Chromium, by keyboard, and the database holds
exactly the judgments they gave."""

from __future__ import annotations

from typing import Any

import pytest
from raterbot import READY_OR_FEEDBACK, enter, position, rate
from studykit import make_study

from perceptlab.studies.models import Judgment, Session, Study, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _study(method: str, **fields: Any) -> Study:
    values: dict[str, Any] = {
        "trials_per_session": 4,
        "practice_trials": 1,
        "gold_trials": 1,
        "repeat_trials": 1,
        "judgments_per_item": 3,
        "completion_code": "C0MPLETE",
        "consent_text": "You agree to take part.",
    }
    values.update(fields)
    return make_study(method, **values)


def _session(study: Study) -> Session:
    return Session.objects.get(study=study)


def test_a_rater_completes_an_acr_session_by_keyboard(page: Any, live_server: Any) -> None:
    study = _study("acr")
    enter(page, live_server, study, "?PROLIFIC_PID=p-123&STUDY_ID=s-1&SESSION_ID=x-9")
    answered = rate(page, ["4"])
    page.wait_for_selector("[data-testid=completion-code]")
    assert page.get_by_test_id("completion-code").inner_text().strip() == "C0MPLETE"
    session = _session(study)
    assert session.state == Session.State.COMPLETED
    assert session.participant_id == "p-123" and session.platform == "prolific"
    assert session.external["STUDY_ID"] == "s-1"
    judgments = Judgment.objects.filter(trial__session=session).order_by("trial__position")
    assert [j.trial.position for j in judgments] == answered == list(range(len(session.schedule)))
    assert {j.score for j in judgments} == {4.0}
    kinds = set(Trial.objects.filter(session=session).values_list("kind", flat=True))
    assert kinds == {"practice", "test", "gold", "repeat"}


def test_a_rater_completes_a_2afc_session_flipping_by_keyboard(page: Any, live_server: Any) -> None:
    study = _study("2afc", min_flips=2)
    enter(page, live_server, study)
    page.wait_for_selector("[data-testid=flip-hint]")
    answered = rate(page, ["Space", "Space", "b"])
    page.wait_for_selector("[data-testid=completion-code]")
    session = _session(study)
    judgments = list(Judgment.objects.filter(trial__session=session).select_related("trial"))
    assert sorted(j.trial.position for j in judgments) == sorted(answered)
    assert len(judgments) == len(session.schedule)
    for judgment in judgments:
        assert judgment.choice == "b" and judgment.flips == 2
        assert "too_few_flips" not in judgment.flags
        _, shown_b = judgment.trial.shown_as()
        assert judgment.chosen == shown_b


def test_a_reload_mid_session_resumes_at_the_next_unanswered_trial(
    page: Any, live_server: Any
) -> None:
    study = _study("2afc", trials_per_session=5)
    enter(page, live_server, study)
    first = rate(page, ["Space", "a"], limit=3)
    page.wait_for_selector(READY_OR_FEEDBACK)
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=progress]').dataset.answered) >= n",
        arg=3,
    )
    page.reload()
    page.wait_for_selector(READY_OR_FEEDBACK)
    session = _session(study)
    stored = set(
        Judgment.objects.filter(trial__session=session).values_list("trial__position", flat=True)
    )
    assert stored == set(first)
    if page.get_by_test_id("rater").get_attribute("data-status") == "ready":
        assert position(page) == max(first) + 1
    rest = rate(page, ["Space", "a"])
    page.wait_for_selector("[data-testid=completion-code]")
    positions = list(
        Judgment.objects.filter(trial__session=session).values_list("trial__position", flat=True)
    )
    assert sorted(positions) == sorted(first + rest) == list(range(len(session.schedule)))


def test_an_answer_given_offline_is_stored_once_the_connection_returns(
    page: Any, live_server: Any
) -> None:
    study = _study("acr", practice_trials=0, gold_trials=0, repeat_trials=0, trials_per_session=3)
    enter(page, live_server, study)
    session = _session(study)
    pending = f"localStorage.getItem('perceptlab.pending.{session.code}')"
    page.context.set_offline(True)
    rate(page, ["2"], limit=1)
    page.wait_for_selector("[data-testid=notice]:not([hidden])")  # "Reconnecting…"
    assert "2" in page.evaluate(pending)  # kept in the browser until acknowledged
    assert not Judgment.objects.filter(trial__session=session).exists()
    page.context.set_offline(False)
    page.wait_for_function(f"() => {pending} === null", timeout=30_000)
    scores = Judgment.objects.filter(trial__session=session).values_list("score", flat=True)
    assert list(scores) == [2.0]
    rate(page, ["5"])
    page.wait_for_selector("[data-testid=completion-code]")
    assert Judgment.objects.filter(trial__session=session).count() == 3
