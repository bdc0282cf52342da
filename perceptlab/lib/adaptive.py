"""Adaptive choice of the next pairwise or triplet comparison: expected information gain on a
Thurstone posterior, with a share of exploration.

Pure functions over a frame of comparisons (no Django), so anyone can replay them
(``bench/adaptive.py`` replays real responses through them).

**Model.** Thurstone Case V on paired comparisons: item i beats item j with probability
Φ((s_i − s_j)/σ), σ = 1/Φ⁻¹(0.75) = 1.4826, so one unit is one JND (triplets: i "differs more"
from the pivot than j) or one JOD (2AFC: i is preferred) — 75 % of answers (Perez-Ortiz and
Mantiuk, arXiv:1712.03686 §6.1; JPEG AIC-3, arXiv:2410.09501). A triplet with the pivot at 0 and
both sides at s ≥ 0 is this comparison of the two sides (|s_a − 0| − |s_b − 0| = s_a − s_b);
an ``anchor`` item (the source of a triplet design) is held at 0. "Not sure" / "cannot
decide" counts ½ to each side.

**Posterior.** Laplace's approximation at the maximum a posteriori scale under independent
N(0, τ²) priors (τ = ``prior_sd`` units, weak: it only keeps a never-beaten item finite):
Newton's method on the analytic gradient and Hessian of the probit log-likelihood (Cholesky
solves; the Hessian is positive definite), counts aggregated per ordered pair, so a step costs
the same whatever the number of responses; the covariance is the inverse Hessian at the
optimum (the Hessian of the last Newton step, at convergence).

**Information gain.** For a pair (i, j) the difference f = (s_i − s_j)/σ is N(μ, v) under the
posterior; the expected information of one answer about the scale is the BALD quantity
I = H[Φ(μ/√(1+v))] − E_f H[Φ(f)], which for the probit has the closed-form approximation of
Houlsby, Huszár, Ghahramani and Lengyel ("Bayesian active learning for classification and
preference learning", arXiv:1112.5745, eq. 3): I ≈ h(Φ(μ/√(1+v))) − C/√(v + C²)·e^{−μ²/(2(v+C²))},
C = √(π ln 2 / 2), h the binary entropy in bits.

**Stopping** (:func:`stopping`): an image or a study stops drawing comparisons once every
item's 95 % half-width is at most the researcher's target; until then the answers still
needed are projected by the 1/√n law from the widest interval.

**The best any design can do** (:func:`optimal_allocation`). With the true scale known, the
allocation of trials over the candidate pairs that minimises the scale's mean squared error
is the locally A-optimal design of the Fisher information (Kiefer's equivalence theorem
certifies it); an adaptive sampler, which learns the scale as it goes, approaches it at
best. The share of uniform random sampling's trials it needs for the same error is a bound
on what any planner can save (``bench/adaptive.py`` prints it for both replays).

**Exploration.** Pure information gain crowds onto close pairs, where Case V stops adding up
and where real raters' "not sure" answers pile up; replayed on JPEG AIC-3's SDR25 responses the
ASAP sampler (Mikhailiuk et al. 2020) erred 0.32 JND against 0.14 for random pairs at 990
trials (issue 16). So with probability ``explore`` the next comparison is drawn uniformly
among the least-compared candidates instead: every pair keeps being sampled and the design
stays connected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve
from scipy.special import ndtr, ndtri

from perceptlab.lib.thurstone import SIGMA, mills_ratio

BALD_C = math.sqrt(math.pi * math.log(2.0) / 2.0)
DEFAULT_PRIOR_SD = 3.0
DEFAULT_EXPLORE = 0.5
Array = NDArray[np.float64]
COMPARISON_COLUMNS = ("a", "b", "outcome")


class AdaptiveInputError(ValueError):
    """Comparisons, items or a target the planner cannot use; the message names the problem."""


@dataclass(frozen=True)
class Posterior:
    """The Laplace posterior of a scale: ``mean`` and ``cov`` over ``items`` (the anchor, when
    there is one, is an item with mean 0 and no variance)."""

    items: tuple[str, ...]
    mean: Array
    cov: Array

    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.items)}

    def sd(self) -> Array:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))


def _counts(
    comparisons: pd.DataFrame, index: dict[str, int]
) -> tuple[NDArray[np.intp], NDArray[np.intp], Array, Array]:
    """Per ordered pair (i < j): i's wins k (not sure ½) and the responses n."""
    missing = [c for c in COMPARISON_COLUMNS if c not in comparisons.columns]
    if missing:
        raise AdaptiveInputError(
            f"comparisons are missing column(s) {', '.join(missing)}; "
            f"they have {', '.join(map(str, comparisons.columns)) or 'no columns'}"
        )
    a = comparisons["a"].astype(str).map(index)
    b = comparisons["b"].astype(str).map(index)
    if a.isna().any() or b.isna().any():
        unknown = sorted(set(comparisons.loc[a.isna(), "a"]) | set(comparisons.loc[b.isna(), "b"]))
        raise AdaptiveInputError(f"comparisons name item(s) not in the item list: {unknown[:5]}")
    outcome = comparisons["outcome"].to_numpy(dtype=np.float64)
    if np.any((outcome < 0) | (outcome > 1)) or np.isnan(outcome).any():
        raise AdaptiveInputError("outcome must lie in [0, 1] (1: a wins, ½: not sure, 0: b wins)")
    i, j = a.to_numpy(dtype=np.intp), b.to_numpy(dtype=np.intp)
    if np.any(i == j):
        raise AdaptiveInputError("a comparison of an item with itself carries no information")
    low, high = np.minimum(i, j), np.maximum(i, j)
    wins = np.where(i < j, outcome, 1.0 - outcome)  # for the lower index
    keys, inverse = np.unique(low * len(index) + high, return_inverse=True)
    k = np.bincount(inverse, weights=wins).astype(np.float64)
    n = np.bincount(inverse).astype(np.float64)
    return keys // len(index), keys % len(index), k, n


