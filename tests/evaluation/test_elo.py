"""Online (CLIC-style) Elo against a plain Python loop on the real pairwise datasets."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from support import data

from perceptlab.evaluation.stats import elo
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise import (
    TrialGroup,
    bradley_terry,
    online_elo,
    trial_groups,
)
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv

K, START, SCALE = 30.0, 2000.0, 400.0


@functools.cache
def trials(name: str, undecided: str = "half") -> pd.DataFrame:
    return read_pairwise_csv(data("pairwise", f"{name}.csv"), undecided=undecided)  # type: ignore[arg-type]


def groups(name: str) -> list[TrialGroup]:
    return trial_groups(trials(name))[0]


def loop_elo(group: TrialGroup, order: list[int] | range) -> np.ndarray:
    """The textbook update, one trial at a time: E = 1/(1 + 10^((Rb − Ra)/400))."""
    ratings = [START] * len(group.items)
    for t in order:
        a, b, s = int(group.ia[t]), int(group.ib[t]), float(group.score[t])
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / SCALE))
        ratings[a] += K * (s - expected)
        ratings[b] -= K * (s - expected)
    return np.array(ratings)


CASES = [
    ("pwcmp_tmo_video", None),
    ("sureal_lukas_sharpening", None),
    ("hific_userstudy", None),
    ("pwcmp_lightfield_quality", "Car"),
    ("pwcmp_lightfield_quality", "Room"),
]


def chosen_groups(name: str, label: str | None) -> list[TrialGroup]:
    return [g for g in groups(name) if label is None or g.label == label]


@pytest.mark.parametrize(("name", "label"), CASES)
def test_the_file_order_pass_equals_a_plain_loop(name: str, label: str | None) -> None:
    table = online_elo(trials(name), n_orderings=2).ratings
    for group in chosen_groups(name, label):
        ours = table.loc[table["group"] == group.label, "elo_file_order"].to_numpy()
        np.testing.assert_allclose(ours, loop_elo(group, range(len(group.ia))), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("name", "label"), CASES)
def test_every_shuffled_ordering_equals_a_plain_loop_over_the_same_permutation(
    name: str, label: str | None
) -> None:
    for index, group in enumerate(chosen_groups(name, label)):
        seed = (7, index)
        finals = elo.shuffled_elo(
            group.ia, group.ib, group.score, len(group.items),
            n_orderings=12, k=K, start=START, scale=SCALE, seed=seed, workers=1,
        )  # fmt: skip
        orders = elo.elo_orderings(len(group.ia), n_orderings=12, seed=seed)
        reference = np.array([loop_elo(group, order) for order in orders.tolist()])
        np.testing.assert_allclose(finals, reference, rtol=0, atol=1e-9)


def test_the_shuffle_statistics_equal_those_of_the_loop_over_the_same_orderings() -> None:
    n_orderings = 40
    result = online_elo(trials("pwcmp_tmo_video"), n_orderings=n_orderings, seed=3)
    for g, group in enumerate(groups("pwcmp_tmo_video")):
        orders = elo.elo_orderings(len(group.ia), n_orderings=n_orderings, seed=(3, g))
        loops = np.array([loop_elo(group, order) for order in orders.tolist()])
        rows = result.ratings.loc[result.ratings["group"] == group.label]
        np.testing.assert_allclose(rows["elo_mean"], loops.mean(axis=0), rtol=0, atol=1e-9)
        np.testing.assert_allclose(rows["elo_sd"], loops.std(axis=0, ddof=1), rtol=0, atol=1e-9)
        low, high = np.percentile(loops, [2.5, 97.5], axis=0)
        np.testing.assert_allclose(rows["elo_p2_5"], low, rtol=0, atol=1e-9)
        np.testing.assert_allclose(rows["elo_p97_5"], high, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["pwcmp_tmo_video", "sureal_lukas_sharpening"])
def test_10000_orderings_agree_within_2_elo_across_seeds(name: str) -> None:
    first = online_elo(trials(name), seed=0).ratings
    second = online_elo(trials(name), seed=12345).ratings
    assert np.max(np.abs(first["elo_mean"] - second["elo_mean"])) <= 2.0
    # the Monte-Carlo error of the mean is sd/√10000, well inside the tolerance
    assert first["elo_sd"].max() / np.sqrt(10_000) < 0.5


def test_orderings_are_permutations_drawn_chunk_by_chunk_from_the_seed() -> None:
    orders = elo.elo_orderings(300, n_orderings=elo.ORDERING_CHUNK + 10, seed=(1, 2))
    assert (np.sort(orders, axis=1) == np.arange(300)).all()
    assert len({tuple(row) for row in orders.tolist()}) == len(orders)
    fewer = elo.elo_orderings(300, n_orderings=5, seed=(1, 2))
    np.testing.assert_array_equal(fewer, orders[:5])
    assert not np.array_equal(elo.elo_orderings(300, n_orderings=5, seed=(1, 3)), fewer)


def test_each_position_is_equally_likely_for_every_trial() -> None:
    orders = elo.elo_orderings(5, n_orderings=20_000, seed=0)
    share = np.stack([(orders == t).mean(axis=0) for t in range(5)])
    np.testing.assert_allclose(share, 0.2, atol=0.015)  # 5σ ≈ 0.014 for 20,000 draws


def test_the_result_does_not_depend_on_the_number_of_threads() -> None:
    group = groups("pwcmp_tmo_video")[0]
    args = (group.ia, group.ib, group.score, len(group.items))
    options = {"n_orderings": elo.ORDERING_CHUNK + 50, "k": K, "start": START, "scale": SCALE}
    one = elo.shuffled_elo(*args, seed=(0, 0), workers=1, **options)  # type: ignore[arg-type]
    two = elo.shuffled_elo(*args, seed=(0, 0), workers=2, **options)  # type: ignore[arg-type]
    np.testing.assert_array_equal(one, two)


def test_swapping_the_sides_of_every_trial_changes_nothing() -> None:
    frame = trials("hific_userstudy")
    swapped = frame.assign(a=frame["b"], b=frame["a"], outcome=1.0 - frame["outcome"])
    first = online_elo(frame, n_orderings=20).ratings
    second = online_elo(swapped, n_orderings=20).ratings
    columns = ["elo_mean", "elo_file_order"]
    np.testing.assert_allclose(first[columns], second[columns], rtol=0, atol=1e-9)


def test_updates_are_zero_sum_so_every_ordering_keeps_the_mean_at_start() -> None:
    group = groups("sureal_lukas_sharpening")[0]
    finals = elo.shuffled_elo(
        group.ia, group.ib, group.score, len(group.items),
        n_orderings=50, k=K, start=1500.0, scale=SCALE, seed=0,
    )  # fmt: skip
    np.testing.assert_allclose(finals.mean(axis=1), 1500.0, rtol=0, atol=1e-9)


def test_an_undecided_trial_between_equal_ratings_changes_nothing() -> None:
    frame = pd.DataFrame({"rater": ["r"], "a": ["x"], "b": ["y"], "outcome": [0.5]})
    table = online_elo(frame, n_orderings=3).ratings
    assert table["elo_file_order"].tolist() == [START, START]
    assert table["elo_mean"].tolist() == [START, START]


@pytest.mark.parametrize("name", ["pwcmp_tmo_video", "sureal_lukas_sharpening"])
def test_online_elo_ranks_like_the_mle_but_is_shrunk_toward_the_start(name: str) -> None:
    online = online_elo(trials(name), n_orderings=2000).ratings
    mle = bradley_terry(trials(name), prior="none").scores
    ratios = []
    for label, rows in online.groupby("group"):
        fitted = mle.loc[mle["group"] == label, "elo"].to_numpy()
        ratios.append(rows["elo_mean"].std() / fitted.std())
        assert np.corrcoef(rows["elo_mean"], fitted)[0, 1] > 0.98
    # K acts as a step size: the spread is smaller in most groups (0.62–1.02 measured here)
    assert np.median(ratios) < 0.96 and min(ratios) < 0.7


def test_the_result_records_its_model_and_settings() -> None:
    result = online_elo(trials("pwcmp_tmo_video"), n_orderings=10, k=16.0, seed=4)
    assert result.model.name == "online-elo-clic"
    assert (result.n_orderings, result.k, result.start, result.scale, result.seed) == (
        10, 16.0, 2000.0, 400.0, 4,
    )  # fmt: skip
    assert list(result.ratings.columns) == [
        "group", "condition", "n", "elo_mean", "elo_sd", "elo_p2_5", "elo_p97_5",
        "elo_file_order",
    ]  # fmt: skip


def test_fewer_than_two_orderings_is_an_error() -> None:
    with pytest.raises(StatsInputError, match="n_orderings"):
        online_elo(trials("pwcmp_tmo_video"), n_orderings=1)
