from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from perceptlab.codecs.tasks import reclaim_jobs


class Command(BaseCommand):
    help = (
        "Enqueue again the generation jobs of lost workers: running jobs whose lease expired, "
        "and enqueued pending jobs whose task is gone, finished or stuck. Jobs whose worker "
        "was lost PERCEPTLAB_JOB_MAX_ATTEMPTS times are failed instead. Every db_worker "
        "does this when it starts and every PERCEPTLAB_MAINTENANCE_SECONDS."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        reclaimed = reclaim_jobs()
        self.stdout.write(
            f"enqueued {len(reclaimed.expired)} job(s) with an expired lease and "
            f"{len(reclaimed.orphaned)} whose task was lost; "
            f"failed {len(reclaimed.failed)} that lost their worker too often"
        )
        for job_id in reclaimed.failed:
            self.stderr.write(f"FAILED job {job_id}: its worker was lost too often")
