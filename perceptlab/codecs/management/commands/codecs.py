from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from perceptlab.codecs.base import CodecError
from perceptlab.codecs.commandline import commandline_details
from perceptlab.codecs.imported import hidden_problem, hidden_slugs, holdings
from perceptlab.codecs.models import ImportedCodec
from perceptlab.codecs.registry import IMPORTED, REGISTRY, get_codec


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
        "note": _floor_note(codec) if state.available else "",
    }


def _floor_note(codec: object) -> str:
    """A learned codec whose shipped or trained checkpoints fall below the photographic floor
    says so (:func:`perceptlab.codecs.neural.cards.codec_floor`)."""
    from perceptlab.codecs.neural.codec import NeuralCodec

    if not isinstance(codec, NeuralCodec):
        return ""
    from perceptlab.codecs.neural.cards import codec_floor

    verdict = codec_floor(codec)
    return "" if verdict.passes else verdict.reason


def describe_imported(codec: ImportedCodec) -> dict[str, Any]:
    """An imported codec: what was imported, from where its bpp comes; it never encodes."""
    held = holdings(codec)
    return {
        "slug": codec.slug,
        "label": codec.display_label,
        "family": IMPORTED,
        "package": "imported",
        "package_version": codec.created.date().isoformat(),
        "version": ", ".join(held.versions) or "nothing imported",
        "available": bool(held.reconstructions),
        "reason": "" if held.reconstructions else "no reconstructions imported",
        "params": {},
        "rate_dial": None,
        "points": held.points,
        "images": held.images,
        "image_sets": held.sets,
        "bpp_source": held.bpp_sources,  # ["measured"], ["declared"] or both
        "source": f"imported: {held.describe()}",
    }


class Command(BaseCommand):
    help = (
        "List every registered codec, its version and whether it is available here (and why "
        "not), then the imported codecs (their points, images and where their bpp comes from)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [describe(slug) for slug in REGISTRY]
        try:
            imported = ImportedCodec.objects.exclude(slug__in=list(REGISTRY))
            rows += [describe_imported(codec) for codec in imported]
            for slug in hidden_slugs():
                problem, fix = hidden_problem(slug)
                self.stderr.write(f"{problem}; {fix}")
        except DatabaseError as exc:
            self.stderr.write(
                f"imported codecs not listed: cannot read the database ({exc}); run "
                "manage.py migrate"
            )
        for row in rows:
            if options["json"]:
                self.stdout.write(json.dumps(row, sort_keys=True))
                continue
            status = "available" if row["available"] else f"UNAVAILABLE: {row['reason']}"
            if row.get("note"):
                status += f" ({row['note']})"
            if row["family"] == IMPORTED:
                status += " in studies (imported: never encodes)"
            package = row.get("source") or f"{row['package']} {row['package_version']}"
            self.stdout.write(
                f"{row['slug']:10} {row['label']:14} {row['version']:45} {package:30} {status}"
            )
