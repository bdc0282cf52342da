"""A study's items with their stimuli, read once per process for the rater path.

Binding a trial and reading a session need every candidate item with its two stimuli.
Loaded from the database on every request, that is hundreds of model instances per
judgment (a 2AFC study of 24 images has 144 pair items, 432 rows with their stimuli);
yet none of it changes while raters rate: a rebuild of the stimuli adds rows under new
ids and removes unused ones, and the only column that moves under load,
``Item.assigned``, is never read from here (the candidate query reads it from the
database, where the conditional UPDATE keeps it true, and hands it to the planner).

So each process keeps, per study, the items (with ``a`` and ``b`` joined) by id. It is
read again when a requested id is missing (items built since), after
:data:`MAX_AGE_S` seconds (a change made by another process, which sends this one no
signal), and at once when this process saves or deletes an item or stimulus (model
signals). A study is told apart from an earlier one with the same primary key (a test
database rolled back) by its creation time. The objects are shared between requests
and threads: callers must not modify them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models.signals import post_delete, post_save

from perceptlab.studies.models import Item, Stimulus, Study

MAX_AGE_S = 60.0


@dataclass(frozen=True)
class _Entry:
    created: datetime  # the study's, to tell it from a rolled-back namesake
    loaded: float  # time.monotonic()
    items: dict[int, Item]


_entries: dict[int, _Entry] = {}
_lock = threading.Lock()


def items_of(study: Study, ids: Iterable[int]) -> dict[int, Item]:
    """The study's items with these ids, each with ``a`` and ``b`` loaded (no query when
    the process has them); ids that are not the study's items are left out."""
    wanted = list(ids)
    entry = _entries.get(study.pk)
    fresh = (
        entry is not None
        and entry.created == study.created
        and time.monotonic() - entry.loaded < MAX_AGE_S
        and all(i in entry.items for i in wanted)
    )
    if not fresh:
        entry = _load(study)
    assert entry is not None
    return {i: entry.items[i] for i in wanted if i in entry.items}


def item_of(study: Study, item_id: int) -> Item | None:
    return items_of(study, [item_id]).get(item_id)


def _load(study: Study) -> _Entry:
    rows = Item.objects.filter(study_id=study.pk).select_related("a", "b").order_by()
    entry = _Entry(study.created, time.monotonic(), {item.pk: item for item in rows})
    with _lock:
        _entries[study.pk] = entry
    return entry


def forget(study_id: int) -> None:
    with _lock:
        _entries.pop(study_id, None)


def _changed(sender: Any, instance: Item | Stimulus, **kwargs: Any) -> None:
    forget(instance.study_id)


for _model in (Item, Stimulus):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"catalog-{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"catalog-del-{_model.__name__}")
