"""Metric–human agreement against scipy on real MOS (NFLX) and real 2AFC judgments (HiFiC)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.optimize import curve_fit
from support import data

from perceptlab.evaluation.stats import agreement as agreement_module
from perceptlab.evaluation.stats.agreement import (
    agreement,
    agreement_table,
    fit_logistic4,
    logistic4,
    twoafc_accuracy,
    twoafc_table,
    wilson_interval,
)
from perceptlab.evaluation.stats.common import StatsInputError


@pytest.fixture(scope="module")
def nflx() -> pd.DataFrame:
    """MOS per stimulus with the encode's log bitrate and log height as objective predictors.

    The condition is ``<?>_<height>_<kbps>``; references (``ref``) have neither, so the
    predictors are NaN there (9 of 79 stimuli) — a metric unavailable for some stimuli.
    """
    ratings = pd.read_csv(data("sureal", "NFLX_dataset_public_raw.csv"))
    mos = ratings.groupby(["stimulus", "condition"], as_index=False)["score"].mean()
    kbps = pd.to_numeric(mos["condition"].str.split("_").str[-1], errors="coerce")
    height = pd.to_numeric(mos["condition"].str.split("_").str[1], errors="coerce")
    return pd.DataFrame(
        {
            "stimulus": mos["stimulus"],
            "mos": mos["score"],
            "log_kbps": np.log(kbps),
            "neg_log_kbps": -np.log(kbps),
            "log_height": np.log(height),
        }
    )


def usable(frame: pd.DataFrame, metric: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rows = frame[frame[metric].notna()]
    return rows[metric].to_numpy(), rows["mos"].to_numpy()


def vqeg_logistic(x: NDArray[np.float64], b1: float, b2: float, b3: float, b4: float) -> NDArray:
    return (b1 - b2) / (1 + np.exp(-(x - b3) / abs(b4))) + b2


def test_rank_and_raw_correlations_equal_scipy_on_nflx(nflx: pd.DataFrame) -> None:
    result = agreement(nflx["log_kbps"], nflx["mos"])
    x, y = usable(nflx, "log_kbps")
    assert (result.n, result.n_missing) == (70, 9)
    assert result.srocc == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert result.krocc == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)
    assert result.plcc_raw == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert result.srocc == pytest.approx(0.779182, abs=1e-6)
    assert result.model.name == "VQEG logistic-4 agreement"


def test_the_logistic_fit_equals_curve_fit_from_the_vqeg_start(nflx: pd.DataFrame) -> None:
    x, y = usable(nflx, "log_height")
    start = [y.max(), y.min(), np.median(x), np.std(x, ddof=1)]
    expected, _ = curve_fit(vqeg_logistic, x, y, p0=start, maxfev=10_000)
    result = agreement(nflx["log_height"], nflx["mos"])
    predicted = logistic4(x, *result.params)
    assert result.fit_converged
    assert result.params == pytest.approx((*expected[:3], abs(expected[3])), rel=1e-4)
    np.testing.assert_allclose(predicted, vqeg_logistic(x, *expected), atol=1e-6)
    assert result.plcc == pytest.approx(stats.pearsonr(predicted, y).statistic, abs=1e-12)
    assert result.rmse == pytest.approx(np.sqrt(np.sum((y - predicted) ** 2) / (70 - 4)), abs=1e-12)


def test_a_weakly_identified_fit_still_gives_curve_fits_curve(nflx: pd.DataFrame) -> None:
    # MOS saturates only at the top of the log-bitrate range: the lower asymptote lies far
    # below the data, b2/b3 slide along a ridge, and only the curve over the data is defined.
    x, y = usable(nflx, "log_kbps")
    start = [y.max(), y.min(), np.median(x), np.std(x, ddof=1)]
    expected, _ = curve_fit(vqeg_logistic, x, y, p0=start, maxfev=10_000)
    params, converged = fit_logistic4(x, y)
    np.testing.assert_allclose(logistic4(x, *params), vqeg_logistic(x, *expected), atol=1e-4)
    assert converged


def test_the_logistic_fit_is_at_least_as_good_as_curve_fit_from_other_starts(
    nflx: pd.DataFrame,
) -> None:
    x, y = usable(nflx, "log_kbps")
    params, converged = fit_logistic4(x, y)
    ours = np.sum((y - logistic4(x, *params)) ** 2)
    for start in ([5, 1, 7, 1], [4.5, 1.5, np.mean(x), 0.3], [4.9, 0, 6, 2]):
        other, _ = curve_fit(vqeg_logistic, x, y, p0=start, maxfev=10_000)
        assert ours <= np.sum((y - vqeg_logistic(x, *other)) ** 2) * (1 + 1e-5)
    assert converged


def test_a_lower_is_better_metric_is_fitted_as_a_falling_curve(nflx: pd.DataFrame) -> None:
    rising = agreement(nflx["log_kbps"], nflx["mos"])
    falling = agreement(nflx["neg_log_kbps"], nflx["mos"])
    assert falling.srocc == pytest.approx(-rising.srocc, abs=1e-12)
    assert falling.krocc == pytest.approx(-rising.krocc, abs=1e-12)
    assert falling.plcc == pytest.approx(rising.plcc, abs=1e-5)
    assert falling.rmse == pytest.approx(rising.rmse, abs=1e-5)
    b1, b2, _, b4 = falling.params
    assert b1 < b2 and b4 > 0


TRANSFORMS: list[Callable[[pd.Series], pd.Series]] = [
    np.exp,
    lambda v: 3.0 * v - 7.0,
    lambda v: v**3,
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=["exp", "affine", "cube"])
def test_rank_correlations_are_invariant_to_monotone_transforms(
    nflx: pd.DataFrame, transform: Callable[[pd.Series], pd.Series]
) -> None:
    base = agreement(nflx["log_kbps"], nflx["mos"])
    moved = agreement(transform(nflx["log_kbps"]), nflx["mos"])
    assert (moved.srocc, moved.krocc) == pytest.approx((base.srocc, base.krocc), abs=1e-12)


def test_a_perfect_predictor_gives_plcc_one_and_rmse_zero(nflx: pd.DataFrame) -> None:
    x, _ = usable(nflx, "log_kbps")
    truth = (4.8, 1.2, 7.4, 0.6)
    result = agreement(x, logistic4(x, *truth))
    assert result.plcc == pytest.approx(1.0, abs=1e-12)
    assert result.rmse == pytest.approx(0.0, abs=1e-7)
    assert result.params == pytest.approx(truth, abs=1e-5)
    assert result.srocc == 1.0 and result.krocc == 1.0


def test_a_fit_that_runs_out_of_evaluations_is_flagged(
    nflx: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agreement_module, "MAX_EVALUATIONS", 1)
    result = agreement(nflx["log_kbps"], nflx["mos"])
    x, y = usable(nflx, "log_kbps")
    assert not result.fit_converged
    assert result.params == pytest.approx((y.max(), y.min(), np.median(x), np.std(x, ddof=1)))
    assert result.reason is not None and "did not converge" in result.reason


def test_the_table_drops_missing_values_per_metric_and_flags_short_metrics(
    nflx: pd.DataFrame,
) -> None:
    frame = nflx.assign(sparse=np.where(np.arange(len(nflx)) < 3, 1.0, np.nan), flat=2.0)
    table = agreement_table(frame, metrics=["log_kbps", "neg_log_kbps", "sparse", "flat"])
    rows = table.set_index("metric")
    srocc, plcc = rows["srocc"].to_dict(), rows["plcc"].to_dict()
    reason = rows["reason"].to_dict()
    assert srocc["log_kbps"] == pytest.approx(
        agreement(nflx["log_kbps"], nflx["mos"]).srocc, abs=1e-12
    )
    assert rows["n"].tolist() == [70, 70, 3, 79]
    assert rows["n_missing"].tolist() == [9, 9, 76, 0]
    assert np.isnan(srocc["sparse"]) and "need at least 4" in str(reason["sparse"])
    assert np.isnan(plcc["flat"]) and "metric is constant" in str(reason["flat"])
    assert pd.isna(reason["log_kbps"])
    assert list(table.columns[:8]) == [
        "metric",
        "n",
        "n_missing",
        "srocc",
        "krocc",
        "plcc",
        "rmse",
        "plcc_raw",
    ]
    assert table.attrs["model"].name == "VQEG logistic-4 agreement"


def test_the_table_names_a_missing_metric_column(nflx: pd.DataFrame) -> None:
    with pytest.raises(StatsInputError, match="missing column"):
        agreement_table(nflx, metrics=["lpips"])


# --- 2AFC accuracy on the HiFiC user study (Mentzer et al. 2020) ---------------------------
# The metric is the nominal rate level in the method name (low < med < high): within a family
# more bits should be preferred; across families at one level it is a metric tie.
LEVEL = {
    f"{family}_{level}": rank
    for family in ("ours_gan", "minnen_mse")
    for rank, level in enumerate(("low", "med", "high"), start=1)
}
LEVEL["ours_lpips_low"] = 1


@pytest.fixture(scope="module")
def hific() -> pd.DataFrame:
    """Trials as rater, a, b, outcome; sides swapped for every other trial to use outcome 0."""
    raw = pd.read_csv(data("pairwise", "hific_userstudy.csv"))
    raw = raw[raw["greater"].isin(LEVEL) & raw["lesser"].isin(LEVEL)].reset_index(drop=True)
    swap = raw.index.to_numpy() % 2 == 1
    outcome = np.where(raw["random_choice"] == 1, 0.5, np.where(swap, 0.0, 1.0))
    return pd.DataFrame(
        {
            "rater": raw["rater"],
            "a": np.where(swap, raw["lesser"], raw["greater"]),
            "b": np.where(swap, raw["greater"], raw["lesser"]),
            "outcome": outcome,
            "greater": raw["greater"],
            "lesser": raw["lesser"],
        }
    )


def test_twoafc_accuracy_counts_agreements_and_metric_ties_on_hific(hific: pd.DataFrame) -> None:
    result = twoafc_accuracy(hific, LEVEL, higher_is_better=True)
    decided = hific[hific["outcome"] != 0.5]
    diff = decided["greater"].map(LEVEL) - decided["lesser"].map(LEVEL)
    expected = ((diff > 0) * 1.0 + (diff == 0) * 0.5).sum()
    assert (result.n, result.n_undecided) == (len(decided), len(hific) - len(decided))
    assert result.agreements == expected
    assert result.accuracy == pytest.approx(expected / len(decided), abs=1e-15)
    assert 0 < (diff == 0).sum() < len(decided)  # real ties are exercised
    assert result.accuracy > 0.5  # raters prefer the higher-rate version


def test_twoafc_interval_equals_scipy_wilson_without_ties(hific: pd.DataFrame) -> None:
    within = hific[
        hific["greater"].str.rsplit("_", n=1).str[0] == hific["lesser"].str.rsplit("_", n=1).str[0]
    ]
    within = within[within["greater"].map(LEVEL) != within["lesser"].map(LEVEL)]
    result = twoafc_accuracy(within, LEVEL, higher_is_better=True)
    expected = stats.binomtest(int(result.agreements), result.n).proportion_ci(
        0.95, method="wilson"
    )
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (expected.low, expected.high), abs=1e-12
    )
    assert result.ci_low > 0.5


def test_a_lower_is_better_metric_reverses_agreement(hific: pd.DataFrame) -> None:
    up = twoafc_accuracy(hific, LEVEL, higher_is_better=True)
    down = twoafc_accuracy(hific, {k: -v for k, v in LEVEL.items()}, higher_is_better=False)
    flipped = twoafc_accuracy(hific, LEVEL, higher_is_better=False)
    assert down.agreements == up.agreements
    assert flipped.agreements == pytest.approx(up.n - up.agreements)


def test_twoafc_accuracy_on_a_hand_checked_case() -> None:
    trials = pd.DataFrame(
        {
            "rater": ["r1"] * 5,
            "a": ["x", "x", "y", "x", "y"],
            "b": ["y", "z", "z", "w", "x"],
            "outcome": [1.0, 0.0, 1.0, 1.0, 0.5],
        }
    )
    metric = {"x": 3.0, "y": 2.0, "z": 1.0, "w": 3.0}
    # x>y agree; z over x disagree; y>z agree; x~w metric tie; y/x undecided → (1+0+1+0.5)/4
    result = twoafc_accuracy(trials, metric, higher_is_better=True)
    assert (result.agreements, result.n, result.n_undecided) == (2.5, 4, 1)
    assert result.accuracy == 0.625
    assert (result.ci_low, result.ci_high) == pytest.approx(wilson_interval(2.5, 4))
    lower = twoafc_accuracy(trials, pd.Series(metric), higher_is_better=False)
    assert lower.accuracy == 0.375


def test_the_twoafc_table_has_one_row_per_metric(hific: pd.DataFrame) -> None:
    values = pd.DataFrame({"level": LEVEL, "negated": {k: -v for k, v in LEVEL.items()}})
    table = twoafc_table(hific, values, higher_is_better={"level": True, "negated": True})
    single = twoafc_accuracy(hific, LEVEL, higher_is_better=True)
    assert table["metric"].tolist() == ["level", "negated"]
    assert table["accuracy"].iloc[0] == single.accuracy
    assert table["accuracy"].iloc[1] == pytest.approx(1 - single.accuracy)
    with pytest.raises(StatsInputError, match="no entry for metric"):
        twoafc_table(hific, values, higher_is_better={"level": True})


def test_twoafc_rejects_unknown_items_and_outcomes(hific: pd.DataFrame) -> None:
    with pytest.raises(StatsInputError, match="no metric value for item"):
        twoafc_accuracy(hific, {"ours_gan_low": 1.0}, higher_is_better=True)
    bad = hific.assign(outcome=2.0)
    with pytest.raises(StatsInputError, match="outcome must be one of"):
        twoafc_accuracy(bad, LEVEL, higher_is_better=True)
