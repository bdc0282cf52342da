"""The per-rater lapse model (Google's ``elo_rater_model``): simulated raters with known lapse
rates, Bradley–Terry (choix, :func:`bradley_terry`) when q is fixed at 0, the stated posterior
written out independently here, and the HiFiC user study (Mentzer et al., NeurIPS 2020).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import choix
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from support import data

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.lapse import (
    DEFAULT_Q_PRIOR,
    LAPSE_MODEL,
    lapse_fit,
    weighted_bradley_terry,
)
from perceptlab.evaluation.stats.pairwise import bradley_terry, trial_groups
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv

ELO_PER_THETA = 400.0 / math.log(10.0)


@functools.cache
def real(name: str) -> pd.DataFrame:
    return read_pairwise_csv(data("pairwise", f"{name}.csv"))


def simulate(
    seed: int,
    *,
    n_items: int = 8,
    n_raters: int = 30,
    n_clickers: int = 5,
    trials_per_rater: int = 150,
    n_groups: int = 1,
    tie_share: float = 0.0,
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """2AFC trials from P(a ≻ b | r) = q_r/2 + (1 − q_r)·P_BT, Elo evenly over 1600–2400.

    Raters r00… the first ``n_clickers`` click at random with q = 0.9, the others lapse with
    q = 0.02; each trial shows two distinct random items of a random group; a share
    ``tie_share`` of trials is answered "undecided" (outcome ½).
    """
    rng = np.random.default_rng(seed)
    elo = np.linspace(1600.0, 2400.0, n_items)
    q = np.where(np.arange(n_raters) < n_clickers, 0.9, 0.02)
    size = n_raters * trials_per_rater
    rater = np.repeat(np.arange(n_raters), trials_per_rater)
    a = rng.integers(0, n_items, size)
    b = (a + rng.integers(1, n_items, size)) % n_items
    p = 1.0 / (1.0 + 10.0 ** ((elo[b] - elo[a]) / 400.0))
    random = rng.random(size) < q[rater]
    a_won = np.where(random, rng.random(size) < 0.5, rng.random(size) < p)
    outcome = np.where(rng.random(size) < tie_share, 0.5, a_won.astype(float))
    trials = pd.DataFrame(
        {
            "rater": [f"r{r:02d}" for r in rater],
            "group": [f"g{g}" for g in rng.integers(0, n_groups, size)],
            "a": [f"c{i}" for i in a],
            "b": [f"c{i}" for i in b],
            "outcome": outcome,
        }
    )
    truth = pd.Series(elo, index=[f"c{i}" for i in range(n_items)])
    return trials, truth, q


def rmse(scores: pd.DataFrame, truth: pd.Series) -> float:
    elo = scores.set_index("condition")["elo"].reindex(truth.index)
    return float(np.sqrt(np.mean((elo - truth) ** 2)))


# -- simulated raters ----------------------------------------------------------------------


def test_it_finds_the_random_clickers_and_their_intervals_exclude_the_good_raters() -> None:
    trials, _, q = simulate(0)
    raters = lapse_fit(trials).raters
    clickers, good = raters.iloc[:5], raters.iloc[5:]
    print(
        f"clickers: q {clickers['q'].round(3).tolist()}, low {clickers['q_low'].round(3).tolist()}"
    )
    print(f"good: mean q {good['q'].mean():.3f}, max q {good['q'].max():.3f}")
    assert q.tolist() == [0.9] * 5 + [0.02] * 25
    assert clickers["q_low"].min() > good["q"].max()
    assert clickers["q"].min() > 0.6
    assert good["q"].max() < 0.25
    assert good["q"].mean() < 0.1
    assert ((raters["q_low"] < raters["q"]) & (raters["q"] < raters["q_high"])).all()
    np.testing.assert_allclose(raters["weight"], 1.0 - raters["q"])
    assert raters["n"].tolist() == [150] * 30


def test_its_scores_are_closer_to_the_truth_than_plain_bradley_terry() -> None:
    trials, truth, _ = simulate(0)
    lapse = lapse_fit(trials)
    plain = rmse(bradley_terry(trials, prior="none").scores, truth)
    fitted = rmse(lapse.scores, truth)
    weighted = rmse(weighted_bradley_terry(trials, weights=lapse.weights()).scores, truth)
    print(f"RMSE (Elo): Bradley–Terry {plain:.1f}, lapse {fitted:.1f}, weighted BT {weighted:.1f}")
    assert fitted < 0.6 * plain
    assert weighted < 0.6 * plain
    # plain Bradley–Terry shrinks the scale toward 2000; the lapse model does not
    spread = lapse.scores["elo"].max() - lapse.scores["elo"].min()
    plain_spread = bradley_terry(trials, prior="none").scores["elo"].agg(np.ptp)
    print(f"Elo spread (truth 800): Bradley–Terry {plain_spread:.0f}, lapse {spread:.0f}")
    assert plain_spread < 0.8 * 800 < spread


def test_a_rater_who_fails_golds_gets_a_higher_q_than_one_who_passes_them() -> None:
    trials, _, _ = simulate(1, n_raters=10, n_clickers=0)
    twin = trials[trials["rater"] == "r05"].assign(rater="r05-twin")
    both = pd.concat([trials, twin], ignore_index=True)
    golds = pd.DataFrame(
        {
            "rater": ["r05"] * 10 + ["r05-twin"] * 10 + ["gold-only"] * 10,
            "correct": [1.0] * 10 + [0.0] * 6 + [1.0] * 4 + [0.0] * 2 + [0.5] * 2 + [1.0] * 6,
        }
    )
    raters = lapse_fit(both, golds=golds).raters.set_index("rater")
    print(raters.loc[["r05", "r05-twin", "gold-only"], ["n", "n_gold", "gold_wrong", "q"]])
    q, low, high = (raters[c].to_dict() for c in ("q", "q_low", "q_high"))
    before = lapse_fit(both).raters.set_index("rater")["q"].to_dict()
    assert before["r05"] == pytest.approx(before["r05-twin"], abs=1e-9)
    assert q["r05-twin"] > 4 * q["r05"]
    assert q["r05"] < before["r05"]
    assert low["r05-twin"] > q["r05"]
    counts = raters[["n", "n_gold", "gold_wrong"]].to_dict("index")
    assert counts["gold-only"] == {"n": 0, "n_gold": 10.0, "gold_wrong": 3.0}
    assert 0.0 < low["gold-only"] < q["gold-only"] < high["gold-only"] < 1.0


# -- the stated posterior, written out independently ---------------------------------------


def log_posterior(trials: pd.DataFrame, golds: pd.DataFrame) -> Callable[[np.ndarray], float]:
    """x ↦ ℓ + Σ_r [a·log q_r + b·log(1 − q_r)] − ½·λ·Σθ² (golds included), trial by trial,
    for x = (θ by (group, item) in sorted order, η = logit q by rater in sorted order)."""
    pairs = list(zip(trials["group"], trials["a"], strict=True))
    pairs += list(zip(trials["group"], trials["b"], strict=True))
    item = {key: i for i, key in enumerate(sorted(set(pairs)))}
    rater = {r: k for k, r in enumerate(sorted(set(trials["rater"]) | set(golds["rater"])))}
    ia = np.array([item[k] for k in pairs[: len(trials)]])
    ib = np.array([item[k] for k in pairs[len(trials) :]])
    rt, rg = trials["rater"].map(rater).to_numpy(), golds["rater"].map(rater).to_numpy()
    s, c = trials["outcome"].to_numpy(), golds["correct"].to_numpy()
    a, b = DEFAULT_Q_PRIOR

    def value(x: np.ndarray) -> float:
        theta, q = x[: len(item)], expit(x[len(item) :])
        elo_gap = (theta[ib] - theta[ia]) * ELO_PER_THETA
        p = q[rt] / 2 + (1 - q[rt]) / (1 + 10 ** (elo_gap / 400))
        total = np.sum(s * np.log(p) + (1 - s) * np.log(1 - p))
        total += np.sum(c * np.log(1 - q[rg] / 2) + (1 - c) * np.log(q[rg] / 2))
        total += np.sum(a * np.log(q) + b * np.log(1 - q)) - 0.5 * 0.01 * np.sum(theta**2)
        return float(total)

    return value


def test_the_fit_is_the_mode_of_the_stated_posterior_with_its_laplace_intervals() -> None:
    trials, _, _ = simulate(2, n_items=5, n_raters=6, n_clickers=2, n_groups=2, tie_share=0.1)
    golds = pd.DataFrame({"rater": ["r00", "r00", "r03", "zz"], "correct": [0.0, 0.5, 1.0, 0.0]})
    fit = lapse_fit(trials, golds=golds)
    x = np.concatenate([fit.scores["theta"], np.log(fit.raters["q"] / (1 - fit.raters["q"]))])
    # coordinates of the constrained space: a sum-zero basis per group, then the η
    n_items = [5, 5]
    blocks = [np.linalg.svd(np.eye(n) - 1 / n)[0][:, : n - 1] for n in n_items]
    basis = np.zeros((x.size, x.size - len(n_items)))
    basis[:5, :4], basis[5:10, 4:8] = blocks
    basis[10:, 8:] = np.eye(x.size - 10)
    dim = basis.shape[1]

    posterior = log_posterior(trials, golds)

    def f(step: np.ndarray) -> float:
        return posterior(x + basis @ step)

    assert fit.log_posterior == pytest.approx(f(np.zeros(dim)), rel=1e-10)
    e, h = np.eye(dim), 1e-4
    slope = np.array([(f(h * e[k]) - f(-h * e[k])) / (2 * h) for k in range(dim)])
    assert np.abs(slope).max() < 1e-5
    hessian = np.array(
        [
            [
                (f(h * (e[i] + e[j])) - f(h * (e[i] - e[j])) - f(h * (e[j] - e[i]))
                 + f(-h * (e[i] + e[j]))) / (4 * h * h)
                for j in range(dim)
            ]
            for i in range(dim)
        ]
    )  # fmt: skip
    covariance = basis @ np.linalg.inv(-hessian) @ basis.T
    se = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(fit.scores["se"], se[:10], rtol=1e-4)
    assert fit.scores["group"].tolist() == ["g0"] * 5 + ["g1"] * 5
    for label, block in (("g0", slice(0, 5)), ("g1", slice(5, 10))):
        np.testing.assert_allclose(
            fit.covariance[label], covariance[block, block], rtol=1e-4, atol=1e-6
        )
    z = 1.959963984540054
    np.testing.assert_allclose(fit.raters["q_high"], expit(x[10:] + z * se[10:]), rtol=1e-5)
    np.testing.assert_allclose(fit.scores["elo_low"], fit.scores["elo"] - z * fit.scores["elo_se"])


# -- q fixed at 0 is Bradley–Terry ---------------------------------------------------------


def choix_elo(trials: pd.DataFrame) -> np.ndarray:
    """choix ILSR on doubled data: a decided trial is two wins, an undecided one a win each way."""
    (group,), _ = trial_groups(trials)
    data: list[tuple[int, int]] = []
    for a, b, s in zip(group.ia.tolist(), group.ib.tolist(), group.score.tolist(), strict=True):
        data += [(a, b)] * 2 if s == 1.0 else [(b, a)] * 2 if s == 0.0 else [(a, b), (b, a)]
    theta = choix.ilsr_pairwise(len(group.items), data, alpha=0.0, tol=1e-13, max_iter=10_000)
    return 2000.0 + ELO_PER_THETA * (theta - theta.mean())


def test_with_q_fixed_at_zero_it_is_bradley_terry_as_choix_fits_it() -> None:
    trials = real("hific_userstudy")
    fit = lapse_fit(trials, fixed_q=0.0, ridge=0.0)
    np.testing.assert_allclose(fit.scores["elo"], choix_elo(trials), rtol=0, atol=1e-6)
    plain = bradley_terry(trials, prior="none").scores
    np.testing.assert_allclose(fit.scores["elo"], plain["elo"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.scores["elo_se"], plain["elo_se"], rtol=1e-6)
    assert (fit.raters["q"] == 0.0).all() and (fit.raters["weight"] == 1.0).all()


def test_with_q_fixed_at_zero_and_a_ridge_it_is_ridge_bradley_terry_in_every_group() -> None:
    trials = real("pwcmp_tmo_video")
    fit = lapse_fit(trials, fixed_q=0.0, ridge=0.01)
    plain = bradley_terry(trials, prior="ridge", ridge=0.01).scores
    assert fit.scores["group"].nunique() == 5
    assert fit.scores[["group", "condition"]].equals(plain[["group", "condition"]])
    np.testing.assert_allclose(fit.scores["elo"], plain["elo"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.scores["elo_se"], plain["elo_se"], rtol=1e-6)


def test_weights_of_one_are_bradley_terry_and_a_weight_of_zero_drops_the_rater() -> None:
    trials = real("pwcmp_tmo_video")
    raters = sorted(trials["rater"].unique(), key=str)
    ones = weighted_bradley_terry(trials, weights=dict.fromkeys(raters, 1.0)).scores
    plain = bradley_terry(trials, prior="ridge", ridge=0.01).scores
    np.testing.assert_allclose(ones["elo"], plain["elo"], rtol=0, atol=1e-6)
    dropped = {r: float(r != raters[0]) for r in raters}
    without = weighted_bradley_terry(trials, weights=dropped).scores
    rest = bradley_terry(trials[trials["rater"] != raters[0]], prior="ridge", ridge=0.01).scores
    np.testing.assert_allclose(without["elo"], rest["elo"], rtol=0, atol=1e-6)


# -- the HiFiC user study ------------------------------------------------------------------

# Values of this implementation (lapse_fit(trials) with the defaults, undecided trials ½),
# kept so that a change of the model or of a dependency cannot move them silently.
HIFIC_ELO = {"ours_gan_high": 2421.796, "minnen_mse_low": 1184.017, "bpg_med_2_v2": 2083.061}
HIFIC_Q = {"r10": 0.33247, "r12": 0.00353, "r15": 0.46157}


def test_on_the_hific_study_every_q_lies_in_0_1_and_no_rater_is_mostly_random() -> None:
    fit = lapse_fit(real("hific_userstudy"))
    raters = fit.raters.set_index("rater")
    print(raters[["n", "q", "q_low", "q_high"]].round(3).to_string())
    assert fit.model == LAPSE_MODEL and len(raters) == 20
    assert ((raters["q_low"] > 0) & (raters["q_high"] < 1)).all()
    assert ((raters["q_low"] < raters["q"]) & (raters["q"] < raters["q_high"])).all()
    assert (raters["q"] > 0.5).mean() == 0.0
    assert raters["q"].median() == pytest.approx(0.1603, abs=1e-4)
    for rater, q in HIFIC_Q.items():
        assert raters.loc[rater, "q"] == pytest.approx(q, abs=1e-5)
    elo = fit.scores.set_index("condition")["elo"]
    for condition, value in HIFIC_ELO.items():
        assert elo[condition] == pytest.approx(value, abs=0.01)


def test_on_the_hific_study_it_ranks_the_methods_as_bradley_terry_does() -> None:
    trials = real("hific_userstudy")
    fit = lapse_fit(trials).scores.sort_values("elo", ascending=False)
    plain = bradley_terry(trials, prior="none").scores.sort_values("elo", ascending=False)
    print(fit.merge(plain, on="condition")[["condition", "elo_x", "elo_y"]].round(1).to_string())
    lapse_order, plain_order = fit["condition"].tolist(), plain["condition"].tolist()
    assert lapse_order[:3] == plain_order[:3] == ["ours_gan_high", "ours_gan_med", "bpg_med_3_v2"]
    assert lapse_order[-3:] == plain_order[-3:]
    # the three methods within 12 Elo of each other in Bradley–Terry may swap
    assert set(lapse_order[3:6]) == set(plain_order[3:6])
    # the lapse model undoes Bradley–Terry's shrinkage toward 2000
    assert np.ptp(fit["elo"]) > 1.5 * np.ptp(plain["elo"])


# -- input errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"q_prior": (0.0, 2.0)}, "q_prior"),
        ({"ridge": -1.0}, "ridge"),
        ({"fixed_q": 1.0}, "fixed_q"),
        ({"confidence": 1.5}, "confidence"),
        ({"golds": pd.DataFrame({"rater": ["r01"], "correct": [2.0]})}, r"row\(s\) 0"),
        ({"golds": pd.DataFrame({"rater": ["r01"]})}, "correct"),
    ],
)
def test_it_rejects_bad_options_naming_them(options: dict[str, object], message: str) -> None:
    trials, _, _ = simulate(3, n_raters=3, trials_per_rater=20)
    with pytest.raises(StatsInputError, match=message):
        lapse_fit(trials, **options)  # type: ignore[arg-type]


def test_weighted_bradley_terry_needs_a_weight_for_every_rater() -> None:
    trials, _, _ = simulate(3, n_raters=3, trials_per_rater=20)
    with pytest.raises(StatsInputError, match="r02"):
        weighted_bradley_terry(trials, weights={"r00": 1.0, "r01": 1.0})
    with pytest.raises(StatsInputError, match="r01: -1"):
        weighted_bradley_terry(trials, weights={"r00": 1.0, "r01": -1.0, "r02": 1.0})
