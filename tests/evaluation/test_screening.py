"""Rater screening (BT.500 kurtosis and correlation, P.913) against sureal on real datasets."""

from __future__ import annotations

import contextlib
import functools
import io
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from support import data
from sureal import BT500Model, P913124Model
from sureal.dataset_reader import RawDatasetReader

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.mos import mos
from perceptlab.evaluation.stats.ratings_io import read_ratings_csv, to_sureal_dataset_json
from perceptlab.evaluation.stats.screening import (
    bt500_pcc_screening,
    bt500_screening,
    p913_screening,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning:scipy.*"),
]

DATASETS = [
    "NFLX_dataset_public_raw",
    "VQEGHD3_dataset_raw",
    "quality_variation_2017_agh_tv",
    "vqeg_frtv_p1_625_line_high",
]
UNANIMOUS = "CrowdRun_03_288_375"  # NFLX: all 26 raters gave 1


@functools.cache
def ratings(name: str) -> pd.DataFrame:
    return read_ratings_csv(data("sureal", f"{name}.csv"))


def run_sureal(model: type, frame: pd.DataFrame) -> dict:  # type: ignore[type-arg]
    dataset = to_sureal_dataset_json(frame, dataset_name="test")
    with contextlib.redirect_stdout(io.StringIO()):
        return model(RawDatasetReader(types.SimpleNamespace(**dataset))).run_modeling()  # type: ignore[no-any-return]


