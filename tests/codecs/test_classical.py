from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from support import psnr

from perceptlab.codecs.base import CodecError, CodecParamError, bits_per_pixel
from perceptlab.codecs.classical import ijg_quant_tables
from perceptlab.codecs.registry import REGISTRY, UnknownCodec, get_codec, parse_slugs

CLASSICAL = ["jpeg", "jpeg444", "webp", "jpeg2000", "avif", "heic", "jxl"]


def test_the_registry_holds_every_slug_of_the_foundation_issue() -> None:
    assert {*CLASSICAL, "bpg", "vvc"} <= set(REGISTRY)


def test_it_raises_on_an_unknown_slug_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownCodec, match="registered: jpeg, jpeg444"):
        parse_slugs("jpeg,nope")


@pytest.mark.parametrize("slug", CLASSICAL)
def test_each_classical_codec_round_trips_kodim01_at_a_sane_quality(
    slug: str, kodim01: np.ndarray
) -> None:
    codec = get_codec(slug)
    assert codec.availability().available
    bitstream = codec.encode(kodim01, {})
    decoded = codec.decode(bitstream)
    assert decoded.shape == kodim01.shape and decoded.dtype == np.uint8
    bpp = bits_per_pixel(len(bitstream), 512, 768)
    assert 0.05 < bpp < 4.0
    assert psnr(decoded, kodim01) > 25.0
    # Deterministic: the same input and parameters give the same bytes.
    assert codec.encode(kodim01, {}) == bitstream
    assert np.array_equal(codec.decode(bitstream), decoded)


@pytest.mark.parametrize("slug", CLASSICAL)
def test_more_quality_never_costs_fewer_bits(slug: str, kodim23: np.ndarray) -> None:
    codec = get_codec(slug)
    dial = codec.dial
    assert dial is not None
    values = np.linspace(dial.low, dial.high, 5)[1:-1]
    sizes = [
        len(codec.encode(kodim23, {dial.name: v if not dial.integer else int(v)})) for v in values
    ]
    assert sizes == sorted(sizes) if dial.increasing else sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("quality", [1, 5, 37, 50, 75, 95, 100])
def test_jpeg_at_integer_quality_is_byte_identical_to_libjpeg(
    quality: int, kodim01: np.ndarray
) -> None:
    buffer = io.BytesIO()
    Image.fromarray(kodim01).save(buffer, format="JPEG", quality=quality, optimize=True)
    assert get_codec("jpeg").encode(kodim01, {"quality": quality}) == buffer.getvalue()


def test_jpeg_fractional_quality_falls_between_its_integer_neighbours() -> None:
    low, mid, high = (ijg_quant_tables(q)[0] for q in (30, 30.5, 31))
    assert all(a >= b >= c for a, b, c in zip(low, mid, high, strict=True))
    assert low != high


def test_jpeg444_keeps_full_resolution_chroma(kodim01: np.ndarray) -> None:
    with Image.open(io.BytesIO(get_codec("jpeg444").encode(kodim01, {"quality": 80}))) as im:
        assert im.layer[0][1:3] == im.layer[1][1:3] == (1, 1)  # type: ignore[attr-defined]
    with Image.open(io.BytesIO(get_codec("jpeg").encode(kodim01, {"quality": 80}))) as im:
        assert im.layer[0][1:3] == (2, 2)  # type: ignore[attr-defined]


def test_jpeg2000_uses_the_multi_component_transform(kodim01: np.ndarray) -> None:
    """Pillow's default (no MCT) loses 2-8 dB at the same rate; ours must not."""
    codec = get_codec("jpeg2000")
    ours = codec.decode(codec.encode(kodim01, {"rate": 0.5}))
    buffer = io.BytesIO()
    Image.fromarray(kodim01).save(
        buffer, format="JPEG2000", quality_mode="rates", quality_layers=[48], irreversible=True
    )
    plain = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert psnr(ours, kodim01) > psnr(plain, kodim01) + 1.5


def test_bitstreams_carry_no_metadata(kodim01: np.ndarray) -> None:
    for slug in ["jpeg", "webp"]:
        with Image.open(io.BytesIO(get_codec(slug).encode(kodim01, {}))) as im:
            assert not im.info.get("exif") and not im.info.get("icc_profile")


def test_it_rejects_unknown_and_out_of_range_parameters_listing_valid_names(
    kodim01: np.ndarray,
) -> None:
    codec = get_codec("jpeg")
    with pytest.raises(CodecParamError, match=r"unknown parameter\(s\) \['qp'\]; valid"):
        codec.encode(kodim01, {"qp": 30})
    with pytest.raises(CodecParamError, match=r"quality=0.0 is outside \[1, 100\]"):
        codec.encode(kodim01, {"quality": 0})
    with pytest.raises(CodecParamError, match="not a valid float"):
        codec.encode(kodim01, {"quality": "high"})
    with pytest.raises(CodecParamError, match="not one of"):
        get_codec("avif").encode(kodim01, {"subsampling": "4:1:1"})


def test_it_rejects_an_image_that_is_not_8_bit_rgb() -> None:
    with pytest.raises(CodecError, match="expected an \\(H, W, 3\\) uint8 RGB image"):
        get_codec("jpeg").encode(np.zeros((8, 8), np.uint8), {})


def test_a_corrupt_bitstream_gives_a_codec_error_not_a_crash() -> None:
    for slug in CLASSICAL:
        with pytest.raises(CodecError):
            get_codec(slug).decode(b"\x00garbage" * 10)
