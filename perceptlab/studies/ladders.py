"""Flicker ladders extended on demand: an adaptive flicker study (JPEG AIC-2) asks rate
control for a new rate where an image and codec's threshold is found to lie between (or
beyond) the rates its ladder has.

A study's ladder is first its target bpps. QUEST (:mod:`perceptlab.studies.adaptive`) asks
each (image, codec) at the level nearest its posterior mean threshold; with levels a
factor of 2 apart, the threshold falls between two of them and is pinned down only as far
as the psychometric function's spread lets two far-apart levels tell. So on each worker
maintenance pass (``WORKER_MAINTENANCE_HOOKS``) :func:`extend_ladders` looks at every live
adaptive flicker study (and when an added rate's job finishes, :func:`job_done` builds it
into its study at once, in the worker that ran it):

1. rates asked for earlier whose generation jobs are done are built into stimuli and items
   (``stimuli.build_stimuli``: the same crop, PNG and identical-pixel rules as every
   condition), so the ladder gains a level and QUEST can ask it at once;
2. a ladder (of a codec that encodes: an imported codec has only its files) that has not
   reached the target width, whose posterior mean lies more than
   :data:`GAP` (log2 bpp) from its nearest level, and within :data:`REACH` of the rates
   the study was designed with, gets a new rate at the posterior mean (3 significant
   digits): a generation job for that image and codec alone (``codecs.generation``: rate
   control to the target, real bitstream, bpp from its bytes), at most :data:`MOST_ADDED`
   per ladder and one waiting at a time.

The added rates are kept in ``Study.ladder_levels`` ({"<study image id>:<codec>": [bpp]});
the dashboard's generation counts and the build include their jobs. Rate control may land
off the target (a codec's step): the level is the bpp it achieved, as for every condition.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from django.db import transaction

from perceptlab.codecs.generation import JobRequest, plan_jobs, request_key
from perceptlab.codecs.models import GenerationJob
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.studies import adaptive
from perceptlab.studies.models import Method, Study, StudyImage
from perceptlab.studies.stimuli import (
    StudyNotReady,
    build_stimuli,
    imported_codecs,
    ladder_key,
    ladder_requests,
    study_jobs,
)

logger = logging.getLogger("perceptlab.ladders")

GAP = 0.35  # log2 bpp: a threshold more than ×1.27 away from every level gets a new rate
REACH = 1.0  # log2 bpp: new rates within ×2 of the designed ladder's lowest and highest
MOST_ADDED = 4  # rates added per (image, codec) ladder


@dataclass(frozen=True)
class Extension:
    """What one pass did to one study."""

    built: bool  # finished jobs of added rates were built into items
    requested: list[tuple[str, str, float]]  # (image, codec, bpp) rates asked for


def extend_ladders() -> int:
    """The maintenance hook: every live adaptive flicker study; returns the rates asked for."""
    asked = 0
    studies = Study.objects.filter(
        state=Study.State.LIVE, method=Method.FLICKER, sampling=Study.Sampling.ADAPTIVE
    )
    for study in studies:
        try:
            asked += len(extend_study(study).requested)
        except StudyNotReady as error:  # e.g. a job of the study still running: next pass
            logger.info("flicker ladders of %s wait: %s", study.name, error)
    return asked


def job_done(job_id: int) -> int:
    """The generation hook (``GENERATION_DONE_HOOKS``): a finished job that is a rate added
    to a live adaptive flicker study's ladder is built into that study now, so QUEST can
    ask the new level at once instead of after the next maintenance pass; nothing else is
    done here (new rates are asked for by the pass). A study with other jobs still running
    waits for the last of them (the build refuses before). Returns the studies built."""
    job = (
        GenerationJob.objects.filter(pk=job_id, state=GenerationJob.State.DONE)
        .select_related("source")
        .first()
    )
    if job is None or job.target_bpp is None:
        return 0
    built = 0
    studies = Study.objects.filter(
        state=Study.State.LIVE,
        method=Method.FLICKER,
        sampling=Study.Sampling.ADAPTIVE,
        study_images__source=job.source,
    ).distinct()
    for study in studies:
        study_image = study.study_images.filter(source=job.source).first()
        if study_image is None:
            continue
        added = (study.ladder_levels or {}).get(ladder_key(study_image, job.codec), [])
        if float(job.target_bpp) not in {float(b) for b in added}:
            continue
        try:
            with transaction.atomic():  # one build of a study at a time (two jobs at once)
                Study.objects.select_for_update().filter(pk=study.pk).first()
                built += _build_finished(study)
        except StudyNotReady as error:
            logger.info("flicker ladder of %s waits for its build: %s", study.name, error)
    return built


def extend_study(study: Study) -> Extension:
    """One pass over one study (see the module docstring)."""
    built = _build_finished(study)
    requested = []
    counts = adaptive.item_counts(study)
    images = {si.pk: si for si in study.study_images.select_related("source")}
    imported = set(imported_codecs(study))  # known only by their files: nothing to encode
    designed = [math.log2(float(b)) for b in study.target_bpps]
    low, high = min(designed) - REACH, max(designed) + REACH
    for (image_id, codec), state in sorted(adaptive.ladder_states(study, counts).items()):
        study_image = images.get(image_id)
        if state.done or study_image is None or not state.answered or codec in imported:
            continue
        mean = state.posterior.mean
        if min(abs(level - mean) for level in state.levels) <= GAP or not low <= mean <= high:
            continue
        bpp = float(f"{2.0**mean:.3g}")
        if _request(study, study_image, codec, bpp):
            requested.append((study_image.source.name, codec, bpp))
    return Extension(built, requested)


def _request(study: Study, study_image: StudyImage, codec: str, bpp: float) -> bool:
    """Add ``bpp`` to the ladder and plan and enqueue its job, unless the ladder has its
    :data:`MOST_ADDED` rates, has the rate, or still waits for one."""
    key = ladder_key(study_image, codec)
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        added = [float(b) for b in (locked.ladder_levels or {}).get(key, [])]
        if len(added) >= MOST_ADDED or bpp in added or _waiting(locked, study_image, codec):
            return False
        locked.ladder_levels = {**(locked.ladder_levels or {}), key: [*added, bpp]}
        locked.save(update_fields=["ladder_levels"])
    study.ladder_levels = locked.ladder_levels
    jobs = plan_jobs(sources=[study_image.source], requests=[JobRequest(codec, bpp)])
    enqueue_jobs(jobs)
    logger.info("flicker ladder %s · %s: asked for %g bpp", study_image.source.name, codec, bpp)
    return True


def _waiting(study: Study, study_image: StudyImage, codec: str) -> bool:
    """A rate added to this ladder whose job has not finished, or finished unbuilt."""
    requests = [r for r in ladder_requests(study, study_image) if r.codec == codec]
    if not requests:
        return False
    jobs = {job.target_bpp: job for job in _jobs(study_image, requests)}
    built = set(
        study.stimuli.filter(study_image=study_image, reconstruction__codec=codec).values_list(
            "reconstruction__target_bpp", flat=True
        )
    )
    for request in requests:
        job = jobs.get(request.target_bpp)
        if job is None or job.state in (GenerationJob.State.PENDING, GenerationJob.State.RUNNING):
            return True
        if job.state == GenerationJob.State.DONE and request.target_bpp not in built:
            return True
    return False


def _jobs(study_image: StudyImage, requests: list[JobRequest]) -> list[GenerationJob]:
    keys = [request_key(study_image.source, request) for request in requests]
    return list(GenerationJob.objects.filter(key__in=keys))


def _build_finished(study: Study) -> bool:
    """Build the study again when an added rate's job is done but has no stimulus yet and
    no job of the study is waiting (the build refuses while one is)."""
    if not study.ladder_levels:
        return False
    planned = study_jobs(study=study)
    done = [job for job in planned.jobs if job.state == GenerationJob.State.DONE]
    made = set(
        study.stimuli.exclude(reconstruction=None).values_list("reconstruction_id", flat=True)
    )
    if all(job.reconstruction_id in made for job in done if _is_added(study, job)):
        return False
    build_stimuli(study=study)
    return True


def _is_added(study: Study, job: GenerationJob) -> bool:
    return job.target_bpp is not None and float(job.target_bpp) not in {
        float(b) for b in study.target_bpps
    }
