"""Reading long-format rating CSVs and exporting them in sureal's dataset format."""

from __future__ import annotations

import contextlib
import io
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import data
from sureal.dataset_reader import RawDatasetReader
from sureal.subjective_model import MosModel

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.mos import mos
from perceptlab.evaluation.stats.ratings_io import (
    check_ratings,
    read_ratings_csv,
    to_sureal_dataset_json,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*"),
    pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),  # sureal's importer
]


def nflx_csv() -> Path:
    return data("sureal", "NFLX_dataset_public_raw.csv")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    return path


def test_it_reads_every_sureal_csv_with_string_ids_and_float_scores() -> None:
    for name, rows in [
        ("NFLX_dataset_public_raw", 2054),
        ("VQEGHD3_dataset_raw", 1728),
        ("quality_variation_2017_agh_tv", 17820),
        ("vqeg_frtv_p1_625_line_high", 6024),
    ]:
        frame = read_ratings_csv(data("sureal", f"{name}.csv"))
        assert len(frame) == rows
        assert frame["score"].dtype == np.float64
        assert all(isinstance(r, str) for r in frame["rater"].head())
    agh = read_ratings_csv(data("sureal", "quality_variation_2017_agh_tv.csv"))
    assert "103" in set(agh["rater"])


def test_it_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StatsInputError, match=r"nope\.csv does not exist"):
        read_ratings_csv(tmp_path / "nope.csv")


def test_it_says_an_empty_file_is_empty(tmp_path: Path) -> None:
    with pytest.raises(StatsInputError, match="is empty"):
        read_ratings_csv(_write(tmp_path, ""))
    with pytest.raises(StatsInputError, match="has no rows"):
        read_ratings_csv(_write(tmp_path, "rater,stimulus,score\n"))


def test_it_names_the_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(StatsInputError, match=r"missing column\(s\) stimulus, score"):
        read_ratings_csv(_write(tmp_path, "rater,image,rating\na,x,3\n"))


def test_it_lists_the_file_lines_of_non_numeric_scores(tmp_path: Path) -> None:
    body = "".join(f"r{i},s,{'bad' if i % 2 else 3}\n" for i in range(16))
    with pytest.raises(StatsInputError) as caught:
        read_ratings_csv(_write(tmp_path, "rater,stimulus,score\n" + body))
    message = str(caught.value)
    assert "line(s) 3, 5, 7, 9, 11 and 3 more" in message
    assert "'bad'" in message


def test_it_treats_an_empty_score_as_missing(tmp_path: Path) -> None:
    with pytest.raises(StatsInputError, match=r"line\(s\) 3 "):
        read_ratings_csv(_write(tmp_path, "rater,stimulus,score\na,x,3\nb,x,\n"))


def test_it_keeps_repeated_ratings_as_repetitions(tmp_path: Path) -> None:
    frame = read_ratings_csv(_write(tmp_path, "rater,stimulus,score\na,x,3\na,x,4\nb,x,5\n"))
    assert len(frame) == 3
    assert mos(frame, n_resamples=10).table["mos"].iloc[0] == pytest.approx(4.0)


def test_optional_and_extra_columns_are_carried_along(tmp_path: Path) -> None:
    frame = read_ratings_csv(
        _write(tmp_path, "rater,stimulus,condition,session,score\na,x,q50,7,3.5\n")
    )
    assert frame.loc[0, "condition"] == "q50"
    assert frame.loc[0, "session"] == 7
    assert frame.loc[0, "score"] == 3.5


def test_check_ratings_refuses_infinite_scores_and_blank_raters() -> None:
    with pytest.raises(StatsInputError, match=r"row\(s\) 1"):
        check_ratings(pd.DataFrame({"rater": ["a", "b"], "stimulus": "x", "score": [1, np.inf]}))
    with pytest.raises(StatsInputError, match=r"empty rater in row\(s\) 0"):
        check_ratings(pd.DataFrame({"rater": [" ", "b"], "stimulus": "x", "score": [1, 2]}))


def test_the_sureal_export_holds_every_rating_exactly_once() -> None:
    frame = read_ratings_csv(nflx_csv())
    dataset = to_sureal_dataset_json(frame, dataset_name="NFLX")
    assert [r["content_id"] for r in dataset["ref_videos"]] == list(range(9))
    assert len(dataset["dis_videos"]) == frame["stimulus"].nunique()
    content_names = {r["content_id"]: r["content_name"] for r in dataset["ref_videos"]}
    for video in dataset["dis_videos"]:
        rows = frame[frame["stimulus"] == video["path"]]
        assert video["os"] == dict(zip(rows["rater"], rows["score"], strict=True))
        assert content_names[video["content_id"]] == rows["content"].iloc[0]


def _load_with_sureal(path: Path) -> dict[str, list[float]]:
    with contextlib.redirect_stdout(io.StringIO()):
        return MosModel.from_dataset_file(str(path)).run_modeling()


def test_sureal_loads_the_exported_dataset_file_and_gives_our_mos(tmp_path: Path) -> None:
    frame = read_ratings_csv(nflx_csv())
    dataset = to_sureal_dataset_json(frame, dataset_name="NFLX_public")
    path = tmp_path / "nflx_dataset.py"
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in dataset.items()))
    theirs = _load_with_sureal(path)
    ours = mos(frame, n_resamples=10).table
    np.testing.assert_allclose(theirs["quality_scores"], ours["mos"], rtol=1e-12)
    np.testing.assert_allclose(theirs["quality_ambiguity"], ours["sd"], rtol=1e-12)


def test_repetitions_are_exported_as_score_lists_that_sureal_averages() -> None:
    frame = pd.DataFrame(
        {"rater": ["a", "a", "b", "b"], "stimulus": ["x", "x", "x", "y"], "score": [1, 2, 4, 5]}
    )
    dataset = to_sureal_dataset_json(frame, dataset_name="reps")
    assert dataset["dis_videos"][0]["os"] == {"a": [1.0, 2.0], "b": 4.0}
    reader = RawDatasetReader(types.SimpleNamespace(**dataset))
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = MosModel(reader).run_modeling()["quality_scores"]
    np.testing.assert_allclose(theirs, mos(frame, n_resamples=10).table["mos"], rtol=1e-12)


def test_the_export_names_each_reference_so_sureal_can_find_it() -> None:
    frame = pd.DataFrame(
        {"rater": ["a", "a", "a"], "stimulus": ["ref1", "p1", "p2"], "score": [5, 3, 2]}
    )
    dataset = to_sureal_dataset_json(
        frame, dataset_name="hr", ref_stimulus_of={"ref1": "ref1", "p1": "ref1", "p2": "ref1"}
    )
    reader = RawDatasetReader(types.SimpleNamespace(**dataset))
    assert reader.disvideo_is_refvideo == [False, False, True]  # sorted: p1, p2, ref1
    with pytest.raises(StatsInputError, match="no reference for stimulus p2"):
        to_sureal_dataset_json(
            frame, dataset_name="hr", ref_stimulus_of={"ref1": "ref1", "p1": "ref1"}
        )
