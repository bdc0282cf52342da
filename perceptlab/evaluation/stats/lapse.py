"""Per-rater lapse model for pairwise (2AFC) judgments: Bradley–Terry on the Elo scale in which
each rater answers at random with a probability of their own (the rater model of Google's
``elo_rater_model``, google-research/google-research ``elo_rater_model/elo.cc``).

**Model.** The items i of a group have log-strengths θ_i, Elo_i = 2000 + (400/ln 10)·θ_i, and
P_BT(i ≻ j) = 1/(1 + e^{−(θ_i − θ_j)}) = 1/(1 + 10^{(Elo_j − Elo_i)/400}). Rater r answers at
random (50/50) with probability q_r and by the Bradley–Terry model otherwise:

    P(i ≻ j | r) = q_r/2 + (1 − q_r)·P_BT(i ≻ j).

A trial with outcome s (1 = a preferred, 0 = b preferred, ½ = undecided) adds
s·log P(a ≻ b | r) + (1 − s)·log P(b ≻ a | r) to the log-likelihood ℓ: an undecided answer
counts half to each side, as in :mod:`.pairwise`. A gold trial has a known right answer, which
the Bradley–Terry part gives with probability 1, so the rater answers it rightly with
probability 1 − q_r/2 and wrongly with probability q_r/2 (a wrong gold adds log(q_r/2), an
undecided one half of each); golds inform q_r only. q_r is one per rater, shared by all
groups; θ is per group (items of different groups were never compared).

**Posterior.** With η_r = logit q_r the fit maximises

    L(θ, η) = ℓ(θ, η) + Σ_r [a·log q_r + b·log(1 − q_r)] − ½·λ·Σ_i θ_i²,  Σ_{i ∈ g} θ_i = 0,

the log posterior density in (θ, η) of independent Beta(a, b) priors on the q_r (the Jacobian
dq/dη = q(1 − q) adds one to each exponent of the Beta density; the same point is the mode in q
under Beta(a + 1, b + 1)) and θ_i ~ N(0, 1/λ), with each group's mean fixed at Elo 2000.

* Beta(0.2, 2) by default (mean 0.09, median 0.013, P(q > ½) = 4 %): the density rises toward
  q = 0 because most raters rarely lapse, and it is weak at both ends, like
  ``elo_rater_model``'s rater prior ∝ 1/(1 + 100q²): moving a rater from the mode in η,
  q = a/(a + b) = 1/11 (where a rater without data sits), to q = 0.9 costs 4.0 nats. a > 0 keeps
  a rater who never errs at a finite η (the likelihood is flat as q → 0), so the Laplace
  interval exists. The choice matters because q and the spread of the scale trade off (errors
  on close pairs are explained by lapses or by closer items alike): on simulated data (25
  raters at q = 0.02 and 5 at q = 0.9, 150 trials each, 8 items over 800 Elo) Beta(1, 5) pulled
  the good raters' q̂ to 0.09 on average and stretched the scale by 18 %, Beta(0.2, 2) to 0.05
  and 11 % (5 % with 400 trials each); plain Bradley–Terry shrank it by 31 %.
* λ = 0.01 by default (:data:`.pairwise.DEFAULT_RIDGE`: θ has a prior SD of 10, 1737 Elo). The
  lapse likelihood stays bounded as items separate (an answer against an infinite gap still has
  probability q_r/2), so without it the mode can lie at infinity even when every item lost
  somewhere; ``ridge=0`` is allowed, needs a strongly connected "beat" graph and raises if
  Newton's method does not converge.

With ``fixed_q`` every q_r is held at that value and only θ is fitted; ``fixed_q=0`` is
Bradley–Terry exactly (:func:`.pairwise.bradley_terry` with ``prior="ridge"``, or with
``prior="none"`` when ``ridge=0``).

**Fit.** Newton's method on (θ, η) jointly with the exact gradient and Hessian: each step solves
(J + S)δ = ∇L, J = −∇²L with its eigenvalues replaced by their absolute values (L is not concave
everywhere), S = 11ᵀ/n_g on each group's θ block (∇L sums to zero there, so Σθ stays 0), and
halves a step that lowers L. ``elo_rater_model`` alternates Newton on Elo with diagonal Newton
on the reliabilities averaged over 100 Laplace samples of Elo, uses a ridge α/n on Elo plus a
sum regulariser, and reports 99 % intervals; this is a deterministic joint mode.

**Intervals** are Laplace (Gaussian at the mode, covariance (J + S)⁻¹ projected on Σθ = 0 per
group; Tierney & Kadane 1986): Elo ± z·SE, and for q the interval expit(η̂ ± z·SE(η̂)) of the
logit (which stays inside (0, 1)), z = Φ⁻¹((1 + confidence)/2).

**Weights.** Instead of excluding raters, :func:`weighted_bradley_terry` fits Bradley–Terry with
every trial of rater r counted w_r times; ``LapseResult.weights()`` gives w_r = 1 − q̂_r.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit, log_expit, ndtri

from .common import ModelId, StatsInputError, require_columns
from .pairwise import ELO_CENTRE, ELO_PER_THETA, TrialGroup, check_identifiable, trial_groups

LAPSE_MODEL = ModelId("elo-lapse-map", "1.0")
WEIGHTED_BT_MODEL = ModelId("weighted-bradley-terry-map", "1.0")
DEFAULT_Q_PRIOR = (0.2, 2.0)
"""(a, b) of the Beta prior on each rater's lapse probability q_r (module docstring)."""
DEFAULT_RIDGE = 0.01
"""λ of the Gaussian prior ½·λ·Σθ² on the log-strengths (the ridge of :mod:`.pairwise`)."""
NEWTON_MAX_ITER = 200
NEWTON_TOL = 1e-10
GOLD_COLUMNS = ("rater", "correct")

