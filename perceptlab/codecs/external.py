"""Codecs run as external programs: BPG (libbpg) and VVC (Fraunhofer VVenC/VVdeC).

Binaries come from ``settings.CODEC_BINARIES`` (a name looked up on PATH, or a path; set
through ``BPGENC``, ``BPGDEC``, ``VVENCAPP``, ``VVDECAPP``) and every call is bounded by
``settings.CODEC_TIMEOUT_SECONDS``. Each call runs in its own temporary directory, removed
on success, failure and timeout alike.

BPG reads and writes PNG and does its own RGB → YCbCr conversion. vvenc codes 4:2:0 only,
so :class:`VvcCodec` converts RGB to BT.709 full-range YCbCr 4:2:0 10-bit itself
(:mod:`perceptlab.lib.ycbcr`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from django.conf import settings
from PIL import Image

from perceptlab.codecs.base import (
    Availability,
    Codec,
    CodecError,
    CodecUnavailable,
    Dial,
    Param,
    Params,
)
from perceptlab.lib.ycbcr import from_i420, pad_to_even, to_i420_10bit

_PACKAGES = {
    "bpgenc": "libbpg",
    "bpgdec": "libbpg",
    "vvencapp": "Fraunhofer VVenC",
    "vvdecapp": "Fraunhofer VVdeC",
}
_VERSION_PROBE_TIMEOUT_SECONDS = 30
_STDERR_TAIL_LINES = 5


def resolve_binary(key: str) -> str | None:
    """Path of the binary configured as ``settings.CODEC_BINARIES[key]``, or None if absent.

    Looked for on ``PATH``, then in the Python environment's own ``bin`` folder, where
    ``scripts/build_codecs.sh`` installs bpgenc/bpgdec and vvencapp/vvdecapp (the server may
    run with ``.venv/bin/python`` without the venv activated)."""
    configured = settings.CODEC_BINARIES.get(key, key)
    return shutil.which(configured) or shutil.which(
        configured, path=str(Path(sys.executable).parent)
    )


def missing_binary_reason(key: str) -> str:
    """Why ``key`` cannot run, naming the binary, its package and the env variable."""
    configured = settings.CODEC_BINARIES.get(key, key)
    where = "on PATH" if configured == key else f"(configured as {configured!r})"
    return (
        f"binary {key!r} not found {where}; install {_PACKAGES.get(key, key)} "
        f"(bash scripts/build_codecs.sh builds it into .venv/bin) or set "
        f"{key.upper()}=/path/to/{key}"
    )


def run_tool(
    slug: str,
    args: list[str],
    *,
    cwd: Path,
    ok: tuple[int, ...] = (0,),
    timeout: float | None = None,
) -> str:
    """Run ``args`` (no shell) in ``cwd``, in its own process group; return stdout and
    stderr together.

    Raises :class:`CodecError` naming the program on a failure to start, a timeout
    (``timeout``, default ``settings.CODEC_TIMEOUT_SECONDS``) or an exit status outside
    ``ok``, with the last lines of its stderr (else stdout). On a timeout the whole group is
    killed, so a wrapper script cannot leave its encoder running (and writing into a
    directory about to be removed).
    """
    name = Path(args[0]).name
    limit = float(settings.CODEC_TIMEOUT_SECONDS) if timeout is None else timeout
    try:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise CodecError(slug, f"{name} could not be started: {exc}") from None
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise CodecError(
            slug, f"{name} timed out after {limit:g} s: {_tail(stderr or stdout)}"
        ) from None
    if process.returncode not in ok:
        raise CodecError(
            slug, f"{name} exited with status {process.returncode}: {_tail(stderr or stdout)}"
        )
    return (stdout + stderr).decode("utf-8", errors="replace")


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-_STDERR_TAIL_LINES:]) or "(no output)"


@cache
def probe_output(args: tuple[str, ...]) -> str | None:
    """Output of ``args`` (e.g. a binary and its version flag) whatever its exit status, or
    None if it did not run (cached per command)."""
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_VERSION_PROBE_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout + done.stderr


def read_output(slug: str, path: Path, tool: str) -> bytes:
    """The file ``tool`` was told to write; CodecError if it exited 0 without writing it."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        data = b""
    if not data:
        raise CodecError(slug, f"{tool} exited normally but wrote no {path.name}")
    return data


