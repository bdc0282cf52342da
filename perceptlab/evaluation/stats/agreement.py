"""Agreement between an objective metric and human judgments.

Absolute ratings (VQEG, "Final report from the Video Quality Experts Group on the validation of
objective models of video quality assessment, Phase II", 2003; ITU-T P.1401 (07/2012) §7):

* SROCC = Spearman rank correlation, KROCC = Kendall τ-b (ties corrected), both on the raw
  metric values (invariant to any strictly monotone transform of the metric).
* The metric is mapped to the MOS scale with the 4-parameter logistic
  MOS_p = (b1 − b2) / (1 + exp(−(x − b3) / |b4|)) + b2, fitted by least squares
  (Levenberg–Marquardt, ``scipy.optimize.curve_fit``). PLCC = Pearson(MOS_p, MOS) and
  RMSE = sqrt(Σ (MOS − MOS_p)² / (N − d)) with d = 4 fitted parameters (P.1401 §7).
  ``plcc_raw`` is Pearson on the raw metric (no fit).
* Direction: with |b4| in the exponent the sign of the slope is carried by b1 − b2 alone
  (b1 > b2 rising, b1 < b2 falling), so a lower-is-better metric (LPIPS, DISTS) is fitted as a
  falling curve with no sign flip of the data. The start values follow the sign of the SROCC:
  b1 = MOS at the high-metric end (max MOS if SROCC ≥ 0, else min MOS), b2 = the other extreme,
  b3 = median x, b4 = SD of x (ddof 1).

Pairwise (2AFC) accuracy: the share of decided human trials in which the metric prefers the item
the rater preferred; metric ties count one half (as in the BAPPS/LPIPS 2AFC score, Zhang et al.,
CVPR 2018). Undecided trials (outcome 0.5) are excluded. The interval is the Wilson score
interval (Wilson 1927) for a binomial proportion; it treats trials as independent, so it is
optimistic when one rater contributes many trials.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

from .common import ModelId, StatsInputError, require_columns

FloatArray = NDArray[np.float64]

MIN_POINTS = 4
FIT_PARAMETERS = 4
MAX_EVALUATIONS = 10_000
RESTARTS = 50  # Levenberg–Marquardt restarts from its own stop (see fit_logistic4)
DEFAULT_CONFIDENCE = 0.95
AGREEMENT_MODEL = ModelId("VQEG logistic-4 agreement", "1")
TWOAFC_MODEL = ModelId("2AFC accuracy (Wilson CI)", "1")


@dataclass(frozen=True)
class AgreementResult:
    """Correlation and accuracy of one metric against MOS (see the module docstring).

    ``n``: stimuli used; ``n_missing``: stimuli dropped because the metric was NaN.
    ``params``: (b1, b2, b3, b4) of the logistic; ``reason``: why values are NaN, else None.
    """

    n: int
    n_missing: int
    srocc: float
    krocc: float
    plcc: float
    rmse: float
    plcc_raw: float
    params: tuple[float, float, float, float]
    fit_converged: bool
    reason: str | None
    model: ModelId


@dataclass(frozen=True)
class AccuracyResult:
    """2AFC accuracy: ``accuracy`` = ``agreements`` / ``n`` over ``n`` decided trials.

    ``agreements`` counts a metric tie as 0.5; ``n_undecided`` trials were left out.
    """

    accuracy: float
    agreements: float
    n: int
    n_undecided: int
    ci_low: float
    ci_high: float
    confidence: float
    model: ModelId


def logistic4(x: ArrayLike, b1: float, b2: float, b3: float, b4: float) -> FloatArray:
    """(b1 − b2) / (1 + exp(−(x − b3) / |b4|)) + b2, evaluated without overflow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(x, dtype=np.float64) - b3) / abs(b4)
    return np.asarray((b1 - b2) * expit(z) + b2, dtype=np.float64)


