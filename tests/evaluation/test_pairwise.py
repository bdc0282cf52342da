"""Pairwise scaling against choix (Bradley–Terry), sureal (Thurstone) and scipy, on real data.

Also the HiFiC user study (Mentzer et al., NeurIPS 2020): its published ranking must come out.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import types

import choix
import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components
from scipy.special import log_expit
from scipy.stats import binomtest, norm
from support import data
from sureal.dataset_reader import PairedCompDatasetReader
from sureal.pc_subjective_model import ThurstoneMlePairedCompSubjectiveModel

from perceptlab.evaluation.stats.bootstrap import rater_resamples
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise import (
    ELO_PER_THETA,
    SCALE_COLUMNS,
    TrialGroup,
    bradley_terry,
    online_elo,
    pairwise_significance,
    rater_bootstrap,
    scale_pairwise,
    thurstone_case_v,
    trial_groups,
    win_matrix,
)
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*")

TRIALS_FILES = ["pwcmp_tmo_video", "sureal_lukas_sharpening", "pwcmp_lightfield_quality"]
ALL_FILES = [*TRIALS_FILES, "hific_userstudy"]


@functools.cache
def trials(name: str, undecided: str = "half") -> pd.DataFrame:
    return read_pairwise_csv(data("pairwise", f"{name}.csv"), undecided=undecided)  # type: ignore[arg-type]


def groups(name: str) -> list[TrialGroup]:
    return trial_groups(trials(name))[0]


def rows_of(table: pd.DataFrame, label: object, column: str) -> np.ndarray:
    return table.loc[table["group"] == label, column].to_numpy()


# -- references ----------------------------------------------------------------------------


def choix_theta(group: TrialGroup) -> np.ndarray:
    """choix ILSR on doubled data: a decided trial is two wins, an undecided one a win each way."""
    data: list[tuple[int, int]] = []
    for a, b, s in zip(group.ia.tolist(), group.ib.tolist(), group.score.tolist(), strict=True):
        data += [(a, b)] * 2 if s == 1.0 else [(b, a)] * 2 if s == 0.0 else [(a, b), (b, a)]
    theta = choix.ilsr_pairwise(len(group.items), data, alpha=0.0, tol=1e-13, max_iter=10_000)
    return theta - theta.mean()


def sureal_v(group: TrialGroup) -> np.ndarray:
    """sureal's THURSTONE_MLE on its paired-comparison dataset format, built in memory.

    Every trial gets its own observer key so that repeated comparisons are all kept (sureal's
    ``os`` dict is keyed by (observer, other item)); the model only uses their sum.
    """
    dis = [
        {"asset_id": i, "content_id": 0, "path": str(it), "os": {}}
        for i, it in enumerate(group.items)
    ]
    for t, (a, b, s) in enumerate(zip(group.ia, group.ib, group.score, strict=True)):
        dis[int(a)]["os"][(f"t{t}", int(b))] = float(s)  # type: ignore[index]
    dataset = types.SimpleNamespace(
        dataset_name="pairwise",
        ref_videos=[{"content_id": 0, "content_name": "c", "path": "reference"}],
        dis_videos=dis,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # SLSQP prints its progress
        result = ThurstoneMlePairedCompSubjectiveModel(
            PairedCompDatasetReader(dataset)
        ).run_modeling()
    return np.asarray(result["quality_scores"])


def trial_loglik(group: TrialGroup, theta: np.ndarray, link: str) -> float:
    """Σ over trials of s·log F(θa − θb) + (1 − s)·log F(θb − θa), written per trial."""
    d = theta[group.ia] - theta[group.ib]
    log_f = log_expit if link == "logistic" else norm.logcdf
    return float(np.sum(group.score * log_f(d) + (1.0 - group.score) * log_f(-d)))


def wald_se_by_finite_differences(group: TrialGroup, theta: np.ndarray, link: str) -> np.ndarray:
    """√diag(P Σ Pᵀ), Σ = inverse of the numerical information with item 0 pinned (R's refcat)."""
    n, h = theta.size, 1e-4
    hessian = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            shifted = [theta.copy() for _ in range(4)]
            for m, (si, sj) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
                shifted[m][i] += si * h
                shifted[m][j] += sj * h
            values = [trial_loglik(group, x, link) for x in shifted]
            hessian[i, j] = (values[0] - values[1] - values[2] + values[3]) / (4 * h * h)
    sigma = np.zeros((n, n))
    sigma[1:, 1:] = np.linalg.inv(-hessian[1:, 1:])
    centre = np.eye(n) - np.ones((n, n)) / n
    return np.sqrt(np.diag(centre @ sigma @ centre))


# -- Bradley–Terry -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FILES)
def test_bradley_terry_equals_choix_in_every_group(name: str) -> None:
    scores = bradley_terry(trials(name), prior="none").scores
    for group in groups(name):
        np.testing.assert_allclose(
            rows_of(scores, group.label, "theta"), choix_theta(group), rtol=0, atol=1e-6
        )


def test_bradley_terry_equals_choix_newton_cg_on_the_tmo_study() -> None:
    scores = bradley_terry(trials("pwcmp_tmo_video"), prior="none").scores
    for group in groups("pwcmp_tmo_video"):
        data = [
            (a, b) if s == 1.0 else (b, a)
            for a, b, s in zip(group.ia, group.ib, group.score, strict=True)
        ]
        reference = choix.opt_pairwise(len(group.items), data, alpha=0.0, method="Newton-CG")
        reference = reference - reference.mean()
        np.testing.assert_allclose(rows_of(scores, group.label, "theta"), reference, atol=1e-6)


def test_the_elo_view_and_the_counts_follow_from_theta() -> None:
    scores = bradley_terry(trials("hific_userstudy")).scores
    np.testing.assert_allclose(scores["elo"], 2000 + 400 / np.log(10) * scores["theta"])
    np.testing.assert_allclose(scores["elo_se"], 400 / np.log(10) * scores["se"])
    assert scores["theta"].sum() == pytest.approx(0.0, abs=1e-12)
    frame = trials("hific_userstudy")
    n = pd.concat([frame["a"], frame["b"]]).value_counts()
    assert scores.set_index("condition")["n"].to_dict() == n.to_dict()
    assert (scores["wins"] + scores["losses"]).tolist() == scores["n"].astype(float).tolist()


@pytest.mark.parametrize(
    ("name", "label"), [("pwcmp_tmo_video", "corridor"), ("hific_userstudy", "all")]
)
def test_bradley_terry_standard_errors_are_the_sum_zero_wald_errors(name: str, label: str) -> None:
    result = bradley_terry(trials(name), prior="none")
    group = next(g for g in groups(name) if g.label == label)
    theta = rows_of(result.scores, label, "theta")
    expected = wald_se_by_finite_differences(group, theta, "logistic")
    np.testing.assert_allclose(rows_of(result.scores, label, "se"), expected, rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(result.covariance[label])), expected, rtol=1e-4)


