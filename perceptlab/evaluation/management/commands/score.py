from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.evaluation import exports
from perceptlab.evaluation.scoring import ScoreOptions, raters_path, score_ratings_file
from perceptlab.evaluation.stats.common import StatsInputError


class Command(BaseCommand):
    help = (
        "Score ratings from outside the platform (ACR/DCR long CSV, CLIC/HiFiC-style "
        "pairwise CSV), or reopen an export bundle and check it gives the same scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--ratings", type=Path, help="CSV of ratings or pairwise trials")
        source.add_argument("--bundle", type=Path, help="a study's bundle.zip to re-analyse")
        parser.add_argument("--kind", choices=["acr", "dcr", "pairwise"])
        parser.add_argument("--screening", choices=["bt500", "p913"], default="")
        parser.add_argument(
            "--variant",
            choices=["corrected", "sureal"],
            default="corrected",
            help="screening variant: 'sureal' reproduces sureal exactly, quirks included",
        )
        parser.add_argument("--group", default="", help="pairwise: scale each value separately")
        parser.add_argument("--undecided", choices=["half", "random", "drop"], default="half")
        parser.add_argument("--resamples", type=int, default=10_000)
        parser.add_argument("--orderings", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--bootstrap", choices=["bca", "percentile"], default="bca")
        parser.add_argument("--out", type=Path, required=True, help="CSV file to write")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["bundle"]:
                self._bundle(options["bundle"], options["out"])
            else:
                self._ratings(options)
        except StatsInputError as error:
            raise CommandError(str(error)) from error

    def _ratings(self, options: dict[str, Any]) -> None:
        if not options["kind"]:
            raise CommandError("--kind acr|dcr|pairwise is required with --ratings")
        if options["screening"] and options["kind"] == "pairwise":
            raise CommandError("--screening applies to acr/dcr ratings, not pairwise trials")
        score_options = ScoreOptions(
            kind=options["kind"],
            screening=options["screening"],
            variant=options["variant"],
            group=options["group"],
            undecided=options["undecided"],
            n_resamples=options["resamples"],
            n_orderings=options["orderings"],
            seed=options["seed"],
            bootstrap=options["bootstrap"],
        )
        scored = score_ratings_file(options["ratings"], score_options)
        out: Path = options["out"]
        scored.scores.to_csv(out, index=False)
        for note in scored.notes:
            self.stdout.write(note)
        self.stdout.write(f"wrote {len(scored.scores)} rows to {out}")
        if scored.raters is not None:
            path = raters_path(out)
            scored.raters.to_csv(path, index=False)
            self.stdout.write(f"wrote the screening verdicts to {path}")

    def _bundle(self, path: Path, out: Path) -> None:
        bundle = exports.open_bundle(path)
        analysis = exports.reanalyse(bundle)
        out.write_bytes(exports.csv_bytes(analysis.scores))
        stored = exports.csv_bytes(bundle.scores)
        again = exports.csv_bytes(exports.read_csv_bytes(exports.csv_bytes(analysis.scores)))
        if again != stored:
            raise CommandError(
                f"re-analysing {path} gave different scores than its scores.csv "
                f"(written to {out} for comparison)"
            )
        self.stdout.write(
            f"{path}: hashes verified; re-analysis reproduces scores.csv exactly "
            f"({len(analysis.scores)} rows written to {out})"
        )