def fit_posterior(
    comparisons: pd.DataFrame,
    items: Sequence[str],
    *,
    anchor: str | None = None,
    prior_sd: float = DEFAULT_PRIOR_SD,
    start: Array | None = None,
    max_iterations: int = 50,
) -> Posterior:
    """The Laplace posterior of the Thurstone scale of ``items`` from ``comparisons`` (columns
    ``a, b, outcome``: 1 when a won, ½ not sure, 0 when b won). ``anchor`` is held at 0."""
    items = tuple(str(item) for item in items)
    index = {item: i for i, item in enumerate(items)}
    if len(index) != len(items):
        raise AdaptiveInputError("items must be distinct")
    low, high = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    k, n = np.zeros(0), np.zeros(0)
    if len(comparisons):
        low, high, k, n = _counts(comparisons, index)
    return fit_counts(
        items,
        low,
        high,
        k,
        n,
        anchor=anchor,
        prior_sd=prior_sd,
        start=start,
        max_iterations=max_iterations,
    )


def fit_counts(
    items: Sequence[str],
    low: NDArray[np.intp],
    high: NDArray[np.intp],
    k: Array,
    n: Array,
    *,
    anchor: str | None = None,
    prior_sd: float = DEFAULT_PRIOR_SD,
    start: Array | None = None,
    max_iterations: int = 50,
) -> Posterior:
    """:func:`fit_posterior` from counts: per pair of item indices (``low[q]``, ``high[q]``, in
    either order), ``k[q]`` answers for the first (not sure ½) out of ``n[q]``; a pair may
    occur more than once: what a study keeps per item (its tally: answers, a_wins)."""
    items = tuple(str(item) for item in items)
    if anchor is not None and anchor not in items:
        raise AdaptiveInputError(f"anchor {anchor!r} is not one of the items")
    if prior_sd <= 0:
        raise AdaptiveInputError(f"prior_sd must be positive, got {prior_sd}")
    low, high = np.asarray(low, dtype=np.intp), np.asarray(high, dtype=np.intp)
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    size = len(items)
    if np.any(low == high) or np.any((low < 0) | (high < 0) | (low >= size) | (high >= size)):
        raise AdaptiveInputError("a pair must name two different items of the list")
    if np.any(k < 0) or np.any(k > n):
        raise AdaptiveInputError("wins must lie between 0 and the number of answers")
    free = np.array([item != anchor for item in items])
    s = np.zeros(size) if start is None else np.where(free, start, 0.0)
    precision = 1.0 / prior_sd**2
    cells = np.concatenate([low * size + low, high * size + high, low * size + high])
    cells = np.concatenate([cells, high * size + low])
    kept = np.ix_(free, free)
    factor = None
    for _ in range(max_iterations):
        z = (s[low] - s[high]) / SIGMA
        up, down = mills_ratio(z), mills_ratio(-z)
        # d(−log L)/dz and d²(−log L)/dz² per pair (probit, k wins of n)
        grad_z = (-k * up + (n - k) * down) / SIGMA
        weight = (k * up * (z + up) + (n - k) * down * (down - z)) / SIGMA**2
        gradient = (
            precision * s
            + np.bincount(low, grad_z, minlength=size)
            - np.bincount(high, grad_z, minlength=size)
        )
        hessian = (
            np.bincount(
                cells, np.concatenate([weight, weight, -weight, -weight]), minlength=size * size
            )
            .reshape(size, size)
            .astype(np.float64)
        )  # float even with no comparisons yet
        hessian[np.diag_indices(size)] += precision
        factor = cho_factor(hessian[kept])
        step = np.zeros(size)
        step[free] = cho_solve(factor, gradient[free])
        s = s - step
        if np.max(np.abs(step)) < 1e-9:
            break
    cov = np.zeros((size, size))
    if factor is not None:
        cov[kept] = cho_solve(factor, np.eye(int(free.sum())))
    return Posterior(items=items, mean=s, cov=cov)


