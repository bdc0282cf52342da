"""From a study's settings to stimuli and items: crop plan, generation jobs, build.

1. ``ensure_crop_plan``: one StudyImage per image of the set, with its crop position.
2. ``plan_generation``: one generation job per (image, codec, target bpp), plus the gold
   (heavily compressed, fixed parameters) where gold or practice items show it; the jobs
   are the foundation's, so asking twice finds the same jobs and reconstructions shared
   with other studies. An imported codec (decoded images imported as files) gets no job:
   ``imported_plan`` takes, per image and target, its imported point nearest the target
   (nearest in ratio, ``|log(bpp / target)|``; a tie goes to the lower rate). A point
   nearest to two targets stands for the one it is nearer to; the other target has no
   stimulus of that image, and the build lists it as missing.
3. ``build_stimuli``: once the jobs are done, cut every reconstruction (and the original)
   to the image's crop, store it as a metadata-free PNG under a random token, and create
   the items (ACR/DCR: one per stimulus; 2AFC: the pair plan's pairs; triplet: the triplet
   design's pairs of sides and one bias triplet per image), the gold items (triplet: the
   trap) and the ACR/DCR practice items. A BTC triplet study stores its crops boosted
   (``perceptlab.lib.boost.boosted_pair``: amplified against the original with the study's α,
   the centred half zoomed ×2); its original is stored zoomed the same way, so pivot and
   sides share one geometry.

What a build refuses to ask (reported in :class:`BuildReport`): a 2AFC choice between two
pixel-identical crops, and a gold whose pixels are the original's (no right answer). The
reference shown beside a candidate never shares its file's bytes with any candidate: the
hidden reference and every condition are stored with :func:`encode_png`, the reference
alone with other zlib settings (:func:`reencoded_png`), so comparing files (or their
zlib headers) tells a script nothing about which candidate is the original.
"""

from __future__ import annotations

import functools
import io
import json
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.db.models import F, Q
from PIL import Image

from perceptlab.codecs.files import read_bytes, store_verified
from perceptlab.codecs.generation import JobRequest, plan_jobs, progress, request_key
from perceptlab.codecs.models import GenerationJob, Reconstruction, SourceImage
from perceptlab.codecs.ratecontrol import TOLERANCE
from perceptlab.codecs.registry import imported_entries
from perceptlab.lib.boost import boosted_pair
from perceptlab.lib.images import Pixels, decode_png, encode_png, pixels_sha256, sha256_hex
from perceptlab.studies.models import (
    Item,
    Method,
    Stimulus,
    Study,
    StudyImage,
    default_gold_params,
)
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


def uses_gold(study: Study) -> bool:
    """Whether the study shows the gold codec's heavy compression: as the 2AFC gold (in
    gold and practice trials), or as the degraded ACR/DCR practice image."""
    if study.is_pairwise:
        return bool(study.gold_trials or study.practice_trials)
    return bool(study.practice_trials)


def gold_params(study: Study) -> dict[str, object]:
    """The gold's parameters; empty ones mean the default (JPEG quality 5), never the
    codec's own default (JPEG quality 75 is no gold)."""
    return dict(study.gold_params or default_gold_params())


def imported_codecs(study: Study) -> list[str]:
    """The study's imported codecs: no jobs, their stimuli are the researcher's files."""
    imported = imported_entries()
    return [slug for slug in study.codecs if slug in imported]


def _requests(study: Study) -> list[JobRequest]:
    imported = set(imported_codecs(study)) if study.codecs else set()
    generated = [c for c in study.codecs if c not in imported]
    requests = [
        JobRequest(codec=c, target_bpp=float(b)) for c in generated for b in study.target_bpps
    ]
    if uses_gold(study):
        requests.append(JobRequest(codec=study.gold_codec, fixed_params=gold_params(study)))
    return requests


def ladder_key(study_image: StudyImage, codec: str) -> str:
    """The key of one image and codec's ladder in ``Study.ladder_levels``."""
    return f"{study_image.pk}:{codec}"


def ladder_requests(study: Study, study_image: StudyImage) -> list[JobRequest]:
    """The rates added on demand to this image's ladders (``studies.ladders``)."""
    added = study.ladder_levels or {}
    return [
        JobRequest(codec=codec, target_bpp=float(bpp))
        for codec in study.codecs
        for bpp in added.get(ladder_key(study_image, codec), [])
    ]


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
class ImportedPick:
    """An imported codec's condition for one image: its point nearest the target."""

    source_id: int
    codec: str
    target_bpp: float
    reconstruction: Reconstruction


