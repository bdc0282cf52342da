from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from support import kodak_path

from perceptlab.codecs.files import content_name, read_bytes, store_verified
from perceptlab.codecs.generation import JobRequest, claim, plan_jobs, plan_match, run_job
from perceptlab.codecs.intake import import_file
from perceptlab.codecs.models import GenerationJob, ImageSet, Reconstruction, SourceImage
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.lib.images import decode_png, sha256_hex

pytestmark = pytest.mark.django_db


def make_set(*names: str) -> ImageSet:
    image_set = ImageSet.objects.create(name="kodak")
    for name in names:
        outcome = import_file(image_set=image_set, path=kodak_path(name))
        assert outcome.image is not None, outcome.error
    return image_set


def test_a_job_stores_a_hash_verified_reconstruction_with_its_provenance() -> None:
    image_set = make_set("kodim23")
    [job] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.25)])
    reconstruction = run_job(job.pk)
    assert reconstruction is not None
    bitstream = read_bytes(reconstruction.bitstream.name)
    assert sha256_hex(bitstream) == reconstruction.bitstream_sha256
    assert reconstruction.num_bytes == len(bitstream)
    assert reconstruction.achieved_bpp == 8 * len(bitstream) / (768 * 512)
    assert abs(reconstruction.achieved_bpp / 0.25 - 1) <= 0.03
    assert reconstruction.codec == "jpeg" and "libjpeg-turbo" in reconstruction.codec_version
    assert set(reconstruction.params) == {"quality", "optimize", "progressive"}
    assert reconstruction.target_bpp == 0.25
    assert reconstruction.encode_seconds > 0 and reconstruction.decode_seconds > 0
    png = read_bytes(reconstruction.png.name)
    assert sha256_hex(png) == reconstruction.png_sha256
    assert decode_png(png).shape == (512, 768, 3)
    job.refresh_from_db()
    assert job.state == "done" and job.attempts == 1 and job.reconstruction == reconstruction


def test_planning_the_same_work_twice_finds_the_same_jobs_and_reruns_nothing() -> None:
    image_set = make_set("kodim23")
    requests = [JobRequest("jpeg", 0.5), JobRequest("webp", 0.5)]
    first = plan_jobs(sources=image_set.images.all(), requests=requests)
    for job in first:
        run_job(job.pk)
    second = plan_jobs(sources=image_set.images.all(), requests=requests)
    assert [j.pk for j in first] == [j.pk for j in second]
    assert all(j.state == "done" for j in second)
    assert enqueue_jobs(second) == 0
    for job in second:
        run_job(job.pk)
    assert Reconstruction.objects.count() == 2
    assert set(GenerationJob.objects.values_list("attempts", flat=True)) == {1}


def test_a_failed_job_is_recorded_and_planned_again_as_pending() -> None:
    image_set = make_set("kodim23")
    [job] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.5)])
    SourceImage.objects.update(png_sha256="0" * 64)  # the stored file no longer matches
    assert run_job(job.pk) is None
    job.refresh_from_db()
    assert job.state == "failed" and "does not match its SHA-256" in job.error
    assert not Reconstruction.objects.exists()
    [again] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.5)])
    assert again.pk == job.pk and again.state == "pending"


def test_an_unavailable_codec_fails_its_job_with_the_reason(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "bpgenc": "no-such-bpgenc"}
    image_set = make_set("kodim23")
    [job] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("bpg", 0.5)])
    assert run_job(job.pk) is None
    job.refresh_from_db()
    assert job.state == "failed" and "no-such-bpgenc" in job.error


def test_a_job_killed_mid_run_is_taken_over_once_its_lease_expires() -> None:
    image_set = make_set("kodim23")
    [job] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.5)])
    assert claim(job.pk, worker="dead-worker")  # claimed, then the worker was killed
    assert run_job(job.pk, worker="live") is None  # lease still valid: not ours
    GenerationJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(1))
    reconstruction = run_job(job.pk, worker="live")
    assert reconstruction is not None
    job.refresh_from_db()
    assert job.worker == "live" and job.attempts == 2


def test_a_partial_file_left_by_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    data = b"complete bitstream bytes"
    name = content_name("bitstreams", sha256_hex(data), "bin")
    default_storage.save(name, __import__("io").BytesIO(data[:5]))  # a torn write
    stored, digest = store_verified(data, folder="bitstreams", extension="bin")
    assert stored == name and read_bytes(stored) == data and digest == sha256_hex(data)


