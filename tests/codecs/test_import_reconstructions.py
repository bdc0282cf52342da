"""Imported reconstructions: a codec known only by its decoded images (and bitstreams or a
table of rates), from the command and from the admin's upload form."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import importkit
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.test import Client

from perceptlab.codecs.files import read_bytes
from perceptlab.codecs.imported import ImportFile, ImportRefused, Rates, import_reconstructions
from perceptlab.codecs.models import BppSource, ImageSet, ImportedCodec, Reconstruction
from perceptlab.codecs.registry import ImportedCodecCannotEncode, codec_entries, get_codec
from perceptlab.lib.images import decode_png, encode_png, sha256_hex

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def kodak() -> ImageSet:
    return importkit.kodak_crop_set(name="kodak")


@pytest.fixture
def output(tmp_path: Path) -> importkit.Output:
    return importkit.researcher_output(tmp_path / "researcher")


@pytest.fixture
def media(settings) -> Path:  # type: ignore[no-untyped-def]
    return Path(settings.MEDIA_ROOT)


def import_measured(output: importkit.Output, *extra: str) -> tuple[str, str]:
    return run(
        "import_reconstructions",
        str(output.images),
        *("--set", "kodak", "--codec", "my-gan", "--version", "1.0"),
        *("--bitstreams", str(output.bitstreams), *extra),
    )


# -- bpp measured from the bitstreams, or declared in a table ----------------------------------


def test_bitstreams_give_each_reconstruction_its_measured_bpp(
    kodak: ImageSet, output: importkit.Output
) -> None:
    out, _ = import_measured(output, "--label", "My GAN")
    assert "4 reconstruction(s) imported at point(s) q20, q75" in out
    codec = ImportedCodec.objects.get(slug="my-gan")
    assert codec.label == "My GAN"
    rows = Reconstruction.objects.filter(codec="my-gan").select_related("source")
    assert len(rows) == 4
    for row in rows:
        key = (row.point, row.source.name.removesuffix(".png"))
        bitstream = read_bytes(row.bitstream.name)
        assert bitstream == (output.bitstreams / key[0] / f"{key[1]}.jpg").read_bytes()
        assert row.achieved_bpp == 8 * len(bitstream) / (row.height * row.width)
        assert row.achieved_bpp == output.bpp[key] and row.num_bytes == len(bitstream)
        assert row.bpp_source == BppSource.MEASURED and row.imported == codec
        assert row.params == {"point": key[0]} and row.target_bpp is None
        assert row.codec_version == "1.0" and row.rate_control["mode"] == "imported"
        assert row.bitstream_sha256 == sha256_hex(bitstream)
        assert row.bitstream.name.endswith(".jpg")
        assert np.array_equal(decode_png(read_bytes(row.png.name)), output.pixels[key])
    lower, higher = (output.bpp[(p, "kodim01")] for p in ("q20", "q75"))
    assert lower < higher  # more quality, more bits: the stand-in codec behaves


def test_a_bpp_csv_gives_declared_rates_and_no_bitstream(
    kodak: ImageSet, output: importkit.Output
) -> None:
    out, _ = run(
        "import_reconstructions",
        str(output.images),
        *("--set", "kodak", "--codec", "my-gan", "--bpp-csv", str(output.csv), "--json"),
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 4 and {r["bpp_source"] for r in records} == {"declared"}
    for row in Reconstruction.objects.filter(codec="my-gan").select_related("source"):
        key = (row.point, row.source.name.removesuffix(".png"))
        assert row.bpp_source == BppSource.DECLARED and row.achieved_bpp == output.bpp[key]
        assert row.num_bytes is None and not row.bitstream and row.bitstream_sha256 == ""
        assert row.rate_control["declared_in"] == "rates.csv"
        assert row.codec_version.startswith("unversioned")


def test_the_bitstreams_and_the_csv_exclude_each_other(
    kodak: ImageSet, output: importkit.Output
) -> None:
    with pytest.raises(CommandError, match="not allowed with argument"):
        import_measured(output, "--bpp-csv", str(output.csv))


# -- every problem named, nothing stored -------------------------------------------------------


def wrong_size(output: importkit.Output) -> str:
    crop = importkit.kodak_crop("kodim01", width=importkit.WIDTH - 8)
    (output.images / "q20" / "kodim01.png").write_bytes(encode_png(crop))
    return "q20/kodim01.png: is 120x96 pixels, but its source kodim01.png is 128x96"


def not_an_image(output: importkit.Output) -> str:
    (output.images / "q75" / "kodim23.png").write_text("decoder crashed, sorry")
    return "q75/kodim23.png: not an image"


def sixteen_bit(output: importkit.Output) -> str:
    pixels = output.pixels[("q20", "kodim23")]
    (output.images / "q20" / "kodim23.png").write_bytes(importkit.png_16bit_rgb(pixels))
    return (
        "q20/kodim23.png: is not stored as 8-bit RGB; importing it would change it: "
        "converted 16-bit to 8-bit"
    )


def unknown_image(output: importkit.Output) -> str:
    shutil.copy(output.images / "q20" / "kodim01.png", output.images / "q20" / "kodim99.png")
    return "q20/kodim99.png: no image named 'kodim99' in set 'kodak' (its images: kodim01, kodim23)"


@pytest.mark.parametrize("spoil", [wrong_size, not_an_image, sixteen_bit, unknown_image])
def test_a_bad_file_is_named_and_nothing_is_stored(
    kodak: ImageSet,
    output: importkit.Output,
    media: Path,
    spoil: Callable[[importkit.Output], str],
) -> None:
    expected = spoil(output)
    problems = _problems(output)
    assert any(expected in line for line in problems), problems
    assert not Reconstruction.objects.exists() and not ImportedCodec.objects.exists()
    assert importkit.stored_files(media, "reconstructions") == []
    assert importkit.stored_files(media, "bitstreams") == []


def _problems(output: importkit.Output) -> list[str]:
    """The import's problems, one per line, as the command prints them."""
    err = StringIO()
    with pytest.raises(CommandError, match=r"nothing imported: \d+ problem\(s\) above"):
        call_command(
            "import_reconstructions",
            str(output.images),
            *("--set", "kodak", "--codec", "my-gan", "--bitstreams", str(output.bitstreams)),
            stdout=StringIO(),
            stderr=err,
        )
    return err.getvalue().splitlines()


def test_every_problem_is_listed_at_once(kodak: ImageSet, output: importkit.Output) -> None:
    wrong_size(output)
    not_an_image(output)
    (output.bitstreams / "q75" / "kodim01.jpg").unlink()
    problems = _problems(output)
    assert len(problems) == 3, problems
    assert any("q75/kodim01.png: no bitstream q75/kodim01.*" in p for p in problems)


def test_a_missing_or_bad_csv_row_is_named(kodak: ImageSet, output: importkit.Output) -> None:
    lines = output.csv.read_text().splitlines()
    output.csv.write_text("\n".join([lines[0], *lines[2:-1], "kodim23,q75,-1"]) + "\n")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_reconstructions",
            str(output.images),
            *("--set", "kodak", "--codec", "my-gan", "--bpp-csv", str(output.csv)),
            stdout=StringIO(),
            stderr=err,
        )
    text = err.getvalue()
    assert "rates.csv line 4: bpp '-1' is not a positive number" in text
    assert "q20/kodim01.png: no row in rates.csv for image 'kodim01' at point 'q20'" in text
    assert not Reconstruction.objects.exists()


def test_a_csv_without_the_columns_is_one_problem_not_one_per_file(
    kodak: ImageSet, output: importkit.Output
) -> None:
    with pytest.raises(ImportRefused) as refused:
        import_reconstructions(
            image_set=kodak,
            codec="my-gan",
            files=[
                ImportFile.of_bytes(
                    "q20/kodim01.png", (output.images / "q20/kodim01.png").read_bytes()
                )
            ],
            rates=Rates(csv_name="rates.csv", csv_data=b"img;pt;rate\n"),
        )
    assert refused.value.problems == [
        "rates.csv: missing column(s) image, point, bpp; the first line must name the columns "
        "image, point, bpp (it has: img;pt;rate)"
    ]


def test_files_stored_before_a_database_failure_are_removed(
    kodak: ImageSet, output: importkit.Output, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(Reconstruction.objects, "bulk_create", refuse)
    with pytest.raises(DatabaseError):
        import_measured(output)
    assert importkit.stored_files(media, "reconstructions") == []
    assert importkit.stored_files(media, "bitstreams") == []
    assert not ImportedCodec.objects.exists()


def test_loose_files_need_a_point(kodak: ImageSet, output: importkit.Output) -> None:
    loose = output.images.parent / "loose"
    shutil.copytree(output.images / "q20", loose)
    bits = output.images.parent / "loose-bits"
    shutil.copytree(output.bitstreams / "q20", bits)
    args = ("--set", "kodak", "--codec", "my-gan", "--bitstreams", str(bits))
    with pytest.raises(CommandError):
        call_command("import_reconstructions", str(loose), *args, stderr=StringIO())
    out, _ = run("import_reconstructions", str(loose), *args, "--point", "q20")
    assert "2 reconstruction(s) imported at point(s) q20" in out


def test_a_registered_slug_cannot_be_taken(kodak: ImageSet, output: importkit.Output) -> None:
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_reconstructions",
            str(output.images),
            *("--set", "kodak", "--codec", "jpeg", "--bitstreams", str(output.bitstreams)),
            stderr=err,
        )
    assert "codec name 'jpeg' is taken by a registered classical codec" in err.getvalue()


# -- re-importing replaces nothing silently ----------------------------------------------------


def test_reimporting_a_point_is_refused_unless_replace(
    kodak: ImageSet, output: importkit.Output
) -> None:
    import_measured(output)
    before = set(Reconstruction.objects.values_list("pk", flat=True))
    problems = _problems(output)
    assert problems == [
        "my-gan already has point(s) q20 (2 image(s)), q75 (2 image(s)) in set 'kodak'; pass "
        "--replace (the form's 'replace' box) to replace them, or name the new points "
        "differently"
    ]
    assert set(Reconstruction.objects.values_list("pk", flat=True)) == before
    out, _ = run(
        "import_reconstructions",
        str(output.images),
        *("--set", "kodak", "--codec", "my-gan", "--version", "2.0", "--replace"),
        *("--bpp-csv", str(output.csv)),
    )
    assert "4 reconstruction(s) imported" in out and "4 replaced" in out
    rows = Reconstruction.objects.all()
    assert len(rows) == 4 and not before & {r.pk for r in rows}
    assert {(r.codec_version, r.bpp_source) for r in rows} == {("2.0", "declared")}


def test_a_new_point_joins_the_codec(
    kodak: ImageSet, output: importkit.Output, tmp_path: Path
) -> None:
    import_measured(output)
    more = importkit.researcher_output(tmp_path / "more", points={"q45": 45})
    run(
        "import_reconstructions",
        str(more.images),
        *("--set", "kodak", "--codec", "my-gan", "--bitstreams", str(more.bitstreams)),
    )
    points = {r.point for r in Reconstruction.objects.filter(codec="my-gan")}
    assert points == {"q20", "q45", "q75"} and ImportedCodec.objects.count() == 1


# -- a codec like the others -------------------------------------------------------------------


