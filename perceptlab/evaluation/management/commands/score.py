from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.evaluation import exports
from perceptlab.evaluation.scoring import ScoreOptions, raters_path, score_ratings_file
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise import DEFAULT_PRIOR, DEFAULT_RIDGE, PRIORS
from perceptlab.evaluation.stats.ratings_io import FORMATS


class Command(BaseCommand):
    help = (
        "Score ratings from outside the platform (ACR/DCR long CSV, sureal dataset JSON, "
        "ITU-T P.808 toolkit votes; CLIC/HiFiC-style pairwise CSV), or reopen an export "
        "bundle and check it gives the same scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--ratings", type=Path, help="file of ratings or pairwise trials")
        source.add_argument("--bundle", type=Path, help="a study's bundle.zip to re-analyse")
        parser.add_argument("--kind", choices=["acr", "dcr", "pairwise"])
        parser.add_argument("--screening", choices=["bt500", "p913"], default="")
        parser.add_argument(
            "--variant",
            choices=["corrected", "sureal"],
            default="corrected",
            help="screening variant: 'sureal' reproduces sureal exactly, quirks included",
        )
        parser.add_argument(
            "--format",
            dest="file_format",
            choices=["auto", *FORMATS],
            default="auto",
            help="ratings file format; auto: .json is sureal-json, else the CSV header decides",
        )
        parser.add_argument(
            "--group",
            default=None,
            metavar="COLUMN",
            help="score each value of COLUMN separately (default: the file's 'group' column, "
            "when it has one; '' pools)",
        )
        parser.add_argument(
            "--pool", action="store_true", help="pool every row, ignoring any group column"
        )
        parser.add_argument("--undecided", choices=["half", "random", "drop"], default="half")
        parser.add_argument("--resamples", type=int, default=10_000)
        parser.add_argument("--orderings", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--bootstrap", choices=["bca", "percentile"], default="bca")
        parser.add_argument(
            "--prior",
            choices=PRIORS,
            default=None,
            help=f"pairwise: prior of the Bradley–Terry and Thurstone scales (default "
            f"{DEFAULT_PRIOR}: pwcmp's distance prior, which keeps a condition that never lost "
            "or never won finite; none: plain maximum likelihood; ridge: ½·λ·Σθ²)",
        )
        parser.add_argument(
            "--ridge",
            type=float,
            default=None,
            metavar="LAMBDA",
            help=f"pairwise: λ of --prior ridge (default {DEFAULT_RIDGE:g})",
        )
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
        if options["pool"] and options["group"]:
            raise CommandError("--pool and --group contradict each other; give one")
        prior, ridge = _prior_options(options)
        score_options = ScoreOptions(
            kind=options["kind"],
            screening=options["screening"],
            variant=options["variant"],
            group="" if options["pool"] else options["group"],
            file_format=options["file_format"],
            undecided=options["undecided"],
            n_resamples=options["resamples"],
            n_orderings=options["orderings"],
            seed=options["seed"],
            bootstrap=options["bootstrap"],
            prior=prior,
            ridge=ridge,
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


def _prior_options(options: dict[str, Any]) -> tuple[str, float | None]:
    """--prior and --ridge, checked: pairwise only, and --ridge with --prior ridge only."""
    prior, ridge = options["prior"], options["ridge"]
    if options["kind"] != "pairwise" and (prior is not None or ridge is not None):
        raise CommandError("--prior and --ridge apply to pairwise trials (--kind pairwise)")
    if ridge is not None and prior != "ridge":
        raise CommandError(f"--ridge {ridge:g} applies to --prior ridge only")
    return prior or DEFAULT_PRIOR, ridge
