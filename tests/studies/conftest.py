"""Fixtures for the studies tests: small, fully built studies ready for raters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet
from perceptlab.lib.images import encode_png
from perceptlab.studies import stimuli
from perceptlab.studies.models import Study

MakeStudy = Callable[..., Study]


def synthetic_image(seed: int, *, width: int = 96, height: int = 64) -> np.ndarray:
    """A smooth RGB gradient with mild noise: compresses like a photo, not like flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [127 + 90 * np.sin(x / (9 + 3 * c) + y / (13 + 2 * c) + phase[c]) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_image_set(name: str, *, images: int = 2) -> ImageSet:
    image_set = ImageSet.objects.create(name=name)
    for index in range(images):
        data = encode_png(synthetic_image(index))
        import_image(image_set=image_set, name=f"img{index}.png", data=data)
    return image_set


def build_study(*, method: str = "acr", images: int = 2, **overrides: Any) -> Study:
    """A LIVE study over ``images`` synthetic 96×64 images, stimuli generated and built.

    Defaults: codecs jpeg and webp at 0.5 and 1.0 bpp, 64×64 crops, gold = JPEG quality 5,
    2 practice, 2 gold and 1 repeat trial per rater. ``overrides`` set any other Study
    field (e.g. ``scale="11"``, ``completion_code="C0DE"``, ``state=Study.State.DRAFT``);
    the state is applied after the stimuli are built.
    """
    state = overrides.pop("state", Study.State.LIVE)
    name = overrides.pop("name", f"study-{method}-{Study.objects.count() + 1}")
    fields: dict[str, Any] = {
        "title": "Image quality",
        "method": method,
        "codecs": ["jpeg", "webp"],
        "target_bpps": [0.5, 1.0],
        "gold_params": {"quality": 5},
        "crop_width": 64,
        "crop_height": 64,
        "consent_text": "You agree to take part.\n\nYou may stop at any time.",
        "instructions_text": "Look closely.",
        "completion_code": "DONE123",
        "screenout_code": "OUT456",
        **overrides,
    }
    study = Study.objects.create(
        name=name, image_set=make_image_set(f"{name}-images", images=images), **fields
    )
    for job in stimuli.plan_generation(study=study):
        run_job(job.pk)
    stimuli.build_stimuli(study=study)
    study.state = state
    study.save(update_fields=["state"])
    return study


@pytest.fixture
def make_study(db: None) -> MakeStudy:
    """Factory fixture: ``make_study(method="2afc", scale="9", ...)`` → a built, LIVE Study.

    See :func:`build_study` for the defaults; each call builds a new study with its own
    image set (a couple of hundred milliseconds: tiny images, classical codecs).
    """
    return build_study
