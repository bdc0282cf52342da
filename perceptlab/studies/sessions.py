"""A rater session's life, the one home of its state machine.

    consent ──agree──▶ instructions ──start_rating──▶ rating ──finish──▶ completed
       │                    │                           │
       └─decline─▶ declined └──────screen_out───────────┴──▶ screened_out

Each transition is one conditional UPDATE on the state it starts from (as
``lifecycle.py`` does for studies), checked by its row count: two tabs pressing "Start"
at once start the session once, and an answer racing a screen-out cannot complete a
screened-out session. A transition that no longer applies returns False and leaves the
row as the winner left it; ``session`` is refreshed either way.

Screening out gives back every slot the session held, answered or not: its judgments
stay (marked by the session's state and reason) but no longer count towards an item's
``Study.judgments_per_item``, so balance is reached on valid judgments.
"""

from __future__ import annotations

import random
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from perceptlab.studies import adaptive, guidance
from perceptlab.studies.assignment import (
    Snapshot,
    make_schedule,
    release_stale,
    release_unanswered,
    upcoming,
)
from perceptlab.studies.models import Item, Session, Study, Trial

State = Session.State

STUDY_FULL = "study full: every item already has its judgments"
STUDY_AT_TARGET = "study full: every image reached the target width"  # adaptive sampling
REASON_CHARS = 300


def _move(session: Session, sources: tuple[str, ...], target: str, **fields: Any) -> bool:
    moved = Session.objects.filter(pk=session.pk, state__in=sources).update(state=target, **fields)
    session.refresh_from_db()
    return moved == 1


def agree(*, session: Session) -> bool:
    return _move(session, (State.CONSENT,), State.INSTRUCTIONS, consented=timezone.now())


def decline(*, session: Session) -> bool:
    return _move(session, (State.CONSENT,), State.DECLINED, finished=timezone.now())


def screen_out(*, session: Session, reason: str, **fields: Any) -> bool:
    """End the session with the screen-out code and give back all its slots."""
    moved = _move(
        session,
        (State.CONSENT, State.INSTRUCTIONS, State.RATING),
        State.SCREENED_OUT,
        screened_reason=reason[:REASON_CHARS],
        finished=timezone.now(),
        **fields,
    )
    if moved:
        release_all(session=session)
    return moved


def start_rating(*, session: Session, rng: random.Random | None = None) -> bool:
    """Fix the schedule and start rating; a rater who arrives when no test item has a
    free slot is screened out ("study full") here, before any practice trial, so nobody
    is paid a completion code for practice and gold trials only."""
    if session.state != State.INSTRUCTIONS:
        return False
    study = session.study
    full = "" if session.is_preview else full_reason(study=study)
    if full:
        return screen_out(session=session, reason=full)
    schedule = make_schedule(study=study, rng=rng)
    return _move(
        session, (State.INSTRUCTIONS,), State.RATING, schedule=schedule, started=timezone.now()
    )


def has_room(*, study: Study) -> bool:
    """True when some test item has a free slot (after giving back stale ones) and, in an
    adaptive study, some image has not reached the target width."""
    return not full_reason(study=study)


def at_target(study: Study) -> bool:
    """An adaptive study whose every image (pairs), ladder (flicker) or stimulus (metric-
    guided ACR/DCR) has reached the target width."""
    return guidance.stopped(study) if study.is_guided else adaptive.stopped(study)


def full_reason(*, study: Study) -> str:
    """Why a newcomer gets no test trial ("" when there is room): every image of an adaptive
    study at its target width, or no test item with a free slot (after giving back stale
    ones)."""
    if study.is_adaptive and at_target(study):
        return STUDY_AT_TARGET
    open_items = study.items.filter(kind=Item.Kind.TEST, assigned__lt=study.judgments_per_item)
    if open_items.exists() or (release_stale(study=study) > 0 and open_items.exists()):
        return ""
    return STUDY_FULL


def finish(*, session: Session, snapshot: Snapshot | None = None) -> bool:
    """End a rating session whose schedule has nothing left to answer.

    A rater who answered at least one test trial is done (completed); one who ran out of
    test items before answering any is screened out as "study full" (practice and gold
    trials alone are not a completed session).
    """
    if snapshot is not None:
        answered_test = any(t.kind == Trial.Kind.TEST for t in snapshot.answered())
    else:
        answered_test = session.trials.filter(kind=Trial.Kind.TEST, judgment__isnull=False).exists()
    if not answered_test and not session.is_preview:
        return screen_out(session=session, reason=STUDY_FULL)
    return _move(session, (State.RATING,), State.COMPLETED, finished=timezone.now())


def release_all(*, session: Session) -> int:
    """Give back every slot the session holds: unanswered trials are removed, answered
    ones stay (their judgments are kept) but stop counting towards the item's target."""
    released = release_unanswered(session=session)
    answered = list(
        session.trials.filter(holds_slot=True, judgment__isnull=False).values_list("pk", "item_id")
    )
    for trial_id, item_id in answered:
        with transaction.atomic():  # the slot flag and the item's count move together
            if Trial.objects.filter(pk=trial_id, holds_slot=True).update(holds_slot=False):
                Item.objects.filter(pk=item_id, assigned__gt=0).update(assigned=F("assigned") - 1)
                released += 1
    return released


def settle(*, session: Session, snapshot: Snapshot | None = None) -> bool:
    """End a rating session that has nothing left to answer; True if it ended."""
    if session.state != State.RATING:
        return False
    if upcoming(session=session, snapshot=snapshot).current is not None:
        return False
    finish(session=session, snapshot=snapshot)
    return True
