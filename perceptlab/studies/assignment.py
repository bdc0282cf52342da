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
past its target; the slot and the trial holding it commit together (one transaction), so
a killed process cannot leave a slot taken with no trial; a unique constraint keeps one
item from reaching a session twice. Slots of sessions idle for
``Study.session_timeout_minutes`` are given back.

The rater path reads a session once: a :class:`Snapshot` holds the session, its study
and every trial with its judgment, from one query, and each trial's item with its
stimuli from the process's :mod:`~perceptlab.studies.catalog` (items and stimuli do not
change under load); everything the request decides (the current and next trial,
progress, quality control) comes from it, and only what changes is written. Binding a
test trial reads the open candidates' ids and slot counts, not their rows.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from perceptlab.lib import prepared
from perceptlab.lib.prepared import columns
from perceptlab.studies import catalog
from perceptlab.studies.models import Item, Judgment, Session, Stimulus, Study, Trial
from perceptlab.studies.planners import Planner, least_served, planner_for

LOOKAHEAD = 2  # the trial on screen and the next one, which the browser preloads
SKIP = "skip"  # a schedule position left empty because no item was available
REFERENCE = "reference"  # ACR-HR: a test trial rating the hidden reference (no slot)
ITEM_RELATED = ("a", "b")
_trial_item = Trial._meta.get_field("item")
_trial_session = Trial._meta.get_field("session")


@dataclass
class Snapshot:
    """A session with all its trials (items, stimuli, judgments), read in one query.

    Binding and recording keep it up to date, so one request never reads the session
    twice.
    """

    session: Session
    trials: dict[int, Trial] = field(default_factory=dict)  # by position
    answers: Answers = field(default_factory=lambda: Answers())  # by position

    @classmethod
    def of(cls, session: Session) -> Snapshot:
        """The trials of ``session`` (already read) in one query."""
        db = connections[DEFAULT_DB_ALIAS]
        with prepared.cursor(db) as cursor:
            cursor.execute(_trials_sql(), [session.pk])
            rows = cursor.fetchall()
        return cls._build(session, rows, db, start=0)

    @classmethod
    def by_code(cls, code: uuid.UUID) -> Snapshot | None:
        """The session with this code, its study and its trials in one query (one
        statement: a consistent view of the session); None if there is no such session."""
        db = connections[DEFAULT_DB_ALIAS]
        with prepared.cursor(db) as cursor:
            value = _session_code.get_db_prep_value(code, db)
            cursor.execute(_session_sql(), [value, value])
            rows = cursor.fetchall()
        head = [row for row in rows if row[0] is not None]
        if not head:
            return None
        session = _session_with_study(head[0], db)
        start = _SESSION.width + _STUDY.width
        return cls._build(session, [row for row in rows if row[0] is None], db, start=start)

    @classmethod
    def _build(
        cls, session: Session, rows: list[Any], db: BaseDatabaseWrapper, *, start: int
    ) -> Snapshot:
        """The trials in ``rows`` (from column ``start``), with their items from the
        catalog; their judgments are made from the same rows when first asked for."""
        snap = cls(session)
        judged = start + _TRIAL.width + _JUDGMENT.pk_index
        trials = [_trial_of(row, db, start=start, answered=row[judged] is not None) for row in rows]
        items = catalog.items_of(session.study, {t.item_id for t in trials})
        for trial, row in zip(trials, rows, strict=True):
            # One session object, however many rows (trial.session_id is the row's).
            _trial_session.set_cached_value(trial, session)
            _trial_item.set_cached_value(trial, items[trial.item_id])
            snap.trials[trial.position] = trial
            if row[judged] is None:
                _trial_judgment.set_cached_value(trial, None)  # trial.judgment: no query
            else:
                snap.answers.later(trial.position, row, trial, db, start + _TRIAL.width)
        return snap

    def judgment(self, trial: Trial) -> Judgment | None:
        return self.answers.get(trial.position)

    def answered(self) -> list[Trial]:
        return [self.trials[position] for position in sorted(self.answers)]

    def of_kind(self, *kinds: str) -> list[Trial]:
        return [t for t in self.trials.values() if t.kind in kinds]

    def open_positions(self) -> list[int]:
        done = set(self.answers)
        return [
            position
            for position, kind in enumerate(self.session.schedule)
            if kind != SKIP and position not in done
        ]

    def refresh(self) -> None:
        """Read the trials again (after a conflict with a concurrent request)."""
        fresh = Snapshot.of(self.session)
        self.trials, self.answers = fresh.trials, fresh.answers

    def record(self, trial: Trial, judgment: Judgment) -> None:
        self.trials[trial.position] = trial
        self.answers[trial.position] = judgment


