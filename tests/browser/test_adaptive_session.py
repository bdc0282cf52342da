"""Adaptive studies in Chromium: raters answer by keyboard as a Thurstone observer would, the
planner picks each next pair, and the study stops at its target width — the last raters'
sessions end early, a newcomer is told the study has its answers, the dashboard says so."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from raterbot import log_in_as_researcher, rate_until_full, turned_away
from scipy.special import ndtr
from studykit import make_study

from perceptlab.lib.thurstone import SIGMA
from perceptlab.studies import adaptive
from perceptlab.studies.models import Judgment, Session, Stimulus, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# method → study settings, the target (JOD or JND), the keys that pick the side shown as A
# or B (2AFC flips three times first; BTC triplets answer 1 or 2 while the sides flicker)
CASES: dict[str, tuple[dict[str, Any], float, dict[str, list[str]]]] = {
    "2afc": ({}, 0.6, {"a": ["Space", "Space", "Space", "a"], "b": ["Space"] * 3 + ["b"]}),
    "triplet": ({"triplet_mode": "btc"}, 1.0, {"a": ["1"], "b": ["2"]}),
}


def _quality(stimulus: Stimulus) -> float:
    """The simulated observers' scale: 2 units per doubling of the bit rate, the source 4."""
    r = stimulus.reconstruction
    return 4.0 if r is None else 2.0 * float(math.log2(r.achieved_bpp / 0.25))


@pytest.mark.parametrize("method", sorted(CASES))
def test_an_adaptive_study_runs_in_the_browser_until_its_target_width(
    browser: Any, page: Any, live_server: Any, method: str
) -> None:
    fields, target, keys = CASES[method]
    study = make_study(
        method,
        images=1,
        sampling="adaptive",
        target_width=target,
        judgments_per_item=200,
        trials_per_session=12,
        completion_code="THANKS-42",
        **fields,
    )
    rng = random.Random(11)
    pressed: dict[tuple[str, int], str] = {}

    def observer(rater: str) -> Any:
        def keys_for(position: int) -> list[str]:
            trial = Trial.objects.select_related(
                "item__a__reconstruction", "item__b__reconstruction"
            ).get(session__participant_id=rater, position=position)
            shown_a, shown_b = trial.shown_as()
            assert shown_b is not None
            a, b = _quality(shown_a), _quality(shown_b)
            if study.is_triplet:  # the side that differs more from the source
                a, b = 4.0 - a, 4.0 - b
            side = "a" if rng.random() < ndtr((a - b) / SIGMA) else "b"
            pressed[(rater, position)] = side
            return keys[side]

        return keys_for

    raters = rate_until_full(browser, live_server, study, observer, code="THANKS-42", most=30)

    progress = adaptive.study_progress(study)
    assert progress.done and all(image.widest <= target for image in progress.images)
    # every answer stored once, as pressed
    judgments = Judgment.objects.filter(trial__session__study=study).select_related(
        "trial__session"
    )
    stored = {(j.trial.session.participant_id, j.trial.position): j.choice for j in judgments}
    assert stored == pressed
    # the target ended it, not the slots: every pair still has free ones
    assert not study.items.filter(kind="test", assigned__gte=study.judgments_per_item).exists()

    # a rater arriving now is told the study has its answers, with no trial
    assert "already has all the answers" in turned_away(browser, live_server, study, "late-rater")
    assert not Trial.objects.filter(session__participant_id="late-rater").exists()

    log_in_as_researcher(page, live_server)
    page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/dashboard/")
    summary = page.inner_text("#adaptive-summary")
    assert "Every image reached the target" in summary
    unit = "JND" if method == "triplet" else "JOD"
    assert f"widest 95 % half-width ({unit})".lower() in page.inner_text("#adaptive").lower()
    assert Session.objects.filter(study=study, state=Session.State.COMPLETED).count() == raters