@dataclass(frozen=True)
class ImportedPlan:
    picks: list[ImportedPick]
    missing: list[str]
    """(image, codec, target)s with no stimulus: no imported point of the image, or its
    nearest point already stands for another target."""


def rate_distance(bpp: float, target: float) -> float:
    """How far a point lies from a target, in ratio: ``|log(bpp / target)|``."""
    return abs(math.log(bpp / target))


def imported_plan(*, study: Study) -> ImportedPlan:
    """Per crop-plan image, imported codec and target, the imported point nearest the target
    (the module docstring gives the rule); reads only, creates nothing."""
    codecs = imported_codecs(study)
    images = list(study.study_images.select_related("source"))
    points: dict[tuple[int, str], list[Reconstruction]] = defaultdict(list)
    for r in Reconstruction.objects.filter(
        codec__in=codecs, imported__isnull=False, source__in=[si.source for si in images]
    ).order_by("achieved_bpp", "pk"):
        points[(r.source_id, r.codec)].append(r)
    picks: list[ImportedPick] = []
    missing: list[str] = []
    targets = sorted(float(b) for b in study.target_bpps)
    for study_image in images:
        source = study_image.source
        for codec in codecs:
            found = points[(source.pk, codec)]
            if not found:
                missing.append(
                    f"{source.name} · {codec}: no imported reconstruction of this image; "
                    "import it (manage.py import_reconstructions) or take the image out of "
                    "the crop plan"
                )
                continue
            picks += _nearest(source, codec, found, targets, missing)
    return ImportedPlan(picks=picks, missing=missing)


def _nearest(
    source: SourceImage,
    codec: str,
    points: list[Reconstruction],
    targets: list[float],
    missing: list[str],
) -> list[ImportedPick]:
    """Each target's nearest point; a point claimed by two targets goes to the nearer one."""
    best: dict[int, tuple[float, float, Reconstruction]] = {}
    for target in targets:
        point = min(points, key=lambda r: (rate_distance(r.achieved_bpp, target), r.achieved_bpp))
        distance = rate_distance(point.achieved_bpp, target)
        held = best.get(point.pk)
        if held is None or distance < held[0]:
            if held is not None:
                missing.append(_merged(source, codec, held[1], point, target))
            best[point.pk] = (distance, target, point)
        else:
            missing.append(_merged(source, codec, target, point, held[1]))
    return [ImportedPick(source.pk, codec, t, r) for _, t, r in best.values()]


def _merged(
    source: SourceImage, codec: str, left: float, point: Reconstruction, kept: float
) -> str:
    return (
        f"{source.name} · {codec} at {left:g} bpp: its nearest imported point "
        f"({point.point}, {point.achieved_bpp:.3f} bpp) stands for {kept:g} bpp; import a "
        f"point nearer {left:g} bpp"
    )


@dataclass(frozen=True)
class PlannedJobs:
    jobs: list[GenerationJob]  # those that exist, in any state
    unplanned: int  # (image, codec, target) with no job yet: "Generate stimuli" makes them


def study_jobs(*, study: Study) -> PlannedJobs:
    """The study's jobs as they stand, read-only (nothing created, nothing retried),
    the rates an adaptive flicker study added to its ladders included."""
    requests = _requests(study)
    keys = set()
    for si in study.study_images.select_related("source"):
        for request in [*requests, *ladder_requests(study, si)]:
            keys.add(request_key(si.source, request))
    jobs = list(GenerationJob.objects.filter(key__in=keys).select_related("source"))
    return PlannedJobs(jobs=jobs, unplanned=len(keys) - len(jobs))


def _crop(study_image: StudyImage, pixels: Pixels) -> Pixels:
    x, y, width, height = study_image.crop_box()
    return np.ascontiguousarray(pixels[y : y + height, x : x + width])


def reencoded_png(pixels: Pixels, *, unlike: str) -> bytes:
    """A lossless PNG of ``pixels`` whose SHA-256 is not ``unlike``: Pillow at other zlib
    levels than :func:`encode_png`'s (the zlib header alone then differs), no metadata
    chunks. Raises ValueError if no setting gives other bytes with the same pixels."""
    for level in (9, 6, 0):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=level)
        data = buffer.getvalue()
        if sha256_hex(data) != unlike and np.array_equal(decode_png(data), pixels):
            return data
    raise ValueError(f"no lossless PNG of these pixels differs from the file {unlike}")


