"""Generation jobs: plan, claim, run — idempotent, resumable and safe to kill.

One job makes one reconstruction. A job is claimed with a conditional UPDATE (only a
pending job, or a running one whose lease expired because its worker died, can be
taken), so two workers never run the same job at once. While it runs, a heartbeat thread
renews the lease (``GENERATION_LEASE_SECONDS``; every third of it), so a job may make as
many codec calls as rate control needs, and a lease lapses only when its worker is gone.
:func:`release_expired` hands such jobs back (``manage.py reclaim_jobs`` and every
``db_worker`` enqueue them again). Files are stored and verified before the row that
points at them is created, and the reconstruction row and the job's DONE state are
written in one transaction: a reconstruction row exists only for a complete,
hash-verified pair of files.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from hashlib import sha256
from uuid import uuid4

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from perceptlab.codecs import sideinputs
from perceptlab.codecs.base import Codec, CodecError, SideInputs, bits_per_pixel
from perceptlab.codecs.files import read_bytes, store_verified
from perceptlab.codecs.models import GenerationJob, Reconstruction, SourceImage
from perceptlab.codecs.ratecontrol import RateResult, encode_at_bpp, encode_at_bytes
from perceptlab.codecs.registry import get_codec, side_inputs_of
from perceptlab.lib.images import decode_png, encode_png, sha256_hex

State = GenerationJob.State
logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_key(
    *,
    source: SourceImage,
    codec: str,
    target_bpp: float | None = None,
    fixed_params: Mapping[str, object] | None = None,
    base_params: Mapping[str, object] | None = None,
    match: Reconstruction | None = None,
) -> str:
    """Hash of what a job makes: asking for the same thing twice finds the same job."""
    request = {
        "source": source.pixels_sha256,
        "set": source.image_set_id,
        "codec": codec,
        "target_bpp": None if target_bpp is None else round(float(target_bpp), 6),
        "fixed_params": dict(fixed_params) if fixed_params is not None else None,
        "base_params": dict(base_params or {}),
        "match": match.pk if match is not None else None,
    }
    if side_inputs_of(codec):  # a new label map or mask makes a new stimulus
        request["side"] = [source.label_map_sha256, source.preserve_mask_sha256]
    return sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _side_inputs(codec: Codec, source: SourceImage) -> SideInputs | None:
    """The image's label map and mask for a codec that encodes with them (else None); a
    clear error naming the image and what to upload when they are missing."""
    if not codec.side_inputs:
        return None
    found = sideinputs.of(source)
    if found is None:
        lacking = " and no ".join(sideinputs.missing(source))
        raise CodecError(
            codec.slug,
            f"image {source.name} has no {lacking}: upload them on its admin page "
            f"(Codecs → Source images → {source.name})",
        )
    return found


def parse_bpps(text: str) -> list[float]:
    """``"0.1, 0.25"`` → ``[0.1, 0.25]``; raises ValueError naming the bad input."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: expected comma-separated numbers, e.g. 0.1,0.25") from None
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise ValueError(f"{text!r}: every target bpp must be a positive number")
    return values


@dataclass(frozen=True)
class JobRequest:
    codec: str
    target_bpp: float | None = None
    fixed_params: Mapping[str, object] | None = None
    base_params: Mapping[str, object] | None = None


def plan_jobs(
    *, sources: Iterable[SourceImage], requests: Sequence[JobRequest]
) -> list[GenerationJob]:
    """Create (or find) one job per source × request; failed jobs are reset to pending.

    Parameters are validated up front, so a typo fails here with the valid names listed
    instead of in every job.
    """
    for request in requests:
        codec = get_codec(request.codec)
        if request.fixed_params is not None:
            codec.validate_params(request.fixed_params)
        else:
            codec.validate_params(request.base_params or {})
    jobs = []
    for source in sources:
        for request in requests:
            jobs.append(_get_or_create_job(source, request))
    return jobs


def request_key(source: SourceImage, request: JobRequest) -> str:
    """The key of the job that makes ``request`` for ``source`` (see :func:`job_key`)."""
    return job_key(
        source=source,
        codec=request.codec,
        target_bpp=request.target_bpp,
        fixed_params=request.fixed_params,
        base_params=request.base_params,
    )


def _get_or_create_job(source: SourceImage, request: JobRequest) -> GenerationJob:
    fixed = dict(request.fixed_params) if request.fixed_params is not None else None
    base = dict(request.base_params or {})
    key = request_key(source, request)
    job, _ = GenerationJob.objects.get_or_create(
        key=key,
        defaults={
            "source": source,
            "codec": request.codec,
            "target_bpp": request.target_bpp,
            "fixed_params": fixed,
            "base_params": base,
        },
    )
    if job.state == State.FAILED:
        GenerationJob.objects.filter(pk=job.pk, state=State.FAILED).update(
            state=State.PENDING, error="", attempts=0
        )
        job.refresh_from_db()
    return job


