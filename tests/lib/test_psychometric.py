"""lib.psychometric: the flicker test's psychometric function, its grid fit, QUEST's posterior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import binom, norm

from perceptlab.lib import psychometric as pm

LADDER = np.log2([0.25, 0.5, 1.0, 2.0, 4.0])


def _p(x: np.ndarray, mu: float, spread: float, lapse: float = pm.LAPSE) -> np.ndarray:
    return pm.GUESS + (1 - pm.GUESS - lapse) * norm.cdf((mu - x) / spread)


def test_the_log_likelihood_is_the_binomial_one() -> None:
    k, n = np.array([9.0, 8, 6, 5, 4]), np.array([10.0, 10, 10, 9, 8])
    mu = np.array([-1.0, 0.3, 2.0])
    got = pm.log_likelihood(LADDER, k, n, mu, 0.7)
    expected = []
    for m in mu:
        p = _p(LADDER, m, 0.7)
        expected.append(float(np.sum(k * np.log(p) + (n - k) * np.log(1 - p))))
    assert got == pytest.approx(expected, abs=1e-9)


def test_the_threshold_is_where_three_quarters_are_correct() -> None:
    for spread in (0.2, 0.5, 1.3):
        x75 = 0.4 + float(pm.criterion_offset(spread))
        assert _p(np.array([x75]), 0.4, spread)[0] == pytest.approx(0.75, abs=1e-12)


def test_the_grid_fit_matches_a_continuous_maximum_likelihood_fit() -> None:
    """One group, spread and location free: the grid's answer against scipy's optimiser."""
    k, n = np.array([29.0, 26, 21, 17, 16]), np.array([30.0, 30, 30, 30, 30])
    got = pm.fit(LADDER[None], k[None], n[None])

    def nll(theta: np.ndarray) -> float:
        return -float(np.sum(binom.logpmf(k, n, _p(LADDER, theta[0], np.exp(theta[1])))))

    best = minimize(nll, x0=[0.0, np.log(0.5)], method="Nelder-Mead", options={"xatol": 1e-8})
    threshold = best.x[0] + float(pm.criterion_offset(np.exp(best.x[1])))
    # the grid's spread is one of SPREADS; the threshold it implies agrees closely
    assert got.threshold[0] == pytest.approx(threshold, abs=0.05)
    assert got.censored == [""]


def test_simulated_raters_thresholds_are_recovered_with_a_shared_spread() -> None:
    rng = np.random.default_rng(3)
    truth = np.array([-1.2, 0.0, 0.9, 1.6])  # μ per group, log2 bpp
    spread = 0.45
    x = np.tile(LADDER, (len(truth), 1))
    n = np.full_like(x, 400.0)
    k = rng.binomial(400, _p(x, truth[:, None], spread)).astype(float)
    got = pm.fit(x, k, n)
    expected = truth + float(pm.criterion_offset(spread))
    assert got.threshold == pytest.approx(expected, abs=0.12)
    assert got.spread == pytest.approx(spread, rel=0.35)


def test_a_threshold_beyond_the_ladder_is_censored() -> None:
    n = np.full(5, 20.0)
    seen_everywhere = pm.fit(LADDER[None], n[None], n[None])  # always correct
    assert seen_everywhere.censored == ["above"]
    never_seen = pm.fit(LADDER[None], (n / 2)[None], n[None])  # chance at every level
    assert never_seen.censored == ["below"]


def test_quest_asks_near_the_threshold_and_narrows_with_answers() -> None:
    rng = np.random.default_rng(5)
    mu = 0.5
    k, n = np.zeros(5), np.zeros(5)
    widths = []
    for _ in range(300):
        post = pm.posterior(LADDER, k, n)
        level = post.nearest(LADDER)
        n[level] += 1
        k[level] += rng.random() < _p(LADDER[level : level + 1], mu, pm.DEFAULT_SPREAD)[0]
        widths.append(post.half_width())
    assert widths[-1] < widths[0] / 3
    final = pm.posterior(LADDER, k, n)
    assert final.mean == pytest.approx(mu + float(pm.criterion_offset(pm.DEFAULT_SPREAD)), abs=0.3)
    # the questions went to the levels around the threshold (0.5 + 0.03 log2 bpp ≈ 1.4 bpp)
    assert n[[2, 3]].sum() > 0.6 * n.sum()


def test_bad_counts_are_refused() -> None:
    with pytest.raises(pm.PsychometricInputError, match="correct ≤ answers"):
        pm.fit(LADDER[None], np.full((1, 5), 3.0), np.full((1, 5), 2.0))
    with pytest.raises(pm.PsychometricInputError, match="same shape"):
        pm.fit(LADDER[None], np.ones((1, 4)), np.ones((1, 5)))