# The session's read, written as SQL once (perceptlab.lib.prepared): built through the
# ORM, its construction and the conversion of the session's and study's columns on every
# trial row cost more CPU than the rest of a judgment.
_SESSION = columns(Session, "se")
_STUDY = columns(Study, "st")
_TRIAL = columns(Trial, "t")
_JUDGMENT = columns(Judgment, "j")
_session_code = Session._meta.get_field("code")
_trial_judgment = Trial.judgment.related  # type: ignore[attr-defined]


def session_by_code(code: uuid.UUID) -> Session | None:
    """The session with this code and its study (cached on it, as
    ``select_related("study")``) in one prepared statement; None if there is none. The
    session page reads it on every visit of the consent, instructions and rating steps."""
    db = connections[DEFAULT_DB_ALIAS]
    with prepared.cursor(db) as cursor:
        cursor.execute(_session_only_sql(), [_session_code.get_db_prep_value(code, db)])
        row = cursor.fetchone()
    return None if row is None else _session_with_study(row, db)


def _session_with_study(row: tuple[object, ...], db: BaseDatabaseWrapper) -> Session:
    """The session in ``row`` with its study (the next columns) cached on it."""
    session = _SESSION.build(row, connection=db)
    study = _STUDY.build(row, connection=db, start=_SESSION.width)
    assert session is not None and study is not None  # an inner join: both present
    session.study = study
    return session


@functools.cache
def _session_only_sql() -> str:
    return (
        f"SELECT {_SESSION.sql}, {_STUDY.sql} FROM {_SESSION.table} se "
        f"JOIN {_STUDY.table} st ON st.id = se.study_id WHERE se.code = %s"
    )


@functools.cache
def _session_sql() -> str:
    """The session by code with its study (one row: the trials' columns NULL), and one
    row per trial with its judgment (the session's and study's columns NULL), in one
    statement (one consistent view of the session). A join would repeat the session's
    and study's 72 columns, the consent and instructions texts among them, on every
    trial's row: a session 100 trials long spent more CPU fetching them than on
    anything else of a judgment."""
    head = ", ".join(["NULL"] * (_TRIAL.width + _JUDGMENT.width))
    nobody = ", ".join(["NULL"] * (_SESSION.width + _STUDY.width))
    return (
        f"SELECT {_SESSION.sql}, {_STUDY.sql}, {head} "
        f"FROM {_SESSION.table} se JOIN {_STUDY.table} st ON st.id = se.study_id "
        f"WHERE se.code = %s "
        f"UNION ALL SELECT {nobody}, {_TRIAL.sql}, {_JUDGMENT.sql} "
        f"FROM {_SESSION.table} se JOIN {_TRIAL.table} t ON t.session_id = se.id "
        f"LEFT JOIN {_JUDGMENT.table} j ON j.trial_id = t.id "
        f"WHERE se.code = %s"
    )


@functools.cache
def _trials_sql() -> str:
    """A session's trials (with their judgments) by the session's id."""
    return (
        f"SELECT {_TRIAL.sql}, {_JUDGMENT.sql} FROM {_TRIAL.table} t "
        f"LEFT JOIN {_JUDGMENT.table} j ON j.trial_id = t.id WHERE t.session_id = %s"
    )


# An answered trial's clock (when it was bound and first sent) is read by nothing on the
# rater path, and parsing the two dates of every answered trial of a long session was a
# twentieth of a judgment's CPU: such a trial holds them deferred (read if asked for).
_ANSWERED_DEFER = frozenset({"assigned", "shown"})


def _trial_of(
    row: tuple[object, ...], db: BaseDatabaseWrapper, *, start: int, answered: bool = False
) -> Trial:
    """The trial in ``row`` from ``start``."""
    defer = _ANSWERED_DEFER if answered else frozenset()
    trial = _TRIAL.build(row, connection=db, start=start, defer=defer)
    assert trial is not None
    return trial