def sureal_rejected(result: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(
        o for o, r in zip(result["observers"], result["observer_rejected"], strict=True) if r
    )


@pytest.mark.parametrize("name", DATASETS)
def test_bt500_sureal_variant_rejects_the_raters_sureal_rejects(name: str) -> None:
    frame = ratings(name)
    ours = bt500_screening(frame, variant="sureal")
    theirs = run_sureal(BT500Model, frame)
    assert ours.rejected() == sureal_rejected(theirs)
    np.testing.assert_allclose(
        ours.table["stat1"], theirs["observer_rejected_1st_stats"], rtol=1e-12
    )
    np.testing.assert_allclose(
        ours.table["stat2"], theirs["observer_rejected_2nd_stats"], rtol=1e-12, equal_nan=True
    )
    kept_mos = mos(ours.kept, n_resamples=10).table["mos"]
    np.testing.assert_allclose(kept_mos, theirs["quality_scores"], rtol=1e-8)


@pytest.mark.parametrize("name", DATASETS)
def test_p913_sureal_variant_matches_sureals_rejections_and_debiased_mos(name: str) -> None:
    frame = ratings(name)
    ours = p913_screening(frame, variant="sureal")
    theirs = run_sureal(P913124Model, frame)
    assert ours.rejected() == sureal_rejected(theirs)
    np.testing.assert_allclose(ours.table["bias"], theirs["observer_bias"], rtol=1e-8, atol=1e-12)
    kept_mos = mos(ours.kept, n_resamples=10).table["mos"]
    np.testing.assert_allclose(kept_mos, theirs["quality_scores"], rtol=1e-8)
    assert (ours.kept["raw_score"] - ours.kept["score"]).abs().max() > 0


def test_the_rejected_sets_are_the_published_ones() -> None:
    # statistics.md §2: BT500 rejects s03 on NFLX, nobody on AGH; P.913 rejects 4/26 NFLX,
    # 2/24 VQEG-HD3, 12/67 VQEG-FRTV and 5/99 AGH raters.
    assert bt500_screening(ratings("NFLX_dataset_public_raw"), variant="sureal").rejected() == [
        "s03"
    ]
    agh = ratings("quality_variation_2017_agh_tv")
    assert bt500_screening(agh, variant="sureal").rejected() == []
    counts = [len(p913_screening(ratings(n), variant="sureal").rejected()) for n in DATASETS]
    assert counts == [4, 2, 5, 12]


def test_a_unanimous_stimulus_flags_everybody_in_sureal_and_is_skipped_when_corrected() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    without = frame[frame["stimulus"] != UNANIMOUS]
    sureal_with = bt500_screening(frame, variant="sureal").table
    sureal_without = bt500_screening(without, variant="sureal").table
    np.testing.assert_array_equal(sureal_with["p"], sureal_without["p"] + 1)
    np.testing.assert_array_equal(sureal_with["q"], sureal_without["q"] + 1)
    s03 = sureal_with.set_index("rater").loc["s03"]
    assert s03["stat1"] == pytest.approx(6 / 79) and s03["rejected"]
    corrected_with = bt500_screening(frame, variant="corrected").table
    corrected_without = bt500_screening(without, variant="corrected").table
    pd.testing.assert_frame_equal(corrected_with, corrected_without)
    assert (corrected_with["n_ratings"] == 78).all()


def test_corrected_screening_judges_partial_design_raters_on_what_they_rated() -> None:
    frame = ratings("quality_variation_2017_agh_tv")
    corrected = bt500_screening(frame, variant="corrected")
    assert bt500_screening(frame, variant="sureal").rejected() == []
    assert corrected.rejected() == ["13305"]
    row = corrected.table.set_index("rater").loc["13305"]
    assert row["n_ratings"] < frame["stimulus"].nunique()
    assert row["stat1"] == pytest.approx((row["p"] + row["q"]) / row["n_ratings"])
    assert "13305" not in set(corrected.kept["rater"])


def test_corrected_screening_uses_the_n_minus_1_standard_deviation() -> None:
    scores = [1.0, 2, 2, 3, 3, 3, 3, 3, 4, 4, 5, 2, 3, 4, 5.5]
    frame = pd.DataFrame(
        {"rater": [f"r{i:02}" for i in range(15)], "stimulus": "x", "score": scores}
    )
    x = np.asarray(scores)
    assert 2 <= stats.kurtosis(x, fisher=False) <= 4  # so the band is μ ± 2σ
    assert x.mean() + 2 * x.std(ddof=0) < 5.5 < x.mean() + 2 * x.std(ddof=1)
    flagged = {
        v: int(bt500_screening(frame, variant=v).table["p"].sum()) for v in ("sureal", "corrected")
    }
    assert flagged == {"sureal": 1, "corrected": 0}


def test_if_every_rater_would_be_rejected_none_is() -> None:
    # every stimulus unanimous: sureal's rule makes every rating an outlier on both sides
    frame = pd.DataFrame(
        {
            "rater": ["a", "b", "c"] * 2,
            "stimulus": ["x"] * 3 + ["y"] * 3,
            "score": [1.0] * 3 + [5.0] * 3,
        }
    )
    sureal = bt500_screening(frame, variant="sureal")
    assert (sureal.table["stat1"] == 2.0).all() and (sureal.table["stat2"] == 0.0).all()
    assert sureal.rejected() == [] and len(sureal.kept) == len(frame)
    corrected = bt500_screening(frame, variant="corrected")  # nothing informative to judge
    assert (corrected.table["n_ratings"] == 0).all() and corrected.rejected() == []


def test_pcc_screening_reproduces_the_published_rejection_counts() -> None:
    # statistics.md §2 (sureal SubjrejMosModelPearson, HEAD): 0, 0, 2 and 10 raters
    counts = [len(bt500_pcc_screening(ratings(n), variant="sureal").rejected()) for n in DATASETS]
    assert counts == [0, 0, 2, 10]


def test_pcc_is_scipys_pearson_with_and_without_the_rater_in_the_mos() -> None:
    frame = ratings("quality_variation_2017_agh_tv")
    matrix = frame.pivot_table(index="stimulus", columns="rater", values="score")
    with_rater = bt500_pcc_screening(frame, variant="sureal").table.set_index("rater")["pcc"]
    left_out = bt500_pcc_screening(frame, variant="corrected").table.set_index("rater")["pcc"]
    for rater in ["103", "13267", "14097"]:
        seen = matrix[rater].notna()
        mos_all = matrix[seen].mean(axis=1)
        mos_others = matrix[seen].drop(columns=rater).mean(axis=1)
        r_all = stats.pearsonr(matrix.loc[seen, rater], mos_all).statistic
        r_others = stats.pearsonr(matrix.loc[seen, rater], mos_others).statistic
        ours_all, ours_others = float(with_rater[rater]), float(left_out[rater])
        assert ours_all == pytest.approx(r_all, abs=1e-12)
        assert ours_others == pytest.approx(r_others, abs=1e-12)
        assert ours_others < ours_all
    table = bt500_pcc_screening(frame, variant="sureal").table
    threshold, r = table["threshold"].iloc[0], table["pcc"]
    assert threshold == pytest.approx(min(0.7, r.mean() - r.std(ddof=0)))


def test_results_carry_model_and_variant_and_refuse_unknown_variants() -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    result = p913_screening(frame)
    assert result.variant == "corrected" and result.model.name == "P913-corrected"
    with pytest.raises(StatsInputError, match="'sureal' or 'corrected'"):
        bt500_screening(frame, variant="strict")  # type: ignore[arg-type]
