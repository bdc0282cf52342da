"""Objective metrics calibrated to a human scale, and the scale predicted from them with an
uncertainty: the pure core of metric guidance, used live by a metric-guided study
(:mod:`perceptlab.studies.guidance`) and in replays (:mod:`perceptlab.evaluation.stats.guided`).

**Calibration** (:func:`calibrate`). Each metric gets the monotone 4-parameter logistic that
ITU-T P.1401 (§7.3, after VQEG's FR-TV reports) uses to map an objective score onto a
subjective scale, y = a + b / (1 + exp(−(x − c) / |d|)), fitted by least squares to the
conditions measured so far; its uncertainty is the fit's own (the delta method on the
parameters' covariance from the least-squares Jacobian) plus the metric's residual variance.

**Prediction** (:func:`predict`). The metrics' calibrated predictions are combined with weights
inverse to their residual variances; a condition's predictive variance is the weighted mean of
each metric's (fit spread² + residual²) plus the metrics' disagreement (the weighted variance
of their predictions): where metrics disagree, a human measurement is worth most.

Pure numpy/scipy, no Django.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import chi2

Array = NDArray[np.float64]


class CalibrationInputError(ValueError):
    """Too little to calibrate on; the message says what is missing."""


def logistic4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """P.1401's monotone logistic: a + b / (1 + exp(−(x − c)/|d|))."""
    z = np.clip(-(x - c) / (abs(d) + 1e-12), -60.0, 60.0)
    return np.asarray(a + b / (1.0 + np.exp(z)))