Array = NDArray[np.float64]
Index = NDArray[np.intp]


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LapseResult:
    """The mode of the lapse model and its Laplace intervals.

    ``scores``: ``group, condition, n, wins, losses, theta, se, elo, elo_se, elo_low,
    elo_high`` (θ centred to 0 per group, ``se`` its Laplace SE, Elo = 2000 + (400/ln 10)·θ,
    wins/losses counting undecided trials ½). ``raters``: ``rater, n, n_gold, gold_wrong, q,
    q_low, q_high, weight`` (trials, gold trials, wrong golds with undecided ones ½, the lapse
    probability with its Laplace interval, and 1 − q). ``covariance``: the sum-zero Laplace
    covariance of θ per group; ``log_posterior``: L at the mode (without the gold terms when
    ``fixed_q`` is set, where they are constant).
    """

    scores: pd.DataFrame
    raters: pd.DataFrame
    covariance: dict[object, pd.DataFrame]
    log_posterior: float
    q_prior: tuple[float, float]
    ridge: float
    fixed_q: float | None
    confidence: float
    model: ModelId = LAPSE_MODEL

    def weights(self) -> pd.Series:
        """w_r = 1 − q̂_r by rater, for :func:`weighted_bradley_terry`."""
        return pd.Series(
            self.raters["weight"].to_numpy(), index=self.raters["rater"], name="weight"
        )


@dataclass(frozen=True)
class WeightedBTResult:
    """Bradley–Terry with per-rater trial weights: ``scores`` as in :class:`LapseResult` (its
    SEs treat a trial of weight w as w trials), ``weights`` by rater."""

    scores: pd.DataFrame
    covariance: dict[object, pd.DataFrame]
    weights: pd.Series
    ridge: float
    confidence: float
    model: ModelId = WEIGHTED_BT_MODEL


# -- public functions ----------------------------------------------------------------------