class Answers(MutableMapping[int, Judgment]):
    """A snapshot's judgments by position. Each is made from its row the first time it is
    asked for (and then cached on its trial both ways, as ``select_related("judgment")``
    would): a judgment POST needs the current trial's judgment and which positions are
    answered, not the other nineteen judgments' keys, dates and JSON, whose conversion
    was a tenth of a judgment's CPU. Membership, ``len`` and iteration make nothing."""

    def __init__(self) -> None:
        self._made: dict[int, Judgment] = {}
        self._rows: dict[int, tuple[Any, Trial, BaseDatabaseWrapper, int]] = {}

    def later(
        self, position: int, row: Any, trial: Trial, db: BaseDatabaseWrapper, start: int
    ) -> None:
        """The judgment of ``trial`` at ``position`` is in ``row`` from column ``start``."""
        self._made.pop(position, None)
        self._rows[position] = (row, trial, db, start)

    def __getitem__(self, position: int) -> Judgment:
        made = self._made.get(position)
        if made is not None:
            return made
        row, trial, db, start = self._rows.pop(position)  # KeyError: not answered
        judgment = _JUDGMENT.build(row, connection=db, start=start)
        assert judgment is not None
        _trial_judgment.set_cached_value(trial, judgment)
        _trial_judgment.field.set_cached_value(judgment, trial)
        self._made[position] = judgment
        return judgment

    def __contains__(self, position: object) -> bool:
        return position in self._made or position in self._rows

    def __setitem__(self, position: int, judgment: Judgment) -> None:
        self._rows.pop(position, None)
        self._made[position] = judgment

    def __delitem__(self, position: int) -> None:
        if self._rows.pop(position, None) is None:
            del self._made[position]

    def __iter__(self) -> Iterator[int]:
        return iter([*self._made, *self._rows])

    def __len__(self) -> int:
        return len(self._made) + len(self._rows)


def make_schedule(*, study: Study, rng: random.Random | None = None) -> list[str]:
    """Practice trials, then test, gold and repeat trials in random order.

    Counts are capped by what the study holds (no rater sees an item twice); a repeat is
    never placed before the test trial it can repeat. ACR-HR studies add ``reference``
    positions (:func:`reference_count`), where the rater rates the hidden reference of
    an image whose conditions they rate (:func:`_bind_reference`).
    """
    rng = rng or random.Random(random.getrandbits(64))  # random.seed() fixes a test run
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


def upcoming(*, session: Session | None = None, snapshot: Snapshot | None = None) -> Upcoming:
    """The trial on screen and the next one, binding their items if needed.

    ``current`` is None when every scheduled position has been answered or left empty.
    """
    snap = snapshot if snapshot is not None else Snapshot.of(_required(session))
    trials: list[Trial] = []
    for position in snap.open_positions():
        trial = snap.trials.get(position) or _bind(snap, position)
        if trial is not None:
            trials.append(trial)
        if len(trials) == LOOKAHEAD:
            break
    return Upcoming(
        current=trials[0] if trials else None, next=trials[1] if len(trials) > 1 else None
    )


def upcoming_retrying(snap: Snapshot, *, attempts: int = 3) -> Upcoming:
    """:func:`upcoming` outside a transaction: a position bound meanwhile by another
    request of the same session (IntegrityError) is read back and the lookup repeated."""
    for _ in range(attempts - 1):
        try:
            return upcoming(snapshot=snap)
        except IntegrityError:
            snap.refresh()
    return upcoming(snapshot=snap)


def current_position(snap: Snapshot) -> int | None:
    """The position the rater is on (the first open one), without binding anything."""
    positions = snap.open_positions()
    return positions[0] if positions else None


def _required(session: Session | None) -> Session:
    if session is None:
        raise TypeError("pass session= or snapshot=")
    return session


def _bind(snap: Snapshot, position: int) -> Trial | None:
    kind = snap.session.schedule[position]
    binders = {
        Trial.Kind.TEST: _bind_test,
        Trial.Kind.GOLD: _bind_gold,
        Trial.Kind.REPEAT: _bind_repeat,
        Trial.Kind.PRACTICE: _bind_practice,
        REFERENCE: _bind_reference,
    }
    binder = binders.get(kind)
    if binder is None:
        raise ValueError(f"unknown trial kind {kind!r}; valid: {sorted(binders)}")
    trial = binder(snap, position)
    if trial is None:
        snap.session.schedule[position] = SKIP
        Session.objects.filter(pk=snap.session.pk).update(schedule=snap.session.schedule)
    else:
        snap.trials[position] = trial
    return trial


