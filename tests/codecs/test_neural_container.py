"""The neural bitstream container: exact round trip, bpp from its bytes, clear errors."""

from __future__ import annotations

import hashlib

import pytest

from perceptlab.codecs.base import bits_per_pixel
from perceptlab.codecs.neural.container import (
    ContainerError,
    Header,
    header_size,
    pack,
    unpack,
)

DIGEST = hashlib.sha256(b"weights").hexdigest()


def header(**fields: object) -> Header:
    values: dict[str, object] = {
        "model": "hific-small",
        "model_version": "1",
        "weights_sha256": DIGEST,
        "height": 512,
        "width": 768,
        "pad_bottom": 0,
        "pad_right": 0,
        "params": {"qstep": 1.5},
    }
    values.update(fields)
    return Header(**values)  # type: ignore[arg-type]


def test_pack_and_unpack_round_trip_every_field() -> None:
    sections = (b"\x00\x01" * 300, b"", bytes(range(256)))
    original = header(pad_bottom=13, pad_right=63, device_type="cuda")
    data = pack(original, sections)
    parsed = unpack(data)
    assert parsed.header == original
    assert parsed.sections == sections
    assert parsed.to_bytes() == data


def test_the_header_is_small_and_bpp_counts_it() -> None:
    payload = b"x" * 1000
    data = pack(header(), [payload])
    size = header_size(header())
    # magic, version, 2 short strings, 32-byte digest, 3 bytes "cpu", sizes, JSON params
    assert 50 <= size <= 90
    assert len(data) == size + 1 + 2 + len(payload)  # section count, length varint, bytes
    assert bits_per_pixel(len(data), 512, 768) == pytest.approx(8 * len(data) / (512 * 768))


def test_large_values_use_multi_byte_varints() -> None:
    data = pack(header(height=70_000, width=1), [b"y" * 20_000])
    parsed = unpack(data)
    assert parsed.header.height == 70_000 and len(parsed.sections[0]) == 20_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"JFIF....", "bad magic"),
        (b"PLNC\x07", "format 7 is not supported"),
        (b"PLNC\x01\x05abc", "truncated"),
    ],
)
def test_damaged_bytes_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ContainerError, match=message):
        unpack(data)


def test_every_truncation_and_trailing_garbage_is_detected() -> None:
    data = pack(header(), [b"abc", b"defg"])
    for cut in range(len(data)):
        with pytest.raises(ContainerError):
            unpack(data[:cut])
    with pytest.raises(ContainerError, match="unexpected bytes"):
        unpack(data + b"\x00")


def test_a_bad_digest_cannot_be_written() -> None:
    with pytest.raises(ContainerError, match="64 hex digits"):
        pack(header(weights_sha256="abc"), [])
