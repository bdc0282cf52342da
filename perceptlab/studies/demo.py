"""The demo: real photographs encoded with several codecs at a few target bitrates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from perceptlab.codecs.generation import JobRequest, plan_jobs
from perceptlab.codecs.intake import import_file
from perceptlab.codecs.models import GenerationJob, ImageSet
from perceptlab.codecs.registry import get_codec

# Photographs shipped inside scikit-image's wheel (usable offline).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")
DEMO_CODECS = ("jpeg", "webp", "jpeg2000", "avif", "jxl", "heic", "bpg", "vvc")
DEMO_BPPS = (0.25, 0.5, 1.0)


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
    *, set_name: str, images: list[Path], bpps: tuple[float, ...] = DEMO_BPPS
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
    codecs, skipped = [], {}
    for slug in DEMO_CODECS:
        state = get_codec(slug).availability()
        if state.available:
            codecs.append(slug)
        else:
            skipped[slug] = state.reason
    requests = [JobRequest(codec=c, target_bpp=b) for c in codecs for b in bpps]
    jobs = plan_jobs(sources=image_set.images.all(), requests=requests)
    return DemoPlan(image_set, jobs, codecs, skipped, rejected)
