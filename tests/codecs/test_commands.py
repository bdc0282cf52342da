from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from support import kodak_path

from perceptlab.codecs.models import ImageSet, Reconstruction, SourceImage

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("kodim05", "kodim23"):
        shutil.copy(kodak_path(name), folder / f"{name}.png")
    (folder / "notes.png").write_text("this is not an image")
    return folder


def test_import_images_imports_reports_bad_files_and_skips_duplicates(image_dir: Path) -> None:
    out, err = run("import_images", str(image_dir), "--set", "k")
    assert "2 imported" in out and "1 rejected" in out
    assert "notes.png" in err and "not an image" in err
    shutil.copy(image_dir / "kodim05.png", image_dir / "copy.png")
    out, _ = run("import_images", str(image_dir), "--set", "k")
    assert "0 imported" in out and "copy.png" in out and "same pixels as 'kodim05.png'" in out
    assert SourceImage.objects.count() == 2


def test_import_images_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a directory"):
        run("import_images", str(tmp_path / "nope"), "--set", "k")


def test_codecs_json_lists_every_codec_with_version_and_availability(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CODEC_BINARIES = {k: f"missing-{k}" for k in settings.CODEC_BINARIES}
    out, _ = run("codecs", "--json")
    rows = {row["slug"]: row for row in map(json.loads, out.splitlines())}
    assert rows["jpeg"]["available"] and "libjpeg-turbo" in rows["jpeg"]["version"]
    assert not rows["bpg"]["available"] and "missing-bpgenc" in rows["bpg"]["reason"]
    assert not rows["vvc"]["available"] and rows["vvc"]["rate_dial"] == "qp"
    text, _ = run("codecs")
    assert "UNAVAILABLE" in text and "jpeg2000" in text


GENERATE_JSON = (
    *("generate", "--set", "k", "--codecs", "jpeg,jxl", "--bpp", "0.5,1"),
    *("--images", "kodim23.png", "--json"),
)


def test_generate_json_prints_one_stimulus_per_line(image_dir: Path) -> None:
    run("import_images", str(image_dir), "--set", "k")
    out, _ = run(*GENERATE_JSON)
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4
    expected = {
        "image",
        "codec",
        "codec_version",
        "params",
        "target_bpp",
        "achieved_bpp",
        "bytes",
        "width",
        "height",
        "bitstream_sha256",
        "png_sha256",
        "encode_s",
        "decode_s",
    }
    for row in rows:
        assert expected <= set(row)
        assert row["image"] == "kodim23.png" and (row["width"], row["height"]) == (768, 512)
        assert abs(row["achieved_bpp"] / row["target_bpp"] - 1) <= 0.03
        assert row["achieved_bpp"] == 8 * row["bytes"] / (768 * 512)
    again, _ = run(*GENERATE_JSON)
    assert again == out and Reconstruction.objects.count() == 4


def test_generate_with_fixed_params_uses_the_codecs_names(image_dir: Path) -> None:
    run("import_images", str(image_dir), "--set", "k")
    out, _ = run("generate", "--set", "k", "--codecs", "jpeg", "--params", "quality=30", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["params"]["quality"] for r in rows] == [30.0, 30.0]
    assert all(r["target_bpp"] is None for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--codecs", "jpeg,nope", "--bpp", "0.5"], "unknown codec"),
        (["--codecs", "jpeg", "--bpp", "fast"], "expected comma-separated numbers"),
        (["--codecs", "jpeg", "--bpp", "-1"], "positive"),
        (["--codecs", "jpeg", "--params", "qp=3"], r"unknown parameter\(s\) \['qp'\]"),
        (["--codecs", "jpeg", "--params", "quality"], "is not key=value"),
        (["--codecs", "jpeg"], "give --bpp targets or fixed --params"),
        (["--codecs", "jpeg", "--bpp", "0.5", "--images", "x.png"], "not in set 'k': x.png"),
    ],
)
def test_generate_explains_bad_arguments(image_dir: Path, args: list[str], message: str) -> None:
    run("import_images", str(image_dir), "--set", "k")
    with pytest.raises(CommandError, match=message):
        run("generate", "--set", "k", *args)


def test_generate_names_the_known_sets_when_the_set_is_missing() -> None:
    ImageSet.objects.create(name="real")
    with pytest.raises(CommandError, match="no image set 'ghost'; sets: real"):
        run("generate", "--set", "ghost", "--codecs", "jpeg", "--bpp", "0.5")


def test_generate_enqueue_hands_the_jobs_to_the_task_backend(image_dir: Path) -> None:
    run("import_images", str(image_dir), "--set", "k")
    out, _ = run("generate", "--set", "k", "--codecs", "webp", "--bpp", "0.5", "--enqueue")
    assert "enqueued 2 job(s)" in out
    assert Reconstruction.objects.filter(codec="webp").count() == 2  # immediate backend


@pytest.mark.slow
def test_demo_builds_an_image_set_with_stimuli_from_offline_photos() -> None:
    out, _ = run("demo", "--bpp", "0.5")
    image_set = ImageSet.objects.get(name="demo")
    assert image_set.images.count() == 5
    assert Reconstruction.objects.filter(source__image_set=image_set).count() >= 5 * 5
    assert "admin login: admin / " in out
    out, _ = run("demo", "--bpp", "0.5")
    assert "password unchanged" in out
