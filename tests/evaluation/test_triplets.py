"""Triplet (JPEG AIC-3 BTC/PTC) scaling: the model, its fit, intervals, QC, readers, the CLI.

Simulated data come from the model itself (Thurstone Case V on triplets with the source as
pivot, σ = 1.4826, boosted values h(d) = γ1·d + γ2·d²); "not sure" is drawn with probability
c·2·min(Φ, 1 − Φ), more often near a tie, and split so that P(left) + ½·P(not sure) = Φ, the
expectation the likelihood's ½-counting assumes. The real SDR25 files are checked against the
published JPEG AI scale (``bench/aic3_check.py`` prints the full comparison).
"""

from __future__ import annotations

import io
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from scipy.optimize import approx_fprime, minimize
from scipy.special import ndtr, ndtri
from scipy.stats import spearmanr
from support import data

from perceptlab.evaluation.scoring import TRIPLET_COLUMNS
from perceptlab.evaluation.stats import triplets
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.triplet_io import (
    SDR25_COLUMNS,
    read_published_scale,
    read_triplet_csv,
    read_triplet_files,
)

BTC_FILE = "JPEG_AIC_SDR_BTC_JPEG_AI_responses_2025.02.28_v1.csv"
PTC_FILE = "JPEG_AIC_SDR_PTC_JPEG_AI_responses_2025.02.28_v1.csv"
TRUE_D = np.array([0.2, 0.45, 0.8, 1.2, 1.7, 2.3])
TRUE_GAMMA = (2.0, 0.2)
SIGMA = 1.0 / ndtri(0.75)  # written here independently of the module
SDR25_HEADER = (
    "assignment,worker,method,task,question_id,img_num,codec_left,codec_right,codec_pivot,"
    "dlevel_left,dlevel_right,dlevel_pivot,img_left,img_right,img_pivot,is_same,is_cross,"
    "is_bias,is_trap,question_order,response,submission_time,response_time,reload_count,"
    "resolution"
)


# -- simulation ------------------------------------------------------------------------------


def simulate(
    seed: int,
    *,
    d: np.ndarray = TRUE_D,
    gamma: tuple[float, float] = TRUE_GAMMA,
    btc_per_pair: int = 60,
    ptc_per_pair: int = 60,
    ptc_levels: tuple[int, ...] = (0, 2, 4, 6),
    not_sure: float = 0.3,
    raters: int = 30,
    rater_spread: float = 0.0,
    source: str = "1",
    codec: str = "6",
) -> pd.DataFrame:
    """Triplet responses drawn from the model; ``rater_spread``: SD of log rater multipliers
    on the differences (0: every rater follows the same scale)."""
    rng = np.random.default_rng(seed)
    plain = np.concatenate([[0.0], d])
    boosted = gamma[0] * plain + gamma[1] * plain**2
    multipliers = {m: np.exp(rng.normal(0.0, rater_spread, raters)) for m in ("BTC", "PTC")}
    rows = []
    designs = [("BTC", range(len(plain)), btc_per_pair, boosted)]
    if ptc_per_pair:
        designs.append(("PTC", ptc_levels, ptc_per_pair, plain))
    for method, levels, per_pair, values in designs:
        for a, b in combinations(levels, 2):
            for _ in range(per_pair):
                left, right = (a, b) if rng.random() < 0.5 else (b, a)
                rater = int(rng.integers(raters))
                z = multipliers[method][rater] * (values[left] - values[right])
                response = _draw(rng, ndtr(z / SIGMA), not_sure)
                rows.append((method, rater, left, right, response))
    frame = pd.DataFrame(rows, columns=["method", "rater", "level_left", "level_right", "response"])
    return frame.assign(
        rater=frame["method"] + ":" + frame["rater"].astype(str),
        batch=frame["method"] + ":" + frame["rater"].astype(str),
        source=source,
        codec_pivot="0",
        level_pivot=0,
        codec_left=np.where(frame["level_left"] == 0, "0", codec),
        codec_right=np.where(frame["level_right"] == 0, "0", codec),
        role="scale",
    )


def _draw(rng: np.random.Generator, p_left: float, not_sure: float) -> str:
    p_unsure = not_sure * 2.0 * min(p_left, 1.0 - p_left)
    u = rng.random()
    if u < p_left - p_unsure / 2.0:
        return "left"
    if u < p_left + p_unsure / 2.0:
        return "not sure"
    return "right"


