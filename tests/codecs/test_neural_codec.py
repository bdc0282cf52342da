"""The neural codec adapter, checkpoints, rate control over GC's channel counts, training."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from neuralkit import TINY_GC, TINY_HIFIC, kodak, save_tiny, training_images

from perceptlab.codecs.base import CodecError, CodecUnavailable, bits_per_pixel
from perceptlab.codecs.neural import checkpoints, codec, gc
from perceptlab.codecs.neural.container import unpack
from perceptlab.codecs.neural.training import TrainingError, TrainOptions, train
from perceptlab.codecs.ratecontrol import encode_at_bpp
from perceptlab.codecs.registry import get_codec


@pytest.fixture
def neural_dir(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    settings.PERCEPTLAB_NEURAL_DIR = tmp_path
    codec.forget_models()
    yield tmp_path
    codec.forget_models()


@pytest.fixture
def nothing_shipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As on a checkout whose shipped checkpoints were removed: only the user folder counts."""
    from perceptlab.codecs.neural import checkpoints

    monkeypatch.setattr(checkpoints, "SHIPPED_DIR", tmp_path / "nothing-shipped")


@pytest.mark.usefixtures("nothing_shipped")
def test_a_missing_checkpoint_makes_the_codec_unavailable_with_the_fix(neural_dir: Path) -> None:
    state = get_codec("hific-sparse").availability()
    assert not state.available
    assert state.reason.startswith("weights missing: hific-sparse-small.pt, put it in ")
    assert str(neural_dir) in state.reason and "train_codec" in state.reason
    with pytest.raises(CodecUnavailable, match="weights missing"):
        get_codec("hific").encode(kodak(1)[:64, :64], {"model": "nothing-here"})


def test_encode_decode_through_the_adapter(neural_dir: Path) -> None:
    path = save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC)
    hific = get_codec("hific")
    image = kodak(2)[:100, :150]
    data = hific.encode(image, {"model": "tiny-hific", "qstep": 2.0})
    header = unpack(data).header
    assert header.model == "tiny-hific" and header.params == {"qstep": 2.0}
    assert header.weights_sha256 == checkpoints.sha256_file(path)
    assert header.device_type == f"cpu/{torch.backends.cpu.get_cpu_capability()}"
    assert (header.height, header.width, header.pad_bottom, header.pad_right) == (100, 150, 28, 42)
    first, second = hific.decode(data), hific.decode(data)
    assert first.shape == image.shape and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert bits_per_pixel(len(data), 100, 150) == 8 * len(data) / 15000


def test_bytes_made_with_other_weights_are_refused(neural_dir: Path) -> None:
    save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC, seed=0)
    hific = get_codec("hific")
    data = hific.encode(kodak(2)[:64, :64], {"model": "tiny-hific"})
    save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC, seed=1)
    codec.forget_models()
    with pytest.raises(CodecError, match="made with other weights"):
        hific.decode(data)


def test_a_cuda_bitstream_needs_a_cuda_device(neural_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from perceptlab.codecs.neural.container import Container

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC)
    hific = get_codec("hific")
    container = unpack(hific.encode(kodak(2)[:64, :64], {"model": "tiny-hific"}))
    moved = Container(replace(container.header, device_type="cuda"), container.sections)
    with pytest.raises(CodecUnavailable, match="needs a CUDA device"):
        hific.decode(moved.to_bytes())


def test_rate_control_chooses_among_gcs_channel_counts(neural_dir: Path) -> None:
    for channels in gc.CHANNEL_COUNTS:
        save_tiny("gc", f"gc-c{channels}-small", neural_dir, {**TINY_GC, "channels": channels})
    model = get_codec("gc")
    image = kodak(4)  # 768×512: the header adds 0.0015 bpp to the bound
    result = encode_at_bpp(model, image, 0.08)
    assert result.params["channels"] == 8 and result.within_tolerance
    assert result.bpp <= 0.08 * 1.03
    assert {value for value, _ in result.tried} <= {2.0, 4.0, 8.0, 16.0}
    low = encode_at_bpp(model, image, 0.001)
    assert low.params["channels"] == 2 and not low.within_tolerance
    assert model.decode(result.bitstream).shape == image.shape
    with pytest.raises(CodecError, match="not one of"):
        model.encode(image, {"channels": 3})


