"""From a study's settings to stimuli and items: crop plan, generation jobs, build.

1. ``ensure_crop_plan``: one StudyImage per image of the set, with its crop position.
2. ``plan_generation``: one generation job per (image, codec, target bpp), plus the gold
   (heavily compressed, fixed parameters) for 2AFC; the jobs are the foundation's, so
   asking twice finds the same jobs and reconstructions shared with other studies.
3. ``build_stimuli``: once the jobs are done, cut every reconstruction (and the original)
   to the image's crop, store it as a metadata-free PNG under a random token, and create
   the items (ACR/DCR: one per stimulus; 2AFC: the pair plan's pairs) and gold items.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction

from perceptlab.codecs.files import read_bytes, store_verified
from perceptlab.codecs.generation import JobRequest, plan_jobs, progress, request_key
from perceptlab.codecs.models import GenerationJob, Reconstruction, SourceImage
from perceptlab.lib.images import decode_png, encode_png
from perceptlab.studies.models import Item, Method, Stimulus, Study, StudyImage
from perceptlab.studies.planners import planner_for


class StudyNotReady(Exception):
    """The study cannot be built or launched yet; ``reason`` says why and what to do."""

    def __init__(self, study: Study, reason: str) -> None:
        super().__init__(f"study {study.name!r}: {reason}")
        self.reason = reason


def crop_position(study: Study, source: SourceImage) -> tuple[int, int]:
    """Top-left corner of the image's crop for the study's crop mode."""
    width = min(study.crop_width, source.width)
    height = min(study.crop_height, source.height)
    if study.crop_mode == Study.CropMode.RANDOM:
        rng = random.Random(f"{study.seed}:{source.pixels_sha256}")
        return rng.randint(0, source.width - width), rng.randint(0, source.height - height)
    return (source.width - width) // 2, (source.height - height) // 2


def ensure_crop_plan(*, study: Study) -> list[StudyImage]:
    """Create the crop plan on first use (all images of the set); keep an edited one."""
    if not study.study_images.exists():
        for source in study.image_set.images.all():
            x, y = crop_position(study, source)
            StudyImage.objects.get_or_create(
                study=study, source=source, defaults={"crop_x": x, "crop_y": y}
            )
    return list(study.study_images.select_related("source", "study"))


def _requests(study: Study) -> list[JobRequest]:
    requests = [
        JobRequest(codec=c, target_bpp=float(b)) for c in study.codecs for b in study.target_bpps
    ]
    if study.is_pairwise and (study.gold_trials or study.practice_trials):
        requests.append(JobRequest(codec=study.gold_codec, fixed_params=study.gold_params or {}))
    return requests


def plan_generation(*, study: Study) -> list[GenerationJob]:
    """The study's generation jobs (created on first call, found afterwards); failed
    jobs are reset to pending, so generating again retries them."""
    if not study.codecs or not study.target_bpps:
        raise StudyNotReady(study, "choose at least one codec and one target bpp")
    images = ensure_crop_plan(study=study)
    if not images:
        raise StudyNotReady(study, f"image set {study.image_set.name!r} has no images")
    return plan_jobs(sources=[si.source for si in images], requests=_requests(study))


@dataclass(frozen=True)
class PlannedJobs:
    jobs: list[GenerationJob]  # those that exist, in any state
    unplanned: int  # (image, codec, target) with no job yet: "Generate stimuli" makes them


def study_jobs(*, study: Study) -> PlannedJobs:
    """The study's jobs as they stand, read-only (nothing created, nothing retried)."""
    requests = _requests(study)
    keys = {
        request_key(si.source, request)
        for si in study.study_images.select_related("source")
        for request in requests
    }
    jobs = list(GenerationJob.objects.filter(key__in=keys).select_related("source"))
    return PlannedJobs(jobs=jobs, unplanned=len(keys) - len(jobs))


def _crop_png(study_image: StudyImage, pixels: np.ndarray) -> tuple[str, str]:
    x, y, width, height = study_image.crop_box()
    crop = np.ascontiguousarray(pixels[y : y + height, x : x + width])
    return store_verified(encode_png(crop), folder="stimuli", extension="png")


