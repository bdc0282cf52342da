"""The rater app's answer rules in headless Chromium: what a paper's reviewer asks of the
timing and the keys (one judgment per key press, a minimum viewing time, visible time as
view_ms, viewing conditions per trial, no answered trial shown again, a pause while a pane
is cut off) and the instructions page's live window-size check."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from raterbot import READY_OR_FEEDBACK, enter, position
from studykit import make_study

from perceptlab.studies.models import Judgment, Session, Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPEN = '[data-testid="rater"][data-status="ready"][data-answers="open"]'


def _study(method: str = "acr", **fields: Any) -> Study:
    values: dict[str, Any] = {"trials_per_session": 4, "consent_text": "You agree."}
    values.update(fields)
    return make_study(method, **values)


def _judgments(study: Study) -> Any:
    return Judgment.objects.filter(trial__session__study=study).order_by("trial__position")


def _sent(page: Any, study: Study) -> None:
    """Wait until the browser has no answer left to send."""
    code = Session.objects.get(study=study).code
    page.wait_for_function(f"() => localStorage.getItem('perceptlab.pending.{code}') === null")


def _wait_for_position(page: Any, wanted: int) -> None:
    page.wait_for_function(
        "p => document.querySelector('[data-testid=rater]').dataset.position === String(p)",
        arg=wanted,
    )


def _set_hidden(page: Any, hidden: bool) -> None:
    """Pretend the tab was hidden or shown again (a headless page is always visible)."""
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, 'visibilityState', {
                configurable: true, get: () => hidden ? 'hidden' : 'visible' });
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        hidden,
    )


def test_a_double_press_stores_one_judgment(page: Any, live_server: Any) -> None:
    study = _study(min_view_seconds=0.6)
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    page.keyboard.press("4")
    page.keyboard.press("4")  # a double press: the second lands on the next trial
    _wait_for_position(page, 1)
    page.wait_for_selector(OPEN)
    _sent(page, study)
    assert list(_judgments(study).values_list("trial__position", "score")) == [(0, 4.0)]


def test_a_key_held_or_bouncing_answers_only_once(page: Any, live_server: Any) -> None:
    study = _study(min_view_seconds=0)  # only the release rule stands in the way
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    page.keyboard.down("4")
    page.keyboard.down("4")  # auto-repeat (event.repeat)
    _wait_for_position(page, 1)
    page.wait_for_selector(OPEN)
    bounce = "new KeyboardEvent('keydown', {key: '4', code: 'Digit4', bubbles: true})"
    page.evaluate(f"document.dispatchEvent({bounce})")  # a second keydown, no repeat, no keyup
    page.wait_for_timeout(200)
    assert position(page) == 1
    page.keyboard.up("4")
    page.keyboard.press("2")  # pressed after the release: counts
    _wait_for_position(page, 2)
    _sent(page, study)
    assert list(_judgments(study).values_list("trial__position", "score")) == [(0, 4.0), (1, 2.0)]


def test_answers_open_after_the_minimum_view_time_and_flips(page: Any, live_server: Any) -> None:
    study = _study("2afc", min_view_seconds=2, min_flips=2)
    enter(page, live_server, study)
    countdown = page.get_by_test_id("countdown")
    first = countdown.inner_text()
    assert "Flip 2 more times" in first and "You can answer in" in first
    assert page.get_by_test_id("choose-a").is_disabled()
    assert page.get_by_test_id("choose-b").is_disabled()
    page.keyboard.press("a")  # too early: nothing happens
    page.get_by_test_id("choose-b").click(force=True)
    page.wait_for_timeout(300)
    assert countdown.inner_text() != first  # counts down live
    page.keyboard.press("Space")
    page.keyboard.press("Space")
    page.wait_for_selector(OPEN, timeout=5_000)
    assert countdown.is_hidden()
    assert page.get_by_test_id("choose-a").is_enabled()
    assert not _judgments(study).exists() and position(page) == 0
    page.keyboard.press("a")
    _wait_for_position(page, 1)
    _sent(page, study)
    judgment = _judgments(study).get()
    assert judgment.choice == "a" and judgment.flips == 2
    assert judgment.view_ms >= 2000
    assert "too_fast" not in judgment.flags and "too_few_flips" not in judgment.flags


def test_the_countdown_waits_for_flips_once_the_time_has_passed(
    page: Any, live_server: Any
) -> None:
    study = _study("2afc", min_view_seconds=0, min_flips=1)
    enter(page, live_server, study)
    assert page.get_by_test_id("countdown").inner_text() == "Flip 1 more time"
    page.keyboard.press("b")
    page.wait_for_timeout(200)
    assert position(page) == 0
    page.get_by_test_id("flip").click()
    page.wait_for_selector(OPEN)
    page.keyboard.press("b")
    _wait_for_position(page, 1)


def test_back_and_forward_never_show_an_answered_trial(page: Any, live_server: Any) -> None:
    study = _study()
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    page.keyboard.press("3")
    _wait_for_position(page, 1)
    _sent(page, study)
    page.go_back()
    page.wait_for_selector(READY_OR_FEEDBACK)
    assert position(page) == 1
    page.go_forward()
    page.wait_for_selector(READY_OR_FEEDBACK)
    assert position(page) == 1
    assert _judgments(study).count() == 1


def test_a_window_that_cuts_a_pane_off_pauses_the_trial(page: Any, live_server: Any) -> None:
    study = _study("dcr", dcr_layout="side_by_side", min_view_seconds=0.5)
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    page.set_viewport_size({"width": 100, "height": 800})  # two 64-pixel panes: cut off
    page.wait_for_selector('[data-testid="rater"][data-status="paused"]')
    message = page.get_by_test_id("paused-message")
    assert message.is_visible()
    assert "Your window is too small for the images" in message.inner_text()
    assert page.get_by_test_id("score-5").is_disabled()
    page.keyboard.press("5")
    page.wait_for_timeout(800)
    assert position(page) == 0 and not _judgments(study).exists()
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_selector(OPEN)
    assert message.is_hidden()
    page.keyboard.press("5")
    _wait_for_position(page, 1)
    _sent(page, study)
    judgment = _judgments(study).get()
    assert judgment.viewing["cut"] is True
    assert judgment.viewing["paused_ms"] >= 700
    assert judgment.viewing["resizes"] >= 1
    assert "pane_cut" in judgment.flags


def test_view_ms_is_the_visible_time_and_viewing_is_reported(page: Any, live_server: Any) -> None:
    study = _study(min_view_seconds=0.3)
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    page.keyboard.press("4")
    _wait_for_position(page, 1)
    page.wait_for_selector(OPEN)
    page.wait_for_timeout(300)
    _set_hidden(page, True)
    page.wait_for_timeout(600)
    _set_hidden(page, False)
    page.wait_for_timeout(200)
    page.keyboard.press("2")
    _wait_for_position(page, 2)
    _sent(page, study)
    marks = page.evaluate(
        """() => ({
            answers: performance.getEntriesByName('perceptlab:answer').map(m => m.startTime),
            drawn: performance.getEntriesByName('perceptlab:drawn').map(m => m.startTime),
        })"""
    )
    answered_first, answered_second = marks["answers"][:2]
    drawn_second = min(t for t in marks["drawn"] if t >= answered_first)
    assert drawn_second - answered_first < 20  # drawn in the same task: no blank frame
    second = _judgments(study).get(trial__position=1)
    viewing = second.viewing
    assert 550 <= viewing["hidden_ms"] <= 900
    visible = answered_second - drawn_second - viewing["hidden_ms"]
    assert abs(second.view_ms - visible) <= 50
    assert viewing["dpr"] == 1 and viewing["zoom"] > 0
    assert (viewing["window_width"], viewing["window_height"]) == (1280, 800)
    assert viewing["screen_width"] > 0 and viewing["screen_height"] > 0
    assert viewing["cut"] is False and viewing["paused_ms"] == 0
    assert {"focus_losses", "fullscreen_exits", "resizes"} <= set(viewing)
    assert "pane_hidden" in second.flags
    assert "pane_hidden" not in _judgments(study).get(trial__position=0).flags


def _to_instructions(page: Any, live_server: Any, study: Study) -> None:
    page.goto(live_server.url + reverse("studies:join", args=[study.invite]))
    page.get_by_test_id("agree").click()
    # the page's script has measured the window once it says whether it fits
    page.wait_for_selector("[data-testid=size-check][data-fits]", state="attached")


def test_the_size_check_blocks_a_small_window_until_it_is_enlarged(
    page: Any, live_server: Any
) -> None:
    study = _study("2afc")  # needs 144 × (64 + 160) device pixels
    page.set_viewport_size({"width": 130, "height": 600})
    _to_instructions(page, live_server, study)
    check = page.get_by_test_id("size-check")
    assert "14 device pixels in width" in check.inner_text()
    assert "Ctrl+0" in check.inner_text()
    assert page.get_by_test_id("start").is_disabled()
    assert page.get_by_test_id("give-up").is_visible()
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_selector("[data-testid=start]:enabled")
    assert page.get_by_test_id("give-up").is_hidden()
    assert "large enough" in check.inner_text()
    page.get_by_test_id("start").click()
    page.wait_for_selector(READY_OR_FEEDBACK)
    session = Session.objects.get(study=study)
    assert session.state == Session.State.RATING
    assert session.viewing["window"] == [1280, 800]
    assert session.viewing["screen"][0] > 0 and session.viewing["zoom"] > 0


def test_a_rater_who_cannot_enlarge_the_window_gives_up_and_is_screened_out(
    page: Any, live_server: Any
) -> None:
    study = _study("2afc")
    page.set_viewport_size({"width": 600, "height": 150})
    _to_instructions(page, live_server, study)
    assert "74 device pixels in height" in page.get_by_test_id("size-check").inner_text()
    page.get_by_test_id("give-up").click()
    page.wait_for_selector("[data-testid=screen-reason]")
    session = Session.objects.get(study=study)
    assert session.state == Session.State.SCREENED_OUT
    assert session.screened_reason.startswith("screen too small")


def test_the_slider_answers_after_practice_feedback_and_the_view_time(
    page: Any, live_server: Any
) -> None:
    study = _study(scale="continuous", practice_trials=1, min_view_seconds=0.5)
    enter(page, live_server, study)
    page.wait_for_selector(OPEN)
    assert page.get_by_test_id("practice-label").is_visible()
    assert page.get_by_test_id("submit-score").is_disabled()  # the slider was not moved
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.get_by_test_id("slider-value").inner_text() == "53"
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="rater"][data-status="feedback"]')
    page.keyboard.press("Enter")  # Continue
    _wait_for_position(page, 1)
    page.wait_for_selector(OPEN)
    assert page.get_by_test_id("slider-value").inner_text() == "50"
    page.get_by_test_id("slider").fill("20")
    page.get_by_test_id("submit-score").click()
    _wait_for_position(page, 2)
    _sent(page, study)
    assert list(_judgments(study).values_list("score", flat=True)) == [53.0, 20.0]