def test_checkpoints_store_large_floats_as_half_and_integers_exactly(tmp_path: Path) -> None:
    state = {"big": torch.randn(64, 64), "small": torch.randn(10), "cdf": torch.arange(7)}
    path = tmp_path / "x.pt"
    checkpoints.save(path, family="gc", name="x", version="1", config={}, state_dict=state)
    raw = torch.load(path, weights_only=True)["state_dict"]
    assert raw["big"].dtype == torch.float16 and raw["small"].dtype == torch.float32
    loaded = checkpoints.load(path, family="gc")
    assert loaded.state_dict["big"].dtype == torch.float32
    assert torch.allclose(loaded.state_dict["big"], state["big"], rtol=1e-3, atol=1e-3)
    assert torch.equal(loaded.state_dict["small"], state["small"])
    assert torch.equal(loaded.state_dict["cdf"], state["cdf"])
    with pytest.raises(checkpoints.CheckpointError, match="holds a gc model, not hific"):
        checkpoints.load(path, family="hific")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="not a readable checkpoint"):
        checkpoints.load(tmp_path / "bad.pt")


def test_training_writes_a_checkpoint_a_log_and_resumes(tmp_path: Path) -> None:
    data = training_images(tmp_path / "data")
    options = TrainOptions(
        codec="gc",
        data=data,
        steps=2,
        crop=64,
        batch=2,
        out=tmp_path / "out",
        log_every=1,
        progress=False,
        overrides={k: v for k, v in TINY_GC.items() if k != "channels"},
    )
    path = train(options, echo=lambda _: None)
    assert path.name == "gc-c8-small.pt"
    loaded = checkpoints.load(path, family="gc")
    assert loaded.card["steps"] == 2 and loaded.card["codec"] == "gc"
    assert loaded.card["perceptual"] == "ms-ssim" and loaded.config["channels"] == 8
    log = [json.loads(line) for line in (tmp_path / "out" / "gc-c8-small.log.jsonl").open()]
    assert [row["step"] for row in log] == [1, 2] and all("mse" in row for row in log)
    options.steps, options.resume = 3, True
    messages: list[str] = []
    train(options, echo=messages.append)
    assert messages[0] == "resuming gc-c8-small at step 2"
    assert checkpoints.load(path).card["steps"] == 3
    # continue from the finished checkpoint under another name (e.g. on another machine)
    options.resume, options.steps, options.name = False, 1, "gc-more"
    options.init_from = str(path)
    more = checkpoints.load(train(options, echo=lambda _: None))
    assert more.card["initialised_from"]["sha256"] == checkpoints.sha256_file(path)
    assert more.card["steps"] == 1 and more.card["steps_total"] == 4
    options.init_from = "no-such-checkpoint"
    with pytest.raises(TrainingError, match="no such checkpoint"):
        train(options, echo=lambda _: None)


def test_a_run_started_from_a_checkpoint_resumes(tmp_path: Path, neural_dir: Path) -> None:
    """A HiFiC run ``--init-from`` a checkpoint with built coding tables saves its state
    with them; ``--resume`` reads that state into a fresh system (whose tables are empty)
    and goes on from its step, ending with the same tables."""
    start = save_tiny("hific", "tiny-start", neural_dir, TINY_HIFIC)
    options = TrainOptions(
        codec="hific",
        data=training_images(tmp_path / "data"),
        steps=1,
        crop=64,
        batch=2,
        out=tmp_path / "out",
        progress=False,
        overrides={**TINY_HIFIC, "warmup_steps": 0},
        name="tiny-more",
        init_from=str(start),
    )
    train(options, echo=lambda _: None)
    state = torch.load(tmp_path / "out" / "tiny-more.train.pt", weights_only=False)
    tables = {k: v for k, v in state["system"].items() if k.endswith("_quantized_cdf")}
    assert tables and all(v.numel() > 0 for v in tables.values())
    options.steps, options.resume, options.init_from = 2, True, ""
    messages: list[str] = []
    path = train(options, echo=messages.append)
    assert messages[0] == "resuming tiny-more at step 1"
    assert checkpoints.load(path).card["steps"] == 2


