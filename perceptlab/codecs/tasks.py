"""Background tasks (django-tasks): one task per generation job, and their recovery.

Run by ``manage.py db_worker`` with the database backend; tests and
``PERCEPTLAB_TASKS=immediate`` run them inline.

django-tasks-db marks a task RUNNING when a worker takes it and never looks at it again,
so a worker killed with SIGKILL leaves its task RUNNING for ever, and its job either
``running`` with a lease that lapses, or still ``pending`` (killed between taking the task
and claiming the job). :func:`reclaim_jobs` finds both and enqueues them again;
``manage.py reclaim_jobs`` runs it, and so does every ``db_worker`` when it starts and
every ``WORKER_MAINTENANCE_SECONDS`` (see ``perceptlab/codecs/management/commands/``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import TaskResultStatus, task
from django_tasks_db import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from perceptlab.codecs.generation import release_expired, requeue_mark, run_job
from perceptlab.codecs.models import GenerationJob

logger = logging.getLogger("perceptlab.worker")
State = GenerationJob.State
LOST = "perceptlab.codecs.tasks.WorkerLost"
"""``exception_class_path`` written on the task row of a worker that was lost."""


@task()
def generate_reconstruction(job_id: int) -> int | None:
    """Run one generation job; returns the reconstruction's id (None if not ours or failed).
    A job that made its reconstruction is then handed to the other layers' hooks
    (``GENERATION_DONE_HOOKS``, e.g. a flicker ladder building its new rate at once); a
    hook that fails is logged, and the job stays done."""
    reconstruction = run_job(job_id)
    if reconstruction is None:
        return None
    run_hooks(settings.GENERATION_DONE_HOOKS, job_id, failed="generation hook %s failed")
    return reconstruction.pk


def run_hooks(paths: Iterable[str], *args: object, failed: str) -> None:
    """Call each function named by a dotted path in ``paths`` with ``args``, in order (the
    other layers' hooks: maintenance passes, finished jobs); one that raises is logged
    with ``failed`` (``%s``: its path) and the next one still runs."""
    for path in paths:
        try:
            import_string(path)(*args)
        except Exception:
            logger.exception(failed, path)


def enqueue_job(job_id: int) -> str:
    """Enqueue one job and record its task on the job; returns the task's id."""
    # Task row and task_id commit together (the immediate backend runs the job in enqueue).
    with transaction.atomic() if _keeps_task_rows() else nullcontext():
        result = generate_reconstruction.enqueue(job_id)
        GenerationJob.objects.filter(pk=job_id).update(task_id=str(result.id))
    return str(result.id)


def enqueue_jobs(jobs: list[GenerationJob]) -> int:
    """Enqueue every unfinished job; returns how many were enqueued."""
    count = 0
    for job in jobs:
        if job.state != State.DONE:
            enqueue_job(job.pk)
            count += 1
    return count


@dataclass(frozen=True)
class Reclaimed:
    """What one :func:`reclaim_jobs` pass did, by job id."""

    expired: list[int]
    """Running jobs whose lease had lapsed (their worker is gone): enqueued again."""
    orphaned: list[int]
    """Pending jobs whose task will never run them (gone, finished, stuck): enqueued again."""
    failed: list[int]
    """Jobs whose worker was lost ``GENERATION_MAX_ATTEMPTS`` times: failed, not enqueued."""

    def __bool__(self) -> bool:
        return bool(self.expired or self.orphaned or self.failed)


def reclaim_jobs(*, now: datetime | None = None) -> Reclaimed:
    """Enqueue again every job whose worker was lost.

    Safe to run from many workers at once: each job is taken back with a conditional
    UPDATE, so one of them enqueues it (a rare duplicate task finds the job claimed or
    done, and returns).
    """
    now = now or timezone.now()
    # With task rows, a job's release and its new task commit together: no other
    # reclaimer ever sees a released job without its task (and takes it as an orphan).
    # The immediate backend runs the job inside enqueue: no transaction around that.
    with transaction.atomic() if _keeps_task_rows() else nullcontext():
        released = release_expired(now=now)
        _close_lost_tasks([task_id for _, task_id in released.pending], now=now)
        expired = [job_id for job_id, _ in released.pending]
        for job_id in expired:
            enqueue_job(job_id)
    orphaned = [
        job_id for job_id, task_id in _orphans(now=now) if _requeue(job_id, task_id, now=now)
    ]
    return Reclaimed(expired=expired, orphaned=orphaned, failed=released.failed)


def _requeue(job_id: int, task_id: str, *, now: datetime) -> bool:
    """Enqueue an orphan again unless another reclaimer did (it changed ``task_id`` first)."""
    with transaction.atomic():
        taken = GenerationJob.objects.filter(pk=job_id, state=State.PENDING, task_id=task_id)
        if taken.update(task_id=requeue_mark()) != 1:
            return False
        _close_lost_tasks([task_id], now=now)
        enqueue_job(job_id)
    return True


def _keeps_task_rows() -> bool:
    return isinstance(generate_reconstruction.get_backend(), DatabaseBackend)


def _orphans(*, now: datetime) -> list[tuple[int, str]]:
    """(job id, task id) of enqueued pending jobs that no task will run.

    The job's task row is missing (pruned, or never written: see ``requeue_mark``),
    finished without running it, or RUNNING for longer than a lease on a worker that never
    claimed the job (it was killed in between). Only the database backend keeps task rows
    to look at; jobs never enqueued (``task_id`` blank) are left alone.
    """
    if not _keeps_task_rows():
        return []
    waiting = dict(
        GenerationJob.objects.filter(state=State.PENDING)
        .exclude(task_id="")
        .values_list("pk", "task_id")
    )
    if not waiting:
        return []
    stuck_before = now - timedelta(seconds=settings.GENERATION_LEASE_SECONDS)
    alive = DBTaskResult.objects.filter(
        Q(status=TaskResultStatus.READY)
        | Q(status=TaskResultStatus.RUNNING, started_at__gte=stuck_before),
        task_path=generate_reconstruction.module_path,
    )
    alive_ids = {str(task_id) for task_id in alive.values_list("id", flat=True)}
    return [(job_id, task_id) for job_id, task_id in waiting.items() if task_id not in alive_ids]


def _close_lost_tasks(task_ids: list[str], *, now: datetime) -> None:
    """Mark lost workers' RUNNING task rows failed, so nothing shows them running for ever."""
    if not _keeps_task_rows():
        return
    DBTaskResult.objects.filter(
        id__in=_task_uuids(task_ids), status=TaskResultStatus.RUNNING
    ).update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path=LOST,
        traceback="The worker running this task was lost; its job was enqueued again.\n",
    )


def _task_uuids(task_ids: Iterable[str]) -> list[uuid.UUID]:
    """The ids that can name a task row (``requeue_mark`` values cannot)."""
    uuids = []
    for task_id in task_ids:
        try:
            uuids.append(uuid.UUID(task_id))
        except ValueError:
            continue
    return uuids