# -- Thurstone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "pwcmp_tmo_video",
        "sureal_lukas_sharpening",
        "hific_userstudy",
        pytest.param("pwcmp_lightfield_quality", marks=pytest.mark.slow),  # ~5 s in sureal
    ],
)
def test_thurstone_equals_sureal_in_every_group(name: str) -> None:
    scores = thurstone_case_v(trials(name), prior="none").scores
    for group in groups(name):
        np.testing.assert_allclose(
            rows_of(scores, group.label, "v"), sureal_v(group), rtol=0, atol=1e-4
        )


def test_jod_is_1_4826_times_v_and_the_errors_are_the_sum_zero_wald_errors() -> None:
    result = thurstone_case_v(trials("sureal_lukas_sharpening"), prior="none")
    scores = result.scores
    np.testing.assert_allclose(scores["jod"], 1.4826 * scores["v"])
    np.testing.assert_allclose(scores["jod_se"], 1.4826 * scores["se"])
    group = groups("sureal_lukas_sharpening")[0]
    v = rows_of(scores, group.label, "v")
    expected = wald_se_by_finite_differences(group, v, "probit")
    np.testing.assert_allclose(rows_of(scores, group.label, "se"), expected, rtol=1e-4)


def test_bradley_terry_is_about_1_7_times_thurstone() -> None:
    bt = bradley_terry(trials("pwcmp_tmo_video"), prior="none").scores["theta"]
    th = thurstone_case_v(trials("pwcmp_tmo_video"), prior="none").scores["v"]
    assert np.corrcoef(bt, th)[0, 1] > 0.995
    assert 1.6 < np.polyfit(th, bt, 1)[0] < 1.8  # logistic vs normal link


