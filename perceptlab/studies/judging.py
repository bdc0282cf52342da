"""Recording judgments: idempotent, one per trial, with quality control on the way in.

The browser sends each answer the moment it is given, with a random idempotency key. The
same key sent again (a retry after a lost connection, a double click) returns the stored
judgment; a different key for an answered trial (the same session open on two devices)
is refused as a conflict; either way the browser moves on to the session's true state.

Quality control (flags, never deletions):

* ``too_fast``: less than ``Study.min_view_seconds`` on the trial (the shorter of the
  browser's and the server's clocks, so neither a slow network nor a tampered client
  hides it); CLIC's 2AFC used at least 3 s.
* ``too_few_flips``: 2AFC with fewer than ``Study.min_flips`` flips (CLIC: 3).
* ``gold_failed``: a gold trial answered wrongly. A rater who, after
  ``Study.gold_min_answered`` gold trials, has passed fewer than
  ``Study.gold_pass_fraction`` of them is screened out; their data stay, marked.
* ``inconsistent_repeat``: a consistency repeat answered differently (2AFC: the other
  stimulus; ACR/DCR: more than one category away).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from perceptlab.studies.assignment import release_unanswered, settle, upcoming
from perceptlab.studies.models import Item, Judgment, Method, Session, Study, Trial


class JudgmentRejected(Exception):
    """An answer that cannot be stored; ``code`` is stable, ``message`` is for the rater."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    position: int
    key: uuid.UUID
    score: float | None = None
    choice: str = ""
    flips: int = 0
    view_ms: int = 0


@dataclass(frozen=True)
class Recorded:
    judgment: Judgment
    created: bool  # False: the same key was sent before (a replay)
    feedback: str  # practice trials on gold items: what the right answer was


def record(*, session: Session, answer: Answer) -> Recorded:
    """Store ``answer`` for the session's trial at ``answer.position``.

    Raises JudgmentRejected when the session is not rating, the position is not the
    session's current trial, or the trial was already answered with another key.
    """
    trial = _trial(session, answer.position)
    existing = Judgment.objects.filter(trial=trial).first()
    if existing is not None:
        return _replay(existing, answer)
    if session.state != Session.State.RATING:
        raise JudgmentRejected("not_rating", "This session is no longer taking answers.")
    if session.study.state == Study.State.CLOSED and not session.is_preview:
        raise JudgmentRejected("not_rating", "This study has closed.")
    current = upcoming(session=session).current
    if current is None or current.pk != trial.pk:
        raise JudgmentRejected("out_of_order", "This answer is not for the current image.")
    judgment = _build(session, trial, answer)
    try:
        with transaction.atomic():
            judgment.save()
    except IntegrityError:
        existing = Judgment.objects.filter(Q(trial=trial) | Q(key=answer.key)).first()
        if existing is None:
            raise JudgmentRejected("expired", "This trial has expired; reload.") from None
        return _replay(existing, answer)
    _after(session, trial, judgment)
    return Recorded(judgment, True, _feedback(session, trial, judgment))


def _trial(session: Session, position: int) -> Trial:
    trial = (
        Trial.objects.select_related("item__a", "item__b", "session__study")
        .filter(session=session, position=position)
        .first()
    )
    if trial is None:
        raise JudgmentRejected("unknown_trial", "This trial is not part of your session.")
    return trial


def _replay(existing: Judgment, answer: Answer) -> Recorded:
    if existing.key != answer.key:
        raise JudgmentRejected("conflict", "This image was already answered (another tab?).")
    return Recorded(existing, False, "")


def _build(session: Session, trial: Trial, answer: Answer) -> Judgment:
    study = session.study
    shown_a, shown_b = trial.shown_as()
    chosen = None
    if study.is_pairwise:
        if answer.choice not in Judgment.Choice.values:
            raise JudgmentRejected("bad_choice", "Pick A, B or 'cannot decide'.")
        if answer.choice == Judgment.Choice.UNDECIDED and not study.allow_undecided:
            raise JudgmentRejected("bad_choice", "Please pick A or B.")
        if answer.choice != Judgment.Choice.UNDECIDED:
            chosen = shown_a if answer.choice == Judgment.Choice.A else shown_b
    else:
        low, high = study.scale_range()
        points = [value for value, _ in study.scale_points()]
        if answer.score is None or not (low <= answer.score <= high):
            raise JudgmentRejected("bad_score", f"Scores run from {low:g} to {high:g}.")
        if points and answer.score not in points:
            raise JudgmentRejected("bad_score", "Pick one of the categories.")
    served = trial.shown or trial.assigned
    server_ms = max(0, int((timezone.now() - served).total_seconds() * 1000))
    judgment = Judgment(
        trial=trial,
        key=answer.key,
        score=answer.score if not study.is_pairwise else None,
        choice=answer.choice if study.is_pairwise else "",
        chosen=chosen,
        flips=answer.flips,
        view_ms=answer.view_ms,
        server_ms=server_ms,
    )
    judgment.flags = _flags(trial=trial, judgment=judgment)
    if trial.item.kind == Item.Kind.GOLD:
        judgment.gold_passed = gold_passed(trial=trial, judgment=judgment)
        if not judgment.gold_passed and trial.kind != Trial.Kind.PRACTICE:
            judgment.flags.append("gold_failed")
    return judgment


