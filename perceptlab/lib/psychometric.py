"""The psychometric function of the flicker test (JPEG AIC-2, ISO/IEC 29170-2 Annex B) and
its fit on a grid: visually lossless thresholds in bits per pixel. No Django.

**Model.** A rater sees the original still on one side and the test image alternating with
the original on the other, and names the flickering side: a two-alternative forced choice
whose guess rate is γ = ½. The probability of a correct answer at a test image of ``bpp``
bits per pixel, x = log2(bpp), falls with the rate (a coarser image flickers more)::

    P(correct | x) = γ + (1 − γ − λ) · Φ((μ − x) / s)

with a lapse rate λ (answers given without looking; 2 % by default, as psychophysics
commonly fixes it: Wichmann and Hill, Percept. Psychophys. 63(8), 2001), a location μ and a
spread s in log2 bpp. The **threshold** is the rate at which P(correct) = 0.75, the
criterion of AIC-2 (a stimulus is visually lossless when the correct-decision rate is at
most ~75 %, i.e. halfway between chance and certainty)::

    x₇₅ = μ − s · Φ⁻¹((0.75 − γ) / (1 − γ − λ))

**Fit** (:func:`fit`). Maximum likelihood on a grid: μ over the ladder's range widened by
:data:`MARGIN` log2 units on each side, s over :data:`SPREADS`; one spread is shared by
every (image, codec) of a study (a few ladder levels per image cannot pin a slope each),
chosen by the profile likelihood, and each group's μ is its best grid point at that spread,
refined by a parabola through its neighbours. A grid is exact to its resolution, never
fails to converge, and vectorises over bootstrap replicates. A threshold outside the ladder
is **censored**, only a bound: above it (even the highest rate was seen to flicker more than
75 % of the time) or below it (even the lowest was not).

**Next level** (:func:`posterior`, used by the adaptive flicker study): QUEST's idea (Watson
and Pelli, Percept. Psychophys. 33(2), 1983): the posterior of μ on the grid under a flat
prior at the given spread; the next trial goes to the ladder level nearest the posterior
mean threshold, and a group stops when the threshold's 95 % credible half-width is below the
researcher's target (in log2 bpp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, ndtri

Array = NDArray[np.float64]

GUESS = 0.5
LAPSE = 0.02
CRITERION = 0.75
MARGIN = 2.0  # log2 units beyond the ladder's ends that a threshold may lie
GRID_POINTS = 161
SPREADS = np.geomspace(0.1, 2.0, 17)
DEFAULT_SPREAD = 0.5  # log2 bpp: before any data, and for the planner's posterior


class PsychometricInputError(ValueError):
    """Counts the fit cannot use; the message names the problem."""


def criterion_offset(spread: Array | float, *, guess: float = GUESS, lapse: float = LAPSE) -> Array:
    """x₇₅ − μ = −s · Φ⁻¹((0.75 − γ) / (1 − γ − λ))."""
    return np.asarray(-np.asarray(spread) * ndtri((CRITERION - guess) / (1.0 - guess - lapse)))


def log_probabilities(z: Array, *, lapse: float = LAPSE) -> tuple[Array, Array]:
    """log P(correct) and log P(wrong) at z = (μ − x)/s, through log Φ (stable in both
    tails); the one place the model's probabilities are computed."""
    span = math.log(1.0 - GUESS - lapse)
    log_p = np.logaddexp(math.log(GUESS), span + log_ndtr(z))
    wrong = span + log_ndtr(-z)
    log_q = np.logaddexp(math.log(lapse), wrong) if lapse > 0 else wrong
    return np.asarray(log_p), np.asarray(log_q)


def log_likelihood(
    x: Array, k: Array, n: Array, mu: Array, spread: float, *, lapse: float = LAPSE
) -> Array:
    """Σ over levels of k·log P + (n − k)·log(1 − P) for each μ (trailing axis); ``x``,
    ``k``, ``n`` may carry leading axes (groups, replicates) that broadcast."""
    log_p, log_q = log_probabilities((mu - x[..., None]) / spread, lapse=lapse)
    total = k[..., None] * log_p + (n - k)[..., None] * log_q
    return np.asarray(total.sum(axis=-2))


@dataclass(frozen=True)
class Fit:
    """Thresholds of several groups (rows) under one shared spread."""

    threshold: Array  # log2 bpp at 75 % correct, per group
    location: Array  # μ per group
    spread: float
    censored: list[str]  # "" | "above" | "below" the ladder, per group


def grid_for(x: Array) -> Array:
    """The μ grid: the ladder's range (log2 bpp) widened by MARGIN on each side."""
    low, high = float(np.min(x)) - MARGIN, float(np.max(x)) + MARGIN
    return np.linspace(low, high, GRID_POINTS)


