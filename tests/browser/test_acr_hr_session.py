"""ACR with hidden reference, rated in Chromium: every rater who rates a processed image
also rates its hidden reference, so P.910 DMOS (a per-rater difference) rests on every
rater, and the database holds exactly the judgments given."""

from __future__ import annotations

from typing import Any

import pytest
from raterbot import enter, rate
from studykit import make_study

from perceptlab.evaluation.study_analysis import analyse_study, config_for
from perceptlab.studies.models import Judgment, Session, Stimulus, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_acr_hr_sessions_in_the_browser_give_a_dmos_on_every_rater(
    browser: Any, live_server: Any, settings: Any
) -> None:
    settings.EVALUATION_RESAMPLES = 50
    study = make_study(
        "acr",
        images=3,
        hidden_reference=True,
        trials_per_session=4,
        judgments_per_item=2,
        practice_trials=1,
        completion_code="HR-DONE",
    )
    keys = ["3", "4", "5"]
    for index, key in enumerate(keys):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        enter(page, live_server, study, f"?PROLIFIC_PID=rater-{index}")
        answered = rate(page, [key])
        page.wait_for_selector("[data-testid=completion-code]")
        session = Session.objects.get(study=study, participant_id=f"rater-{index}")
        stored = Judgment.objects.filter(trial__session=session)
        assert sorted(stored.values_list("trial__position", flat=True)) == sorted(answered)
        assert set(stored.values_list("score", flat=True)) == {float(key)}
        context.close()
    tests = Trial.objects.filter(session__study=study, kind=Trial.Kind.TEST, judgment__isnull=False)
    roles = list(tests.values_list("session_id", "item__a__study_image_id", "item__a__role"))
    for session in Session.objects.filter(study=study):
        rated = {image for s, image, role in roles if s == session.pk and role != "hidden"}
        referenced = {image for s, image, role in roles if s == session.pk and role == "hidden"}
        assert session.state == Session.State.COMPLETED
        assert rated and rated <= referenced
    _, analysis = analyse_study(study, config_for(study))
    dmos = analysis.scores[analysis.scores["measure"].str.contains("DMOS")]
    dmos = dmos[dmos["level"] == "stimulus"]
    conditions = tests.filter(item__a__role=Stimulus.Role.CONDITION).count()
    assert conditions > 0 and int(dmos["n"].sum()) == conditions  # no rating dropped