@functools.lru_cache(maxsize=1)
def _decoded(name: str) -> Pixels:
    """A stored PNG's pixels, read-only; the last one kept: a BTC build boosts every stimulus
    of an image against the same original, which is then read and decoded once."""
    pixels = decode_png(read_bytes(name))
    pixels.flags.writeable = False
    return pixels


def _shown(study_image: StudyImage, pixels: Pixels, alpha: float | None) -> Pixels:
    """What a rater sees of ``pixels``: the crop, or in a BTC study its boosted version."""
    if alpha is None:
        return _crop(study_image, pixels)
    reference = _decoded(str(study_image.source.png.name))
    return boosted_pair(reference, pixels, study_image.crop_box(), alpha)[1]


def _crop_png(
    study_image: StudyImage, pixels: Pixels, role: str, alpha: float | None
) -> tuple[str, str]:
    crop = _shown(study_image, pixels, alpha)
    data = encode_png(crop)
    if role == Stimulus.Role.ORIGINAL:
        data = reencoded_png(crop, unlike=sha256_hex(data))
    return store_verified(data, folder="stimuli", extension="png")


def _stimulus(
    study_image: StudyImage,
    role: str,
    reconstruction: Reconstruction | None,
    target_bpp: float | None = None,
) -> Stimulus:
    """Find or make the stimulus; the hidden reference shows the original's pixels under a
    token and a file of its own. ``target_bpp``: the study target an imported point stands
    for (kept up to date: the study's targets may have changed since the last build). A
    stimulus stored with another boost than the study's now (the triplet mode or α changed
    before launch) is drawn again under its token."""
    study = study_image.study
    alpha = study.boost_alpha if study.is_boosted else None
    lookup = {"study_image": study_image, "role": role, "reconstruction": reconstruction}
    found = Stimulus.objects.filter(**lookup).first()
    if found is not None:
        if found.target_bpp != target_bpp:
            found.target_bpp = target_bpp
            found.save(update_fields=["target_bpp"])
        if found.boost_alpha != alpha:
            found.png, found.png_sha256 = _render(study_image, role, reconstruction, alpha)
            found.boost_alpha = alpha
            found.save(update_fields=["png", "png_sha256", "boost_alpha"])
        return found
    name, digest = _render(study_image, role, reconstruction, alpha)
    return Stimulus.objects.create(
        study=study,
        png=name,
        png_sha256=digest,
        target_bpp=target_bpp,
        boost_alpha=alpha,
        **lookup,
    )


def _render(
    study_image: StudyImage, role: str, reconstruction: Reconstruction | None, alpha: float | None
) -> tuple[str, str]:
    if reconstruction is None:  # the original, hidden or shown: pixels a BTC build reuses
        pixels = _decoded(str(study_image.source.png.name))
    else:
        pixels = decode_png(read_bytes(str(reconstruction.png.name)))
    return _crop_png(study_image, pixels, role, alpha)


def _give_own_bytes(original: Stimulus, hidden: Stimulus) -> None:
    """Studies built before the reference had a file of its own: re-store it."""
    if original.png_sha256 != hidden.png_sha256:
        return
    pixels = decode_png(read_bytes(str(original.png.name)))
    data = reencoded_png(pixels, unlike=original.png_sha256)
    name, original.png_sha256 = store_verified(data, folder="stimuli", extension="png")
    original.png = name
    original.save(update_fields=["png", "png_sha256"])


def describe(stimulus: Stimulus) -> str:
    """The stimulus's condition in the researcher's words: codec, target and achieved bpp
    (an imported one: its point, and whether its bpp was declared rather than measured)."""
    r = stimulus.reconstruction
    if r is None:
        return "the original"
    declared = ", declared" if r.bpp_is_declared else ""
    target = stimulus.target()
    if target is None:
        params = json.dumps(r.params, sort_keys=True)
        return f"{r.codec} {params} ({r.achieved_bpp:.3f} bpp{declared})"
    point = f" point {r.point}" if r.point else ""
    return f"{r.codec}{point} at {target:g} bpp (achieved {r.achieved_bpp:.3f}{declared})"


@dataclass(frozen=True)
class CropNote:
    """Two stimuli of one image a build found pixel-identical, and what it did about it."""

    image: str
    a: str
    b: str
    reason: str

    def __str__(self) -> str:
        return f"{self.image}: {self.a} vs {self.b} ({self.reason})"


