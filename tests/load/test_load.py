"""The rater API under load, with the web server killed mid-run: nothing acknowledged is lost.

100 virtual raters (``harness.py``) rate a 2AFC study for 30 s against gunicorn serving the
test database; 10 s in (later if fewer than 10 judgments were acknowledged by then),
gunicorn (master and workers) is SIGKILLed and started again, and
the raters retry through the outage with the same idempotency keys. The database must then
hold every acknowledged judgment exactly once, on its own trial, and nothing no rater
sent; one judgment per trial; every item's slot counter equal to its trials holding a
slot. No timing is asserted (the machine may be shared): ``bench/load.py`` measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the load harness needs aiohttp (the dev extra)")
pytest.importorskip("gunicorn", reason="gunicorn is not installed: .venv/bin/pip install gunicorn")

from django.db import connection
from harness import (
    Gunicorn,
    Ledger,
    RaterPlan,
    database_url,
    free_port,
    reconcile,
    run_raters,
)
from studykit import make_study

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RATERS = 100
DURATION_S = 30.0
KILL_AT_S = 10.0  # or later, once ACKS_BEFORE_KILL judgments were acknowledged
ACKS_BEFORE_KILL = 10  # raters are rating, so the outage meets judgments in flight
PLAN = RaterPlan(method="2afc", think_s=(0.5, 1.5), reload_chance=0.05, duplicate_chance=0.05)
GRACE_S = 2.0  # after the server answers again, connections opened before still fail


@pytest.fixture
def server(settings, tmp_path: Path) -> Iterator[Gunicorn]:  # type: ignore[no-untyped-def]
    """gunicorn on the test database (committed data: a transactional test) and media."""
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


def test_acknowledged_judgments_survive_a_killed_web_server(server: Gunicorn) -> None:
    study = make_study("2afc", images=4, judgments_per_item=200, trials_per_session=10)
    ledger = Ledger()

    async def kill_and_restart() -> None:
        latest = time.monotonic() + DURATION_S / 2
        await asyncio.sleep(KILL_AT_S)
        while len(ledger.acknowledged) < ACKS_BEFORE_KILL and time.monotonic() < latest:
            await asyncio.sleep(0.2)
        killed = time.monotonic()
        server.kill(workers_only=False)
        await asyncio.to_thread(server.start)
        ledger.outages.append((killed - PLAN.timeout_s, time.monotonic() + GRACE_S))

    asyncio.run(
        run_raters(
            base_url=server.base_url,
            invite=str(study.invite),
            plan=PLAN,
            ledger=ledger,
            raters=RATERS,
            duration_s=DURATION_S,
            ramp_s=5.0,
            during=kill_and_restart,
        )
    )

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
