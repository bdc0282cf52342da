"""A metric-guided ACR study in Chromium: raters score by keyboard, each next stimulus is the
one whose score is least certain from its ratings and the calibrated crop metrics, and the
study stops at its target width — a newcomer is told it has its answers, the dashboard says
so, and the report shows the calibration and what guidance saved."""

from __future__ import annotations

import random
from typing import Any

import pytest
from raterbot import log_in_as_researcher, rate_until_full, turned_away
from studykit import make_study, with_crop_metrics

from perceptlab.studies import guidance
from perceptlab.studies.models import Judgment, Session, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_metric_guided_acr_study_runs_in_the_browser_until_its_target_width(
    browser: Any, page: Any, live_server: Any
) -> None:
    guidance._metric_cache.clear()
    guidance._prediction_cache.clear()
    study = make_study(
        "acr",
        images=3,
        sampling="adaptive",
        target_width=0.6,
        judgments_per_item=30,
        trials_per_session=12,
        completion_code="RATED-7",
    )
    truth = with_crop_metrics(study, seed=21, fooled=[0])
    rng = random.Random(22)
    pressed: dict[tuple[str, int], float] = {}

    def scorer(rater: str) -> Any:
        def keys_for(position: int) -> list[str]:
            trial = Trial.objects.get(session__participant_id=rater, position=position)
            score = min(5, max(1, round(truth[trial.item_id] + rng.gauss(0, 0.8))))
            pressed[(rater, position)] = float(score)
            return [str(score)]

        return keys_for

    raters = rate_until_full(browser, live_server, study, scorer, code="RATED-7", most=25)

    states = guidance.estimates(study)
    assert len(states) == 12 and all(s.done and s.half_width <= 0.6 for s in states.values())
    # every score stored once, as pressed, and counted once in its stimulus's sums
    judgments = Judgment.objects.filter(trial__session__study=study).select_related(
        "trial__session"
    )
    stored = {(j.trial.session.participant_id, j.trial.position): j.score for j in judgments}
    assert stored == pressed
    assert sum(s.ratings for s in states.values()) == len(pressed)
    # the target ended it, not the slots
    assert not study.items.filter(kind="test", assigned__gte=study.judgments_per_item).exists()

    assert "already has all the answers" in turned_away(browser, live_server, study, "late-rater")

    log_in_as_researcher(page, live_server)
    page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/dashboard/")
    assert "Every image reached the target" in page.inner_text("#adaptive-summary")
    assert "widest 95 % half-width (mos)" in page.inner_text("#adaptive").lower()
    page.screenshot(path="/tmp/guided-dashboard.png", full_page=True)
    assert Session.objects.filter(study=study, state=Session.State.COMPLETED).count() == raters

    page.goto(f"{live_server.url}/reports/{study.pk}/", timeout=120_000)
    saved = page.locator("section", has_text="What metric guidance would have saved").first
    saved.wait_for(timeout=120_000)
    assert "stimuli measured in random order" in saved.inner_text()
    scored = page.locator("section", has_text="Metric-guided scores").first
    assert scored.locator("tbody tr").count() == 12  # every stimulus, with its three estimates
    assert "ratings alone" in scored.inner_text().lower()
    page.screenshot(path="/tmp/guided-report.png", full_page=True)