def fit(x: Array, k: Array, n: Array, *, lapse: float = LAPSE) -> Fit:
    """Maximum-likelihood thresholds of G groups (rows of ``x``, ``k``, ``n``, G × L: the
    log2 bpp of each group's levels, correct answers, answers; pad unused levels with
    n = 0) under one shared spread (the module docstring)."""
    return Grid(x, lapse=lapse).fit(k, n)


class Grid:
    """The log-probabilities of a correct and a wrong answer at every (spread, group, level,
    μ) of a ladder, computed once: refitting other counts on the same ladder (a bootstrap
    replicate) is then two contractions, not thousands of normal CDFs."""

    def __init__(self, x: Array, *, lapse: float = LAPSE) -> None:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if not np.all(np.isfinite(x)):
            raise PsychometricInputError("rates must be finite")
        self.x, self.lapse = x, lapse
        self.mu = grid_for(x)
        z = (self.mu - x[None, :, :, None]) / SPREADS[:, None, None, None]  # S × G × L × M
        self.log_p, self.log_q = log_probabilities(z, lapse=lapse)

    def fit(self, k: Array, n: Array) -> Fit:
        k, n = (np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in (k, n))
        if not (self.x.shape == k.shape == n.shape):
            raise PsychometricInputError("x, k and n must have the same shape (groups × levels)")
        if np.any(k < 0) or np.any(k > n):
            raise PsychometricInputError("counts must satisfy 0 ≤ correct ≤ answers")
        ll = np.einsum("gl,sglm->sgm", k, self.log_p) + np.einsum("gl,sglm->sgm", n - k, self.log_q)
        best = int(np.argmax(ll.max(axis=2).sum(axis=1)))  # the profile likelihood's spread
        spread, chosen = float(SPREADS[best]), ll[best]
        index = chosen.argmax(axis=1)
        location = _refined(self.mu, chosen, index)
        threshold = location + criterion_offset(spread, lapse=self.lapse)
        censored = [_censored(t, row) for t, row in zip(threshold.tolist(), self.x, strict=True)]
        return Fit(threshold, location, spread, censored)


def _censored(threshold: float, levels: Array) -> str:
    """A threshold outside the ladder is only a bound: the levels cannot place it."""
    if threshold > float(np.max(levels)):
        return "above"
    if threshold < float(np.min(levels)):
        return "below"
    return ""


def _refined(mu: Array, ll: Array, index: NDArray[np.intp]) -> Array:
    """Each row's maximum, refined by the parabola through the grid point and its neighbours."""
    step = mu[1] - mu[0]
    inner = (index > 0) & (index < len(mu) - 1)
    rows = np.arange(len(index))
    safe = np.clip(index, 1, len(mu) - 2)
    left, centre, right = ll[rows, safe - 1], ll[rows, safe], ll[rows, safe + 1]
    curvature = left - 2 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    shift = np.clip(np.nan_to_num(shift), -0.5, 0.5)
    return np.asarray(mu[index] + np.where(inner, shift * step, 0.0))


@dataclass(frozen=True)
class Posterior:
    """QUEST's posterior of one group's threshold (log2 bpp) on the grid."""

    grid: Array  # thresholds
    weights: Array  # posterior probability per grid point

    @property
    def mean(self) -> float:
        return float(np.dot(self.grid, self.weights))

    def half_width(self, confidence: float = 0.95) -> float:
        """Half the central ``confidence`` credible interval's width (log2 bpp)."""
        cdf = np.cumsum(self.weights)
        tail = (1.0 - confidence) / 2.0
        low = self.grid[min(int(np.searchsorted(cdf, tail)), len(self.grid) - 1)]
        high = self.grid[min(int(np.searchsorted(cdf, 1.0 - tail)), len(self.grid) - 1)]
        return float(high - low) / 2.0

    def nearest(self, levels: Array) -> int:
        """The index of the ladder level nearest the posterior mean threshold."""
        return int(np.argmin(np.abs(np.asarray(levels) - self.mean)))


def posterior(
    x: Array, k: Array, n: Array, *, spread: float = DEFAULT_SPREAD, lapse: float = LAPSE
) -> Posterior:
    """The posterior of one group's threshold under a flat prior on the μ grid at a fixed
    spread: ``x`` the log2 bpp of its ladder levels, ``k`` correct answers, ``n`` answers."""
    x, k, n = (np.asarray(v, dtype=np.float64) for v in (x, k, n))
    if not (x.shape == k.shape == n.shape) or x.ndim != 1 or not len(x):
        raise PsychometricInputError("x, k and n must be one value per ladder level")
    mu = grid_for(x)
    ll = log_likelihood(x, k, n, mu, spread, lapse=lapse)
    weights = np.exp(ll - ll.max())
    weights /= weights.sum()
    return Posterior(mu + criterion_offset(spread, lapse=lapse), weights)
