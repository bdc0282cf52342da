"""Per-image inputs a codec encodes with besides the pixels.

GC's selective mode (SC; Agustsson et al. 2019, §4.2, the codec ``gc-sc``) codes the regions
a **preserved-region mask** marks as GC codes them and synthesises everything else from a
**semantic label map** it sends with the bitstream. A researcher uploads both per source
image (its admin page); they are checked here on the way in, stored content-addressed like
every other file, and handed to such a codec when a study's stimuli are generated.

Formats (PNG, the source image's exact size):

* label map: one channel (mode ``L``, or ``P`` read as its indices), a class index per pixel
  (0–255; the model says how many classes it knows and refuses larger indices);
* mask: one channel (mode ``1`` or ``L``); a non-zero pixel is preserved.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from perceptlab.codecs.base import SideInputs
from perceptlab.codecs.files import read_bytes, store_verified
from perceptlab.codecs.models import SourceImage

LABEL_MAP = "semantic label map"
PRESERVE_MASK = "preserved-region mask"
MAX_BYTES = 64 * 1024 * 1024


class SideInputError(ValueError):
    """A label map or mask that cannot be used; the message names the file and the fix."""


def _one_channel(data: bytes, *, what: str, size: tuple[int, int], modes: set[str]) -> np.ndarray:
    if len(data) > MAX_BYTES:
        raise SideInputError(f"the {what} is over {MAX_BYTES // 2**20} MiB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format != "PNG":
                raise SideInputError(f"the {what} must be a PNG, not {image.format}")
            if image.mode not in modes:
                raise SideInputError(
                    f"the {what} must have one channel (PNG mode {' or '.join(sorted(modes))}), "
                    f"not {image.mode}"
                )
            if image.size != size:
                raise SideInputError(
                    f"the {what} is {image.size[0]}×{image.size[1]} px; the image is "
                    f"{size[0]}×{size[1]}"
                )
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise SideInputError(f"the {what} cannot be read as a PNG ({error})") from None


def read_label_map(data: bytes, *, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 class indices from a one-channel PNG of ``size`` (width, height)."""
    labels = _one_channel(data, what=LABEL_MAP, size=size, modes={"L", "P"})
    return np.ascontiguousarray(labels, dtype=np.uint8)


def read_mask(data: bytes, *, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, True where the image is preserved, from a one-channel PNG."""
    mask = _one_channel(data, what=PRESERVE_MASK, size=size, modes={"1", "L"})
    return np.ascontiguousarray(mask != 0)


def attach(
    source: SourceImage, *, label_map: bytes | None = None, mask: bytes | None = None
) -> None:
    """Check and store a label map and/or mask for ``source``; nothing is stored unless
    every given file is usable."""
    size = (source.width, source.height)
    if label_map is not None:
        read_label_map(label_map, size=size)
    if mask is not None:
        read_mask(mask, size=size)
    fields = []
    if label_map is not None:
        source.label_map.name, source.label_map_sha256 = store_verified(
            label_map, folder="labels", extension="png"
        )
        fields += ["label_map", "label_map_sha256"]
    if mask is not None:
        source.preserve_mask.name, source.preserve_mask_sha256 = store_verified(
            mask, folder="masks", extension="png"
        )
        fields += ["preserve_mask", "preserve_mask_sha256"]
    if fields:
        source.save(update_fields=fields)


def missing(source: SourceImage) -> list[str]:
    """Which of the two an image still lacks."""
    return [
        what
        for what, name in (
            (LABEL_MAP, source.label_map.name),
            (PRESERVE_MASK, source.preserve_mask.name),
        )
        if not name
    ]


def of(source: SourceImage) -> SideInputs | None:
    """The image's label map and mask, read back and checked; None if either is missing."""
    if missing(source):
        return None
    size = (source.width, source.height)
    return SideInputs(
        labels=read_label_map(read_bytes(str(source.label_map.name)), size=size),
        mask=read_mask(read_bytes(str(source.preserve_mask.name)), size=size),
    )