def lapse_fit(
    trials: pd.DataFrame,
    *,
    golds: pd.DataFrame | None = None,
    q_prior: tuple[float, float] = DEFAULT_Q_PRIOR,
    ridge: float = DEFAULT_RIDGE,
    fixed_q: float | None = None,
    confidence: float = 0.95,
) -> LapseResult:
    """Fit Elo scores and per-rater lapse probabilities q_r (model in the module docstring).

    ``trials``: a pairwise trials frame (``rater, a, b, outcome``, optional ``group``; see
    :mod:`.pairwise_io`). ``golds``: one row per gold trial, ``rater`` and ``correct`` (1.0
    right, 0.0 wrong, 0.5 undecided); a rater may appear in golds only. ``q_prior``: (a, b) of
    the Beta prior on q_r, both > 0. ``ridge``: λ ≥ 0. ``fixed_q``: hold every q_r at this value
    in [0, 1) instead of fitting it (0: plain Bradley–Terry).
    """
    a, b = _checked_options(q_prior, ridge, fixed_q, confidence)
    groups, trial_raters = trial_groups(trials)
    gold = _gold_frame(golds)
    raters = sorted(set(trial_raters) | set(gold["rater"]), key=str)
    remap = pd.Index(raters).get_indexer(pd.Index(trial_raters)).astype(np.intp)
    ones = np.ones(len(raters))
    problem = _problem(groups, remap, ones, len(raters), ridge, fixed_q, (a, b))
    right, wrong = _gold_counts(gold, raters)
    if fixed_q is None:
        problem = replace(problem, gold_right=right, gold_wrong=wrong)
    x, covariance = _fit(problem)
    z = float(ndtri(0.5 + confidence / 2.0))
    scores, cov = _score_frames(groups, x, covariance, z)
    n = problem.n_items
    raters_frame = pd.DataFrame({"rater": raters, "n": _trial_counts(groups, remap, len(raters))})
    raters_frame["n_gold"], raters_frame["gold_wrong"] = right + wrong, wrong
    if fixed_q is None:
        eta, se = x[n:], np.sqrt(np.clip(np.diag(covariance)[n:], 0.0, None))
        q, low, high = expit(eta), expit(eta - z * se), expit(eta + z * se)
    else:
        q = low = high = np.full(len(raters), fixed_q)
    raters_frame["q"], raters_frame["q_low"], raters_frame["q_high"] = q, low, high
    raters_frame["weight"] = 1.0 - q
    return LapseResult(
        scores=scores,
        raters=raters_frame,
        covariance=cov,
        log_posterior=_value(problem, x),
        q_prior=(a, b),
        ridge=ridge,
        fixed_q=fixed_q,
        confidence=confidence,
    )