@dataclass
class BuildReport:
    stimuli: int = 0
    test_items: int = 0
    gold_items: int = 0
    practice_items: int = 0
    missing: list[str] = field(default_factory=list)
    refused: list[CropNote] = field(default_factory=list)
    """Pairs given no item: 2AFC pairs of identical crops, golds identical to the original."""
    warnings: list[CropNote] = field(default_factory=list)
    """Items kept but worth a look: a DCR test crop identical to its reference."""


def build_stimuli(*, study: Study) -> BuildReport:
    """Cut crops and create items from the finished jobs; refuses while jobs still run.

    Failed jobs are skipped and listed in ``missing`` (the researcher sees which
    (image, codec, target) is absent); an image with fewer than two conditions gets no
    2AFC items. Pairs of pixel-identical crops get no item and are listed in ``refused``
    (an earlier build's item for them is removed unless a rater already has it).
    """
    planned = study_jobs(study=study)
    if planned.unplanned or not study.study_images.exists():
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
    imported = imported_plan(study=study)
    report.missing += imported.missing
    picks: dict[int, list[ImportedPick]] = defaultdict(list)
    for pick in imported.picks:
        picks[pick.source_id].append(pick)
    with transaction.atomic():
        for study_image in ensure_crop_plan(study=study):
            found = _image_stimuli(
                study, study_image, done[study_image.source_id], picks[study_image.source_id]
            )
            _build_image(study, study_image, found, report)
    report.stimuli = study.stimuli.count()
    report.test_items = study.items.filter(kind=Item.Kind.TEST).count()
    report.gold_items = study.items.filter(kind=Item.Kind.GOLD).count()
    report.practice_items = study.items.filter(kind=Item.Kind.PRACTICE).count()
    return report


def _is_gold_job(study: Study, job: GenerationJob) -> bool:
    return job.fixed_params is not None and job.codec == study.gold_codec


@dataclass(frozen=True)
class _ImageStimuli:
    """One image's stimuli, with the hash of each one's decoded pixels."""

    original: Stimulus
    hidden: Stimulus
    conditions: list[Stimulus]
    gold: Stimulus | None
    pixels: dict[int, str]

    def same_pixels(self, a: Stimulus, b: Stimulus) -> bool:
        return self.pixels[a.pk] == self.pixels[b.pk]


def _image_stimuli(
    study: Study, study_image: StudyImage, jobs: list[GenerationJob], picks: list[ImportedPick]
) -> _ImageStimuli:
    hidden = _stimulus(study_image, Stimulus.Role.HIDDEN, None)
    original = _stimulus(study_image, Stimulus.Role.ORIGINAL, None)  # the reference shown
    _give_own_bytes(original, hidden)
    conditions, gold = [], None
    for job in sorted(jobs, key=lambda j: (j.codec, j.target_bpp or 0.0)):
        reconstruction = job.reconstruction
        if reconstruction is None:
            continue
        if _is_gold_job(study, job):
            gold = _stimulus(study_image, Stimulus.Role.GOLD, reconstruction)
        else:
            conditions.append(_stimulus(study_image, Stimulus.Role.CONDITION, reconstruction))
    for pick in sorted(picks, key=lambda p: (p.codec, p.target_bpp)):
        role = Stimulus.Role.CONDITION
        conditions.append(_stimulus(study_image, role, pick.reconstruction, pick.target_bpp))
    every = [original, hidden, *conditions, *([gold] if gold else [])]
    pixels = {s.pk: pixels_sha256(decode_png(read_bytes(str(s.png.name)))) for s in every}
    return _ImageStimuli(original, hidden, conditions, gold, pixels)


def _build_image(
    study: Study, study_image: StudyImage, found: _ImageStimuli, report: BuildReport
) -> None:
    name = study_image.source.name
    for condition in found.conditions:
        note = _rate_limit_note(condition)
        if note:
            report.warnings.append(CropNote(name, describe(condition), "its target", note))
    if study.is_pairwise:
        _build_pairs(study, found, name, report)
        _keep_only(study, study_image, Item.Kind.PRACTICE, [])
        return
    singles = found.conditions + ([found.hidden] if study.hidden_reference else [])
    for stimulus in singles:
        Item.objects.get_or_create(study=study, kind=Item.Kind.TEST, a=stimulus, b=None)
    if study.method == Method.DCR:
        for condition in found.conditions:
            if found.same_pixels(condition, found.original):
                reason = "test crop pixel-identical to the reference; kept"
                report.warnings.append(CropNote(name, describe(condition), "reference", reason))
    # ACR: the original rated as if a reconstruction (expected high); DCR: the reference
    # against itself (expected "imperceptible").
    gold = _item(study, Item.Kind.GOLD, found.hidden, None, Item.Expect.HIGH)
    _keep_only(study, study_image, Item.Kind.GOLD, [gold])
    practice = _practice_items(study, found) if study.practice_trials else []
    _keep_only(study, study_image, Item.Kind.PRACTICE, practice)