def plan_match(*, reconstruction: Reconstruction, codec: str) -> GenerationJob:
    """A job encoding the same image with ``codec`` at ``reconstruction``'s size."""
    get_codec(codec)
    if reconstruction.num_bytes is None:
        raise CodecError(
            codec,
            f"reconstruction #{reconstruction.pk} ({reconstruction}) has a declared bpp and no "
            "bitstream, so no size to match; import its bitstreams to rate-match against it",
        )
    key = job_key(source=reconstruction.source, codec=codec, match=reconstruction)
    job, _ = GenerationJob.objects.get_or_create(
        key=key, defaults={"source": reconstruction.source, "codec": codec, "match": reconstruction}
    )
    return job


def claim(job_id: int, *, worker: str) -> bool:
    """Atomically take a job; False when another worker has it or it is finished."""
    now = timezone.now()
    takeable = Q(state=State.PENDING) | Q(state=State.RUNNING, lease_until__lt=now)
    lease = now + timedelta(seconds=settings.GENERATION_LEASE_SECONDS)
    taken = GenerationJob.objects.filter(takeable, pk=job_id).update(
        state=State.RUNNING,
        worker=worker,
        lease_until=lease,
        started=now,
        attempts=F("attempts") + 1,
    )
    return taken == 1


def renew_lease(job_id: int, *, worker: str) -> bool:
    """Extend ``worker``'s lease on a running job; False once the job is no longer its own."""
    lease = timezone.now() + timedelta(seconds=settings.GENERATION_LEASE_SECONDS)
    renewed = GenerationJob.objects.filter(pk=job_id, state=State.RUNNING, worker=worker).update(
        lease_until=lease
    )
    return renewed == 1


class Heartbeat:
    """Renews a job's lease from a daemon thread while the ``with`` block runs.

    It stops at the end of the block, or at the first renewal that finds the job finished
    or taken over by another worker (``lost`` is then True; the job's final conditional
    write is what refuses a result that is no longer ours). A database error skips one
    renewal: the lease outlasts two more tries.
    """

    def __init__(self, job_id: int, *, worker: str, interval: float | None = None) -> None:
        self.job_id = job_id
        self.worker = worker
        self.interval = interval if interval is not None else settings.GENERATION_LEASE_SECONDS / 3
        self.renewals = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # Waiting is brief (the thread sleeps on the event); a renewal stuck behind a lock
        # must not hold up the worker, and changes nothing once the job is finished.
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    if not renew_lease(self.job_id, worker=self.worker):
                        self.lost = True
                        logger.warning(
                            "job %s: lease no longer held by %s", self.job_id, self.worker
                        )
                        return
                    self.renewals += 1
                except DatabaseError:
                    logger.exception("job %s: lease renewal failed; retrying", self.job_id)
        finally:
            connection.close()  # this thread's own connection


def run_job(job_id: int, *, worker: str | None = None) -> Reconstruction | None:
    """Claim and run one job; returns its reconstruction, or None if it was not ours to run.

    Codec failures are recorded on the job (state FAILED, message in ``error``) and not
    raised, so one bad (image, codec) pair never stops a batch.
    """
    worker = worker or worker_name()
    if not claim(job_id, worker=worker):
        job = GenerationJob.objects.get(pk=job_id)
        return job.reconstruction if job.state == State.DONE else None
    job = GenerationJob.objects.select_related("source", "match").get(pk=job_id)
    with Heartbeat(job_id, worker=worker):
        try:
            return _make_reconstruction(job, worker=worker)
        except CodecError as exc:
            _fail(job, worker=worker, message=str(exc))
            return None
        except Exception as exc:
            _fail(job, worker=worker, message=f"{type(exc).__name__}: {exc}")
            raise


def requeue_mark() -> str:
    """A ``task_id`` for a job handed back to be enqueued again: it names no task, so until
    the new task's id replaces it, the job counts as enqueued with a lost task (see
    ``tasks.reclaim_jobs``); unique, so a conditional UPDATE from it succeeds once."""
    return f"requeue-{uuid4().hex}"


@dataclass(frozen=True)
class Released:
    """Running jobs whose lease had expired, handed back by :func:`release_expired`."""

    pending: list[tuple[int, str]]
    """(job id, the task that was running it) of jobs now pending again, to be enqueued."""
    failed: list[int]
    """Jobs failed instead: their worker was lost ``GENERATION_MAX_ATTEMPTS`` times."""


