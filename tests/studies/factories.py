"""Small studies for tests: synthetic images, a study, its stimuli generated inline.

Plain functions (no fixtures) so any test module can build exactly what it needs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet
from perceptlab.lib.images import encode_png
from perceptlab.studies import assignment
from perceptlab.studies.judging import Answer, Recorded, record
from perceptlab.studies.models import Method, Session, Study
from perceptlab.studies.stimuli import build_stimuli, plan_generation


def synthetic_image(seed: int, *, width: int = 96, height: int = 64) -> np.ndarray:
    """A smooth colour gradient with mild noise: compresses like a (very small) photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    channels = [127 + 90 * np.sin(x / (9 + 4 * c) + y / (13 + 3 * c) + phase[c]) for c in range(3)]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int = 2, *, width: int = 96, height: int = 64) -> Path:
    """``count`` synthetic PNGs in ``folder`` (created), for commands taking a directory."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = synthetic_image(index, width=width, height=height)
        (folder / f"synthetic{index}.png").write_bytes(encode_png(pixels))
    return folder


def make_image_set(name: str = "synthetic", count: int = 2) -> ImageSet:
    image_set = ImageSet.objects.create(name=name)
    for index in range(count):
        data = encode_png(synthetic_image(index))
        import_image(image_set=image_set, name=f"synthetic{index}.png", data=data)
    return image_set


def make_study(method: str = Method.ACR, **overrides: Any) -> Study:
    """A draft study on a fresh two-image set: jpeg and webp at 0.5 and 1 bpp, 64×64 crops."""
    fields: dict[str, Any] = {
        "name": f"study-{method}-{uuid.uuid4().hex[:6]}",
        "title": "Test study",
        "method": method,
        "codecs": ["jpeg", "webp"],
        "target_bpps": [0.5, 1.0],
        "gold_params": {"quality": 5},
        "crop_width": 64,
        "crop_height": 64,
        "trials_per_session": 4,
        "judgments_per_item": 2,
        "practice_trials": 1,
        "gold_trials": 1,
        "repeat_trials": 1,
    }
    fields.update(overrides)
    if "image_set" not in fields:
        fields["image_set"] = make_image_set(name=f"set-{uuid.uuid4().hex[:6]}")
    return Study.objects.create(**fields)


def generate(study: Study) -> None:
    """Plan the study's jobs and run them here (no worker)."""
    for job in plan_generation(study=study):
        run_job(job.pk)


def built_study(method: str = Method.ACR, **overrides: Any) -> Study:
    study = make_study(method, **overrides)
    generate(study)
    build_stimuli(study=study)
    return study


def live_study(method: str = Method.ACR, **overrides: Any) -> Study:
    study = built_study(method, **overrides)
    study.state = Study.State.LIVE
    study.save(update_fields=["state"])
    return study


def answer_current(session: Session, *, score: float = 4.0, choice: str = "a") -> Recorded:
    """Answer the session's current trial (a score for ACR/DCR, a choice for 2AFC)."""
    current = assignment.upcoming(session=session).current
    assert current is not None, "the session has no trial left"
    pairwise = session.study.is_pairwise
    answer = Answer(
        position=current.position,
        key=uuid.uuid4(),
        score=None if pairwise else score,
        choice=choice if pairwise else "",
        flips=2,
        view_ms=1500,
    )
    return record(session=session, answer=answer)


def rating_session(study: Study, **fields: Any) -> Session:
    session = Session.objects.create(study=study, **fields)
    assignment.start_rating(session=session)
    return session