def test_training_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not a folder"):
        train(TrainOptions(codec="gc", data=tmp_path / "none", steps=1, out=tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="holds no images"):
        train(TrainOptions(codec="gc", data=tmp_path / "empty", steps=1, out=tmp_path))
    with pytest.raises(TrainingError, match="unknown gc setting"):
        train(
            TrainOptions(codec="gc", data=tmp_path, steps=1, out=tmp_path, overrides={"colour": 1})
        )
    with pytest.raises(TrainingError, match="has no config 'huge'"):
        train(TrainOptions(codec="hific", data=tmp_path, steps=1, config="huge", out=tmp_path))


def test_train_codec_command(tmp_path: Path, neural_dir: Path) -> None:
    data = training_images(tmp_path / "data")
    overrides = [f"--set={k}={json.dumps(v)}" for k, v in TINY_HIFIC.items()]
    call_command(
        "train_codec", "hific", "--data", str(data), "--steps", "1", "--crop", "64",
        "--batch", "1", "--name", "cmd-hific", "--no-progress", *overrides,
    )  # fmt: skip
    assert (neural_dir / "cmd-hific.pt").is_file()
    image = kodak(5)[:64, :80]
    hific = get_codec("hific")
    assert hific.decode(hific.encode(image, {"model": "cmd-hific"})).shape == image.shape
    with pytest.raises(CommandError, match="not a folder"):
        call_command("train_codec", "gc", "--data", str(tmp_path / "nope"), "--steps", "1")


@pytest.mark.django_db
@pytest.mark.usefixtures("nothing_shipped")
def test_neural_codecs_are_listed_and_generate_stimuli_at_a_target(
    neural_dir: Path, tmp_path: Path
) -> None:
    from io import StringIO

    from support import kodak_path

    for slug in ("hific", "hific-sparse", "gc", "tunable", "rdo-gllmm"):
        assert slug in {row["slug"] for row in _codecs_json()}
    save_tiny("hific", "hific-small", neural_dir, TINY_HIFIC)
    rows = {row["slug"]: row for row in _codecs_json()}
    assert rows["hific"]["available"] and rows["hific"]["rate_dial"] == "qstep"
    assert rows["gc"]["rate_dial"] == "channels" and rows["gc"]["family"] == "neural"
    assert (
        not rows["hific-sparse"]["available"]
        and "weights missing" in rows["hific-sparse"]["reason"]
    )
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "kodim23.png").write_bytes(kodak_path("kodim23").read_bytes())
    call_command("import_images", str(folder), "--set", "n", stdout=StringIO())
    out = StringIO()
    call_command(
        "generate", "--set", "n", "--codecs", "hific", "--bpp", "0.5", "--json", stdout=out
    )
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["codec"] == "hific" and row["params"]["model"] == "hific-small"
    assert row["achieved_bpp"] == 8 * row["bytes"] / (768 * 512)
    assert row["achieved_bpp"] <= 0.5 * 1.03


def _codecs_json() -> list[dict[str, object]]:
    from io import StringIO

    out = StringIO()
    call_command("codecs", "--json", stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_listing_the_codecs_and_their_availability_does_not_import_torch() -> None:
    """The admin's codec choices run on web requests: no torch or CompressAI import there."""
    import subprocess
    import sys

    script = (
        "import django, sys; django.setup()\n"
        "from perceptlab.codecs.admin import codec_choices_with_availability\n"
        "from perceptlab.codecs.registry import REGISTRY, get_codec\n"
        "codec_choices_with_availability()\n"
        "[get_codec(slug).version() for slug in REGISTRY]\n"
        "print(sorted({'torch', 'compressai'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "perceptlab.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.django_db
def test_each_reconstruction_records_the_weights_it_was_encoded_with(neural_dir: Path) -> None:
    """A learned codec's reconstruction stores its checkpoint's SHA-256 (from the bitstream's
    header), a classical one stores none; the migration fills old rows the same way."""
    import importlib

    from django.apps import apps
    from studykit import synthetic_set

    from perceptlab.codecs.generation import JobRequest, plan_jobs, run_job
    from perceptlab.codecs.models import Reconstruction

    path = save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC)
    image_set = synthetic_set(1, width=64, height=64)
    requests = [
        JobRequest("hific", fixed_params={"model": "tiny-hific", "qstep": 2.0}),
        JobRequest("jpeg", fixed_params={"quality": 50}),
    ]
    for job in plan_jobs(sources=image_set.images.all(), requests=requests):
        run_job(job.pk)
    learned = Reconstruction.objects.get(codec="hific")
    assert learned.weights_sha256 == checkpoints.sha256_file(path)
    assert Reconstruction.objects.get(codec="jpeg").weights_sha256 == ""
    migration = importlib.import_module(
        "perceptlab.codecs.migrations.0004_reconstruction_weights_sha256"
    )
    Reconstruction.objects.update(weights_sha256="")
    migration.fill_from_bitstreams(apps, None)
    assert dict(Reconstruction.objects.values_list("codec", "weights_sha256")) == {
        "hific": checkpoints.sha256_file(path),
        "jpeg": "",
    }


def test_gc_selective_is_listed_unavailable_saying_no_checkpoint_ships(
    neural_dir: Path,
) -> None:
    """Issue 14: SC needs label maps to train; the platform says so instead of hiding it or
    failing later (with a checkpoint: tests/codecs/test_sideinputs.py)."""
    from perceptlab.codecs.neural.registered import NO_SC_CHECKPOINT
    from perceptlab.codecs.registry import REGISTRY

    assert REGISTRY["gc-sc"].family == "neural"
    codec = get_codec("gc-sc")
    state = codec.availability()
    assert not state.available and state.reason == NO_SC_CHECKPOINT
    assert "no SC checkpoint ships" in state.reason and "--labels" in state.reason
    with pytest.raises(CodecUnavailable, match="no SC checkpoint ships"):
        codec.encode(np.zeros((32, 32, 3), np.uint8), {})
    assert codec.card_checkpoints() == []
    assert codec.side_inputs == ("semantic label map", "preserved-region mask")
