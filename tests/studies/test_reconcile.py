"""Slot counters set back to the trials holding a slot, while raters keep rating."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, F, Q
from studykit import answer_current, complete, make_study, rating_session

from perceptlab.studies.models import Item, Study, Trial
from perceptlab.studies.reconcile import Drift, reconcile_slots, slot_drift


def holding(study: Study) -> dict[int, int]:
    """item id → trials holding one of its slots."""
    counts = study.items.annotate(n=Count("trials", filter=Q(trials__holds_slot=True)))
    return dict(counts.values_list("pk", "n"))


def assigned(study: Study) -> dict[int, int]:
    return dict(study.items.values_list("pk", "assigned"))


def rated_study(raters: int = 2, **fields: object) -> Study:
    study = make_study("2afc", images=2, trials_per_session=4, judgments_per_item=2, **fields)
    for _ in range(raters):
        complete(rating_session(study))
    assert assigned(study) == holding(study)
    return study


def test_a_leaked_slot_is_given_back_and_a_lost_one_counted_again(db) -> None:  # type: ignore[no-untyped-def]
    study = rated_study()
    truth = holding(study)
    leaked, lost = sorted(pk for pk, n in truth.items() if n > 0)[:2]
    Item.objects.filter(pk=leaked).update(assigned=F("assigned") + 1)  # a slot without a trial
    Item.objects.filter(pk=lost).update(assigned=F("assigned") - 1)  # a trial without a slot
    drifts = reconcile_slots(grace_seconds=0)
    assert drifts == [
        Drift(study.name, leaked, truth[leaked] + 1, truth[leaked]),
        Drift(study.name, lost, truth[lost] - 1, truth[lost]),
    ]
    assert assigned(study) == truth
    assert reconcile_slots(grace_seconds=0) == []


def test_agreeing_counters_are_left_alone(db) -> None:  # type: ignore[no-untyped-def]
    study = rated_study()
    assert slot_drift() == [] and reconcile_slots(grace_seconds=0) == []
    assert assigned(study) == holding(study)


def test_only_the_named_study_is_repaired(db) -> None:  # type: ignore[no-untyped-def]
    mine, other = rated_study(raters=1), rated_study(raters=1)
    Item.objects.filter(study__in=[mine, other]).update(assigned=F("assigned") + 2)
    drifts = reconcile_slots(study=mine, grace_seconds=0)
    assert {drift.study for drift in drifts} == {mine.name}
    assert len(drifts) == mine.items.count()
    assert assigned(mine) == holding(mine)
    assert all(assigned(other)[pk] == n + 2 for pk, n in holding(other).items())


def test_a_drift_that_moves_meanwhile_is_left_for_the_next_pass(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    study = rated_study(raters=1)
    item = study.items.filter(assigned=0).first()
    assert item is not None
    Item.objects.filter(pk=item.pk).update(assigned=1)  # leaked, or a slot being taken now
    seen = slot_drift(study=study)
    assert seen == [Drift(study.name, item.pk, 1, 0)]
    # A rater binds the item during the grace period: the counter and its trials move.
    session = rating_session(study)

    def pause(seconds: float) -> None:
        with transaction.atomic():
            Item.objects.filter(pk=item.pk).update(assigned=F("assigned") + 1)
            Trial.objects.create(
                session=session, position=99, kind="test", item=item, holds_slot=True
            )

    monkeypatch.setattr("perceptlab.studies.reconcile.sleep", pause)
    assert reconcile_slots(study=study) == []
    assert Item.objects.get(pk=item.pk).assigned == 2  # not undercounted
    monkeypatch.undo()
    assert reconcile_slots(study=study, grace_seconds=0) == [Drift(study.name, item.pk, 2, 1)]
    assert assigned(study) == holding(study)


def test_the_command_reports_drift_and_changes_nothing_on_a_dry_run(db, capsys) -> None:  # type: ignore[no-untyped-def]
    study = rated_study(raters=1)
    item = study.items.first()
    assert item is not None
    Item.objects.filter(pk=item.pk).update(assigned=F("assigned") + 3)
    call_command("reconcile_slots", "--study", study.name, "--dry-run")
    out = capsys.readouterr().out
    assert f"item {item.pk} assigned {item.assigned + 3} → {item.assigned}" in out
    assert "would change 1 item(s)" in out
    assert Item.objects.get(pk=item.pk).assigned == item.assigned + 3
    call_command("reconcile_slots")
    assert "changed 1 item(s)" in capsys.readouterr().out
    assert Item.objects.get(pk=item.pk).assigned == item.assigned


def test_the_command_names_the_studies_when_the_study_is_unknown(db) -> None:  # type: ignore[no-untyped-def]
    study = make_study(build=False)
    with pytest.raises(CommandError, match=f"no study 'nope'; studies: {study.name}"):
        call_command("reconcile_slots", "--study", "nope")


@pytest.mark.django_db(transaction=True)
def test_a_rater_taking_a_slot_during_the_repair_is_never_undercounted() -> None:
    study = rated_study(raters=1)
    item = study.items.filter(assigned=0).first()
    assert item is not None
    Item.objects.filter(pk=item.pk).update(assigned=1)  # a leaked slot
    session = rating_session(study)
    taken, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def take_slot() -> None:
        # Taking a slot and writing its trial commit together; the repair runs in between.
        try:
            with transaction.atomic():
                Item.objects.filter(pk=item.pk).update(assigned=F("assigned") + 1)
                taken.set()
                go.wait(timeout=10)
                Trial.objects.create(
                    session=session, position=99, kind="test", item=item, holds_slot=True
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def repair() -> None:
        try:
            reconcile_slots(study=study, grace_seconds=0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    rater = threading.Thread(target=take_slot)
    rater.start()
    assert taken.wait(timeout=10)
    repairer = threading.Thread(target=repair)
    repairer.start()
    time.sleep(0.3)  # the repair now waits for the rater's transaction
    go.set()
    rater.join()
    repairer.join()
    assert not errors, errors
    assert Item.objects.get(pk=item.pk).assigned >= 1  # the rater's slot is counted
    reconcile_slots(study=study, grace_seconds=0)
    assert Item.objects.get(pk=item.pk).assigned == 1 and assigned(study) == holding(study)


@pytest.mark.django_db(transaction=True)
def test_repairs_during_a_rush_of_raters_keep_every_counter_exact() -> None:
    study = make_study("2afc", images=3, trials_per_session=18, judgments_per_item=2)
    items = list(study.items.filter(kind=Item.Kind.TEST).values_list("pk", flat=True))
    Item.objects.filter(pk__in=items[::3]).update(assigned=1)  # leaked slots, before anyone rated
    sessions = [rating_session(study) for _ in range(4)]
    barrier = threading.Barrier(len(sessions) + 1)
    raters_done = threading.Event()
    errors: list[BaseException] = []
    repairs: list[Drift] = []

    def rate(session: object) -> None:
        try:
            barrier.wait()
            for _ in range(18):
                if answer_current(session) is None:  # type: ignore[arg-type]
                    break
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def repair() -> None:
        try:
            barrier.wait()
            while not raters_done.is_set():
                repairs.extend(reconcile_slots(study=study, grace_seconds=0.05))
                assert max(holding(study).values()) <= 2, "an item passed its target"
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    raters = [threading.Thread(target=rate, args=(s,)) for s in sessions]
    repairer = threading.Thread(target=repair)
    for thread in [*raters, repairer]:
        thread.start()
    for thread in raters:
        thread.join()
    raters_done.set()
    repairer.join()
    assert not errors, errors
    reconcile_slots(study=study, grace_seconds=0)
    truth = holding(study)
    assert assigned(study) == truth and max(truth.values()) <= 2
    assert all(drift.holding < drift.assigned for drift in repairs)  # only leaks were found
