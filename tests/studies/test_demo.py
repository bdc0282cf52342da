"""``manage.py demo``: an image set, three live studies, their rater links; idempotent."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from studykit import write_images

from perceptlab.codecs.models import GenerationJob, ImageSet
from perceptlab.evaluation.models import StimulusMetric
from perceptlab.studies.models import Item, Judgment, Study

pytestmark = pytest.mark.django_db


def run_demo(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("demo", *args, stdout=out, stderr=err)
    return out.getvalue()


@pytest.fixture
def small_demo_args(tmp_path: Path) -> list[str]:
    folder = write_images(tmp_path / "photos", 2, width=160, height=112)
    return ["--images", str(folder), "--bpp", "0.5,1", "--codecs", "jpeg,webp", "--no-gan"]


def test_the_demo_launches_a_study_of_each_method_and_prints_their_rater_links(
    small_demo_args: list[str],
) -> None:
    out = run_demo(*small_demo_args, "--base-url", "http://demo.example:8123/")
    studies = {
        s.method: s
        for s in Study.objects.filter(name__startswith="demo-").exclude(name__endswith="-example")
    }
    assert sorted(studies) == ["2afc", "acr", "dcr", "flicker", "triplet"]
    for method, study in studies.items():
        assert study.state == Study.State.LIVE and study.launched is not None
        assert study.items.filter(kind=Item.Kind.TEST).exists(), method
        assert study.codecs == ["jpeg", "webp"] and study.target_bpps == [0.5, 1.0]
        crop = 256 if method == "triplet" else 384  # three panes fit a laptop
        assert (study.crop_width, study.crop_height) == (crop, crop)
        assert study.completion_code == "DEMO-DONE" and study.screenout_code == "DEMO-SCREENED"
    assert studies["acr"].hidden_reference
    assert studies["2afc"].min_flips == 1 and studies["acr"].min_flips == 0
    assert studies["triplet"].is_boosted
    assert studies["triplet"].stimuli.filter(boost_alpha=2.0).count() == (
        studies["triplet"].stimuli.count()
    )
    lines = out.strip().splitlines()
    assert lines[-11:-6] == [
        f"rater link ({method}): http://demo.example:8123/study/{studies[method].invite}/"
        for method in ("acr", "dcr", "2afc", "triplet", "flicker")
    ]
    examples = {s.method: s for s in Study.objects.filter(name__endswith="-example")}
    assert lines[-6:-2] == [
        f"report ({method}, simulated raters): http://demo.example:8123/reports/"
        f"{examples[method].pk}/"
        for method in ("acr", "2afc", "triplet", "flicker")
    ]
    assert lines[-2] == "admin: http://demo.example:8123/admin/"
    assert lines[-1].startswith("admin login: admin / ")


def test_running_the_demo_twice_reuses_the_set_the_jobs_and_the_studies(
    small_demo_args: list[str],
) -> None:
    first = run_demo(*small_demo_args)
    invites = dict(Study.objects.values_list("name", "invite"))
    jobs, items = GenerationJob.objects.count(), Item.objects.count()
    second = run_demo(*small_demo_args)
    assert dict(Study.objects.values_list("name", "invite")) == invites
    assert (GenerationJob.objects.count(), Item.objects.count()) == (jobs, items)
    assert ImageSet.objects.count() == 1
    assert "study demo-acr: already live" in second
    links = [line for line in first.splitlines() if line.startswith("rater link")]
    assert links == [line for line in second.splitlines() if line.startswith("rater link")]
    assert "password unchanged" in second.splitlines()[-1]


def test_with_enqueue_the_studies_launch_on_a_later_run_once_the_worker_is_done(
    small_demo_args: list[str],
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    out = run_demo(*small_demo_args, "--enqueue")
    assert "enqueued" in out and "left in draft" in out and "not finished yet" in out
    assert set(Study.objects.values_list("state", flat=True)) == {Study.State.DRAFT}
    out = run_demo(*small_demo_args)  # the worker's part, done inline here
    states = dict(Study.objects.values_list("name", "state"))
    methods = ("acr", "dcr", "2afc", "triplet", "flicker")
    assert {states[f"demo-{m}"] for m in methods} == {Study.State.LIVE}
    examples = {states[f"demo-{m}-example"] for m in ("acr", "2afc", "triplet", "flicker")}
    assert examples == {Study.State.CLOSED}
    assert out.count("rater link (") == 5


def test_the_demo_refuses_an_unknown_codec(small_demo_args: list[str]) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown codec"):
        run_demo(*small_demo_args[:4], "--codecs", "jpeg,nope")


def test_the_demo_adds_example_results_rated_by_simulated_raters(
    small_demo_args: list[str],
    admin_client,  # type: ignore[no-untyped-def]
) -> None:
    run_demo(*small_demo_args)
    for method in ("acr", "2afc", "triplet", "flicker"):
        study = Study.objects.get(name=f"demo-{method}-example")
        assert study.state == Study.State.CLOSED and "SIMULATED" in study.title
        judged = Judgment.objects.filter(trial__session__study=study).count()
        assert judged == 8 * study.items.filter(kind=Item.Kind.TEST).count()
        assert StimulusMetric.objects.filter(stimulus__study=study, metric="psnr").exists()
        page = admin_client.get(reverse("evaluation:report", args=[study.pk]))
        heading = "Visually lossless thresholds" if method == "flicker" else "Rate–perception"
        assert page.status_code == 200 and heading in page.content.decode()
        if method == "triplet":
            assert "JND scale per image" in page.content.decode()
        if method in ("acr", "triplet"):  # metrics calibrated on the other image, predicted
            assert "Metrics calibrated to the human scale" in page.content.decode()
            assert "inside their 95 % predictive interval" in page.content.decode()
    # issue 15's metrics reach the demo's reports: CVVDP (the [cvvdp] extra), butteraugli
    # (libjxl-devtools' butteraugli_main, which scripts/browser.sh installs) and IW-SSIM, which
    # these 160×112 test photos are too small for (it says so; the demo's own photos are not)
    study = Study.objects.get(name="demo-acr-example")
    html = admin_client.get(reverse("evaluation:report", args=[study.pk])).content.decode()
    for slug in ("cvvdp", "butteraugli"):
        stored = StimulusMetric.objects.filter(stimulus__study=study, metric=slug)
        assert stored.exists() and not stored.filter(value__isnull=True).exists(), slug
    small = StimulusMetric.objects.filter(stimulus__study=study, metric="iw_ssim")
    assert small.exists() and all("176×176" in m.unavailable for m in small)
    for name in ("ColorVideoVDP", "Butteraugli", "IW-SSIM"):
        assert name in html, name
    again = run_demo(*small_demo_args)
    assert "study demo-acr-example: already rated" in again


def test_the_demo_adds_a_gan_codec_study_when_two_gan_codecs_have_checkpoints(
    tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    from neuralkit import TINY_GC, TINY_HIFIC, save_tiny

    from perceptlab.codecs.neural import codec
    from perceptlab.studies.demo import GAN_ANCHORS, GAN_BPPS

    settings.PERCEPTLAB_NEURAL_DIR = tmp_path / "neural"
    (tmp_path / "neural").mkdir()
    save_tiny("hific", "hific-small", tmp_path / "neural", TINY_HIFIC)
    for channels in (2, 4, 8, 16):
        save_tiny(
            "gc", f"gc-c{channels}-small", tmp_path / "neural", {**TINY_GC, "channels": channels}
        )
    settings.PERCEPTLAB_NEURAL_DIR = tmp_path / "neural"
    codec.forget_models()
    folder = write_images(tmp_path / "photos", 2, width=160, height=112)
    try:
        out = run_demo("--images", str(folder), "--bpp", "0.5", "--codecs", "jpeg")
        # Uncarded tiny models are no photographs: left out, saying why, unless asked for.
        assert not Study.objects.filter(name="demo-gan-2afc").exists()
        assert "no GAN-codec study: fewer than two GAN codecs qualify here" in out
        assert "hific: demonstrator, below the photographic floor" not in out  # no card
        assert "hific: no Kodak measurement in its model card (run model_card)" in out
        # The released MS-ILLM models qualify without a card; here their weights are absent,
        # and the demo says how to get them.
        assert "msillm: weights missing: " in out and "fetch_weights --only msillm" in out
        out = run_demo(
            "--images", str(folder), "--bpp", "0.5", "--codecs", "jpeg", "--demonstrators"
        )
    finally:
        codec.forget_models()
    study = Study.objects.get(name="demo-gan-2afc")
    # the tiny hific and gc models here, plus whichever GAN codecs ship a checkpoint
    assert {"hific", "gc"} <= set(study.codecs) and study.codecs[-2:] == list(GAN_ANCHORS)
    assert study.target_bpps == list(GAN_BPPS) and study.method == "2afc"
    assert study.state == Study.State.LIVE and study.items.filter(kind=Item.Kind.TEST).exists()
    assert f"rater link (2afc): http://127.0.0.1:8000/study/{study.invite}/" in out