def release_expired(*, now: datetime | None = None) -> Released:
    """Hand back every running job whose lease expired before ``now``.

    Each job is released with one conditional UPDATE (still running, lease still
    expired), so of several workers releasing at once exactly one gets each job.
    """
    now = now or timezone.now()
    expired = GenerationJob.objects.filter(state=State.RUNNING, lease_until__lt=now)
    pending: list[tuple[int, str]] = []
    failed: list[int] = []
    for job_id, worker, task_id, attempts in expired.values_list(
        "pk", "worker", "task_id", "attempts"
    ):
        still_expired = GenerationJob.objects.filter(
            pk=job_id, state=State.RUNNING, worker=worker, lease_until__lt=now
        )
        if attempts >= settings.GENERATION_MAX_ATTEMPTS:
            message = (
                f"worker lost {attempts} times (last: {worker}); the job may be what kills "
                "its worker (memory?). Plan it again to retry"
            )
            if still_expired.update(state=State.FAILED, error=message, finished=now):
                failed.append(job_id)
        elif still_expired.update(
            state=State.PENDING, worker="", lease_until=None, task_id=requeue_mark()
        ):
            pending.append((job_id, task_id))
    return Released(pending=pending, failed=failed)


@lru_cache(maxsize=8)
def _source_pixels(name: str, png_sha256: str) -> np.ndarray:
    """Decoded, hash-checked source pixels; a worker reuses them across its jobs."""
    png = read_bytes(name)
    if sha256_hex(png) != png_sha256:
        raise CodecError("source", f"{name} does not match its SHA-256 {png_sha256}")
    pixels = decode_png(png)
    pixels.setflags(write=False)
    return pixels


def _fail(job: GenerationJob, *, worker: str, message: str) -> None:
    GenerationJob.objects.filter(pk=job.pk, state=State.RUNNING, worker=worker).update(
        state=State.FAILED, error=message[:4000], finished=timezone.now()
    )


def _encode(
    job: GenerationJob, codec: Codec, image: np.ndarray, side: SideInputs | None = None
) -> tuple[RateResult, dict]:
    if job.target_bpp is not None:
        result = encode_at_bpp(codec, image, job.target_bpp, base_params=job.base_params, side=side)
        return result, result.as_record()
    if job.match is not None:
        size = job.match.num_bytes
        assert size is not None, "plan_match refuses a reconstruction without a bitstream"
        result = encode_at_bytes(codec, image, size, base_params=job.base_params, side=side)
        return result, {**result.as_record(), "mode": "match", "match": job.match.pk}
    params = codec.validate_params(job.fixed_params or {})
    started = time.perf_counter()
    bitstream = codec.encode(image, params, side=side)
    seconds = time.perf_counter() - started
    height, width = image.shape[:2]
    bpp = bits_per_pixel(len(bitstream), height, width)
    result = RateResult(params, bitstream, bpp, bpp, seconds, True, 1)
    return result, {"mode": "fixed"}


def _make_reconstruction(job: GenerationJob, *, worker: str) -> Reconstruction | None:
    codec = get_codec(job.codec)
    codec.require_available()
    source = job.source
    image = _source_pixels(str(source.png.name), source.png_sha256)
    side = _side_inputs(codec, source)
    result, record = _encode(job, codec, image, side)
    if side is not None:
        record = {**record, "side_inputs_sha256": side.digest}
    started = time.perf_counter()
    decoded = codec.decode(result.bitstream)
    decode_seconds = time.perf_counter() - started
    if decoded.shape != image.shape:
        raise CodecError(job.codec, f"decoded shape {decoded.shape} != source {image.shape}")
    bitstream_name, bitstream_sha = store_verified(
        result.bitstream, folder="bitstreams", extension=codec.file_extension
    )
    png_name, png_sha = store_verified(
        encode_png(decoded), folder="reconstructions", extension="png"
    )
    with transaction.atomic():
        still_ours = GenerationJob.objects.select_for_update().filter(
            pk=job.pk, state=State.RUNNING, worker=worker
        )
        if not still_ours.exists():
            return None  # our lease expired and another worker took over
        reconstruction = Reconstruction.objects.create(
            source=source,
            codec=job.codec,
            codec_version=codec.version(),
            params=result.params,
            target_bpp=job.target_bpp if job.match is None else result.target_bpp,
            achieved_bpp=result.bpp,
            num_bytes=len(result.bitstream),
            width=image.shape[1],
            height=image.shape[0],
            bitstream=bitstream_name,
            bitstream_sha256=bitstream_sha,
            png=png_name,
            png_sha256=png_sha,
            weights_sha256=codec.weights_sha256(result.bitstream),
            encode_seconds=result.encode_seconds,
            decode_seconds=decode_seconds,
            rate_control=record,
        )
        still_ours.update(
            state=State.DONE, reconstruction=reconstruction, finished=timezone.now(), error=""
        )
    return reconstruction


def progress(jobs: Iterable[GenerationJob] | None = None) -> dict[str, int]:
    """Job counts by state (all jobs, or the given ones)."""
    queryset = GenerationJob.objects.all()
    if jobs is not None:
        queryset = queryset.filter(pk__in=[job.pk for job in jobs])
    counts = {state.value: 0 for state in State}
    for row in queryset.values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts
