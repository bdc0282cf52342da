"""GC's selective mode in studies (issue 14): a label map and a mask uploaded per image, checked
on the way in, and encoded with by the gc-sc codec when a study's stimuli are generated."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from neuralkit import TINY_GC, save_tiny
from PIL import Image

from perceptlab.codecs import sideinputs
from perceptlab.codecs.base import CodecError, CodecParamError, SideInputs
from perceptlab.codecs.generation import JobRequest, plan_jobs, run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet, SourceImage
from perceptlab.codecs.ratecontrol import encode_at_bpp
from perceptlab.codecs.registry import get_codec

pytestmark = pytest.mark.django_db
WIDTH, HEIGHT = 56, 40  # not multiples of GC's stride 16: the padding is exercised
CLASSES = 3


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, WIDTH, dtype=np.float64)[None, :, None]
    noise = rng.normal(0, 20, (HEIGHT, WIDTH, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def labels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CLASSES, (HEIGHT, WIDTH)).astype(np.uint8)


def left_half() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[:, : WIDTH // 2] = 255
    return mask


@pytest.fixture
def source(settings, tmp_path: Path) -> SourceImage:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    image_set = ImageSet.objects.create(name="sc")
    return import_image(image_set=image_set, name="street.png", data=png(photo()))


@pytest.fixture
def sc_checkpoints(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Seeded, untrained SC checkpoints of every channel count (what a researcher would
    train with ``train_codec gc --labels``)."""
    from perceptlab.codecs.neural import codec

    folder = tmp_path / "neural"
    folder.mkdir()
    settings.PERCEPTLAB_NEURAL_DIR = folder
    codec.forget_models()
    for channels in (2, 4, 8, 16):
        config = {**TINY_GC, "channels": channels, "semantic_classes": CLASSES}
        save_tiny("gc", f"gc-sc-c{channels}-small", folder, config)
    yield folder
    codec.forget_models()


# -- the uploads -------------------------------------------------------------------------------


def test_label_maps_and_masks_are_checked_before_anything_is_stored(source: SourceImage) -> None:
    size = (WIDTH, HEIGHT)
    bad = {
        "is 28×40 px; the image is 56×40": png(labels()[:, :28]),
        "must have one channel (PNG mode L or P), not RGB": png(photo()),
        "cannot be read as a PNG": b"not an image",
    }
    for message, data in bad.items():
        with pytest.raises(sideinputs.SideInputError, match=re.escape(message)):
            sideinputs.read_label_map(data, size=size)
    jpeg = io.BytesIO()
    Image.fromarray(labels()).save(jpeg, "JPEG")
    with pytest.raises(sideinputs.SideInputError, match="must be a PNG, not JPEG"):
        sideinputs.read_mask(jpeg.getvalue(), size=size)
    # A good label map with a bad mask: neither is stored
    with pytest.raises(sideinputs.SideInputError, match="preserved-region mask is 56×20"):
        sideinputs.attach(source, label_map=png(labels()), mask=png(left_half()[:20]))
    source.refresh_from_db()
    assert sideinputs.missing(source) == [sideinputs.LABEL_MAP, sideinputs.PRESERVE_MASK]
    assert sideinputs.of(source) is None


def test_stored_inputs_read_back_exactly(source: SourceImage) -> None:
    sideinputs.attach(source, label_map=png(labels()), mask=png(left_half()))
    source.refresh_from_db()
    assert sideinputs.missing(source) == [] and len(source.label_map_sha256) == 64
    found = sideinputs.of(source)
    assert found is not None
    assert np.array_equal(found.labels, labels())
    assert np.array_equal(found.mask, left_half() > 0)
    bits = io.BytesIO()
    Image.fromarray(left_half()).convert("1").save(bits, "PNG")
    assert np.array_equal(sideinputs.read_mask(bits.getvalue(), size=(WIDTH, HEIGHT)), found.mask)


# -- the codec -----------------------------------------------------------------------------------


@pytest.mark.needs_torch
def test_gc_sc_encodes_with_the_label_map_and_mask_and_decodes(sc_checkpoints: Path) -> None:
    codec = get_codec("gc-sc")
    assert codec.availability().available
    image, side = photo(), SideInputs(labels(), left_half() > 0)
    with pytest.raises(CodecParamError, match="needs a semantic label map and a preserved"):
        codec.encode(image, {})
    bitstream = codec.encode(image, {}, side=side)
    decoded = codec.decode(bitstream)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    # The label map travels in the bitstream: another map, another bitstream and image
    other = codec.encode(image, {}, side=SideInputs(labels(seed=1), side.mask))
    assert other != bitstream
    # Preserving nothing sends no latent symbols: fewer bytes than preserving half
    nothing = codec.encode(image, {}, side=SideInputs(side.labels, np.zeros_like(side.mask)))
    everything = codec.encode(image, {}, side=SideInputs(side.labels, np.ones_like(side.mask)))
    assert len(nothing) < len(bitstream) < len(everything)
    with pytest.raises(CodecError, match="label map holds class 7; gc-sc-c8-small knows classes"):
        codec.encode(image, {}, side=SideInputs(np.full_like(side.labels, 7), side.mask))
    with pytest.raises(CodecParamError, match="must be 56×40 px like the image"):
        codec.encode(image, {}, side=SideInputs(side.labels[:8], side.mask))


