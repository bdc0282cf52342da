from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.codecs.imported import (
    LAYOUT,
    ImportRefused,
    ImportResult,
    Rates,
    files_from_directory,
    import_reconstructions,
)
from perceptlab.codecs.management.commands.generate import stimulus_record
from perceptlab.codecs.models import ImageSet


class Command(BaseCommand):
    help = (
        "Import a codec known only by its decoded images: DIR holds one folder per rate point, "
        f"{LAYOUT}, each file named after its source image in the set. The bpp is measured "
        "from the bitstream files (--bitstreams, same layout) or declared in a CSV table "
        "(--bpp-csv, columns image, point, bpp). All files are checked first; any problem "
        "and nothing is stored. The codec then appears in manage.py codecs and in studies."
    )

    def add_base_argument(self, parser: CommandParser, *args: str, **kwargs: Any) -> None:
        if "--version" not in args:  # --version is the codec's here, not Django's
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help=f"the decoded images, {LAYOUT}")
        parser.add_argument("--set", dest="set_name", required=True, help="image set name")
        parser.add_argument("--codec", required=True, help="the codec's name (a slug: my-gan)")
        parser.add_argument("--version", dest="codec_version", default="", help="its version")
        parser.add_argument("--label", default="", help="display name, e.g. 'My GAN (2025)'")
        parser.add_argument(
            "--point", default="", help="rate point of files directly in DIR (no point folder)"
        )
        rates = parser.add_mutually_exclusive_group(required=True)
        rates.add_argument(
            "--bitstreams", type=Path, help="folder of bitstreams, same layout: bpp measured"
        )
        rates.add_argument(
            "--bpp-csv", type=Path, help="CSV with columns image, point, bpp: bpp declared"
        )
        parser.add_argument(
            "--replace", action="store_true", help="replace points this codec already has"
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="one JSON object per stimulus"
        )

    def handle(
        self,
        *args: Any,
        directory: Path,
        set_name: str,
        codec: str,
        codec_version: str,
        label: str,
        point: str,
        bitstreams: Path | None,
        bpp_csv: Path | None,
        replace: bool,
        as_json: bool,
        **options: Any,
    ) -> None:
        image_set = _image_set(set_name)
        try:
            result = import_reconstructions(
                image_set=image_set,
                codec=codec,
                files=files_from_directory(directory),
                rates=_rates(bitstreams, bpp_csv),
                point=point,
                version=codec_version,
                label=label,
                replace=replace,
            )
        except ImportRefused as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            raise CommandError(f"nothing imported: {len(exc.problems)} problem(s) above") from None
        self._report(result, as_json=as_json)

    def _report(self, result: ImportResult, *, as_json: bool) -> None:
        for reconstruction in result.reconstructions:
            if as_json:
                self.stdout.write(json.dumps(stimulus_record(reconstruction), sort_keys=True))
            else:
                source = reconstruction.bpp_source
                self.stdout.write(
                    f"{reconstruction.point:12} {reconstruction.source.name:24} "
                    f"{reconstruction.achieved_bpp:.4f} bpp ({source})"
                )
        if not as_json:
            replaced = f", {result.replaced} replaced" if result.replaced else ""
            self.stdout.write(
                f"{result.codec.slug}: {len(result.reconstructions)} reconstruction(s) imported "
                f"at point(s) {', '.join(result.points)}{replaced}"
            )


def _image_set(name: str) -> ImageSet:
    try:
        return ImageSet.objects.get(name=name)
    except ImageSet.DoesNotExist:
        known = ", ".join(ImageSet.objects.values_list("name", flat=True)) or "none"
        raise CommandError(
            f"no image set {name!r}; sets: {known} (import the sources with import_images)"
        ) from None


def _rates(bitstreams: Path | None, bpp_csv: Path | None) -> Rates:
    if bitstreams is not None:
        return Rates(bitstreams=files_from_directory(bitstreams))
    assert bpp_csv is not None  # the argument group requires one of them
    try:
        return Rates(csv_name=bpp_csv.name, csv_data=bpp_csv.read_bytes())
    except OSError as exc:
        raise CommandError(f"--bpp-csv {bpp_csv}: cannot read ({exc.strerror})") from None
