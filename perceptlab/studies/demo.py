"""The demo: real photographs encoded with several codecs at a few target bitrates, and a
runnable study of each method (ACR, DCR, 2AFC, BTC triplets) built from them.

Everything is found again on a second run (the image set by name, the jobs by their
request, the studies by name), so ``manage.py demo`` is idempotent and can be re-run to
launch studies whose stimuli were left to the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perceptlab.codecs.generation import JobRequest, plan_jobs
from perceptlab.codecs.intake import import_file
from perceptlab.codecs.models import GenerationJob, ImageSet
from perceptlab.codecs.registry import get_codec
from perceptlab.studies import lifecycle
from perceptlab.studies.models import Method, Study
from perceptlab.studies.stimuli import StudyNotReady, plan_generation

# Photographs shipped inside scikit-image's wheel (usable offline).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")
DEMO_CODECS = ("jpeg", "webp", "jpeg2000", "avif", "jxl", "heic", "bpg", "vvc")
DEMO_BPPS = (0.25, 0.5, 1.0)
# The studies compare a few codecs (fewer conditions keep the demo's rater count small).
STUDY_CODECS = ("jpeg", "webp", "avif", "jxl")
# The GAN-codec study: the neural codecs with a checkpoint here against two classical
# anchors, at low rates where GAN codecs are meant to shine (2AFC against the original).
# MS-ILLM (the released models, `fetch_weights --only msillm`) first, then the seed codecs
# trained here (used when their cards meet the photographic floor).
GAN_STUDY_CODECS = ("msillm", "hific", "hific-sparse", "gc", "tunable", "rdo-gllmm")
GAN_ANCHORS = ("jpeg", "webp")
GAN_BPPS = (0.1, 0.3)
# Two 384-px panes and the 16-px gap fit a laptop screen at devicePixelRatio 1 (784 px).
DEMO_CROP = 384
TRIPLET_CROP = 256

_COMMON: dict[str, Any] = {
    "crop_width": DEMO_CROP,
    "crop_height": DEMO_CROP,
    "crop_mode": Study.CropMode.CENTER,
    "judgments_per_item": 3,
    "trials_per_session": 12,
    "practice_trials": 2,
    "gold_trials": 2,
    "repeat_trials": 1,
    "gold_codec": "jpeg",
    "gold_params": {"quality": 5},
    "min_view_seconds": 1.0,
    "completion_code": "DEMO-DONE",
    "screenout_code": "DEMO-SCREENED",
    "consent_text": (
        "This is a PerceptLab demo. You will look at compressed photographs and rate them. "
        "We store your answers, the time you take and your screen size, nothing else."
    ),
}
# suffix → settings of the study
DEMO_STUDIES: dict[str, dict[str, Any]] = {
    "acr": {
        "title": "Demo: rate the quality of each photo (ACR)",
        "method": Method.ACR,
        "hidden_reference": True,
        "instructions_text": "Rate the quality of each image from Bad to Excellent.",
    },
    "dcr": {
        "title": "Demo: how much does the right image differ from the reference? (DCR)",
        "method": Method.DCR,
        "dcr_layout": Study.DcrLayout.SIDE_BY_SIDE,
        "instructions_text": (
            "The left image is the reference. Rate how annoying the differences of the right "
            "image are, from Very annoying to Imperceptible."
        ),
    },
    "2afc": {
        "title": "Demo: which image is closer to the original? (2AFC)",
        "method": Method.AFC2,
        "pair_plan": Study.PairPlan.BAND,
        "pair_band": 2.5,  # neighbouring targets (0.25/0.5/1 bpp) meet: one connected scale
        "min_flips": 1,
        "instructions_text": (
            "Flip between A, B and the original, then pick the image closer to the original."
        ),
    },
    "triplet": {
        "title": "Demo: which side differs more from the original? (AIC-3 boosted triplets)",
        "method": Method.TRIPLET,
        "triplet_mode": "btc",
        # three panes: 3 × 256 + 2 × 16 = 800 device pixels, a laptop at ratio 1
        "crop_width": TRIPLET_CROP,
        "crop_height": TRIPLET_CROP,
        "min_view_seconds": 0.0,
        "instructions_text": (
            "Each side flickers against the original in the middle; pick the side whose "
            "flicker shows more change."
        ),
    },
    "flicker": {
        "title": "Demo: which side flickers? (AIC-2 visually lossless thresholds)",
        "method": Method.FLICKER,
        "min_view_seconds": 0.0,
        "instructions_text": (
            "One side alternates between the original and a compressed version; pick it. "
            "Where you cannot see it, guess."
        ),
    },
}


def skimage_photo_paths() -> list[Path]:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [folder / name for name in SKIMAGE_PHOTOS]


@dataclass(frozen=True)
class DemoPlan:
    image_set: ImageSet
    jobs: list[GenerationJob]
    codecs: list[str]
    skipped_codecs: dict[str, str]
    rejected: list[str]


def build_demo(
    *,
    set_name: str,
    images: list[Path],
    bpps: tuple[float, ...] = DEMO_BPPS,
    codecs: Sequence[str] = DEMO_CODECS,
) -> DemoPlan:
    """Import the images and plan one job per (image, available codec, target)."""
    image_set, _ = ImageSet.objects.get_or_create(
        name=set_name, defaults={"description": "PerceptLab demo image set"}
    )
    rejected = []
    for path in images:
        outcome = import_file(image_set=image_set, path=path)
        if outcome.image is None:
            rejected.append(outcome.error)
    available, skipped = [], {}
    for slug in codecs:
        state = get_codec(slug).availability()
        if state.available:
            available.append(slug)
        else:
            skipped[slug] = state.reason
    requests = [JobRequest(codec=c, target_bpp=b) for c in available for b in bpps]
    jobs = plan_jobs(sources=image_set.images.all(), requests=requests)
    return DemoPlan(image_set, jobs, available, skipped, rejected)


def study_codecs(available: Sequence[str]) -> list[str]:
    """The demo studies' codecs: the usual few among those available, else the first four."""
    chosen = [slug for slug in available if slug in STUDY_CODECS]
    return chosen or list(available[:4])


