"""``manage.py model_card NAME --codec SLUG``: measure a checkpoint on Kodak, write its card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.codecs.base import CodecError
from perceptlab.lib.datasets import DatasetError, dataset_dir


class Command(BaseCommand):
    help = (
        "Encode Kodak with a neural codec checkpoint at one or more operating points and "
        "write <name>.card.json and <name>.md next to the checkpoint (bpp, PSNR, MS-SSIM, times)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="checkpoint name (found like the codec finds it)")
        parser.add_argument("--codec", required=True, help="registry slug, e.g. hific or gc")
        parser.add_argument(
            "--params",
            action="append",
            default=[],
            help="one operating point as JSON, e.g. '{\"qstep\": 2}' (repeat; default: {})",
        )
        parser.add_argument(
            "--kodak",
            type=Path,
            help="folder of kodim*.png (default: the kodak dataset, fetched on first use)",
        )
        parser.add_argument("--limit", type=int, default=None, help="first N images only")
        parser.add_argument("--hardware", default="", help="where the evaluation ran")
        parser.add_argument(
            "--tunability",
            action="store_true",
            help="tunable codec: also draw bpp against n (−2…2) with its least-squares line",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from perceptlab.codecs.neural import cards, checkpoints

        try:
            path = checkpoints.require(options["name"])
            points = [json.loads(text) for text in options["params"]] or [{}]
            kodak = options["kodak"] or dataset_dir("kodak")
            images = cards.kodak_images(kodak, options["limit"])
        except (
            checkpoints.CheckpointError,
            DatasetError,
            FileNotFoundError,
            json.JSONDecodeError,
        ) as error:
            raise CommandError(str(error)) from None
        if not all(isinstance(point, dict) for point in points):
            raise CommandError("--params takes a JSON object")
        try:
            card = cards.write_card(
                path, options["codec"], points, images, hardware=options["hardware"]
            )
        except (ValueError, CodecError) as error:
            raise CommandError(str(error)) from None
        for point in card["evaluation"]["operating_points"]:
            s = point["summary"]
            self.stdout.write(
                f"{point['params'] or 'defaults'}: {s['bpp']:.4f} bpp, {s['psnr']:.2f} dB, "
                f"MS-SSIM {s['ms_ssim']:.4f} ({s['images']} images)"
            )
        if options["tunability"]:
            numbers = cards.write_tunability(path, images, [n / 2 for n in range(-4, 5)])
            self.stdout.write(
                f"tunability: bpp = {numbers['slope']:.4f}·n + {numbers['intercept']:.4f} "
                f"(r² {numbers['r2']:.3f})"
            )
        self.stdout.write(self.style.SUCCESS(f"wrote {cards.card_path(path)}"))
