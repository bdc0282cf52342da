"""The bitstream container of every neural codec (no torch needed to read or write it).

Layout (all integers are unsigned LEB128 varints unless a width is given)::

    b"PLNC"                      magic, 4 bytes
    format version               1 byte (FORMAT_VERSION)
    model name                   varint length + UTF-8   (the checkpoint's name, e.g. "hific-small")
    model version                varint length + UTF-8
    weights SHA-256              32 bytes (of the checkpoint file the encoder used)
    device type                  varint length + ASCII ("cuda", or "cpu/<SIMD>" e.g. "cpu/AVX2")
    height, width                varints (the image's own size)
    pad bottom, pad right        varints (rows/columns added to reach the model's stride)
    codec parameters             varint length + compact JSON object (e.g. {"qstep":1.0})
    section count                varint
    each section                 varint length + bytes (the entropy-coded symbols)

bpp is ``8 * len(container) / (H * W)`` — header included — like every other codec here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MAGIC = b"PLNC"
FORMAT_VERSION = 1


class ContainerError(ValueError):
    """The bytes are not a PerceptLab neural bitstream, or it is truncated or damaged."""


@dataclass(frozen=True)
class Header:
    model: str
    model_version: str
    weights_sha256: str
    """Hex digest (64 characters) of the checkpoint file."""
    height: int
    width: int
    pad_bottom: int = 0
    pad_right: int = 0
    device_type: str = "cpu"
    params: dict[str, int | float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Container:
    header: Header
    sections: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return pack(self.header, self.sections)


def _varint(value: int) -> bytes:
    if value < 0:
        raise ContainerError(f"cannot store the negative integer {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _blob(data: bytes) -> bytes:
    return _varint(len(data)) + data


def pack(header: Header, sections: tuple[bytes, ...] | list[bytes]) -> bytes:
    """The container's bytes for ``header`` and the coded ``sections``."""
    try:
        digest = bytes.fromhex(header.weights_sha256)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ContainerError(f"weights_sha256 must be 64 hex digits, got {header.weights_sha256!r}")
    params = json.dumps(header.params, separators=(",", ":"), sort_keys=True).encode()
    parts = [
        MAGIC,
        bytes([FORMAT_VERSION]),
        _blob(header.model.encode()),
        _blob(header.model_version.encode()),
        digest,
        _blob(header.device_type.encode("ascii")),
        _varint(header.height),
        _varint(header.width),
        _varint(header.pad_bottom),
        _varint(header.pad_right),
        _blob(params),
        _varint(len(sections)),
        *(_blob(bytes(section)) for section in sections),
    ]
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int, what: str) -> bytes:
        if self.at + count > len(self.data):
            raise ContainerError(f"the bitstream is truncated (in {what})")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def varint(self, what: str) -> int:
        value = shift = 0
        while True:
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ContainerError(f"the bitstream is damaged (an overlong integer in {what})")

    def blob(self, what: str) -> bytes:
        return self.take(self.varint(what), what)


def unpack(data: bytes) -> Container:
    """Parse a container; raises :class:`ContainerError` naming what is wrong."""
    if data[:4] != MAGIC:
        raise ContainerError("not a PerceptLab neural bitstream (bad magic bytes)")
    reader = _Reader(data)
    reader.take(4, "magic")
    version = reader.take(1, "format version")[0]
    if version != FORMAT_VERSION:
        raise ContainerError(
            f"container format {version} is not supported (this version reads {FORMAT_VERSION})"
        )
    try:
        model = reader.blob("model name").decode()
        model_version = reader.blob("model version").decode()
        digest = reader.take(32, "weights hash").hex()
        device_type = reader.blob("device type").decode("ascii")
        height = reader.varint("height")
        width = reader.varint("width")
        pad_bottom = reader.varint("padding")
        pad_right = reader.varint("padding")
        params = json.loads(reader.blob("parameters"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContainerError(f"the bitstream header is damaged ({error})") from None
    if not isinstance(params, dict):
        raise ContainerError("the bitstream header is damaged (parameters are not an object)")
    count = reader.varint("section count")
    sections = tuple(reader.blob(f"section {index}") for index in range(count))
    if reader.at != len(data):
        raise ContainerError(f"{len(data) - reader.at} unexpected bytes after the last section")
    if height == 0 or width == 0:
        raise ContainerError("the bitstream header is damaged (an image without pixels)")
    header = Header(
        model=model,
        model_version=model_version,
        weights_sha256=digest,
        height=height,
        width=width,
        pad_bottom=pad_bottom,
        pad_right=pad_right,
        device_type=device_type,
        params=params,
    )
    return Container(header, sections)


def header_size(header: Header) -> int:
    """Bytes the header takes (a container with no sections is one byte longer than this)."""
    return len(pack(header, ())) - 1
