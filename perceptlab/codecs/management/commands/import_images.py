from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.codecs.intake import import_directory
from perceptlab.codecs.models import ImageSet


class Command(BaseCommand):
    help = (
        "Import every image in DIR into the image set NAME (created if missing). Each image "
        "is decoded, EXIF-oriented, converted to 8-bit RGB and stored as a lossless PNG; "
        "bad files and duplicates are reported and skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="folder holding the images")
        parser.add_argument("--set", dest="set_name", required=True, help="image set name")
        parser.add_argument("--description", default="", help="description of a new set")

    def handle(
        self, *args: Any, directory: Path, set_name: str, description: str, **options: Any
    ) -> None:
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory")
        image_set, _ = ImageSet.objects.get_or_create(
            name=set_name, defaults={"description": description}
        )
        outcomes = import_directory(image_set=image_set, directory=directory)
        if not outcomes:
            raise CommandError(f"{directory} holds no image files")
        imported = 0
        for outcome in outcomes:
            if outcome.image is not None and not outcome.duplicate:
                imported += 1
                notes = "; ".join(outcome.image.conversion_notes)
                self.stdout.write(f"imported {outcome.name}" + (f" ({notes})" if notes else ""))
            elif outcome.duplicate:
                self.stdout.write(f"skipped {outcome.name}: {outcome.error}")
            else:
                self.stderr.write(f"rejected {outcome.error}")
        rejected = sum(1 for o in outcomes if o.image is None)
        self.stdout.write(
            f"set {image_set.name!r}: {imported} imported, "
            f"{len(outcomes) - imported - rejected} already present, {rejected} rejected"
        )
