"""Metric-guided ACR and DCR studies (``Study.sampling = "adaptive"`` with a rating method):
each next rating goes to the stimulus whose score is least certain, judged from its own
ratings and from the objective metrics calibrated to the scores measured so far, and a
stimulus stops drawing ratings once its score is known to the researcher's target width.

**The estimate of a stimulus** (:func:`estimates`). Its ratings give a mean ȳ of n ratings
with the study's pooled within-stimulus variance σ² (the ratings' sums and sums of squares
kept in :class:`~perceptlab.studies.models.ItemTally`, in the judgment's transaction; σ²
pooled over the stimuli with two ratings or more, the scale's span/4 squared until five
degrees of freedom are in). The metrics give a prediction m with variance v: each metric
mapped onto the scores by ITU-T P.1401's monotone logistic, fitted to the means of the
stimuli with at least :data:`MIN_RATINGS` ratings, its residual variance the metric's own
error net of those means' noise σ²/n (at the upper end of its 90 % Q-profile interval, so
that a lucky early fit does not look exact), combined by inverse residual variance, the
metrics' disagreement added (:func:`perceptlab.lib.calibration.predict`). The two combine as a
normal prior and a normal likelihood do (v at least (span/40)²: the metrics never claim a
score to better than ±0.1 of a five-point scale): precision 1/v + n/σ², mean (m/v + nȳ/σ²) over the
precision, 95 % half-width 1.96/√precision. Where the metrics agree with the raters, v is
small and a few ratings settle the score; where they disagree (a GAN's texture that fools
one metric and not another), v is large and the ratings must do it alone. A stimulus's
own mean is among those its calibration was fitted to; with the logistic's four
parameters spread over all measured stimuli, that reuse is small.

**The next stimulus** (:func:`rank`). Every stimulus first gets :data:`MIN_RATINGS` ratings
(no stimulus is scored by the metrics alone); then the one with the widest estimate per
pending rating + 1 (slots taken whose answer has not come); with probability
:data:`EXPLORE`, the least rated instead. A stimulus stops when it has its minimum and
its half-width is at most ``Study.target_width`` (points of the scale), or when its slots
(``judgments_per_item``, the cap) are taken; when every stimulus has stopped the study is
at its target (sessions end early, newcomers are told so, the dashboard shows it).

**Cost per binding.** One query for the counters (:func:`adaptive.item_counts`); the
metric values are read once per process per :data:`METRICS_MAX_AGE_S`; the calibration
(a least-squares fit per metric, ~2 ms each) is refitted once per :data:`REFIT_EVERY`
ratings, the estimates from it with the fresh counts on every binding.

The report's scores stay the ratings' own (MOS or DMOS with their rater-bootstrap
intervals); its sections "Metrics calibrated to the human scale" and "What metric guidance
would have saved" show the calibration against them.

The metric values live in the evaluation app, a layer above this one: it contributes them
through :func:`contribute_metric_source` when it is installed.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from perceptlab.lib import calibration
from perceptlab.studies import catalog
from perceptlab.studies.adaptive import (
    Counts,
    ImageProgress,
    Progress,
    item_counts,
    sampling_order,
)
from perceptlab.studies.models import Item, Method, Stimulus, Study

MIN_RATINGS = calibration.MIN_RATINGS
Z95 = calibration.Z95
EXPLORE = 0.25
REFIT_EVERY = 10
METRICS_MAX_AGE_S = 60.0

MetricSource = Callable[[Study], Mapping[int, Mapping[str, float]]]
"""Stimulus id → metric slug → value (on the crop raters see) of a study's stimuli."""

_sources: list[MetricSource] = []
_lock = threading.Lock()
_metric_cache: dict[int, tuple[float, MetricTable]] = {}
_prediction_cache: dict[tuple[int, float, int], _Prediction] = {}


def contribute_metric_source(source: MetricSource) -> None:
    """Register where metric values come from (the evaluation app does, when installed)."""
    if source not in _sources:
        _sources.append(source)


@dataclass(frozen=True)
class MetricTable:
    """A study's metric values: a row per stimulus id, a column per metric (NaN: none)."""

    stimuli: tuple[int, ...]
    metrics: tuple[str, ...]
    values: np.ndarray
    loaded: float = 0.0  # time.monotonic() when read: the predictions cached from it carry it

    def rows(self, stimuli: Sequence[int]) -> np.ndarray:
        index = {pk: i for i, pk in enumerate(self.stimuli)}
        out = np.full((len(stimuli), len(self.metrics)), np.nan)
        for row, pk in enumerate(stimuli):
            if pk in index:
                out[row] = self.values[index[pk]]
        return out


def metric_table(study: Study) -> MetricTable:
    """The study's metric values, read once per process per :data:`METRICS_MAX_AGE_S`."""
    now = time.monotonic()
    cached = _metric_cache.get(study.pk)
    if cached is not None and now - cached[0] < METRICS_MAX_AGE_S:
        return cached[1]
    merged: dict[int, dict[str, float]] = {}
    for source in _sources:
        for stimulus, found in source(study).items():
            merged.setdefault(stimulus, {}).update(found)
    stimuli = tuple(sorted(merged))
    metrics = tuple(sorted({name for values in merged.values() for name in values}))
    values = np.array(
        [[merged[s].get(m, np.nan) for m in metrics] for s in stimuli], dtype=np.float64
    ).reshape(len(stimuli), len(metrics))
    values[~np.isfinite(values)] = np.nan  # an identical crop's PSNR (inf) is no calibration
    table = MetricTable(stimuli, metrics, values, now)
    with _lock:
        _metric_cache[study.pk] = (now, table)
    return table