def _stimulus(
    study_image: StudyImage,
    role: str,
    reconstruction: Reconstruction | None,
    *,
    same_pixels_as: Stimulus | None = None,
) -> Stimulus:
    """Find or make the stimulus; ``same_pixels_as`` reuses another's crop file (the
    hidden reference shows the original's pixels under a token of its own)."""
    lookup = {"study_image": study_image, "role": role, "reconstruction": reconstruction}
    found = Stimulus.objects.filter(**lookup).first()
    if found is not None:
        return found
    if same_pixels_as is not None:
        name, digest = str(same_pixels_as.png.name), same_pixels_as.png_sha256
    else:
        png_file = reconstruction.png if reconstruction is not None else study_image.source.png
        name, digest = _crop_png(study_image, decode_png(read_bytes(str(png_file.name))))
    return Stimulus.objects.create(study=study_image.study, png=name, png_sha256=digest, **lookup)


@dataclass
class BuildReport:
    stimuli: int = 0
    test_items: int = 0
    gold_items: int = 0
    missing: list[str] = field(default_factory=list)


def build_stimuli(*, study: Study) -> BuildReport:
    """Cut crops and create items from the finished jobs; refuses while jobs still run.

    Failed jobs are skipped and listed in ``missing`` (the researcher sees which
    (image, codec, target) is absent); an image with fewer than two conditions gets no
    2AFC items.
    """
    planned = study_jobs(study=study)
    if planned.unplanned or not planned.jobs:
        missing = planned.unplanned or "all"
        raise StudyNotReady(study, f"{missing} stimuli not generated yet: generate them first")
    jobs = planned.jobs
    counts = progress(jobs)
    waiting = counts["pending"] + counts["running"]
    if waiting:
        raise StudyNotReady(
            study, f"{waiting} generation job(s) not finished yet ({counts}); run the worker"
        )
    report = BuildReport()
    done: dict[int, list[GenerationJob]] = defaultdict(list)
    for job in jobs:
        if job.state == GenerationJob.State.DONE:
            done[job.source_id].append(job)
        else:
            report.missing.append(f"{job.source.name} · {job.codec}: {job.error or job.state}")
    with transaction.atomic():
        for study_image in ensure_crop_plan(study=study):
            _build_image(study, study_image, done[study_image.source_id], report)
    report.stimuli = study.stimuli.count()
    report.test_items = study.items.filter(kind=Item.Kind.TEST).count()
    report.gold_items = study.items.filter(kind=Item.Kind.GOLD).count()
    return report


def _is_gold_job(study: Study, job: GenerationJob) -> bool:
    return job.fixed_params is not None and job.codec == study.gold_codec


def _build_image(
    study: Study, study_image: StudyImage, jobs: list[GenerationJob], report: BuildReport
) -> None:
    original = _stimulus(study_image, Stimulus.Role.ORIGINAL, None)  # the reference shown
    hidden = _stimulus(study_image, Stimulus.Role.HIDDEN, None, same_pixels_as=original)
    conditions, gold = [], None
    for job in sorted(jobs, key=lambda j: (j.codec, j.target_bpp or 0.0)):
        reconstruction = job.reconstruction
        if reconstruction is None:
            continue
        if _is_gold_job(study, job):
            gold = _stimulus(study_image, Stimulus.Role.GOLD, reconstruction)
        else:
            conditions.append(_stimulus(study_image, Stimulus.Role.CONDITION, reconstruction))
    if study.method == Method.AFC2:
        for a, b in planner_for(study).pairs(study=study, conditions=conditions):
            Item.objects.get_or_create(study=study, kind=Item.Kind.TEST, a=a, b=b)
        if gold is not None:
            # The original among the candidates, against a heavily compressed version.
            Item.objects.get_or_create(
                study=study, kind=Item.Kind.GOLD, a=hidden, b=gold, defaults={"expected": "a"}
            )
        return
    singles = conditions + ([hidden] if study.hidden_reference else [])
    for stimulus in singles:
        Item.objects.get_or_create(study=study, kind=Item.Kind.TEST, a=stimulus, b=None)
    # ACR: the original rated as if a reconstruction (expected high); DCR: the reference
    # against itself (expected "imperceptible").
    Item.objects.get_or_create(study=study, kind=Item.Kind.GOLD, a=hidden, b=None)


def reference_of(stimulus: Stimulus) -> Stimulus:
    """The original of the stimulus's image (shown as the reference in DCR and 2AFC)."""
    return Stimulus.objects.get(study_image_id=stimulus.study_image_id, role=Stimulus.Role.ORIGINAL)