def logistic4_start(objective: ArrayLike, mos: ArrayLike) -> FloatArray:
    """Start values (b1, b2, b3, b4) of the fit, oriented by the sign of the SROCC."""
    x = np.asarray(objective, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    rising = stats.spearmanr(x, y).statistic >= 0
    high, low = (y.max(), y.min()) if rising else (y.min(), y.max())
    return np.array([high, low, np.median(x), np.std(x, ddof=1)])


def fit_logistic4(objective: ArrayLike, mos: ArrayLike) -> tuple[FloatArray, bool]:
    """Least-squares fit of :func:`logistic4`; returns (params, converged).

    If Levenberg–Marquardt does not converge in ``MAX_EVALUATIONS`` evaluations, or yields
    non-finite parameters, the start values are returned with ``converged=False``.
    """
    x = np.asarray(objective, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    start = logistic4_start(x, y)
    try:
        params = _least_squares(x, y, start)
        # A weakly identified fit (MOS saturating at one end only) slides along a ridge
        # where Levenberg–Marquardt stops while the sum of squares still falls, at a place
        # that depends on the SciPy release; restarting from where it stopped continues
        # down the ridge until a restart no longer helps.
        error = _sse(x, y, params)
        for _ in range(RESTARTS):
            again = _least_squares(x, y, params)
            better = _sse(x, y, again)
            if not np.isfinite(again).all() or better >= error * (1 - 1e-9):
                break
            params, error = again, better
    except RuntimeError:
        return start, False
    if not np.isfinite(params).all():
        return start, False
    # Only |b4| enters the model; report it so equivalent fits print the same parameters.
    return np.array([params[0], params[1], params[2], abs(params[3])]), True


def _least_squares(x: FloatArray, y: FloatArray, start: FloatArray) -> FloatArray:
    with warnings.catch_warnings():
        # The covariance is not used; a singular Jacobian only means it is not estimable.
        warnings.simplefilter("ignore", OptimizeWarning)
        params, _ = curve_fit(logistic4, x, y, p0=start, maxfev=MAX_EVALUATIONS)
    return np.asarray(params, dtype=np.float64)


def _sse(x: FloatArray, y: FloatArray, params: FloatArray) -> float:
    return float(np.sum((y - logistic4(x, *params)) ** 2))


def _nan_agreement(n: int, n_missing: int, reason: str) -> AgreementResult:
    nan = float("nan")
    return AgreementResult(
        n=n,
        n_missing=n_missing,
        srocc=nan,
        krocc=nan,
        plcc=nan,
        rmse=nan,
        plcc_raw=nan,
        params=(nan, nan, nan, nan),
        fit_converged=False,
        reason=reason,
        model=AGREEMENT_MODEL,
    )


def _paired(objective: ArrayLike, mos: ArrayLike) -> tuple[FloatArray, FloatArray, int]:
    """(metric, MOS, number dropped) with stimuli whose metric is NaN removed."""
    x = np.asarray(objective, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise StatsInputError(
            f"objective and mos must be 1-D of equal length, got shapes {x.shape}, {y.shape}"
        )
    if not np.isfinite(y).all():
        raise StatsInputError(
            f"mos has NaN or infinite values at {np.flatnonzero(~np.isfinite(y))}"
        )
    if np.isinf(x).any():
        raise StatsInputError(f"objective has infinite values at {np.flatnonzero(np.isinf(x))}")
    keep = ~np.isnan(x)
    return x[keep], y[keep], int((~keep).sum())


def agreement(objective: pd.Series | ArrayLike, mos: ArrayLike) -> AgreementResult:
    """SROCC, KROCC, PLCC and RMSE after the logistic fit, and raw PLCC, of a metric vs MOS.

    NaN metric values (metric unavailable for that stimulus) are dropped and counted in
    ``n_missing``. Fewer than 4 usable stimuli, or a constant metric or MOS, give NaN values
    and a ``reason`` instead of an exception.
    """
    x, y, n_missing = _paired(objective, mos)
    if x.size < MIN_POINTS:
        reason = f"{x.size} stimuli with a metric value; need at least {MIN_POINTS}"
        return _nan_agreement(x.size, n_missing, reason)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        which = "metric" if np.ptp(x) == 0 else "MOS"
        return _nan_agreement(x.size, n_missing, f"the {which} is constant over all stimuli")
    params, converged = fit_logistic4(x, y)
    predicted = logistic4(x, *params)
    residual = y - predicted
    return AgreementResult(
        n=int(x.size),
        n_missing=n_missing,
        srocc=float(stats.spearmanr(x, y).statistic),
        krocc=float(stats.kendalltau(x, y, variant="b").statistic),
        plcc=_pearson(predicted, y),
        rmse=float(np.sqrt(np.sum(residual**2) / max(x.size - FIT_PARAMETERS, 1))),
        plcc_raw=_pearson(x, y),
        params=(float(params[0]), float(params[1]), float(params[2]), float(params[3])),
        fit_converged=converged,
        reason=None if converged else "the logistic fit did not converge; start values used",
        model=AGREEMENT_MODEL,
    )


def _pearson(a: FloatArray, b: FloatArray) -> float:
    """Pearson r, NaN when either side is constant (e.g. a logistic fitted flat)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b).statistic)


AGREEMENT_COLUMNS = [
    "metric",
    "n",
    "n_missing",
    "srocc",
    "krocc",
    "plcc",
    "rmse",
    "plcc_raw",
    "fit_converged",
    "reason",
]


def agreement_table(
    frame: pd.DataFrame, *, metrics: Sequence[str], mos: str = "mos"
) -> pd.DataFrame:
    """:func:`agreement` of each metric column against ``mos``, one row per metric.

    Columns: metric, n, n_missing, srocc, krocc, plcc, rmse, plcc_raw, fit_converged, reason.
    NaN metric values are dropped per metric. ``frame.attrs["model"]`` holds the ModelId.
    """
    require_columns(frame, [mos, *metrics], what="metric/MOS frame")
    rows = []
    for metric in metrics:
        r = agreement(frame[metric].to_numpy(dtype=np.float64), frame[mos].to_numpy(np.float64))
        rows.append(
            [
                metric,
                r.n,
                r.n_missing,
                r.srocc,
                r.krocc,
                r.plcc,
                r.rmse,
                r.plcc_raw,
                r.fit_converged,
                r.reason,
            ]
        )
    table = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    table.attrs["model"] = AGREEMENT_MODEL
    return table


def wilson_interval(
    successes: float, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction).

    centre = (p + z²/2n) / (1 + z²/n), half-width = z·sqrt(p(1 − p)/n + z²/4n²) / (1 + z²/n),
    z = Φ⁻¹((1 + confidence)/2). ``successes`` may be fractional (ties counted as 0.5).
    """
    if n < 1:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


TRIAL_COLUMNS = ("rater", "a", "b", "outcome")
OUTCOMES = (0.0, 0.5, 1.0)


def _check_trials(trials: pd.DataFrame) -> None:
    require_columns(trials, TRIAL_COLUMNS, what="2AFC trials")
    bad = ~trials["outcome"].isin(OUTCOMES)
    if bad.any():
        raise StatsInputError(
            f"outcome must be one of {OUTCOMES} (1 = a preferred, 0 = b, 0.5 = undecided); "
            f"got {sorted(set(trials.loc[bad, 'outcome'].tolist()))[:5]}"
        )


def _metric_lookup(
    metric_values: Mapping[str, float] | pd.Series, items: pd.Series
) -> NDArray[np.float64]:
    values = pd.Series(metric_values, dtype=np.float64)
    missing = sorted(set(items) - set(values.dropna().index))
    if missing:
        raise StatsInputError(
            f"no metric value for item(s) {', '.join(map(str, missing[:10]))}; "
            f"values given for {', '.join(map(str, values.dropna().index[:10]))}"
        )
    return values.reindex(items).to_numpy(dtype=np.float64)


def twoafc_accuracy(
    trials: pd.DataFrame,
    metric_values: Mapping[str, float] | pd.Series,
    *,
    higher_is_better: bool,
    confidence: float = DEFAULT_CONFIDENCE,
) -> AccuracyResult:
    """Share of decided 2AFC trials where the metric prefers the item the rater preferred.

    ``trials``: columns rater, a, b, outcome (1.0 = a preferred, 0.0 = b, 0.5 = undecided).
    ``metric_values``: one value per item (``a``/``b`` names); a tie scores 0.5.
    """
    _check_trials(trials)
    decided = trials[trials["outcome"] != 0.5]
    va = _metric_lookup(metric_values, decided["a"])
    vb = _metric_lookup(metric_values, decided["b"])
    metric_prefers_a = np.sign(va - vb) * (1.0 if higher_is_better else -1.0)
    human_prefers_a = np.where(decided["outcome"].to_numpy() == 1.0, 1.0, -1.0)
    # +1 agree, −1 disagree, 0 metric tie → 1, 0, 0.5
    agreements = float(np.sum((1.0 + metric_prefers_a * human_prefers_a) / 2.0))
    n = len(decided)
    low, high = wilson_interval(agreements, n, confidence)
    return AccuracyResult(
        accuracy=agreements / n if n else float("nan"),
        agreements=agreements,
        n=n,
        n_undecided=len(trials) - n,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        model=TWOAFC_MODEL,
    )


TWOAFC_COLUMNS = ["metric", "accuracy", "n", "n_undecided", "ci_low", "ci_high"]


def twoafc_table(
    trials: pd.DataFrame,
    metric_values: pd.DataFrame,
    *,
    higher_is_better: Mapping[str, bool],
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """:func:`twoafc_accuracy` for each column of ``metric_values`` (index = item names).

    ``higher_is_better`` gives the direction of every metric column. Columns of the result:
    metric, accuracy, n, n_undecided, ci_low, ci_high; ``attrs["model"]`` holds the ModelId.
    """
    unknown = [m for m in metric_values.columns if m not in higher_is_better]
    if unknown:
        raise StatsInputError(
            f"higher_is_better has no entry for metric(s) {', '.join(map(str, unknown))}"
        )
    rows = []
    for metric in metric_values.columns:
        r = twoafc_accuracy(
            trials,
            metric_values[metric],
            higher_is_better=higher_is_better[metric],
            confidence=confidence,
        )
        rows.append([metric, r.accuracy, r.n, r.n_undecided, r.ci_low, r.ci_high])
    table = pd.DataFrame(rows, columns=TWOAFC_COLUMNS)
    table.attrs["model"] = TWOAFC_MODEL
    return table