def logistic4_jacobian(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """∂/∂(a, b, c, d) of :func:`logistic4` at each x (rows): with s = 1/(1 + e^z),
    z = −(x − c)/|d|: (1, s, −b·s(1−s)/|d|, −b·s(1−s)·(x − c)·sign(d)/d²); z clipped as in
    the function (a flat tail has no slope in c or d)."""
    scale = abs(d) + 1e-12
    raw = -(x - c) / scale
    z = np.clip(raw, -60.0, 60.0)
    s = 1.0 / (1.0 + np.exp(z))
    slope = np.where(raw == z, -b * s * (1.0 - s), 0.0)
    sign = 1.0 if d >= 0 else -1.0
    return np.stack([np.ones_like(s), s, slope / scale, slope * (x - c) * sign / scale**2], axis=-1)


def _fit(x: Array, y: Array) -> tuple[Array, Array]:
    """Least-squares logistic parameters and their covariance (a start from the data's
    ranges); the start with an unknown (infinite) covariance when the fit fails."""
    span = float(np.ptp(x)) or 1.0
    slope = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and np.ptp(y) > 0 else 1.0
    sign = 1.0 if not np.isfinite(slope) or slope >= 0 else -1.0
    low, high = float(np.min(y)), float(np.max(y))
    rise = (high - low) or 1.0
    start = np.array([low if sign > 0 else high, sign * rise, float(np.median(x)), span / 4])
    # Bounded so that a straight-line relation gives a wide logistic, not one of runaway
    # parameters whose covariance would swamp every prediction: the rise within 4× the
    # human range, the centre within the metric's range widened by its span, the scale
    # between 1/50 and 2 spans.
    lower = [low - 4 * rise, -4 * rise, float(np.min(x)) - span, span / 50]
    upper = [high + 4 * rise, 4 * rise, float(np.max(x)) + span, 2 * span]
    start = np.clip(start, np.add(lower, 1e-9), np.subtract(upper, 1e-9))
    unknown = np.full((4, 4), np.inf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, cov = curve_fit(
                logistic4,
                x,
                y,
                p0=start,
                bounds=(lower, upper),
                method="trf",
                jac=logistic4_jacobian,
                max_nfev=4000,
            )
        if np.all(np.isfinite(params)):
            return np.asarray(params, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    except (RuntimeError, ValueError):
        pass
    return start, unknown


@dataclass(frozen=True)
class Calibration:
    """One metric's map onto the human scale: the fit, its parameters' covariance, its
    residual sd."""

    params: Array
    cov: Array
    residual_sd: float

    def predict(self, x: Array) -> tuple[Array, Array]:
        """Mean and variance of the calibrated prediction at metric values ``x``: the fit's
        variance by the delta method (J·cov·Jᵀ, J :func:`logistic4_jacobian`) plus the residual
        variance; a fit of unknown covariance counts the data's own variance instead."""
        point = logistic4(x, *self.params)
        if not np.all(np.isfinite(self.cov)):
            return point, np.full_like(point, self.residual_sd**2 * 4.0)
        jacobian = logistic4_jacobian(x, *self.params)
        fit_var = np.einsum("ik,kl,il->i", jacobian, self.cov, jacobian)
        return point, np.clip(fit_var, 0.0, None) + self.residual_sd**2


UPPER_QUANTILE = 0.1  # the residual variance at the upper end of its one-sided 90 % interval
FLOOR_SHARE = 0.1  # …and never under a tenth of the residuals' whole variance


def calibrate(x: Array, y: Array, y_var: Array | None = None) -> Calibration:
    """The logistic map of metric values ``x`` onto human values ``y`` (measured conditions).

    ``y_var``: each ``y``'s sampling variance when the human values are estimates (a MOS of
    n ratings: σ²/n). Their noise is part of the residuals, y − f(x) = e + ε with the
    metric's own error e ~ N(0, τ²) and ε ~ N(0, y_var), so the residual variance that says
    how well the metric predicts a *true* score is τ², not the residuals' whole variance.
    τ² is taken at the upper end of its one-sided 90 % Q-profile interval (Viechtbauer,
    Stat. Med. 26:37–52, 2007; the random-effects meta-analysis model): the τ² at which
    Σ rᵢ²/(τ² + y_varᵢ) equals the 10 % quantile of χ² with n − 4 degrees of freedom, 0 when
    even τ² = 0 gives less. The bound, not the point estimate: a difference of two noisy
    numbers from a few measured conditions would otherwise make a lucky fit look exact; and
    never under a tenth of the residuals' variance, since the noise variances are estimates
    too (a metric taken as exact would silence every other metric's disagreement)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 4:
        raise CalibrationInputError("calibration needs at least 4 measured conditions")
    params, cov = _fit(x, y)
    residual = y - logistic4(x, *params)
    dof = max(len(x) - 4, 1)
    if y_var is None:
        return Calibration(params, cov, float(np.sqrt(residual @ residual / dof)))
    noise = np.asarray(y_var, dtype=np.float64)
    if noise.shape != y.shape or not np.all(np.isfinite(noise)) or np.any(noise < 0):
        raise CalibrationInputError("y_var must hold a finite, non-negative variance per y")
    raw = float(residual @ residual / dof)
    tau2 = max(residual_bound(residual, noise, dof), FLOOR_SHARE * raw)
    return Calibration(params, cov, float(np.sqrt(tau2)))


def residual_bound(residual: Array, noise: Array, dof: int) -> float:
    """The Q-profile upper bound of τ² (see :func:`calibrate`), by bisection: the statistic
    Σ rᵢ²/(τ² + noiseᵢ) falls as τ² grows."""
    squares = residual**2
    target = float(chi2.ppf(UPPER_QUANTILE, dof))

    def statistic(tau2: float) -> float:
        return float(np.sum(squares / np.maximum(tau2 + noise, 1e-300)))

    if statistic(0.0) <= target:
        return 0.0
    low, high = 0.0, float(squares.sum()) / target + float(noise.max(initial=0.0)) + 1e-12
    while statistic(high) > target:
        high *= 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if statistic(middle) > target else (low, middle)
        if high - low <= 1e-12 * max(high, 1e-12):
            break
    return high


def predict(
    metrics: Array, measured: NDArray[np.bool_], y: Array, y_var: Array | None = None
) -> tuple[Array, Array]:
    """Predicted human values and predictive variances of every condition (rows of
    ``metrics``, conditions × metrics), from the ``measured`` ones' ``y`` (estimates with
    sampling variances ``y_var``, see :func:`calibrate`)."""
    metrics = np.asarray(metrics, dtype=np.float64)
    means, variances, weights = [], [], []
    for j in range(metrics.shape[1]):
        column = metrics[:, j]
        usable = measured & np.isfinite(column)
        if usable.sum() < 4:
            continue
        noise = None if y_var is None else np.asarray(y_var, dtype=np.float64)[usable]
        fitted = calibrate(column[usable], y[usable], noise)
        mean, var = fitted.predict(np.where(np.isfinite(column), column, np.nanmedian(column)))
        means.append(mean)
        variances.append(var)
        weights.append(1.0 / max(fitted.residual_sd**2, 1e-9))
    if not means:
        raise CalibrationInputError("no metric has 4 measured conditions to calibrate on")
    m, v, w = np.stack(means), np.stack(variances), np.array(weights)[:, None]
    w = w / w.sum()
    combined = (w * m).sum(axis=0)
    disagreement = (w * (m - combined) ** 2).sum(axis=0)
    return combined, (w * v).sum(axis=0) + disagreement


# -- a metric prior combined with ratings (metric-guided ACR/DCR) ---------------------------

MIN_RATINGS = 3
"""A stimulus's mean enters the calibration, and the stimulus may stop, with this many ratings."""
PRIOR_SD_FLOOR_SHARE = 40
"""A metric prior's sd is at least the scale's span divided by this (±0.1 on 1–5)."""
Z95 = 1.959963984540054


def pooled_variance(counts: Array, sums: Array, squares: Array, *, span: float) -> float:
    """The ratings' within-stimulus variance σ² pooled over stimuli: each stimulus's sum of
    squares about its mean over n − 1, summed and divided by the summed degrees of freedom;
    (span/4)² until 5 degrees of freedom are in, never under (span/20)²."""
    n = np.asarray(counts, dtype=np.float64)
    rated = n > 1
    total = np.asarray(squares, dtype=np.float64)[rated]
    mean_part = np.asarray(sums, dtype=np.float64)[rated] ** 2 / n[rated]
    dof = float((n[rated] - 1).sum())
    if dof < 5:
        return (span / 4) ** 2
    return max(float((total - mean_part).sum()) / dof, (span / 20) ** 2)


def metric_prior(metrics: Array, counts: Array, sums: Array, sigma2: float) -> tuple[Array, Array]:
    """Each stimulus's score predicted from its metrics (rows) calibrated to the means of the
    stimuli with :data:`MIN_RATINGS` ratings or more, their noise σ²/n netted out of each
    metric's residual variance (:func:`predict`); NaN and ∞ where nothing can be calibrated
    yet (fewer than 4 such stimuli, or no metric)."""
    n = np.asarray(counts, dtype=np.float64)
    total = np.asarray(sums, dtype=np.float64)
    metrics = np.asarray(metrics, dtype=np.float64).reshape(len(n), -1)
    measured = n >= MIN_RATINGS
    nothing = np.full(len(n), np.nan), np.full(len(n), np.inf)
    if not metrics.size or measured.sum() < 4:
        return nothing
    y = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    y_var = np.divide(sigma2, n, out=np.zeros_like(n), where=n > 0)
    try:
        return predict(metrics, measured, y, y_var)
    except CalibrationInputError:
        return nothing


@dataclass(frozen=True)
class Combined:
    """Each stimulus's score from its ratings and a metric prior (arrays per stimulus)."""

    score: Array  # NaN: nothing known
    half_width: Array  # the 95 % half-width; ∞: nothing known
    prior_var: Array  # the prior's variance as used (floored; ∞: no prior)


def combine(
    counts: Array,
    sums: Array,
    sigma2: float,
    prior_mean: Array,
    prior_var: Array,
    *,
    span: float,
) -> Combined:
    """The normal posterior of a stimulus's true score: prior N(m, v) (v at least
    (span/:data:`PRIOR_SD_FLOOR_SHARE`)²; none where m is NaN or v ∞) and n ratings of
    variance σ² summing to ``sums``: precision 1/v + n/σ², mean (m/v + Σy/σ²)/precision,
    95 % half-width 1.96/√precision."""
    n = np.asarray(counts, dtype=np.float64)
    total = np.asarray(sums, dtype=np.float64)
    m = np.asarray(prior_mean, dtype=np.float64)
    v = np.maximum(np.asarray(prior_var, dtype=np.float64), (span / PRIOR_SD_FLOOR_SHARE) ** 2)
    usable = np.isfinite(m) & np.isfinite(v)
    prior = np.where(usable, 1.0 / v, 0.0)
    precision = prior + n / sigma2
    known = precision > 0
    safe = np.where(known, precision, 1.0)
    score = np.where(known, (np.where(usable, m, 0.0) * prior + total / sigma2) / safe, np.nan)
    half = np.where(known, Z95 / np.sqrt(safe), np.inf)
    return Combined(score, half, np.where(usable, v, np.inf))
