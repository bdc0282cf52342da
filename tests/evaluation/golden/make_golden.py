"""Make the golden numbers of tests/evaluation/golden/*.json from the reference libraries.

The golden files freeze what the reference implementations return on real data, so that
``tests/evaluation/test_golden.py`` can check PerceptLab against them without importing the
libraries (an upstream release cannot move a reference silently), and freeze PerceptLab's own
output with the name and version of the model that produced it (an output that changes while
the model's ``ModelId`` version stays the same fails the test).

How the files were made
-----------------------
From the repository root (the datasets are found and, if missing, fetched as the tests do:
:mod:`perceptlab.lib.datasets`; ``--datasets DIR`` names another folder)::

    .venv/bin/python tests/evaluation/golden/make_golden.py [--datasets DIR] [--family F ...]

with Python 3.11, sureal 0.9.0, choix 0.4.1, bjontegaard 1.3.0, scipy 1.17.1 (the references)
and numpy 1.26.4, pandas 3.0.6 (each file's ``libraries`` records them). The script refuses
other versions of the four reference libraries unless ``--new-reference-versions`` is given:
a newer release may move a reference number, and that has to be a decision (update
:data:`REFERENCE_VERSIONS` and this docstring when you take it). It also refuses to write a
family whose PerceptLab numbers fall outside a case's tolerance of the reference.

Inputs (paths relative to the datasets directory; every case's exact input, subset and call
are in its ``input`` in the JSON, defined in ``cases.py``). No randomness other than the
seeds named here; every bootstrap draws with ``numpy.random.default_rng(seed)``.

* ``mos.json`` — ``sureal/NFLX_dataset_public_raw.csv``, ``sureal/VQEGHD3_dataset_raw.csv``
  (all ratings) and ``sureal/quality_variation_2017_agh_tv.csv`` (first 80 stimuli in sorted
  order). MOS, SD and normal interval against sureal ``MosModel``; the t interval against
  ``scipy.stats.t.interval`` (VQEG-HD3, AGH); the rater-bootstrap BCa (seed 5, 300 resamples)
  and percentile (seed 7, 300) intervals on VQEG-HD3 against ``scipy.stats.bootstrap`` over
  rater indices; ACR-HR DMOS on NFLX against sureal ``DmosModel``. The NFLX MOS and DMOS
  bootstraps use seed 0 (100 resamples), AGH seed 3 (200); those intervals are frozen without
  a reference (scipy's BCa is NaN on NFLX's unanimous stimulus and does not handle the partial
  AGH design).
* ``subject_model.json`` — NFLX and VQEG-HD3, all ratings: ``mle_subject_model`` variants
  ``content_oblivious``, ``p910`` (both datasets) and ``full`` (VQEG-HD3) against sureal
  ``MaximumLikelihoodEstimationModelContentOblivious``, ``P910AnnexEModel`` and
  ``MaximumLikelihoodEstimationModel``.
* ``pairwise.json`` — ``pairwise/pwcmp_tmo_video.csv``, ``pairwise/sureal_lukas_sharpening.csv``,
  ``pairwise/hific_userstudy.csv`` (``random_choice=1`` trials scored ½) and
  ``pairwise/pwcmp_lightfield_quality.csv`` (Bradley–Terry only, the trials of its first 4
  groups in sorted order), the others all trials. Bradley–Terry
  MLE against ``choix.ilsr_pairwise`` on doubled data (a decided trial = two wins, an
  undecided one a win each way; tol 1e-13); the ridge fits (λ = 0.1 on TMO, 0.5 on HiFiC)
  against ``choix.opt_pairwise(alpha=λ, method="Newton-CG", tol=1e-12)`` on the doubled data
  (choix's penalty α·Σθ² on 2ℓ is ½λΣθ² on ℓ); Thurstone Case V MLE against sureal
  ``ThurstoneMlePairedCompSubjectiveModel``; the exact binomial tests against
  ``scipy.stats.binomtest`` on win counts taken from the trials, with Holm's step-down by
  hand; the rater bootstrap (HiFiC, 20 resamples, seed 11, no prior) against percentiles of
  choix refits of the resampled raters (a resample whose "beat" graph is not strongly
  connected is dropped, as ``scipy.sparse.csgraph.connected_components`` says). Frozen without
  a reference: the fits with pwcmp's distance prior (pwcmp is MATLAB) and online Elo (TMO,
  500 orderings, seed 0).
* ``bdrate.json`` — the bjontegaard README example (inline) and ``bdrate/mucped23_elo.csv``
  (anchor libjpeg-turbo; jpegli, mozjpeg, jpegli-420): BD-rate and BD-quality with every
  method against ``bjontegaard.bd_rate`` / ``bd_psnr`` (points sorted by rate,
  ``require_matching_points=False``); NFLX encoding ladders (ElFuente1 anchor, Tennis test,
  rate = kbps, quality = MOS): 100 rater-resample replicates (seed 11) against bjontegaard per
  replicate (NaN where scipy refuses a non-monotone curve), and the isotonic percentile
  interval (300 resamples, seed 20240601) against ``scipy.stats.bootstrap`` of bjontegaard on
  the pool-adjacent-violators curves (``scipy.optimize.isotonic_regression``, blocks at the
  geometric-mean rate).
* ``screening.json`` — all four ``sureal/*.csv`` files, all ratings: the ``sureal`` variants of
  BT.500 and P.913 screening against sureal ``BT500Model`` and ``P913124Model`` (statistics,
  rejected raters, bias, MOS of the kept ratings); the correlation screening (FR-TV, AGH and
  NFLX) against ``scipy.stats.pearsonr`` per rater with the threshold min(0.7, mean − SD) by
  hand. Frozen without a reference: the ``corrected`` BT.500 and P.913 variants (they depart
  from sureal on purpose).

Tolerances (stored per reference column): those of the live tests in tests/evaluation
(1e-8 relative for sureal's MOS, 1e-4 absolute for MLE_CO and Thurstone, 1e-6 for P910, MLE
and choix, 1e-9 for bjontegaard), except that no relative tolerance is below 1e-11, because
the files keep 12 significant digits. Numbers are written rounded to 12 significant digits,
NaN as null, keys sorted; running the script twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import math
import platform
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bjontegaard
import choix
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats
from scipy.optimize import isotonic_regression
from scipy.sparse.csgraph import connected_components
from sureal import BT500Model, P910AnnexEModel, P913124Model
from sureal.dataset_reader import PairedCompDatasetReader, RawDatasetReader
from sureal.pc_subjective_model import ThurstoneMlePairedCompSubjectiveModel
from sureal.subjective_model import (
    DmosModel,
    MaximumLikelihoodEstimationModel,
    MaximumLikelihoodEstimationModelContentOblivious,
    MosModel,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/evaluation: ``golden`` is a package there

from golden import cases, check  # noqa: E402
from perceptlab.evaluation.stats.bootstrap import rater_resamples  # noqa: E402
from perceptlab.evaluation.stats.pairwise import TrialGroup, trial_groups  # noqa: E402
from perceptlab.evaluation.stats.ratings_io import to_sureal_dataset_json  # noqa: E402
from perceptlab.lib.datasets import DatasetError, dataset_dir  # noqa: E402

INPUTS = ("sureal", "pairwise", "bdrate")  # the datasets whose files cases.py reads
REFERENCE_VERSIONS = {
    "sureal": "0.9.0",
    "choix": "0.4.1",
    "bjontegaard": "1.3.0",
    "scipy": "1.17.1",
}
RECORDED = [*REFERENCE_VERSIONS, "numpy", "pandas"]
SUREAL, CHOIX, BJONTEGAARD = (
    f"{name} {importlib.metadata.version(name)}" for name in ("sureal", "choix", "bjontegaard")
)
TIGHT = 1e-11
"""The tightest relative tolerance: the files keep 12 significant digits (error ≤ 5e-12)."""
ELO_PER_THETA = 400.0 / math.log(10.0)
JOD_PER_V = 1.4826

Array = NDArray[np.float64]


@dataclass
class Reference:
    """A case's reference columns, where they come from, and the tolerance per column."""

    source: str
    values: dict[str, cases.Column] = field(default_factory=dict)
    tolerance: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, column: str, values: object, *, rtol: float = 0.0, atol: float = 0.0) -> None:
        labels = isinstance(values, list) and all(isinstance(v, str) for v in values)
        self.values[column] = values if labels else _array(values)  # type: ignore[assignment]
        self.tolerance[column] = {"rtol": rtol, "atol": atol}


