"""``manage.py score`` on sureal's dataset JSON, the ITU-T P.808 toolkit's votes, and grouped files.

The sureal numbers are checked three ways: against the same ratings read from the long CSV,
against sureal's own reader and MosModel on the very same JSON file, and against a real export
bundle's stored scores. The P.808 file is small enough to check by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from evalkit import rated_study
from support import data
from sureal.dataset_reader import RawDatasetReader
from sureal.subjective_model import MosModel
from sureal.tools.misc import import_json_file

from perceptlab.evaluation import exports
from perceptlab.evaluation.analysis import counted_judgments, ratings_frame
from perceptlab.evaluation.scoring import RATING_COLUMNS
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.ratings_io import (
    detect_format,
    read_p808_csv,
    read_ratings,
    read_ratings_csv,
    read_sureal_dataset_json,
    to_sureal_dataset_json,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*"),
    pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
]

ROW_ORDER = ["stimulus", "rater", "score"]


def nflx_csv() -> Path:
    return data("sureal", "NFLX_dataset_public_raw.csv")


def score(**options: object) -> str:
    out = io.StringIO()
    call_command("score", stdout=out, **options)
    return out.getvalue()


def rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].sort_values(ROW_ORDER).reset_index(drop=True)


def write_json(path: Path, dataset: dict[str, Any]) -> Path:
    path.write_text(json.dumps(dataset))  # NaN stays NaN, as sureal's files write it
    return path


def sureal_list_form(frame: pd.DataFrame, *, subjects: bool) -> dict[str, Any]:
    """The ratings laid out like sureal's own dataset files (resource/dataset/*.py): ``os`` a
    list with one entry per observer, NaN where that observer gave no rating."""
    raters = sorted(frame["rater"].unique())
    table = frame.pivot(index="stimulus", columns="rater", values="score")[raters]
    content_of = frame.drop_duplicates("stimulus").set_index("stimulus")["content"]
    contents = sorted(content_of.unique())
    dataset: dict[str, Any] = {
        "dataset_name": "list_form",
        "ref_videos": [
            {"content_id": i, "content_name": name, "path": f"/ref/{name}.yuv"}
            for i, name in enumerate(contents)
        ],
        "dis_videos": [
            {
                "asset_id": i,
                "content_id": contents.index(content_of[stimulus]),
                "path": stimulus,
                "os": [float(v) for v in table.loc[stimulus]],
            }
            for i, stimulus in enumerate(table.index)
        ],
    }
    if subjects:
        dataset["subjects"] = raters
    return dataset


# --- sureal dataset JSON -----------------------------------------------------------------------


def test_the_platforms_sureal_export_reads_back_into_the_same_ratings(tmp_path: Path) -> None:
    frame = read_ratings_csv(nflx_csv())
    path = write_json(tmp_path / "nflx.json", to_sureal_dataset_json(frame, dataset_name="NFLX"))
    again = read_sureal_dataset_json(path)
    columns = ["rater", "stimulus", "score", "content", "condition"]
    pd.testing.assert_frame_equal(rows(again, columns), rows(frame, columns), check_exact=True)
    assert again.attrs["dataset_name"] == "NFLX"


def test_repetitions_and_a_frame_without_content_survive_the_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"rater": ["a", "a", "b", "b"], "stimulus": ["x", "x", "x", "y"], "score": [1, 2, 4, 5]}
    )
    dataset = to_sureal_dataset_json(frame, dataset_name="reps")
    assert dataset["dis_videos"][0]["os"] == {"a": [1.0, 2.0], "b": 4.0}
    again = read_ratings(write_json(tmp_path / "reps.json", dataset))
    assert again.attrs["format"] == "sureal-json"
    assert rows(again, ROW_ORDER).values.tolist() == [
        ["x", "a", 1.0],
        ["x", "a", 2.0],
        ["x", "b", 4.0],
        ["y", "b", 5.0],
    ]
    assert set(again["content"]) == {"all"}  # the export's one content when there is none


def test_score_gives_the_same_numbers_from_the_sureal_export_as_from_the_csv(
    tmp_path: Path,
) -> None:
    frame = read_ratings_csv(nflx_csv())
    path = write_json(tmp_path / "nflx.json", to_sureal_dataset_json(frame, dataset_name="NFLX"))
    text = score(ratings=path, kind="acr", out=tmp_path / "json.csv", resamples=300)
    score(ratings=nflx_csv(), kind="acr", out=tmp_path / "csv.csv", resamples=300)
    from_json = pd.read_csv(tmp_path / "json.csv")
    from_csv = pd.read_csv(tmp_path / "csv.csv")
    assert list(from_json.columns) == RATING_COLUMNS
    pd.testing.assert_frame_equal(from_json, from_csv, check_exact=False, rtol=1e-12)
    assert "2054 ratings of 79 stimuli by 26 raters (format: sureal-json)" in text
    plain = frame.groupby("stimulus")["score"].mean()
    assert from_json.set_index("stimulus")["mos"].to_numpy() == pytest.approx(
        plain.to_numpy(), abs=1e-12
    )


@pytest.mark.parametrize(
    ("csv_name", "subjects"),
    [
        # raters named s01 … s26 by list position, as the CSV names them
        ("NFLX_dataset_public_raw.csv", False),
        # raters 201 … from `subjects`; 6 missing ratings are NaN in the lists
        ("vqeg_frtv_p1_625_line_high.csv", True),
    ],
)
def test_sureals_list_form_gives_the_csv_ratings_and_sureals_own_mos(
    csv_name: str, subjects: bool, tmp_path: Path
) -> None:
    frame = read_ratings_csv(data("sureal", csv_name))
    path = write_json(tmp_path / "list.json", sureal_list_form(frame, subjects=subjects))
    ours = read_ratings(path)
    columns = ["rater", "stimulus", "score", "content"]
    pd.testing.assert_frame_equal(rows(ours, columns), rows(frame, columns), check_exact=True)

    score(ratings=path, kind="acr", out=tmp_path / "ours.csv", resamples=200)
    table = pd.read_csv(tmp_path / "ours.csv", dtype={"stimulus": str})
    reader = RawDatasetReader(import_json_file(str(path)))  # sureal's reader of .json datasets
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = MosModel(reader).run_modeling()
    np.testing.assert_allclose(table["mos"], theirs["quality_scores"], rtol=1e-12)
    np.testing.assert_allclose(table["sd"], theirs["quality_ambiguity"], rtol=1e-12)
    expected = frame.groupby("stimulus")["score"].agg(["mean", "count"])
    np.testing.assert_allclose(table["mos"], expected["mean"], rtol=1e-12)
    assert table["n"].tolist() == expected["count"].tolist()


def test_a_dict_form_null_is_a_missing_rating_and_lists_are_repetitions(tmp_path: Path) -> None:
    dataset = {
        "ref_videos": [{"content_id": 0, "content_name": "bike", "path": "bike.png"}],
        "dis_videos": [
            {"asset_id": 0, "content_id": 0, "path": "bike_q10", "os": {"r1": 2, "r2": None}},
            {"asset_id": 1, "content_id": 0, "path": "bike_q90", "os": {"r1": [4, 5], "r2": 3}},
        ],
    }
    frame = read_ratings(write_json(tmp_path / "d.json", dataset))
    assert rows(frame, ROW_ORDER).values.tolist() == [
        ["bike_q10", "r1", 2.0],
        ["bike_q90", "r1", 4.0],
        ["bike_q90", "r1", 5.0],
        ["bike_q90", "r2", 3.0],
    ]
    assert set(frame["content"]) == {"bike"}


@pytest.mark.django_db
def test_a_real_bundles_sureal_dataset_scores_like_the_bundle(
    admin_client: Any, tmp_path: Path
) -> None:
    study = rated_study("acr", images=2, raters=6, seed=1, judgments_per_item=6)
    response = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert response.status_code == 200
    bundle_path = tmp_path / "bundle.zip"
    bundle_path.write_bytes(response.content)
    dataset = tmp_path / "sureal_dataset.json"
    dataset.write_bytes(zipfile.ZipFile(bundle_path).read("sureal_dataset.json"))

    bundle = exports.open_bundle(bundle_path)
    stored = ratings_frame(counted_judgments(bundle.judgments), bundle.stimuli)
    again = read_ratings(dataset)
    columns = ["rater", "stimulus", "score", "content", "condition"]
    pd.testing.assert_frame_equal(rows(again, columns), rows(stored, columns), check_exact=True)

    text = score(ratings=dataset, kind="acr", out=tmp_path / "scores.csv", resamples=200)
    assert "format: sureal-json" in text
    ours = pd.read_csv(tmp_path / "scores.csv", dtype={"stimulus": str}).set_index("stimulus")
    theirs = bundle.scores.loc[bundle.scores["level"] == "stimulus"].set_index("key")
    assert len(ours) == len(theirs) == stored["stimulus"].nunique() > 0
    np.testing.assert_allclose(ours["mos"], theirs.loc[ours.index, "mos"], rtol=1e-12)
    np.testing.assert_allclose(
        ours["mos"], stored.groupby("stimulus")["score"].mean()[ours.index], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"ref_videos": []}, r"has no dis_videos"),
        (
            {"ref_videos": [{"content_id": 0}], "dis_videos": [{"content_id": 0, "os": [3]}]},
            r"dis_videos\[0\] has no path",
        ),
        (
            {
                "ref_videos": [{"content_id": 0}],
                "dis_videos": [{"content_id": 0, "path": "x", "os": {"r1": "high"}}],
            },
            r"dis_videos\[0\] \('x'\), rater 'r1': score 'high' is not a number",
        ),
        (
            {
                "ref_videos": [{"content_id": 0}],
                "dis_videos": [
                    {"content_id": 0, "path": "x", "os": [1, 2]},
                    {"content_id": 0, "path": "y", "os": [3]},
                ],
            },
            r"dis_videos\[1\] \('y'\): os has 1 entries, dis_videos\[0\] has 2",
        ),
        (
            {
                "ref_videos": [{"content_id": 0}],
                "dis_videos": [{"content_id": 7, "path": "x", "os": [1]}],
            },
            r"content_id 7 is not one of the ref_videos' \(0\)",
        ),
    ],
)
def test_a_malformed_sureal_dataset_is_one_error_naming_the_problem(
    dataset: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = write_json(tmp_path / "bad.json", dataset)
    with pytest.raises(CommandError, match=message):
        score(ratings=path, kind="acr", out=tmp_path / "o.csv")


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{'ref_videos': []}")  # sureal's Python style: code, not data
    with pytest.raises(StatsInputError, match=r"bad\.json is not valid JSON"):
        read_ratings(path)


# --- ITU-T P.808 toolkit ----------------------------------------------------------------------

# result_parser.py's per-vote file: two clips of condition 01 and 02, three workers.
P808_VOTES = """\
HITId,workerid,assignment_id,assignmentstatus,file,short_file_name,vote,question_type,condition_num
H1,W1,A1,Submitted,https://x.org/clips/D501_C01_M2_S02.wav,D501_C01_M2_S02.wav,5,MOS,01
H1,W1,A1,Submitted,https://x.org/clips/D501_C02_M2_S02.wav,D501_C02_M2_S02.wav,2,MOS,02
H1,W2,A2,Submitted,https://x.org/clips/D501_C01_M2_S02.wav,D501_C01_M2_S02.wav,4,MOS,01
H1,W2,A2,Submitted,https://x.org/clips/D501_C02_M2_S02.wav,D501_C02_M2_S02.wav,2,MOS,02
H2,W3,A3,Approved,https://x.org/clips/D501_C01_M2_S02.wav,D501_C01_M2_S02.wav,3,MOS,01
H2,W3,A3,Approved,https://x.org/clips/D501_C02_M2_S02.wav,D501_C02_M2_S02.wav,5,MOS,02
"""
C01 = "https://x.org/clips/D501_C01_M2_S02.wav"
C02 = "https://x.org/clips/D501_C02_M2_S02.wav"


def test_p808_votes_map_to_workers_clips_and_conditions(tmp_path: Path) -> None:
    path = tmp_path / "batch_votes_per_worker_.csv"
    path.write_text(P808_VOTES)
    assert detect_format(path) == "p808"
    frame = read_p808_csv(path)
    assert list(frame.columns) == ["rater", "stimulus", "score", "condition"]
    assert frame.values.tolist()[:2] == [["W1", C01, 5.0, "01"], ["W1", C02, 2.0, "02"]]


def test_score_on_p808_votes_gives_the_hand_computed_mos(tmp_path: Path) -> None:
    path = tmp_path / "batch_votes_per_worker_.csv"
    path.write_text(P808_VOTES)
    text = score(ratings=path, kind="acr", out=tmp_path / "o.csv", resamples=200)
    assert "6 ratings of 2 stimuli by 3 raters (format: p808)" in text
    table = pd.read_csv(tmp_path / "o.csv").set_index("stimulus")
    # C01: 5, 4, 3 → MOS 4, SD 1. C02: 2, 2, 5 → MOS 3, SD √((1 + 1 + 4) / 2) = √3.
    assert table.loc[C01, "mos"] == pytest.approx(4.0, abs=1e-12)
    assert table.loc[C01, "sd"] == pytest.approx(1.0, abs=1e-12)
    assert table.loc[C02, "mos"] == pytest.approx(3.0, abs=1e-12)
    assert table.loc[C02, "sd"] == pytest.approx(math.sqrt(3), abs=1e-12)
    assert table["n"].tolist() == [3, 3]
    # sureal's normal interval: MOS ± 1.95996 · SD / √n.
    assert table.loc[C02, "ci95_normal_high"] == pytest.approx(3.0 + 1.95996, abs=1e-9)


def test_p808_condition_pattern_groups_join_like_p808s_condition_name(tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    path.write_text(
        "workerid,file,vote,speaker,condition_num\n"
        "W1,https://x.org/D501_C03_M2.wav,4,M2,03\n"
        "W2,https://x.org/D501_C03_M2.wav,2,M2,03\n"
    )
    frame = read_ratings(path)
    assert frame["condition"].tolist() == ["03____M2", "03____M2"]  # keys in name order
    assert frame["score"].mean() == 3.0


def test_p808s_per_clip_summary_is_refused_with_the_file_to_use(tmp_path: Path) -> None:
    path = tmp_path / "batch_votes_per_clip.csv"
    path.write_text(
        "file_url,short_file_name,vote_1,vote_2,n,MOS,std,95%CI\nu/a.wav,a.wav,4,5,2,4.5,0.7,1\n"
    )
    with pytest.raises(CommandError, match=r"no worker ids.*votes_per_worker"):
        score(ratings=path, kind="acr", out=tmp_path / "o.csv")


def test_p808_votes_of_several_scales_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "batch_all_votes_per_clip.csv"
    path.write_text("workerid,file,vote,question_type\nW1,a.wav,4,MOS_SIG\nW1,a.wav,2,MOS_BAK\n")
    with pytest.raises(StatsInputError, match="mixes the scales MOS_BAK, MOS_SIG"):
        read_ratings(path)


def test_a_non_numeric_p808_vote_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "votes.txt"  # any name: --format p808 says what it is
    path.write_text("workerid,file,vote\nW1,a.wav,4\nW2,a.wav,good\n")
    with pytest.raises(CommandError, match=r"non-numeric score in line\(s\) 3 \(values 'good'\)"):
        score(ratings=path, kind="acr", format="p808", out=tmp_path / "o.csv")


# --- format detection --------------------------------------------------------------------------


def test_a_file_of_no_known_format_is_an_error_naming_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("user,image,rating\na,x,3\n")
    with pytest.raises(CommandError) as caught:
        score(ratings=path, kind="acr", out=tmp_path / "o.csv")
    message = str(caught.value)
    assert "cannot tell the format" in message
    for name in ("csv: ", "sureal-json: ", "p808: ", "rater, stimulus, score", "--format"):
        assert name in message


def test_sureal_python_datasets_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "dataset.py"
    path.write_text("import os\nref_videos = []\n")
    with pytest.raises(StatsInputError, match="not executed"):
        detect_format(path)


def test_the_sureal_format_is_refused_for_pairwise_trials(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="pairwise trials are read from CSV"):
        score(
            ratings=data("pairwise", "pwcmp_tmo_video.csv"),
            kind="pairwise",
            format="sureal-json",
            out=tmp_path / "o.csv",
        )


# --- the group column --------------------------------------------------------------------------

# The same two stimuli rated in two labs: lab1 x 5,4,3 y 2,3,4; lab2 x 1,2,3 y 5,5,2.
GROUPED = "rater,stimulus,score,group\n" + "".join(
    f"{rater},{stimulus},{value},{group}\n"
    for group, raters, x, y in [
        ("lab1", "abc", (5, 4, 3), (2, 3, 4)),
        ("lab2", "def", (1, 2, 3), (5, 5, 2)),
    ]
    for stimulus, values in (("x", x), ("y", y))
    for rater, value in zip(raters, values, strict=True)
)


def test_a_ratings_file_with_a_group_column_is_scored_per_group(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text(GROUPED)
    text = score(ratings=path, kind="acr", out=tmp_path / "o.csv", resamples=200)
    table = pd.read_csv(tmp_path / "o.csv")
    assert list(table.columns) == ["group", *RATING_COLUMNS]
    assert table[["group", "stimulus", "mos"]].values.tolist() == [
        ["lab1", "x", 4.0],
        ["lab1", "y", 3.0],
        ["lab2", "x", 2.0],
        ["lab2", "y", 4.0],
    ]
    assert "grouping: each value of column 'group' scored separately (2 groups" in text


@pytest.mark.parametrize("options", [{"pool": True}, {"group": ""}])
def test_pool_scores_every_group_together(options: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text(GROUPED)
    text = score(ratings=path, kind="acr", out=tmp_path / "o.csv", resamples=200, **options)
    table = pd.read_csv(tmp_path / "o.csv")
    assert list(table.columns) == RATING_COLUMNS
    assert table[["stimulus", "mos", "n"]].values.tolist() == [["x", 3.0, 6], ["y", 3.5, 6]]
    assert "grouping: all rows pooled (its group column ignored)" in text


def test_screening_runs_in_each_group(tmp_path: Path) -> None:
    nflx = pd.read_csv(nflx_csv(), dtype=str)
    doubled = pd.concat([nflx.assign(group="A"), nflx.assign(group="B")])
    path = tmp_path / "doubled.csv"
    doubled.to_csv(path, index=False)
    text = score(
        ratings=path,
        kind="acr",
        screening="bt500",
        variant="sureal",
        out=tmp_path / "o.csv",
        resamples=100,
    )
    raters = pd.read_csv(tmp_path / "o.raters.csv")
    assert list(raters.columns) == ["group", "rater", "rejected"]
    # sureal's BT.500 rejects s03 on NFLX; each copy is screened on its own.
    assert raters.loc[raters["rejected"], ["group", "rater"]].values.tolist() == [
        ["A", "s03"],
        ["B", "s03"],
    ]
    assert "bt500 (sureal) in group 'B': 1 of 26 raters rejected" in text


def test_pairwise_trials_are_scaled_per_group_by_default(tmp_path: Path) -> None:
    options = {"kind": "pairwise", "resamples": 50, "orderings": 200}
    text = score(ratings=data("pairwise", "pwcmp_tmo_video.csv"), out=tmp_path / "g.csv", **options)
    grouped = pd.read_csv(tmp_path / "g.csv")
    assert grouped["group"].nunique() == 5
    assert len(grouped) == 35
    assert "each value of column 'group' scored separately (5 groups" in text

    text = score(
        ratings=data("pairwise", "pwcmp_tmo_video.csv"),
        out=tmp_path / "p.csv",
        pool=True,
        **options,
    )
    pooled = pd.read_csv(tmp_path / "p.csv")
    assert set(pooled["group"]) == {"all"}
    assert len(pooled) == 7
    assert pooled["bt_elo"].mean() == pytest.approx(2000.0, abs=1e-6)
    assert "all rows pooled" in text


def test_pool_and_group_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--pool and --group"):
        score(ratings=nflx_csv(), kind="acr", pool=True, group="content", out=tmp_path / "o.csv")