def weighted_bradley_terry(
    trials: pd.DataFrame,
    *,
    weights: Mapping[object, float] | pd.Series,
    ridge: float = DEFAULT_RIDGE,
    confidence: float = 0.95,
) -> WeightedBTResult:
    """Bradley–Terry mode of Σ_r w_r·ℓ_r(θ) − ½·λ·Σθ² (ℓ_r: rater r's log-likelihood), Σθ = 0
    per group: rater r's trials count w_r times each. ``weights`` maps every rater of
    ``trials`` to a finite w_r ≥ 0, e.g. ``lapse_fit(trials).weights()`` (w_r = 1 − q̂_r)."""
    _checked_options(DEFAULT_Q_PRIOR, ridge, 0.0, confidence)
    groups, raters = trial_groups(trials)
    weight = pd.Series(dict(weights) if not isinstance(weights, pd.Series) else weights)
    missing = [r for r in raters if r not in weight.index]
    if missing:
        listed = ", ".join(map(str, missing[:5]))
        raise StatsInputError(f"weights: no weight for rater(s) {listed} of the trials")
    w = weight.reindex(raters).to_numpy(dtype=np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        shown = ", ".join(
            f"{r}: {v}" for r, v in zip(np.asarray(raters)[bad][:5], w[bad][:5], strict=True)
        )
        raise StatsInputError(f"weights must be finite and >= 0; got {shown}")
    identity = np.arange(len(raters), dtype=np.intp)
    problem = _problem(groups, identity, w, len(raters), ridge, 0.0, DEFAULT_Q_PRIOR)
    x, covariance = _fit(problem)
    z = float(ndtri(0.5 + confidence / 2.0))
    scores, cov = _score_frames(groups, x, covariance, z)
    return WeightedBTResult(
        scores, cov, pd.Series(w, index=raters, name="weight"), ridge, confidence
    )


def _checked_options(
    q_prior: tuple[float, float], ridge: float, fixed_q: float | None, confidence: float
) -> tuple[float, float]:
    a, b = (float(v) for v in q_prior)
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise StatsInputError(f"q_prior must be (a, b) with finite a, b > 0, got {q_prior!r}")
    if not (math.isfinite(ridge) and ridge >= 0):
        raise StatsInputError(f"ridge must be finite and >= 0, got {ridge!r}")
    if fixed_q is not None and not 0.0 <= fixed_q < 1.0:
        raise StatsInputError(f"fixed_q must lie in [0, 1) or be None, got {fixed_q!r}")
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must be between 0 and 1, got {confidence!r}")
    return a, b


def _gold_frame(golds: pd.DataFrame | None) -> pd.DataFrame:
    if golds is None:
        return pd.DataFrame({"rater": [], "correct": []})
    require_columns(golds, GOLD_COLUMNS, what="gold trials")
    frame = golds.reset_index(drop=True)
    correct = pd.to_numeric(frame["correct"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isin(correct, (0.0, 0.5, 1.0)) | frame["rater"].isna().to_numpy())
    if bad.size:
        rows = ", ".join(str(int(i)) for i in bad[:5])
        raise StatsInputError(
            f"gold trials: row(s) {rows} need a rater and correct = 1.0 (right), 0.0 (wrong) or "
            f"0.5 (undecided); they have {frame['correct'].iloc[bad[:5]].tolist()}"
        )
    return pd.DataFrame({"rater": frame["rater"], "correct": correct})


def _gold_counts(gold: pd.DataFrame, raters: list[object]) -> tuple[Array, Array]:
    """Right and wrong golds per rater, an undecided gold counting ½ to each."""
    index = pd.Index(raters).get_indexer(pd.Index(gold["rater"]))
    correct = gold["correct"].to_numpy(dtype=np.float64)
    return _sums(index, correct, len(raters)), _sums(index, 1.0 - correct, len(raters))


# -- the objective -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Observations aggregated per (rater, compared pair i < j), with global item indices
    (group blocks one after the other) and what the posterior adds to them."""

    first: Index
    second: Index
    rater: Index
    forward: Array  # weighted wins of `first` over `second`, undecided ½
    backward: Array
    sizes: tuple[int, ...]  # items per group
    labels: tuple[object, ...]
    items: tuple[list[object], ...]
    n_raters: int
    ridge: float
    fixed_q: float | None
    q_prior: tuple[float, float]
    gold_right: Array
    gold_wrong: Array

    @property
    def n_items(self) -> int:
        return sum(self.sizes)

    @property
    def n_params(self) -> int:
        return self.n_items + (self.n_raters if self.fixed_q is None else 0)


def _problem(
    groups: list[TrialGroup],
    remap: Index,
    weight: Array,
    n_raters: int,
    ridge: float,
    fixed_q: float | None,
    q_prior: tuple[float, float],
) -> _Problem:
    parts, offset = [], 0
    for group in groups:
        ia, ib = group.ia + offset, group.ib + offset
        first, second = np.minimum(ia, ib), np.maximum(ia, ib)
        first_won = np.where(ia == first, group.score, 1.0 - group.score)
        rater = remap[group.rater]
        w = weight[rater]
        parts.append((first, second, rater, w * first_won, w * (1.0 - first_won)))
        offset += len(group.items)
    first, second, rater, fwd, bwd = (np.concatenate(p) for p in zip(*parts, strict=True))
    n = offset
    key = (rater * n + first) * n + second
    unique, inverse = np.unique(key, return_inverse=True)
    zeros = np.zeros(n_raters)
    return _Problem(
        first=((unique // n) % n).astype(np.intp),
        second=(unique % n).astype(np.intp),
        rater=(unique // (n * n)).astype(np.intp),
        forward=_sums(inverse, fwd, unique.size),
        backward=_sums(inverse, bwd, unique.size),
        sizes=tuple(len(g.items) for g in groups),
        labels=tuple(g.label for g in groups),
        items=tuple(g.items for g in groups),
        n_raters=n_raters,
        ridge=ridge,
        fixed_q=fixed_q,
        q_prior=q_prior,
        gold_right=zeros,
        gold_wrong=zeros,
    )


def _lapse(problem: _Problem, x: Array) -> tuple[Array, Array, Array]:
    """q, log q and log(1 − q) per rater."""
    if problem.fixed_q is None:
        eta = x[problem.n_items :]
        return expit(eta), log_expit(eta), log_expit(-eta)
    q = np.full(problem.n_raters, problem.fixed_q)
    with np.errstate(divide="ignore"):
        return q, np.log(q), np.log1p(-q)


def _value(problem: _Problem, x: Array) -> float:
    """L at x (module docstring); the gold terms only when q is fitted."""
    theta = x[: problem.n_items]
    d = theta[problem.first] - theta[problem.second]
    q, log_q, log_1q = _lapse(problem, x)
    half = log_q[problem.rater] - math.log(2.0)
    keep = log_1q[problem.rater]
    log_p = np.logaddexp(half, keep + log_expit(d))
    log_not_p = np.logaddexp(half, keep + log_expit(-d))
    value = float(np.sum(problem.forward * log_p) + np.sum(problem.backward * log_not_p))
    value -= 0.5 * problem.ridge * float(theta @ theta)
    if problem.fixed_q is None:
        a, b = problem.q_prior
        value += float(np.sum(a * log_q + b * log_1q))
        value += float(problem.gold_right @ np.log1p(-q / 2.0))
        value += float(problem.gold_wrong @ (log_q - math.log(2.0)))
    return value


def _derivatives(problem: _Problem, x: Array) -> tuple[Array, Array]:
    """∇L and J = −∇²L at x.

    Per observation, with d = θ_i − θ_j, p = P_BT, P = q/2 + (1 − q)p and ℓ = w·log P +
    v·log(1 − P): g = ∂ℓ/∂P = w/P − v/(1 − P), h = ∂²ℓ/∂P² = −w/P² − v/(1 − P)², and the chain
    rule through P_d = (1 − q)p(1 − p), P_η = (½ − p)q(1 − q) and their second derivatives.
    """
    n, m = problem.n_items, problem.n_params
    theta = x[:n]
    i, j, r = problem.first, problem.second, problem.rater
    p = expit(theta[i] - theta[j])
    q = _lapse(problem, x)[0][r]
    big_p = 0.5 * q + (1.0 - q) * p
    big_not_p = 0.5 * q + (1.0 - q) * (1.0 - p)
    g = problem.forward / big_p - problem.backward / big_not_p
    h = -problem.forward / big_p**2 - problem.backward / big_not_p**2
    pp = p * (1.0 - p)
    p_d = (1.0 - q) * pp
    l_d = g * p_d
    l_dd = h * p_d**2 + g * p_d * (1.0 - 2.0 * p)
    gradient = _sums(i, l_d, m) - _sums(j, l_d, m)
    hessian = _laplacian(i, j, l_dd, m)
    if problem.fixed_q is None:
        u = q * (1.0 - q)
        p_e = (0.5 - p) * u
        l_e = g * p_e
        l_ee = h * p_e**2 + g * p_e * (1.0 - 2.0 * q)
        l_de = h * p_d * p_e - g * u * pp
        k = n + r
        gradient += _sums(k, l_e, m)
        hessian += _cross(i, k, l_de, m) - _cross(j, k, l_de, m)
        hessian += np.diag(_sums(k, l_ee, m))
        _add_rater_terms(problem, x, gradient, hessian)
    gradient[:n] -= problem.ridge * theta
    hessian[np.arange(n), np.arange(n)] -= problem.ridge
    return gradient, -hessian


def _sums(index: Index, weight: Array, size: int) -> Array:
    """Σ of ``weight`` at each position of ``index``, as floats (np.bincount)."""
    return np.asarray(np.bincount(index, weight, minlength=size), dtype=np.float64)


def _laplacian(i: Index, j: Index, weight: Array, m: int) -> Array:
    """Σ_o weight_o·(e_i − e_j)(e_i − e_j)ᵀ as an m × m matrix."""
    flat = (
        _sums(i * m + i, weight, m * m)
        + _sums(j * m + j, weight, m * m)
        - _sums(i * m + j, weight, m * m)
        - _sums(j * m + i, weight, m * m)
    )
    return flat.reshape(m, m)


def _cross(i: Index, k: Index, weight: Array, m: int) -> Array:
    """Σ_o weight_o·(e_i e_kᵀ + e_k e_iᵀ) as an m × m matrix."""
    flat = _sums(i * m + k, weight, m * m)
    flat += _sums(k * m + i, weight, m * m)
    return flat.reshape(m, m)


def _add_rater_terms(problem: _Problem, x: Array, gradient: Array, hessian: Array) -> None:
    """The Beta prior a·log q + b·log(1 − q) and the golds c·log(1 − q/2) + f·log(q/2), in η."""
    n = problem.n_items
    q = expit(x[n:])
    u = q * (1.0 - q)
    a, b = problem.q_prior
    c, f = problem.gold_right, problem.gold_wrong
    gradient[n:] += a * (1.0 - q) - b * q - c * u / (2.0 - q) + f * (1.0 - q)
    curvature = -(a + b) * u - c * u * (2.0 - 4.0 * q + q * q) / (2.0 - q) ** 2 - f * u
    index = np.arange(n, problem.n_params)
    hessian[index, index] += curvature


# -- Newton's method and the Laplace covariance ----------------------------------------------


def _shift(problem: _Problem) -> Array:
    """S: 11ᵀ/n_g on each group's θ block, 0 elsewhere."""
    shift = np.zeros((problem.n_params, problem.n_params))
    start = 0
    for size in problem.sizes:
        shift[start : start + size, start : start + size] = 1.0 / size
        start += size
    return shift


def _centred(problem: _Problem, x: Array) -> Array:
    out = x.copy()
    start = 0
    for size in problem.sizes:
        out[start : start + size] -= out[start : start + size].mean()
        start += size
    return out


def _fit(problem: _Problem) -> tuple[Array, Array]:
    """The mode of L and the Laplace covariance there (module docstring)."""
    n = problem.n_items
    if problem.ridge == 0.0:
        _check_scalable(problem)
    x = np.zeros(problem.n_params)
    if problem.fixed_q is None:
        a, b = problem.q_prior
        x[n:] = math.log(a / b)  # the prior mode, q = a/(a + b)
    shift = _shift(problem)
    for _ in range(NEWTON_MAX_ITER):
        gradient, information = _derivatives(problem, x)
        values, vectors = np.linalg.eigh(information + shift)
        size = np.maximum(np.abs(values), 1e-10 * max(1.0, float(np.abs(values).max())))
        step = vectors @ ((vectors.T @ gradient) / size)
        x, moved = _halving(problem, x, step)
        if moved < NEWTON_TOL:
            break
    else:
        raise StatsInputError(
            f"the lapse model did not converge in {NEWTON_MAX_ITER} Newton steps "
            f"(ridge={problem.ridge:g}); fit with a ridge > 0 (default {DEFAULT_RIDGE:g})"
        )
    information = _derivatives(problem, x)[1] + shift
    centre = np.eye(problem.n_params) - shift
    return x, centre @ np.linalg.inv(information) @ centre.T


def _halving(problem: _Problem, x: Array, step: Array) -> tuple[Array, float]:
    current = _value(problem, x)
    slack = 1e-12 * (1.0 + abs(current))
    scale = 1.0
    for _ in range(60):
        candidate = _centred(problem, x + scale * step)
        if _value(problem, candidate) >= current - slack:
            return candidate, float(np.max(np.abs(scale * step)))
        scale /= 2.0
    return x, 0.0


def _check_scalable(problem: _Problem) -> None:
    """Without a ridge each group needs the strongly connected "beat" graph of the MLE."""
    start = 0
    for size, label, items in zip(problem.sizes, problem.labels, problem.items, strict=True):
        inside = (problem.first >= start) & (problem.first < start + size)
        wins = np.zeros((size, size))
        i, j = problem.first[inside] - start, problem.second[inside] - start
        np.add.at(wins, (i, j), problem.forward[inside])
        np.add.at(wins, (j, i), problem.backward[inside])
        check_identifiable(wins, items, label)
        start += size


# -- result frames -------------------------------------------------------------------------


def _score_frames(
    groups: list[TrialGroup], x: Array, covariance: Array, z: float
) -> tuple[pd.DataFrame, dict[object, pd.DataFrame]]:
    frames, blocks, start = [], {}, 0
    for group in groups:
        block = slice(start, start + len(group.items))
        wins = group.wins()
        theta, cov = x[block], covariance[block, block]
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        elo, elo_se = ELO_CENTRE + ELO_PER_THETA * theta, ELO_PER_THETA * se
        frame = pd.DataFrame(
            {"group": group.label, "condition": group.items, "n": group.n_trials()}
        )
        frame["wins"], frame["losses"] = wins.sum(axis=1), wins.sum(axis=0)
        frame["theta"], frame["se"], frame["elo"], frame["elo_se"] = theta, se, elo, elo_se
        frame["elo_low"], frame["elo_high"] = elo - z * elo_se, elo + z * elo_se
        frames.append(frame)
        blocks[group.label] = pd.DataFrame(cov, index=group.items, columns=group.items)
        start += len(group.items)
    return pd.concat(frames, ignore_index=True), blocks


def _trial_counts(groups: list[TrialGroup], remap: Index, n_raters: int) -> NDArray[np.int64]:
    counts = [np.bincount(remap[g.rater], minlength=n_raters) for g in groups]
    return np.sum(counts, axis=0).astype(np.int64)