def fitted(frame: pd.DataFrame, **options: object) -> triplets.TripletScale:
    return triplets.scale_triplets(frame, **options)  # type: ignore[arg-type]


# -- the likelihood --------------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["free", "exponential"])
def test_the_gradient_matches_finite_differences(curve: triplets.Curve) -> None:
    frame = simulate(1)
    (design,) = triplets.prepare(frame, curve=curve).designs
    k, n = design.counts()
    rng = np.random.default_rng(2)
    for _ in range(3):
        theta = design.start() + rng.uniform(0.0, 0.5, len(design.start()))
        _, grad = triplets.negative_log_likelihood(theta, design, k, n)
        numeric = approx_fprime(
            theta, lambda t: triplets.negative_log_likelihood(t, design, k, n)[0], 1e-6
        )
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-3)


def test_the_likelihood_is_the_sum_over_single_responses() -> None:
    frame = simulate(3)
    (design,) = triplets.prepare(frame).designs
    k, n = design.counts()
    theta = np.concatenate([TRUE_D, TRUE_GAMMA])
    value, _ = triplets.negative_log_likelihood(theta, design, k, n)
    plain = np.concatenate([[0.0], TRUE_D])
    h = TRUE_GAMMA[0] * plain + TRUE_GAMMA[1] * plain**2
    scale = np.where(frame["method"].eq("BTC").to_numpy()[:, None], h, plain)
    rows = np.arange(len(frame))
    u = scale[rows, frame["level_left"]] - scale[rows, frame["level_right"]]
    y = frame["response"].map({"left": 1.0, "not sure": 0.5, "right": 0.0}).to_numpy()
    p = ndtr(u / SIGMA)
    assert value == pytest.approx(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-10)


def test_a_plain_fit_equals_an_independent_case_v_maximum_likelihood() -> None:
    """PTC only: the fit must be the plain Thurstone Case V MLE, written here from scratch."""
    frame = simulate(4, ptc_levels=(0, 1, 2, 3, 4, 5, 6), btc_per_pair=0, ptc_per_pair=40)
    frame = frame.loc[frame["method"] == "PTC"]
    ours = fitted(frame, bootstrap="none").scale
    left, right = frame["level_left"].to_numpy(), frame["level_right"].to_numpy()
    y = frame["response"].map({"left": 1.0, "not sure": 0.5, "right": 0.0}).to_numpy()

    def nll(values: np.ndarray) -> float:
        s = np.concatenate([[0.0], values])
        p = ndtr((s[left] - s[right]) / SIGMA)
        return float(-np.sum(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))

    tight = {"xatol": 1e-9, "fatol": 1e-12, "maxiter": 40_000, "maxfev": 40_000}
    direct = minimize(nll, np.linspace(0.1, 1.5, 6), method="Nelder-Mead", options=tight)
    assert (ours["scale"] == "plain").all()
    np.testing.assert_allclose(ours["jnd"], direct.x, atol=2e-4)


def test_one_jnd_is_seventy_five_percent() -> None:
    assert ndtr(1.0 / triplets.SIGMA) == pytest.approx(0.75, abs=1e-12)
    assert triplets.SIGMA == pytest.approx(1.4826, abs=1e-4)


# -- recovery, maps, "not sure" --------------------------------------------------------------


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_simulated_scale_is_recovered_within_its_interval(seed: int) -> None:
    result = fitted(simulate(seed), bootstrap="responses", n_replicates=80, seed=seed)
    scale = result.scale
    half = (scale["ci95_high"] - scale["ci95_low"]) / 2.0
    error = (scale["jnd"] - TRUE_D).abs()
    # Every value within 1.5 half-widths of the truth, and most truths inside the interval.
    assert (error <= 1.5 * half).all(), pd.DataFrame({"error": error, "half": half})
    assert ((scale["ci95_low"] <= TRUE_D) & (TRUE_D <= scale["ci95_high"])).sum() >= 4


