"""Mean opinion scores of absolute ratings (ACR, DCR) with three kinds of confidence interval.

For a key k (a stimulus, a condition, …) with ratings x_1…x_n (all raters, repetitions kept):

* MOS_k = mean(x), SD_k = sample standard deviation (ddof = 1);
* normal interval MOS_k ± z·SD_k/√n with z = Φ⁻¹(1 − α/2); at 95 % z = 1.95996 exactly as
  Netflix sureal's ``MosModel`` (so the numbers agree with sureal to the last digit);
* t interval MOS_k ± t_{1−α/2, n−1}·SD_k/√n (ITU-T P.1401 §7.3 recommends t for small n);
* rater (cluster) bootstrap: a resample draws the R raters with replacement, each drawn rater
  bringing all of their ratings, and MOS*_k = Σ_r c_r·S_kr / Σ_r c_r·N_kr (c_r: how often rater r
  was drawn, S_kr, N_kr: sum and number of r's ratings of k). Ratings of one rater are
  correlated, so resampling raters rather than single ratings is the unit that matches how a
  study samples people. Percentile or BCa (jackknife: leave one rater out) intervals, Efron &
  Tibshirani (1993) §13.3, §14.3. Resampled indices are drawn exactly like
  ``scipy.stats.bootstrap`` (raters in sorted order), so a key that every rater rated once
  gets scipy's interval for ``np.mean`` bit for bit.

A key with one rating has SD and every interval NaN; a key rated by fewer than two raters has a
NaN bootstrap interval; a resample that misses every rater of a key gives a NaN replicate, and
the intervals use the remaining replicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import ndtri
from scipy.stats import t as student_t

from .bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    bca_interval,
    percentile_interval,
    rater_resamples,
    resample_counts,
)
from .common import ModelId, StatsInputError
from .ratings_io import check_ratings

BootstrapMethod = Literal["bca", "percentile"]
SUREAL_Z95 = 1.95996  # sureal hard-codes this rounded quantile; used at exactly 95 %
MOS_MODEL = ModelId("MOS", "1.0")
DMOS_ACR_HR_MODEL = ModelId("DMOS-ACR-HR", "1.0")
DMOS_DCR_MODEL = ModelId("DMOS-DCR", "1.0")


@dataclass(frozen=True)
class MosResult:
    """MOS table plus the bootstrap replicates that produced its bootstrap interval.

    ``table`` columns: ``<by>, n, mos, sd, ciLL_normal_low/high, ciLL_t_low/high,
    ciLL_boot_low/high`` with LL = round(100·confidence). ``replicates`` has shape
    ``(len(table), n_resamples)``, rows in table order (NaN where a resample missed the key).
    """

    table: pd.DataFrame
    replicates: NDArray[np.float64]
    bootstrap_method: str
    n_resamples: int
    seed: int
    confidence: float
    model: ModelId


@dataclass(frozen=True)
class RaterSums:
    """Ratings collapsed to per-(key, rater) sums and counts, keys and raters sorted."""

    keys: pd.Index
    raters: pd.Index
    sums: NDArray[np.float64]  # (K, R)
    counts: NDArray[np.float64]  # (K, R)
    sum_sq_dev: NDArray[np.float64]  # (K,) Σ (x − MOS_k)²


def rater_sums(ratings: pd.DataFrame, *, by: str = "stimulus") -> RaterSums:
    """Collapse a checked ratings frame into the (key × rater) sums every MOS statistic needs."""
    key_codes, keys = pd.factorize(ratings[by], sort=True)
    rater_codes, raters = pd.factorize(ratings["rater"], sort=True)
    k, r = len(keys), len(raters)
    score = ratings["score"].to_numpy(dtype=np.float64)
    flat = key_codes * r + rater_codes
    sums = np.bincount(flat, weights=score, minlength=k * r).reshape(k, r).astype(np.float64)
    counts = np.bincount(flat, minlength=k * r).reshape(k, r).astype(np.float64)
    mos = sums.sum(axis=1) / counts.sum(axis=1)
    squares = (score - mos[key_codes]) ** 2
    dev = np.bincount(key_codes, weights=squares, minlength=k).astype(np.float64)
    return RaterSums(pd.Index(keys, name=by), pd.Index(raters), sums, counts, dev)


def mos(
    ratings: pd.DataFrame,
    *,
    by: str = "stimulus",
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    bootstrap: BootstrapMethod = "bca",
) -> MosResult:
    """MOS, SD and normal / t / rater-bootstrap intervals per value of column ``by``.

    ``by="stimulus"`` gives one row per stimulus; any other column (``condition``, ``content``)
    pools every rating that shares its value. See the module docstring for the formulas.
    """
    _check_options(confidence=confidence, n_resamples=n_resamples, bootstrap=bootstrap)
    frame = check_ratings(ratings)
    if by not in frame.columns:
        raise StatsInputError(f"by={by!r} is not a column; columns are {', '.join(frame.columns)}")
    if frame[by].isna().any():
        raise StatsInputError(f"column {by!r} has missing values; every rating needs a {by}")
    data = rater_sums(frame, by=by)
    table = _parametric_table(data, confidence)
    replicates = cluster_replicates(data, n_resamples=n_resamples, seed=seed)
    low, high = _bootstrap_bounds(data, table["mos"].to_numpy(), replicates, confidence, bootstrap)
    level = _level(confidence)
    table[f"ci{level}_boot_low"], table[f"ci{level}_boot_high"] = low, high
    return MosResult(table, replicates, bootstrap, n_resamples, seed, confidence, MOS_MODEL)


def _check_options(*, confidence: float, n_resamples: int, bootstrap: str) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise StatsInputError(f"n_resamples must be at least 1, got {n_resamples}")
    if bootstrap not in ("bca", "percentile"):
        raise StatsInputError(f"bootstrap must be 'bca' or 'percentile', got {bootstrap!r}")


def _level(confidence: float) -> int:
    return round(confidence * 100)


def normal_quantile(confidence: float) -> float:
    """z_{1−α/2}; 1.95996 at 95 % to reproduce sureal's intervals exactly."""
    if confidence == 0.95:
        return SUREAL_Z95
    return float(ndtri(1.0 - (1.0 - confidence) / 2.0))


