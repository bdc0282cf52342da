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
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from perceptlab.studies.models import Item, Session, Stimulus, Study, Trial
from perceptlab.studies.planners import planner_for

LOOKAHEAD = 2  # the trial on screen and the next one, which the browser preloads
SKIP = "skip"  # a schedule position left empty because no item was available
REFERENCE = "reference"  # ACR-HR: a test trial rating the hidden reference (no slot)


def make_schedule(*, study: Study, rng: random.Random | None = None) -> list[str]:
    """Practice trials, then test, gold and repeat trials in random order.

    Counts are capped by what the study holds (no rater sees an item twice); a repeat is
    never placed before the test trial it can repeat. ACR-HR studies add ``reference``
    positions (:func:`reference_count`), where the rater rates the hidden reference of
    an image whose conditions they rate (:func:`_bind_reference`).
    """
    rng = rng or random.Random()
    test_items = study.items.filter(kind=Item.Kind.TEST)
    if study.is_acr_hr:
        test_items = test_items.exclude(a__role=Stimulus.Role.HIDDEN)
    tests = min(study.trials_per_session, test_items.count())
    golds = min(study.gold_trials, study.items.filter(kind=Item.Kind.GOLD).count())
    repeats = min(study.repeat_trials, max(tests - 1, 0))
    references = reference_count(study=study, tests=tests)
    practice = study.practice_trials if study.items.exists() else 0
    main = (
        [Trial.Kind.TEST] * tests
        + [REFERENCE] * references
        + [Trial.Kind.GOLD] * golds
        + [Trial.Kind.REPEAT] * repeats
    )
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


def reference_count(*, study: Study, tests: int) -> int:
    """ACR-HR: how many hidden references a rater rates, one per image they rate.

    Enough images to fill the rater's test trials with their conditions (tests ÷
    conditions per image, rounded up), at most every image: a rater's test trials are
    then drawn from those images only, so each of their ratings has the same rater's
    rating of its reference (P.910 DMOS is a per-rater difference).
    """
    if not study.is_acr_hr or tests == 0:
        return 0
    hidden = study.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.HIDDEN)
    images = hidden.values("a__study_image_id").distinct().count()
    conditions = study.items.filter(kind=Item.Kind.TEST).count() - hidden.count()
    per_image = max(1, round(conditions / max(images, 1)))
    return min(images, -(-tests // per_image))


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
    if kind == REFERENCE:
        return _bind_reference(session, position)
    valid = [*Trial.Kind.values, REFERENCE]
    raise ValueError(f"unknown trial kind {kind!r}; valid: {valid}")


def _bind_test(session: Session, position: int) -> Trial | None:
    study = session.study
    seen = session.trials.filter(kind=Trial.Kind.TEST).values("item_id")
    candidates = study.items.filter(kind=Item.Kind.TEST).exclude(pk__in=seen)
    if study.is_acr_hr:
        candidates = _referenced_images_only(session, position, candidates)
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
    """A gold item new to the session, never one whose images it saw in practice (where
    it was told the right answer)."""
    trials = session.trials.filter(kind__in=[Trial.Kind.GOLD, Trial.Kind.PRACTICE])
    practised = session.trials.filter(kind=Trial.Kind.PRACTICE)
    pairs = practised.values_list("item__a_id", "item__b_id")
    seen = {stimulus for pair in pairs for stimulus in pair if stimulus is not None}
    golds = [
        item
        for item in session.study.items.filter(kind=Item.Kind.GOLD).exclude(
            pk__in=trials.values("item_id")
        )
        if item.a_id not in seen and item.b_id not in seen
    ]
    return _create(session, position, Trial.Kind.GOLD, random.choice(golds)) if golds else None


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


PRACTICE_ORDER = (Item.Expect.HIGH, Item.Expect.LOW, Item.Expect.NONE)


def _bind_practice(session: Session, position: int) -> Trial | None:
    """Practice items calibrate; they take no slots.

    ACR/DCR: the study's practice items in the order original (expected high), heavily
    degraded (expected low), a mid-rate condition, so the first trials show the scale's
    range. 2AFC (and studies built without practice items): gold items, which give
    feedback, then test items.
    """
    used = session.trials.filter(kind=Trial.Kind.PRACTICE)
    done = used.count()
    items = session.study.items.exclude(pk__in=used.values("item_id"))
    practice = list(items.filter(kind=Item.Kind.PRACTICE))
    if practice:
        wanted = PRACTICE_ORDER[done % len(PRACTICE_ORDER)]
        pool = [item for item in practice if item.expected == wanted] or practice
    else:
        pool = list(items.filter(kind=Item.Kind.GOLD)) or list(
            items.filter(kind=Item.Kind.TEST).order_by("?")[:20]
        )
    return _create(session, position, Trial.Kind.PRACTICE, random.choice(pool)) if pool else None


def _session_images(session: Session) -> tuple[set[int], set[int]]:
    """ACR-HR: (images whose hidden reference the session has, images it rates)."""
    rows = session.trials.filter(kind=Trial.Kind.TEST).values_list(
        "item__a__study_image_id", "item__a__role"
    )
    referenced = {image for image, role in rows if role == Stimulus.Role.HIDDEN}
    rated = {image for image, role in rows if role != Stimulus.Role.HIDDEN}
    return referenced, rated


def _referenced_images_only(
    session: Session, position: int, candidates: QuerySet[Item]
) -> QuerySet[Item]:
    """ACR-HR test candidates: conditions (never a hidden reference, those come at
    reference positions) of images the session has a reference for, or will still get
    one for at a later reference position."""
    referenced, rated = _session_images(session)
    pending = rated - referenced
    later = session.schedule[position + 1 :].count(REFERENCE)
    conditions = candidates.exclude(a__role=Stimulus.Role.HIDDEN)
    if len(pending) < later:
        return conditions  # a new image can still get its reference later
    return conditions.filter(a__study_image_id__in=referenced | rated)


def _bind_reference(session: Session, position: int) -> Trial | None:
    """ACR-HR: the hidden reference of an image the session rates and has no reference
    for yet; else of the image with the most free condition slots. No slot is taken:
    every rater of an image rates its reference."""
    study = session.study
    referenced, rated = _session_images(session)
    hidden = study.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.HIDDEN)
    pending = sorted(rated - referenced)
    if pending:
        item = hidden.filter(a__study_image_id=pending[0]).first()
    else:
        free = (
            study.items.filter(kind=Item.Kind.TEST, assigned__lt=study.judgments_per_item)
            .exclude(a__role=Stimulus.Role.HIDDEN)
            .exclude(a__study_image_id__in=referenced)
            .values("a__study_image_id")
            .annotate(free=Count("id"))
            .order_by("-free", "?")
            .first()
        )
        image = free["a__study_image_id"] if free else None
        item = hidden.filter(a__study_image_id=image).first() if image is not None else None
    return _create(session, position, Trial.Kind.TEST, item) if item is not None else None


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
