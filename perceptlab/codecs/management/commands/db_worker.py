"""``db_worker``: django-tasks-db's worker, plus the upkeep that a killed worker needs.

django-tasks-db has no periodic tasks and never revisits a task once taken, so this
command (which takes the place of its namesake: ``perceptlab.codecs`` is listed before
``django_tasks_db`` in ``INSTALLED_APPS``) runs :func:`maintain` once before the first
task — a restarted worker takes its own lost jobs back at once — and then every
``WORKER_MAINTENANCE_SECONDS`` from a daemon thread, so a worker that stays up also takes
over the jobs of one that died. Each pass is safe to run from many workers at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from perceptlab.codecs.tasks import reclaim_jobs, run_hooks

logger = logging.getLogger("perceptlab.worker")


def maintain() -> None:
    """One upkeep pass: re-enqueue lost workers' jobs, then the other layers' upkeep
    (``WORKER_MAINTENANCE_HOOKS``: live studies' slot counters, stored analyses); a hook
    that fails is logged and the next one still runs."""
    reclaimed = reclaim_jobs()
    if reclaimed:
        logger.warning(
            "reclaimed jobs of lost workers: expired %s, orphaned %s, failed %s",
            reclaimed.expired,
            reclaimed.orphaned,
            reclaimed.failed,
        )
    run_hooks(
        settings.WORKER_MAINTENANCE_HOOKS,
        failed="worker maintenance %s failed; trying again in the next pass",
    )


def _maintain_safely() -> None:
    try:
        maintain()
    except Exception:  # the worker must outlive a failed pass (e.g. a database restart)
        logger.exception("worker maintenance failed; trying again in the next pass")


def _maintain_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        _maintain_safely()
        connection.close()  # this thread's own connection; a new one next pass


class Command(DatabaseWorkerCommand):
    help = (
        "Run a database background worker; at its start and every "
        "PERCEPTLAB_MAINTENANCE_SECONDS it also enqueues again the jobs of lost workers, "
        "repairs drifted slot counters and requests the analyses of studies whose data "
        "changed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # With --reload the parent process only watches files; its child runs the tasks.
        if not options["reload"] or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
            _maintain_safely()
            threading.Thread(
                target=_maintain_every,
                args=(settings.WORKER_MAINTENANCE_SECONDS,),
                name="worker-maintenance",
                daemon=True,
            ).start()
        super().handle(*args, **options)