class ExternalCodec(Codec):
    """A codec whose work is done by the binaries named in :attr:`binaries`."""

    binaries: ClassVar[tuple[str, ...]] = ()
    """Keys of ``settings.CODEC_BINARIES`` this codec needs; the first one is the encoder."""
    version_flag: ClassVar[str] = "--version"
    """The encoder's flag that prints its version (probed once per binary path)."""

    def availability(self) -> Availability:
        for key in self.binaries:
            if resolve_binary(key) is None:
                return Availability(False, missing_binary_reason(key))
        return Availability(True)

    def binary(self, key: str) -> str:
        path = resolve_binary(key)
        if path is None:
            raise CodecUnavailable(self.slug, missing_binary_reason(key))
        return path

    def version(self) -> str:
        path = resolve_binary(self.binaries[0])
        if path is None:
            return "unavailable"
        output = probe_output((path, self.version_flag))
        return "unknown" if output is None else self.parse_version(output)

    def parse_version(self, output: str) -> str:
        """The version number in the encoder's ``version_flag`` output, or ``"unknown"``."""
        match = re.search(r"version\s+v?(\d+(?:\.\d+)+)", output, re.IGNORECASE)
        return match.group(1) if match else "unknown"

    def run(self, args: list[str], *, cwd: Path, ok: tuple[int, ...] = (0,)) -> str:
        return run_tool(self.slug, args, cwd=cwd, ok=ok)

    def workdir(self) -> tempfile.TemporaryDirectory[str]:
        return tempfile.TemporaryDirectory(prefix=f"perceptlab-{self.slug}-")

    def read_output(self, path: Path, tool: str) -> bytes:
        return read_output(self.slug, path, tool)


class BpgCodec(ExternalCodec):
    """BPG (HEVC intra in a small container): ``bpgenc``/``bpgdec`` from libbpg, x265."""

    slug = "bpg"
    binaries = ("bpgenc", "bpgdec")
    file_extension = "bpg"
    version_flag = "-h"  # bpgenc has no --version; -h prints it and exits with status 1
    dial = Dial("qp", 0, 51, integer=True, increasing=False)
    params = (
        Param("qp", int, 29, "quantiser (bpgenc -q); lower is better quality", 0, 51),
        Param("chroma_format", str, "444", "chroma sampling (bpgenc -f)",
              choices=("444", "420", "422")),
        Param("color_space", str, "ycbcr", "colour space coded (bpgenc -c); ycbcr is BT.601",
              choices=("ycbcr", "rgb", "ycgco", "ycbcr_bt709", "ycbcr_bt2020")),
        Param("bit_depth", int, 8, "internal bit depth (bpgenc -b)", 8, 12),
        Param("encoder", str, "x265", "HEVC encoder (bpgenc -e)", choices=("x265",)),
        Param("effort", int, 8, "x265 preset index (bpgenc -m); 8 = veryslow", 1, 9),
    )  # fmt: skip

    def parse_version(self, output: str) -> str:
        # First line: "BPG Image Encoder version 0.9.8" (CompressAI reads split()[4] too).
        tokens = output.split()
        return tokens[4] if len(tokens) > 4 and tokens[3] == "version" else "unknown"

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        with self.workdir() as tmp:
            work = Path(tmp)
            Image.fromarray(image).save(work / "in.png")
            self.run(self.encode_args(params), cwd=work)
            return self.read_output(work / "out.bpg", "bpgenc")

    def encode_args(self, params: Params) -> list[str]:
        """bpgenc's command line for validated ``params`` (in.png → out.bpg in the cwd)."""
        return [
            self.binary("bpgenc"),
            "-o", "out.bpg",
            "-q", str(params["qp"]),
            "-f", str(params["chroma_format"]),
            "-e", str(params["encoder"]),
            "-c", str(params["color_space"]),
            "-b", str(params["bit_depth"]),
            "-m", str(params["effort"]),
            "in.png",
        ]  # fmt: skip

    def _decode(self, bitstream: bytes) -> np.ndarray:
        with self.workdir() as tmp:
            work = Path(tmp)
            (work / "in.bpg").write_bytes(bitstream)
            self.run([self.binary("bpgdec"), "-o", "out.png", "in.bpg"], cwd=work)
            png = self.read_output(work / "out.png", "bpgdec")
        try:
            with Image.open(io.BytesIO(png)) as decoded:
                return np.asarray(decoded.convert("RGB"))
        except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
            raise CodecError(self.slug, f"bpgdec wrote an unreadable out.png: {exc}") from exc


