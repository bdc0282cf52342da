"""stats.guided: metrics calibrated to the human scale, predictions with uncertainty, and the
replay that measures what guiding human effort by them saves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from perceptlab.evaluation.analysis.tables import guidance_replay, metric_predictions
from perceptlab.evaluation.reports import ReportData, guidance_savings, report_sections
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


def test_the_logistic_jacobian_is_its_central_difference() -> None:
    x = np.linspace(10, 50, 41)
    for params in ((2.0, -3.0, 35.0, 3.0), (1.0, 4.0, 12.0, -0.5), (0.0, 1.0, 30.0, 8.0)):
        exact = guided.logistic4_jacobian(x, *params)
        step = 1e-6 * np.maximum(np.abs(params), 1e-3)
        numeric = np.stack(
            [
                (
                    guided.logistic4(x, *(np.add(params, h * e)))
                    - guided.logistic4(x, *np.subtract(params, h * e))
                )
                / (2 * h)
                for h, e in zip(step, np.eye(4), strict=True)
            ],
            axis=1,
        )
        assert exact == pytest.approx(numeric, abs=1e-6)


def _fooled_study(count: int, seed: int) -> tuple[pd.Series, pd.DataFrame]:
    """A study's MOS and two crop metrics that follow it except each on its own tenth of the
    stimuli (the metric is fooled there)."""
    rng = np.random.default_rng(seed)
    stimuli = [f"s{i}" for i in range(count)]
    mos = pd.Series(rng.uniform(1, 5, count), index=stimuli, name="mos")
    one = 20 + 4 * mos.to_numpy() + rng.normal(0, 0.2, count)
    two = 0.6 + 0.08 * mos.to_numpy() + rng.normal(0, 0.004, count)
    fooled = rng.choice(count, count // 5, replace=False)
    half = len(fooled) // 2
    one[fooled[:half]] += rng.uniform(5, 9, half)
    two[fooled[half:]] -= rng.uniform(0.1, 0.2, len(fooled) - half)
    return mos, pd.DataFrame({"psnr": one, "ssim": two}, index=stimuli)


def test_a_completed_study_replayed_as_a_guided_one_says_what_guidance_saved() -> None:
    """The report's replay (tables.guidance_replay): the same curves as stats.guided.replay on
    the study's stimuli, and the saving read off them in stimuli and judgments."""
    mos, wide = _fooled_study(60, seed=5)
    frame = guidance_replay(mos, wide, judgments=60 * 15, seeds=3)
    assert list(frame["measured"]) == [10, 16, 22, 29, 35, 41, 48, 54, 60]
    assert (frame["stimuli"] == 60).all() and (frame["per_stimulus"] == 15.0).all()
    reference = guided.replay(
        wide.to_numpy(), mos.to_numpy(), steps=frame["measured"].to_numpy(), seeds=3, batch=2
    )
    assert frame["guided"].to_numpy() == pytest.approx(reference.guided)
    assert frame["random"].to_numpy() == pytest.approx(reference.random)
    assert frame["guided"].iloc[-1] == frame["random"].iloc[-1] == 0.0  # all measured: exact
    savings = {s.budget: s for s in guidance_savings(frame)}
    assert sorted(savings) == [16, 22, 29, 35, 41, 48, 54]  # not the shared start, not the end
    middle = savings[29]
    assert middle.error == pytest.approx(frame.set_index("measured").loc[29, "random"])
    assert middle.needed is not None and middle.needed < 29  # the fooled stimuli found first
    reached = frame.set_index("measured").loc[middle.needed, "guided"]
    assert reached <= middle.error
    assert middle.judgments == (29 - middle.needed) * 15.0
    # in the report
    data = ReportData(title="t", method="acr", generated_at="", guidance=frame)
    sections = {s.title: s for s in report_sections(data)}
    figure = sections["What metric guidance would have saved"]
    assert figure.kind == "figure" and figure.figure is not None
    assert f"guided measurement was as close after {middle.needed}" in figure.caption
    assert f"about {middle.judgments:.0f} judgments" in figure.caption
    table = sections["Guided measurement: stimuli needed for random order's error"].html
    assert f'<td class="num">{middle.needed}</td>' in table


def test_a_study_too_small_or_without_metrics_is_not_replayed() -> None:
    mos, wide = _fooled_study(11, seed=6)
    assert guidance_replay(mos, wide, judgments=100).empty  # under 12 stimuli
    mos, wide = _fooled_study(30, seed=6)
    assert guidance_replay(mos, wide.iloc[:0], judgments=100).empty
    assert guidance_replay(mos, wide.assign(psnr=np.nan, ssim=np.nan), judgments=100).empty


def test_a_replay_where_guidance_does_worse_says_so() -> None:
    """Guided measurement behind random order at the half-way budget: the report says the
    metrics did not tell where raters were needed, and the table counts the extra judgments
    as negative savings."""
    frame = pd.DataFrame(
        {
            "measured": [5, 10, 15, 20],
            "stimuli": 20,
            "guided": [0.6, 0.5, 0.3, 0.0],
            "random": [0.6, 0.4, 0.2, 0.0],
            "per_stimulus": 12.0,
            "seeds": 5,
        }
    )
    savings = guidance_savings(frame)
    assert [(s.budget, s.needed, s.judgments) for s in savings] == [
        (10, 15, -60.0),
        (15, 20, -60.0),
    ]
    data = ReportData(title="t", method="dcr", generated_at="", guidance=frame)
    sections = {s.title: s for s in report_sections(data)}
    caption = sections["What metric guidance would have saved"].caption
    assert "With 10 of the 20 stimuli measured in random order the scale is off by 0.400" in caption
    assert "guided measurement was not as close before measuring 15" in caption
    assert (
        '<td class="num">-60</td>'
        in sections["Guided measurement: stimuli needed for random order's error"].html
    )
