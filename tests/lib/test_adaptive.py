"""lib.adaptive: the Thurstone posterior, BALD's information gain, the choice of the next pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr
from scipy.stats import norm

from perceptlab.evaluation.stats import triplets
from perceptlab.lib import adaptive


def _simulated(scale: dict[str, float], per_pair: int, seed: int) -> pd.DataFrame:
    """Thurstone observers (σ = 1.4826) answering every pair ``per_pair`` times."""
    rng = np.random.default_rng(seed)
    names = list(scale)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = ndtr((scale[a] - scale[b]) / adaptive.SIGMA)
            for won in rng.random(per_pair) < p:
                rows.append((a, b, 1.0 if won else 0.0))
    return pd.DataFrame(rows, columns=["a", "b", "outcome"])


TRUE = {"source": 0.0, "L1": 0.4, "L2": 1.1, "L3": 2.0, "L4": 3.2}


def test_the_posterior_mean_is_the_triplet_scales_maximum_likelihood_under_a_flat_prior() -> None:
    comparisons = _simulated(TRUE, per_pair=400, seed=1)
    posterior = adaptive.fit_posterior(comparisons, list(TRUE), anchor="source", prior_sd=1e4)
    # the same responses as PTC triplets (a differs more than b), scaled by stats.triplets
    frame = pd.DataFrame(
        {
            "rater": "r",
            "source": "img",
            "method": "PTC",
            "codec_left": ["source" if a == "source" else "c" for a in comparisons["a"]],
            "level_left": [0 if a == "source" else int(a[1:]) for a in comparisons["a"]],
            "codec_right": ["source" if b == "source" else "c" for b in comparisons["b"]],
            "level_right": [0 if b == "source" else int(b[1:]) for b in comparisons["b"]],
            "response": np.where(comparisons["outcome"] == 1.0, "left", "right"),
            "role": "scale",
            "batch": "r",
            "question": comparisons["a"] + ":" + comparisons["b"],
        }
    )
    reference = triplets.scale_triplets(frame, bootstrap="none").scale.set_index("level")["jnd"]
    ours = pd.Series(posterior.mean[1:], index=[1, 2, 3, 4])
    assert np.allclose(ours.to_numpy(), reference.reindex(ours.index).to_numpy(), atol=1e-4)
    assert posterior.mean[0] == 0.0 and posterior.cov[0, 0] == 0.0
    assert np.abs(ours.to_numpy() - np.array(list(TRUE.values())[1:])).max() < 0.25


def test_the_laplace_covariance_is_the_inverse_hessian_and_shrinks_with_data() -> None:
    few = adaptive.fit_posterior(_simulated(TRUE, 10, 2), list(TRUE), anchor="source")
    many = adaptive.fit_posterior(_simulated(TRUE, 160, 2), list(TRUE), anchor="source")
    ratio = few.sd()[1:] / many.sd()[1:]
    assert np.all((ratio > 3.0) & (ratio < 5.5))  # √16 = 4: standard errors ∝ 1/√n
    # the curvature at the optimum, by finite differences of the log posterior's gradient
    comparisons = _simulated(TRUE, 30, 3)
    post = adaptive.fit_posterior(comparisons, list(TRUE), anchor="source")

    def log_posterior(s: np.ndarray) -> float:
        full = np.concatenate([[0.0], s])
        index = {k: i for i, k in enumerate(TRUE)}
        a = comparisons["a"].map(index).to_numpy()
        b = comparisons["b"].map(index).to_numpy()
        z = (full[a] - full[b]) / adaptive.SIGMA
        y = comparisons["outcome"].to_numpy()
        from scipy.special import log_ndtr

        prior = -0.5 * np.sum(s**2) / adaptive.DEFAULT_PRIOR_SD**2
        return float(np.sum(y * log_ndtr(z) + (1 - y) * log_ndtr(-z)) + prior)

    s0, h = post.mean[1:], 1e-4
    hessian = np.empty((4, 4))
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * h, np.eye(4)[j] * h
            hessian[i, j] = -(
                log_posterior(s0 + e_i + e_j)
                - log_posterior(s0 + e_i - e_j)
                - log_posterior(s0 - e_i + e_j)
                + log_posterior(s0 - e_i - e_j)
            ) / (4 * h * h)
    assert np.allclose(np.linalg.inv(hessian), post.cov[1:, 1:], rtol=1e-3)


def test_the_closed_form_information_gain_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    for mu, var in ((0.0, 0.5), (1.0, 2.0), (2.5, 0.2), (0.3, 4.0)):
        cov = np.diag([var * adaptive.SIGMA**2, 0.0])
        posterior = adaptive.Posterior(("a", "b"), np.array([mu * adaptive.SIGMA, 0.0]), cov)
        closed = adaptive.information_gain(posterior, np.array([[0, 1]]))[0]
        f = rng.normal(mu, np.sqrt(var), 400_000)
        p = ndtr(f)

        def h(q: np.ndarray) -> np.ndarray:
            q = np.clip(q, 1e-15, 1 - 1e-15)
            return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))

        exact = float(h(np.array([p.mean()]))[0] - h(p).mean())
        # Houlsby et al.'s approximation of E[h(Φ(f))] is within a few % (their Fig. 1)
        assert closed == pytest.approx(exact, rel=0.06, abs=2e-3), (mu, var)


def test_the_choice_explores_the_least_compared_or_exploits_the_gain() -> None:
    posterior = adaptive.fit_posterior(_simulated(TRUE, 20, 4), list(TRUE), anchor="source")
    candidates = np.array([[1, 2], [1, 4], [0, 3], [2, 3]], dtype=np.intp)
    compared = np.array([5.0, 2.0, 9.0, 2.0])
    rng = np.random.default_rng(1)
    explored = {
        adaptive.choose(posterior, candidates, compared, rng, explore=1.0) for _ in range(50)
    }
    assert explored == {1, 3}
    gain = adaptive.information_gain(posterior, candidates)
    assert adaptive.choose(posterior, candidates, compared, rng, explore=0.0) == int(
        np.argmax(gain)
    )
    with pytest.raises(adaptive.AdaptiveInputError, match="no candidate"):
        adaptive.choose(posterior, candidates[:0], compared[:0], rng)


def test_next_comparison_is_a_pure_function_of_the_comparisons_and_the_seed() -> None:
    comparisons = _simulated(TRUE, 5, 5)
    candidates = [("L1", "L2"), ("L2", "L3"), ("source", "L4"), ("L3", "L4")]
    first = adaptive.next_comparison(comparisons, candidates, anchor="source", seed=7)
    again = adaptive.next_comparison(comparisons, candidates, anchor="source", seed=7)
    assert first == again and first in candidates
    # with nothing known, every pair is as informative: the least-compared rule decides
    assert adaptive.next_comparison(comparisons.iloc[:0], candidates, seed=1) in candidates


def test_bad_comparisons_are_refused_by_name() -> None:
    bad = pd.DataFrame({"a": ["L1"], "b": ["L9"], "outcome": [1.0]})
    with pytest.raises(adaptive.AdaptiveInputError, match="L9"):
        adaptive.fit_posterior(bad, list(TRUE))
    with pytest.raises(adaptive.AdaptiveInputError, match="outcome"):
        adaptive.fit_posterior(bad.assign(b="L2", outcome=2.0), list(TRUE))
    with pytest.raises(adaptive.AdaptiveInputError, match="itself"):
        adaptive.fit_posterior(bad.assign(b="L1"), list(TRUE))


def test_stopping_says_when_every_interval_is_narrow_enough_and_how_many_answers_are_left() -> None:
    comparisons = _simulated(TRUE, 20, 10)
    posterior = adaptive.fit_posterior(comparisons, list(TRUE), anchor="source")
    state = adaptive.stopping(posterior, target=0.2, answered=len(comparisons))
    assert list(state.widths.index) == ["L1", "L2", "L3", "L4"]  # the anchor has no width
    assert np.allclose(state.widths.to_numpy(), 1.959964 * posterior.sd()[1:], rtol=1e-6)
    assert not state.done
    widest = float(state.widths.max())
    expected = len(comparisons) * ((widest / 0.2) ** 2 - 1)
    assert state.projected_left == pytest.approx(expected, abs=1)
    # four times the answers halve the widths, as projected
    more = adaptive.fit_posterior(_simulated(TRUE, 80, 10), list(TRUE), anchor="source")
    assert float(adaptive.stopping(more, target=0.2, answered=800).widths.max()) == pytest.approx(
        widest / 2, rel=0.15
    )
    loose = adaptive.stopping(posterior, target=widest, answered=len(comparisons))
    assert loose.done and loose.projected_left == 0
    with pytest.raises(adaptive.AdaptiveInputError, match="target"):
        adaptive.stopping(posterior, target=0.0, answered=1)


def test_the_optimal_allocation_is_the_brute_force_minimum_on_three_items() -> None:
    """Three items, the first anchored at 0, all three pairs: the multiplicative algorithm's
    trace of the inverse Fisher information is the minimum over a fine grid of the simplex."""
    scale = np.array([0.0, 0.8, 2.5])
    pairs = np.array([[0, 1], [0, 2], [1, 2]], dtype=np.intp)
    found = adaptive.optimal_allocation(scale, pairs, anchor=0)
    d = (scale[pairs[:, 0]] - scale[pairs[:, 1]]) / adaptive.SIGMA
    info = norm.pdf(d) ** 2 / (norm.cdf(d) * norm.sf(d)) / adaptive.SIGMA**2
    design = np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, -1.0]])  # columns: items 1 and 2
    best = np.inf
    for w0 in np.arange(0.002, 1.0, 0.002):
        for w1 in np.arange(0.002, 1.0 - w0, 0.002):
            w = np.array([w0, w1, 1.0 - w0 - w1])
            m = (design * (w * info)[:, None]).T @ design
            best = min(best, float(np.trace(np.linalg.inv(m))))
    assert found.optimal * 2 == pytest.approx(best, rel=1e-3)  # per free item: 2 of them
    assert found.equivalence == pytest.approx(1.0, abs=1e-5)
    assert found.weights.sum() == pytest.approx(1.0) and found.share < 1.0


def test_uniform_sampling_is_optimal_where_every_pair_is_alike() -> None:
    """Items all at the same level, every pair a candidate, the scale centred: by symmetry
    the uniform design is optimal (share 1); a disconnected design is refused."""
    pairs = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.intp)
    found = adaptive.optimal_allocation(np.zeros(4), pairs)
    assert found.share == pytest.approx(1.0, abs=1e-9)
    assert found.weights == pytest.approx(np.full(6, 1 / 6))
    with pytest.raises(adaptive.AdaptiveInputError, match="connect"):
        adaptive.optimal_allocation(np.zeros(4), np.array([[0, 1], [2, 3]]), anchor=0)
    with pytest.raises(adaptive.AdaptiveInputError, match="two different items"):
        adaptive.optimal_allocation(np.zeros(3), np.array([[0, 0]]))