def _bind_test(snap: Snapshot, position: int) -> Trial | None:
    """The least-served test item (as the study's planner ranks them) new to the session,
    with one of its slots. Candidates are the ids and slot counts of the study's items
    with a free slot (one query); the items themselves come from the catalog."""
    session, study = snap.session, snap.session.study
    seen = {t.item_id for t in snap.of_kind(Trial.Kind.TEST)}
    eligible = _eligible_test(snap, position)
    if session.is_preview:  # a researcher's preview takes no slot
        every = study.items.filter(kind=Item.Kind.TEST).values_list("pk", flat=True)
        items = catalog.items_of(study, [pk for pk in every if pk not in seen]).values()
        pool = [item for item in items if eligible(item)]
        return _create(snap, position, Trial.Kind.TEST, random.choice(pool)) if pool else None
    planner = planner_for(study)
    for attempt in range(2):
        open_slots = {pk: n for pk, n in _open_slots(study) if pk not in seen}
        if type(planner).rank is Planner.rank:  # least-served first: no item made untried
            ranked: Iterable[Item] = _least_served_items(study, open_slots, eligible)
        else:
            items = catalog.items_of(study, open_slots).values()
            open_items = [item for item in items if eligible(item)]
            ranked = planner.rank(session=session, candidates=open_items, assigned=open_slots)
        for item in ranked:
            trial = _create(snap, position, Trial.Kind.TEST, item, slot=study.judgments_per_item)
            if trial is not None:
                return trial
        if attempt == 0 and release_stale(study=study) == 0:
            break
    return None


def _least_served_items(
    study: Study, open_slots: dict[int, int], eligible: Callable[[Item], bool]
) -> Iterator[Item]:
    """:meth:`Planner.rank`'s order (least-served first, ties at random), item by item as
    the caller asks: binding usually takes the first."""
    for pk in least_served(open_slots):
        item = catalog.item_of(study, pk)
        if item is not None and eligible(item):
            yield item


def _open_slots(study: Study) -> list[tuple[int, int]]:
    """(id, assigned) of the study's test items with a free slot, as the database has
    them now (SQL written once: the ORM's construction of it cost ten times its run)."""
    db = connections[DEFAULT_DB_ALIAS]
    with prepared.cursor(db) as cursor:
        cursor.execute(_open_slots_sql(), [study.pk, Item.Kind.TEST, study.judgments_per_item])
        return [(pk, assigned) for pk, assigned in cursor.fetchall()]


@functools.cache
def _open_slots_sql() -> str:
    return (
        f"SELECT id, assigned FROM {Item._meta.db_table} "
        f"WHERE study_id = %s AND kind = %s AND assigned < %s"
    )


def _give_back(item_id: int) -> None:
    Item.objects.filter(pk=item_id, assigned__gt=0).update(assigned=F("assigned") - 1)


def _bind_gold(snap: Snapshot, position: int) -> Trial | None:
    """A gold item new to the session, never one whose images it saw in practice (where
    it was told the right answer)."""
    used = [t.item_id for t in snap.of_kind(Trial.Kind.GOLD, Trial.Kind.PRACTICE)]
    practised = snap.of_kind(Trial.Kind.PRACTICE)
    seen = {t.item.a_id for t in practised} | {t.item.b_id for t in practised if t.item.b_id}
    golds = [
        item
        for item in snap.session.study.items.filter(kind=Item.Kind.GOLD)
        .exclude(pk__in=used)
        .select_related(*ITEM_RELATED)
        if item.a_id not in seen and item.b_id not in seen
    ]
    return _create(snap, position, Trial.Kind.GOLD, random.choice(golds)) if golds else None


def _bind_repeat(snap: Snapshot, position: int) -> Trial | None:
    repeated = {t.item_id for t in snap.of_kind(Trial.Kind.REPEAT)}
    earlier = sorted(
        (
            t
            for t in snap.of_kind(Trial.Kind.TEST)
            if t.position < position and t.item_id not in repeated
        ),
        key=lambda t: t.position,
    )
    if not earlier:
        return None
    # Prefer a trial at least two positions back, so the repeat is not adjacent.
    distant = [t for t in earlier if t.position < position - 2] or earlier
    return _create(snap, position, Trial.Kind.REPEAT, random.choice(distant).item)


PRACTICE_ORDER = (Item.Expect.HIGH, Item.Expect.LOW, Item.Expect.NONE)


def _bind_practice(snap: Snapshot, position: int) -> Trial | None:
    """Practice items calibrate; they take no slots.

    ACR/DCR: the study's practice items in the order original (expected high), heavily
    degraded (expected low), a mid-rate condition, so the first trials show the scale's
    range. 2AFC (and studies built without practice items): gold items, which give
    feedback, then test items.
    """
    used = [t.item_id for t in snap.of_kind(Trial.Kind.PRACTICE)]
    items = snap.session.study.items.exclude(pk__in=used).select_related(*ITEM_RELATED)
    practice = list(items.filter(kind=Item.Kind.PRACTICE))
    if practice:
        wanted = PRACTICE_ORDER[len(used) % len(PRACTICE_ORDER)]
        pool = [item for item in practice if item.expected == wanted] or practice
    else:
        pool = list(items.filter(kind=Item.Kind.GOLD)) or list(
            items.filter(kind=Item.Kind.TEST).order_by("?")[:20]
        )
    return _create(snap, position, Trial.Kind.PRACTICE, random.choice(pool)) if pool else None


