"""stats.guided: metrics calibrated to the human scale, predictions with uncertainty, and the
replay that measures what guiding human effort by them saves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from perceptlab.evaluation.analysis.tables import metric_predictions
from perceptlab.evaluation.stats import guided
from perceptlab.evaluation.stats.common import StatsInputError


def test_the_logistic_calibration_is_scipys_least_squares_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(20, 50, 80)  # a PSNR-like metric
    truth = (2.0, -3.0, 35.0, 3.0)
    y = guided.logistic4(x, *truth) + rng.normal(0, 0.05, len(x))
    fitted = guided.calibrate(x, y)
    reference, _ = curve_fit(guided.logistic4, x, y, p0=[y.max(), -np.ptp(y), 35.0, 5.0])
    grid = np.linspace(22, 48, 9)
    assert guided.logistic4(grid, *fitted.params) == pytest.approx(
        guided.logistic4(grid, *reference), abs=1e-4
    )
    assert fitted.residual_sd == pytest.approx(0.05, rel=0.25)
    mean, var = fitted.predict(grid)
    assert mean == pytest.approx(guided.logistic4(grid, *truth), abs=0.08)
    assert np.all(var >= fitted.residual_sd**2 - 1e-12)


def test_disagreeing_metrics_make_a_prediction_uncertain() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 3, 60)
    agree = np.column_stack([-truth + rng.normal(0, 0.05, 60), -2 * truth + rng.normal(0, 0.1, 60)])
    measured = np.zeros(60, dtype=bool)
    measured[:30] = True
    _, base = guided.predict(agree, measured, truth)
    odd = agree.copy()
    odd[45, 1] = -2 * (truth[45] + 1.5)  # the second metric is fooled by condition 45
    _, fooled = guided.predict(odd, measured, truth)
    assert fooled[45] > 5 * base[45]
    assert int(np.argmax(np.where(measured, -np.inf, fooled))) == 45


def test_guidance_finds_the_conditions_a_metric_gets_wrong() -> None:
    """Two metrics follow the human scale except each on its own tenth of the conditions,
    where it is fooled (a GAN's hallucinated texture fools one metric, a colour shift the
    other): there the calibrated metrics disagree and their combined prediction is off.
    Guided measurement finds those conditions first and the scale's error falls faster than
    with random measurement."""
    rng = np.random.default_rng(2)
    count = 120
    truth = rng.uniform(0, 3, count)
    one = -truth + rng.normal(0, 0.05, count)
    two = -truth + rng.normal(0, 0.05, count)
    fooled = rng.choice(count, 24, replace=False)
    one[fooled[:12]] -= rng.uniform(1.0, 2.0, 12)
    two[fooled[12:]] += rng.uniform(1.0, 2.0, 12)
    result = guided.replay(
        np.column_stack([one, two]), truth, steps=np.array([10, 20, 30, 60]), seeds=4, batch=2
    )
    assert result.guided[0] == pytest.approx(result.random[0])  # the same random seed set
    assert result.guided[-1] < 0.6 * result.random[-1]
    # random's error after 60 measured conditions, reached guided with half of them
    needed = result.needed(result.random[-1])
    assert needed is not None and needed <= 30


def test_bad_input_is_refused() -> None:
    with pytest.raises(StatsInputError, match="at least 4"):
        guided.calibrate(np.arange(3.0), np.arange(3.0))
    with pytest.raises(StatsInputError, match="one row per condition"):
        guided.replay(np.zeros((5, 2)), np.zeros(4), steps=np.array([4]))
    with pytest.raises(StatsInputError, match="no metric"):
        guided.predict(np.zeros((6, 1)), np.zeros(6, dtype=bool), np.zeros(6))


def test_each_images_predictions_come_from_the_other_images_calibration() -> None:
    rng = np.random.default_rng(4)
    stimuli = [f"s{i}" for i in range(40)]
    images = pd.Series([f"img{i % 4}" for i in range(40)], index=stimuli)
    truth = pd.Series(rng.uniform(1, 5, 40), index=stimuli, name="mos")
    psnr = 20 + 4 * truth + rng.normal(0, 0.2, 40)
    psnr[images == "img3"] += 6.0  # the metric overrates every stimulus of one image
    wide = pd.DataFrame({"psnr": psnr, "ssim": 0.8 + 0.04 * truth}, index=stimuli)
    table = metric_predictions(truth, wide, images).set_index("stimulus")
    assert len(table) == 40 and set(table["image"]) == {"img0", "img1", "img2", "img3"}
    error = (table["predicted"] - table["measured"]).abs()
    # img3 is predicted from the others' maps; ssim, which agrees, keeps it close, but the
    # two metrics now disagree there, and its intervals say so
    assert table.loc[images == "img3", "sd"].mean() > 2 * table.loc[images != "img3", "sd"].mean()
    assert error[images != "img3"].max() < 0.5
    assert table["within"].mean() > 0.8
    assert metric_predictions(truth, wide.iloc[:0], images).empty
    one_image = images.where(images == "img0", "img0")
    assert metric_predictions(truth, wide, one_image).empty