def test_the_boosting_map_is_recovered_and_reported() -> None:
    result = fitted(simulate(21, btc_per_pair=150, ptc_per_pair=150), bootstrap="none")
    (row,) = result.maps.itertuples()
    assert row.methods == "BTC+PTC"
    assert row.gamma1 == pytest.approx(TRUE_GAMMA[0], abs=0.45)
    assert row.gamma1 >= 0 and row.gamma2 >= 0
    scale = result.scale
    np.testing.assert_allclose(
        scale["boosted"], triplets.boost_map(scale["jnd"].to_numpy(), row.gamma1, row.gamma2)
    )
    assert (scale["boosted"] >= scale["jnd"]).all()  # the boost stretches the scale


def test_the_boosting_map_is_monotone_and_keeps_the_source_at_zero() -> None:
    d = np.linspace(0.0, 5.0, 101)
    for gamma1, gamma2 in [(0.5, 0.0), (1.0, 2.0), (0.0, 0.3), (3.0, 0.01)]:
        h = triplets.boost_map(d, gamma1, gamma2)
        assert h[0] == 0.0
        assert np.all(np.diff(h) >= 0.0)


def test_only_boosted_responses_give_the_boosted_scale_and_say_so() -> None:
    frame = simulate(5, ptc_per_pair=0)
    result = fitted(frame, bootstrap="none")
    assert (result.scale["scale"] == "boosted").all()
    assert result.maps["gamma1"].isna().all()
    assert any("only BTC responses" in note and "boosted scale" in note for note in result.notes)
    plain = TRUE_GAMMA[0] * TRUE_D + TRUE_GAMMA[1] * TRUE_D**2
    assert spearmanr(result.scale["jnd"], plain).statistic == pytest.approx(1.0)


def test_not_sure_counts_half_to_each_side() -> None:
    frame = simulate(6)
    unsure = np.flatnonzero(frame["response"].eq("not sure").to_numpy())
    assert unsure.size >= 100
    split = frame.copy()
    # Every pair of "not sure" answers to one question is one "left" and one "right".
    for _, group in frame.iloc[unsure].groupby(["method", "level_left", "level_right"]):
        index = group.index.to_numpy()
        half = len(index) // 2
        split.loc[index[:half], "response"] = "left"
        split.loc[index[half : 2 * half], "response"] = "right"
    odd = split["response"].eq("not sure")
    assert odd.sum() < unsure.size / 4
    a = fitted(frame.loc[~odd], bootstrap="none").scale
    b = fitted(split.loc[~odd], bootstrap="none").scale
    np.testing.assert_allclose(a["jnd"], b["jnd"], atol=1e-6)
    (design,) = triplets.prepare(frame.iloc[unsure[:1]]).designs
    k, n = design.counts()
    assert (k.tolist(), n.tolist()) == ([0.5], [1.0])


def test_cross_codec_rows_without_a_scale_of_their_own_are_left_out() -> None:
    frame = simulate(7)
    cross = frame.iloc[:5].assign(codec_left="9", level_left=3, codec_right="6", level_right=2)
    result = fitted(pd.concat([frame, cross], ignore_index=True), bootstrap="none")
    alone = fitted(frame, bootstrap="none")
    np.testing.assert_allclose(result.scale["jnd"], alone.scale["jnd"])
    assert any("5 cross-codec responses" in note for note in result.notes)


def test_cross_codec_rows_between_scaled_codecs_are_fitted() -> None:
    one = simulate(8, codec="6")
    two = simulate(9, codec="7", d=TRUE_D * 0.5)
    cross = one.iloc[:40].assign(codec_left="7", codec_right="6", level_left=6, level_right=3)
    result = fitted(pd.concat([one, two, cross], ignore_index=True), bootstrap="none")
    assert sorted(result.maps["codec"]) == ["6", "7"]
    assert not any("cross-codec" in note for note in result.notes)


def test_a_pivot_other_than_the_source_is_refused() -> None:
    frame = simulate(10).assign(level_pivot=2)
    with pytest.raises(StatsInputError, match="pivot is not the source"):
        triplets.prepare(frame)


def test_the_exponential_curve_is_exponential_in_the_level() -> None:
    d = 0.05 * np.exp(0.5 * np.arange(1, 7))
    frame = simulate(14, d=d, btc_per_pair=0, ptc_per_pair=80, ptc_levels=tuple(range(7)))
    result = fitted(frame, bootstrap="none", curve="exponential")
    jnd = result.scale["jnd"].to_numpy()
    steps = np.diff(np.log(jnd))
    np.testing.assert_allclose(steps, steps[0])
    assert steps[0] == pytest.approx(0.5, abs=0.15)