# -- identifiability -----------------------------------------------------------------------


def toy(rows: list[tuple[str, str, float]], rater: str = "r") -> pd.DataFrame:
    return pd.DataFrame(
        {"rater": rater, "a": [r[0] for r in rows], "b": [r[1] for r in rows],
         "outcome": [r[2] for r in rows]}
    )  # fmt: skip


def test_without_a_prior_an_item_that_never_loses_is_named_with_the_priors_that_help() -> None:
    frame = toy([("x", "y", 1.0), ("x", "z", 1.0), ("y", "z", 1.0), ("z", "y", 1.0)])
    with pytest.raises(StatsInputError, match=r"never lost to the other items: \{x\}"):
        bradley_terry(frame, prior="none")
    with pytest.raises(StatsInputError, match=r"never won against the other items: \{y, z\}"):
        thurstone_case_v(frame, prior="none")
    with pytest.raises(StatsInputError, match=r"prior='gaussian' .* or prior='ridge'"):
        bradley_terry(frame, prior="none")


def test_items_that_were_never_compared_with_each_other_are_named() -> None:
    frame = toy([("p", "q", 1.0), ("q", "p", 1.0), ("x", "y", 1.0), ("y", "x", 0.5)])
    for prior in ("gaussian", "none"):
        with pytest.raises(StatsInputError, match=r"\{p, q\}.*\{x, y\}"):
            bradley_terry(frame, prior=prior)  # type: ignore[arg-type]


def test_a_ridge_gives_a_finite_scale_that_solves_the_penalised_equations() -> None:
    frame = toy([("x", "y", 1.0), ("x", "z", 1.0), ("y", "z", 1.0), ("z", "y", 0.0)])
    ridge = 0.1
    result = bradley_terry(frame, prior="ridge", ridge=ridge)
    theta = result.scores["theta"].to_numpy()
    assert theta[0] > theta[1] > theta[2]
    (group,), _ = trial_groups(frame)
    step = 1e-6
    gradient = [
        (trial_loglik(group, theta + step * e, "logistic")
         - trial_loglik(group, theta - step * e, "logistic")) / (2 * step)
        for e in np.eye(3)
    ]  # fmt: skip
    np.testing.assert_allclose(gradient, ridge * theta, atol=1e-7)


def test_a_tiny_ridge_approaches_the_maximum_likelihood_estimate() -> None:
    plain = bradley_terry(trials("pwcmp_tmo_video"), prior="none").scores["theta"]
    ridged = bradley_terry(trials("pwcmp_tmo_video"), prior="ridge", ridge=1e-8).scores["theta"]
    np.testing.assert_allclose(ridged, plain, atol=1e-5)


# -- rater bootstrap -----------------------------------------------------------------------


def resampled_trials(frame: pd.DataFrame, drawn: list[object]) -> pd.DataFrame:
    """The trials of the drawn raters, a rater drawn twice contributing all trials twice."""
    by_rater: dict[object, pd.DataFrame] = dict(iter(frame.groupby("rater", sort=False)))
    return pd.concat([by_rater[r] for r in drawn], ignore_index=True)


@pytest.mark.parametrize(
    ("name", "n_resamples"), [("hific_userstudy", 12), ("pwcmp_tmo_video", 30)]
)
def test_bootstrap_replicates_equal_choix_refits_of_the_resampled_raters(
    name: str, n_resamples: int
) -> None:
    frame = trials(name)
    _, raters = trial_groups(frame)
    boot = rater_bootstrap(frame, n_resamples=n_resamples, seed=11, thurstone=False, prior="none")
    drawn = rater_resamples(len(raters), n_resamples, np.random.default_rng(11))
    checked = 0
    for b in range(n_resamples):
        refit = resampled_trials(frame, [raters[i] for i in drawn[b]])
        for group in trial_groups(refit)[0]:
            key = group.items if len(boot.dropped) == 1 else [(group.label, i) for i in group.items]
            ours = boot.elo_replicates[b].reindex(key).to_numpy()
            if np.isnan(ours).any():  # dropped: this resample's MLE does not exist
                continue
            expected = 2000 + ELO_PER_THETA * choix_theta(group)
            np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * ELO_PER_THETA)
            checked += 1
    assert checked >= n_resamples


