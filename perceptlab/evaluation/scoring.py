"""Scoring of ratings collected outside the platform (``manage.py score``), without Django.

Absolute ratings (ACR, DCR) come as a long CSV ``rater,stimulus,score[,content,condition]``
(the format of the ``sureal`` dataset of :mod:`perceptlab.lib.datasets`), sureal's dataset
JSON or the ITU-T P.808 toolkit's per-vote CSV (see ``stats.ratings_io.read_ratings``);
pairwise judgments as CLIC/HiFiC-style rows (see ``stats.pairwise_io``). A file with a
``group`` column is scaled per group unless pooled (``ScoreOptions.group``). The output columns
are fixed (a stable file format for scripts), with ``group`` first when ratings were scored per
group:
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from perceptlab.evaluation.stats import mos, pairwise, screening, triplets
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise_io import Undecided, read_pairwise_csv
from perceptlab.evaluation.stats.ratings_io import FileFormat, read_ratings
from perceptlab.evaluation.stats.screening import Variant as ScreeningVariant
from perceptlab.evaluation.stats.triplet_io import read_triplet_files

RATING_COLUMNS = [
    "stimulus",
    "n",
    "mos",
    "sd",
    "ci95_normal_low",
    "ci95_normal_high",
    "ci95_t_low",
    "ci95_t_high",
    "ci95_boot_low",
    "ci95_boot_high",
]
PAIRWISE_COLUMNS = [
    "group",
    "condition",
    "n",
    "elo_online",
    "bt_theta",
    "bt_elo",
    "thurstone",
    "ci95_low",
    "ci95_high",
]
Kind = Literal["acr", "dcr", "pairwise"]


@dataclass(frozen=True)
class ScoreOptions:
    kind: Kind
    screening: Literal["", "bt500", "p913"] = ""
    variant: ScreeningVariant = "corrected"
    group: str | None = None
    """Column to scale separately by; ``None``: the file's ``group`` column if any; ``""``: pool."""
    file_format: FileFormat = "auto"
    """Ratings file format (``stats.ratings_io.FORMATS``); pairwise trials are always CSV."""
    undecided: Undecided = "half"
    n_resamples: int = 10_000
    n_orderings: int = 10_000
    seed: int = 0
    bootstrap: mos.BootstrapMethod = "bca"
    prior: pairwise.Prior = pairwise.DEFAULT_PRIOR
    """Pairwise: the prior of the scales (``stats.pairwise.PRIORS``)."""
    ridge: float | None = None
    """Pairwise: λ of ``prior="ridge"`` (``None``: ``stats.pairwise.DEFAULT_RIDGE``)."""


@dataclass
class Scored:
    scores: pd.DataFrame
    raters: pd.DataFrame | None
    notes: list[str]


def score_ratings_file(path: Path, options: ScoreOptions) -> Scored:
    if options.kind == "pairwise":
        return _score_pairwise(path, options)
    return _score_ratings(path, options)


def _score_ratings(path: Path, options: ScoreOptions) -> Scored:
    ratings = read_ratings(path, file_format=options.file_format)
    column, grouping = _grouping(ratings, options.group, path=path)
    notes = [
        f"{len(ratings)} ratings of {ratings['stimulus'].nunique()} stimuli "
        f"by {ratings['rater'].nunique()} raters (format: {ratings.attrs['format']})",
        grouping,
    ]
    if column is None:
        scored = _score_rating_group(ratings, options, label=None)
        return Scored(scored.scores, scored.raters, notes + scored.notes)
    parts = [
        _score_rating_group(rows, options, label=str(label))
        for label, rows in ratings.groupby(ratings[column].astype(str), sort=True)
    ]
    raters = [part.raters for part in parts if part.raters is not None]
    return Scored(
        scores=pd.concat([part.scores for part in parts], ignore_index=True),
        raters=pd.concat(raters, ignore_index=True) if raters else None,
        notes=notes + list(dict.fromkeys(note for part in parts for note in part.notes)),
    )


