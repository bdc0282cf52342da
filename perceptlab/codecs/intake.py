"""Importing source images into an image set (from the admin or ``import_images``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from perceptlab.codecs.files import store_verified
from perceptlab.codecs.models import ImageSet, SourceImage
from perceptlab.lib.images import (
    IMAGE_SUFFIXES,
    ImageRejected,
    Limits,
    encode_png,
    load_image,
    pixels_sha256,
)


class DuplicateImage(Exception):
    def __init__(self, name: str, existing: SourceImage) -> None:
        super().__init__(
            f"{name}: same pixels as {existing.name!r} already in set {existing.image_set.name!r}"
        )
        self.existing = existing


@dataclass(frozen=True)
class ImportOutcome:
    name: str
    image: SourceImage | None
    error: str = ""
    duplicate: bool = False


def limits_from_settings() -> Limits:
    return Limits(
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_side=settings.IMAGE_MAX_SIDE,
        min_side=settings.IMAGE_MIN_SIDE,
        max_bytes=settings.IMAGE_MAX_BYTES,
    )


def check_image(*, name: str, data: bytes) -> None:
    """Raise :class:`ImageRejected` if :func:`import_image` would refuse this file as an
    image (duplicates aside); stores nothing."""
    load_image(data, name=name, limits=limits_from_settings())


def import_image(*, image_set: ImageSet, name: str, data: bytes) -> SourceImage:
    """Decode, normalise to 8-bit RGB, store a lossless PNG and create the row.

    Raises :class:`ImageRejected` for bad input and :class:`DuplicateImage` when the set
    already holds the same pixels; in both cases nothing is stored in the database.
    """
    loaded = load_image(data, name=name, limits=limits_from_settings())
    content = pixels_sha256(loaded.pixels)
    existing = SourceImage.objects.filter(image_set=image_set, pixels_sha256=content).first()
    if existing is not None:
        raise DuplicateImage(name, existing)
    png_name, png_sha = store_verified(encode_png(loaded.pixels), folder="sources", extension="png")
    height, width = loaded.pixels.shape[:2]
    try:
        with transaction.atomic():
            return SourceImage.objects.create(
                image_set=image_set,
                name=name,
                png=png_name,
                png_sha256=png_sha,
                pixels_sha256=content,
                width=width,
                height=height,
                source_format=loaded.source_format,
                source_mode=loaded.source_mode,
                conversion_notes=list(loaded.notes),
            )
    except IntegrityError:
        # Lost a race with a concurrent import of the same pixels or the same name.
        existing = SourceImage.objects.filter(image_set=image_set, pixels_sha256=content).first()
        if existing is not None:
            raise DuplicateImage(name, existing) from None
        raise ImageRejected(name, f"an image named {name!r} is already in the set") from None


def import_directory(*, image_set: ImageSet, directory: Path) -> list[ImportOutcome]:
    """Import every image file in ``directory`` (sorted by name); never stops on one bad file."""
    outcomes = []
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        outcomes.append(import_file(image_set=image_set, path=path))
    return outcomes


def import_file(*, image_set: ImageSet, path: Path) -> ImportOutcome:
    existing = SourceImage.objects.filter(image_set=image_set, name=path.name).first()
    if existing is not None:
        return ImportOutcome(path.name, existing, "already imported", duplicate=True)
    try:
        image = import_image(image_set=image_set, name=path.name, data=path.read_bytes())
    except ImageRejected as exc:
        return ImportOutcome(path.name, None, str(exc))
    except DuplicateImage as exc:
        return ImportOutcome(path.name, exc.existing, str(exc), duplicate=True)
    except OSError as exc:
        return ImportOutcome(path.name, None, f"{path.name}: cannot read: {exc.strerror}")
    return ImportOutcome(path.name, image)
