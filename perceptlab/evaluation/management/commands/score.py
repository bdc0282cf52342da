from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perceptlab.evaluation import exports
from perceptlab.evaluation.analysis import LapseUse, literal_choices
from perceptlab.evaluation.exclusion import JUDGMENT_FLAGS
from perceptlab.evaluation.scoring import (
    Scored,
    ScoreOptions,
    TripletOptions,
    raters_path,
    score_ratings_file,
    score_triplet_files,
)
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise import DEFAULT_PRIOR, DEFAULT_RIDGE, PRIORS, Prior
from perceptlab.evaluation.stats.ratings_io import FORMATS
from perceptlab.evaluation.stats.triplets import BOOTSTRAPS, DEFAULT_REPLICATES

RATING_BOOTSTRAPS = ("bca", "percentile")
TRIPLET_BOOTSTRAPS = tuple(b for b in BOOTSTRAPS if b != "none")


class Command(BaseCommand):
    help = (
        "Score ratings from outside the platform (ACR/DCR long CSV, sureal dataset JSON, "
        "ITU-T P.808 toolkit votes; CLIC/HiFiC-style pairwise CSV), or reopen an export "
        "bundle and check it gives the same scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--ratings",
            type=Path,
            action="extend",
            nargs="+",
            help="file of ratings or pairwise trials; --kind triplet takes several (e.g. the "
            "BTC and the PTC responses of one test, fitted jointly)",
        )
        source.add_argument("--bundle", type=Path, help="a study's bundle.zip to re-analyse")
        parser.add_argument("--kind", choices=["acr", "dcr", "pairwise", "triplet"])
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
        parser.add_argument(
            "--bootstrap",
            choices=[*RATING_BOOTSTRAPS, *TRIPLET_BOOTSTRAPS],
            default=None,
            help="acr/dcr: interval of the rater bootstrap, bca (default) or percentile; "
            "triplet: what is resampled, raters (default) or responses within each triplet "
            "question (AIC-3's bootstrap)",
        )
        parser.add_argument(
            "--replicates",
            type=int,
            default=None,
            metavar="N",
            help=f"triplet: bootstrap replicates (default {DEFAULT_REPLICATES})",
        )
        parser.add_argument(
            "--filter-batches",
            action="store_true",
            help="triplet: leave out batches whose trap accuracy is below 0.8 or whose share "
            "of 'right' is more than 0.15 from ½ (stats.triplets.filter_reliable_batches)",
        )
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
        policy = parser.add_argument_group(
            "exclusion policy (with --bundle: re-analyse under another policy than the study's)"
        )
        policy.add_argument(
            "--exclude",
            default=None,
            metavar="FLAGS",
            help="leave out judgments carrying any of these comma-separated QC flags "
            f"({', '.join(JUDGMENT_FLAGS)}); 'none' keeps every flagged judgment",
        )
        policy.add_argument(
            "--max-gold-failure",
            type=float,
            default=None,
            metavar="SHARE",
            help="leave out raters who failed more than this share of their gold trials",
        )
        policy.add_argument(
            "--max-inconsistency",
            type=float,
            default=None,
            metavar="SHARE",
            help="leave out raters with more than this share of inconsistent repeats",
        )
        policy.add_argument(
            "--max-lapse",
            type=float,
            default=None,
            metavar="Q",
            help="2AFC: leave out raters whose lapse rate (lapse model) exceeds Q",
        )
        policy.add_argument(
            "--lapse",
            choices=literal_choices("lapse"),
            default=None,
            help="2AFC: 'weight' adds the scale with each rater weighted by 1 − lapse rate",
        )
        parser.add_argument("--out", type=Path, required=True, help="CSV file to write")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            changes = _policy_changes(options)
            if options["bundle"]:
                self._bundle(options["bundle"], options["out"], changes)
            elif changes:
                raise CommandError(
                    "--exclude, --max-gold-failure, --max-inconsistency, --max-lapse and --lapse "
                    "re-analyse a study's --bundle (its judgments carry the QC flags); a "
                    "ratings file has none"
                )
            else:
                self._ratings(options)
        except StatsInputError as error:
            raise CommandError(str(error)) from error

    def _ratings(self, options: dict[str, Any]) -> None:
        if not options["kind"]:
            raise CommandError("--kind acr|dcr|pairwise|triplet is required with --ratings")
        paths = _ratings_paths(options["ratings"])
        if options["kind"] == "triplet":
            self._triplets(paths, options)
            return
        _refuse_triplet_options(options, paths)
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
            bootstrap=options["bootstrap"] or "bca",
            prior=prior,
            ridge=ridge,
        )
        scored = score_ratings_file(paths[0], score_options)
        self._write(scored, options["out"])

    def _write(self, scored: Scored, out: Path, *, raters: str = "the screening verdicts") -> None:
        scored.scores.to_csv(out, index=False)
        for note in scored.notes:
            self.stdout.write(note)
        self.stdout.write(f"wrote {len(scored.scores)} rows to {out}")
        if scored.raters is not None:
            path = raters_path(out)
            scored.raters.to_csv(path, index=False)
            self.stdout.write(f"wrote {raters} to {path}")

    def _triplets(self, paths: list[Path], options: dict[str, Any]) -> None:
        """Triplet responses (JPEG AIC-3 BTC/PTC) scaled in JND, one row per distorted image."""
        bootstrap = options["bootstrap"] or "raters"
        if bootstrap not in TRIPLET_BOOTSTRAPS:
            raise CommandError(
                f"--bootstrap {bootstrap} applies to acr/dcr; triplet takes "
                f"{' or '.join(TRIPLET_BOOTSTRAPS)}"
            )
        for option in ("screening", "prior", "ridge", "group"):
            if options[option]:
                raise CommandError(f"--{option} does not apply to --kind triplet")
        triplet_options = TripletOptions(
            bootstrap="responses" if bootstrap == "responses" else "raters",
            n_replicates=options["replicates"] or DEFAULT_REPLICATES,
            seed=options["seed"],
            filter_batches=options["filter_batches"],
        )
        scored = score_triplet_files(paths, triplet_options)
        self._write(scored, options["out"], raters="the per-rater trap accuracy and side bias")

    def _bundle(self, path: Path, out: Path, changes: PolicyChanges) -> None:
        bundle = exports.open_bundle(path)
        if changes:
            self._bundle_policy(bundle, out, changes)
            return
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

    def _bundle_policy(self, bundle: exports.Bundle, out: Path, changes: PolicyChanges) -> None:
        """Re-analyse under the policy asked for: the scores differ from the bundle's own
        by design, so they are written without the reproduction check, with what each rule
        removed."""
        config = replace(bundle.config, **changes)
        analysis = exports.reanalyse(bundle, config)
        out.write_bytes(exports.csv_bytes(analysis.scores))
        self.stdout.write(f"exclusion policy: {config.policy().describe()}")
        for row in analysis.exclusion.itertuples(index=False):
            self.stdout.write(f"  {row.rule}: {row.judgments} judgments, {row.raters} raters")
        self.stdout.write(
            f"wrote {len(analysis.scores)} rows to {out} (re-analysed under this policy, so "
            "not compared with the bundle's scores.csv)"
        )


