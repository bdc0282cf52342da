"""Generation jobs whose worker dies: lease heartbeat, reclaim, and a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, get_commands
from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from studykit import make_study
from support import kodak_path

from perceptlab.codecs import generation
from perceptlab.codecs.generation import (
    Heartbeat,
    JobRequest,
    claim,
    plan_jobs,
    renew_lease,
    run_job,
)
from perceptlab.codecs.intake import import_file
from perceptlab.codecs.management.commands.db_worker import maintain
from perceptlab.codecs.models import GenerationJob, ImageSet, Reconstruction
from perceptlab.codecs.tasks import LOST, enqueue_jobs, reclaim_jobs
from perceptlab.studies.models import Item, Study

State = GenerationJob.State
REPO = Path(__file__).resolve().parents[2]


def make_jobs(*bpps: float, images: tuple[str, ...] = ("kodim23",)) -> list[GenerationJob]:
    image_set = ImageSet.objects.create(name="kodak")
    for name in images:
        assert import_file(image_set=image_set, path=kodak_path(name)).image is not None
    requests = [JobRequest("webp", bpp) for bpp in bpps]
    return plan_jobs(sources=image_set.images.all(), requests=requests)


@pytest.fixture
def database_tasks(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Enqueued tasks become task rows for a worker, as in production."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    yield


def take_task(task_id: str, *, started: timedelta = timedelta(0)) -> None:
    """What db_worker does before calling the task: mark its row RUNNING."""
    DBTaskResult.objects.filter(id=task_id).update(
        status=TaskResultStatus.RUNNING, started_at=timezone.now() - started
    )


def expire(job: GenerationJob) -> None:
    GenerationJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(1))


def lease_left(job: GenerationJob) -> float:
    lease_until = GenerationJob.objects.get(pk=job.pk).lease_until
    assert lease_until is not None
    return (lease_until - timezone.now()).total_seconds()


# --- the lease and its heartbeat ------------------------------------------------------


@pytest.mark.django_db
def test_a_lease_is_renewed_only_by_the_worker_running_the_job(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GENERATION_LEASE_SECONDS = 120
    [job] = make_jobs(0.5)
    assert claim(job.pk, worker="a")
    expire(job)
    assert not renew_lease(job.pk, worker="b")
    assert lease_left(job) < 0
    assert renew_lease(job.pk, worker="a")
    assert 110 < lease_left(job) <= 120
    GenerationJob.objects.filter(pk=job.pk).update(state=State.DONE)
    assert not renew_lease(job.pk, worker="a")


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_extends_the_lease_while_the_job_runs(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GENERATION_LEASE_SECONDS = 60
    [job] = make_jobs(0.5)
    assert claim(job.pk, worker="a")
    expire(job)
    with Heartbeat(job.pk, worker="a", interval=0.05) as heartbeat:
        deadline = time.monotonic() + 10
        while heartbeat.renewals < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert heartbeat.renewals >= 2 and not heartbeat.lost
    assert 50 < lease_left(job) <= 60
    renewals = heartbeat.renewals
    time.sleep(0.2)
    assert heartbeat.renewals == renewals  # stopped with the block


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stops_once_another_worker_took_the_job_over(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GENERATION_LEASE_SECONDS = 60
    [job] = make_jobs(0.5)
    assert claim(job.pk, worker="a")
    expire(job)
    assert claim(job.pk, worker="b")  # a's lease lapsed: b took the job over
    b_lease = GenerationJob.objects.get(pk=job.pk).lease_until
    with Heartbeat(job.pk, worker="a", interval=0.05) as heartbeat:
        deadline = time.monotonic() + 10
        while not heartbeat.lost and time.monotonic() < deadline:
            time.sleep(0.02)
    assert heartbeat.lost and heartbeat.renewals == 0
    job.refresh_from_db()
    assert job.worker == "b" and job.lease_until == b_lease


@pytest.mark.django_db(transaction=True)
def test_a_job_outlasting_its_lease_is_not_taken_over_while_its_worker_lives(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lease of 0.6 s renewed every 0.2 s, and an encode of 2 s (many codec calls).
    settings.GENERATION_LEASE_SECONDS = 0.6
    encode = generation._encode

    def slow_encode(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(2)
        return encode(*args, **kwargs)

    monkeypatch.setattr(generation, "_encode", slow_encode)
    [job] = make_jobs(0.5)
    results: list[Reconstruction | None] = []
    worker = threading.Thread(target=lambda: results.append(run_job(job.pk, worker="owner")))
    worker.start()
    owned = GenerationJob.objects.filter(pk=job.pk, state=State.RUNNING, worker="owner")
    deadline = time.monotonic() + 10
    while not owned.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    takeovers = 0
    try:
        while worker.is_alive():
            takeovers += claim(job.pk, worker="thief")  # refused while the lease is renewed
            time.sleep(0.05)
    finally:
        worker.join()
    assert takeovers == 0
    assert results[0] is not None
    job.refresh_from_db()
    assert job.state == State.DONE and job.worker == "owner" and job.attempts == 1


# --- reclaiming the jobs of lost workers ----------------------------------------------


@pytest.mark.django_db
def test_a_running_job_whose_lease_expired_is_enqueued_again(database_tasks) -> None:  # type: ignore[no-untyped-def]
    [job] = make_jobs(0.5)
    enqueue_jobs([job])
    job.refresh_from_db()
    old_task = job.task_id
    take_task(old_task)
    assert claim(job.pk, worker="killed")
    expire(job)
    reclaimed = reclaim_jobs()
    assert reclaimed.expired == [job.pk] and reclaimed.orphaned == [] == reclaimed.failed
    job.refresh_from_db()
    assert job.state == State.PENDING and job.worker == "" and job.task_id != old_task
    lost = DBTaskResult.objects.get(id=old_task)
    assert lost.status == TaskResultStatus.FAILED and lost.exception_class_path == LOST
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.READY
    assert not reclaim_jobs()  # nothing more to do


@pytest.mark.django_db
def test_pending_jobs_whose_task_is_stuck_gone_or_finished_are_enqueued_again(
    database_tasks: None, settings: Any
) -> None:
    stuck, gone, finished, waiting = make_jobs(0.25, 0.5, 0.75, 1.0)
    enqueue_jobs([stuck, gone, finished, waiting])
    tasks = dict(GenerationJob.objects.values_list("pk", "task_id"))
    # Killed between taking the task and claiming the job, longer ago than a lease:
    take_task(tasks[stuck.pk], started=timedelta(seconds=settings.GENERATION_LEASE_SECONDS + 1))
    DBTaskResult.objects.filter(id=tasks[gone.pk]).delete()  # pruned
    DBTaskResult.objects.filter(id=tasks[finished.pk]).update(status=TaskResultStatus.SUCCESSFUL)
    reclaimed = reclaim_jobs()
    assert sorted(reclaimed.orphaned) == sorted([stuck.pk, gone.pk, finished.pk])
    assert reclaimed.expired == []
    now = dict(GenerationJob.objects.values_list("pk", "task_id"))
    assert now[waiting.pk] == tasks[waiting.pk]  # its READY task will run it
    for job in (stuck, gone, finished):
        assert DBTaskResult.objects.get(id=now[job.pk]).status == TaskResultStatus.READY
    assert DBTaskResult.objects.get(id=tasks[stuck.pk]).exception_class_path == LOST


@pytest.mark.django_db
def test_live_and_never_enqueued_jobs_are_left_alone(database_tasks) -> None:  # type: ignore[no-untyped-def]
    running, starting, _never_enqueued, done = make_jobs(0.25, 0.5, 0.75, 1.0)
    enqueue_jobs([running, starting])
    tasks = dict(GenerationJob.objects.values_list("pk", "task_id"))
    take_task(tasks[running.pk])
    assert claim(running.pk, worker="alive")
    take_task(tasks[starting.pk])  # a worker just took it; the job is not claimed yet
    GenerationJob.objects.filter(pk=done.pk).update(state=State.DONE)
    before = list(GenerationJob.objects.values_list("pk", "state", "task_id", "lease_until"))
    assert not reclaim_jobs()
    assert list(GenerationJob.objects.values_list("pk", "state", "task_id", "lease_until")) == (
        before
    )
    assert DBTaskResult.objects.count() == 2


@pytest.mark.django_db
def test_a_job_that_keeps_losing_its_worker_is_failed_with_the_reason(settings) -> None:  # type: ignore[no-untyped-def]
    settings.GENERATION_MAX_ATTEMPTS = 2
    [job] = make_jobs(0.5)
    for worker in ("first", "second"):
        assert claim(job.pk, worker=worker)
        expire(job)
    reclaimed = reclaim_jobs()
    assert reclaimed.failed == [job.pk] and reclaimed.expired == []
    job.refresh_from_db()
    assert job.state == State.FAILED and "worker lost 2 times (last: second)" in job.error
    [again] = plan_jobs(sources=[job.source], requests=[JobRequest("webp", 0.5)])
    assert again.pk == job.pk and again.state == State.PENDING and again.attempts == 0


@pytest.mark.django_db
def test_with_the_immediate_backend_a_reclaimed_job_runs_at_once() -> None:
    [job] = make_jobs(0.5)
    assert claim(job.pk, worker="killed")
    expire(job)
    assert reclaim_jobs().expired == [job.pk]
    job.refresh_from_db()
    assert job.state == State.DONE and job.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_workers_reclaiming_at_once_enqueue_each_lost_job_once(database_tasks) -> None:  # type: ignore[no-untyped-def]
    jobs = make_jobs(0.25, 0.5, 0.75, 1.0)
    enqueue_jobs(jobs)
    for job in jobs:
        take_task(GenerationJob.objects.get(pk=job.pk).task_id)
        assert claim(job.pk, worker="killed")
        expire(job)
    barrier = threading.Barrier(3)
    found: list[int] = []
    errors: list[BaseException] = []

    def reclaim() -> None:
        try:
            barrier.wait()
            found.extend(reclaim_jobs().expired)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reclaim) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(found) == sorted(job.pk for job in jobs)
    assert DBTaskResult.objects.filter(status=TaskResultStatus.READY).count() == len(jobs)


@pytest.mark.django_db
def test_reclaim_jobs_reports_what_it_did(database_tasks, capsys) -> None:  # type: ignore[no-untyped-def]
    [job] = make_jobs(0.5)
    enqueue_jobs([job])
    assert claim(job.pk, worker="killed")
    expire(job)
    call_command("reclaim_jobs")
    assert "enqueued 1 job(s) with an expired lease and 0 whose task was lost" in (
        capsys.readouterr().out
    )


def test_db_worker_is_the_one_that_reclaims() -> None:
    assert get_commands()["db_worker"] == "perceptlab.codecs"


@pytest.mark.django_db
def test_a_worker_pass_reclaims_lost_jobs_and_repairs_live_studies(database_tasks: None) -> None:
    live, draft = make_study(images=1), make_study(images=1, state=Study.State.DRAFT)
    Item.objects.filter(study__in=[live, draft]).update(assigned=F("assigned") + 1)
    [job] = make_jobs(0.5)
    enqueue_jobs([job])
    assert claim(job.pk, worker="killed")
    expire(job)
    maintain()
    assert GenerationJob.objects.get(pk=job.pk).state == State.PENDING
    assert set(live.items.values_list("assigned", flat=True)) == {0}
    assert set(draft.items.values_list("assigned", flat=True)) == {1}  # not rated: left


# --- a real worker killed with SIGKILL ------------------------------------------------


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"]
    command += ["--interval", "0.1", "--worker-id", name]
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition, *, timeout: float, what: str, logs: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(p.read_text()[-3000:] for p in sorted(logs.glob("*.log")))
            pytest.fail(f"no {what} within {timeout} s; worker logs:\n{output}")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_leaves_no_job_behind(database_tasks, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    jobs = make_jobs(0.25, 0.5, 0.75, 1.0, images=("kodim23", "kodim05", "kodim01"))
    enqueue_jobs(jobs)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PERCEPTLAB_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PERCEPTLAB_TASKS": "database",
        "PERCEPTLAB_LEASE_SECONDS": "10",
        "PERCEPTLAB_MAINTENANCE_SECONDS": "1",
    }
    running = GenerationJob.objects.filter(state=State.RUNNING)
    done = GenerationJob.objects.filter(state=State.DONE)
    workers = [start_worker("first", env, tmp_path)]
    try:
        # Kill it mid-job: a job claimed 0.1 s ago is still encoding (a job takes ~0.4 s).
        wait_for(
            lambda: (
                done.exists()
                and running.filter(started__lt=timezone.now() - timedelta(seconds=0.1)).exists()
            ),
            timeout=60,
            what="job running on the first worker",
            logs=tmp_path,
        )
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        stuck = list(running.values_list("pk", flat=True))
        assert stuck and done.count() < len(jobs)
        workers.append(start_worker("second", env, tmp_path))
        wait_for(
            lambda: done.count() == len(jobs), timeout=120, what="every job done", logs=tmp_path
        )
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    assert Reconstruction.objects.count() == len(jobs)
    for job in GenerationJob.objects.filter(pk__in=stuck):
        assert job.attempts == 2 and job.worker.endswith(f":{workers[1].pid}")
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    assert DBTaskResult.objects.filter(exception_class_path=LOST).count() == len(stuck)