@pytest.mark.needs_torch
def test_rate_control_turns_the_channel_count_with_the_inputs(sc_checkpoints: Path) -> None:
    codec, image = get_codec("gc-sc"), photo()
    stripes = np.repeat(np.arange(WIDTH) * CLASSES // WIDTH, HEIGHT).reshape(WIDTH, HEIGHT).T
    side = SideInputs(stripes.astype(np.uint8), np.ones((HEIGHT, WIDTH), bool))
    bpp = {
        channels: 8
        * len(codec.encode(image, {"channels": channels}, side=side))
        / image[..., 0].size
        for channels in (2, 4, 8, 16)
    }
    assert bpp[2] < bpp[4] < bpp[8] < bpp[16]  # more channels, more preserved symbols
    result = encode_at_bpp(codec, image, bpp[8], side=side)
    assert result.params["channels"] == 8, (bpp, result.tried, result.reason)
    assert result.within_tolerance and result.attempts >= 2
    assert result.bpp == pytest.approx(bpp[8])
    assert codec.decode(result.bitstream).shape == (HEIGHT, WIDTH, 3)


@pytest.mark.needs_torch
def test_generation_uses_the_images_inputs_and_says_which_are_missing(
    source: SourceImage, sc_checkpoints: Path
) -> None:
    request = JobRequest(codec="gc-sc", fixed_params={"channels": 8})
    [job] = plan_jobs(sources=[source], requests=[request])
    run_job(job.pk, worker="test")
    job.refresh_from_db()
    assert job.state == "failed"
    assert "image street.png has no semantic label map and no preserved-region mask" in job.error
    sideinputs.attach(source, label_map=png(labels()), mask=png(left_half()))
    source.refresh_from_db()
    [again] = plan_jobs(sources=[source], requests=[request])
    assert again.pk != job.pk  # the uploads are part of what the job makes
    run_job(again.pk, worker="test")
    again.refresh_from_db()
    assert again.state == "done", again.error
    reconstruction = again.reconstruction
    assert reconstruction is not None
    digest = SideInputs(labels(), left_half() > 0).digest
    assert reconstruction.rate_control["side_inputs_sha256"] == digest


# -- the admin -------------------------------------------------------------------------------------


def test_the_admin_takes_both_uploads_and_refuses_a_bad_one(
    admin_client: Client, source: SourceImage
) -> None:
    url = reverse("admin:codecs_sourceimage_change", args=[source.pk])
    assert b"Semantic label map" in admin_client.get(url).content

    def upload(name: str, data: bytes) -> io.BytesIO:
        handle = io.BytesIO(data)
        handle.name = name
        return handle

    refused = admin_client.post(
        url,
        {
            "label_map_upload": upload("labels.png", png(photo())),
            "preserve_mask_upload": upload("mask.png", png(left_half())),
        },
    )
    assert refused.status_code == 200
    assert b"must have one channel" in refused.content
    source.refresh_from_db()
    assert sideinputs.missing(source) == [sideinputs.LABEL_MAP, sideinputs.PRESERVE_MASK]
    accepted = admin_client.post(
        url,
        {
            "label_map_upload": upload("labels.png", png(labels())),
            "preserve_mask_upload": upload("mask.png", png(left_half())),
        },
    )
    assert accepted.status_code == 302
    source.refresh_from_db()
    assert sideinputs.missing(source) == []
    found = sideinputs.of(source)
    assert found is not None and np.array_equal(found.labels, labels())


@pytest.mark.needs_torch
def test_a_study_choosing_gc_sc_is_told_which_images_lack_their_inputs(
    source: SourceImage, sc_checkpoints: Path
) -> None:
    from perceptlab.studies.admin import side_inputs_problem

    image_set = source.image_set
    import_image(image_set=image_set, name="park.png", data=png(photo(seed=2)))
    problem = side_inputs_problem("gc-sc", image_set)
    assert problem.startswith("gc-sc needs a semantic label map and a preserved-region mask")
    assert "2 of 2 images of 'sc' lack them (park.png, street.png)" in problem
    assert side_inputs_problem("jpeg", image_set) == ""
    sideinputs.attach(source, label_map=png(labels()), mask=png(left_half()))
    assert "1 of 2 images of 'sc' lack them (park.png)" in side_inputs_problem("gc-sc", image_set)