def test_resamples_without_a_maximum_likelihood_estimate_are_counted_and_dropped() -> None:
    frame = trials("pwcmp_tmo_video")
    groups_, raters = trial_groups(frame)
    n_resamples = 120
    boot = rater_bootstrap(frame, n_resamples=n_resamples, seed=5, thurstone=False, prior="none")
    drawn = rater_resamples(len(raters), n_resamples, np.random.default_rng(5))
    expected = dict.fromkeys((g.label for g in groups_), 0)
    for b in range(n_resamples):
        resample = resampled_trials(frame, [raters[i] for i in drawn[b]])
        for group in groups_:
            rows = resample.loc[resample["group"] == group.label]
            index = pd.Index(group.items)
            winner = np.where(rows["outcome"] > 0, rows["a"], rows["b"])
            loser = np.where(rows["outcome"] > 0, rows["b"], rows["a"])
            beat = np.zeros((len(index), len(index)))
            beat[index.get_indexer(pd.Index(winner)), index.get_indexer(pd.Index(loser))] = 1
            n_strong, _ = connected_components(beat, directed=True, connection="strong")
            expected[group.label] += int(n_strong > 1)
    assert boot.dropped == expected
    assert expected["exhibition"] > 0.3 * n_resamples  # irawan05 lost a single trial
    columns = boot.elo_replicates.loc["exhibition"]
    assert int(columns.isna().all(axis=0).sum()) == expected["exhibition"]


def test_bootstrap_intervals_are_percentiles_of_the_kept_replicates() -> None:
    frame = trials("pwcmp_tmo_video")
    boot = rater_bootstrap(frame, n_resamples=100, seed=2, thurstone=False, prior="none")
    intervals = boot.intervals.set_index(["group", "condition"])
    for key, values in boot.elo_replicates.iterrows():
        kept = values.dropna().to_numpy()
        row = intervals.loc[[key]]
        assert row["bt_elo_low"].item() == pytest.approx(np.percentile(kept, 2.5), abs=1e-9)
        assert row["bt_elo_high"].item() == pytest.approx(np.percentile(kept, 97.5), abs=1e-9)
        theta_high = (row["bt_elo_high"].item() - 2000) / ELO_PER_THETA
        assert row["bt_theta_high"].item() == pytest.approx(theta_high, abs=1e-9)


def test_thurstone_bootstrap_intervals_equal_percentiles_of_sureal_refits() -> None:
    frame = trials("hific_userstudy")
    _, raters = trial_groups(frame)
    boot = rater_bootstrap(frame, n_resamples=25, seed=3, prior="none")
    drawn = rater_resamples(len(raters), 25, np.random.default_rng(3))
    refits = []
    for b in range(25):
        (group,), _ = trial_groups(resampled_trials(frame, [raters[i] for i in drawn[b]]))
        refits.append(sureal_v(group))
    low, high = np.percentile(np.array(refits), [2.5, 97.5], axis=0)
    np.testing.assert_allclose(boot.intervals["thurstone_v_low"], low, atol=1e-4)
    np.testing.assert_allclose(boot.intervals["thurstone_v_high"], high, atol=1e-4)
    np.testing.assert_allclose(boot.intervals["jod_high"], 1.4826 * high, atol=2e-4)


def test_with_a_ridge_no_resample_is_dropped_and_the_near_unbeaten_item_reaches_far() -> None:
    frame = trials("pwcmp_tmo_video")
    plain = rater_bootstrap(frame, n_resamples=100, seed=1, thurstone=False, prior="none")
    ridged = rater_bootstrap(
        frame, n_resamples=100, seed=1, thurstone=False, prior="ridge", ridge=1e-3
    )
    assert set(ridged.dropped.values()) == {0} and plain.dropped["exhibition"] > 0
    assert (ridged.prior, ridged.ridge) == ("ridge", 1e-3)
    key = (plain.intervals["group"] == "exhibition") & (plain.intervals["condition"] == "irawan05")
    assert ridged.intervals.loc[key, "bt_elo_high"].item() > (
        plain.intervals.loc[key, "bt_elo_high"].item() + 300
    )