def _array(values: object) -> Array:
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


ReferenceFn = Callable[[Path], Reference]
REFERENCES: dict[str, ReferenceFn] = {}
NO_REFERENCE: dict[str, str] = {}


def reference_for(*keys: str) -> Callable[[ReferenceFn], ReferenceFn]:
    def register(function: ReferenceFn) -> ReferenceFn:
        for key in keys:
            REFERENCES[key] = function
        return function

    return register


# -- sureal -----------------------------------------------------------------------------------


def run_sureal(model: type, frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    dataset = to_sureal_dataset_json(frame, dataset_name="golden", **extra)
    dataset["ref_score"] = 5.0  # read by DmosModel only
    with contextlib.redirect_stdout(io.StringIO()):
        result: dict[str, Any] = model(
            RawDatasetReader(types.SimpleNamespace(**dataset))
        ).run_modeling()
    return result


def _same(what: str, ours: Iterable[object], theirs: Iterable[object]) -> None:
    a, b = [str(x) for x in ours], [str(x) for x in theirs]
    if a != b:
        raise SystemExit(f"{what}: the reference's order differs from PerceptLab's: {b} vs {a}")


# -- MOS --------------------------------------------------------------------------------------


def _mos_frame(datasets: Path, name: str) -> pd.DataFrame:
    return cases.agh_subset(datasets) if name == "agh" else cases.ratings(datasets, name)


def _sureal_mos(reference: Reference, frame: pd.DataFrame) -> None:
    theirs = run_sureal(MosModel, frame)
    quality = _array(theirs["quality_scores"])
    half = _array(theirs["quality_scores_ci95"][0])
    reference.add("mos", quality, rtol=1e-8)
    reference.add("sd", theirs["quality_ambiguity"], rtol=1e-8)
    reference.add("ci95_normal_low", quality - half, rtol=1e-8)
    reference.add("ci95_normal_high", quality + half, rtol=1e-8)


def _scipy_t(reference: Reference, frame: pd.DataFrame) -> None:
    low, high = [], []
    for _, group in frame.groupby("stimulus", sort=True):
        x = group["score"].to_numpy(dtype=np.float64)
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        low.append(lo)
        high.append(hi)
    reference.add("ci95_t_low", low, rtol=TIGHT)
    reference.add("ci95_t_high", high, rtol=TIGHT)


def _cluster_statistic(frame: pd.DataFrame) -> Callable[[NDArray[np.intp]], Array]:
    """MOS of every stimulus for resampled rater indices (raters in sorted order)."""
    sums = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="sum")
    counts = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="count")
    s, n = sums.fillna(0).to_numpy(), counts.fillna(0).to_numpy()

    def statistic(indices: NDArray[np.intp]) -> Array:
        drawn = np.bincount(indices.astype(int), minlength=s.shape[1])
        return np.asarray((s @ drawn) / (n @ drawn), dtype=np.float64)

    return statistic


