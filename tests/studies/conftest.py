"""The studies tests' one fixture; the helpers it uses live in studykit.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import studykit

from perceptlab.studies.models import Study

MakeStudy = Callable[..., Study]

#: What test_rater_views.py relies on besides studykit's defaults: an ACR study with
#: consent and instructions texts, completion and screen-out codes, and the usual 2
#: practice, 2 gold and 1 repeat trial per rater.
RATER_STUDY: dict[str, Any] = {
    "method": "acr",
    "title": "Image quality",
    "consent_text": "You agree to take part.\n\nYou may stop at any time.",
    "instructions_text": "Look closely.",
    "completion_code": "DONE123",
    "screenout_code": "OUT456",
    "practice_trials": 2,
    "gold_trials": 2,
    "repeat_trials": 1,
}


@pytest.fixture
def make_study(db: None) -> MakeStudy:
    """Factory fixture: ``make_study(method="2afc", scale="9", ...)`` → a built, LIVE Study.

    :data:`RATER_STUDY` over :func:`studykit.make_study`'s defaults; keyword arguments
    override either (``state=Study.State.DRAFT`` is applied after the build).
    """

    def make(**fields: Any) -> Study:
        return studykit.make_study(**{**RATER_STUDY, **fields})

    return make