def test_the_bootstrap_interval_holds_the_estimate_for_the_hific_methods() -> None:
    boot = rater_bootstrap(trials("hific_userstudy"), n_resamples=300, seed=0)
    scores = bradley_terry(trials("hific_userstudy")).scores
    merged = scores.merge(boot.intervals, on=["group", "condition"])
    assert (merged["bt_elo_low"] < merged["elo"]).all()
    assert (merged["elo"] < merged["bt_elo_high"]).all()
    assert boot.dropped == {"all": 0}
    assert boot.elo_replicates.index.name == "condition"  # one group: indexed by condition
    # rater clusters: wider than the trial-level Wald interval (pwcmp reports 1.2–1.4×)
    wald = 2 * 1.95996 * merged["elo_se"]
    assert np.median((merged["bt_elo_high"] - merged["bt_elo_low"]) / wald) > 1.1


# -- win matrix and significance -----------------------------------------------------------


@pytest.mark.parametrize("name", TRIALS_FILES)
def test_the_win_matrix_equals_the_published_counts(name: str) -> None:
    counts = pd.read_csv(data("pairwise", f"{name}__counts.csv"), dtype={"group": str})
    frame = trials(name)
    for label, rows in counts.groupby("group"):
        matrix = win_matrix(frame, group=label)
        expected = pd.DataFrame(0.0, index=matrix.index, columns=matrix.columns)
        for winner, loser, count in rows[["winner", "loser", "count"]].itertuples(index=False):
            expected.loc[winner, loser] = count
        pd.testing.assert_frame_equal(matrix, expected)


def test_undecided_trials_count_half_a_win_each_way() -> None:
    frame = trials("hific_userstudy")
    matrix = win_matrix(frame)
    decided = frame.loc[frame["outcome"] == 1.0]
    ties = frame.loc[frame["outcome"] == 0.5]
    expected = (
        pd.crosstab(decided["a"], decided["b"])
        .reindex(index=matrix.index, columns=matrix.columns, fill_value=0)
        .astype(float)
    )
    tied = pd.crosstab(ties["a"], ties["b"]).reindex(
        index=matrix.index, columns=matrix.columns, fill_value=0
    )
    expected += 0.5 * (tied + tied.T)
    pd.testing.assert_frame_equal(matrix, expected)


def test_win_matrix_asks_which_group_when_there_are_several() -> None:
    with pytest.raises(StatsInputError, match="corridor"):
        win_matrix(trials("pwcmp_tmo_video"))


def holm_reference(p: list[float]) -> list[float]:
    """Holm (1979): sort, multiply the k-th smallest by (m − k + 1), keep the running maximum."""
    m, adjusted, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@pytest.mark.parametrize("name", ["pwcmp_tmo_video", "sureal_lukas_sharpening"])
def test_pairwise_tests_are_exact_binomial_tests_with_holm_correction(name: str) -> None:
    table = pairwise_significance(trials(name))
    counts = pd.read_csv(data("pairwise", f"{name}__counts.csv"))
    wins = {(g, w, lo): c for g, w, lo, c in counts.itertuples(index=False)}
    for label, rows in table.groupby("group"):
        for row in rows.itertuples():
            wins_a = wins.get((label, row.a, row.b), 0)
            wins_b = wins.get((label, row.b, row.a), 0)
            assert (row.wins_a, row.wins_b, row.ties, row.n) == (wins_a, wins_b, 0, wins_a + wins_b)
            assert row.p_value == pytest.approx(
                binomtest(wins_a, wins_a + wins_b).pvalue, rel=1e-12
            )
        np.testing.assert_allclose(rows["p_adjusted"], holm_reference(rows["p_value"].tolist()))
        assert (rows["significant"] == (rows["p_adjusted"] <= 0.05)).all()
    compared = sum(len(rows) for _, rows in counts.groupby("group"))
    assert len(table) <= compared


