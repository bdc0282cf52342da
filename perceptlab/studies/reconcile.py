"""Repair of the slot counters: ``Item.assigned`` set back to the trials holding a slot.

``Item.assigned`` is a counter kept beside the truth (the item's trials with
``holds_slot=True``) so that taking a slot is one conditional UPDATE. A process killed
between moving the counter and writing the trial, or a trial deleted without giving its
slot back, leaves the two apart: a counter too high hides slots from raters, one too low
lets an item pass its ``judgments_per_item``. :func:`reconcile_slots` finds and repairs
such drift; ``manage.py reconcile_slots`` runs it, and so does every ``db_worker`` each
``WORKER_MAINTENANCE_SECONDS``.

Raters keep taking slots while it runs, so a drift is repaired only after it was seen
twice, ``grace_seconds`` apart, and the second time with the item row locked
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's IMMEDIATE transactions serialise
writers): a rater between taking a slot and writing its trial changes the counter or the
count in between, and the item is left for the next pass. The UPDATE itself is
conditional on the counter still holding the value read under the lock. A slot taken after
the repair adds to the repaired counter, so a slot-taker is never undercounted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import sleep

from django.db import transaction
from django.db.models import Count, F, Q

from perceptlab.studies.models import Item, Study, Trial

logger = logging.getLogger("perceptlab.worker")

GRACE_SECONDS = 1.0
"""Time for a slot being taken to get its trial (one INSERT) before a drift counts."""


@dataclass(frozen=True)
class Drift:
    """One item whose counter disagrees with its trials."""

    study: str
    item_id: int
    assigned: int
    """What ``Item.assigned`` said."""
    holding: int
    """Trials holding one of the item's slots: what ``assigned`` is set to."""

    def __str__(self) -> str:
        return f"{self.study}: item {self.item_id} assigned {self.assigned} → {self.holding}"


def slot_drift(*, study: Study | None = None) -> list[Drift]:
    """Every item (of ``study``, or of all studies) whose ``assigned`` ≠ its holding trials."""
    items = Item.objects.all() if study is None else Item.objects.filter(study=study)
    drifting = (
        items.annotate(holding=Count("trials", filter=Q(trials__holds_slot=True)))
        .exclude(assigned=F("holding"))
        .order_by("study_id", "pk")
        .values_list("study__name", "pk", "assigned", "holding")
    )
    return [Drift(name, pk, assigned, holding) for name, pk, assigned, holding in drifting]


def reconcile_slots(
    *, study: Study | None = None, grace_seconds: float = GRACE_SECONDS
) -> list[Drift]:
    """Set every drifting item's ``assigned`` to its holding trials; returns what changed.

    An item whose counter or trials moved during ``grace_seconds`` is left alone (a rater
    was taking or giving back a slot) and found again by the next pass.
    """
    seen = slot_drift(study=study)
    if not seen:
        return []
    sleep(grace_seconds)
    return [drift for drift in seen if _repair(drift)]


def _repair(seen: Drift) -> bool:
    with transaction.atomic():
        item = Item.objects.select_for_update().filter(pk=seen.item_id).first()
        if item is None or item.assigned != seen.assigned:
            return False
        holding = Trial.objects.filter(item_id=seen.item_id, holds_slot=True).count()
        if holding != seen.holding:
            return False
        updated = Item.objects.filter(pk=seen.item_id, assigned=seen.assigned).update(
            assigned=holding
        )
        return updated == 1


def reconcile_live_studies() -> list[Drift]:
    """The worker's pass (``WORKER_MAINTENANCE_HOOKS``): every live study's counters."""
    repaired = []
    for study in Study.objects.filter(state=Study.State.LIVE):
        for drift in reconcile_slots(study=study):
            logger.warning("repaired slot counter: %s", drift)
            repaired.append(drift)
    return repaired
