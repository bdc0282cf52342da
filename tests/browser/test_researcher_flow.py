"""The whole loop in Chromium: a researcher creates, generates, launches and monitors a study
from the admin alone; a rater completes it by keyboard; every judgment is stored once."""

from __future__ import annotations

from typing import Any

import pytest
from raterbot import enter, log_in_as_researcher, operate, rate
from studykit import synthetic_set

from perceptlab.studies.models import Judgment, Session, Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _create_study(page: Any, live_server: Any, image_set: str, method: str) -> Study:
    page.goto(f"{live_server.url}/admin/studies/study/add/")
    page.fill("#id_name", "sharpness")
    page.fill("#id_title", "Which looks more like the original?")
    page.select_option("#id_method", method)
    if method == "triplet":
        page.select_option("#id_triplet_mode", "btc")
        page.fill("#id_boost_alpha", "2")
    page.select_option("#id_image_set", label=image_set)
    page.check("input[name=codecs][value=jpeg]")
    page.check("input[name=codecs][value=webp]")
    page.fill("#id_target_bpps", "0.5, 1")
    page.fill("#id_crop_width", "64")
    page.fill("#id_crop_height", "64")
    page.fill("#id_trials_per_session", "4")
    page.fill("#id_practice_trials", "1")
    page.fill("#id_gold_trials", "1")
    page.fill("#id_repeat_trials", "0")
    page.fill("#id_gold_params", '{"quality": 5}')
    page.fill("#id_completion_code", "THANKS-42")
    page.click("input[name=_continue]")
    page.wait_for_selector("#study-operations")
    return Study.objects.get(name="sharpness")


# method → (the rater's keys per trial, test items of 2 images × jpeg and webp at 2 targets):
# 2AFC flips three times and picks A, all 6 pairs of 4 conditions; a BTC triplet answers
# "right differs more" while the sides flicker, 3 + 3 same-codec pairs with the source, 2
# cross-codec pairs and 1 bias triplet.
FLOWS = {"2afc": (["Space", "Space", "Space", "a"], 6), "triplet": (["2"], 9)}


@pytest.mark.parametrize("method", sorted(FLOWS))
def test_a_researcher_runs_a_study_from_the_admin_and_a_rater_completes_it(
    browser: Any, page: Any, live_server: Any, method: str
) -> None:
    keys, per_image = FLOWS[method]
    image_set = synthetic_set(2, name="lab-photos")
    log_in_as_researcher(page, live_server)
    study = _create_study(page, live_server, image_set.name, method)
    operate(page, "Generate stimuli")  # jobs run inline under the test settings
    operate(page, "Launch")
    study.refresh_from_db()
    assert study.state == Study.State.LIVE
    assert study.items.filter(kind="test").count() == 2 * per_image
    page.wait_for_selector(f"text={study.invite}")  # the invitation link is shown

    rater = browser.new_context(viewport={"width": 1280, "height": 800})
    rater_page = rater.new_page()
    rater_page.set_default_timeout(15_000)
    enter(rater_page, live_server, study, "?PROLIFIC_PID=rater-7")
    answered = rate(rater_page, keys)
    rater_page.wait_for_selector("[data-testid=completion-code]")
    assert rater_page.get_by_test_id("completion-code").inner_text().strip() == "THANKS-42"
    rater.close()

    session = Session.objects.get(study=study, participant_id="rater-7")
    judgments = Judgment.objects.filter(trial__session=session)
    assert sorted(judgments.values_list("trial__position", flat=True)) == sorted(answered)
    assert judgments.count() == len(session.schedule) == 1 + 4 + 1
    if method == "triplet":  # every answer names the right side, as pressed
        for judgment in judgments.select_related("trial__item__a", "trial__item__b"):
            assert judgment.choice == "b" and judgment.chosen == judgment.trial.shown_as()[1]

    page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/dashboard/")
    assert page.inner_text("#raters-completed").strip() == "1"
    assert page.inner_text("#raters-active").strip() == "0"
