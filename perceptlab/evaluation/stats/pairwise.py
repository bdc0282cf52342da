"""Pairwise (2AFC) scaling: online Elo, Bradley–Terry, Thurstone Case V, rater bootstrap.

Input is a trials frame (see :mod:`.pairwise_io`): one row per trial with ``rater``, ``a``,
``b`` and ``outcome`` (1.0 = a preferred, 0.0 = b preferred, 0.5 = undecided, counted as half a
win each way), optionally ``group``. Every statistic is computed per group (items of different
groups were never compared); without a ``group`` column all trials form one group labelled
:data:`SINGLE_GROUP`. Items within a group are ordered by their string form.

With w_ij the wins of i over j (ties ½ each way) the two paired-comparison likelihoods are
ℓ(θ) = Σ_ij w_ij log F(θ_i − θ_j):

* Bradley–Terry (Bradley & Terry 1952): F = logistic, P(i ≻ j) = 1 / (1 + e^{−(θ_i − θ_j)});
  the Elo view is Elo_i = 2000 + (400 / ln 10)·θ_i (the MLE Elo of Google's
  ``elo_rater_model`` without its rater model).
* Thurstone Case V (Thurstone 1927; sureal ``THURSTONE_MLE``): F = Φ, P(i ≻ j) = Φ(v_i − v_j),
  unit variance of the difference; JOD = 1.4826·v (pwcmp's scale, 1 JOD = 75 % preference,
  Perez-Ortiz & Mantiuk 2017, without pwcmp's default Gaussian prior).

Both are fitted by Newton's method with the analytic gradient and information matrix (a graph
Laplacian) under Σθ = 0, with step halving. The maximum-likelihood estimate exists iff the
directed "i beat j" graph of the group is strongly connected (Ford 1957); otherwise
:class:`StatsInputError` names the items, unless a ridge (a Gaussian prior ½·λ·Σθ²) is asked
for. Wald standard errors are those of the sum-zero parametrisation, √diag(P Σ Pᵀ) with
P = I − 11ᵀ/n (equal to BradleyTerry2's ``se_centered``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit, log_ndtr
from scipy.stats import binomtest

from . import elo as elo_engine
from .bootstrap import percentile_interval, rater_resamples, resample_counts
from .common import ModelId, StatsInputError, require_columns

SINGLE_GROUP = "all"
"""Group label used when the trials frame has no ``group`` column."""
ELO_PER_THETA = 400.0 / math.log(10.0)
ELO_CENTRE = 2000.0
JOD_PER_V = 1.4826
"""pwcmp's P(i ≻ j) = Φ((q_i − q_j)/1.4826): 1 JOD = 75 % preference."""
NEWTON_MAX_ITER = 100
NEWTON_TOL = 1e-10
MAX_LISTED = 5

ONLINE_ELO_MODEL = ModelId("online-elo-clic", "1.0")
BT_MODEL = ModelId("bradley-terry-mle", "1.0")
THURSTONE_MODEL = ModelId("thurstone-case-v-mle", "1.0")
BOOTSTRAP_MODEL = ModelId("rater-bootstrap-percentile-bt-thurstone", "1.0")
SIGNIFICANCE_MODEL = ModelId("exact-binomial-pairwise", "1.0")

Link = Literal["logistic", "probit"]
Correction = Literal["holm", "bonferroni"]
Array = NDArray[np.float64]


# -- trials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialGroup:
    """The trials of one group as integer arrays (item and rater indices)."""

    label: object
    items: list[object]
    ia: NDArray[np.intp]
    ib: NDArray[np.intp]
    score: Array
    rater: NDArray[np.intp]
    """Index into the study-wide rater list returned with the groups."""

    def wins(self) -> Array:
        """w_ij = wins of item i over item j, an undecided trial counting ½ each way."""
        n = len(self.items)
        a_side = np.bincount(self.ia * n + self.ib, self.score, minlength=n * n)
        b_side = np.bincount(self.ib * n + self.ia, 1.0 - self.score, minlength=n * n)
        return np.asarray(a_side + b_side, dtype=np.float64).reshape(n, n)

    def rater_wins(self, n_raters: int) -> Array:
        """Per-rater win matrices, flattened: shape ``(n_raters, n_items²)``."""
        n = len(self.items)
        size = n_raters * n * n
        a_side = np.bincount((self.rater * n + self.ia) * n + self.ib, self.score, size)
        b_side = np.bincount((self.rater * n + self.ib) * n + self.ia, 1.0 - self.score, size)
        return np.asarray(a_side + b_side, dtype=np.float64).reshape(n_raters, n * n)

    def n_trials(self) -> NDArray[np.int64]:
        """Number of trials each item took part in."""
        n = len(self.items)
        return np.bincount(self.ia, minlength=n) + np.bincount(self.ib, minlength=n)


