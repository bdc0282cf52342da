"""stats.flicker: visually lossless thresholds per image and codec, rater bootstrap, savings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from perceptlab.evaluation.stats import flicker
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.lib import psychometric as pm

LADDER = [0.25, 0.5, 1.0, 2.0, 4.0]


def _answers(
    truth: dict[tuple[str, str], float], *, raters: int, per_level: int, seed: int
) -> pd.DataFrame:
    """Raters answering as the model says, μ = ``truth`` (log2 bpp), spread 0.5."""
    rng = np.random.default_rng(seed)
    rows = []
    for (image, codec), mu in truth.items():
        for rater in range(raters):
            for bpp in LADDER:
                p = pm.GUESS + (1 - pm.GUESS - pm.LAPSE) * norm.cdf((mu - np.log2(bpp)) / 0.5)
                for _ in range(per_level):
                    rows.append((f"r{rater}", image, codec, bpp, int(rng.random() < p)))
    return pd.DataFrame(rows, columns=list(flicker.COLUMNS))


def test_thresholds_are_recovered_inside_their_rater_bootstrap_intervals() -> None:
    truth = {
        ("img1", "jpeg"): 1.0,
        ("img1", "webp"): 0.0,
        ("img2", "jpeg"): 0.5,
        ("img2", "webp"): -0.5,
    }
    fitted = flicker.thresholds(_answers(truth, raters=20, per_level=4, seed=1), n_replicates=200)
    table = fitted.table.set_index(["image", "codec"])
    offset = float(pm.criterion_offset(0.5))
    for key, mu in truth.items():
        row = table.loc[key]
        expected = 2 ** (mu + offset)
        assert row["ci_low_bpp"] <= expected <= row["ci_high_bpp"], (key, row.to_dict())
        assert row["threshold_bpp"] == pytest.approx(expected, rel=0.35)
        assert row["answers"] == 20 * 4 * len(LADDER) and row["censored"] == ""
    # webp's thresholds are half jpeg's rate: a saving of one half
    saved = flicker.savings(fitted, "jpeg").set_index("codec")
    assert saved.loc["jpeg", "saving"] == pytest.approx(0.0, abs=1e-12)
    assert saved.loc["webp", "saving"] == pytest.approx(0.5, abs=0.15)
    assert saved.loc["webp", "ci_low"] <= 0.5 <= saved.loc["webp", "ci_high"]
    assert saved.loc["webp", "images"] == 2


def test_the_bootstrap_is_reproducible_and_resamples_raters() -> None:
    answers = _answers({("img1", "jpeg"): 0.3}, raters=8, per_level=3, seed=2)
    one = flicker.thresholds(answers, n_replicates=50, seed=9)
    two = flicker.thresholds(answers, n_replicates=50, seed=9)
    assert np.array_equal(one.replicates, two.replicates)
    assert one.replicates.std() > 0


def test_a_codec_seen_at_every_rate_is_censored_above_and_left_out_of_savings() -> None:
    answers = _answers(
        {("img1", "jpeg"): 0.0, ("img1", "webp"): 8.0}, raters=10, per_level=3, seed=4
    )
    fitted = flicker.thresholds(answers, n_replicates=20)
    table = fitted.table.set_index("codec")
    assert table.loc["webp", "censored"] == "above"
    # reported as the bound it is: the highest rate shown, without an interval
    assert table.loc["webp", "threshold_bpp"] == table.loc["webp", "highest_bpp"] == 4.0
    assert np.isnan(table.loc["webp", "ci_low_bpp"]) and np.isnan(table.loc["webp", "ci_high_bpp"])
    saved = flicker.savings(fitted, "jpeg").set_index("codec")
    assert saved.loc["webp", "images"] == 0 and np.isnan(saved.loc["webp", "saving"])


def test_bad_answers_are_refused() -> None:
    good = _answers({("img1", "jpeg"): 0.0}, raters=2, per_level=1, seed=0)
    with pytest.raises(StatsInputError, match="missing column"):
        flicker.thresholds(good.drop(columns="bpp"))
    with pytest.raises(StatsInputError, match="positive bpp"):
        flicker.thresholds(good.assign(bpp=0.0))
    with pytest.raises(StatsInputError, match="0 or 1"):
        flicker.thresholds(good.assign(correct=0.5))
    with pytest.raises(StatsInputError, match="reference codec"):
        flicker.savings(flicker.thresholds(good, n_replicates=5), "avif")