def _flags(*, trial: Trial, judgment: Judgment) -> list[str]:
    study = trial.session.study
    study_min_ms = int(study.min_view_seconds * 1000)
    flags = []
    if study_min_ms and min(judgment.view_ms, judgment.server_ms) < study_min_ms:
        flags.append("too_fast")
    if study.is_pairwise and judgment.flips < study.min_flips:
        flags.append("too_few_flips")
    if trial.kind == Trial.Kind.REPEAT and _inconsistent(trial, judgment):
        flags.append("inconsistent_repeat")
    return flags


def gold_passed(*, trial: Trial, judgment: Judgment) -> bool:
    """2AFC: picked the expected stimulus; ACR/DCR: scored in the top 40 % of the scale."""
    study = trial.session.study
    if study.is_pairwise:
        expected = trial.item.a if trial.item.expected != "b" else trial.item.b
        return judgment.chosen is not None and judgment.chosen.pk == expected.pk  # type: ignore[union-attr]
    return judgment.score is not None and judgment.score >= study.gold_expectation()


def _inconsistent(trial: Trial, judgment: Judgment) -> bool:
    first = (
        Judgment.objects.filter(
            trial__session=trial.session, trial__item=trial.item, trial__kind=Trial.Kind.TEST
        )
        .select_related("chosen")
        .first()
    )
    if first is None:
        return False
    if trial.session.study.is_pairwise:
        return first.chosen_id != judgment.chosen.pk if judgment.chosen else bool(first.chosen_id)
    low, high = trial.session.study.scale_range()
    points = len(trial.session.study.scale_points()) or 5
    category = (high - low) / max(points - 1, 1)
    assert first.score is not None and judgment.score is not None
    return abs(first.score - judgment.score) > category + 1e-9


def _after(session: Session, trial: Trial, judgment: Judgment) -> None:
    """Screen out on gold failures; complete the session after its last trial."""
    now = timezone.now()
    Session.objects.filter(pk=session.pk).update(last_seen=now)
    if trial.kind == Trial.Kind.GOLD and _fails_gold(session):
        screen_out(session=session, reason=_gold_summary(session))
        return
    settle(session=session)


def _gold_counts(session: Session) -> tuple[int, int]:
    golds = Judgment.objects.filter(trial__session=session, trial__kind=Trial.Kind.GOLD)
    total = golds.count()
    return golds.filter(gold_passed=True).count(), total


def _fails_gold(session: Session) -> bool:
    passed, total = _gold_counts(session)
    study = session.study
    return total >= max(study.gold_min_answered, 1) and passed < study.gold_pass_fraction * total


def _gold_summary(session: Session) -> str:
    passed, total = _gold_counts(session)
    return f"passed {passed} of {total} gold trials (needs {session.study.gold_pass_fraction:.0%})"


def screen_out(*, session: Session, reason: str) -> None:
    """Stop the session with the screen-out code; its judgments stay, marked by state."""
    Session.objects.filter(pk=session.pk).update(
        state=Session.State.SCREENED_OUT, screened_reason=reason[:300], finished=timezone.now()
    )
    session.refresh_from_db()
    release_unanswered(session=session)


def _feedback(session: Session, trial: Trial, judgment: Judgment) -> str:
    if trial.kind != Trial.Kind.PRACTICE or trial.item.kind != Item.Kind.GOLD:
        return ""
    study = session.study
    if study.method == Method.AFC2:
        expected = trial.item.a if trial.item.expected != "b" else trial.item.b
        shown_a, _ = trial.shown_as()
        label = "A" if expected == shown_a else "B"
        verdict = "Right" if judgment.gold_passed else "Not quite"
        return f"{verdict}: {label} was identical to the original."
    best = study.scale_points()[-1][1] if study.scale_points() else f"{study.scale_range()[1]:g}"
    verdict = "Right" if judgment.gold_passed else "Not quite"
    return f"{verdict}: this image was the original itself; it deserves “{best}”."
