from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from perceptlab.codecs.generation import parse_bpps, progress, run_job
from perceptlab.codecs.intake import IMAGE_SUFFIXES
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.studies.demo import DEMO_BPPS, build_demo, skimage_photo_paths


class Command(BaseCommand):
    help = (
        "Build the demo: an image set of real photographs (scikit-image's, or --images DIR, "
        "e.g. ../shared/datasets/kodak) encoded with every available classical codec at "
        "0.25, 0.5 and 1.0 bpp, and a staff account to look at it in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--images", type=Path, help="folder of images instead of the built-in photos"
        )
        parser.add_argument("--set", dest="set_name", default="demo", help="image set name")
        parser.add_argument("--bpp", default=",".join(map(str, DEMO_BPPS)), help="target bpps")
        parser.add_argument(
            "--enqueue", action="store_true", help="leave the encoding to the worker (db_worker)"
        )
        parser.add_argument("--admin-user", default="admin", help="staff account to create")

    def handle(self, *args: Any, **options: Any) -> None:
        images = self._images(options["images"])
        try:
            bpps = tuple(parse_bpps(options["bpp"]))
        except ValueError as exc:
            raise CommandError(f"--bpp {exc}") from None
        plan = build_demo(set_name=options["set_name"], images=images, bpps=bpps)
        for reason in plan.rejected:
            self.stderr.write(f"rejected {reason}")
        for slug, reason in plan.skipped_codecs.items():
            self.stdout.write(f"codec {slug} skipped: {reason}")
        if options["enqueue"]:
            self.stdout.write(f"enqueued {enqueue_jobs(plan.jobs)} job(s) for the worker")
        else:
            for job in tqdm(plan.jobs, desc="demo stimuli", unit="stimulus", file=self.stderr):
                run_job(job.pk)
        counts = progress(plan.jobs)
        self.stdout.write(
            f"demo set {plan.image_set.name!r}: {plan.image_set.images.count()} images, "
            f"codecs {', '.join(plan.codecs)}; jobs {counts}"
        )
        self._admin_account(options["admin_user"])

    def _images(self, folder: Path | None) -> list[Path]:
        if folder is None:
            return skimage_photo_paths()
        if not folder.is_dir():
            raise CommandError(f"--images {folder} is not a directory")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise CommandError(f"--images {folder} holds no image files")
        return paths

    def _admin_account(self, username: str) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin login: {username} (existing account, password unchanged)")
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"admin login: {username} / {password}")