def test_bonferroni_multiplies_by_the_number_of_pairs_in_the_group() -> None:
    holm = pairwise_significance(trials("hific_userstudy"))
    bonferroni = pairwise_significance(
        trials("hific_userstudy"), correction="bonferroni", alpha=0.01
    )
    assert len(holm) == 36  # 9 methods, every pair compared
    np.testing.assert_allclose(bonferroni["p_adjusted"], np.minimum(1.0, 36 * holm["p_value"]))
    assert (bonferroni["p_adjusted"] >= holm["p_adjusted"] - 1e-15).all()
    assert (bonferroni["significant"] == (bonferroni["p_adjusted"] <= 0.01)).all()
    assert holm["ties"].sum() == 229
    assert holm.attrs["model"].name == "exact-binomial-pairwise"


# -- HiFiC user study: the published ranking -----------------------------------------------

# Human "inverted Elo" bars of the user-study figure (hific.github.io img_other/userstudy.png,
# Fig. 3 of Mentzer et al. 2020): 0 = HiFiC^Hi (best), 1 = M&S at 0.133 bpp (worst), read from
# the bar tops in the PNG (value 0 at y = 288 px, 1.0 at y = 40 px; ±0.01).
PUBLISHED = {
    "ours_gan_high": 0.000,  # HiFiC^Hi, 0.359 bpp
    "ours_gan_med": 0.145,  # HiFiC^Mi, 0.237 bpp
    "bpg_med_3_v2": 0.206,  # BPG, 0.504 bpp
    "minnen_mse_high": 0.339,  # M&S (MSE), 0.405 bpp
    "ours_gan_low": 0.347,  # HiFiC^Lo, 0.120 bpp
    "bpg_med_2_v2": 0.347,  # BPG, 0.390 bpp
    "minnen_mse_med": 0.544,  # M&S, 0.272 bpp
    "ours_lpips_low": 0.673,  # no GAN, 0.118 bpp
    "minnen_mse_low": 1.000,  # M&S, 0.133 bpp
}
# Orders the figure resolves (the three methods at ≈ 0.34 overlap within their error bars).
TIERS = [
    {"ours_gan_high"},
    {"ours_gan_med"},
    {"bpg_med_3_v2"},
    {"minnen_mse_high", "ours_gan_low", "bpg_med_2_v2"},
    {"minnen_mse_med"},
    {"ours_lpips_low"},
    {"minnen_mse_low"},
]


def assert_published_ranking(elo: pd.Series) -> None:
    for better, worse in itertools.pairwise(TIERS):
        assert elo[list(better)].min() > elo[list(worse)].max(), (better, worse)
    inverted = (elo.max() - elo) / (elo.max() - elo.min())
    for method, value in PUBLISHED.items():
        assert inverted[method] == pytest.approx(value, abs=0.05), method


@pytest.mark.parametrize("undecided", ["half", "random", "drop"])
def test_bradley_terry_reproduces_the_published_hific_ranking(undecided: str) -> None:
    scores = bradley_terry(trials("hific_userstudy", undecided)).scores
    assert_published_ranking(scores.set_index("condition")["elo"])


@pytest.mark.parametrize("undecided", ["half", "random", "drop"])
def test_online_elo_reproduces_the_published_hific_ranking(undecided: str) -> None:
    ratings = online_elo(trials("hific_userstudy", undecided), n_orderings=2000).ratings
    assert_published_ranking(ratings.set_index("condition")["elo_mean"])


def test_bpg_med_3_v2_is_the_0_504_bpp_bpg() -> None:
    """Same codec, more bits, better image: the BPG that clearly wins is the 0.504 bpp one."""
    table = pairwise_significance(trials("hific_userstudy")).set_index(["a", "b"])
    duel = table.loc[[("bpg_med_2_v2", "bpg_med_3_v2")]].iloc[0]
    assert (duel["wins_a"], duel["wins_b"]) == (21, 121) and duel["p_adjusted"] < 1e-15
    # "Our model at 0.237 bpp is preferred to BPG even if BPG uses 2.1× the bitrate":
    # 0.504 / 0.237 = 2.13, and HiFiC^Mi beats bpg_med_3_v2 head to head
    mi = table.loc[[("bpg_med_3_v2", "ours_gan_med")]].iloc[0]
    assert mi["wins_b"] > mi["wins_a"] and mi["significant"]


