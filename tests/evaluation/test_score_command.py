"""``manage.py score`` on the real public datasets, and its errors on malformed files."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from support import data

from perceptlab.evaluation.scoring import PAIRWISE_COLUMNS, RATING_COLUMNS


def score(**options: object) -> str:
    out = io.StringIO()
    call_command("score", stdout=out, **options)
    return out.getvalue()


def test_acr_scores_have_the_documented_columns_and_the_plain_mean(tmp_path: Path) -> None:
    out = tmp_path / "nflx.csv"
    score(ratings=data("sureal", "NFLX_dataset_public_raw.csv"), kind="acr", out=out, resamples=500)
    scores = pd.read_csv(out)
    assert list(scores.columns) == RATING_COLUMNS
    raw = pd.read_csv(data("sureal", "NFLX_dataset_public_raw.csv"))
    plain = raw.groupby("stimulus")["score"].agg(["mean", "std", "count"])
    table = scores.set_index("stimulus").loc[plain.index]
    assert table["mos"].to_numpy() == pytest.approx(plain["mean"].to_numpy(), abs=1e-12)
    assert table["n"].to_numpy().tolist() == plain["count"].tolist()
    half = 1.95996 * plain["std"] / plain["count"] ** 0.5
    assert (table["ci95_normal_high"] - table["mos"]).to_numpy() == pytest.approx(
        half.to_numpy(), abs=1e-9
    )


def test_screening_writes_the_rater_verdicts_beside_the_scores(tmp_path: Path) -> None:
    out = tmp_path / "nflx.csv"
    text = score(
        ratings=data("sureal", "NFLX_dataset_public_raw.csv"),
        kind="acr",
        screening="bt500",
        variant="sureal",
        out=out,
        resamples=200,
    )
    raters = pd.read_csv(tmp_path / "nflx.raters.csv")
    assert list(raters.columns) == ["rater", "rejected"]
    assert len(raters) == 26
    # sureal's BT.500 (quirks included) rejects s03 on NFLX (shared/research/statistics.md §2).
    assert raters.loc[raters["rejected"], "rater"].tolist() == ["s03"]
    assert "1 of 26 raters rejected" in text


def test_pairwise_groups_are_scaled_separately(tmp_path: Path) -> None:
    out = tmp_path / "tmo.csv"
    score(
        ratings=data("pairwise", "pwcmp_tmo_video.csv"),
        kind="pairwise",
        group="group",
        out=out,
        resamples=100,
        orderings=500,
    )
    scores = pd.read_csv(out)
    assert list(scores.columns) == PAIRWISE_COLUMNS
    assert scores["group"].nunique() == 5
    for _, group in scores.groupby("group"):
        assert len(group) == 7
        assert group["bt_elo"].mean() == pytest.approx(2000.0, abs=1e-6)
        assert (group["ci95_low"] <= group["bt_elo"]).all()
        assert (group["bt_elo"] <= group["ci95_high"]).all()


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("rater,stimulus\nr1,s1\n")
    with pytest.raises(CommandError, match="score"):
        score(ratings=bad, kind="acr", out=tmp_path / "o.csv")


def test_a_file_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"nope\.csv"):
        score(ratings=tmp_path / "nope.csv", kind="acr", out=tmp_path / "o.csv")


def test_an_unknown_pairwise_format_lists_the_accepted_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(CommandError, match="winner"):
        score(ratings=bad, kind="pairwise", out=tmp_path / "o.csv")


def test_a_missing_group_column_lists_the_columns(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--group 'scene'"):
        score(
            ratings=data("pairwise", "pwcmp_tmo_video.csv"),
            kind="pairwise",
            group="scene",
            out=tmp_path / "o.csv",
        )


# The HiFiC paper's user study (Mentzer et al., NeurIPS 2020, Fig. 3; the bar chart
# img_other/userstudy.png of hific/hific.github.io), best first: HiFiC Hi, HiFiC Mi,
# BPG 0.504 bpp, then three methods whose bars overlap within their error bars (M&S 0.405,
# HiFiC Lo, BPG 0.390), then M&S 0.272, no-GAN 0.118, M&S 0.133. bpg_med_3_v2 is the
# 0.504-bpp BPG: it beats bpg_med_2_v2 121 to 21 head to head.
HIFIC_TOP = ["ours_gan_high", "ours_gan_med", "bpg_med_3_v2"]
HIFIC_TIED = {"minnen_mse_high", "ours_gan_low", "bpg_med_2_v2"}
HIFIC_BOTTOM = ["minnen_mse_med", "ours_lpips_low", "minnen_mse_low"]


@pytest.mark.slow
def test_the_hific_user_study_ranking_comes_out_of_score(tmp_path: Path) -> None:
    out = tmp_path / "hific.csv"
    text = score(
        ratings=data("pairwise", "hific_userstudy.csv"),
        kind="pairwise",
        out=out,
        resamples=300,
        orderings=2000,
    )
    assert "5218 trials by 20 raters" in text
    scores = pd.read_csv(out)
    for column in ("bt_elo", "elo_online", "thurstone"):
        ranked = scores.sort_values(column, ascending=False)["condition"].tolist()
        assert ranked[:3] == HIFIC_TOP, column
        assert set(ranked[3:6]) == HIFIC_TIED, column
        assert ranked[6:] == HIFIC_BOTTOM, column
    top = scores.set_index("condition")
    # HiFiC Hi beats BPG at 0.504 bpp beyond the rater-bootstrap interval.
    assert top.loc["ours_gan_high", "ci95_low"] > top.loc["bpg_med_3_v2", "ci95_high"]
