"""Intake of researchers' source images: decode to 8-bit RGB, or say exactly why not.

Django-free (numpy and Pillow only) so that the import command, the admin and the tests all
share one policy. ``load_image`` checks, in this order, and raises ``ImageRejected`` at the
first failure:

1. the size in bytes, then an empty file;
2. that Pillow can identify the file at all;
3. the pixel count and dimensions read from the header, before any pixel is decoded, so a
   50,000x50,000 "decompression bomb" costs nothing. The pixel count is Pillow's own check,
   pinned to ``Limits.max_pixels`` for the call: it also guards what Pillow meets while
   parsing (a GIF frame that grows the canvas), where a check of ours would come too late;
4. a single frame: animated or multi-page files are refused (MPO files from phone cameras are
   the exception: their first picture is the photo, the rest are previews or a second view);
5. a complete decode: a truncated or corrupt file is refused, never padded with grey.

It then applies the EXIF orientation and converts to 8-bit RGB, recording each conversion as a
plain-language note. Greyscale, 1-bit, palette, CMYK (without colour management) and YCbCr
are converted; 16-bit greyscale samples are scaled 0..65535 -> 0..255 with rounding (v / 257),
32-bit integer samples are read as 16-bit and must lie in 0..65535, float samples must lie in
0..1. 16-bit colour (RGB/RGBA PNG and TIFF) Pillow itself reduces to the high byte while
decoding; the note says so.
An alpha channel (or a palette or colour-key transparency) is dropped when every pixel is fully
opaque and refused otherwise: the platform evaluates RGB codecs and will not guess a
background. ICC profiles are not applied; the note names the profile that was ignored.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

Pixels = npt.NDArray[np.uint8]

# Modes that load_image converts; anything else (LAB, HSV, ...) is refused by name.
SUPPORTED_MODES = (
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
    "I;16", "I;16L", "I;16B", "I;16N", "I", "F",
)  # fmt: skip

# What Pillow's transpose does for each EXIF orientation (CIPA DC-008, tag 0x0112);
# 1 is "as stored" and needs nothing.
_ORIENTATIONS = {
    2: "mirrored left to right",
    3: "rotated 180°",
    4: "mirrored top to bottom",
    5: "mirrored along the main diagonal",
    6: "rotated 90°",
    7: "mirrored along the anti-diagonal",
    8: "rotated 270°",
}

# Raw layouts that Pillow decodes from 16 bits per sample straight into an 8-bit mode by keeping
# the high byte (16-bit RGB/RGBA/LA PNGs, 16-bit RGB TIFFs). "RGB;16" without B/L/N is 5-6-5.
_HIGH_BYTE_RAWMODE = re.compile(r"(LA|RGB|RGBA|RGBX|CMYK);16[BLN]")

# Pillow keeps LOAD_TRUNCATED_IMAGES and MAX_IMAGE_PIXELS as module globals, and the bomb warning
# is made an error through the (process-wide) warnings filters; load_image pins all three for the
# length of one call, so concurrent calls take turns instead of restoring each other's values.
_PILLOW_SETTINGS = threading.Lock()


class ImageRejected(ValueError):
    """A source image the platform will not accept; ``reason`` says why in plain words."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class Limits:
    """Bounds on a source image (settings IMAGE_MAX_PIXELS, _MAX_SIDE, _MIN_SIDE, _MAX_BYTES)."""

    max_pixels: int
    max_side: int
    min_side: int
    max_bytes: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"need 1 <= min_side <= max_side; got {self}")
        if self.max_pixels < self.min_side**2 or self.max_bytes < 1:
            raise ValueError(f"need max_pixels >= min_side**2 and max_bytes >= 1; got {self}")


IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".gif"}
    | {".heic", ".heif", ".avif", ".jxl", ".jp2"}
)
"""File name suffixes read as images wherever a folder is scanned (image import, the demo's
--images, training data, imported reconstructions): the one list."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays field by field is ambiguous
class LoadedImage:
    """A decoded source image.

    ``pixels`` is (H, W, 3) uint8, C-contiguous, in the orientation meant for display;
    ``source_format`` and ``source_mode`` are Pillow's names for what was in the file
    (e.g. "PNG", "RGBA"); ``notes`` say in plain words what was converted on the way.
    """

    pixels: Pixels
    source_format: str
    source_mode: str
    notes: tuple[str, ...]

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def load_image(data: bytes, *, name: str, limits: Limits) -> LoadedImage:
    """Decode one source image file to 8-bit RGB under ``limits`` (policy in the module doc).

    ``name`` is only used in messages. Raises ``ImageRejected`` for any input it refuses,
    including every error Pillow raises on malformed data.
    """
    _check_byte_size(data, name=name, limits=limits)
    with _strict_pillow(limits), _rejecting_pillow_errors(name=name, limits=limits):
        with Image.open(io.BytesIO(data)) as im:
            _check_dimensions(im.size, name=name, limits=limits)
            frame_notes = _check_single_frame(im, name=name)
            decoder_notes = _pillow_reduction_notes(im)  # must read the tiles before load()
            im.load()
            oriented, orientation_notes = _apply_exif_orientation(im)
            pixels, conversion_notes = _to_rgb(oriented, name=name)
            notes = [*frame_notes, *orientation_notes, *decoder_notes, *conversion_notes]
            return LoadedImage(
                pixels=pixels,
                source_format=im.format or "unknown",
                source_mode=im.mode,
                notes=(*notes, *_icc_notes(im)),
            )


def encode_png(pixels: Pixels) -> bytes:
    """Lossless, deterministic PNG of (H, W, 3) uint8 pixels, with no metadata chunks.

    zlib level 1: on Kodak it is 3x faster than level 6 and, with Pillow's filter
    choice, also smaller (kodim01: 733 kB vs 780 kB).
    """
    _check_pixels(pixels)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> Pixels:
    """Read back an RGB PNG written by ``encode_png`` as (H, W, 3) uint8 pixels."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
        if im.mode != "RGB":
            raise ValueError(f"expected an 8-bit RGB PNG, got mode {im.mode!r}")
        im.load()
        return np.array(im, dtype=np.uint8)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixels_sha256(pixels: Pixels) -> str:
    """Hash of the shape and the raw samples: equal for equal pixels, whatever the encoding."""
    _check_pixels(pixels)
    digest = hashlib.sha256("x".join(map(str, pixels.shape)).encode() + b"\n")
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def _check_pixels(pixels: Pixels) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")


# --- checks before decoding -------------------------------------------------------------------


def _check_byte_size(data: bytes, *, name: str, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        reason = f"is {len(data):,} bytes, over the limit of {limits.max_bytes:,} bytes"
        raise ImageRejected(name, reason)
    if not data:
        raise ImageRejected(name, "is empty (0 bytes)")


def _check_dimensions(size: tuple[int, int], *, name: str, limits: Limits) -> None:
    width, height = size
    shape = f"{width}x{height} pixels"
    if width <= 0 or height <= 0:
        raise ImageRejected(name, f"has no pixels ({shape})")
    if min(width, height) < limits.min_side:
        raise ImageRejected(name, f"is {shape}; each side must be at least {limits.min_side}")
    if max(width, height) > limits.max_side:
        raise ImageRejected(name, f"is {shape}; no side may be longer than {limits.max_side}")
    # No pixel count here: Pillow's check, pinned to limits.max_pixels, ran in Image.open.


def _check_single_frame(im: ImageFile.ImageFile, *, name: str) -> list[str]:
    frames = int(getattr(im, "n_frames", 1))
    if frames <= 1:
        return []
    if im.format == "MPO":
        # Phone cameras append a large preview or a depth map; the first picture is the photo.
        return [f"used the first of the {frames} pictures in the MPO file"]
    reason = f"has {frames} frames (animated or multi-page); only single still images are accepted"
    raise ImageRejected(name, reason)


def _pillow_reduction_notes(im: ImageFile.ImageFile) -> list[str]:
    """Notes for conversions Pillow makes itself while decoding, seen from the raw layout."""
    args = im.tile[0].args if im.tile else None
    rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) else None
    if not isinstance(rawmode, str) or not _HIGH_BYTE_RAWMODE.fullmatch(rawmode):
        return []
    notes = ["converted 16-bit to 8-bit (Pillow keeps the high byte; not rounded)"]
    if rawmode.startswith("LA;") and im.mode == "RGBA":
        notes.append("converted greyscale to RGB")
    return notes


# --- Pillow's global switches and errors -----------------------------------------------------


@contextmanager
def _strict_pillow(limits: Limits) -> Iterator[None]:
    """Refuse truncated files and more pixels than ``limits`` allow; restore Pillow after."""
    with _PILLOW_SETTINGS, warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and raises only above twice that.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = limits.max_pixels, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


