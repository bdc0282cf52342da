"""Reading pairwise CSVs: both layouts of the ``pairwise`` dataset, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import data

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise_io import HIFIC_COLUMNS, read_pairwise_csv

TRIALS_FILES = ["pwcmp_tmo_video", "pwcmp_lightfield_quality", "sureal_lukas_sharpening"]


def hific_csv() -> Path:
    return data("pairwise", "hific_userstudy.csv")


def raw(name: str) -> pd.DataFrame:
    return pd.read_csv(data("pairwise", f"{name}.csv"), dtype=str, keep_default_na=False)


@pytest.mark.parametrize("name", TRIALS_FILES)
def test_the_trials_layout_scores_a_win_for_the_winner(name: str) -> None:
    source = raw(name)
    trials = read_pairwise_csv(data("pairwise", f"{name}.csv"))
    assert len(trials) == len(source)
    assert trials[["rater", "group", "a", "b"]].to_numpy().tolist() == (
        source[["rater", "group", "stimulus_a", "stimulus_b"]].to_numpy().tolist()
    )
    expected = (source["winner"] == source["stimulus_a"]).to_numpy(dtype=float)
    np.testing.assert_array_equal(trials["outcome"].to_numpy(), expected)
    assert trials["trial"].tolist() == source["trial"].astype(int).tolist()
    assert trials.attrs["layout"] == "trials"


def test_the_trials_layout_carries_extra_columns_along(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "trial,rater,group,stimulus_a,stimulus_b,winner,loser,seconds\n1,r1,g,x,y,y,x,2.5\n"
    )
    trials = read_pairwise_csv(path)
    assert list(trials.iloc[0][["a", "b", "outcome", "seconds"]]) == ["x", "y", 0.0, "2.5"]


def test_the_hific_study_has_5218_usable_trials_with_the_preferred_method_as_a() -> None:
    source = raw("hific_userstudy")
    trials = read_pairwise_csv(hific_csv())
    assert len(source) == 5220 and len(trials) == 5218
    usable = source.loc[source["greater"] != source["lesser"]]
    assert trials["a"].tolist() == usable["greater"].tolist()
    assert trials["b"].tolist() == usable["lesser"].tolist()
    assert "group" not in trials.columns  # every method was compared with every other
    assert trials["rater"].nunique() == 20 and trials["image"].nunique() == 20


def test_the_two_unusable_hific_rows_show_one_method_on_both_sides() -> None:
    source = raw("hific_userstudy")
    same = source.loc[source["greater"] == source["lesser"]]
    assert len(same) == 2
    assert set(same["greater"]) == {"minnen_mse_med"}
    assert set(same["random_choice"]) == {"1"}  # the rater could not tell them apart
    trials = read_pairwise_csv(hific_csv())
    assert not set(same["record"]) & set(trials["record"])
    assert trials.attrs["dropped"] == {"same method on both sides (shown two identical images)": 2}


@pytest.mark.parametrize(
    ("undecided", "rows", "half", "dropped_undecided"),
    [("half", 5218, 229, None), ("random", 5218, 0, None), ("drop", 4989, 0, 229)],
)
def test_hific_random_choices_are_half_kept_or_dropped(
    undecided: str, rows: int, half: int, dropped_undecided: int | None
) -> None:
    trials = read_pairwise_csv(hific_csv(), undecided=undecided)  # type: ignore[arg-type]
    assert len(trials) == rows
    assert int((trials["outcome"] == 0.5).sum()) == half
    assert set(trials["outcome"]) <= {0.5, 1.0}
    assert trials.attrs["dropped"].get("undecided (random_choice=1)") == dropped_undecided
    undecided_rows = trials["random_choice"] == 1
    expected = 0.5 if undecided == "half" else 1.0
    assert (trials.loc[undecided_rows, "outcome"] == expected).all()


def test_an_unknown_layout_lists_the_accepted_column_sets(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(StatsInputError, match="accepted") as error:
        read_pairwise_csv(path)
    assert "stimulus_a" in str(error.value) and "random_choice" in str(error.value)


def test_a_missing_value_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "trial,rater,group,stimulus_a,stimulus_b,winner,loser\n1,r1,g,x,y,x,y\n2,,g,x,y,x,y\n"
    )
    with pytest.raises(StatsInputError, match=r"missing rater on line\(s\) 3"):
        read_pairwise_csv(path)


def test_a_winner_that_is_neither_side_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("trial,rater,group,stimulus_a,stimulus_b,winner,loser\n1,r1,g,x,y,z,y\n")
    with pytest.raises(StatsInputError, match=r"line\(s\) 2"):
        read_pairwise_csv(path)


def test_a_trial_comparing_an_item_with_itself_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("trial,rater,group,stimulus_a,stimulus_b,winner,loser\n1,r1,g,x,x,x,x\n")
    with pytest.raises(StatsInputError, match="compares an item with itself"):
        read_pairwise_csv(path)


def test_a_decided_hific_self_comparison_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(HIFIC_COLUMNS) + "\nr1,k1,i.png,0,0,8,8,bpg,bpg,0\n")
    with pytest.raises(StatsInputError, match=r"line\(s\) 2 compares an item with itself"):
        read_pairwise_csv(path)


def test_a_random_choice_flag_other_than_0_or_1_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(HIFIC_COLUMNS) + "\nr1,k1,i.png,0,0,8,8,a,b,2\n")
    with pytest.raises(StatsInputError, match="random_choice must be 0 or 1"):
        read_pairwise_csv(path)


def test_missing_and_empty_files_and_unknown_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StatsInputError, match="does not exist"):
        read_pairwise_csv(tmp_path / "nope.csv")
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(StatsInputError, match="empty"):
        read_pairwise_csv(empty)
    with pytest.raises(StatsInputError, match="half, random, drop"):
        read_pairwise_csv(hific_csv(), undecided="coin")  # type: ignore[arg-type]