def _scipy_bootstrap(
    reference: Reference, frame: pd.DataFrame, *, n_resamples: int, seed: int, method: str
) -> None:
    result = stats.bootstrap(
        (np.arange(frame["rater"].nunique()),),
        _cluster_statistic(frame),
        vectorized=False,
        n_resamples=n_resamples,
        method=method,
        rng=np.random.default_rng(seed),
    )
    reference.add("ci95_boot_low", result.confidence_interval.low, rtol=TIGHT)
    reference.add("ci95_boot_high", result.confidence_interval.high, rtol=TIGHT)


@reference_for("mos/mos-nflx")
def _mos_nflx(datasets: Path) -> Reference:
    reference = Reference(f"{SUREAL} MosModel (mos, sd, 95 % normal interval)")
    _sureal_mos(reference, _mos_frame(datasets, "nflx"))
    return reference


@reference_for("mos/mos-agh-partial")
def _mos_agh(datasets: Path) -> Reference:
    reference = Reference(
        f"{SUREAL} MosModel (mos, sd, normal interval); scipy.stats.t.interval (t interval)"
    )
    frame = _mos_frame(datasets, "agh")
    _sureal_mos(reference, frame)
    _scipy_t(reference, frame)
    return reference


def _mos_vqeghd3(method: str, seed: int) -> ReferenceFn:
    """BCa: sureal, scipy's t and bootstrap; percentile: scipy's bootstrap only (the other
    columns are the same numbers as in the BCa case)."""

    def build(datasets: Path) -> Reference:
        bootstrap = (
            f"scipy.stats.bootstrap(method={method!r}, 300 resamples, rng=default_rng({seed})) "
            "over rater indices (bootstrap interval)"
        )
        frame = _mos_frame(datasets, "vqeghd3")
        if method == "percentile":
            reference = Reference(bootstrap)
        else:
            reference = Reference(
                f"{SUREAL} MosModel (mos, sd, normal interval); scipy.stats.t.interval "
                f"(t interval); {bootstrap}"
            )
            _sureal_mos(reference, frame)
            _scipy_t(reference, frame)
        _scipy_bootstrap(reference, frame, n_resamples=300, seed=seed, method=method)
        return reference

    return build


REFERENCES["mos/mos-vqeghd3-bca"] = _mos_vqeghd3("BCa", 5)
REFERENCES["mos/mos-vqeghd3-percentile"] = _mos_vqeghd3("percentile", 7)