def trial_groups(trials: pd.DataFrame) -> tuple[list[TrialGroup], list[object]]:
    """Validate a trials frame and split it into groups (sorted by label) and the rater list."""
    frame = _checked(trials)
    raters = sorted(pd.unique(frame["rater"]), key=str)
    rater_index = pd.Index(raters)
    groups = []
    for label in sorted(pd.unique(frame["group"]), key=str):
        rows = frame.loc[frame["group"] == label]
        items = sorted(pd.unique(pd.concat([rows["a"], rows["b"]])), key=str)
        item_index = pd.Index(items)
        groups.append(
            TrialGroup(
                label=label,
                items=items,
                ia=item_index.get_indexer(rows["a"]).astype(np.intp),
                ib=item_index.get_indexer(rows["b"]).astype(np.intp),
                score=rows["outcome"].to_numpy(dtype=np.float64),
                rater=rater_index.get_indexer(rows["rater"]).astype(np.intp),
            )
        )
    return groups, raters


def _checked(trials: pd.DataFrame) -> pd.DataFrame:
    require_columns(trials, ("rater", "a", "b", "outcome"), what="pairwise trials")
    frame = trials.reset_index(drop=True)
    if "group" not in frame.columns:
        frame = frame.assign(group=SINGLE_GROUP)
    for column in ("rater", "a", "b", "group"):
        _no_missing(frame[column], column)
    outcome = pd.to_numeric(frame["outcome"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isin(outcome, (0.0, 0.5, 1.0)))
    if bad.size:
        shown = ", ".join(repr(v) for v in frame["outcome"].iloc[bad[:MAX_LISTED]])
        raise StatsInputError(
            f"pairwise trials: outcome must be 1.0 (a preferred), 0.0 (b preferred) or 0.5 "
            f"(undecided); row(s) {_rows(bad)} have {shown}"
        )
    same = np.flatnonzero((frame["a"] == frame["b"]).to_numpy())
    if same.size:
        raise StatsInputError(
            f"pairwise trials: row(s) {_rows(same)} compare an item with itself "
            f"({frame['a'].iloc[same[0]]!r})"
        )
    return frame.assign(outcome=outcome)


def _no_missing(values: pd.Series, column: str) -> None:
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise StatsInputError(f"pairwise trials: missing {column} in row(s) {_rows(missing)}")


def _rows(positions: NDArray[np.intp]) -> str:
    listed = ", ".join(str(int(p)) for p in positions[:MAX_LISTED])
    more = f" and {positions.size - MAX_LISTED} more" if positions.size > MAX_LISTED else ""
    return listed + more


# -- online Elo ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EloResult:
    """Online Elo per item: ``group, condition, n, elo_mean, elo_sd, elo_p2_5, elo_p97_5,
    elo_file_order`` (mean, SD (ddof 1) and 2.5/97.5 percentiles over the orderings)."""

    ratings: pd.DataFrame
    n_orderings: int
    k: float
    start: float
    scale: float
    seed: int
    model: ModelId = ONLINE_ELO_MODEL


def online_elo(
    trials: pd.DataFrame,
    *,
    n_orderings: int = 10_000,
    k: float = 30.0,
    start: float = 2000.0,
    scale: float = 400.0,
    seed: int = 0,
    workers: int | None = None,
) -> EloResult:
    """CLIC-style online Elo averaged over random orderings of the trials.

    E_a = 1 / (1 + 10^((R_b − R_a)/scale)), R_a ← R_a + K(S − E_a), R_b ← R_b − K(S − E_a),
    S ∈ {1, ½, 0}, all ratings starting at ``start`` (K = 30, start 2000, scale 400 as in
    google-research ``mucped22/scripts/elo``, "the same ELO computation used in CLIC").
    Order-dependent and shrunk toward ``start`` relative to the MLE Elo of
    :func:`bradley_terry`; it is the CLIC-parity view, not the model fit.

    Group g (in sorted order) uses the random stream ``SeedSequence((seed, g))``; orderings
    are exactly uniform permutations (see :mod:`.elo` for the vectorised engine). ``workers``
    threads share the orderings (default: the CPU count); the numbers do not depend on it.
    """
    if n_orderings < 2:
        raise StatsInputError(f"n_orderings must be at least 2, got {n_orderings}")
    groups, _ = trial_groups(trials)
    threads = workers if workers is not None else (os.cpu_count() or 1)
    frames = []
    for g, group in enumerate(groups):
        args = (group.ia, group.ib, group.score, len(group.items))
        finals = elo_engine.shuffled_elo(
            *args, n_orderings=n_orderings, k=k, start=start, scale=scale, seed=(seed, g),
            workers=threads,
        )  # fmt: skip
        frame = _item_frame(group)
        frame["elo_mean"] = finals.mean(axis=0)
        frame["elo_sd"] = finals.std(axis=0, ddof=1)
        frame["elo_p2_5"], frame["elo_p97_5"] = np.percentile(finals, [2.5, 97.5], axis=0)
        frame["elo_file_order"] = elo_engine.file_order_elo(*args, k=k, start=start, scale=scale)
        frames.append(frame)
    ratings = pd.concat(frames, ignore_index=True)
    return EloResult(ratings, n_orderings=n_orderings, k=k, start=start, scale=scale, seed=seed)


def _item_frame(group: TrialGroup) -> pd.DataFrame:
    return pd.DataFrame({"group": group.label, "condition": group.items, "n": group.n_trials()})


# -- Bradley–Terry and Thurstone -----------------------------------------------------------


@dataclass(frozen=True)
class BTResult:
    """Bradley–Terry MLE per item: ``group, condition, n, wins, losses, theta, se, elo, elo_se``.

    ``theta`` is the log-strength centred to mean 0 in each group, ``se`` its sum-zero Wald
    SE; ``elo`` = 2000 + (400/ln 10)·θ; ``wins``/``losses`` count undecided trials as ½.
    ``covariance``: the sum-zero covariance of θ per group; ``log_likelihood``: ℓ at the
    estimate per group (minus ½λΣθ² when fitted with a ridge).
    """

    scores: pd.DataFrame
    covariance: dict[object, pd.DataFrame]
    log_likelihood: dict[object, float]
    ridge: float
    model: ModelId = BT_MODEL


@dataclass(frozen=True)
class ThurstoneResult:
    """Thurstone Case V MLE per item: ``group, condition, n, wins, losses, v, se, jod, jod_se``
    (v centred to mean 0, ``se`` its sum-zero Wald SE); other fields as in :class:`BTResult`."""

    scores: pd.DataFrame
    covariance: dict[object, pd.DataFrame]
    log_likelihood: dict[object, float]
    ridge: float
    model: ModelId = THURSTONE_MODEL


def bradley_terry(trials: pd.DataFrame, *, ridge: float = 0.0) -> BTResult:
    """Bradley–Terry maximum-likelihood fit, P(i ≻ j) = 1/(1 + e^{−(θ_i − θ_j)}), Σθ = 0.

    Undecided trials count half a win each way (equal to fitting each decided trial twice and
    each undecided one as one win each way). ``ridge`` λ > 0 maximises ℓ(θ) − ½λΣθ² instead,
    which exists for any comparison graph; with λ = 0 a group whose "beat" graph is not
    strongly connected raises :class:`StatsInputError` naming the items.
    """
    scores, covariance, loglik = _fit_groups(trials, link="logistic", ridge=ridge)
    scores = scores.rename(columns={"estimate": "theta"})
    scores["elo"] = ELO_CENTRE + ELO_PER_THETA * scores["theta"]
    scores["elo_se"] = ELO_PER_THETA * scores["se"]
    return BTResult(scores, covariance, loglik, ridge=ridge)


def thurstone_case_v(trials: pd.DataFrame, *, ridge: float = 0.0) -> ThurstoneResult:
    """Thurstone Case V maximum-likelihood fit, P(i ≻ j) = Φ(v_i − v_j), Σv = 0.

    The model of sureal's ``ThurstoneMlePairedCompSubjectiveModel`` (which adds 1e-8/n inside
    the logarithm; negligible) with ``jod = 1.4826·v``, pwcmp's JOD without its prior.
    Ties, ridge and non-identifiable groups as in :func:`bradley_terry`.
    """
    scores, covariance, loglik = _fit_groups(trials, link="probit", ridge=ridge)
    scores = scores.rename(columns={"estimate": "v"})
    scores["jod"] = JOD_PER_V * scores["v"]
    scores["jod_se"] = JOD_PER_V * scores["se"]
    return ThurstoneResult(scores, covariance, loglik, ridge=ridge)


def _fit_groups(
    trials: pd.DataFrame, *, link: Link, ridge: float
) -> tuple[pd.DataFrame, dict[object, pd.DataFrame], dict[object, float]]:
    if ridge < 0 or not math.isfinite(ridge):
        raise StatsInputError(f"ridge must be a finite number >= 0, got {ridge}")
    groups, _ = trial_groups(trials)
    frames, covariance, loglik = [], {}, {}
    for group in groups:
        wins = group.wins()
        if ridge == 0.0:
            check_identifiable(wins, group.items, group.label)
        fit = _newton(wins[None], np.zeros((1, len(group.items))), link=link, ridge=ridge)
        theta = fit.theta[0] - fit.theta[0].mean()
        cov = _centred_covariance(fit.information[0], ridge=ridge)
        frame = _item_frame(group)
        frame["wins"], frame["losses"] = wins.sum(axis=1), wins.sum(axis=0)
        frame["estimate"], frame["se"] = theta, np.sqrt(np.clip(np.diag(cov), 0.0, None))
        frames.append(frame)
        covariance[group.label] = pd.DataFrame(cov, index=group.items, columns=group.items)
        loglik[group.label] = float(fit.loglik[0])
    return pd.concat(frames, ignore_index=True), covariance, loglik


def check_identifiable(wins: Array, items: list[object], label: object) -> None:
    """Raise unless the directed graph "i beat j at least once" is strongly connected.

    Otherwise some set of items never lost (or never won) against the rest and the MLE runs
    off to ±∞ (Ford 1957); the message names those sets.
    """
    reach = _reachability((wins > 0)[None])[0]
    if reach.all():
        return
    n = len(items)
    component = [frozenset(np.flatnonzero(reach[i] & reach[:, i])) for i in range(n)]
    blocks = sorted(set(component), key=min)
    never_lost = [b for b in blocks if not wins[np.ix_(_others(b, n), sorted(b))].any()]
    never_won = [b for b in blocks if not wins[np.ix_(sorted(b), _others(b, n))].any()]

    def names(block_list: list[frozenset[int]]) -> str:
        return "; ".join(
            "{" + ", ".join(str(items[i]) for i in sorted(b)) + "}" for b in block_list
        )

    raise StatsInputError(
        f"group {label!r}: the maximum-likelihood scale does not exist because the comparisons "
        f"are not strongly connected: never lost to the other items: {names(never_lost)}; "
        f"never won against the other items: {names(never_won)}. Collect more comparisons "
        "or pass ridge > 0"
    )


def _others(block: frozenset[int], n: int) -> list[int]:
    return [i for i in range(n) if i not in block]


def _reachability(adjacency: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Transitive closure (with self-loops) of a batch of directed graphs, by squaring."""
    n = adjacency.shape[-1]
    reach = (adjacency | np.eye(n, dtype=bool)).astype(np.float32)
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        reach = np.minimum(reach @ reach, 1.0)
    return reach > 0


@dataclass(frozen=True)
class _Pairs:
    """The compared pairs (i < j) of a batch of win matrices, as the likelihood sees them."""

    forward: Array  # (B, P): wins of the first item of each pair over the second
    backward: Array  # (B, P): wins of the second over the first
    incidence: Array  # (P, n): +1 at the first item, −1 at the second
    flat: tuple[NDArray[np.intp], NDArray[np.intp]]  # positions (i, j) and (j, i) in n×n


def _pairs(wins: Array) -> _Pairs:
    """Pairs compared in any matrix of the batch ``wins`` ``(B, n, n)``."""
    n = wins.shape[-1]
    first, second = np.triu_indices(n, 1)
    forward, backward = wins[:, first, second], wins[:, second, first]
    compared = (forward + backward).any(axis=0)
    first, second = first[compared], second[compared]
    incidence = np.zeros((first.size, n))
    incidence[np.arange(first.size), first] = 1.0
    incidence[np.arange(first.size), second] = -1.0
    flat = (first * n + second, second * n + first)
    return _Pairs(forward[:, compared], backward[:, compared], incidence, flat)


def _pair_terms(d: Array, pairs: _Pairs, link: Link) -> tuple[Array, Array, Array]:
    """Per pair, with d = θ_i − θ_j: log-likelihood, its d-derivative and the curvature −∂²/∂d².

    ℓ_ij = w_ij log F(d) + w_ji log F(−d); F = logistic (log F(−d) = log F(d) − d) or Φ, for
    which (log Φ)' = m(d) = φ(d)/Φ(d) and (log Φ)'' = −m(d)(d + m(d)).
    """
    wf, wb = pairs.forward, pairs.backward
    if link == "logistic":
        p = expit(d)
        log_p = -np.logaddexp(0.0, -d)
        return wf * log_p + wb * (log_p - d), wf * (1.0 - p) - wb * p, (wf + wb) * p * (1.0 - p)
    log_fwd, log_bwd = log_ndtr(d), log_ndtr(-d)
    log_pdf = -0.5 * d * d - 0.5 * math.log(2.0 * math.pi)
    m_fwd, m_bwd = np.exp(log_pdf - log_fwd), np.exp(log_pdf - log_bwd)
    curvature = wf * m_fwd * (d + m_fwd) + wb * m_bwd * (m_bwd - d)
    return wf * log_fwd + wb * log_bwd, wf * m_fwd - wb * m_bwd, curvature


@dataclass(frozen=True)
class _Point:
    """ℓ(θ) − ½λΣθ², its gradient and the information −∇² (a Laplacian plus λI), per batch."""

    theta: Array
    loglik: Array
    gradient: Array
    information: Array


def _evaluate(pairs: _Pairs, theta: Array, link: Link, ridge: float) -> _Point:
    d = theta @ pairs.incidence.T
    loglik, slope, curvature = _pair_terms(d, pairs, link)
    b, n = theta.shape
    information = np.zeros((b, n * n))
    information[:, pairs.flat[0]] = -curvature
    information[:, pairs.flat[1]] = -curvature
    information = information.reshape(b, n, n)
    diagonal = curvature @ np.abs(pairs.incidence) + ridge
    information[:, np.arange(n), np.arange(n)] = diagonal
    penalty = 0.5 * ridge * np.sum(theta * theta, axis=1)
    gradient = slope @ pairs.incidence - ridge * theta
    return _Point(theta, loglik.sum(axis=1) - penalty, gradient, information)


def _newton(wins: Array, theta0: Array, *, link: Link, ridge: float) -> _Point:
    """Maximise the likelihood for a batch of win matrices ``(B, n, n)`` from ``theta0``.

    Newton steps solve (I + 11ᵀ/n) δ = ∇ℓ, which keeps Σθ fixed (∇ℓ sums to zero); a step that
    lowers the likelihood is halved. Stops when no coordinate moves more than 1e-10.
    """
    pairs = _pairs(wins)
    n = theta0.shape[1]
    shift = np.ones((n, n)) / n
    point = _evaluate(pairs, theta0 - theta0.mean(axis=1, keepdims=True), link, ridge)
    for _ in range(NEWTON_MAX_ITER):
        step = np.linalg.solve(point.information + shift, point.gradient[:, :, None])[:, :, 0]
        point, moved = _halving(pairs, point, step, link, ridge)
        if moved <= NEWTON_TOL:
            break
    return point


def _halving(
    pairs: _Pairs, point: _Point, step: Array, link: Link, ridge: float
) -> tuple[_Point, float]:
    size = np.ones(step.shape[0])
    slack = 1e-12 * (1.0 + np.abs(point.loglik))
    for _ in range(60):
        candidate = _evaluate(pairs, point.theta + size[:, None] * step, link, ridge)
        worse = candidate.loglik < point.loglik - slack
        if not worse.any():
            break
        size = np.where(worse, size / 2.0, size)
    moved = float(np.max(np.abs(size[:, None] * step))) if step.size else 0.0
    return candidate, moved


def _centred_covariance(information: Array, *, ridge: float) -> Array:
    """Σ of the sum-zero parametrisation, P Σ Pᵀ: the pseudo-inverse of I when λ = 0."""
    n = information.shape[0]
    shift = np.ones((n, n)) / n
    cov = np.linalg.inv(information + shift)
    if ridge == 0.0:
        cov = cov - shift  # (I + J/n)⁻¹ − J/n = I⁺ for the Laplacian of a connected graph
    centre = np.eye(n) - shift
    return centre @ cov @ centre


# -- rater bootstrap -----------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile intervals over rater resamples.

    ``intervals``: ``group, condition, n, bt_theta_low, bt_theta_high, bt_elo_low,
    bt_elo_high`` and, when Thurstone was refitted, ``thurstone_v_low/high`` and
    ``jod_low/high``. ``elo_replicates``: BT Elo of every resample (rows: conditions, or
    (group, condition) when there are several groups; columns: resamples; NaN for a dropped
    resample). ``dropped``: per group, resamples whose MLE does not exist.
    """

    intervals: pd.DataFrame
    elo_replicates: pd.DataFrame
    dropped: dict[object, int]
    n_resamples: int
    confidence: float
    seed: int
    ridge: float
    model: ModelId = BOOTSTRAP_MODEL


def rater_bootstrap(
    trials: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    thurstone: bool = True,
    ridge: float = 0.0,
) -> BootstrapResult:
    """Cluster bootstrap over raters of the Bradley–Terry (and Thurstone) scales.

    Raters are drawn with replacement, all groups together (a rater's whole session is the
    unit: :func:`.bootstrap.rater_resamples` with ``default_rng(seed)``); a resample's win
    matrix is Σ_r c_br·W_r (c_br = copies of rater r in resample b), refitted by batched Newton
    warm-started at the full-data estimate. Percentile intervals (Efron & Tibshirani 1993,
    §13.3) at ``confidence``.

    A resample whose "beat" graph is not strongly connected (an item that never loses, never
    wins, or was not compared) has no MLE. With ``ridge`` = 0 such resamples are dropped,
    counted in ``dropped`` and the percentiles use the others; this conditions on
    identifiability and so narrows the interval of an item that almost never loses (in
    pwcmp's TMO "exhibition" scene irawan05 lost 1 of 59 trials and 44 % of resamples drop).
    With ``ridge`` λ > 0 every resample (and the estimate it starts from) maximises
    ℓ − ½λΣθ², nothing is dropped, and such an item's interval reaches far out instead.
    """
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must be between 0 and 1, got {confidence}")
    groups, raters = trial_groups(trials)
    rng = np.random.default_rng(seed)
    counts = resample_counts(rater_resamples(len(raters), n_resamples, rng), len(raters))
    links: list[Link] = ["logistic", "probit"] if thurstone else ["logistic"]
    frames, replicates, dropped = [], [], {}
    for group in groups:
        samples, usable = _group_replicates(group, counts, len(raters), links, ridge)
        frames.append(_interval_frame(group, samples, usable, confidence))
        replicates.append(ELO_CENTRE + ELO_PER_THETA * samples["logistic"])
        dropped[group.label] = int(n_resamples - usable.sum())
    return BootstrapResult(
        intervals=pd.concat(frames, ignore_index=True),
        elo_replicates=_replicate_frame(groups, replicates),
        dropped=dropped,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        ridge=ridge,
    )


def _group_replicates(
    group: TrialGroup, counts: Array, n_raters: int, links: list[Link], ridge: float
) -> tuple[dict[str, Array], NDArray[np.bool_]]:
    """Refitted scales per link, ``(n_items, B)``, NaN in the columns of dropped resamples."""
    n = len(group.items)
    wins = (counts @ group.rater_wins(n_raters)).reshape(-1, n, n)
    full = group.wins()
    if ridge == 0.0:
        check_identifiable(full, group.items, group.label)
        usable = _reachability(wins > 0).all(axis=(1, 2))
    else:
        usable = np.ones(wins.shape[0], dtype=bool)
    samples: dict[str, Array] = {}
    for link in links:
        out = np.full((n, wins.shape[0]), np.nan)
        if usable.any():
            estimate = _newton(full[None], np.zeros((1, n)), link=link, ridge=ridge).theta
            start = np.repeat(estimate, int(usable.sum()), axis=0)
            theta = _newton(wins[usable], start, link=link, ridge=ridge).theta
            out[:, usable] = (theta - theta.mean(axis=1, keepdims=True)).T
        samples[link] = out
    return samples, usable


def _interval_frame(
    group: TrialGroup, samples: dict[str, Array], usable: NDArray[np.bool_], confidence: float
) -> pd.DataFrame:
    frame = _item_frame(group)
    views = {
        "bt_theta": samples["logistic"],
        "bt_elo": ELO_CENTRE + ELO_PER_THETA * samples["logistic"],
    }
    if "probit" in samples:
        views["thurstone_v"] = samples["probit"]
        views["jod"] = JOD_PER_V * samples["probit"]
    for name, values in views.items():
        if usable.any():
            low, high = percentile_interval(values[:, usable], confidence)
        else:
            low = high = np.full(len(group.items), np.nan)
        frame[f"{name}_low"], frame[f"{name}_high"] = low, high
    return frame


def _replicate_frame(groups: list[TrialGroup], replicates: list[Array]) -> pd.DataFrame:
    values = np.concatenate(replicates, axis=0)
    if len(groups) == 1:
        index: pd.Index = pd.Index(groups[0].items, name="condition")
    else:
        pairs = [(g.label, item) for g in groups for item in g.items]
        index = pd.MultiIndex.from_tuples(pairs, names=["group", "condition"])
    return pd.DataFrame(values, index=index)


# -- win matrix and significance -----------------------------------------------------------


def win_matrix(trials: pd.DataFrame, *, group: object | None = None) -> pd.DataFrame:
    """Wins of the row item over the column item (an undecided trial counts ½ to each).

    With several groups, ``group`` chooses one (they share no items).
    """
    groups, _ = trial_groups(trials)
    chosen = _one_group(groups, group)
    return pd.DataFrame(chosen.wins(), index=chosen.items, columns=chosen.items)


def _one_group(groups: list[TrialGroup], group: object | None) -> TrialGroup:
    labels = [g.label for g in groups]
    if group is None and len(groups) == 1:
        return groups[0]
    for candidate in groups:
        if group is not None and candidate.label == group:
            return candidate
    raise StatsInputError(f"group={group!r}: choose one of {', '.join(map(str, labels))}")


def pairwise_significance(
    trials: pd.DataFrame, *, correction: Correction = "holm", alpha: float = 0.05
) -> pd.DataFrame:
    """Exact two-sided binomial test of "no preference" for every compared pair, per group.

    Columns ``group, a, b, wins_a, wins_b, ties, n, p_value, p_adjusted, significant``: the
    test uses the decided trials only (``scipy.stats.binomtest(wins_a, wins_a + wins_b, ½)``;
    p = 1 without decided trials); ``p_adjusted`` corrects for the pairs of the same group
    (Holm 1979 step-down, or Bonferroni); ``significant`` = p_adjusted ≤ alpha.
    ``table.attrs["model"]`` is the :class:`ModelId`.
    """
    if correction not in ("holm", "bonferroni"):
        raise StatsInputError(f"correction={correction!r} is not one of holm, bonferroni")
    groups, _ = trial_groups(trials)
    frames = [_pair_tests(group) for group in groups]
    table = pd.concat(frames, ignore_index=True)
    table["p_adjusted"] = np.concatenate(
        [_adjusted(f["p_value"].to_numpy(), correction) for f in frames]
    )
    table["significant"] = table["p_adjusted"] <= alpha
    table.attrs = {"model": SIGNIFICANCE_MODEL, "correction": correction, "alpha": alpha}
    return table


def _pair_tests(group: TrialGroup) -> pd.DataFrame:
    n = len(group.items)
    lo, hi = np.minimum(group.ia, group.ib), np.maximum(group.ia, group.ib)
    lo_won = np.where(group.ia == lo, group.score, 1.0 - group.score)
    key = lo * n + hi
    wins_lo = np.bincount(key, lo_won == 1.0, minlength=n * n)
    wins_hi = np.bincount(key, lo_won == 0.0, minlength=n * n)
    ties = np.bincount(key, lo_won == 0.5, minlength=n * n)
    pairs = np.flatnonzero(wins_lo + wins_hi + ties)
    wa, wb, tt = (x[pairs].astype(np.int64) for x in (wins_lo, wins_hi, ties))
    p = [
        binomtest(int(x), int(x + y)).pvalue if x + y else 1.0 for x, y in zip(wa, wb, strict=True)
    ]
    return pd.DataFrame(
        {
            "group": group.label,
            "a": [group.items[i] for i in pairs // n],
            "b": [group.items[j] for j in pairs % n],
            "wins_a": wa,
            "wins_b": wb,
            "ties": tt,
            "n": wa + wb + tt,
            "p_value": np.asarray(p, dtype=np.float64),
        }
    )


def _adjusted(p: Array, correction: Correction) -> Array:
    m = p.size
    if correction == "bonferroni":
        return np.minimum(1.0, m * p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


# -- one table -----------------------------------------------------------------------------

SCALE_COLUMNS = [
    "group",
    "condition",
    "n",
    "elo_online",
    "bt_theta",
    "bt_elo",
    "thurstone",
    "ci95_low",
    "ci95_high",
]


def scale_pairwise(
    trials: pd.DataFrame,
    *,
    n_orderings: int = 10_000,
    n_resamples: int = 1000,
    seed: int = 0,
    k: float = 30.0,
    start: float = 2000.0,
    bootstrap: BootstrapResult | None = None,
) -> pd.DataFrame:
    """One row per item with every scale: the table ``manage.py score --kind pairwise`` writes.

    Columns :data:`SCALE_COLUMNS`: ``n`` trials with the item, ``elo_online`` (shuffle mean of
    :func:`online_elo`), ``bt_theta`` and ``bt_elo`` (:func:`bradley_terry`), ``thurstone``
    (Thurstone Case V in JOD, :func:`thurstone_case_v`), and the 95 % rater-bootstrap
    percentile interval of ``bt_elo`` (:func:`rater_bootstrap`; resamples without an MLE are
    dropped, their count per group is in ``attrs["bootstrap_dropped"]``; pass ``bootstrap``
    when the caller already ran it on the same trials). Sorted by group, then
    ``bt_elo`` descending; ``attrs["models"]`` lists the models used.
    """
    bt = bradley_terry(trials).scores
    table = bt[["group", "condition", "n"]].copy()
    elo = online_elo(trials, n_orderings=n_orderings, k=k, start=start, seed=seed).ratings
    table["elo_online"] = elo["elo_mean"].to_numpy()
    table["bt_theta"], table["bt_elo"] = bt["theta"].to_numpy(), bt["elo"].to_numpy()
    table["thurstone"] = thurstone_case_v(trials).scores["jod"].to_numpy()
    boot = bootstrap or rater_bootstrap(trials, n_resamples=n_resamples, seed=seed, thurstone=False)
    table["ci95_low"] = boot.intervals["bt_elo_low"].to_numpy()
    table["ci95_high"] = boot.intervals["bt_elo_high"].to_numpy()
    rank = table.groupby("group", sort=False).ngroup()
    order = np.lexsort((-table["bt_elo"].to_numpy(), rank.to_numpy()))
    table = table.iloc[order][SCALE_COLUMNS].reset_index(drop=True)
    table.attrs = {
        "models": [BT_MODEL, THURSTONE_MODEL, ONLINE_ELO_MODEL, BOOTSTRAP_MODEL],
        "bootstrap_dropped": boot.dropped,
    }
    return table
