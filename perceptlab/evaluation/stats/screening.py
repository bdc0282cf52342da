"""Rater screening for absolute-rating tests: BT.500 kurtosis and correlation tests, P.913.

Each screening comes in two variants:

* ``"sureal"`` reproduces Netflix sureal 0.9.0 (``BT500Model``, ``P913124Model``) and its
  ``SubjrejMosModelPearson`` (GitHub HEAD) decision for decision, quirks included;
* ``"corrected"`` fixes what those quirks get wrong for partial designs and unanimous stimuli;
  each function's docstring lists the differences.

The result's ``kept`` frame holds the ratings of the raters that were not rejected, ready for
:func:`perceptlab.evaluation.stats.mos.mos`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .common import ModelId, StatsInputError
from .ratings_io import check_ratings

Variant = Literal["sureal", "corrected"]
VERSION = "1.0"
REJECT_SHARE = 0.05  # BT.500: more than 5 % of the ratings outside the band …
REJECT_BALANCE = 0.3  # … and not mostly on one side
PCC_CEILING = 0.7


@dataclass(frozen=True)
class ScreeningResult:
    """Per-rater statistics and decisions (``table``) and the kept ratings (``kept``)."""

    table: pd.DataFrame
    kept: pd.DataFrame
    model: ModelId
    variant: str

    def rejected(self) -> list[str]:
        """Names of the rejected raters, sorted."""
        return sorted(self.table.loc[self.table["rejected"], "rater"])


def _check_variant(variant: str) -> None:
    if variant not in ("sureal", "corrected"):
        raise StatsInputError(f"variant must be 'sureal' or 'corrected', got {variant!r}")


def bt500_screening(ratings: pd.DataFrame, *, variant: Variant = "corrected") -> ScreeningResult:
    """ITU-R BT.500-14 Annex 1 §2.3.1 kurtosis screening (single pass).

    Per stimulus e: mean μ_e, standard deviation σ_e and kurtosis β₂ = m₄/m₂² (central moments
    with divisor n). The band is μ_e ± c·σ_e with c = 2 if 2 ≤ β₂ ≤ 4 (near-normal), else √20.
    Per rater: P = ratings ≥ μ_e + c·σ_e, Q = ratings ≤ μ_e − c·σ_e. Reject the rater when
    (P + Q)/D > 0.05 and |P − Q|/(P + Q) < 0.3. If every rater would be rejected, none is.

    ``variant="sureal"``: σ_e with ddof 0; D = E·R (all stimuli of the test × maximum
    repetitions); a unanimous stimulus (σ_e = 0) counts every rating as both P and Q.
    ``variant="corrected"``: σ_e with ddof 1 (the n − 1 of BT.500's standard deviation);
    unanimous stimuli are skipped (no rating there can be an outlier); D = the rater's own number
    of ratings on the remaining stimuli, so raters who saw part of a partial design are judged
    on what they rated.
    """
    _check_variant(variant)
    frame = check_ratings(ratings)
    table = _kurtosis_table(frame, variant=variant)
    return _result(frame, table, ModelId(f"BT500-{variant}", VERSION), variant)


def p913_screening(ratings: pd.DataFrame, *, variant: Variant = "corrected") -> ScreeningResult:
    """ITU-T P.913 §12.4 screening: remove each rater's bias, then BT.500 kurtosis screening.

    bias_s = mean over rater s's ratings of (x − MOS_e), MOS over all raters; x' = x − bias_s;
    then :func:`bt500_screening` of the same ``variant`` on x'. ``kept`` holds the de-biased
    scores in ``score`` (their MOS is sureal's ``P913124Model`` result) and the original
    ratings in ``raw_score``; ``table`` adds ``bias``.
    """
    _check_variant(variant)
    frame = check_ratings(ratings)
    stimulus_mos = frame.groupby("stimulus")["score"].transform("mean")
    bias = (frame["score"] - stimulus_mos).groupby(frame["rater"]).mean()
    debiased = frame.assign(
        raw_score=frame["score"], score=frame["score"] - frame["rater"].map(bias)
    )
    table = _kurtosis_table(debiased, variant=variant)
    table.insert(1, "bias", table["rater"].map(bias).to_numpy())
    return _result(debiased, table, ModelId(f"P913-{variant}", VERSION), variant)


def screen(
    ratings: pd.DataFrame, *, method: str, variant: Variant = "corrected"
) -> ScreeningResult:
    """Run the screening named ``method`` (``bt500`` or ``p913``)."""
    screenings = {"bt500": bt500_screening, "p913": p913_screening}
    if method not in screenings:
        raise StatsInputError(f"unknown screening {method!r}; valid: {', '.join(screenings)}")
    return screenings[method](ratings, variant=variant)


def _kurtosis_table(frame: pd.DataFrame, *, variant: Variant) -> pd.DataFrame:
    x = frame["score"].to_numpy(dtype=np.float64)
    stimulus = frame["stimulus"]
    mu = frame.groupby("stimulus")["score"].transform("mean").to_numpy()
    dev = x - mu
    n = stimulus.map(stimulus.value_counts()).to_numpy(dtype=np.float64)
    m2 = pd.Series(dev**2).groupby(stimulus.to_numpy()).transform("mean").to_numpy()
    m4 = pd.Series(dev**4).groupby(stimulus.to_numpy()).transform("mean").to_numpy()
    ddof = 0 if variant == "sureal" else 1
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(m2 * n / (n - ddof))
        beta2 = m4 / m2**2
    c = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, np.sqrt(20.0))
    p = x >= mu + c * sigma
    q = x <= mu - c * sigma
    counted = np.ones_like(x, dtype=bool) if variant == "sureal" else m2 > 0
    per_rater = pd.DataFrame(
        {"rater": frame["rater"], "n_ratings": counted, "p": p & counted, "q": q & counted}
    )
    table = per_rater.groupby("rater", sort=True).sum().astype(np.int64).reset_index()
    denominator = table["n_ratings"].to_numpy(dtype=np.float64)
    if variant == "sureal":
        repetitions = frame.groupby(["rater", "stimulus"]).size().max()
        denominator = np.full(len(table), float(frame["stimulus"].nunique() * repetitions))
    return _decide(table, denominator)


def _decide(table: pd.DataFrame, denominator: np.ndarray) -> pd.DataFrame:
    p, q = table["p"].to_numpy(np.float64), table["q"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["stat1"] = (p + q) / denominator
        table["stat2"] = np.abs(p - q) / (p + q)
    rejected = (table["stat1"] > REJECT_SHARE) & (table["stat2"] < REJECT_BALANCE)
    table["rejected"] = rejected & (not rejected.all())  # rejecting everybody leaves no test
    return table


def bt500_pcc_screening(
    ratings: pd.DataFrame, *, variant: Variant = "corrected"
) -> ScreeningResult:
    """ITU-R BT.500-14 Annex 1 §2.3.2 correlation screening (single pass).

    r_s = Pearson correlation, over the stimuli rater s rated, between s's score (mean over
    repetitions) and the MOS; T = min(0.7, mean(r) − SD(r)) with SD ddof 0; reject r_s ≤ T.

    ``variant="sureal"``: the MOS includes rater s (mean of per-rater means), as sureal's
    ``SubjrejMosModelPearson``; a NaN r_s (constant or single rating) makes T NaN and nobody is
    rejected. ``variant="corrected"``: the MOS leaves rater s out (a rater is not compared with
    an average that contains them, which favours raters in small designs); raters with NaN r_s
    are kept and ignored in T; if every rater would be rejected, none is.
    """
    _check_variant(variant)
    frame = check_ratings(ratings)
    matrix = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="mean")
    scores = matrix.to_numpy(dtype=np.float64)
    reference = _pcc_reference(scores, leave_out=variant == "corrected")
    r = _masked_pearson(scores, reference)
    table = pd.DataFrame({"rater": matrix.columns.astype(str), "pcc": r})
    table["n_ratings"] = np.isfinite(scores).sum(axis=0)
    if variant == "sureal":
        threshold = min(PCC_CEILING, float(np.mean(r) - np.std(r)))
        table["rejected"] = r <= threshold
    else:
        threshold = min(PCC_CEILING, float(np.nanmean(r) - np.nanstd(r)))
        rejected = pd.Series(r <= threshold)
        table["rejected"] = (rejected & (not rejected.all())).to_numpy()
    table["threshold"] = threshold
    return _result(frame, table, ModelId(f"BT500-PCC-{variant}", VERSION), variant)


def _pcc_reference(scores: np.ndarray, *, leave_out: bool) -> np.ndarray:
    """MOS per stimulus broadcast to (E, S): the plain MOS or the MOS without column s."""
    present = np.isfinite(scores)
    total = np.where(present, scores, 0.0).sum(axis=1, keepdims=True)
    count = present.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not leave_out:
            return np.broadcast_to(total / count, scores.shape)
        own = np.where(present, scores, 0.0)
        return (total - own) / (count - present)


def _masked_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Column-wise Pearson r of x and y over rows where both are finite (NaN if undefined)."""
    mask = np.isfinite(x) & np.isfinite(y)
    n = mask.sum(axis=0)
    xs, ys = np.where(mask, x, 0.0), np.where(mask, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = np.where(mask, xs - xs.sum(axis=0) / n, 0.0)
        yc = np.where(mask, ys - ys.sum(axis=0) / n, 0.0)
        return (xc * yc).sum(axis=0) / np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))


def _result(
    frame: pd.DataFrame, table: pd.DataFrame, model: ModelId, variant: str
) -> ScreeningResult:
    rejected = set(table.loc[table["rejected"], "rater"])
    kept = frame[~frame["rater"].isin(rejected)].reset_index(drop=True)
    return ScreeningResult(table.reset_index(drop=True), kept, model, variant)