def _parametric_table(data: RaterSums, confidence: float) -> pd.DataFrame:
    n = data.counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = data.sums.sum(axis=1) / n
        sd = np.sqrt(data.sum_sq_dev / (n - 1))
        sem = sd / np.sqrt(n)
    t_quantile = np.full(n.shape, np.nan)
    several = n > 1
    t_quantile[several] = student_t.ppf(1.0 - (1.0 - confidence) / 2.0, n[several] - 1)
    z = normal_quantile(confidence)
    level = _level(confidence)
    table = pd.DataFrame({data.keys.name: data.keys, "n": n.astype(np.int64), "mos": mean})
    table["sd"] = sd
    table[f"ci{level}_normal_low"], table[f"ci{level}_normal_high"] = mean - z * sem, mean + z * sem
    half_t = t_quantile * sem
    table[f"ci{level}_t_low"], table[f"ci{level}_t_high"] = mean - half_t, mean + half_t
    return table


def cluster_replicates(data: RaterSums, *, n_resamples: int, seed: int) -> NDArray[np.float64]:
    """Bootstrap MOS of every key, shape (K, n_resamples): raters resampled, two matrix products.

    The resample indices come from ``rater_resamples`` with ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    counts = resample_counts(rater_resamples(len(data.raters), n_resamples, rng), len(data.raters))
    with np.errstate(divide="ignore", invalid="ignore"):
        replicates = (counts @ data.sums.T) / (counts @ data.counts.T)
    return np.ascontiguousarray(replicates.T)


def jackknife(data: RaterSums) -> NDArray[np.float64]:
    """Leave-one-rater-out MOS, shape (K, R); NaN where the left-out rater was the only one."""
    total_sum = data.sums.sum(axis=1, keepdims=True)
    total_n = data.counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (total_sum - data.sums) / (total_n - data.counts)


def _bootstrap_bounds(
    data: RaterSums,
    estimate: NDArray[np.float64],
    replicates: NDArray[np.float64],
    confidence: float,
    method: BootstrapMethod,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    low, high = np.full(len(estimate), np.nan), np.full(len(estimate), np.nan)
    finite = np.isfinite(replicates)
    usable = ((data.counts > 0).sum(axis=1) >= 2) & finite.any(axis=1)
    if method == "percentile":
        if usable.any():
            low[usable], high[usable] = percentile_interval(replicates[usable], confidence)
        return low, high
    jack = jackknife(data)
    whole = usable & finite.all(axis=1)
    if whole.any():
        low[whole], high[whole] = bca_interval(
            replicates[whole], estimate[whole], jack[whole], confidence
        )
    for i in np.flatnonzero(usable & ~whole):  # rare: some resamples missed the key
        row = replicates[i, finite[i]][None, :]
        lo, hi = bca_interval(row, estimate[i : i + 1], jack[i : i + 1], confidence)
        low[i], high[i] = lo[0], hi[0]
    return low, high


def dmos_acr_hr(
    ratings: pd.DataFrame,
    *,
    reference_of: Mapping[str, str],
    scale_max: float,
    crush: bool = False,
    by: str = "stimulus",
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    bootstrap: BootstrapMethod = "bca",
) -> MosResult:
    """DMOS of an ACR test with hidden reference (ITU-T P.910 (04/2008) §6.2, ACR-HR).

    Per rater and processed stimulus (PVS): DV = V(PVS) − V(REF) + scale_max, where V(REF) is
    that rater's rating of the PVS's hidden reference (mean over repetitions). P.910 keeps
    DV > scale_max as valid; ``crush=True`` applies its optional crushing function
    crush(DV) = 7·DV / (2 + DV) for DV > 5 (defined for the 5-grade scale only). DMOS and its
    intervals are then :func:`mos` of the DVs. ``reference_of`` maps each PVS to its reference
    stimulus; references themselves are not reported; a rating whose rater did not rate the
    reference has no DV and is dropped.
    """
    frame = check_ratings(ratings)
    if crush and scale_max != 5:
        raise StatsInputError(f"crush is defined for scale_max=5 (P.910), got {scale_max}")
    dv = _differential_scores(frame, reference_of, scale_max)
    if crush:
        dv["score"] = np.where(dv["score"] > 5, 7 * dv["score"] / (2 + dv["score"]), dv["score"])
    result = mos(
        dv, by=by, confidence=confidence, n_resamples=n_resamples, seed=seed, bootstrap=bootstrap
    )
    return replace(result, model=DMOS_ACR_HR_MODEL)


def _differential_scores(
    frame: pd.DataFrame, reference_of: Mapping[str, str], scale_max: float
) -> pd.DataFrame:
    # A reference is needed only for the processed stimuli that were rated: a study under
    # way (or a design that leaves an image out) has images with no ratings at all, and a
    # PVS whose reference nobody rated yet has no DV, like a rater's PVS without theirs.
    references = {str(r) for r in reference_of.values()}
    pvs = frame[~frame["stimulus"].isin(references)]
    orphans = sorted(set(pvs["stimulus"]) - set(reference_of))
    if orphans:
        raise StatsInputError(f"stimulus {', '.join(orphans[:5])} has no entry in reference_of")
    v_ref = (
        frame[frame["stimulus"].isin(references)]
        .groupby(["rater", "stimulus"], sort=False)["score"]
        .mean()
        .rename("v_ref")
    )
    keyed = pvs.assign(reference=pvs["stimulus"].map(lambda s: str(reference_of[s])))
    merged = keyed.join(v_ref, on=["rater", "reference"], how="inner")
    if merged.empty:
        raise StatsInputError("no rater rated both a stimulus and its reference")
    merged["score"] = merged["score"] - merged["v_ref"] + scale_max
    return merged.drop(columns=["v_ref"]).reset_index(drop=True)


def dmos_dcr(
    ratings: pd.DataFrame,
    *,
    by: str = "stimulus",
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    bootstrap: BootstrapMethod = "bca",
) -> MosResult:
    """DMOS of a degradation category rating test (ITU-T P.910 §6.3, P.913 §7.3).

    DCR ratings already score the impairment relative to the shown reference (5 =
    imperceptible … 1 = very annoying), so DMOS is the MOS of the ratings, with the same
    intervals as :func:`mos`; only the model name differs.
    """
    result = mos(
        ratings,
        by=by,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        bootstrap=bootstrap,
    )
    return replace(result, model=DMOS_DCR_MODEL)