def ensure_demo_studies(
    *, image_set: ImageSet, codecs: Sequence[str], bpps: Sequence[float]
) -> list[Study]:
    """One study per method, named ``<set>-<method>``; a draft one follows the current
    codecs and targets, a launched one is left as it is."""
    studies = []
    for suffix, settings in DEMO_STUDIES.items():
        wanted = {
            **_COMMON,
            **settings,
            "image_set": image_set,
            "codecs": list(codecs),
            "target_bpps": [float(b) for b in bpps],
        }
        study, created = Study.objects.get_or_create(
            name=f"{image_set.name}-{suffix}", defaults=wanted
        )
        if not created and study.state == Study.State.DRAFT:
            for name, value in wanted.items():
                setattr(study, name, value)
            study.save()
        studies.append(study)
    return studies


def gan_codecs(*, demonstrators: bool = False) -> tuple[list[str], dict[str, str]]:
    """The GAN codecs for the demo's GAN study, and why the others are left out: a codec
    must run here (a checkpoint found) and, unless ``demonstrators``, its model cards must
    show it above the photographic floor (:func:`perceptlab.codecs.neural.cards.codec_floor`):
    a GAN-vs-JPEG study of near-monochrome reconstructions would mislead whoever runs it."""
    from perceptlab.codecs.neural.cards import codec_floor
    from perceptlab.codecs.neural.codec import NeuralCodec

    available, skipped = [], {}
    for slug in GAN_STUDY_CODECS:
        try:
            codec = get_codec(slug)
            state = codec.availability()
        except Exception as error:  # an import error of an optional dependency
            skipped[slug] = f"cannot load: {error}"
            continue
        if not state.available:
            skipped[slug] = state.reason
            continue
        if not demonstrators and isinstance(codec, NeuralCodec):
            verdict = codec_floor(codec)
            if not verdict.passes:
                skipped[slug] = f"{verdict.reason}; --demonstrators includes it"
                continue
        available.append(slug)
    return available, skipped


def ensure_gan_study(*, image_set: ImageSet, codecs: Sequence[str]) -> Study:
    """``<set>-gan-2afc``: the GAN codecs and the anchors at :data:`GAN_BPPS`, 2AFC."""
    wanted = {
        **_COMMON,
        **DEMO_STUDIES["2afc"],
        "title": "Demo: GAN codecs — which image is closer to the original? (2AFC)",
        "pair_band": 3.5,  # 0.1 and 0.3 bpp meet: one connected scale
        "image_set": image_set,
        "codecs": [*codecs, *GAN_ANCHORS],
        "target_bpps": list(GAN_BPPS),
    }
    study, created = Study.objects.get_or_create(name=f"{image_set.name}-gan-2afc", defaults=wanted)
    if not created and study.state == Study.State.DRAFT:
        for name, value in wanted.items():
            setattr(study, name, value)
        study.save()
    return study


def plan_demo_studies(*, studies: Sequence[Study]) -> list[GenerationJob]:
    """The studies' jobs (mostly the image set's own, plus the 2AFC gold)."""
    jobs: dict[int, GenerationJob] = {}
    for study in studies:
        if study.state == Study.State.DRAFT:
            jobs.update((job.pk, job) for job in plan_generation(study=study))
    return list(jobs.values())


@dataclass(frozen=True)
class LaunchOutcome:
    study: Study
    note: str  # what happened, for the console
    missing: list[str]  # failed (image, codec, target) left out of the study


def launch_demo_studies(*, studies: Sequence[Study]) -> list[LaunchOutcome]:
    """Build and launch every draft study; one whose jobs are unfinished stays a draft."""
    outcomes = []
    for study in studies:
        if study.state != Study.State.DRAFT:
            outcomes.append(LaunchOutcome(study, f"already {study.state}", []))
            continue
        try:
            report = lifecycle.launch(study=study)
        except StudyNotReady as exc:
            outcomes.append(LaunchOutcome(study, f"left in draft: {exc.reason}", []))
            continue
        note = f"launched with {report.test_items} items ({report.stimuli} stimuli)"
        outcomes.append(LaunchOutcome(study, note, report.missing))
    return outcomes