def information_gain(posterior: Posterior, pairs: NDArray[np.intp]) -> Array:
    """BALD's expected information (bits) of one answer to each pair (rows of item indices),
    Houlsby et al.'s closed form for the probit (the module docstring)."""
    i, j = pairs[:, 0], pairs[:, 1]
    mu = (posterior.mean[i] - posterior.mean[j]) / SIGMA
    cov = posterior.cov
    v = np.clip(cov[i, i] + cov[j, j] - 2.0 * cov[i, j], 0.0, None) / SIGMA**2
    p = ndtr(mu / np.sqrt(1.0 + v))
    entropy = -(
        p * np.log2(np.clip(p, 1e-300, None)) + (1 - p) * np.log2(np.clip(1 - p, 1e-300, None))
    )
    expected = BALD_C / np.sqrt(v + BALD_C**2) * np.exp(-(mu**2) / (2.0 * (v + BALD_C**2)))
    return np.clip(entropy - expected, 0.0, None)


def choose(
    posterior: Posterior,
    candidates: NDArray[np.intp],
    compared: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    explore: float = DEFAULT_EXPLORE,
) -> int:
    """The row of ``candidates`` (pairs of item indices) to ask next: with probability
    ``explore`` a uniform pick among the least-compared (``compared``: responses each pair
    has), otherwise the highest information gain (ties: the less compared, then at random)."""
    if not len(candidates):
        raise AdaptiveInputError("no candidate comparison left")
    if rng.random() < explore:
        fewest = np.flatnonzero(compared == compared.min())
        return int(rng.choice(fewest))
    gain = information_gain(posterior, candidates)
    jitter = rng.random(len(candidates)) * 1e-12
    return int(np.lexsort((jitter, compared, -gain))[0])


def next_comparison(
    comparisons: pd.DataFrame,
    candidates: Sequence[tuple[str, str]],
    *,
    items: Sequence[str] | None = None,
    anchor: str | None = None,
    explore: float = DEFAULT_EXPLORE,
    seed: int | None = None,
) -> tuple[str, str]:
    """The comparison to ask next among ``candidates``, given the ``comparisons`` so far
    (columns ``a, b, outcome``); ``items`` default to every item named in the candidates."""
    names = list(items) if items is not None else sorted({x for pair in candidates for x in pair})
    posterior = fit_posterior(comparisons, names, anchor=anchor)
    index = posterior.index()
    pairs = np.array([[index[a], index[b]] for a, b in candidates], dtype=np.intp)
    asked = pd.Series(0.0, index=pd.MultiIndex.from_tuples([tuple(sorted(p)) for p in candidates]))
    if len(comparisons):
        seen = comparisons[["a", "b"]].astype(str).apply(lambda r: tuple(sorted(r)), axis=1)
        counts = seen.value_counts()
        asked = asked.add(counts.reindex(asked.index).fillna(0.0), fill_value=0.0)
    row = choose(posterior, pairs, asked.to_numpy(), np.random.default_rng(seed), explore=explore)
    return candidates[row]


@dataclass(frozen=True)
class Stopping:
    """Where a scale stands against the researcher's target: each item's 95 % half-width,
    whether every one is at or below ``target``, and the answers still needed by the usual
    1/√n law (each pair asked as often as so far)."""

    widths: pd.Series
    target: float
    answered: int

    @property
    def done(self) -> bool:
        return bool((self.widths <= self.target).all())

    @property
    def projected_left(self) -> int:
        """Answers still needed: n · ((widest / target)² − 1), 0 when done."""
        widest = float(self.widths.max()) if len(self.widths) else 0.0
        if widest <= self.target or self.answered == 0:
            return 0
        return math.ceil(self.answered * ((widest / self.target) ** 2 - 1.0))


