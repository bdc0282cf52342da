"""MOS and its intervals against sureal's MosModel/DmosModel and scipy's t and bootstrap."""

from __future__ import annotations

import contextlib
import functools
import io
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import ndtri
from support import data
from sureal.dataset_reader import RawDatasetReader
from sureal.subjective_model import DmosModel, MosModel

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.mos import BootstrapMethod, dmos_acr_hr, dmos_dcr, mos
from perceptlab.evaluation.stats.ratings_io import read_ratings_csv, to_sureal_dataset_json

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*"),
    pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
]

DATASETS = [
    "NFLX_dataset_public_raw",
    "VQEGHD3_dataset_raw",
    "quality_variation_2017_agh_tv",
    "vqeg_frtv_p1_625_line_high",
]


@functools.cache
def ratings(name: str) -> pd.DataFrame:
    return read_ratings_csv(data("sureal", f"{name}.csv"))


def run_sureal(model: type, frame: pd.DataFrame, **extra: object) -> dict:  # type: ignore[type-arg]
    dataset = to_sureal_dataset_json(frame, dataset_name="test", **extra)  # type: ignore[arg-type]
    dataset["ref_score"] = 5.0
    with contextlib.redirect_stdout(io.StringIO()):
        return model(RawDatasetReader(types.SimpleNamespace(**dataset))).run_modeling()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", DATASETS)
def test_mos_sd_and_normal_interval_equal_sureal_on_the_real_datasets(name: str) -> None:
    frame = ratings(name)
    ours = mos(frame, n_resamples=50).table
    theirs = run_sureal(MosModel, frame)
    np.testing.assert_allclose(ours["mos"], theirs["quality_scores"], rtol=1e-8)
    np.testing.assert_allclose(ours["sd"], theirs["quality_ambiguity"], rtol=1e-8)
    half_width = np.asarray(theirs["quality_scores_ci95"][0])
    np.testing.assert_allclose(ours["ci95_normal_low"], ours["mos"] - half_width, rtol=1e-8)
    np.testing.assert_allclose(ours["ci95_normal_high"], ours["mos"] + half_width, rtol=1e-8)


def test_the_normal_interval_uses_sureals_1_95996_at_95_and_the_exact_quantile_otherwise() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    at95 = mos(frame, n_resamples=10).table
    sem = at95["sd"] / np.sqrt(at95["n"])
    np.testing.assert_array_equal(at95["ci95_normal_high"], at95["mos"] + 1.95996 * sem)
    at90 = mos(frame, confidence=0.9, n_resamples=10).table
    np.testing.assert_allclose(at90["ci90_normal_high"], at90["mos"] + ndtri(0.95) * sem)
    assert "ci90_t_low" in at90.columns and "ci90_boot_high" in at90.columns


def test_the_t_interval_equals_scipy_t_interval() -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    table = mos(frame, n_resamples=10).table
    for _, row in table.iloc[:10].iterrows():
        x = frame.loc[frame["stimulus"] == row["stimulus"], "score"].to_numpy()
        low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert row["ci95_t_low"] == pytest.approx(low, rel=1e-12)
        assert row["ci95_t_high"] == pytest.approx(high, rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_one_rating_per_rater_reproduces_scipy_bootstrap_of_the_mean_exactly(
    method: BootstrapMethod,
) -> None:
    frame = ratings("NFLX_dataset_public_raw")
    for stimulus in frame["stimulus"].unique()[[3, 40, 71]]:
        one = frame[frame["stimulus"] == stimulus].sort_values("rater")
        ours = mos(one, n_resamples=10_000, seed=11, bootstrap=method)
        theirs = stats.bootstrap(
            (one["score"].to_numpy(),),
            np.mean,
            n_resamples=10_000,
            method=method,
            rng=np.random.default_rng(11),
        )
        np.testing.assert_array_equal(ours.replicates[0], theirs.bootstrap_distribution)
        assert ours.table["ci95_boot_low"].iloc[0] == theirs.confidence_interval.low
        assert ours.table["ci95_boot_high"].iloc[0] == theirs.confidence_interval.high


def _cluster_statistic(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    """MOS of every stimulus for resampled rater indices (pandas, independent of our code)."""
    sums = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="sum")
    counts = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="count")
    s, n = sums.fillna(0).to_numpy(), counts.fillna(0).to_numpy()

    def statistic(indices: np.ndarray) -> np.ndarray:
        drawn = np.bincount(indices.astype(int), minlength=s.shape[1])
        return (s @ drawn) / (n @ drawn)

    return statistic


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_the_rater_bootstrap_equals_scipy_bootstrap_over_rater_indices(
    method: BootstrapMethod,
) -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    frame = frame[frame["stimulus"].isin(sorted(frame["stimulus"].unique())[:8])]
    ours = mos(frame, n_resamples=500, seed=5, bootstrap=method)
    raters = np.arange(frame["rater"].nunique())
    theirs = stats.bootstrap(
        (raters,),
        _cluster_statistic(frame),
        vectorized=False,
        n_resamples=500,
        method=method,
        rng=np.random.default_rng(5),
    )
    np.testing.assert_array_equal(ours.replicates, theirs.bootstrap_distribution)
    # BCa's acceleration is summed in another order by scipy: equal to rounding
    np.testing.assert_allclose(
        ours.table["ci95_boot_low"], theirs.confidence_interval.low, rtol=1e-13
    )
    np.testing.assert_allclose(
        ours.table["ci95_boot_high"], theirs.confidence_interval.high, rtol=1e-13
    )