def test_it_is_listed_by_manage_py_codecs(kodak: ImageSet, output: importkit.Output) -> None:
    import_measured(output, "--label", "My GAN")
    out, _ = run("codecs", "--json")
    rows = {row["slug"]: row for row in map(json.loads, out.splitlines())}
    row = rows["my-gan"]
    assert row["family"] == "imported" and row["label"] == "My GAN" and row["available"]
    assert row["points"] == ["q20", "q75"] and row["images"] == 2 and row["version"] == "1.0"
    assert row["bpp_source"] == ["measured"] and row["image_sets"] == ["kodak"]
    assert rows["jpeg"]["family"] == "classical"  # the registry's codecs still come first
    text, _ = run("codecs")
    [line] = [line for line in text.splitlines() if line.startswith("my-gan")]
    assert "2 point(s) (q20, q75) of 2 image(s), bpp measured" in line
    assert "never encodes" in line
    # A registered codec (a plugin installed later, say) taking the slug hides it, loudly
    from django.core import checks

    from perceptlab.codecs.registry import REGISTRY, CodecEntry

    assert not [m for m in checks.run_checks(databases=["default"]) if m.id == "codecs.W032"]
    REGISTRY["my-gan"] = CodecEntry("my-gan", "Plugin GAN", "plugin", "x:Y", "a later plugin")
    try:
        out, err = run("codecs", "--json")
        found = [m for m in checks.run_checks(databases=["default"]) if m.id == "codecs.W032"]
        untouched = [m for m in checks.run_checks() if m.id == "codecs.W032"]  # no database
    finally:
        del REGISTRY["my-gan"]
    assert "imported codec 'my-gan' is hidden: a registered codec" in err
    # ... and in the system checks that migrate and `check --database default` run
    [warning] = found
    assert "imported codec 'my-gan' is hidden" in warning.msg and "rename" in str(warning.hint)
    assert untouched == []


def test_it_is_a_codec_choice_but_cannot_encode(kodak: ImageSet, output: importkit.Output) -> None:
    import_measured(output)
    assert codec_entries()["my-gan"].family == "imported"
    with pytest.raises(
        ImportedCodecCannotEncode, match=r"my-gan: an imported codec .* cannot encode"
    ):
        get_codec("my-gan")
    with pytest.raises(CommandError, match="cannot encode"):
        run("generate", "--set", "kodak", "--codecs", "my-gan", "--bpp", "0.5")


def test_the_domain_function_refuses_an_empty_import(kodak: ImageSet) -> None:
    with pytest.raises(ImportRefused, match="no decoded images found"):
        import_reconstructions(
            image_set=kodak, codec="my-gan", files=[], rates=Rates(bitstreams=[])
        )
    loose = [ImportFile.of_bytes("a/b/c.png", b"x")]
    with pytest.raises(ImportRefused, match="nested too deep"):
        import_reconstructions(image_set=kodak, codec="my-gan", files=loose, rates=Rates([]))


# -- the admin's upload form -------------------------------------------------------------------