# -- intervals -------------------------------------------------------------------------------


def _mean_widths(frame: pd.DataFrame) -> tuple[float, float]:
    widths = []
    for bootstrap in ("raters", "responses"):
        scale = fitted(frame, bootstrap=bootstrap, n_replicates=100, seed=3).scale
        widths.append(float((scale["ci95_high"] - scale["ci95_low"]).mean()))
    return widths[0], widths[1]


@pytest.mark.slow  # 400 bootstrap fits (~3 s; far more where BLAS threads contend)
def test_rater_intervals_are_wider_when_raters_disagree() -> None:
    """Resampling responses ignores between-rater variance (AIC-3's published intervals);
    with raters who each stretch the scale differently the rater bootstrap is clearly wider,
    with raters who all follow one scale the two agree."""
    raters, responses = _mean_widths(simulate(15, raters=12, rater_spread=0.6))
    assert raters > 1.3 * responses
    raters, responses = _mean_widths(simulate(15, raters=30, rater_spread=0.0))
    assert 0.75 < raters / responses < 1.33


def test_intervals_are_seeded_and_hold_the_estimate() -> None:
    frame = simulate(16)
    a = fitted(frame, n_replicates=40, seed=5).scale
    b = fitted(frame, n_replicates=40, seed=5).scale
    c = fitted(frame, n_replicates=40, seed=6).scale
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci95_low"], c["ci95_low"])
    assert (a["ci95_low"] <= a["jnd"]).all() and (a["jnd"] <= a["ci95_high"]).all()


def test_raters_are_resampled_within_their_method() -> None:
    strata = np.array([0, 0, 0, 1, 1])
    weights = triplets._rater_weights(strata, 200, np.random.default_rng(0))
    assert (weights[:, :3].sum(axis=1) == 3).all() and (weights[:, 3:].sum(axis=1) == 2).all()


def test_bad_bootstrap_options_are_refused() -> None:
    frame = simulate(17)
    with pytest.raises(StatsInputError, match="bootstrap='bca' is not one of"):
        fitted(frame, bootstrap="bca")
    with pytest.raises(StatsInputError, match="at least 2"):
        fitted(frame, n_replicates=1)


# -- quality control -------------------------------------------------------------------------


def qc_frame() -> pd.DataFrame:
    """Rater a: traps 3 right + 1 not sure; rater b: traps all wrong and always 'right'."""
    rows = []
    for rater, answers in (("a", ["right", "right", "left", "not sure"]), ("b", ["left"] * 4)):
        for i, answer in enumerate(answers):
            # the distorted image (level 10) is on the right, except in the third trap
            left, right = (10, 0) if i == 2 else (0, 10)
            rows.append((rater, "trap", left, right, answer))
    rows += [("a", "scale", 1, 2, r) for r in ["left", "right", "left", "right", "not sure"]]
    rows += [("b", "scale", 1, 2, "right")] * 6
    rows += [("b", "bias", 3, 3, "right")]
    frame = pd.DataFrame(rows, columns=["rater", "role", "level_left", "level_right", "response"])
    return frame.assign(
        batch=frame["rater"] + "-1",
        source="2",
        method="PTC",
        codec_left=np.where(frame["level_left"] == 0, "0", "6"),
        codec_right=np.where(frame["level_right"] == 0, "0", "6"),
        level_pivot=0,
    )


def test_qc_reports_trap_accuracy_and_side_bias_per_rater() -> None:
    qc = triplets.triplet_qc(qc_frame()).set_index("rater")
    assert qc.loc["a", "trap_accuracy"] == pytest.approx(3.5 / 4)
    assert qc.loc["b", "trap_accuracy"] == pytest.approx(0.25)  # the third trap: left is right
    assert qc.loc["a", "right_share"] == pytest.approx(0.5)
    assert qc.loc["b", "right_share"] == pytest.approx(1.0)
    assert qc.loc["b", "bias_questions"] == 1
    assert qc.loc["a", "side_bias_p"] == pytest.approx(1.0)
    assert qc.loc["b", "side_bias_p"] == pytest.approx(2 * 0.5**7)


