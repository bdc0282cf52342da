"""The judgments frame, read as plain values, holds exactly what the model instances it
replaced said, row for row, on ACR (with viewing conditions) and 2AFC (with choices and
undecided answers) studies."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from evalkit import rated_study

from perceptlab.evaluation import frames
from perceptlab.studies.models import Judgment, Session, Study

pytestmark = pytest.mark.django_db


def _reference_frame(study: Study) -> pd.DataFrame:
    """The ORM reading ``frames.judgments_frame`` replaced (select_related, one model
    instance per table and row)."""
    judgments = (
        Judgment.objects.filter(trial__session__study=study)
        .select_related(
            "trial__session",
            "trial__item__a__study_image__source",
            "trial__item__a__reconstruction",
            "trial__item__b__reconstruction",
            "trial__item__b__study_image__source",
            "chosen",
        )
        .order_by("created", "id")
    )
    rows = []
    for j in judgments:
        trial, session = j.trial, j.trial.session
        a, b = trial.item.a, trial.item.b
        outcome = None
        if b is not None:
            outcome = 0.5 if j.choice == "undecided" else float(j.chosen_id == a.pk)
        row: dict[str, Any] = {
            "judgment": str(j.key),
            "created": j.created.isoformat(),
            "rater": str(session.code),
            "platform": session.platform,
            "participant_id": session.participant_id,
            "session_state": session.state,
            "screened_reason": session.screened_reason,
            "position": trial.position,
            "trial_kind": trial.kind,
            "item_kind": trial.item.kind,
            "image": frames.image_label(a.study_image.source.name),
            "a": frames.stimulus_label(a),
            "b": frames.stimulus_label(b) if b is not None else "",
            "swapped": trial.swapped,
            "score": j.score,
            "choice": j.choice,
            "chosen": frames.stimulus_label(j.chosen) if j.chosen is not None else "",
            "outcome": outcome,
            "view_ms": j.view_ms,
            "server_ms": j.server_ms,
            "flips": j.flips,
            "flags": ";".join(j.flags),
            "gold_passed": j.gold_passed,
            "answered": j.answered.isoformat() if j.answered else "",
            "device_class": session.viewing.get("device_class", ""),
            **{name: j.viewing.get(name) for name in frames.VIEWING_COLUMNS},
        }
        for side, s in (("a", a), ("b", b)):
            r = s.reconstruction if s is not None else None
            row[f"codec_{side}"] = r.codec if r else ""
            row[f"target_bpp_{side}"] = s.target() if s is not None else None
            row[f"bpp_{side}"] = r.achieved_bpp if r else None
            row[f"bpp_source_{side}"] = r.bpp_source if r else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=frames.JUDGMENT_COLUMNS)


@pytest.mark.parametrize("method", ["acr", "2afc"])
def test_the_judgments_frame_equals_the_model_instances_reading(method: str) -> None:
    study = rated_study(method, images=2, raters=4, seed=5, allow_undecided=True)
    judgments = list(Judgment.objects.filter(trial__session__study=study).order_by("id"))
    judgments[0].viewing = {"dpr": 1.5, "window_width": 1280, "cut": True, "hidden_ms": 40}
    judgments[0].flags = ["too_fast", "pane_hidden"]
    judgments[0].save(update_fields=["viewing", "flags"])
    if method == "2afc":
        Judgment.objects.filter(pk=judgments[1].pk).update(choice="undecided", chosen=None)
    session = Session.objects.filter(study=study).first()
    assert session is not None
    session.viewing = {"device_class": "laptop"}
    session.save(update_fields=["viewing"])
    ours, theirs = frames.judgments_frame(study), _reference_frame(study)
    assert len(ours) == Judgment.objects.filter(trial__session__study=study).count() > 0
    pd.testing.assert_frame_equal(ours, theirs)
    assert "too_fast;pane_hidden" in set(ours["flags"])
    if method == "2afc":
        assert set(ours["outcome"]) == {0.0, 0.5, 1.0}