@dataclass(frozen=True)
class StimulusEstimate:
    """One test stimulus of a metric-guided study as the counters and metrics have it now."""

    item: int
    image: int
    ratings: int
    pending: int
    mean: float  # of its ratings (NaN: none yet)
    predicted: float  # from the calibrated metrics (NaN: no calibration yet)
    predicted_var: float  # inf: no calibration
    score: float  # the combined estimate
    half_width: float  # its 95 % half-width (inf: nothing known)
    done: bool
    needed: int  # more ratings projected to reach the target


@dataclass(frozen=True)
class _Prediction:
    stimuli: tuple[int, ...]
    mean: np.ndarray
    var: np.ndarray


def estimates(
    study: Study, counts: Mapping[int, Counts] | None = None
) -> dict[int, StimulusEstimate]:
    """Every test stimulus (not a hidden reference) of a metric-guided study, by item id."""
    counts = item_counts(study) if counts is None else counts
    items = [
        item
        for item in catalog.items_of(study, counts).values()
        if item.b_id is None and item.a.role != Stimulus.Role.HIDDEN
    ]
    if not items:
        return {}
    items.sort(key=lambda item: item.pk)
    low, high = study.scale_range()
    span = high - low
    n = np.array([counts[item.pk].answers for item in items], dtype=np.float64)
    sums = np.array([counts[item.pk].score_sum for item in items], dtype=np.float64)
    squares = np.array([counts[item.pk].score_squares for item in items], dtype=np.float64)
    sigma2 = calibration.pooled_variance(n, sums, squares, span=span)
    prediction = _predict(study, items, n, sums, sigma2)
    combined = calibration.combine(n, sums, sigma2, prediction.mean, prediction.var, span=span)
    precision_goal = (Z95 / study.target_width) ** 2
    cap = study.judgments_per_item
    out = {}
    for k, item in enumerate(items):
        ratings = int(n[k])
        v = float(combined.prior_var[k])
        half = float(combined.half_width[k])
        prior = 1.0 / v if math.isfinite(v) else 0.0
        wanted = max(math.ceil((precision_goal - prior) * sigma2 - 1e-9), MIN_RATINGS)
        wanted = min(wanted, cap)
        done = ratings >= cap or (ratings >= MIN_RATINGS and half <= study.target_width)
        out[item.pk] = StimulusEstimate(
            item=item.pk,
            image=item.a.study_image_id,
            ratings=ratings,
            pending=counts[item.pk].pending,
            mean=float(sums[k] / ratings) if ratings else math.nan,
            predicted=float(prediction.mean[k]),
            predicted_var=v,
            score=float(combined.score[k]),
            half_width=half,
            done=done,
            needed=0 if done else max(wanted - ratings, 1),
        )
    return out


def _predict(
    study: Study, items: Sequence[Item], n: np.ndarray, sums: np.ndarray, sigma2: float
) -> _Prediction:
    """The calibrated metrics' prediction of every stimulus (:func:`calibration.metric_prior`),
    refitted once per :data:`REFIT_EVERY` ratings (per process)."""
    stimuli = tuple(item.a_id for item in items)
    table = metric_table(study)
    key = (study.pk, table.loaded, int(n.sum()) // REFIT_EVERY)
    cached = _prediction_cache.get(key)
    if cached is not None and cached.stimuli == stimuli:
        return cached
    mean, var = calibration.metric_prior(table.rows(stimuli), n, sums, sigma2)
    prediction = _Prediction(stimuli, mean, var)
    with _lock:
        if len(_prediction_cache) > 256:
            _prediction_cache.clear()
        _prediction_cache[key] = prediction
    return prediction


def rank(
    *,
    study: Study,
    candidates: Sequence[Item],
    rng: random.Random | None = None,
    explore: float | None = None,
) -> list[Item]:
    """The candidates in the order a session should try them: with probability ``explore``
    the least rated first, else those under :data:`MIN_RATINGS` (ratings and pending) first,
    then the widest estimate per pending rating + 1. Stopped stimuli are left out."""
    rng = rng or random.Random(random.getrandbits(64))  # random.seed() fixes a test run
    explore = EXPLORE if explore is None else explore
    counts = item_counts(study)
    states = estimates(study, counts)
    live = [c for c in candidates if c.pk in states and not states[c.pk].done]

    def by_uncertainty() -> Callable[[Item], tuple[float, ...]]:
        def key(item: Item) -> tuple[float, ...]:
            state = states[item.pk]
            asked = state.ratings + state.pending
            return (0.0 if asked < MIN_RATINGS else 1.0, -state.half_width / (1 + state.pending))

        return key

    return sampling_order(live, counts, rng, explore, by_uncertainty)


def stopped(study: Study) -> bool:
    """Every test stimulus of the metric-guided study has stopped."""
    states = estimates(study)
    return bool(states) and all(state.done for state in states.values())


def study_progress(study: Study) -> Progress:
    """Per image: ratings, the widest 95 % half-width and the ratings projected left."""
    states = estimates(study)
    names = dict(study.study_images.values_list("pk", "source__name")) if states else {}
    by_image: dict[int, list[StimulusEstimate]] = {}
    for state in states.values():
        by_image.setdefault(state.image, []).append(state)
    rows = [
        ImageProgress(
            image=str(names.get(image, image)),
            answered=sum(s.ratings for s in members),
            widest=max(s.half_width for s in members),
            projected_left=sum(s.needed for s in members),
            done=all(s.done for s in members),
        )
        for image, members in sorted(by_image.items())
    ]
    return Progress(study.target_width, "DMOS" if study.method == Method.DCR else "MOS", rows)
