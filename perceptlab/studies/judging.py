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
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone

from perceptlab.lib.prepared import columns
from perceptlab.studies import adaptive
from perceptlab.studies.assignment import Snapshot, current_position
from perceptlab.studies.models import Item, Judgment, Session, Study, Trial
from perceptlab.studies.sessions import screen_out, settle
from perceptlab.studies.viewing import trial_viewing, viewing_flags


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
    view_ms: int = 0  # visible time: decoded-and-shown → answer, paused while hidden
    age_ms: int = 0  # answered this long before the request (replays keep their time)
    viewing: dict[str, Any] = field(default_factory=dict)  # viewing.trial_viewing


@dataclass(frozen=True)
class Recorded:
    judgment: Judgment
    created: bool  # False: the same key was sent before (a replay)
    feedback: str  # practice trials on gold items: what the right answer was


def record(*, session: Session, answer: Answer, snapshot: Snapshot | None = None) -> Recorded:
    """Store ``answer`` for the session's trial at ``answer.position``.

    Raises JudgmentRejected when the session is not rating, the position is not the
    session's current trial, the trial was already answered with another key, or the
    key was used for another trial. ``snapshot`` (the session read once for this
    request) is brought up to date: the new judgment, and the trials bound after it.

    The judgment, its quality-control flags and the binding of the next trial (with its
    slot) commit in one transaction. A conflict with a concurrent request of the same
    session (a retry racing the original, two tabs) rolls it all back; the answer is
    then decided once more on a fresh read, as a replay or a conflict.
    """
    snap = snapshot if snapshot is not None else Snapshot.of(session)
    try:
        with transaction.atomic():
            return _record(snap, answer)
    except IntegrityError:
        snap.refresh()
        trial = _trial(snap, answer.position)
        existing = snap.judgment(trial)
        if existing is not None:
            return _replay(existing, answer)
        if Judgment.objects.filter(key=answer.key).exists():
            raise JudgmentRejected(
                "key_reused", "This answer's key was already used; reload the page."
            ) from None
        raise JudgmentRejected("expired", "This trial has expired; reload.") from None


def _record(snap: Snapshot, answer: Answer) -> Recorded:
    session = snap.session
    trial = _trial(snap, answer.position)
    existing = snap.judgment(trial)
    if existing is not None:
        return _replay(existing, answer)
    if session.state != Session.State.RATING:
        raise JudgmentRejected("not_rating", "This session is no longer taking answers.")
    if session.study.state == Study.State.CLOSED and not session.is_preview:
        raise JudgmentRejected("not_rating", "This study has closed.")
    if current_position(snap) != trial.position:
        raise JudgmentRejected("out_of_order", "This answer is not for the current image.")
    judgment = _build(snap, trial, answer)
    columns(Judgment, "j").insert(judgment, connection=connections[DEFAULT_DB_ALIAS])
    if adaptive.counts_answers(session.study, trial, preview=session.is_preview):
        adaptive.count_answer(trial=trial, judgment=judgment)
    snap.record(trial, judgment)
    _after(snap, trial)
    return Recorded(judgment, True, _feedback(session, trial, judgment))


def _trial(snap: Snapshot, position: int) -> Trial:
    trial = snap.trials.get(position)
    if trial is None:
        raise JudgmentRejected("unknown_trial", "This trial is not part of your session.")
    return trial


def _replay(existing: Judgment, answer: Answer) -> Recorded:
    if existing.key != answer.key:
        raise JudgmentRejected("conflict", "This image was already answered (another tab?).")
    return Recorded(existing, False, "")


def _build(snap: Snapshot, trial: Trial, answer: Answer) -> Judgment:
    study = snap.session.study
    shown_a, shown_b = trial.shown_as()
    chosen = None
    if study.is_pairwise:
        if answer.choice not in _CHOICES:
            raise JudgmentRejected("bad_choice", _choices(study))
        if answer.choice == Judgment.Choice.UNDECIDED and not study.offers_undecided:
            raise JudgmentRejected("bad_choice", _choices(study))
        if answer.choice != Judgment.Choice.UNDECIDED:
            chosen = shown_a if answer.choice == Judgment.Choice.A else shown_b
    else:
        low, high = study.scale_range()
        points = [value for value, _ in study.scale_points()]
        if answer.score is None or not (low <= answer.score <= high):
            raise JudgmentRejected("bad_score", f"Scores run from {low:g} to {high:g}.")
        if points and answer.score not in points:
            raise JudgmentRejected("bad_score", "Pick one of the categories.")
    answered = timezone.now() - timedelta(milliseconds=answer.age_ms)
    sent = trial.shown or trial.assigned
    server_ms = max(0, int((answered - sent).total_seconds() * 1000))
    judgment = Judgment(
        trial=trial,
        key=answer.key,
        score=answer.score if not study.is_pairwise else None,
        choice=answer.choice if study.is_pairwise else "",
        chosen=chosen,
        flips=answer.flips,
        view_ms=answer.view_ms,
        server_ms=server_ms,
        viewing=trial_viewing(answer.viewing),
        answered=answered,
    )
    judgment.flags = _flags(snap, trial, judgment)
    if trial.item.kind in (Item.Kind.GOLD, Item.Kind.PRACTICE):
        judgment.gold_passed = gold_passed(trial=trial, judgment=judgment)
        if judgment.gold_passed is False and trial.kind != Trial.Kind.PRACTICE:
            judgment.flags.append("gold_failed")
    return judgment


