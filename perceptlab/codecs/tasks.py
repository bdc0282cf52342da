"""Background tasks (django-tasks): one task per generation job.

Run by ``manage.py db_worker`` with the database backend; tests and
``PERCEPTLAB_TASKS=immediate`` run them inline.
"""

from __future__ import annotations

from django_tasks import task

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.models import GenerationJob


@task()
def generate_reconstruction(job_id: int) -> int | None:
    """Run one generation job; returns the reconstruction's id (None if not ours or failed)."""
    reconstruction = run_job(job_id)
    return reconstruction.pk if reconstruction is not None else None


def enqueue_jobs(jobs: list[GenerationJob]) -> int:
    """Enqueue every unfinished job; returns how many were enqueued."""
    count = 0
    for job in jobs:
        if job.state != GenerationJob.State.DONE:
            generate_reconstruction.enqueue(job.pk)
            count += 1
    return count