def _grouping(frame: pd.DataFrame, group: str | None, *, path: Path) -> tuple[str | None, str]:
    """The column whose values are scored separately (or ``None``) and a note saying so."""
    if group == "":
        ignored = " (its group column ignored)" if "group" in frame.columns else ""
        return None, f"grouping: all rows pooled{ignored}"
    column = group if group is not None else "group"
    if column not in frame.columns:
        if group is None:
            return None, "grouping: none (the file has no group column)"
        raise StatsInputError(
            f"--group {group!r} is not a column of {path.name}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    count = frame[column].astype(str).nunique()
    return column, (
        f"grouping: each value of column {column!r} scored separately ({count} groups; "
        "--pool pools them)"
    )


def _score_rating_group(
    ratings: pd.DataFrame, options: ScoreOptions, *, label: str | None
) -> Scored:
    """Screening and MOS of one group's ratings (``label`` ``None`` when not grouped)."""
    raters, notes = None, []
    if options.screening:
        result = screening.screen(
            ratings,
            method=options.screening,
            variant=options.variant,
        )
        raters = result.table[["rater", "rejected"]]
        ratings = result.kept
        where = f" in group {label!r}" if label is not None else ""
        notes.append(
            f"{options.screening} ({options.variant}){where}: "
            f"{int(raters['rejected'].sum())} of {len(raters)} raters rejected"
        )
    estimate = mos.dmos_dcr if options.kind == "dcr" else mos.mos
    result_mos = estimate(
        ratings,
        by="stimulus",
        n_resamples=options.n_resamples,
        seed=options.seed,
        bootstrap=options.bootstrap,
    )
    notes.append(
        f"model: {result_mos.model.label()}; bootstrap: {options.n_resamples} "
        f"resamples of raters ({options.bootstrap}), seed {options.seed}"
    )
    scores = result_mos.table[RATING_COLUMNS]
    if label is not None:
        scores = scores.assign(group=label)[["group", *RATING_COLUMNS]]
        raters = None if raters is None else raters.assign(group=label)[["group", *raters]]
    return Scored(scores=scores, raters=raters, notes=notes)


def _score_pairwise(path: Path, options: ScoreOptions) -> Scored:
    if options.file_format not in ("auto", "csv"):
        raise StatsInputError(
            f"format {options.file_format!r} holds absolute ratings (acr/dcr); pairwise trials "
            "are read from CSV (trials or HiFiC layout)"
        )
    trials = read_pairwise_csv(path, undecided=options.undecided)
    column, grouping = _grouping(trials, options.group, path=path)
    if column is not None:
        trials = trials.assign(group=trials[column].astype(str))
    else:
        trials = trials.drop(columns=["group"], errors="ignore")
    scores = pairwise.scale_pairwise(
        trials,
        n_orderings=options.n_orderings,
        n_resamples=options.n_resamples,
        seed=options.seed,
        prior=options.prior,
        ridge=options.ridge,
    )
    notes = [
        f"{len(trials)} trials by {trials['rater'].nunique()} raters "
        f"(undecided: {options.undecided})",
        grouping,
        _prior_note(scores.attrs["prior"], scores.attrs["ridge"]),
    ]
    return Scored(scores=scores[PAIRWISE_COLUMNS], raters=None, notes=notes)


def _prior_note(prior: str, ridge: float) -> str:
    if prior == "gaussian":
        return "scale prior: gaussian (pwcmp's distance prior, Perez-Ortiz & Mantiuk 2017)"
    if prior == "ridge":
        return f"scale prior: ridge, ½·λ·Σθ² with λ = {ridge:g}"
    return "scale prior: none (maximum likelihood)"


def raters_path(out: Path) -> Path:
    """``scores.csv`` → ``scores.raters.csv``: the screening verdict beside the scores."""
    return out.with_name(f"{out.stem}.raters.csv")


# -- triplet comparisons (JPEG AIC-3) ---------------------------------------------------------

TRIPLET_COLUMNS = ["img_num", "codec", "level", "jnd", "ci95_low", "ci95_high", "n"]
"""One row per distorted image; the source (pivot) is 0 JND by definition and has no row."""


@dataclass(frozen=True)
class TripletOptions:
    bootstrap: triplets.Bootstrap = "raters"
    n_replicates: int = triplets.DEFAULT_REPLICATES
    seed: int = 0
    filter_batches: bool = False
    """Leave out unreliable batches first (``stats.triplets.filter_reliable_batches``)."""


def score_triplet_files(paths: Sequence[Path], options: TripletOptions) -> Scored:
    """JND scale of the triplet responses in ``paths`` (SDR25 or platform layout, e.g. a BTC
    and a PTC file), fitted jointly (``stats.triplets``); ``raters`` is the per-rater QC
    (trap accuracy, side bias) of every response read, the filter's batches included."""
    frame = read_triplet_files(paths)
    notes = [_triplet_note(frame)]
    qc = triplets.triplet_qc(frame)
    if options.filter_batches:
        kept = triplets.filter_reliable_batches(frame)
        notes.append(kept.describe())
        frame = kept.kept
    result = triplets.scale_triplets(
        frame, bootstrap=options.bootstrap, n_replicates=options.n_replicates, seed=options.seed
    )
    scores = result.scale.rename(columns={"source": "img_num"})[TRIPLET_COLUMNS]
    return Scored(scores=scores, raters=qc, notes=notes + list(result.notes))


def _triplet_note(frame: pd.DataFrame) -> str:
    methods = frame["method"].value_counts().sort_index()
    dropped = "".join(f"; {n:,} dropped: {why}" for why, n in frame.attrs["dropped"].items())
    return (
        f"{len(frame):,} triplet responses by {frame['rater'].nunique()} raters ("
        + ", ".join(f"{method} {n:,}" for method, n in methods.items())
        + f"){dropped}"
    )
