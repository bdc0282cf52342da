from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from tqdm import tqdm

from perceptlab.codecs.generation import parse_bpps, progress, run_job
from perceptlab.codecs.intake import IMAGE_SUFFIXES
from perceptlab.codecs.models import ImageSet
from perceptlab.codecs.registry import UnknownCodec, parse_slugs
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.evaluation.demo import ensure_example_studies, rate_example_studies
from perceptlab.studies.demo import (
    DEMO_BPPS,
    DEMO_CODECS,
    build_demo,
    ensure_demo_studies,
    ensure_gan_study,
    gan_codecs,
    launch_demo_studies,
    plan_demo_studies,
    skimage_photo_paths,
    study_codecs,
)
from perceptlab.studies.models import Study


class Command(BaseCommand):
    help = (
        "Build the demo: an image set of real photographs (scikit-image's, or --images DIR, "
        "e.g. the kodak folder that `manage.py fetch_dataset kodak` fills) encoded with "
        "every available classical codec at 0.25, 0.5 and 1.0 bpp; a live study of each "
        "method (ACR, DCR, 2AFC, BTC triplets) on them; and a staff account. Prints each "
        "study's rater link and the admin login last. "
        "Idempotent: run it again to reuse everything (and to launch studies whose stimuli "
        "were left to the worker with --enqueue)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--images", type=Path, help="folder of images instead of the built-in photos"
        )
        parser.add_argument("--set", dest="set_name", default="demo", help="image set name")
        parser.add_argument("--bpp", default=",".join(map(str, DEMO_BPPS)), help="target bpps")
        parser.add_argument(
            "--codecs",
            default=",".join(DEMO_CODECS),
            help="codecs to try (unavailable ones are skipped); the studies use jpeg, webp, "
            "avif and jxl among them",
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="leave the encoding to the worker (db_worker); the studies stay drafts until "
            "this command is run again after the worker has finished",
        )
        parser.add_argument("--admin-user", default="admin", help="staff account to create")
        parser.add_argument(
            "--no-gan",
            action="store_true",
            help="leave out the GAN-codec study (built when two GAN codecs have checkpoints "
            "whose model cards meet the photographic floor)",
        )
        parser.add_argument(
            "--demonstrators",
            action="store_true",
            help="let the GAN-codec study use checkpoints below the photographic floor "
            "(the shipped small ones are: see their model cards)",
        )
        parser.add_argument(
            "--base-url",
            default=os.environ.get("PERCEPTLAB_BASE_URL") or "http://127.0.0.1:8000",
            help="where the server is reached, for the printed links "
            "(default: $PERCEPTLAB_BASE_URL or http://127.0.0.1:8000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        images = self._images(options["images"])
        try:
            bpps = tuple(parse_bpps(options["bpp"]))
            codecs = parse_slugs(options["codecs"])
        except (ValueError, UnknownCodec) as exc:
            raise CommandError(str(exc)) from None
        plan = build_demo(set_name=options["set_name"], images=images, bpps=bpps, codecs=codecs)
        for reason in plan.rejected:
            self.stderr.write(f"rejected {reason}")
        for slug, reason in plan.skipped_codecs.items():
            self.stdout.write(f"codec {slug} skipped: {reason}")
        if not plan.codecs:
            raise CommandError(f"none of the codecs {codecs} is available here")
        studies = ensure_demo_studies(
            image_set=plan.image_set, codecs=study_codecs(plan.codecs), bpps=bpps
        )
        if not options["no_gan"]:
            studies += self._gan_study(plan.image_set, demonstrators=options["demonstrators"])
        examples = ensure_example_studies(
            image_set=plan.image_set, codecs=study_codecs(plan.codecs), bpps=bpps
        )
        planned = plan_demo_studies(studies=[*studies, *examples])
        jobs = {job.pk: job for job in [*plan.jobs, *planned]}
        if options["enqueue"]:
            self.stdout.write(f"enqueued {enqueue_jobs(list(jobs.values()))} job(s) for the worker")
        else:
            for job in tqdm(jobs.values(), desc="demo stimuli", unit="stimulus", file=self.stderr):
                run_job(job.pk)
        self.stdout.write(
            f"demo set {plan.image_set.name!r}: {plan.image_set.images.count()} images, "
            f"codecs {', '.join(plan.codecs)}; jobs {progress(list(jobs.values()))}"
        )
        base = options["base_url"].rstrip("/")
        links = []
        for outcome in launch_demo_studies(studies=studies):
            self.stdout.write(f"study {outcome.study.name}: {outcome.note}")
            for missing in outcome.missing:
                self.stdout.write(f"  missing: {missing}")
            path = reverse("studies:join", args=[outcome.study.invite])
            links.append(f"rater link ({outcome.study.method}): {base}{path}")
        links += self._examples(examples, base)
        if options["enqueue"]:
            self.stdout.write(
                "the studies launch once their stimuli exist: when the worker has finished, "
                "run `manage.py demo` again (or Build and Launch them in the admin)"
            )
        self.stdout.write("\n".join(links))
        self.stdout.write(f"admin: {base}{reverse('admin:index')}")
        self._admin_account(options["admin_user"])

    def _gan_study(self, image_set: ImageSet, *, demonstrators: bool) -> list[Study]:
        """The GAN-codec study when at least two GAN codecs have a checkpoint here (whose
        cards meet the photographic floor, unless ``demonstrators``)."""
        available, skipped = gan_codecs(demonstrators=demonstrators)
        if len(available) < 2:
            self.stdout.write(
                "no GAN-codec study: fewer than two GAN codecs qualify here ("
                + "; ".join(f"{slug}: {reason}" for slug, reason in skipped.items())
                + ")"
            )
            return []
        return [ensure_gan_study(image_set=image_set, codecs=available)]

    def _examples(self, examples: list[Study], base: str) -> list[str]:
        """Closed example studies rated by simulated raters, with their report links."""
        links = []
        for outcome in rate_example_studies(studies=examples):
            self.stdout.write(f"study {outcome.study.name}: {outcome.note}")
            if outcome.study.state == outcome.study.State.CLOSED:
                path = reverse("evaluation:report", args=[outcome.study.pk])
                links.append(f"report ({outcome.study.method}, simulated raters): {base}{path}")
        return links

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
            self.stdout.write(
                f"admin login: {username} (existing account, password unchanged; "
                f"reset it with `manage.py changepassword {username}`)"
            )
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"admin login: {username} / {password}")