def _rate_limit_note(stimulus: Stimulus) -> str:
    """Why a stimulus's bpp misses its target, from rate control's record (codecs.ratecontrol):
    "ceiling" (even the codec's highest rate stays under it), "floor" (its lowest overshoots);
    for an imported point, when it lies further from the target than rate control's
    tolerance."""
    reconstruction = stimulus.reconstruction
    if reconstruction is not None and stimulus.target_bpp is not None:
        return _imported_note(reconstruction, stimulus.target_bpp)
    record = reconstruction.rate_control if reconstruction is not None else {}
    if not record or record.get("within_tolerance", True):
        return ""
    assert reconstruction is not None and reconstruction.target_bpp is not None
    achieved, target = reconstruction.achieved_bpp, reconstruction.target_bpp
    if record.get("reason") == "ceiling":
        return f"the codec's highest rate gives {achieved:.3f} bpp, under the target {target:g}"
    return f"the codec's lowest rate gives {achieved:.3f} bpp, over the target {target:g}"


def _imported_note(reconstruction: Reconstruction, target: float) -> str:
    achieved = reconstruction.achieved_bpp
    if abs(achieved / target - 1) <= TOLERANCE:
        return ""
    declared = " (declared)" if reconstruction.bpp_is_declared else ""
    return (
        f"the nearest imported point ({reconstruction.point}) gives {achieved:.3f} bpp"
        f"{declared}, {100 * (achieved / target - 1):+.0f} % from the target {target:g}"
    )


def _build_pairs(study: Study, found: _ImageStimuli, name: str, report: BuildReport) -> None:
    refused = []
    # A triplet's sides may be the source itself (level 0, shown as the hidden original).
    # (and the flicker test's still side is the source, as the hidden original).
    with_source = study.is_triplet or study.is_flicker
    sides = [found.hidden, *found.conditions] if with_source else found.conditions
    for a, b in planner_for(study).pairs(study=study, conditions=sides):
        if found.same_pixels(a, b):
            refused.append((a, b))
            reason = "pixel-identical crops: no choice to make"
            report.refused.append(CropNote(name, describe(a), describe(b), reason))
        else:
            Item.objects.get_or_create(study=study, kind=Item.Kind.TEST, a=a, b=b)
    for a, b in refused:  # made by a build before identical crops were refused
        study.items.filter(kind=Item.Kind.TEST, a=a, b=b, trials__isnull=True).delete()
    if study.is_triplet:
        _bias_triplet(study, found)
    _keep_only(
        study, found.hidden.study_image, Item.Kind.GOLD, _pair_golds(study, found, name, report)
    )


