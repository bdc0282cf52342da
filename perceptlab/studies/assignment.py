"""Balanced assignment of items to rater sessions.

A session's **schedule** (its trial kinds in order: practice first, then test, gold and
repeat trials shuffled) is fixed when rating starts; the item of each position is bound
only when the rater is about to reach it (the current trial and the next, which the
browser preloads). Binding late keeps the balance tight — every rater takes the
least-served items at the moment they need one — and lets an adaptive planner choose
from the judgments given so far.

A test trial holds one of its item's ``Study.judgments_per_item`` slots. A slot is taken
with one conditional UPDATE (``assigned < target``), which PostgreSQL re-checks after
the row lock and SQLite runs serialised, so concurrent raters can never push an item
past its target; a unique constraint keeps one item from reaching a session twice.
Slots of sessions idle for ``Study.session_timeout_minutes`` are given back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from perceptlab.studies.models import Item, Session, Study, Trial
from perceptlab.studies.planners import planner_for

LOOKAHEAD = 2  # the trial on screen and the next one, which the browser preloads
SKIP = "skip"  # a schedule position left empty because no item was available


def make_schedule(*, study: Study, rng: random.Random | None = None) -> list[str]:
    """Practice trials, then test, gold and repeat trials in random order.

    Counts are capped by what the study holds (no rater sees an item twice); a repeat is
    never placed before the test trial it can repeat.
    """
    rng = rng or random.Random()
    tests = min(study.trials_per_session, study.items.filter(kind=Item.Kind.TEST).count())
    golds = min(study.gold_trials, study.items.filter(kind=Item.Kind.GOLD).count())
    repeats = min(study.repeat_trials, max(tests - 1, 0))
    practice = study.practice_trials if study.items.exists() else 0
    main = [Trial.Kind.TEST] * tests + [Trial.Kind.GOLD] * golds + [Trial.Kind.REPEAT] * repeats
    rng.shuffle(main)
    for _ in range(len(main)):
        moved = False
        for index, kind in enumerate(main):
            tests_before = main[:index].count(Trial.Kind.TEST)
            repeats_before = main[:index].count(Trial.Kind.REPEAT)
            if kind == Trial.Kind.REPEAT and tests_before <= repeats_before:
                later = main.index(Trial.Kind.TEST, index)
                main[index], main[later] = main[later], main[index]
                moved = True
                break
        if not moved:
            break
    return [str(Trial.Kind.PRACTICE)] * practice + [str(kind) for kind in main]


def start_rating(*, session: Session) -> None:
    """Fix the schedule and enter the rating state (idempotent)."""
    if session.state == Session.State.RATING:
        return
    session.schedule = make_schedule(study=session.study)
    session.state = Session.State.RATING
    session.started = timezone.now()
    session.save(update_fields=["schedule", "state", "started"])
    settle(session=session)


def settle(*, session: Session) -> bool:
    """End a rating session that has nothing left to answer; True if it ended.

    A rater who answered something is done (COMPLETED); one who arrived when every item
    had reached its target gets the screen-out page ("the study is full").
    """
    if session.state != Session.State.RATING or upcoming(session=session).current is not None:
        return False
    answered = session.trials.filter(judgment__isnull=False).exists()
    state = Session.State.COMPLETED if answered else Session.State.SCREENED_OUT
    reason = "" if answered else "study full: every item already has its judgments"
    Session.objects.filter(pk=session.pk, state=Session.State.RATING).update(
        state=state, screened_reason=reason, finished=timezone.now()
    )
    session.refresh_from_db()
    return True


@dataclass(frozen=True)
class Upcoming:
    current: Trial | None
    next: Trial | None


def upcoming(*, session: Session) -> Upcoming:
    """The trial on screen and the next one, binding their items if needed.

    ``current`` is None when every scheduled position has been answered or left empty.
    """
    open_positions = _open_positions(session)
    trials: list[Trial] = []
    for position in open_positions:
        trial = _trial_at(session, position)
        if trial is not None:
            trials.append(trial)
        if len(trials) == LOOKAHEAD:
            break
    return Upcoming(
        current=trials[0] if trials else None, next=trials[1] if len(trials) > 1 else None
    )


def _open_positions(session: Session) -> list[int]:
    answered = set(session.trials.filter(judgment__isnull=False).values_list("position", flat=True))
    return [
        position
        for position, kind in enumerate(session.schedule)
        if kind != SKIP and position not in answered
    ]


def _trial_at(session: Session, position: int) -> Trial | None:
    existing = _load(session, position)
    if existing is not None:
        return existing
    kind = session.schedule[position]
    trial = _bind(session, position, kind)
    if trial is None:
        session.schedule[position] = SKIP
        Session.objects.filter(pk=session.pk).update(schedule=session.schedule)
    return trial


def _load(session: Session, position: int) -> Trial | None:
    return (
        Trial.objects.select_related("item__a", "item__b")
        .filter(session=session, position=position)
        .first()
    )


def _bind(session: Session, position: int, kind: str) -> Trial | None:
    if kind == Trial.Kind.TEST:
        return _bind_test(session, position)
    if kind == Trial.Kind.GOLD:
        return _bind_gold(session, position)
    if kind == Trial.Kind.REPEAT:
        return _bind_repeat(session, position)
    if kind == Trial.Kind.PRACTICE:
        return _bind_practice(session, position)
    raise ValueError(f"unknown trial kind {kind!r}; valid: {list(Trial.Kind.values)}")


def _bind_test(session: Session, position: int) -> Trial | None:
    study = session.study
    seen = session.trials.filter(kind=Trial.Kind.TEST).values("item_id")
    candidates = study.items.filter(kind=Item.Kind.TEST).exclude(pk__in=seen)
    if session.is_preview:  # a researcher's preview takes no slot
        ranked = list(candidates.order_by("?")[:1])
        return _create(session, position, Trial.Kind.TEST, ranked[0]) if ranked else None
    for attempt in range(2):
        open_items = list(candidates.filter(assigned__lt=study.judgments_per_item))
        for item in planner_for(study).rank(session=session, candidates=open_items):
            if _take_slot(item, study.judgments_per_item):
                trial = _create(session, position, Trial.Kind.TEST, item, holds_slot=True)
                if trial is None or trial.item_id != item.pk:
                    _give_back(item.pk)
                return trial
        if attempt == 0 and release_stale(study=study) == 0:
            break
    return None


def _take_slot(item: Item, target: int) -> bool:
    taken = Item.objects.filter(pk=item.pk, assigned__lt=target).update(assigned=F("assigned") + 1)
    return taken == 1


def _give_back(item_id: int) -> None:
    Item.objects.filter(pk=item_id, assigned__gt=0).update(assigned=F("assigned") - 1)


def _bind_gold(session: Session, position: int) -> Trial | None:
    """A gold item new to the session; one seen in practice (with its answer) only if
    nothing else is left."""
    used = session.trials.filter(kind=Trial.Kind.GOLD).values("item_id")
    golds = list(session.study.items.filter(kind=Item.Kind.GOLD).exclude(pk__in=used))
    practised = set(
        session.trials.filter(kind=Trial.Kind.PRACTICE).values_list("item_id", flat=True)
    )
    fresh = [item for item in golds if item.pk not in practised]
    pool = fresh or golds
    return _create(session, position, Trial.Kind.GOLD, random.choice(pool)) if pool else None


def _bind_repeat(session: Session, position: int) -> Trial | None:
    repeated = session.trials.filter(kind=Trial.Kind.REPEAT).values("item_id")
    earlier = list(
        session.trials.filter(kind=Trial.Kind.TEST, position__lt=position)
        .exclude(item_id__in=repeated)
        .order_by("position")
    )
    if not earlier:
        return None
    # Prefer a trial at least two positions back, so the repeat is not adjacent.
    distant = [t for t in earlier if t.position < position - 2] or earlier
    return _create(session, position, Trial.Kind.REPEAT, random.choice(distant).item)


def _bind_practice(session: Session, position: int) -> Trial | None:
    """Gold items first (the rater gets feedback on them), then test items; no slots."""
    used = session.trials.filter(kind=Trial.Kind.PRACTICE).values("item_id")
    items = session.study.items.exclude(pk__in=used)
    golds = list(items.filter(kind=Item.Kind.GOLD))
    pool = golds or list(items.filter(kind=Item.Kind.TEST).order_by("?")[:20])
    return _create(session, position, Trial.Kind.PRACTICE, random.choice(pool)) if pool else None


def _create(
    session: Session, position: int, kind: str, item: Item, *, holds_slot: bool = False
) -> Trial | None:
    """Create the trial; if another request bound this position first, return that one."""
    swapped = item.b_id is not None and random.random() < 0.5
    try:
        with transaction.atomic():
            return Trial.objects.create(
                session=session,
                position=position,
                kind=kind,
                item=item,
                swapped=swapped,
                holds_slot=holds_slot,
            )
    except IntegrityError:
        return _load(session, position)


def release_stale(*, study: Study) -> int:
    """Give back the slots of unanswered trials in sessions idle past the timeout."""
    cutoff = timezone.now() - timedelta(minutes=study.session_timeout_minutes)
    stale = Trial.objects.filter(
        session__study=study,
        session__last_seen__lt=cutoff,
        holds_slot=True,
        judgment__isnull=True,
    )
    return release_trials(stale.values_list("pk", flat=True))


def release_unanswered(*, session: Session) -> int:
    """Give back the slots a finished (e.g. screened-out) session still holds."""
    trials = session.trials.filter(holds_slot=True, judgment__isnull=True)
    return release_trials(trials.values_list("pk", flat=True))


def release_trials(trial_ids: object) -> int:
    released = 0
    for trial_id in list(trial_ids):  # type: ignore[call-overload]
        with transaction.atomic():
            trial = (
                Trial.objects.select_for_update(of=("self",))
                .filter(pk=trial_id, judgment__isnull=True, holds_slot=True)
                .first()
            )
            if trial is None:
                continue  # answered meanwhile
            item_id = trial.item_id
            trial.delete()
            _give_back(item_id)
            released += 1
    return released


def progress(*, session: Session) -> tuple[int, int]:
    """(answered, total) over the schedule, empty positions excluded."""
    total = sum(1 for kind in session.schedule if kind != SKIP)
    answered = session.trials.filter(judgment__isnull=False).count()
    return answered, total
