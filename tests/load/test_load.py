"""The rater API under load, with the web server killed mid-run: nothing acknowledged is lost.

100 virtual raters (``harness.py``) rate a 2AFC study for 30 s against gunicorn serving the
test database; 10 s in (later if fewer than 10 judgments were acknowledged by then),
gunicorn (master and workers) is SIGKILLed and started again, and the raters retry
through the outage with the same idempotency keys. The database must then
hold every acknowledged judgment exactly once, on its own trial, and nothing no rater
sent; one judgment per trial; every item's slot counter equal to its trials holding a
slot. No timing is asserted (the machine may be shared): ``bench/load.py`` measures.

Two quick tests check the checker: reconciliation passes on a database that matches the
raters' ledger and names each kind of mismatch when it does not.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the load harness needs aiohttp (the dev extra)")

from django.db import connection
from django.db.models import F
from harness import (
    Ack,
    Clock,
    Gunicorn,
    Ledger,
    RaterPlan,
    database_url,
    free_port,
    reconcile,
    run_raters,
)
from studykit import answer_current, make_study, rating_session

from perceptlab.studies.models import Item, Judgment

RATERS = 100
DURATION_S = 30.0
KILL_AT_S = 10.0  # or later, once ACKS_BEFORE_KILL judgments were acknowledged
ACKS_BEFORE_KILL = 10  # raters are rating, so the outage meets judgments in flight
PLAN = RaterPlan(method="2afc", think_s=(0.5, 1.5), reload_chance=0.05, duplicate_chance=0.05)
GRACE_S = 2.0  # after the server answers again, connections opened before still fail


@pytest.fixture
def server(settings, tmp_path: Path) -> Iterator[Gunicorn]:  # type: ignore[no-untyped-def]
    """gunicorn on the test database (committed data: a transactional test) and media."""
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "PERCEPTLAB_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PERCEPTLAB_VAR_DIR": str(tmp_path),
        "PERCEPTLAB_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gunicorn.log"
    web = Gunicorn(port=free_port(), env=env, workers=2, threads=4, log=log)
    web.start()
    yield web
    web.stop()


def _run_catching(coroutine: Coroutine[Any, Any, Any], failure: list[BaseException]) -> None:
    try:
        asyncio.run(coroutine)
    except BaseException as exc:  # re-raised in the test's thread
        failure.append(exc)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_acknowledged_judgments_survive_a_killed_web_server(server: Gunicorn) -> None:
    study = make_study("2afc", images=4, judgments_per_item=200, trials_per_session=10)
    ledger = Ledger()

    async def kill_and_restart(clock: Clock) -> None:
        latest = time.monotonic() + DURATION_S / 2
        await asyncio.sleep(KILL_AT_S)
        while len(ledger.acknowledged) < ACKS_BEFORE_KILL and time.monotonic() < latest:
            await asyncio.sleep(0.2)
        killed = time.monotonic()
        server.kill(workers_only=False)
        await asyncio.to_thread(server.start)
        ledger.outages.append((killed, time.monotonic() + GRACE_S))

    raters = run_raters(
        base_url=server.base_url,
        invite=str(study.invite),
        plan=PLAN,
        ledger=ledger,
        raters=RATERS,
        duration_s=DURATION_S,
        ramp_s=5.0,
        during=kill_and_restart,
    )
    # A browser test earlier in the same process leaves Playwright's event loop set in
    # this thread; the raters get a thread (and an event loop) of their own.
    failure: list[BaseException] = []
    runner = threading.Thread(target=_run_catching, args=(raters, failure))
    runner.start()
    runner.join()
    if failure:
        raise failure[0]

    result = reconcile(study_id=study.pk, ledger=ledger)
    print(*result.lines(), f"acknowledged after a retry: {len(ledger.retried)}", sep="\n")
    assert result.ok, "\n".join(result.lines())
    assert ledger.acknowledged, "no judgment was acknowledged"
    assert ledger.retried, "the kill met no judgment in flight"
    assert ledger.retried <= ledger.acknowledged.keys(), "a retried judgment never got through"
    assert not ledger.abandoned
    assert ledger.failures_outside_outages() == []
    assert ledger.duplicates_confirmed == ledger.duplicates_sent
    assert ledger.reload_mismatches == 0
    assert not ledger.rejected, f"judgments refused: {dict(ledger.rejected)}"


def _acknowledged(ledger: Ledger, judgment: Judgment) -> None:
    key = str(judgment.key)
    ledger.sent.add(key)
    ledger.acknowledged[key] = Ack(
        str(judgment.trial.session.code), judgment.trial.position, False, 0.0
    )


@pytest.mark.django_db
def test_reconciliation_holds_when_the_database_matches_the_raters() -> None:
    study = make_study("2afc", images=1, judgments_per_item=3, trials_per_session=3)
    ledger = Ledger()
    for _ in range(2):
        recorded = answer_current(rating_session(study))
        assert recorded is not None
        _acknowledged(ledger, recorded.judgment)

    result = reconcile(study_id=study.pk, ledger=ledger)

    assert result.ok, "\n".join(result.lines())
    assert (result.acknowledged, result.stored) == (2, 2)


@pytest.mark.django_db
def test_reconciliation_names_lost_misplaced_and_unsent_judgments_and_drifted_slots() -> None:
    study = make_study("2afc", images=1, judgments_per_item=3, trials_per_session=3)
    session = rating_session(study)
    first, second, unsent = (answer_current(session) for _ in range(3))
    assert first is not None and second is not None and unsent is not None
    ledger = Ledger()
    _acknowledged(ledger, first.judgment)
    _acknowledged(ledger, second.judgment)
    misplaced = str(second.judgment.key)
    ledger.acknowledged[misplaced] = Ack(str(session.code), 99, False, 0.0)
    lost = str(uuid.uuid4())
    ledger.sent.add(lost)
    ledger.acknowledged[lost] = Ack(str(session.code), 98, False, 0.0)
    Item.objects.filter(pk=first.judgment.trial.item_id).update(assigned=F("assigned") + 1)

    result = reconcile(study_id=study.pk, ledger=ledger)

    assert not result.ok
    assert result.missing == [lost]
    assert result.misplaced == [misplaced]
    assert result.phantom == [str(unsent.judgment.key)]
    assert len(result.slot_mismatches) == 1
    assert result.lines()[0] == "reconciliation: FAILED"