def test_the_batch_filter_removes_unreliable_batches_and_says_why() -> None:
    result = triplets.filter_reliable_batches(qc_frame())
    batches = result.batches.set_index("batch")
    assert batches["kept"].to_dict() == {"a-1": True, "b-1": False}
    assert batches.loc["b-1", "reason"] == "traps and side bias"
    assert set(result.kept["rater"]) == {"a"}
    assert "PTC: kept 1 of 2 batches" in result.describe()
    with pytest.raises(StatsInputError, match="min_trap_accuracy"):
        triplets.filter_reliable_batches(qc_frame(), min_trap_accuracy=1.5)


def test_traps_and_bias_questions_stay_out_of_the_fit() -> None:
    frame = simulate(18)
    traps = frame.iloc[:50].assign(
        role="trap", codec_left="0", level_left=0, codec_right="6", level_right=6, response="left"
    )
    with_qc = fitted(pd.concat([frame, traps], ignore_index=True), bootstrap="none")
    np.testing.assert_allclose(with_qc.scale["jnd"], fitted(frame, bootstrap="none").scale["jnd"])
    assert any("50 trap" in note for note in with_qc.notes)


# -- readers ---------------------------------------------------------------------------------


def sdr25_csv(tmp_path: Path, rows: list[str], name: str = "btc.csv") -> Path:
    path = tmp_path / name
    path.write_text(SDR25_HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def sdr25_row(
    *,
    worker: int = 157,
    method: str = "BTC",
    question: int = 62,
    img: int = 2,
    left: tuple[int, int] = (0, 0),
    right: tuple[int, int] = (6, 2),
    pivot: int = 0,
    trap: int = 0,
    bias: int = 0,
    response: str = "right",
    assignment: str = "675458951692f78e5f7bf0c3",
) -> str:
    return (
        f"{assignment},{worker},{method},1,{question},{img},{left[0]},{right[0]},0,{left[1]},"
        f"{right[1]},{pivot},L.png,R.png,P.png,1,0,{bias},{trap},1,{response},"
        "2024-12-09T01:53:47.007Z,2515,0,1920x1080"
    )


def test_the_sdr25_reader_maps_rows_to_the_triplet_frame(tmp_path: Path) -> None:
    path = sdr25_csv(
        tmp_path,
        [
            sdr25_row(),
            sdr25_row(left=(6, 10), right=(0, 0), trap=1, response="notsure", question=9),
            sdr25_row(left=(6, 8), right=(6, 8), bias=1, response="left", question=3),
            sdr25_row(response="skip"),
        ],
    )
    frame = read_triplet_csv(path)
    assert frame.attrs == {"layout": "sdr25", "dropped": {"skip (no judgment given)": 1}}
    assert frame["rater"].tolist() == ["BTC:157"] * 3
    assert frame["batch"].iloc[0] == "675458951692f78e5f7bf0c3"
    assert frame["role"].tolist() == ["scale", "trap", "bias"]
    assert frame["response"].tolist() == ["right", "not sure", "left"]
    assert frame["question"].tolist() == ["BTC:62", "BTC:9", "BTC:3"]
    assert frame.iloc[1][["codec_left", "level_left", "level_right"]].tolist() == ["6", 10, 0]
    assert frame["response_time"].tolist() == ["2515"] * 3  # other columns carried along


def test_btc_and_ptc_workers_with_the_same_number_are_different_raters(tmp_path: Path) -> None:
    btc = sdr25_csv(tmp_path, [sdr25_row(worker=1)], "btc.csv")
    ptc = sdr25_csv(tmp_path, [sdr25_row(worker=1, method="PTC")], "ptc.csv")
    frame = read_triplet_files([btc, ptc])
    assert frame["rater"].tolist() == ["BTC:1", "PTC:1"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (sdr25_row(response="maybe"), "line 3, column response: 'maybe' is not one of left"),
        (sdr25_row(method="DCR"), "line 3, column method: 'DCR' is not one of BTC, PTC"),
        (sdr25_row(pivot=3), "pivot is not the source .* on line\\(s\\) 3"),
        (sdr25_row(trap=2), "line 3, column is_trap: '2' is not 0 or 1"),
        (
            sdr25_row().replace(",6,0,0,2,0,", ",6,0,0,2.5,0,"),
            "column dlevel_right: '2.5' is not an integer",
        ),
    ],
)
def test_the_sdr25_reader_names_file_line_and_column_of_bad_values(
    tmp_path: Path, row: str, message: str
) -> None:
    path = sdr25_csv(tmp_path, [sdr25_row(), row])
    with pytest.raises(StatsInputError, match=f"{path.name}.*{message}"):
        read_triplet_csv(path)


