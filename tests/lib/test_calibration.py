"""lib.calibration's residual variance when the human values are noisy estimates: the
Q-profile upper bound of the metric's own error variance τ² (Viechtbauer 2007)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from perceptlab.lib import calibration


def test_without_noise_the_bound_is_the_classical_upper_confidence_bound_of_a_variance() -> None:
    """With no measurement noise Σr²/τ² ~ χ²(dof): the one-sided 90 % upper bound of τ² is
    Σr² / χ²₀.₁(dof)."""
    rng = np.random.default_rng(0)
    residual = rng.normal(0, 0.3, 25)
    bound = calibration.residual_bound(residual, np.zeros(25), 21)
    assert bound == pytest.approx(residual @ residual / chi2.ppf(0.1, 21), rel=1e-9)


def test_the_bound_solves_the_q_profile_equation() -> None:
    """Σ rᵢ²/(τ² + vᵢ) = χ²₀.₁(dof) at the bound, with unequal noise variances (a MOS of a
    different number of ratings per stimulus); checked on a dense grid of τ²."""
    rng = np.random.default_rng(1)
    noise = 0.64 / rng.integers(3, 12, 30)
    residual = rng.normal(0, np.sqrt(0.05 + noise))
    bound = calibration.residual_bound(residual, noise, 26)
    grid = np.linspace(0, 1, 1_000_001)
    statistic = (residual[:, None] ** 2 / (grid[None, :] + noise[:, None])).sum(axis=0)
    crossing = grid[np.argmax(statistic <= chi2.ppf(0.1, 26))]
    assert bound == pytest.approx(crossing, abs=2e-6)
    # residuals smaller than the noise explains: the bound is 0
    assert calibration.residual_bound(0.1 * residual, noise, 26) == 0.0


def test_the_bound_covers_the_true_error_variance_nine_times_in_ten() -> None:
    rng = np.random.default_rng(2)
    tau2, covered, runs = 0.04, 0, 2000
    for _ in range(runs):
        noise = 0.7 / rng.integers(3, 9, 20)
        residual = rng.normal(0, np.sqrt(tau2 + noise))
        covered += calibration.residual_bound(residual, noise, 20) >= tau2
    assert covered / runs == pytest.approx(0.9, abs=0.025)


def test_a_calibration_on_noisy_means_takes_the_bound_not_the_raw_residuals() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(20, 40, 40)
    truth = calibration.logistic4(x, 1.0, 4.0, 30.0, 3.0) + rng.normal(0, 0.1, 40)
    noise = np.full(40, 0.64 / 4)  # each y a mean of 4 ratings of sd 0.8
    y = truth + rng.normal(0, np.sqrt(noise))
    plain = calibration.calibrate(x, y)
    netted = calibration.calibrate(x, y, noise)
    assert netted.params == pytest.approx(plain.params)
    raw = plain.residual_sd**2
    expected = max(
        calibration.residual_bound(y - calibration.logistic4(x, *plain.params), noise, 36),
        0.1 * raw,
    )
    assert netted.residual_sd**2 == pytest.approx(expected)
    assert netted.residual_sd < plain.residual_sd  # the metric is better than the noisy means
    # never under a tenth of the residuals' variance: no metric is taken as exact
    exact = calibration.calibrate(x, calibration.logistic4(x, 1.0, 4.0, 30.0, 3.0), noise)
    assert exact.residual_sd > 0
    with pytest.raises(calibration.CalibrationInputError, match="y_var"):
        calibration.calibrate(x, y, noise[:3])
    with pytest.raises(calibration.CalibrationInputError, match="y_var"):
        calibration.calibrate(x, y, -noise)