@reference_for("mos/dmos-acr-hr-nflx")
def _dmos(datasets: Path) -> Reference:
    reference = Reference(f"{SUREAL} DmosModel (ref_score 5)")
    frame = cases.ratings(datasets, "nflx")
    reference_of = cases.nflx_reference_of(frame)
    theirs = run_sureal(DmosModel, frame, ref_stimulus_of=reference_of)
    dmos = pd.Series(theirs["quality_scores"], index=sorted(frame["stimulus"].unique()))
    processed = sorted(frame.loc[frame["condition"] != "ref", "stimulus"].unique())
    reference.add("mos", dmos[processed].to_numpy(), rtol=1e-8)
    return reference


# -- subject model ----------------------------------------------------------------------------

SUBJECT_MODELS = {
    "mle-co": (MaximumLikelihoodEstimationModelContentOblivious, 1e-4),
    "p910": (P910AnnexEModel, 1e-6),
    "mle-full": (MaximumLikelihoodEstimationModel, 1e-6),
}


def _subject_reference(short: str, dataset: str) -> ReferenceFn:
    model, atol = SUBJECT_MODELS[short]

    def build(datasets: Path) -> Reference:
        frame = cases.ratings(datasets, dataset)
        theirs = run_sureal(model, frame)
        _same("raters", sorted(frame["rater"].unique()), theirs["observers"])
        reference = Reference(f"{SUREAL} {model.__name__}")
        v = _array(theirs["observer_inconsistency"])
        low, high = (_array(x) for x in theirs["observer_inconsistency_ci95"])
        reference.add("quality", theirs["quality_scores"], atol=atol)
        reference.add("quality_std", theirs["quality_scores_std"], atol=atol)
        reference.add("bias", theirs["observer_bias"], atol=atol)
        reference.add("bias_std", theirs["observer_bias_std"], atol=atol)
        reference.add("inconsistency", v, atol=atol)
        reference.add("inconsistency_ci95_low", v - low, atol=atol)
        reference.add("inconsistency_ci95_high", v + high, atol=atol)
        reference.add("log_likelihood_per_rating", theirs["loglikelihood"], atol=atol)
        if short == "mle-full":
            reference.add("content_ambiguity", theirs["content_ambiguity"], atol=atol)
        return reference

    return build


for _case in cases.SUBJECT_MODEL_CASES:
    _short, _, _dataset = _case.name.rpartition("-")
    REFERENCES[_case.key] = _subject_reference(_short, _dataset)


# -- pairwise ---------------------------------------------------------------------------------


def doubled(group: TrialGroup) -> list[tuple[int, int]]:
    """choix data: a decided trial is two wins, an undecided one a win each way."""
    data: list[tuple[int, int]] = []
    for a, b, s in zip(group.ia.tolist(), group.ib.tolist(), group.score.tolist(), strict=True):
        data += [(a, b)] * 2 if s == 1.0 else [(b, a)] * 2 if s == 0.0 else [(a, b), (b, a)]
    return data


def choix_theta(group: TrialGroup) -> Array:
    theta = choix.ilsr_pairwise(
        len(group.items), doubled(group), alpha=0.0, tol=1e-13, max_iter=10_000
    )
    return np.asarray(theta - theta.mean(), dtype=np.float64)