@contextmanager
def _rejecting_pillow_errors(*, name: str, limits: Limits) -> Iterator[None]:
    """Turn whatever Pillow raises on malformed input into an ImageRejected."""
    try:
        yield
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        raise ImageRejected(name, "not an image (Pillow cannot identify it)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        reason = f"has more than {limits.max_pixels:,} pixels, the limit; refused before decoding"
        raise ImageRejected(name, reason) from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise ImageRejected(name, f"truncated or corrupt ({exc})") from exc


# --- conversion to 8-bit RGB ------------------------------------------------------------------


def _apply_exif_orientation(im: Image.Image) -> tuple[Image.Image, list[str]]:
    orientation = im.getexif().get(ExifTags.Base.Orientation)
    if orientation not in _ORIENTATIONS:
        return im, []
    note = f"applied EXIF orientation {orientation} ({_ORIENTATIONS[orientation]})"
    return ImageOps.exif_transpose(im), [note]


def _to_rgb(im: Image.Image, *, name: str) -> tuple[Pixels, list[str]]:
    if im.mode not in SUPPORTED_MODES:
        supported = ", ".join(SUPPORTED_MODES)
        raise ImageRejected(name, f"unsupported pixel mode {im.mode!r}; supported: {supported}")
    notes: list[str] = []
    im = _to_8_bits(im, name=name, notes=notes)
    im = _to_l_or_rgb_with_alpha(im, notes=notes)
    im = _drop_opaque_alpha(im, name=name, notes=notes)
    if im.mode == "L":
        notes.append("converted greyscale to RGB")
        im = im.convert("RGB")
    assert im.mode == "RGB", im.mode
    return np.array(im, dtype=np.uint8), notes


def _to_8_bits(im: Image.Image, *, name: str, notes: list[str]) -> Image.Image:
    """I;16*, I and F samples -> L, or LA where a transparent-colour key applies."""
    if im.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return im
    samples = np.asarray(im)
    grey, note = _wide_to_grey(samples, mode=im.mode, name=name)
    notes.append(note)
    key = im.info.get("transparency")
    if key is None:
        return Image.fromarray(grey)
    notes.append("applied the transparent-colour key as alpha")
    alpha = np.where(samples == key, 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([grey, alpha]))


def _wide_to_grey(samples: npt.NDArray[np.generic], *, mode: str, name: str) -> tuple[Pixels, str]:
    if mode == "F":
        unit = _in_range(samples, 0.0, 1.0, what="floating-point samples", name=name)
        grey = np.rint(unit.astype(np.float64) * 255.0).astype(np.uint8)
        return grey, "converted floating-point samples (0..1) to 8-bit (rounded)"
    note = "converted 16-bit to 8-bit (rounded)"
    if mode == "I":  # 32-bit; 16-bit PGMs (and PNGs in older Pillow) decode to this mode
        samples = _in_range(samples, 0, 65535, what="32-bit integer samples", name=name)
        note = "converted 32-bit integer samples (0..65535) to 8-bit (rounded)"
    # round(v * 255 / 65535) = round(v / 257); 257 is odd, so there are no ties to break
    return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8), note


def _in_range(
    samples: npt.NDArray[np.generic], low: float, high: float, *, what: str, name: str
) -> npt.NDArray[np.generic]:
    if np.all(np.isfinite(samples)) and samples.min() >= low and samples.max() <= high:
        return samples
    span = f"{samples.min()}..{samples.max()}"
    reason = f"has {what} in {span}, outside {low}..{high}; the platform will not guess a scale"
    raise ImageRejected(name, reason)


def _to_l_or_rgb_with_alpha(im: Image.Image, *, notes: list[str]) -> Image.Image:
    """Every 8-bit mode -> L, LA, RGB or RGBA (straight alpha)."""
    if im.mode == "1":
        notes.append("converted 1-bit black and white to 8-bit greyscale")
        im = im.convert("L")  # keeps a transparent-colour key, handled next
    if im.mode in ("L", "RGB") and "transparency" in im.info:
        notes.append("applied the transparent-colour key as alpha")
        return im.convert("LA" if im.mode == "L" else "RGBA")
    if im.mode in ("P", "PA"):
        notes.append("converted palette to RGB")
        return im.convert("RGBA" if im.has_transparency_data else "RGB")
    if im.mode == "CMYK":
        notes.append("converted CMYK to RGB without colour management")
        return im.convert("RGB")
    if im.mode == "YCbCr":
        notes.append("converted YCbCr to RGB")
        return im.convert("RGB")
    unchanged = {"RGBX": "RGB", "RGBa": "RGBA", "La": "LA"}  # padding, premultiplied alpha
    return im.convert(unchanged[im.mode]) if im.mode in unchanged else im


def _drop_opaque_alpha(im: Image.Image, *, name: str, notes: list[str]) -> Image.Image:
    if im.mode not in ("LA", "RGBA"):
        return im
    alpha = np.asarray(im.getchannel("A"))
    see_through = int(np.count_nonzero(alpha != 255))
    if see_through:
        share = f"{100 * see_through / alpha.size:.3g} % of pixels not opaque"
        reason = f"has transparency ({share}); flatten it onto a background first"
        raise ImageRejected(name, reason)
    notes.append("dropped a fully opaque alpha channel")
    return im.convert(im.mode[:-1])


def _icc_notes(im: Image.Image) -> list[str]:
    profile = im.info.get("icc_profile")
    if not profile:
        return []
    try:
        described = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (ImageCms.PyCMSError, OSError, ImportError):
        return ["ignored the embedded ICC profile"]
    return [f"ignored the embedded ICC profile ({described.strip()})"]