def _bias_triplet(study: Study, found: _ImageStimuli) -> None:
    """One bias triplet per image (AIC-3: the same image on both sides, no right answer; its
    left/right shares measure a side bias): the image's median-rate condition. An earlier
    build's bias triplet of another condition goes unless a rater has it."""
    if not found.conditions:
        return
    by_rate = sorted(found.conditions, key=lambda s: (_bpp(s), s.pk))
    middle = by_rate[(len(by_rate) - 1) // 2]
    Item.objects.get_or_create(study=study, kind=Item.Kind.TEST, a=middle, b=middle)
    stale = study.items.filter(
        kind=Item.Kind.TEST, a__study_image=found.hidden.study_image, trials__isnull=True
    )
    stale.filter(a=F("b")).exclude(a=middle).delete()


def _pair_golds(study: Study, found: _ImageStimuli, name: str, report: BuildReport) -> list[Item]:
    """The original among the candidates, against a heavily compressed version (2AFC: the
    original is closer; triplet: the trap of AIC-3, the compressed side differs more)."""
    degraded = _gold_b(found)
    if degraded is None:
        return []
    if found.same_pixels(found.hidden, degraded):
        reason = "the gold is pixel-identical to the original: no right answer"
        report.refused.append(CropNote(name, "the original", describe(degraded), reason))
        return []
    # triplet: the compressed side differs more; flicker: the compressed side flickers
    expected = Item.Expect.B if study.is_triplet or study.is_flicker else Item.Expect.A
    return [_item(study, Item.Kind.GOLD, found.hidden, degraded, expected)]


def _bpp(stimulus: Stimulus) -> float:
    assert stimulus.reconstruction is not None, "only reconstructions have a bitrate"
    return stimulus.reconstruction.achieved_bpp


def _gold_b(found: _ImageStimuli) -> Stimulus | None:
    """The 2AFC gold's degraded side: the gold codec's heavy compression, or the image's
    lowest-rate condition where that spends fewer bits still."""
    if found.gold is None:
        return None
    lowest = min(found.conditions, key=_bpp, default=None)
    return lowest if lowest is not None and _bpp(lowest) < _bpp(found.gold) else found.gold


def _practice_items(study: Study, found: _ImageStimuli) -> list[Item]:
    """ACR/DCR practice that shows the scale's range: the original (expected high), the
    heavily compressed gold (expected low) and the condition at the median bitrate (no
    right answer)."""
    kind = Item.Kind.PRACTICE
    items = [_item(study, kind, found.hidden, None, Item.Expect.HIGH)]
    if found.gold is not None:
        items.append(_item(study, kind, found.gold, None, Item.Expect.LOW))
    if found.conditions:
        by_rate = sorted(found.conditions, key=_bpp)
        middle = by_rate[(len(by_rate) - 1) // 2]
        items.append(_item(study, kind, middle, None, Item.Expect.NONE))
    return items


def _item(study: Study, kind: str, a: Stimulus, b: Stimulus | None, expected: str) -> Item:
    item, _ = Item.objects.update_or_create(
        study=study, kind=kind, a=a, b=b, defaults={"expected": expected}
    )
    return item


def _keep_only(study: Study, study_image: StudyImage, kind: str, items: Sequence[Item]) -> None:
    """Remove the image's items of ``kind`` this build no longer makes (the gold moved to
    a lower-rate condition, practice turned off), except those a rater already has."""
    stale = study.items.filter(kind=kind, a__study_image=study_image, trials__isnull=True)
    stale.exclude(pk__in=[item.pk for item in items]).delete()


@dataclass(frozen=True)
class GoldRow:
    image: str
    original: Stimulus
    gold: Stimulus
    bpp: float
    made_by: str


@dataclass(frozen=True)
class GoldOverview:
    """The built golds, for the researcher to check they are unmistakable."""

    rows: list[GoldRow]

    @property
    def bpps(self) -> list[float]:
        return [row.bpp for row in self.rows]

    @property
    def mean_bpp(self) -> float | None:
        return statistics.fmean(self.bpps) if self.rows else None

    @property
    def min_bpp(self) -> float | None:
        return min(self.bpps, default=None)

    @property
    def max_bpp(self) -> float | None:
        return max(self.bpps, default=None)


def gold_overview(*, study: Study) -> GoldOverview:
    """Per image, the degraded stimulus raters must tell from the original: the 2AFC
    gold's b, or the ACR/DCR practice image expected low."""
    degraded = Q(kind=Item.Kind.GOLD, b__isnull=False) | Q(
        kind=Item.Kind.PRACTICE, expected=Item.Expect.LOW
    )
    items = study.items.filter(degraded).select_related(
        "a__reconstruction", "b__reconstruction", "a__study_image__source"
    )
    originals = {s.study_image_id: s for s in study.stimuli.filter(role=Stimulus.Role.ORIGINAL)}
    rows = []
    for item in items.order_by("a__study_image__source__name"):
        b = item.b
        gold = b if b is not None else item.a
        rows.append(
            GoldRow(
                image=item.a.study_image.source.name,
                original=originals[item.a.study_image_id],
                gold=gold,
                bpp=_bpp(gold),
                made_by=_made_by(gold),
            )
        )
    return GoldOverview(rows)


def _made_by(gold: Stimulus) -> str:
    if gold.role == Stimulus.Role.CONDITION:
        return f"the image's lowest-rate condition, {describe(gold)}"
    return describe(gold)


def reference_of(stimulus: Stimulus) -> Stimulus:
    """The original of the stimulus's image (shown as the reference in DCR and 2AFC)."""
    return Stimulus.objects.get(study_image_id=stimulus.study_image_id, role=Stimulus.Role.ORIGINAL)