def sureal_v(group: TrialGroup) -> Array:
    """sureal's THURSTONE_MLE; each trial its own observer key so repeats are all kept."""
    dis: list[dict[str, Any]] = [
        {"asset_id": i, "content_id": 0, "path": str(item), "os": {}}
        for i, item in enumerate(group.items)
    ]
    for t, (a, b, s) in enumerate(zip(group.ia, group.ib, group.score, strict=True)):
        dis[int(a)]["os"][(f"t{t}", int(b))] = float(s)
    dataset = types.SimpleNamespace(
        dataset_name="pairwise",
        ref_videos=[{"content_id": 0, "content_name": "c", "path": "reference"}],
        dis_videos=dis,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        result = ThurstoneMlePairedCompSubjectiveModel(
            PairedCompDatasetReader(dataset)
        ).run_modeling()
    return np.asarray(result["quality_scores"], dtype=np.float64)


def _bt_none(dataset: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        groups, _ = trial_groups(cases.trials(datasets, dataset))
        theta = np.concatenate([choix_theta(g) for g in groups])
        reference = Reference(f"{CHOIX} ilsr_pairwise(alpha=0, tol=1e-13) on doubled data, centred")
        reference.add("theta", theta, atol=1e-6)
        reference.add("elo", 2000.0 + ELO_PER_THETA * theta, atol=1e-6 * ELO_PER_THETA)
        return reference

    return build


def _bt_ridge(dataset: str, ridge: float) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        groups, _ = trial_groups(cases.trials(datasets, dataset))
        fits = []
        for group in groups:
            theta = choix.opt_pairwise(
                len(group.items), doubled(group), alpha=ridge, method="Newton-CG", tol=1e-12
            )
            fits.append(np.asarray(theta, dtype=np.float64))
        reference = Reference(
            f"{CHOIX} opt_pairwise(alpha={ridge}, method='Newton-CG', tol=1e-12) on doubled "
            f"data (penalty α·Σθ² on 2ℓ = ½λΣθ² on ℓ, λ = {ridge})"
        )
        reference.add("theta", np.concatenate(fits), atol=1e-6)
        return reference

    return build


def _thurstone_none(dataset: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        groups, _ = trial_groups(cases.trials(datasets, dataset))
        v = np.concatenate([sureal_v(g) for g in groups])
        reference = Reference(f"{SUREAL} ThurstoneMlePairedCompSubjectiveModel, per group")
        reference.add("v", v, atol=1e-4)
        reference.add("jod", JOD_PER_V * v, atol=JOD_PER_V * 1e-4)
        return reference

    return build


for _dataset in ("tmo", "lukas", "hific", "lightfield"):
    REFERENCES[f"pairwise/bt-none-{_dataset}"] = _bt_none(_dataset)
for _dataset in ("tmo", "lukas", "hific"):
    REFERENCES[f"pairwise/thurstone-none-{_dataset}"] = _thurstone_none(_dataset)
REFERENCES["pairwise/bt-ridge-tmo"] = _bt_ridge("tmo", 0.1)
REFERENCES["pairwise/bt-ridge-hific"] = _bt_ridge("hific", 0.5)


def holm(p: list[float]) -> list[float]:
    """Holm (1979): sort, multiply the k-th smallest by (m − k + 1), keep the running maximum."""
    m, adjusted, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _significance(dataset: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        frame = cases.trials(datasets, dataset)
        if "group" not in frame.columns:
            frame = frame.assign(group="all")
        frame = frame.astype({"group": str, "a": str, "b": str})
        columns: dict[str, list[Any]] = {k: [] for k in ("group", "a", "b", "wins_a", "wins_b")}
        columns.update(ties=[], p_value=[], p_adjusted=[])
        for label, rows in frame.groupby("group", sort=True):
            # the pair (x, y), x before y in sorted order, with x's wins, y's wins and ties
            a, b = rows["a"].to_numpy(dtype=object), rows["b"].to_numpy(dtype=object)
            in_order = a < b
            first, second = np.where(in_order, a, b), np.where(in_order, b, a)
            outcome = rows["outcome"].to_numpy(dtype=np.float64)
            first_won = np.where(in_order, outcome, 1.0 - outcome)
            counts = (
                pd.DataFrame({"x": first, "y": second, "won": first_won})
                .groupby(["x", "y"], sort=True)["won"]
                .agg(
                    wins_a=lambda w: int((w == 1.0).sum()),
                    wins_b=lambda w: int((w == 0.0).sum()),
                    ties=lambda w: int((w == 0.5).sum()),
                )
            )
            p = [
                stats.binomtest(x, x + y).pvalue if x + y else 1.0
                for x, y in zip(counts["wins_a"], counts["wins_b"], strict=True)
            ]
            columns["group"] += [str(label)] * len(counts)
            columns["a"] += [str(x) for x, _ in counts.index]
            columns["b"] += [str(y) for _, y in counts.index]
            for name in ("wins_a", "wins_b", "ties"):
                columns[name] += counts[name].tolist()
            columns["p_value"] += p
            columns["p_adjusted"] += holm(p)
        reference = Reference(
            "scipy.stats.binomtest(wins_a, wins_a + wins_b) on win counts of each compared pair "
            "(items in sorted order) taken from the trials with pandas; Holm's step-down by "
            "hand per group"
        )
        ours = cases.CASES_BY_KEY[f"pairwise/significance-{dataset}"].run(datasets).columns
        for name in ("group", "a", "b"):
            _same(f"{dataset} pairs ({name})", ours[name], columns[name])
        for name in ("wins_a", "wins_b", "ties"):
            reference.add(name, columns[name])
        reference.add("p_value", columns["p_value"], rtol=TIGHT)
        reference.add("p_adjusted", columns["p_adjusted"], rtol=TIGHT)
        return reference

    return build


for _dataset in ("tmo", "lukas", "hific"):
    REFERENCES[f"pairwise/significance-{_dataset}"] = _significance(_dataset)


@reference_for("pairwise/bootstrap-bt-none-hific")
def _bootstrap(datasets: Path) -> Reference:
    frame = cases.trials(datasets, "hific")
    (full,), raters = trial_groups(frame)
    n, seed = cases.BOOTSTRAP_RESAMPLES, cases.BOOTSTRAP_SEED
    drawn = rater_resamples(len(raters), n, np.random.default_rng(seed))
    by_rater = dict(iter(frame.groupby("rater", sort=False)))
    refits = []
    for b in range(n):
        resample = pd.concat([by_rater[raters[i]] for i in drawn[b]], ignore_index=True)
        (group,), _ = trial_groups(resample)
        beat = group.wins() > 0
        strong, _ = connected_components(beat, directed=True, connection="strong")
        if strong > 1 or group.items != full.items:
            continue  # no maximum-likelihood scale: dropped
        refits.append(choix_theta(group))
    theta = np.array(refits)
    low, high = np.percentile(theta, [2.5, 97.5], axis=0)
    reference = Reference(
        f"percentiles (numpy.percentile 2.5, 97.5) of {CHOIX} ilsr_pairwise refits of the "
        f"resampled raters (rater_resamples({len(raters)} raters, {n}, default_rng({seed}))); "
        "resamples whose beat graph is not strongly connected (scipy connected_components) "
        "dropped"
    )
    reference.add("bt_theta_low", low, atol=1e-6)
    reference.add("bt_theta_high", high, atol=1e-6)
    reference.add("bt_elo_low", 2000.0 + ELO_PER_THETA * low, atol=1e-6 * ELO_PER_THETA)
    reference.add("bt_elo_high", 2000.0 + ELO_PER_THETA * high, atol=1e-6 * ELO_PER_THETA)
    reference.add("dropped", n - len(refits))
    return reference


NO_REFERENCE.update(
    {
        "pairwise/bt-gaussian-hific": "pwcmp's distance prior: pwcmp is MATLAB",
        "pairwise/bt-gaussian-tmo": "pwcmp's distance prior: pwcmp is MATLAB",
        "pairwise/thurstone-gaussian-tmo": "pwcmp's distance prior: pwcmp is MATLAB",
        "pairwise/online-elo-tmo": "the CLIC online Elo has no Python package",
    }
)


# -- BD-rate ----------------------------------------------------------------------------------

BJONTEGAARD_FUNCTIONS = {"rate": bjontegaard.bd_rate, "quality": bjontegaard.bd_psnr}


def sort_by_rate(rate: object, quality: object) -> tuple[Array, Array]:
    r, q = np.asarray(rate, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    order = np.argsort(r)
    return r[order], q[order]


def bjontegaard_value(
    kind: str, anchor: tuple[object, object], test: tuple[object, object], method: str
) -> float:
    (ra, qa), (rt, qt) = sort_by_rate(*anchor), sort_by_rate(*test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            BJONTEGAARD_FUNCTIONS[kind](
                ra, qa, rt, qt, method=method, require_matching_points=False
            )
        )


def _bjontegaard_source(kind: str, method: str) -> str:
    function = "bd_rate" if kind == "rate" else "bd_psnr"
    return (
        f"{BJONTEGAARD} {function}(method={method!r}, require_matching_points=False), "
        "points sorted by rate"
    )


def _readme(kind: str, method: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        anchor = (cases.README_ANCHOR["rate"], cases.README_ANCHOR["quality"])
        test = (cases.README_TEST["rate"], cases.README_TEST["quality"])
        reference = Reference(_bjontegaard_source(kind, method))
        reference.add("value", bjontegaard_value(kind, anchor, test, method), atol=1e-9)
        return reference

    return build


def _mucped23(kind: str, method: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        anchor = cases.mucped23_curve(datasets, cases.MUCPED23_ANCHOR)
        values = [
            bjontegaard_value(kind, anchor, cases.mucped23_curve(datasets, codec), method)
            for codec in cases.MUCPED23_TESTS
        ]
        reference = Reference(_bjontegaard_source(kind, method))
        reference.add("value", values, atol=1e-9)
        return reference

    return build


for _kind in ("rate", "quality"):
    for _method in ("cubic", "pchip", "akima"):
        REFERENCES[f"bdrate/readme-{_kind}-{_method}"] = _readme(_kind, _method)
        REFERENCES[f"bdrate/mucped23-{_kind}-{_method}"] = _mucped23(_kind, _method)


def _bjontegaard_or_nan(anchor: tuple[Array, Array], test: tuple[Array, Array]) -> float:
    try:
        return bjontegaard_value("rate", anchor, test, "pchip")
    except ValueError:  # scipy refuses a non-monotone curve
        return float("nan")


@reference_for("bdrate/nflx-ladders-replicates-pchip")
def _ladder_replicates(datasets: Path) -> Reference:
    ladders = cases.nflx_ladders(datasets)
    a, t = (ladders[c] for c in cases.LADDERS)
    mos_a, qa = cases.ladder_replicates(a, cases.LADDER_RESAMPLES, cases.LADDER_SEED)
    mos_t, qt = cases.ladder_replicates(t, cases.LADDER_RESAMPLES, cases.LADDER_SEED)
    reference = Reference(
        _bjontegaard_source("rate", "pchip") + "; NaN where it raises (a non-monotone replicate)"
    )
    reference.add("value", _bjontegaard_or_nan((a.kbps, mos_a), (t.kbps, mos_t)), atol=1e-9)
    replicates = [
        _bjontegaard_or_nan((a.kbps, qa[:, b]), (t.kbps, qt[:, b]))
        for b in range(cases.LADDER_RESAMPLES)
    ]
    reference.add("replicates", replicates, atol=1e-9)
    return reference


def _pooled_bjontegaard(ra: Array, qa: Array, rt: Array, qt: Array) -> float:
    curves = []
    for r, q in ((ra, qa), (rt, qt)):
        r, q = sort_by_rate(r, q)
        fit = isotonic_regression(q)
        blocks = zip(fit.blocks[:-1], fit.blocks[1:], strict=True)
        pooled = [(stats.gmean(r[i:j]), fit.x[i]) for i, j in blocks]
        curves.append(tuple(np.array(v) for v in zip(*pooled, strict=True)))
    return bjontegaard_value("rate", curves[0], curves[1], "pchip")  # type: ignore[arg-type]


@reference_for("bdrate/nflx-ladders-isotonic-interval")
def _ladder_interval(datasets: Path) -> Reference:
    ladders = cases.nflx_ladders(datasets)
    a, t = (ladders[c] for c in cases.LADDERS)
    n_raters = a.scores.shape[1]

    def statistic(raters: NDArray[np.intp]) -> float:
        return _pooled_bjontegaard(
            a.kbps, a.scores[:, raters].mean(1), t.kbps, t.scores[:, raters].mean(1)
        )

    interval = stats.bootstrap(
        (np.arange(n_raters),),
        statistic,
        n_resamples=cases.INTERVAL_RESAMPLES,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(cases.INTERVAL_SEED),
    ).confidence_interval
    reference = Reference(
        f"scipy.stats.bootstrap(method='percentile', {cases.INTERVAL_RESAMPLES} resamples, "
        f"rng=default_rng({cases.INTERVAL_SEED})) over rater indices of {BJONTEGAARD} "
        "bd_rate(pchip) on scipy.optimize.isotonic_regression curves (blocks at the "
        "geometric-mean rate, scipy.stats.gmean)"
    )
    reference.add("low", interval.low, atol=1e-9)
    reference.add("high", interval.high, atol=1e-9)
    return reference


# -- screening --------------------------------------------------------------------------------


def _sureal_rejected(result: dict[str, Any]) -> list[str]:
    pairs = zip(result["observers"], result["observer_rejected"], strict=True)
    return sorted(str(o) for o, r in pairs if r)


def _sureal_screening(method: str, dataset: str) -> ReferenceFn:
    model = BT500Model if method == "bt500" else P913124Model

    def build(datasets: Path) -> Reference:
        frame = cases.ratings(datasets, dataset)
        theirs = run_sureal(model, frame)
        _same("raters", sorted(frame["rater"].unique()), theirs["observers"])
        reference = Reference(f"{SUREAL} {model.__name__}")
        if method == "bt500":
            reference.add("stat1", theirs["observer_rejected_1st_stats"], rtol=TIGHT)
            reference.add("stat2", theirs["observer_rejected_2nd_stats"], rtol=TIGHT)
        else:
            reference.add("bias", theirs["observer_bias"], rtol=1e-8, atol=1e-12)
        reference.add("rejected", _sureal_rejected(theirs))
        ours = cases.kept_mos(cases.screening.screen(frame, method=method, variant="sureal").kept)
        _same("kept stimuli", ours.index, sorted(frame["stimulus"].unique()))
        reference.add("kept_mos", theirs["quality_scores"], rtol=1e-8)
        return reference

    return build


for _dataset in cases.RATINGS:
    REFERENCES[f"screening/bt500-sureal-{_dataset}"] = _sureal_screening("bt500", _dataset)
    REFERENCES[f"screening/p913-sureal-{_dataset}"] = _sureal_screening("p913", _dataset)


def _pearson_screening(variant: str, dataset: str) -> ReferenceFn:
    def build(datasets: Path) -> Reference:
        frame = cases.ratings(datasets, dataset)
        matrix = frame.pivot_table(index="stimulus", columns="rater", values="score")
        r = []
        for rater in matrix.columns:
            seen = matrix[rater].notna()
            others = matrix[seen] if variant == "sureal" else matrix[seen].drop(columns=rater)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a constant rater: NaN
                r.append(stats.pearsonr(matrix.loc[seen, rater], others.mean(axis=1)).statistic)
        pcc = np.array(r, dtype=np.float64)
        if variant == "sureal":
            threshold = min(0.7, float(np.mean(pcc) - np.std(pcc)))
            rejected = pcc <= threshold
        else:
            threshold = min(0.7, float(np.nanmean(pcc) - np.nanstd(pcc)))
            rejected = pcc <= threshold
            rejected &= not rejected.all()
        reference = Reference(
            "scipy.stats.pearsonr per rater of the rater's scores and the MOS of the stimuli "
            + ("they rated (all raters)" if variant == "sureal" else "they rated (others only)")
            + "; threshold min(0.7, mean − SD (ddof 0)) and rejection r ≤ threshold by hand"
        )
        reference.add("pcc", pcc, atol=1e-12)
        reference.add("threshold", threshold, atol=1e-12)
        reference.add("rejected", sorted(str(x) for x in matrix.columns[rejected]))
        return reference

    return build


REFERENCES["screening/pcc-sureal-frtv"] = _pearson_screening("sureal", "frtv")
REFERENCES["screening/pcc-sureal-agh"] = _pearson_screening("sureal", "agh")
REFERENCES["screening/pcc-corrected-agh"] = _pearson_screening("corrected", "agh")
REFERENCES["screening/pcc-corrected-nflx"] = _pearson_screening("corrected", "nflx")
NO_REFERENCE.update(
    {
        f"screening/{m}-corrected-{d}": "the corrected variant departs from sureal on purpose"
        for m, d in (("bt500", "agh"), ("bt500", "nflx"), ("p913", "agh"))
    }
)


# -- driver -----------------------------------------------------------------------------------


def installed_versions() -> dict[str, str]:
    versions = {name: importlib.metadata.version(name) for name in RECORDED}
    versions["python"] = platform.python_version()
    return versions


def make_family(family: str, datasets: Path, versions: dict[str, str]) -> tuple[str, list[str]]:
    """The JSON text of one family and the problems found (a case off its reference)."""
    entries: dict[str, Any] = {}
    problems: list[str] = []
    for case in cases.by_family(family):
        if case.key not in REFERENCES and case.key not in NO_REFERENCE:
            raise SystemExit(f"{case.key}: no reference function and no reason for having none")
        computed = case.run(datasets)
        if case.key in REFERENCES:
            reference = REFERENCES[case.key](datasets)
        else:
            reference = Reference(f"none: {NO_REFERENCE[case.key]}")
        entry = {
            "input": case.input,
            "model": {"name": computed.model.name, "version": computed.model.version},
            "perceptlab": {k: check.encode(v) for k, v in computed.columns.items()},
            "reference": {
                "source": reference.source,
                "values": {k: check.encode(v) for k, v in reference.values.items()},
            },
            "tolerance": reference.tolerance,
        }
        problems += check.reference_problems(case.key, entry, computed)
        entries[case.name] = entry
        print(f"  {case.key}: {computed.model.name} {computed.model.version}", file=sys.stderr)
    data = {
        "about": (
            "Golden numbers made by tests/evaluation/golden/make_golden.py (see its docstring); "
            "checked by tests/evaluation/test_golden.py. Do not edit by hand."
        ),
        "family": family,
        "libraries": versions,
        "cases": entries,
    }
    return check.dumps(data), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", type=Path, help="datasets folder (default: PERCEPTLAB_DATASETS, as the tests)"
    )
    parser.add_argument("--family", action="append", choices=cases.FAMILIES)
    parser.add_argument("--out", type=Path, default=HERE, help="directory for the JSON files")
    parser.add_argument(
        "--new-reference-versions",
        action="store_true",
        help="accept reference library versions other than REFERENCE_VERSIONS",
    )
    args = parser.parse_args(argv)
    versions = installed_versions()
    moved = {k: (v, versions[k]) for k, v in REFERENCE_VERSIONS.items() if versions[k] != v}
    if moved and not args.new_reference_versions:
        listed = ", ".join(f"{k} {old} → {new}" for k, (old, new) in moved.items())
        print(
            f"reference libraries differ from those of the golden files ({listed}); "
            "pass --new-reference-versions to regenerate the references with them",
            file=sys.stderr,
        )
        return 2
    try:
        root = args.datasets.resolve() if args.datasets else None
        folders = [dataset_dir(name, root=root) for name in INPUTS]  # each one present
        datasets = folders[0].parent
    except DatasetError as error:
        print(error, file=sys.stderr)
        return 2
    failed = False
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="sureal")
    for family in args.family or cases.FAMILIES:
        print(f"{family}:", file=sys.stderr)
        text, problems = make_family(family, datasets, versions)
        if problems:
            failed = True
            print("\n".join(["NOT written, PerceptLab is off the reference:", *problems]))
            continue
        check.golden_path(family, args.out).write_text(text, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
