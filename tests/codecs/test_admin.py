from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from support import kodak_path

from perceptlab.codecs.models import ImageSet, Reconstruction, SourceImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client: Client) -> Client:
    return admin_client


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_images_uploaded_in_the_admin_are_imported_and_bad_ones_reported(staff: Client) -> None:
    response = staff.post(
        "/admin/codecs/imageset/add/",
        {
            "name": "uploaded",
            "description": "",
            "upload": [
                upload("kodim23.png", kodak_path("kodim23").read_bytes()),
                upload("broken.png", b"not an image at all"),
            ],
            "images-TOTAL_FORMS": "0",
            "images-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode().lower()  # the admin capitalises messages
    assert "imported kodim23.png" in text
    assert "broken.png: not an image" in text
    assert SourceImage.objects.filter(image_set__name="uploaded").count() == 1


def test_the_admin_generates_stimuli_and_shows_progress(staff: Client) -> None:
    response = staff.post(
        "/admin/codecs/imageset/add/",
        {
            "name": "gen",
            "upload": [upload("kodim23.png", kodak_path("kodim23").read_bytes())],
            "generate_codecs": ["jpeg", "webp"],
            "generate_bpps": "0.5",
            "images-TOTAL_FORMS": "0",
            "images-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "2 generation job(s) enqueued" in response.content.decode().lower()
    assert Reconstruction.objects.count() == 2  # the immediate backend ran them
    changelist = staff.get("/admin/codecs/imageset/").content.decode()
    assert '<progress value="2" max="2"></progress> 2/2 (100%)' in changelist


def test_the_admin_refuses_to_generate_with_an_unavailable_codec(staff: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "bpgenc": "no-such-bpgenc"}
    response = staff.post(
        "/admin/codecs/imageset/add/",
        {
            "name": "x",
            "generate_codecs": ["bpg"],
            "generate_bpps": "0.5",
            "images-TOTAL_FORMS": "0",
            "images-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "bpg is unavailable" in response.content.decode()
    assert not ImageSet.objects.filter(name="x").exists()


def test_the_codec_list_in_the_admin_shows_unavailable_codecs_with_their_reason(
    staff: Client,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "vvencapp": "no-such-vvencapp"}
    text = staff.get("/admin/codecs/imageset/add/").content.decode()
    assert "VVC (VVenC) — unavailable" in text and "no-such-vvencapp" in text


def test_the_admin_requires_a_staff_login(client: Client) -> None:
    response = client.get("/admin/codecs/reconstruction/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_reconstructions_and_jobs_are_listed_for_staff(staff: Client) -> None:
    staff.post(
        "/admin/codecs/imageset/add/",
        {
            "name": "lists",
            "upload": [upload("kodim23.png", kodak_path("kodim23").read_bytes())],
            "generate_codecs": ["jxl"],
            "generate_bpps": "0.5",
            "images-TOTAL_FORMS": "0",
            "images-INITIAL_FORMS": "0",
        },
    )
    reconstruction = Reconstruction.objects.get()
    listing = staff.get("/admin/codecs/reconstruction/")
    assert listing.status_code == 200 and "kodim23.png" in listing.content.decode()
    detail = staff.get(f"/admin/codecs/reconstruction/{reconstruction.pk}/change/")
    assert reconstruction.bitstream_sha256 in detail.content.decode()
    jobs = staff.get("/admin/codecs/generationjob/?state=done").content.decode()
    assert "jxl" in jobs and "0.5 bpp" in jobs


def test_an_upload_whose_every_file_is_refused_creates_no_image_set(staff: Client) -> None:
    response = staff.post(
        "/admin/codecs/imageset/add/",
        {
            "name": "all-bad",
            "upload": [
                upload("broken.png", b"not an image at all"),
                upload("notes.txt", b"\x00" * 64),
            ],
            "images-TOTAL_FORMS": "0",
            "images-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, saying why
    text = response.content.decode()
    assert "None of the 2 file(s) can be imported" in text
    assert "broken.png: not an image" in text and "notes.txt" in text
    assert not ImageSet.objects.filter(name="all-bad").exists()
