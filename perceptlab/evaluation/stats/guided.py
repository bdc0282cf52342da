"""Metric-guided studies: objective metrics calibrated to the human scale as conditions are
measured, the unmeasured ones predicted with an uncertainty, and human effort sent where
the prediction is least certain.

**Calibration** (:func:`calibrate`). Each metric gets the monotone 4-parameter logistic that
ITU-T P.1401 (§7.3, after VQEG's FR-TV reports) uses to map an objective score onto a
subjective scale, y = a + b / (1 + exp(−(x − c) / |d|)), fitted by least squares to the
conditions measured so far; its uncertainty is the fit's own (the delta method on the
parameters' covariance from the least-squares Jacobian) plus the metric's residual variance.

**Prediction** (:func:`predict`). The metrics' calibrated predictions are combined with weights
inverse to their residual variances; a condition's predictive variance is the weighted mean of
each metric's (fit spread² + residual²) plus the metrics' disagreement (the weighted variance
of their predictions): where metrics disagree, a human measurement is worth most.

**Guidance** (:func:`replay`). Starting from ``seed_size`` conditions measured at random, the
next condition measured is the unmeasured one with the largest predictive variance; the
baseline measures them in random order. After each step the study's scale is the measurement
where there is one and the prediction elsewhere; its error against the complete human scale,
per number measured, is what the guidance saves (``bench/metric_guided.py`` replays JPEG
AIC-4's example dataset: 300 compressed images with JND from AIC-3 triplets and nine
metrics). Pure numpy/scipy, no Django.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeWarning, curve_fit

from .common import StatsInputError

Array = NDArray[np.float64]
DEFAULT_SEED_SIZE = 10


def logistic4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """P.1401's monotone logistic: a + b / (1 + exp(−(x − c)/|d|))."""
    z = np.clip(-(x - c) / (abs(d) + 1e-12), -60.0, 60.0)
    return np.asarray(a + b / (1.0 + np.exp(z)))


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
                logistic4, x, y, p0=start, bounds=(lower, upper), method="trf", max_nfev=4000
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
        variance by the delta method (J·cov·Jᵀ, J by central differences) plus the residual
        variance; a fit of unknown covariance counts the data's own variance instead."""
        point = logistic4(x, *self.params)
        if not np.all(np.isfinite(self.cov)):
            return point, np.full_like(point, self.residual_sd**2 * 4.0)
        steps = 1e-6 * np.maximum(np.abs(self.params), 1e-3)
        jacobian = np.stack(
            [
                (logistic4(x, *(self.params + h * e)) - logistic4(x, *(self.params - h * e)))
                / (2 * h)
                for h, e in zip(steps, np.eye(4), strict=True)
            ],
            axis=1,
        )
        fit_var = np.einsum("ik,kl,il->i", jacobian, self.cov, jacobian)
        return point, np.clip(fit_var, 0.0, None) + self.residual_sd**2


def calibrate(x: Array, y: Array) -> Calibration:
    """The logistic map of metric values ``x`` onto human values ``y`` (measured conditions)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 4:
        raise StatsInputError("calibration needs at least 4 measured conditions")
    params, cov = _fit(x, y)
    residual = y - logistic4(x, *params)
    dof = max(len(x) - 4, 1)
    return Calibration(params, cov, float(np.sqrt(residual @ residual / dof)))


def predict(metrics: Array, measured: NDArray[np.bool_], y: Array) -> tuple[Array, Array]:
    """Predicted human values and predictive variances of every condition (rows of
    ``metrics``, conditions × metrics), from the ``measured`` ones' ``y``."""
    metrics = np.asarray(metrics, dtype=np.float64)
    means, variances, weights = [], [], []
    for j in range(metrics.shape[1]):
        column = metrics[:, j]
        usable = measured & np.isfinite(column)
        if usable.sum() < 4:
            continue
        fitted = calibrate(column[usable], y[usable])
        mean, var = fitted.predict(np.where(np.isfinite(column), column, np.nanmedian(column)))
        means.append(mean)
        variances.append(var)
        weights.append(1.0 / max(fitted.residual_sd**2, 1e-9))
    if not means:
        raise StatsInputError("no metric has 4 measured conditions to calibrate on")
    m, v, w = np.stack(means), np.stack(variances), np.array(weights)[:, None]
    w = w / w.sum()
    combined = (w * m).sum(axis=0)
    disagreement = (w * (m - combined) ** 2).sum(axis=0)
    return combined, (w * v).sum(axis=0) + disagreement


@dataclass(frozen=True)
class Replay:
    """Error of the study's scale (RMS against the complete human scale) after each number of
    conditions measured, guided and random, averaged over seeds."""

    measured: NDArray[np.intp]
    guided: Array
    random: Array
    metrics_only: float  # after the seed set only, every other condition predicted

    def needed(self, target: float, which: str = "guided") -> int | None:
        """Conditions measured before the error first falls to ``target`` (None: never)."""
        errors = self.guided if which == "guided" else self.random
        below = np.flatnonzero(errors <= target)
        return int(self.measured[below[0]]) if len(below) else None


def replay(
    metrics: Array,
    truth: Array,
    *,
    steps: NDArray[np.intp],
    seeds: int = 10,
    seed_size: int = DEFAULT_SEED_SIZE,
    batch: int = 1,
) -> Replay:
    """Measure conditions (guided, and in random order) and record the scale's RMS error at
    each of ``steps`` (numbers of conditions measured; the module docstring). Guided steps
    take the ``batch`` most uncertain conditions per refit (a study hands several trials out
    between refits)."""
    metrics, truth = np.asarray(metrics, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    count = len(truth)
    if metrics.shape[0] != count:
        raise StatsInputError("metrics and truth must have one row per condition")
    steps = np.asarray(sorted({int(s) for s in steps if seed_size <= s <= count}), dtype=np.intp)
    guided = np.zeros((seeds, len(steps)))
    random = np.zeros((seeds, len(steps)))
    first = np.zeros(seeds)
    for s in range(seeds):
        rng = np.random.default_rng(s)
        order = rng.permutation(count)
        for mode, out in (("guided", guided), ("random", random)):
            measured = np.zeros(count, dtype=bool)
            measured[order[:seed_size]] = True
            taken = seed_size
            for k, step in enumerate(steps):
                while taken < step:
                    if mode == "random":
                        measured[order[taken]] = True
                        taken += 1
                    else:
                        _, var = predict(metrics, measured, truth)
                        var[measured] = -np.inf
                        chosen = np.argsort(-var)[: min(batch, step - taken)]
                        measured[chosen] = True
                        taken += len(chosen)
                out[s, k] = _error(metrics, measured, truth)
            if mode == "random":
                seed_only = np.zeros(count, dtype=bool)
                seed_only[order[:seed_size]] = True
                first[s] = _error(metrics, seed_only, truth)
    return Replay(steps, guided.mean(axis=0), random.mean(axis=0), float(first.mean()))


def _error(metrics: Array, measured: NDArray[np.bool_], truth: Array) -> float:
    predicted, _ = predict(metrics, measured, truth)
    scale = np.where(measured, truth, predicted)
    return float(np.sqrt(np.mean((scale - truth) ** 2)))