def stopping(
    posterior: Posterior, *, target: float, answered: int, confidence: float = 0.95
) -> Stopping:
    """The stopping rule of an adaptive study: stop drawing comparisons when every item's
    ``confidence`` half-width (Laplace posterior, z·sd) is at most ``target`` (JND or JOD);
    an anchor item (no variance) is left out. A 2AFC scale without an anchor is judged on
    its centred values (the scale's offset is arbitrary)."""
    if target <= 0:
        raise AdaptiveInputError(f"target must be positive, got {target}")
    z = float(ndtri(0.5 + confidence / 2.0))
    cov = posterior.cov
    free = np.diag(cov) > 0
    if free.all():  # no anchor: centre
        size = len(posterior.items)
        centre = np.eye(size) - 1.0 / size
        cov = centre @ cov @ centre.T
    widths = pd.Series(z * np.sqrt(np.clip(np.diag(cov), 0.0, None)), index=list(posterior.items))[
        free
    ]
    return Stopping(widths=widths, target=target, answered=answered)


@dataclass(frozen=True)
class Allocation:
    """:func:`optimal_allocation`'s result: the weight of each pair, the mean squared error
    per trial of the optimal and of the uniform design (trace of the inverse Fisher
    information, per free item), and Kiefer's equivalence check (max derivative ÷ trace:
    1 at the optimum)."""

    weights: Array
    optimal: float
    uniform: float
    equivalence: float

    @property
    def share(self) -> float:
        """Trials the optimal design needs for uniform sampling's error, as a share."""
        return self.optimal / self.uniform


def optimal_allocation(
    scale: Array,
    pairs: NDArray[np.intp],
    *,
    anchor: int | None = None,
    iterations: int = 20_000,
    tolerance: float = 1e-6,
) -> Allocation:
    """The locally A-optimal allocation of trials over ``pairs`` (rows of item indices) at
    the scale ``scale``: minimise tr(M(w)⁻¹) over weights w on the simplex, M(w) = Σ w_q
    I_q a_q a_qᵀ with a_q = e_i − e_j and one answer's Fisher information
    I_q = φ(d)²/(Φ(d)(1 − Φ(d)))/σ², d = (s_i − s_j)/σ. ``anchor``: the item held at 0 (its
    row and column left out); none: the scale is centred (the pseudo-inverse, on the
    zero-sum subspace). Solved by the multiplicative algorithm w_q ← w_q (g_q / tr M⁻¹)^½,
    g_q = I_q a_qᵀ M⁻² a_q (Silvey, Titterington and Torsney 1978; monotone for A-optimality,
    Yu, Ann. Statist. 38:1593, 2010), until max g_q ≤ (1 + tolerance)·tr M⁻¹: at the
    optimum every pair's g_q ≤ tr M⁻¹ (Kiefer and Wolfowitz's equivalence theorem)."""
    scale = np.asarray(scale, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.intp)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not len(pairs):
        raise AdaptiveInputError("pairs must be rows of two item indices")
    if np.any(pairs[:, 0] == pairs[:, 1]) or pairs.min() < 0 or pairs.max() >= len(scale):
        raise AdaptiveInputError("a pair must name two different items of the scale")
    d = (scale[pairs[:, 0]] - scale[pairs[:, 1]]) / SIGMA
    p = ndtr(d)
    info = np.exp(-(d**2)) / (2.0 * np.pi) / np.clip(p * (1.0 - p), 1e-300, None) / SIGMA**2
    design = np.zeros((len(pairs), len(scale)))
    design[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    design[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    if anchor is not None:
        design = np.delete(design, anchor, axis=1)

    def inverse(w: Array) -> Array:
        m = (design * (w * info)[:, None]).T @ design
        if anchor is not None:
            return np.asarray(np.linalg.inv(m))
        return np.asarray(np.linalg.pinv(m, hermitian=True))

    free = design.shape[1] - (0 if anchor is not None else 1)
    if np.linalg.matrix_rank(design) < free:
        raise AdaptiveInputError("the pairs do not connect every item to the scale")
    uniform = np.full(len(pairs), 1.0 / len(pairs))
    uniform_trace = float(np.trace(inverse(uniform)))
    w = uniform.copy()
    for _ in range(iterations):
        m_inv = inverse(w)
        trace = float(np.trace(m_inv))
        g = info * np.einsum("qi,ij,qj->q", design, m_inv @ m_inv, design)
        if g.max() <= (1.0 + tolerance) * trace:
            break
        w = w * np.sqrt(g / trace)
        w /= w.sum()
    m_inv = inverse(w)
    trace = float(np.trace(m_inv))
    g = info * np.einsum("qi,ij,qj->q", design, m_inv @ m_inv, design)
    return Allocation(w, trace / free, uniform_trace / free, float(g.max() / trace))