def _choices(study: Study) -> str:
    """The answers a pairwise study takes, in the words of its page."""
    if study.is_flicker:
        return "Pick the side that flickers: left or right."
    if study.is_triplet:
        unsure = ", or 'not sure'" if study.allow_undecided else ""
        return f"Pick the left or the right side{unsure}."
    return "Pick A, B or 'cannot decide'." if study.allow_undecided else "Please pick A or B."


# Django's Choices.values makes a new list on every access.
_CHOICES = frozenset(Judgment.Choice.values)
CLOCK_SLACK_MS = 1000  # network and timer jitter between the two clocks


def _flags(snap: Snapshot, trial: Trial, judgment: Judgment) -> list[str]:
    """Quality-control flags of one judgment (see the module docstring)."""
    study = snap.session.study
    study_min_ms = int(study.min_view_seconds * 1000)
    flags = []
    if study_min_ms and min(judgment.view_ms, judgment.server_ms) < study_min_ms:
        flags.append("too_fast")
    if judgment.view_ms > judgment.server_ms + CLOCK_SLACK_MS:
        flags.append("clock_mismatch")
    if judgment.flips < study.required_flips():
        flags.append("too_few_flips")
    flags.extend(viewing_flags(judgment.viewing))
    if trial.kind == Trial.Kind.REPEAT and _inconsistent(snap, trial, judgment):
        flags.append("inconsistent_repeat")
    return flags


def gold_passed(*, trial: Trial, judgment: Judgment) -> bool | None:
    """2AFC: picked the expected stimulus; ACR/DCR: scored in the top 40 % of the scale
    (the original), or in the bottom 40 % for a heavily degraded practice image; None
    for an item with no right answer (a mid-rate practice image)."""
    study = trial.session.study
    expected = trial.item.expected
    if study.is_pairwise:
        stimulus = trial.item.a if expected != Item.Expect.B else trial.item.b
        return judgment.chosen is not None and judgment.chosen.pk == stimulus.pk  # type: ignore[union-attr]
    if judgment.score is None:
        return False
    if expected == Item.Expect.LOW:
        return judgment.score <= study.degraded_expectation()
    if expected == Item.Expect.NONE and trial.item.kind == Item.Kind.PRACTICE:
        return None
    return judgment.score >= study.gold_expectation()


def _inconsistent(snap: Snapshot, trial: Trial, judgment: Judgment) -> bool:
    firsts = [
        snap.judgment(t)
        for t in snap.of_kind(Trial.Kind.TEST)
        if t.item_id == trial.item_id and snap.judgment(t) is not None
    ]
    first = firsts[0] if firsts else None
    if first is None:
        return False
    study = snap.session.study
    if study.is_pairwise:
        return first.chosen_id != (judgment.chosen.pk if judgment.chosen else None)
    low, high = study.scale_range()
    points = len(study.scale_points()) or 5
    category = (high - low) / max(points - 1, 1)
    assert first.score is not None and judgment.score is not None
    return abs(first.score - judgment.score) > category + 1e-9


def _after(snap: Snapshot, trial: Trial) -> None:
    """Screen out on gold failures; complete the session after its last trial."""
    if trial.kind == Trial.Kind.GOLD and _fails_gold(snap):
        screen_out(session=snap.session, reason=_gold_summary(snap))
        return
    settle(session=snap.session, snapshot=snap)


def _gold_counts(snap: Snapshot) -> tuple[int, int]:
    golds = [snap.judgment(t) for t in snap.of_kind(Trial.Kind.GOLD)]
    answered = [j for j in golds if j is not None]
    return sum(1 for j in answered if j.gold_passed), len(answered)


def _fails_gold(snap: Snapshot) -> bool:
    passed, total = _gold_counts(snap)
    study = snap.session.study
    return total >= max(study.gold_min_answered, 1) and passed < study.gold_pass_fraction * total


def _gold_summary(snap: Snapshot) -> str:
    passed, total = _gold_counts(snap)
    needed = snap.session.study.gold_pass_fraction
    return f"passed {passed} of {total} gold trials (needs {needed:.0%})"


def _feedback(session: Session, trial: Trial, judgment: Judgment) -> str:
    """Practice feedback that teaches the scale: what the image was and where on the
    scale it belongs, naming the scale's own words."""
    item = trial.item
    if trial.kind != Trial.Kind.PRACTICE or item.kind == Item.Kind.TEST:
        return ""
    study = session.study
    verdict = {True: "Right", False: "Not quite", None: "Thank you"}[judgment.gold_passed]
    if study.is_pairwise:
        expected = item.a if item.expected != Item.Expect.B else item.b
        shown_a, _ = trial.shown_as()
        if study.is_triplet:
            side = "left" if expected == shown_a else "right"
            other = "right" if side == "left" else "left"
            return (
                f"{verdict}: the {side} side was heavily compressed and differs more from the "
                f"original; the {other} side was the original itself."
            )
        label = "A" if expected == shown_a else "B"
        return f"{verdict}: {label} was identical to the original."
    low, high = study.scale_range()
    top, bottom = study.label_of(high), study.label_of(low)
    if item.expected == Item.Expect.LOW:
        return (
            f"{verdict}: this image was heavily degraded, about the worst you will see; "
            f"it belongs near the bottom of the scale (“{bottom}”)."
        )
    if item.expected == Item.Expect.NONE:
        return (
            f"{verdict}. This was a typical test image: there is no right answer, rate "
            f"what you see between “{bottom}” and “{top}”."
        )
    return f"{verdict}: this image was the original itself; it deserves “{top}”."