def _session_images(snap: Snapshot) -> tuple[set[int], set[int]]:
    """ACR-HR: (images whose hidden reference the session has, images it rates)."""
    tests = snap.of_kind(Trial.Kind.TEST)
    referenced = {t.item.a.study_image_id for t in tests if t.item.a.role == Stimulus.Role.HIDDEN}
    rated = {t.item.a.study_image_id for t in tests if t.item.a.role != Stimulus.Role.HIDDEN}
    return referenced, rated


def _eligible_test(snap: Snapshot, position: int) -> Callable[[Item], bool]:
    """Which test items may be bound at ``position``: any, except in ACR-HR, where
    they are conditions (never a hidden reference, those come at reference positions) of
    images the session has a reference for, or will still get one for at a later
    reference position."""
    if not snap.session.study.is_acr_hr:
        return lambda item: True
    referenced, rated = _session_images(snap)
    pending = rated - referenced
    later = snap.session.schedule[position + 1 :].count(REFERENCE)
    images = None if len(pending) < later else referenced | rated  # None: a new image is fine

    def eligible(item: Item) -> bool:
        if item.a.role == Stimulus.Role.HIDDEN:
            return False
        return images is None or item.a.study_image_id in images

    return eligible


def _bind_reference(snap: Snapshot, position: int) -> Trial | None:
    """ACR-HR: the hidden reference of an image the session rates and has no reference
    for yet; else of the image with the most free condition slots. No slot is taken:
    every rater of an image rates its reference."""
    study = snap.session.study
    referenced, rated = _session_images(snap)
    hidden = study.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.HIDDEN)
    pending = sorted(rated - referenced)
    if pending:
        item = hidden.filter(a__study_image_id=pending[0]).select_related(*ITEM_RELATED).first()
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
        chosen = hidden.filter(a__study_image_id=image).select_related(*ITEM_RELATED)
        item = chosen.first() if image is not None else None
    return _create(snap, position, Trial.Kind.TEST, item) if item is not None else None


def _create(
    snap: Snapshot, position: int, kind: str, item: Item, *, slot: int | None = None
) -> Trial | None:
    """Bind the item at ``position``: with ``slot`` (the item's target), take one of its
    slots first (None if none is left). The slot and the trial commit together.

    A conflicting trial (another request of this session bound the position first)
    raises IntegrityError; the request's caller retries with a fresh snapshot.
    """
    trial = Trial(
        session=snap.session,
        position=position,
        kind=kind,
        item=item,
        swapped=item.b_id is not None and random.random() < 0.5,
        holds_slot=slot is not None,
        shown=timezone.now(),  # bound only to be sent: the server's clock starts now
    )
    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic(savepoint=False):
        if slot is not None and not _take_slot(db, item.pk, slot):
            return None
        _TRIAL.insert(trial, connection=db)
    return trial


def _take_slot(db: BaseDatabaseWrapper, item_id: int, target: int) -> bool:
    """One conditional UPDATE (``assigned < target``), checked by its row count."""
    with prepared.cursor(db) as cursor:
        cursor.execute(_take_slot_sql(), [item_id, target])
        return cursor.rowcount == 1


@functools.cache
def _take_slot_sql() -> str:
    table = Item._meta.db_table
    return f"UPDATE {table} SET assigned = assigned + 1 WHERE id = %s AND assigned < %s"


def release_stale(*, study: Study) -> int:
    """Give back the slots of unanswered trials in sessions idle past the timeout: not
    seen by the server (``last_seen``) and no judgment since the cutoff."""
    cutoff = timezone.now() - timedelta(minutes=study.session_timeout_minutes)
    recent = Judgment.objects.filter(trial__session=OuterRef("session"), created__gte=cutoff)
    stale = Trial.objects.filter(
        session__study=study,
        session__last_seen__lt=cutoff,
        holds_slot=True,
        judgment__isnull=True,
    ).filter(~Exists(recent))
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


def progress(
    *, session: Session | None = None, snapshot: Snapshot | None = None
) -> tuple[int, int]:
    """(answered, total) over the schedule, empty positions excluded."""
    snap = snapshot if snapshot is not None else Snapshot.of(_required(session))
    total = sum(1 for kind in snap.session.schedule if kind != SKIP)
    return len(snap.answered()), total