def test_an_unknown_header_lists_both_layouts(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(StatsInputError, match=r"match no triplet layout.*SDR25.*platform"):
        read_triplet_csv(path)
    with pytest.raises(StatsInputError, match="does not exist"):
        read_triplet_csv(tmp_path / "missing.csv")


def test_the_platform_layout_needs_only_the_documented_columns(tmp_path: Path) -> None:
    path = tmp_path / "platform.csv"
    path.write_text(
        "rater,source,method,codec_left,level_left,codec_right,level_right,response\n"
        "r1,kodim01,PTC,jpegai,2,source,0,not sure\n"
        "r1,kodim01,PTC,jpegai,2,jpegai,2,left\n"
    )
    frame = read_triplet_csv(path)
    assert frame.attrs["layout"] == "platform"
    assert frame["batch"].tolist() == ["r1", "r1"]
    assert frame["role"].tolist() == ["scale", "bias"]  # same image on both sides
    assert frame["level_pivot"].tolist() == [0, 0]
    path.write_text(path.read_text().replace("not sure", "unsure"))
    with pytest.raises(StatsInputError, match="line 2, column response: 'unsure'"):
        read_triplet_csv(path)


def test_the_published_scale_reader(tmp_path: Path) -> None:
    scale = read_published_scale(data("aic3", "published_jnd_sources_2_6.csv"))
    assert len(scale) == 120 and set(scale["source"]) == {"2", "6"}  # 6 codecs × 10 levels
    jpeg_ai = scale.loc[(scale["codec"] == "6") & (scale["source"] == "2")]
    assert jpeg_ai["level"].tolist() == list(range(1, 11))
    assert (jpeg_ai["ci95_low"] <= jpeg_ai["jnd"]).all()
    bad = tmp_path / "p.csv"
    bad.write_text("img_num,codec,dlevel,distortion,CI_min,CI_max\n2,6,1,x,0,1\n")
    with pytest.raises(StatsInputError, match="line 2, column distortion: 'x' is not a number"):
        read_published_scale(bad)


# -- the real SDR25 responses ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sdr25() -> pd.DataFrame:
    return read_triplet_files([data("aic3", BTC_FILE), data("aic3", PTC_FILE)])


@pytest.mark.slow  # reads 95,490 rows (~3 s)
def test_the_real_files_hold_the_documented_responses(sdr25: pd.DataFrame) -> None:
    for name in (BTC_FILE, PTC_FILE):
        assert set(SDR25_COLUMNS) <= set(pd.read_csv(data("aic3", name), nrows=0).columns)
    assert len(sdr25) == 95_490 - 328  # the skips are dropped
    assert sdr25.groupby("method")["rater"].nunique().to_dict() == {"BTC": 386, "PTC": 73}
    assert sdr25["role"].value_counts().to_dict() == {"scale": 87_719, "trap": 6_964, "bias": 479}


@pytest.mark.slow  # fits both sources with and without the filter (~5 s with the reading)
def test_the_published_jpeg_ai_scale_is_reproduced_where_it_can_be(sdr25: pd.DataFrame) -> None:
    """Agreement with the published JND of JPEG AI (sources 2 and 6), measured 2026-12 with
    the default filter and the free curve: level 10 of both sources inside the published
    interval (2 of 20 intervals), mean |difference| 0.362 JND, rank order the same but for a
    tie of levels 1 and 2 of source 2 (Spearman 0.988 and 1). The
    published low levels (0.01-0.18 JND at levels 1-5) come from AIC-3's rate-distortion curve
    and are not what the responses give level by level (ours 0.17-0.66; bench/aic3_check.py);
    the bounds keep today's agreement: 2 intervals, MAE ≤ 0.40 (measured + 10 %)."""
    published = read_published_scale(data("aic3", "published_jnd_sources_2_6.csv"))
    published = published.loc[published["codec"] == "6"]
    kept = triplets.filter_reliable_batches(sdr25).kept
    began = time.perf_counter()
    fitted(kept.loc[kept["source"] == "2"], bootstrap="none")
    assert time.perf_counter() - began < 1.0  # a full source, ≈13,000 BTC responses
    ours = fitted(kept.loc[kept["source"].isin(["2", "6"])], bootstrap="none").scale
    both = ours.merge(published, on=["source", "codec", "level"], suffixes=("", "_pub"))
    assert len(both) == 20
    inside = (both["jnd"] >= both["ci95_low_pub"]) & (both["jnd"] <= both["ci95_high_pub"])
    assert inside.sum() >= 2
    assert inside[both["level"] == 10].all()
    assert (both["jnd"] - both["jnd_pub"]).abs().mean() <= 0.40
    for _, rows in both.groupby("source"):  # levels 1 and 2 of source 2 tie (0.172 JND)
        assert spearmanr(rows["jnd"], rows["jnd_pub"]).statistic >= 0.98
    # Without the filter the top of the scale collapses (unreliable raters answer at random).
    raw = fitted(sdr25.loc[sdr25["source"].isin(["2", "6"])], bootstrap="none").scale
    assert (raw.loc[raw["level"] == 10, "jnd"] < 1.2).all()


# -- manage.py score --kind triplet -----------------------------------------------------------


def to_sdr25(frame: pd.DataFrame, path: Path) -> Path:
    """Write a simulated triplet frame in the SDR25 layout."""
    rows = [
        sdr25_row(
            worker=int(str(r.rater).split(":")[1]) + 1,
            method=str(r.method),
            question=i,
            img=int(str(r.source)),
            left=(int(str(r.codec_left)), int(r.level_left)),
            right=(int(str(r.codec_right)), int(r.level_right)),
            response="notsure" if r.response == "not sure" else str(r.response),
            assignment=f"{r.method}-{r.rater}",
        )
        for i, r in enumerate(frame.itertuples())
    ]
    path.write_text(SDR25_HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def score(**options: object) -> str:
    out = io.StringIO()
    call_command("score", stdout=out, **options)
    return out.getvalue()


def test_score_writes_one_row_per_distorted_image(tmp_path: Path) -> None:
    frame = simulate(19)
    btc = to_sdr25(frame.loc[frame["method"] == "BTC"], tmp_path / "btc.csv")
    ptc = to_sdr25(frame.loc[frame["method"] == "PTC"], tmp_path / "ptc.csv")
    out = tmp_path / "jnd.csv"
    text = score(kind="triplet", ratings=[btc, ptc], out=out, replicates=20, seed=1)
    written = pd.read_csv(out)
    assert list(written.columns) == TRIPLET_COLUMNS
    assert written["level"].tolist() == list(range(1, 7))
    assert (written["img_num"] == 1).all() and (written["codec"] == 6).all()
    direct = fitted(read_triplet_files([btc, ptc]), n_replicates=20, seed=1).scale
    np.testing.assert_allclose(written["jnd"], direct["jnd"], rtol=1e-6)
    np.testing.assert_allclose(written["ci95_low"], direct["ci95_low"], rtol=1e-6)
    assert "20 bootstrap replicates resampling raters" in text
    qc = pd.read_csv(tmp_path / "jnd.raters.csv")
    assert {"rater", "trap_accuracy", "right_share"} <= set(qc.columns)
    options = {"replicates": 20, "bootstrap": "responses", "filter_batches": True}
    score(kind="triplet", ratings=[btc, ptc], out=out, **options)
    assert len(pd.read_csv(out)) == 6


def test_score_refuses_options_of_the_other_kinds(tmp_path: Path) -> None:
    btc = to_sdr25(simulate(20, ptc_per_pair=0), tmp_path / "btc.csv")
    out = tmp_path / "jnd.csv"
    with pytest.raises(CommandError, match="--bootstrap bca applies to acr/dcr"):
        score(kind="triplet", ratings=[btc], out=out, bootstrap="bca")
    with pytest.raises(CommandError, match="reads one --ratings file"):
        score(kind="acr", ratings=[btc, btc], out=out)
    with pytest.raises(CommandError, match="apply to --kind triplet"):
        score(kind="acr", ratings=btc, out=out, replicates=10)
