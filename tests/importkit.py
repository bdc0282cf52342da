"""A researcher's codec known only by its output, for the imported-reconstruction tests.

Pillow's JPEG at two qualities stands in for the researcher's codec: the bitstreams are the
JPEG files, the decoded images their decoding saved as PNG, laid out as the import expects
(``<point>/<image>.png``). The sources are small crops of real Kodak images. Test modules
import it as ``importkit``.
"""

from __future__ import annotations

import csv
import io
import struct
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from support import kodak_path

from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet
from perceptlab.lib.images import encode_png

POINTS = {"q20": 20, "q75": 75}
"""Rate point name → JPEG quality."""
IMAGES = ("kodim01", "kodim23")
WIDTH, HEIGHT = 128, 96


def kodak_crop(name: str, *, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The top-left-centre ``width`` × ``height`` of a Kodak image (textured, not flat)."""
    with Image.open(kodak_path(name)) as im:
        pixels = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(pixels[200 : 200 + height, 300 : 300 + width])


def kodak_crop_set(names: tuple[str, ...] = IMAGES, *, name: str | None = None) -> ImageSet:
    """An image set of Kodak crops named ``kodim01.png`` …"""
    image_set = ImageSet.objects.create(name=name or f"kodak-{uuid.uuid4().hex[:8]}")
    for image in names:
        import_image(image_set=image_set, name=f"{image}.png", data=encode_png(kodak_crop(image)))
    return image_set


def jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class Output:
    """What the researcher hands over: decoded images, bitstreams and a bpp table."""

    images: Path
    bitstreams: Path
    csv: Path
    bpp: dict[tuple[str, str], float]  # (point, image) → 8 · bytes / (H · W)
    pixels: dict[tuple[str, str], np.ndarray]  # (point, image) → decoded pixels


def researcher_output(
    root: Path, names: tuple[str, ...] = IMAGES, points: dict[str, int] | None = None
) -> Output:
    """Encode each crop at each point with JPEG, write the researcher's three inputs."""
    images, bitstreams = root / "decoded", root / "bitstreams"
    bpp, pixels = {}, {}
    for point, quality in (points or POINTS).items():
        (images / point).mkdir(parents=True, exist_ok=True)
        (bitstreams / point).mkdir(parents=True, exist_ok=True)
        for name in names:
            data = jpeg(kodak_crop(name), quality)
            (bitstreams / point / f"{name}.jpg").write_bytes(data)
            decoded = decode(data)
            (images / point / f"{name}.png").write_bytes(encode_png(decoded))
            bpp[(point, name)] = 8 * len(data) / (WIDTH * HEIGHT)
            pixels[(point, name)] = decoded
    table = root / "rates.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "point", "bpp"])
        for (point, name), value in sorted(bpp.items()):
            writer.writerow([f"{name}.png" if point == "q20" else name, point, repr(value)])
    return Output(images, bitstreams, table, bpp, pixels)


def zip_folder(folder: Path, *, top: str = "") -> bytes:
    """A zip of ``folder``'s files, paths relative to it (under ``top/`` if given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            archive.writestr(f"{top}/{relative}" if top else relative, path.read_bytes())
    return buffer.getvalue()


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """An RGB PNG with 16 bits per sample (PNG spec §11.2.2, colour type 2, bit depth 16),
    written by hand: Pillow cannot write one."""
    height, width = pixels.shape[:2]
    wide = (pixels.astype(">u2") * 257).reshape(height, width * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in wide)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def stored_files(media_root: Path, folder: str) -> list[Path]:
    """Files under MEDIA_ROOT/``folder`` (the storage's reconstructions/, bitstreams/ …)."""
    return sorted(p for p in (media_root / folder).rglob("*") if p.is_file())
