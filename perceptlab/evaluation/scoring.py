"""Scoring of ratings collected outside the platform (``manage.py score``), without Django.

Absolute ratings (ACR, DCR) come as a long CSV ``rater,stimulus,score[,content,condition]``
(the format of ``shared/datasets/sureal``); pairwise judgments as CLIC/HiFiC-style rows (see
``stats.pairwise_io``). The output columns are fixed (a stable file format for scripts):
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from perceptlab.evaluation.stats import mos, pairwise, screening
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv
from perceptlab.evaluation.stats.ratings_io import read_ratings_csv

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
    screening: str = ""
    variant: str = "corrected"
    group: str = ""
    undecided: str = "half"
    n_resamples: int = 10_000
    n_orderings: int = 10_000
    seed: int = 0
    bootstrap: str = "bca"


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
    ratings = read_ratings_csv(path)
    raters, notes = (
        None,
        [
            f"{len(ratings)} ratings of {ratings['stimulus'].nunique()} stimuli "
            f"by {ratings['rater'].nunique()} raters"
        ],
    )
    if options.screening:
        result = screening.screen(
            ratings,
            method=options.screening,
            variant=options.variant,  # type: ignore[arg-type]
        )
        raters = result.table[["rater", "rejected"]]
        ratings = result.kept
        notes.append(
            f"{options.screening} ({options.variant}): "
            f"{int(raters['rejected'].sum())} of {len(raters)} raters rejected"
        )
    estimate = mos.dmos_dcr if options.kind == "dcr" else mos.mos
    result_mos = estimate(
        ratings,
        by="stimulus",
        n_resamples=options.n_resamples,
        seed=options.seed,
        bootstrap=options.bootstrap,  # type: ignore[arg-type]
    )
    notes.append(
        f"model: {result_mos.model.label()}; bootstrap: {options.n_resamples} "
        f"resamples of raters ({options.bootstrap}), seed {options.seed}"
    )
    return Scored(scores=result_mos.table[RATING_COLUMNS], raters=raters, notes=notes)


def _score_pairwise(path: Path, options: ScoreOptions) -> Scored:
    trials = read_pairwise_csv(path, undecided=options.undecided)  # type: ignore[arg-type]
    if options.group:
        if options.group not in trials.columns:
            raise StatsInputError(
                f"--group {options.group!r} is not a column of {path.name}; "
                f"columns: {', '.join(map(str, trials.columns))}"
            )
        trials = trials.assign(group=trials[options.group].astype(str))
    else:
        trials = trials.drop(columns=["group"], errors="ignore")
    scores = pairwise.scale_pairwise(
        trials,
        n_orderings=options.n_orderings,
        n_resamples=options.n_resamples,
        seed=options.seed,
    )
    notes = [
        f"{len(trials)} trials by {trials['rater'].nunique()} raters "
        f"(undecided: {options.undecided})"
    ]
    return Scored(scores=scores[PAIRWISE_COLUMNS], raters=None, notes=notes)


def raters_path(out: Path) -> Path:
    """``scores.csv`` → ``scores.raters.csv``: the screening verdict beside the scores."""
    return out.with_name(f"{out.stem}.raters.csv")