# -- one table -----------------------------------------------------------------------------


def test_scale_pairwise_collects_every_scale_in_one_sorted_table() -> None:
    frame = trials("pwcmp_tmo_video")
    table = scale_pairwise(frame, n_orderings=200, n_resamples=50, seed=4)
    assert list(table.columns) == SCALE_COLUMNS
    for _, rows in table.groupby("group", sort=False):
        assert rows["bt_elo"].is_monotonic_decreasing
    assert table["group"].tolist() == sorted(table["group"])
    keyed = table.set_index(["group", "condition"])
    bt = bradley_terry(frame).scores.set_index(["group", "condition"])
    elo = online_elo(frame, n_orderings=200, seed=4).ratings.set_index(["group", "condition"])
    jod = thurstone_case_v(frame).scores.set_index(["group", "condition"])["jod"]
    boot = rater_bootstrap(frame, n_resamples=50, seed=4, thurstone=False).intervals
    boot = boot.set_index(["group", "condition"])
    pd.testing.assert_series_equal(keyed["bt_elo"], bt.loc[keyed.index, "elo"], check_names=False)
    pd.testing.assert_series_equal(
        keyed["elo_online"], elo.loc[keyed.index, "elo_mean"], check_names=False
    )
    pd.testing.assert_series_equal(keyed["thurstone"], jod.loc[keyed.index], check_names=False)
    pd.testing.assert_series_equal(
        keyed["ci95_low"], boot.loc[keyed.index, "bt_elo_low"], check_names=False
    )
    counts = pd.concat(
        [
            frame[["group", "a"]].set_axis(["group", "c"], axis=1),
            frame[["group", "b"]].set_axis(["group", "c"], axis=1),
        ]
    ).value_counts()
    assert keyed["n"].tolist() == counts.loc[keyed.index].tolist()
    # pwcmp's distance prior gives every resample a scale, irawan05's near-unbeaten one too
    assert table.attrs["bootstrap_dropped"] == dict.fromkeys(sorted(set(frame["group"])), 0)
    assert (table.attrs["prior"], table.attrs["ridge"]) == ("gaussian", 0.0)
    assert table.attrs["models"][0].name == "bradley-terry-mle"


def test_without_a_group_column_all_trials_form_one_group() -> None:
    table = scale_pairwise(trials("hific_userstudy"), n_orderings=50, n_resamples=20)
    assert set(table["group"]) == {"all"} and len(table) == 9
    assert table["condition"].iloc[0] == "ours_gan_high"


# -- input checks and identity -------------------------------------------------------------


def test_bad_trials_frames_are_clear_errors() -> None:
    with pytest.raises(StatsInputError, match="outcome"):
        bradley_terry(pd.DataFrame({"rater": ["r"], "a": ["x"], "b": ["y"]}))
    with pytest.raises(StatsInputError, match=r"outcome must be .* row\(s\) 1 have 0.3"):
        bradley_terry(toy([("x", "y", 1.0), ("y", "x", 0.3)]))
    with pytest.raises(StatsInputError, match="compare an item with itself"):
        bradley_terry(toy([("x", "y", 1.0), ("x", "x", 1.0)]))
    with pytest.raises(StatsInputError, match=r"missing rater in row\(s\) 0"):
        bradley_terry(toy([("x", "y", 1.0)], rater=None))  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match="holm, bonferroni"):
        pairwise_significance(trials("hific_userstudy"), correction="fdr")  # type: ignore[arg-type]


def test_every_result_names_its_model() -> None:
    frame = trials("pwcmp_tmo_video")
    names = {
        bradley_terry(frame).model.name,
        thurstone_case_v(frame).model.name,
        online_elo(frame, n_orderings=2).model.name,
        rater_bootstrap(frame, n_resamples=2, thurstone=False).model.name,
    }
    assert names == {
        "bradley-terry-mle",
        "thurstone-case-v-mle",
        "online-elo-clic",
        "rater-bootstrap-percentile-bt-thurstone",
    }
