"""Visually lossless thresholds from flicker-test answers (JPEG AIC-2, ISO/IEC 29170-2 Annex B),
with rater-bootstrap intervals, and each codec's bit-rate saving at the threshold.

Input: one row per answer with ``rater``, ``image``, ``codec``, ``bpp`` (the test image's
achieved bits per pixel) and ``correct`` (1 when the rater named the flickering side).

:func:`thresholds` fits, per (image, codec), the bit rate at which 75 % of answers are
correct (:mod:`perceptlab.lib.psychometric`: guess ½, lapse 2 %, one spread shared by the
study, maximum likelihood on a grid) — below it the codec's images are told from the
original, above it they are visually lossless by AIC-2's criterion. The interval is the
percentile interval over raters resampled with replacement (the same draws for every
group, refitting the spread each time). A threshold outside the ladder of rates shown is
only a bound (``censored``: ``above`` or ``below``): the table then gives the ladder's end as
``threshold_bpp`` (the threshold lies beyond it) and no interval.

:func:`savings` compares codecs at their thresholds: per image the ratio of a codec's
threshold rate to the reference codec's, their geometric mean over the images where both
thresholds lie inside the ladders, and the saving 1 − ratio (positive: the codec needs fewer
bits to be visually lossless), with the percentile interval over the same rater draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from perceptlab.lib import psychometric as pm

from .common import ModelId, StatsInputError, require_columns

COLUMNS = ("rater", "image", "codec", "bpp", "correct")
MODEL = ModelId("aic2-flicker-psychometric-grid-mle", "1.0")
DEFAULT_REPLICATES = 500
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Thresholds:
    """Per (image, codec): the threshold in bpp, its interval, the answers behind it."""

    table: pd.DataFrame
    replicates: NDArray[np.float64]  # replicates × groups, log2 bpp (rows of ``table``)
    spread: float  # the shared spread (log2 bpp)
    model: ModelId = MODEL


def thresholds(
    answers: pd.DataFrame,
    *,
    n_replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Thresholds:
    """Each (image, codec)'s visually lossless threshold (the module docstring)."""
    require_columns(answers, COLUMNS, what="flicker answers")
    bpp = answers["bpp"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(bpp) & (bpp > 0)):
        raise StatsInputError("every answer needs the positive bpp of its test image")
    correct = answers["correct"].to_numpy(dtype=np.float64)
    if not np.all((correct == 0) | (correct == 1)):
        raise StatsInputError("correct must be 0 or 1")
    frame = answers.assign(x=np.log2(bpp), correct=correct)
    groups = frame.groupby(["image", "codec"], sort=True)
    keys = [(str(name[0]), str(name[1])) for name, _ in groups]
    group_of = groups.ngroup().to_numpy()
    # each group's ladder: its distinct rates, padded to the longest with n = 0
    levels = [np.unique(g["x"].to_numpy()) for _, g in groups]
    width = max(len(level) for level in levels)
    x = np.array([np.pad(lv, (0, width - len(lv)), mode="edge") for lv in levels])
    level_of = np.array(
        [
            int(np.searchsorted(levels[g], value))
            for g, value in zip(group_of, frame["x"], strict=True)
        ]
    )
    cell = group_of * width + level_of
    raters, rater_of = np.unique(frame["rater"].astype(str).to_numpy(), return_inverse=True)

    def counts(weights: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        w = weights[rater_of]
        size = len(keys) * width
        k = np.bincount(cell, weights=w * correct, minlength=size).reshape(len(keys), width)
        n = np.bincount(cell, weights=w, minlength=size).reshape(len(keys), width)
        return k.astype(np.float64), n.astype(np.float64)

    k, n = counts(np.ones(len(raters)))
    grid = pm.Grid(x)
    point = grid.fit(k, n)
    rng = np.random.default_rng(seed)
    replicates = np.empty((n_replicates, len(keys)))
    for r in range(n_replicates):
        weights = np.bincount(rng.integers(0, len(raters), len(raters)), minlength=len(raters))
        replicates[r] = grid.fit(*counts(weights.astype(np.float64))).threshold
    tail = (1.0 - confidence) / 2.0
    low, high = (
        np.quantile(replicates, [tail, 1.0 - tail], axis=0)
        if n_replicates
        else (
            np.full(len(keys), np.nan),
            np.full(len(keys), np.nan),
        )
    )
    lowest = np.array([lv.min() for lv in levels])
    highest = np.array([lv.max() for lv in levels])
    censored = np.array(point.censored)
    # a censored threshold is reported as the bound it is (the ladder's end), without interval
    bound = np.where(censored == "above", highest, np.where(censored == "below", lowest, np.nan))
    inside = censored == ""
    table = pd.DataFrame(
        {
            "image": [image for image, _ in keys],
            "codec": [codec for _, codec in keys],
            "threshold_bpp": np.exp2(np.where(inside, point.threshold, bound)),
            "ci_low_bpp": np.where(inside, np.exp2(low), np.nan),
            "ci_high_bpp": np.where(inside, np.exp2(high), np.nan),
            "censored": point.censored,
            "lowest_bpp": np.exp2(lowest),
            "highest_bpp": np.exp2(highest),
            "answers": n.sum(axis=1).astype(np.int64),
            "correct_share": k.sum(axis=1) / np.maximum(n.sum(axis=1), 1),
        }
    )
    return Thresholds(table, replicates, point.spread)


def savings(
    fitted: Thresholds, reference: str, *, confidence: float = DEFAULT_CONFIDENCE
) -> pd.DataFrame:
    """Each codec's bit rate at the threshold against ``reference``'s (the module docstring):
    ``ratio`` (geometric mean over shared, uncensored images), ``saving`` = 1 − ratio, their
    interval over the rater draws, and the images counted."""
    table = fitted.table
    if reference not in set(table["codec"]):
        codecs = sorted(set(table["codec"]))
        raise StatsInputError(f"reference codec {reference!r} has no thresholds; codecs: {codecs}")
    rows = []
    tail = (1.0 - confidence) / 2.0
    inside = table["censored"] == ""
    ref = table.loc[(table["codec"] == reference) & inside].set_index("image")
    for codec in sorted(set(table["codec"])):
        mine = table.loc[(table["codec"] == codec) & inside].set_index("image")
        shared = sorted(set(mine.index) & set(ref.index))
        if not shared:
            rows.append(
                {
                    "codec": codec,
                    "images": 0,
                    "ratio": np.nan,
                    "saving": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                }
            )
            continue
        own = table.index[(table["codec"] == codec) & table["image"].isin(shared)]
        theirs = table.index[(table["codec"] == reference) & table["image"].isin(shared)]
        order_own = table.loc[own].sort_values("image").index
        order_ref = table.loc[theirs].sort_values("image").index
        log_ratio = np.log2(mine.loc[shared, "threshold_bpp"].to_numpy()) - np.log2(
            ref.loc[shared, "threshold_bpp"].to_numpy()
        )
        ratio = float(np.exp2(log_ratio.mean()))
        draws = np.exp2(
            (fitted.replicates[:, order_own] - fitted.replicates[:, order_ref]).mean(axis=1)
        )
        low, high = np.quantile(1.0 - draws, [tail, 1.0 - tail]) if len(draws) else (np.nan, np.nan)
        rows.append(
            {
                "codec": codec,
                "images": len(shared),
                "ratio": ratio,
                "saving": 1.0 - ratio,
                "ci_low": float(low),
                "ci_high": float(high),
            }
        )
    return pd.DataFrame(rows)