def test_fixed_parameters_skip_rate_control() -> None:
    image_set = make_set("kodim23")
    [job] = plan_jobs(
        sources=image_set.images.all(),
        requests=[JobRequest("jpeg", fixed_params={"quality": "50"})],
    )
    reconstruction = run_job(job.pk)
    assert reconstruction is not None
    assert reconstruction.params["quality"] == 50.0 and reconstruction.target_bpp is None
    assert reconstruction.rate_control == {"mode": "fixed"}


def test_rate_matched_jobs_hit_the_size_of_the_other_reconstruction() -> None:
    image_set = make_set("kodim23")
    [job] = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.3)])
    reference = run_job(job.pk)
    assert reference is not None
    matched = run_job(plan_match(reconstruction=reference, codec="jpeg2000").pk)
    assert matched is not None
    assert matched.num_bytes <= reference.num_bytes * 1.03
    assert abs(matched.num_bytes / reference.num_bytes - 1) <= 0.03
    assert matched.rate_control["mode"] == "match"


def test_enqueued_jobs_run_through_django_tasks() -> None:
    image_set = make_set("kodim23")
    jobs = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("webp", 0.5)])
    assert enqueue_jobs(jobs) == 1  # the immediate backend runs it now
    assert Reconstruction.objects.filter(codec="webp").count() == 1


seen_by_hook: list[int] = []


def _recording_hook(job_id: int) -> None:
    seen_by_hook.append(job_id)


def _failing_hook(job_id: int) -> None:
    raise RuntimeError("a hook that fails")


def test_a_finished_job_goes_to_the_generation_hooks_and_a_failing_one_changes_nothing(
    settings, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    settings.GENERATION_DONE_HOOKS = [
        f"{__name__}._failing_hook",
        f"{__name__}._recording_hook",
    ]
    seen_by_hook.clear()
    image_set = make_set("kodim23")
    jobs = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("webp", 0.5)])
    assert enqueue_jobs(jobs) == 1
    (job,) = GenerationJob.objects.all()
    assert job.state == GenerationJob.State.DONE and job.reconstruction is not None
    assert seen_by_hook == [job.pk]  # the next hook still ran
    assert "generation hook" in caplog.text and "a hook that fails" in caplog.text
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "bpgenc": "no-such-bpgenc"}
    failed = plan_jobs(sources=image_set.images.all(), requests=[JobRequest("bpg", 0.5)])
    enqueue_jobs(failed)
    assert GenerationJob.objects.get(codec="bpg").state == GenerationJob.State.FAILED
    assert seen_by_hook == [job.pk]  # a job without a reconstruction is not handed on


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_run_the_same_job_twice() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "row-level concurrency is checked in the PostgreSQL pass of .ci/run "
            "(DATABASE_URL=postgres://...)"
        )
    image_set = make_set("kodim23", "kodim05")
    jobs = plan_jobs(
        sources=image_set.images.all(),
        requests=[JobRequest("jpeg", b) for b in (0.25, 0.5, 1.0, 1.5)],
    )
    done: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        barrier.wait()
        try:
            for job in jobs:
                if run_job(job.pk, worker=name) is not None and claim_owner(job.pk) == name:
                    done[name].append(job.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in done]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done["a"] + done["b"]) == sorted(j.pk for j in jobs)
    assert set(GenerationJob.objects.values_list("attempts", flat=True)) == {1}
    assert Reconstruction.objects.count() == len(jobs)


def claim_owner(job_id: int) -> str:
    return GenerationJob.objects.get(pk=job_id).worker


def test_progress_counts_jobs_by_state() -> None:
    from perceptlab.codecs.generation import progress

    image_set = make_set("kodim23")
    jobs = plan_jobs(
        sources=image_set.images.all(), requests=[JobRequest("jpeg", 0.5), JobRequest("jpeg", 1.0)]
    )
    run_job(jobs[0].pk)
    assert progress(jobs) == {"pending": 1, "running": 0, "done": 1, "failed": 0}
    assert np.isclose(Reconstruction.objects.get().achieved_bpp, 0.5, rtol=0.03)