class VvcCodec(ExternalCodec):
    """VVC intra with Fraunhofer ``vvencapp``/``vvdecapp``, BT.709 full-range 4:2:0 10-bit.

    The stored bitstream is :data:`HEADER_SIZE` bytes of header (``b"PLV1"``, then width
    and height as big-endian uint16) followed by the raw VVC stream. The header carries the
    original size, which the stream alone cannot when an odd side was padded to even; it is
    part of the stored bitstream and so counts in bpp (8 bytes = 64 bits). Dropping those
    8 bytes gives a plain ``.266`` stream for other decoders (of the even-padded image).
    """

    slug = "vvc"
    binaries = ("vvencapp", "vvdecapp")
    file_extension = "266"
    dial = Dial("qp", 0, 63, integer=True, increasing=False)
    params = (
        Param("qp", int, 32, "quantiser (vvencapp -q); lower is better quality", 0, 63),
        Param("preset", str, "medium", "speed/quality preset (vvencapp --preset)",
              choices=("faster", "fast", "medium", "slow", "slower")),
        Param("qpa", bool, False, "XPSNR-based perceptual QP adaptation (vvencapp --qpa)"),
        Param("threads", int, 1, "encoder threads (vvencapp -t)", 1, 64),
    )  # fmt: skip

    MAGIC: ClassVar[bytes] = b"PLV1"
    HEADER: ClassVar[struct.Struct] = struct.Struct(">4sHH")
    HEADER_SIZE: ClassVar[int] = HEADER.size

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        height, width = image.shape[:2]
        if max(height, width) > 0xFFFF:
            raise CodecError(
                self.slug, f"image size {width}x{height}: the header holds sides up to 65535"
            )
        padded = pad_to_even(image)
        with self.workdir() as tmp:
            work = Path(tmp)
            (work / "in.yuv").write_bytes(to_i420_10bit(padded))
            self.run(self.encode_args(params, padded.shape[1], padded.shape[0]), cwd=work)
            stream = self.read_output(work / "out.266", "vvencapp")
        return self.HEADER.pack(self.MAGIC, width, height) + stream

    def encode_args(self, params: Params, width: int, height: int) -> list[str]:
        """vvencapp's command line for validated ``params`` (in.yuv → out.266 in the cwd)."""
        return [
            self.binary("vvencapp"),
            "-i", "in.yuv",
            "-s", f"{width}x{height}",
            "-c", "yuv420_10",
            "-r", "1",
            "-f", "1",
            "--preset", str(params["preset"]),
            "-q", str(params["qp"]),
            "--qpa", "1" if params["qpa"] else "0",
            "-t", str(params["threads"]),
            "-o", "out.266",
        ]  # fmt: skip

    def _decode(self, bitstream: bytes) -> np.ndarray:
        width, height, stream = self.split_header(bitstream)
        padded_width, padded_height = width + width % 2, height + height % 2
        with self.workdir() as tmp:
            work = Path(tmp)
            (work / "in.266").write_bytes(stream)
            self.run(self.decode_args(), cwd=work)
            frame = self.read_output(work / "out.yuv", "vvdecapp")
        try:
            image = from_i420(frame, padded_width, padded_height)
        except ValueError as exc:
            raise CodecError(
                self.slug, f"vvdecapp output is not the expected frame: {exc}"
            ) from exc
        return np.ascontiguousarray(image[:height, :width])

    def decode_args(self) -> list[str]:
        """vvdecapp's command line (in.266 → out.yuv in the cwd)."""
        return [self.binary("vvdecapp"), "-b", "in.266", "-o", "out.yuv", "-t", "1"]

    def split_header(self, bitstream: bytes) -> tuple[int, int, bytes]:
        """(width, height, raw VVC stream) of a stored bitstream; CodecError if malformed."""
        if len(bitstream) <= self.HEADER_SIZE or not bitstream.startswith(self.MAGIC):
            raise CodecError(
                self.slug,
                f"not a PerceptLab VVC bitstream: expected the {self.MAGIC!r} header "
                f"and a stream after its {self.HEADER_SIZE} bytes",
            )
        _, width, height = self.HEADER.unpack_from(bitstream)
        if width == 0 or height == 0:
            raise CodecError(self.slug, f"bitstream header gives an empty size {width}x{height}")
        return width, height, bitstream[self.HEADER_SIZE :]