def _ratings_paths(value: Path | list[Path]) -> list[Path]:
    """--ratings as a list: argparse appends, call_command(ratings=path) passes one path."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _refuse_triplet_options(options: dict[str, Any], paths: list[Path]) -> None:
    """One ratings file, and no triplet-only option, for acr/dcr/pairwise."""
    if len(paths) > 1:
        raise CommandError(
            f"--kind {options['kind']} reads one --ratings file; several are for --kind triplet"
        )
    if options["bootstrap"] in TRIPLET_BOOTSTRAPS:
        raise CommandError(
            f"--bootstrap {options['bootstrap']} applies to --kind triplet; acr/dcr take "
            f"{' or '.join(RATING_BOOTSTRAPS)}"
        )
    if options["replicates"] is not None or options["filter_batches"]:
        raise CommandError("--replicates and --filter-batches apply to --kind triplet")


def _prior_options(options: dict[str, Any]) -> tuple[Prior, float | None]:
    """--prior and --ridge, checked: pairwise only, and --ridge with --prior ridge only."""
    prior, ridge = options["prior"], options["ridge"]
    if options["kind"] != "pairwise" and (prior is not None or ridge is not None):
        raise CommandError("--prior and --ridge apply to pairwise trials (--kind pairwise)")
    if ridge is not None and prior != "ridge":
        raise CommandError(f"--ridge {ridge:g} applies to --prior ridge only")
    return prior or DEFAULT_PRIOR, ridge


class PolicyChanges(TypedDict, total=False):
    exclude_flags: tuple[str, ...]
    max_gold_failure: float
    max_inconsistency: float
    max_lapse: float
    lapse: LapseUse


def _policy_changes(options: dict[str, Any]) -> PolicyChanges:
    """The analysis options --exclude, --max-gold-failure, --max-inconsistency and --lapse
    change (an unknown flag or a share outside [0, 1) is refused by the policy itself)."""
    changes: PolicyChanges = {}
    if options["exclude"] is not None:
        text = options["exclude"].strip()
        flags = () if text == "none" else tuple(f.strip() for f in text.split(",") if f.strip())
        changes["exclude_flags"] = flags
    if options["max_gold_failure"] is not None:
        changes["max_gold_failure"] = options["max_gold_failure"]
    if options["max_inconsistency"] is not None:
        changes["max_inconsistency"] = options["max_inconsistency"]
    if options["max_lapse"] is not None:
        changes["max_lapse"] = options["max_lapse"]
    if options["lapse"] is not None:
        changes["lapse"] = options["lapse"]
    return changes
