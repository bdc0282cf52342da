from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from perceptlab.codecs.base import CodecError
from perceptlab.codecs.commandline import commandline_details
from perceptlab.codecs.registry import REGISTRY, get_codec


def describe(slug: str) -> dict[str, Any]:
    """Registry entry plus what this machine can do with it."""
    entry = REGISTRY[slug]
    row: dict[str, Any] = {
        "slug": slug,
        "label": entry.label,
        "family": entry.family,
        # the installed package that provides the codec: PerceptLab itself or a plugin's
        "package": entry.package or "perceptlab",
        "package_version": entry.package_version or version("perceptlab"),
    }
    row.update(commandline_details(slug))  # a command-line codec's TOML file and binaries
    try:
        codec = get_codec(slug)
    except (ImportError, CodecError) as exc:
        return {
            **row,
            "version": "unavailable",
            "available": False,
            "reason": f"cannot load: {exc}",
            "params": {},
            "rate_dial": None,
        }
    state = codec.availability()
    return {
        **row,
        "label": REGISTRY[slug].label,  # a plugin's entry takes its class's label on loading
        "version": codec.version(),
        "available": state.available,
        "reason": state.reason,
        "params": {p.name: p.default for p in codec.params},
        "rate_dial": codec.dial.name if codec.dial else None,
    }


class Command(BaseCommand):
    help = (
        "List every registered codec, its version and whether it is available here (and why not)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **options: Any) -> None:
        for slug in REGISTRY:
            row = describe(slug)
            if options["json"]:
                self.stdout.write(json.dumps(row, sort_keys=True))
                continue
            status = "available" if row["available"] else f"UNAVAILABLE: {row['reason']}"
            package = row.get("source") or f"{row['package']} {row['package_version']}"
            self.stdout.write(
                f"{slug:10} {row['label']:14} {row['version']:45} {package:30} {status}"
            )
