"""Small, fast studies for the studies tests: synthetic photo-like images, real codecs.

The one home of the test helpers (plain functions, no fixtures; conftest.py only wraps
:func:`make_study` as a fixture). Test modules import it as ``studykit``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.db import connection
from django.utils import timezone

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet
from perceptlab.lib.images import encode_png
from perceptlab.studies import stimuli
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.judging import Answer, Recorded, record
from perceptlab.studies.models import Item, Session, Study, Trial
from perceptlab.studies.sessions import has_room, settle, start_rating


def synthetic_image(seed: int, width: int = 96, height: int = 64) -> np.ndarray:
    """Smooth gradients plus texture: compressible, but not trivially (codecs need work)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        128 + 90 * np.sin(x / (7 + 3 * c + seed) + y / (11 + c)) + rng.normal(0, 12, x.shape)
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def synthetic_pngs(count: int, *, width: int = 96, height: int = 64) -> Iterator[tuple[str, bytes]]:
    """``count`` synthetic images as ``(file name, PNG bytes)``: img0.png, img1.png, …"""
    for index in range(count):
        yield f"img{index}.png", encode_png(synthetic_image(index, width, height))


def write_images(folder: Path, count: int = 2, *, width: int = 96, height: int = 64) -> Path:
    """``count`` synthetic PNGs in ``folder`` (created), for commands taking a directory."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in synthetic_pngs(count, width=width, height=height):
        (folder / name).write_bytes(data)
    return folder


def synthetic_set(
    images: int = 2, *, width: int = 96, height: int = 64, name: str | None = None
) -> ImageSet:
    """An image set of ``images`` synthetic images, named ``name`` (default: a fresh one)."""
    image_set = ImageSet.objects.create(name=name or f"set-{uuid.uuid4().hex[:8]}")
    for file_name, data in synthetic_pngs(images, width=width, height=height):
        import_image(image_set=image_set, name=file_name, data=data)
    return image_set


def make_study(
    method: str = "2afc", *, images: int = 2, build: bool = True, **fields: Any
) -> Study:
    """A study of ``images`` synthetic images, jpeg and webp at 0.5 and 1.0 bpp, 64×64 crops.

    No practice, gold or repeat trials unless ``fields`` ask for them; ``fields`` set any
    Study field. With ``build`` its jobs are run inline and its stimuli built, and it is
    live; without, it is a draft with nothing generated. An explicit ``state`` is applied
    after the build (e.g. ``state=Study.State.DRAFT`` for a built study not yet launched).
    """
    state = fields.pop("state", Study.State.LIVE if build else Study.State.DRAFT)
    defaults: dict[str, Any] = {
        "name": f"study-{uuid.uuid4().hex[:8]}",
        "title": "Test study",
        "method": method,
        "codecs": ["jpeg", "webp"],
        "target_bpps": [0.5, 1.0],
        "gold_params": {"quality": 5},
        "crop_width": 64,
        "crop_height": 64,
        "practice_trials": 0,
        "gold_trials": 0,
        "repeat_trials": 0,
    }
    defaults.update(fields)
    study = Study.objects.create(image_set=synthetic_set(images), **defaults)
    if build:
        for job in stimuli.plan_generation(study=study):
            run_job(job.pk)
        stimuli.build_stimuli(study=study)
    if study.state != state:
        study.state = state
        study.save(update_fields=["state"])
    return study


def rating_session(study: Study, **fields: Any) -> Session:
    """A session of ``study`` (``fields`` set any Session field), its schedule started."""
    fields.setdefault("state", Session.State.INSTRUCTIONS)
    session = Session.objects.create(study=study, **fields)
    start_rating(session=session)
    return session


def answer_current(
    session: Session, *, score: float | None = None, choice: str = "a", **extra: Any
) -> Recorded | None:
    """Answer the session's current trial (a valid answer by default); None when done.

    ``score`` defaults to the top of the scale (ACR/DCR), ``choice`` to "a" (2AFC);
    ``extra`` may set ``key``, ``flips`` (default 3), ``view_ms`` (default 5000),
    ``age_ms``, ``viewing`` and ``sent_ms_ago``: how long before the answer the server
    sent the trial (default ``view_ms`` + 100, as for a rater who really looked that
    long; 0 answers the moment it is served).
    """
    trial = upcoming(session=session).current
    if trial is None:
        return None
    if not session.study.is_pairwise and score is None:
        score = session.study.scale_range()[1]
    view_ms = extra.pop("view_ms", 5000)
    sent_ms_ago = extra.pop("sent_ms_ago", view_ms + 100)
    sent = timezone.now() - timedelta(milliseconds=sent_ms_ago)
    Trial.objects.filter(pk=trial.pk).update(shown=sent)
    answer = Answer(
        position=trial.position,
        key=extra.pop("key", uuid.uuid4()),
        score=score if not session.study.is_pairwise else None,
        choice=choice if session.study.is_pairwise else "",
        flips=extra.pop("flips", 3),
        view_ms=view_ms,
        age_ms=extra.pop("age_ms", 0),
        viewing=extra.pop("viewing", {}),
    )
    assert not extra, f"unknown answer fields {sorted(extra)}"
    recorded = record(session=session, answer=answer)
    session.refresh_from_db()
    return recorded


def complete(session: Session) -> list[Trial]:
    """Answer every trial, then settle the session as the rater page does when nothing
    is left; returns the trials answered, in order."""
    answered = []
    while not session.is_finished():
        recorded = answer_current(session)
        if recorded is None:
            settle(session=session)
            break
        answered.append(recorded.judgment.trial)
    return answered


def rate_until_full(
    study: Study, choose: Callable[[Trial], str] | Callable[[Trial], float], *, most: int
) -> int:
    """New raters answer every trial they get with ``choose(trial)`` (a pairwise study's
    choice, a rating study's score) until the study turns newcomers away; returns how many
    raters it took (fails after ``most``)."""
    raters = 0
    while has_room(study=study):
        raters += 1
        assert raters <= most, f"the study still takes raters after {most}"
        session = rating_session(study)
        while (trial := upcoming(session=session).current) is not None:
            answer = choose(trial)
            if isinstance(answer, str):
                answer_current(session, choice=answer)
            else:
                answer_current(session, score=answer)
    return raters


def race(study: Study, raters: int, trials_each: int) -> list[Session]:
    """``raters`` sessions answering ``trials_each`` trials at once, one thread (and one
    database connection) each, released together by a barrier."""
    sessions = [rating_session(study) for _ in range(raters)]
    barrier = threading.Barrier(raters)
    errors: list[BaseException] = []

    def rate(session: Session) -> None:
        try:
            barrier.wait()
            for _ in range(trials_each):
                if answer_current(session) is None:
                    break
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=rate, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return sessions


def with_crop_metrics(study: Study, seed: int, fooled: Sequence[int] = ()) -> dict[int, float]:
    """Give each test stimulus of a rating study (by item id order) a true MOS (1.5–4.5) and
    two crop metrics that follow it to about ±0.1 MOS (a PSNR-like and an SSIM-like one);
    the SSIM of the stimuli at the positions ``fooled`` misses it by 2 MOS (a texture that
    fools one metric). Returns item id → true MOS."""
    from perceptlab.evaluation.models import StimulusMetric

    rng = np.random.default_rng(seed)
    truth = {}
    items = study.items.filter(kind=Item.Kind.TEST).select_related("a").order_by("pk")
    for k, item in enumerate(items):
        mos = float(rng.uniform(1.5, 4.5))
        truth[item.pk] = mos
        ssim = 0.70 + 0.06 * mos + rng.normal(0, 0.006)
        if k in fooled:
            ssim += 0.12 if mos < 3 else -0.12
        for metric, value in (("psnr", 24 + 3 * mos + rng.normal(0, 0.3)), ("ssim", ssim)):
            StimulusMetric.objects.create(
                stimulus=item.a,
                region=StimulusMetric.Region.CROP,
                metric=metric,
                value=value,
                version="test",
            )
    return truth