IMPORT_URL = "/admin/codecs/importedcodec/import/"


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_staff_import_a_zip_with_its_bitstreams_in_the_admin(
    admin_client: Client, kodak: ImageSet, output: importkit.Output
) -> None:
    page = admin_client.get(IMPORT_URL)
    assert page.status_code == 200 and "Import reconstructions" in page.content.decode()
    response = admin_client.post(
        IMPORT_URL,
        {
            "image_set": kodak.pk,
            "codec": "my-gan",
            "label": "My GAN",
            "version": "1.0",
            # zipped from the folder itself: one top folder holding the point folders
            "images_zip": upload("decoded.zip", importkit.zip_folder(output.images, top="out")),
            "bitstreams_zip": upload("bits.zip", importkit.zip_folder(output.bitstreams)),
        },
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode().lower()  # the admin capitalises messages
    assert "my-gan: 4 reconstruction(s) imported at point(s) q20, q75" in text
    rows = Reconstruction.objects.filter(codec="my-gan")
    assert len(rows) == 4 and {r.bpp_source for r in rows} == {"measured"}
    listing = admin_client.get("/admin/codecs/importedcodec/").content.decode()
    assert "My GAN" in listing and "2 point(s) (q20, q75) of 2 image(s)" in listing
    study_form = admin_client.get("/admin/studies/study/add/").content.decode()
    assert "My GAN — imported: 2 point(s)" in study_form


def test_several_files_with_a_point_and_a_csv_import_as_declared(
    admin_client: Client, kodak: ImageSet, output: importkit.Output
) -> None:
    files = [
        upload(f"{name}.png", (output.images / "q20" / f"{name}.png").read_bytes())
        for name in importkit.IMAGES
    ]
    table = "image,point,bpp\nkodim01,q20,0.61\nkodim23.png,q20,0.55\n"
    response = admin_client.post(
        IMPORT_URL,
        {
            "image_set": kodak.pk,
            "codec": "my-gan",
            "images": files,
            "point": "q20",
            "bpp_csv": upload("rates.csv", table.encode()),
        },
    )
    assert response.status_code == 302
    rows = {r.source.name: r for r in Reconstruction.objects.select_related("source")}
    assert rows["kodim01.png"].achieved_bpp == 0.61 and rows["kodim23.png"].bpp_is_declared


def test_a_bad_upload_shows_each_problem_and_stores_nothing(
    admin_client: Client, kodak: ImageSet, output: importkit.Output, media: Path
) -> None:
    expected = [wrong_size(output), sixteen_bit(output)]
    response = admin_client.post(
        IMPORT_URL,
        {
            "image_set": kodak.pk,
            "codec": "my-gan",
            "images_zip": upload("decoded.zip", importkit.zip_folder(output.images)),
            "bitstreams_zip": upload("bits.zip", importkit.zip_folder(output.bitstreams)),
        },
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was imported: 2 problem(s)." in text
    for problem in expected:
        assert problem.replace("'", "&#x27;") in text
    assert not Reconstruction.objects.exists() and not ImportedCodec.objects.exists()
    assert importkit.stored_files(media, "reconstructions") == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"images_zip": upload("x.zip", b"PK not really a zip")}, "not a readable zip file"),
        ({}, "upload the decoded images: a zip, or files (not both)"),
    ],
)
def test_a_garbled_or_incomplete_upload_is_answered_with_the_form(
    admin_client: Client, kodak: ImageSet, fields: dict[str, object], message: str
) -> None:
    data = {"image_set": kodak.pk, "codec": "my-gan", "bpp_csv": upload("r.csv", b"image")}
    response = admin_client.post(IMPORT_URL, {**data, **fields})
    assert response.status_code == 200 and message in response.content.decode()
    assert not Reconstruction.objects.exists()


def test_the_import_form_needs_a_staff_login(client: Client) -> None:
    response = client.get(IMPORT_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_an_import_holds_one_image_at_a_time_not_the_folder(
    tmp_path: Path, packed: str, media: Path
) -> None:
    """Files are read when checked and each decoded image is stored as soon as it passes,
    so the import's Python memory peaks near one image's, not the folder's (12 noise
    images × 3 points, 21 MB of PNGs: before, every file's bytes and every re-encoded PNG
    were held until the last was checked)."""
    import tracemalloc

    from perceptlab.codecs.imported import files_from_directory, files_from_zip
    from perceptlab.codecs.intake import import_image

    rng = np.random.default_rng(5)
    names = [f"noise{i:02d}" for i in range(12)]
    image_set = ImageSet.objects.create(name="noise")
    for name in names:
        pixels = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
        import_image(image_set=image_set, name=f"{name}.png", data=encode_png(pixels))
    folder = tmp_path / "decoded"
    rows = ["image,point,bpp"]
    for point in ("p1", "p2", "p3"):
        (folder / point).mkdir(parents=True)
        for name in names:
            pixels = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
            (folder / point / f"{name}.png").write_bytes(encode_png(pixels))
            rows.append(f"{name},{point},0.5")
    total = sum(p.stat().st_size for p in folder.rglob("*.png"))
    largest = max(p.stat().st_size for p in folder.rglob("*.png"))
    assert total > 30 * largest > 15_000_000
    archive = tmp_path / "decoded.zip"
    archive.write_bytes(importkit.zip_folder(folder))
    tracemalloc.start()
    try:
        with archive.open("rb") as handle:
            files = (
                files_from_directory(folder)
                if packed == "folder"
                else files_from_zip(handle, name="decoded.zip")
            )
            result = import_reconstructions(
                image_set=image_set,
                codec="noise-codec",
                files=files,
                rates=Rates(csv_name="rates.csv", csv_data="\n".join(rows).encode()),
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.reconstructions) == 36
    stored = {row.png.name for row in result.reconstructions}
    assert all((media / name).is_file() for name in stored)
    assert peak < 8 * largest < total / 4, (peak, largest, total)
