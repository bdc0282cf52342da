"""Metric-guided studies: objective metrics calibrated to the human scale as conditions are
measured, the unmeasured ones predicted with an uncertainty, and human effort sent where
the prediction is least certain.

**Calibration and prediction** (:mod:`perceptlab.lib.calibration`, re-exported here with
this package's errors). Each metric gets ITU-T P.1401's monotone 4-parameter logistic onto
the human scale, with the delta method's fit uncertainty plus its residual variance; the
metrics are combined by inverse residual variance, their disagreement added to the
predictive variance.

**Guidance** (:func:`replay`). Starting from ``seed_size`` conditions measured at random, the
next condition measured is the unmeasured one with the largest predictive variance; the
baseline measures them in random order. After each step the study's scale is the measurement
where there is one and the prediction elsewhere; its error against the complete human scale,
per number measured, is what the guidance saves (``bench/metric_guided.py`` replays JPEG
AIC-4's example dataset: 300 compressed images with JND from AIC-3 triplets and nine
metrics). Pure numpy/scipy, no Django.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from perceptlab.lib import calibration
from perceptlab.lib.calibration import Calibration, logistic4, logistic4_jacobian

from .common import StatsInputError

__all__ = ["Calibration", "Replay", "calibrate", "logistic4", "logistic4_jacobian", "predict"]

Array = NDArray[np.float64]
DEFAULT_SEED_SIZE = 10


def calibrate(x: Array, y: Array) -> Calibration:
    """:func:`perceptlab.lib.calibration.calibrate`; too few conditions: StatsInputError."""
    try:
        return calibration.calibrate(x, y)
    except calibration.CalibrationInputError as error:
        raise StatsInputError(str(error)) from None


def predict(metrics: Array, measured: NDArray[np.bool_], y: Array) -> tuple[Array, Array]:
    """:func:`perceptlab.lib.calibration.predict`; nothing to calibrate on: StatsInputError."""
    try:
        return calibration.predict(metrics, measured, y)
    except calibration.CalibrationInputError as error:
        raise StatsInputError(str(error)) from None


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