def test_the_replicates_are_reproducible_and_shaped_keys_by_resamples() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    first = mos(frame, n_resamples=300, seed=3)
    again = mos(frame, n_resamples=300, seed=3)
    other = mos(frame, n_resamples=300, seed=4)
    assert first.replicates.shape == (79, 300)
    np.testing.assert_array_equal(first.replicates, again.replicates)
    assert not np.array_equal(first.replicates, other.replicates)
    assert (first.seed, first.n_resamples, first.bootstrap_method) == (3, 300, "bca")
    assert first.model.name == "MOS"


def test_grouping_by_condition_pools_every_rating_of_the_condition() -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    table = mos(frame, by="condition", n_resamples=200).table
    expected = frame.groupby("condition")["score"].agg(["mean", "std", "size"])
    assert list(table["condition"]) == list(expected.index)
    np.testing.assert_allclose(table["mos"], expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(table["sd"], expected["std"], rtol=1e-12)
    np.testing.assert_array_equal(table["n"], expected["size"])
    assert (table["ci95_boot_low"] < table["mos"]).all()
    assert (table["mos"] < table["ci95_boot_high"]).all()


def test_a_single_rating_gives_nan_spread_and_intervals_without_warnings() -> None:
    frame = pd.DataFrame(
        {"rater": ["a", "b", "a"], "stimulus": ["x", "x", "y"], "score": [3.0, 4.0, 2.0]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = mos(frame, n_resamples=200).table.set_index("stimulus")
    assert table.loc["y", "n"] == 1 and table.loc["y", "mos"] == 2.0
    interval_columns = [c for c in table.columns if c.startswith("ci95")]
    assert table.loc["y", ["sd", *interval_columns]].isna().all()
    assert table.loc["x", interval_columns].notna().all()


def test_a_resample_that_misses_a_stimulus_gives_a_nan_replicate_not_a_nan_interval() -> None:
    frame = pd.DataFrame(
        {
            "rater": ["a", "b", "c", "a", "b"],
            "stimulus": ["x", "x", "x", "y", "y"],
            "score": [1.0, 3.0, 5.0, 2.0, 4.0],
        }
    )
    methods: list[BootstrapMethod] = ["bca", "percentile"]
    for method in methods:
        result = mos(frame, n_resamples=2000, seed=1, bootstrap=method)
        missed = np.isnan(result.replicates[1])
        assert 0 < missed.sum() < 200  # P(miss a and b) = (1/3)^3
        assert not np.isnan(result.replicates[0]).any()
        assert result.table[["ci95_boot_low", "ci95_boot_high"]].notna().all().all()


def test_a_unanimous_stimulus_gets_zero_width_intervals() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    table = mos(frame, n_resamples=500).table.set_index("stimulus")
    row = table.loc["CrowdRun_03_288_375"]
    assert row["sd"] == 0
    for kind in ("normal", "t", "boot"):  # scipy's BCa is NaN here; the data say exactly 1
        assert row[f"ci95_{kind}_low"] == row[f"ci95_{kind}_high"] == 1.0


def test_bad_options_are_refused_with_the_valid_values() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    with pytest.raises(StatsInputError, match="'bca' or 'percentile'"):
        mos(frame, bootstrap="basic")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match=r"confidence must lie in \(0, 1\)"):
        mos(frame, confidence=95)
    with pytest.raises(StatsInputError, match="by='codec' is not a column"):
        mos(frame, by="codec")


def _nflx_references(frame: pd.DataFrame) -> dict[str, str]:
    reference = frame[frame["condition"] == "ref"].set_index("content")["stimulus"].to_dict()
    return {s: reference[c] for s, c in zip(frame["stimulus"], frame["content"], strict=True)}


def test_acr_hr_dmos_equals_sureal_dmos_on_the_complete_nflx_design() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    reference_of = _nflx_references(frame)
    ours = dmos_acr_hr(frame, reference_of=reference_of, scale_max=5, n_resamples=50)
    theirs = run_sureal(DmosModel, frame, ref_stimulus_of=reference_of)
    sureal_dmos = pd.Series(theirs["quality_scores"], index=sorted(frame["stimulus"].unique()))
    table = ours.table.set_index("stimulus")
    assert set(table.index) == set(frame.loc[frame["condition"] != "ref", "stimulus"])
    np.testing.assert_allclose(table["mos"], sureal_dmos[table.index], rtol=1e-8)
    assert ours.model.name == "DMOS-ACR-HR"


def test_acr_hr_differential_scores_are_per_rater_and_can_be_crushed() -> None:
    frame = pd.DataFrame(
        {
            "rater": ["a", "a", "b", "b", "c"],
            "stimulus": ["ref", "p", "ref", "p", "p"],  # c never saw the reference
            "score": [4.0, 5.0, 5.0, 2.0, 1.0],
        }
    )
    reference_of = {"p": "ref"}
    plain = dmos_acr_hr(frame, reference_of=reference_of, scale_max=5, n_resamples=20).table
    assert plain["stimulus"].tolist() == ["p"] and plain["n"].iloc[0] == 2
    assert plain["mos"].iloc[0] == pytest.approx(((5 - 4 + 5) + (2 - 5 + 5)) / 2)
    crushed = dmos_acr_hr(
        frame, reference_of=reference_of, scale_max=5, crush=True, n_resamples=20
    ).table
    assert crushed["mos"].iloc[0] == pytest.approx((7 * 6 / (2 + 6) + 2) / 2)
    with pytest.raises(StatsInputError, match="no entry in reference_of"):
        dmos_acr_hr(frame, reference_of={}, scale_max=5)


def test_acr_hr_dmos_of_a_study_under_way_skips_images_nobody_rated_yet() -> None:
    # img2 is not rated at all and q's reference nobody rated yet (it comes later in the
    # sessions): DMOS is reported for p alone, not refused.
    frame = pd.DataFrame(
        {
            "rater": ["a", "a", "b", "b", "b"],
            "stimulus": ["ref1", "p", "ref1", "p", "q"],
            "score": [5.0, 3.0, 4.0, 4.0, 2.0],
        }
    )
    reference_of = {"p": "ref1", "q": "ref3", "r": "ref2"}
    table = dmos_acr_hr(frame, reference_of=reference_of, scale_max=5, n_resamples=20).table
    assert table["stimulus"].tolist() == ["p"] and table["n"].iloc[0] == 2
    assert table["mos"].iloc[0] == pytest.approx(((3 - 5 + 5) + (4 - 4 + 5)) / 2)
    with pytest.raises(StatsInputError, match="no rater rated both"):
        dmos_acr_hr(frame[frame["stimulus"] != "ref1"], reference_of=reference_of, scale_max=5)


def test_dcr_dmos_is_the_mos_of_the_degradation_ratings_under_its_own_name() -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    dmos = dmos_dcr(frame, n_resamples=100)
    plain = mos(frame, n_resamples=100)
    pd.testing.assert_frame_equal(dmos.table, plain.table)
    assert dmos.model.name == "DMOS-DCR"
