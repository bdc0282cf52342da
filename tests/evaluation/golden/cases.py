"""The golden cases: the input of each one and how PerceptLab computes its numbers.

Shared by ``make_golden.py`` (which adds the reference libraries' numbers) and
``tests/evaluation/test_golden.py`` (which must not import the reference libraries: nothing
here imports sureal, choix or bjontegaard). PerceptLab's functions are looked up on their
modules when a case runs (``pairwise.bradley_terry``), so a test can monkeypatch them.

A case returns named columns, float arrays (NaN allowed) or lists of strings (the labels that
say what each number belongs to, or the names of rejected raters), together with the
:class:`ModelId` of the PerceptLab result that produced them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from perceptlab.evaluation.stats import bdrate, mos, pairwise, screening, subject_model
from perceptlab.evaluation.stats.bootstrap import rater_resamples, resample_counts
from perceptlab.evaluation.stats.common import ModelId
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv
from perceptlab.evaluation.stats.ratings_io import read_ratings_csv

FAMILIES = ("mos", "subject_model", "pairwise", "bdrate", "screening")

RATINGS = {
    "nflx": "sureal/NFLX_dataset_public_raw.csv",
    "vqeghd3": "sureal/VQEGHD3_dataset_raw.csv",
    "agh": "sureal/quality_variation_2017_agh_tv.csv",
    "frtv": "sureal/vqeg_frtv_p1_625_line_high.csv",
}
TRIALS = {
    "tmo": "pairwise/pwcmp_tmo_video.csv",
    "lukas": "pairwise/sureal_lukas_sharpening.csv",
    "hific": "pairwise/hific_userstudy.csv",
    "lightfield": "pairwise/pwcmp_lightfield_quality.csv",
}
MUCPED23 = "bdrate/mucped23_elo.csv"
MUCPED23_ANCHOR = "libjpeg-turbo"
MUCPED23_TESTS = ["jpegli", "mozjpeg", "jpegli-420"]
AGH_MOS_STIMULI = 80
"""The MOS case on the AGH study keeps its first 80 stimuli (sorted by name): partial design."""
LADDERS = ("ElFuente1", "Tennis")
"""NFLX contents whose encoding ladders (kbps, MOS) are compared as rate–quality curves."""

# The bjontegaard 1.3.0 README example (x265, PSNR in dB), given inline.
README_ANCHOR = {
    "rate": [9487.76, 4593.6, 2486.44, 1358.24],
    "quality": [40.037, 38.615, 36.845, 34.851],
}
README_TEST = {
    "rate": [9787.8, 4469.0, 2451.52, 1356.24],
    "quality": [40.121, 38.651, 36.97, 34.987],
}

Column = NDArray[np.float64] | list[str]
Input = dict[str, object]


@dataclass(frozen=True)
class Computed:
    """PerceptLab's numbers of one case and the model that produced them."""

    columns: dict[str, Column]
    model: ModelId


@dataclass(frozen=True)
class Case:
    """One golden case: ``input`` describes it (stored in the JSON), ``run`` computes it."""

    family: str
    name: str
    input: Input
    run: Callable[[Path], Computed]

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"


# -- inputs -----------------------------------------------------------------------------------


@functools.cache
def _read_ratings(path: Path) -> pd.DataFrame:
    return read_ratings_csv(path)


def ratings(datasets: Path, name: str) -> pd.DataFrame:
    """The ratings file ``RATINGS[name]`` (cached; callers must not modify the frame)."""
    return _read_ratings(datasets / RATINGS[name])


def agh_subset(datasets: Path) -> pd.DataFrame:
    frame = ratings(datasets, "agh")
    kept = sorted(frame["stimulus"].unique())[:AGH_MOS_STIMULI]
    return frame[frame["stimulus"].isin(kept)].reset_index(drop=True)


LIGHTFIELD_GROUPS = 4
"""The light-field study keeps the trials of its first 4 groups (scenes, sorted by name)."""
TRIAL_SUBSETS = {
    "tmo": "all trials",
    "lukas": "all trials",
    "hific": "all trials; random_choice=1 trials scored 0.5",
    "lightfield": f"the trials of the first {LIGHTFIELD_GROUPS} groups in sorted order",
}


@functools.cache
def _read_trials(path: Path) -> pd.DataFrame:
    return read_pairwise_csv(path)


def trials(datasets: Path, name: str) -> pd.DataFrame:
    """The 2AFC trials ``TRIALS[name]`` (subset :data:`TRIAL_SUBSETS`), undecided HiFiC
    trials scored ½ (cached)."""
    frame = _read_trials(datasets / TRIALS[name])
    if name == "lightfield":
        kept = sorted(frame["group"].unique(), key=str)[:LIGHTFIELD_GROUPS]
        frame = frame[frame["group"].isin(kept)].reset_index(drop=True)
    return frame


def nflx_reference_of(frame: pd.DataFrame) -> dict[str, str]:
    """Each NFLX stimulus → the reference stimulus of its content (condition ``ref``)."""
    reference = frame[frame["condition"] == "ref"].set_index("content")["stimulus"].to_dict()
    return {s: reference[c] for s, c in zip(frame["stimulus"], frame["content"], strict=True)}


def mucped23_curve(datasets: Path, label: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(bpp, Elo) of one encoder of the mucped23 study, in file order."""
    frame = _read_csv(datasets / MUCPED23)
    rows = frame[frame["label"] == label]
    return rows["bpp"].to_numpy(dtype=np.float64), rows["elo"].to_numpy(dtype=np.float64)


@functools.cache
def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@dataclass(frozen=True)
class Ladder:
    """One NFLX content's encodes: kbps per encode and every rater's score (encodes × raters)."""

    kbps: NDArray[np.float64]
    scores: NDArray[np.float64]


def nflx_ladders(datasets: Path) -> dict[str, Ladder]:
    """The encoding ladders of :data:`LADDERS` (references left out), raters in sorted order."""
    frame = ratings(datasets, "nflx")
    frame = frame[frame["condition"] != "ref"]
    wide = frame.pivot(index="stimulus", columns="rater", values="score")
    info = frame.drop_duplicates("stimulus").set_index("stimulus").loc[wide.index]
    kbps = info["condition"].str.split("_").str[-1].astype(float).to_numpy()
    return {
        content: Ladder(kbps[mask], wide.to_numpy(dtype=np.float64)[mask])
        for content in LADDERS
        for mask in [(info["content"] == content).to_numpy()]
    }


def ladder_replicates(
    ladder: Ladder, n_resamples: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(MOS per encode, MOS per encode in each rater resample (encodes × resamples)).

    Rater resamples: ``rater_resamples(26, n_resamples, default_rng(seed))``, the same draw for
    both ladders (column b of both comes from one resample)."""
    n_raters = ladder.scores.shape[1]
    rng = np.random.default_rng(seed)
    counts = resample_counts(rater_resamples(n_raters, n_resamples, rng), n_raters)
    return ladder.scores.mean(axis=1), ladder.scores @ counts.T / n_raters


# -- columns ----------------------------------------------------------------------------------


def _labels(values: Iterable[object]) -> list[str]:
    return [str(v) for v in values]


def _numbers(values: object) -> NDArray[np.float64]:
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


def _table(frame: pd.DataFrame, labels: list[str], numbers: list[str]) -> dict[str, Column]:
    columns: dict[str, Column] = {c: _labels(frame[c]) for c in labels}
    columns.update({c: _numbers(frame[c]) for c in numbers})
    return columns


# -- MOS --------------------------------------------------------------------------------------

MOS_COLUMNS = [
    "mos",
    "sd",
    "ci95_normal_low",
    "ci95_normal_high",
    "ci95_t_low",
    "ci95_t_high",
    "ci95_boot_low",
    "ci95_boot_high",
]


def _mos_case(
    name: str, dataset: str, subset: str, *, n_resamples: int, seed: int, bootstrap: str
) -> Case:
    def run(datasets: Path) -> Computed:
        frame = agh_subset(datasets) if dataset == "agh" else ratings(datasets, dataset)
        result = mos.mos(frame, n_resamples=n_resamples, seed=seed, bootstrap=bootstrap)  # type: ignore[arg-type]
        return Computed(_table(result.table, ["stimulus"], MOS_COLUMNS), result.model)

    call = f"mos(ratings, n_resamples={n_resamples}, seed={seed}, bootstrap={bootstrap!r})"
    return Case("mos", name, {"dataset": RATINGS[dataset], "subset": subset, "call": call}, run)


def _dmos_nflx(datasets: Path) -> Computed:
    frame = ratings(datasets, "nflx")
    result = mos.dmos_acr_hr(
        frame, reference_of=nflx_reference_of(frame), scale_max=5, n_resamples=100, seed=0
    )
    return Computed(_table(result.table, ["stimulus"], MOS_COLUMNS), result.model)


MOS_CASES = [
    _mos_case("mos-nflx", "nflx", "all ratings", n_resamples=100, seed=0, bootstrap="bca"),
    _mos_case(
        "mos-vqeghd3-bca", "vqeghd3", "all ratings", n_resamples=300, seed=5, bootstrap="bca"
    ),
    _mos_case(
        "mos-vqeghd3-percentile",
        "vqeghd3",
        "all ratings",
        n_resamples=300,
        seed=7,
        bootstrap="percentile",
    ),
    _mos_case(
        "mos-agh-partial",
        "agh",
        f"the ratings of the first {AGH_MOS_STIMULI} stimuli in sorted order (partial design)",
        n_resamples=200,
        seed=3,
        bootstrap="bca",
    ),
    Case(
        "mos",
        "dmos-acr-hr-nflx",
        {
            "dataset": RATINGS["nflx"],
            "subset": "all ratings; reference of a stimulus = the 'ref' condition of its content",
            "call": "dmos_acr_hr(ratings, reference_of=..., scale_max=5, n_resamples=100, seed=0)",
        },
        _dmos_nflx,
    ),
]


# -- subject model ----------------------------------------------------------------------------


def _subject_case(variant: str, dataset: str) -> Case:
    def run(datasets: Path) -> Computed:
        frame = ratings(datasets, dataset)
        fit = subject_model.mle_subject_model(frame, variant=variant)  # type: ignore[arg-type]
        scores, raters = fit.scores, fit.raters
        columns: dict[str, Column] = {
            "stimulus": _labels(scores["stimulus"]),
            "quality": _numbers(scores["quality"]),
            "quality_std": _numbers(scores["std"]),
            "rater": _labels(raters["rater"]),
            "bias": _numbers(raters["bias"]),
            "bias_std": _numbers(raters["bias_std"]),
            "inconsistency": _numbers(raters["inconsistency"]),
            "inconsistency_ci95_low": _numbers(raters["inconsistency_ci95_low"]),
            "inconsistency_ci95_high": _numbers(raters["inconsistency_ci95_high"]),
            "log_likelihood_per_rating": _numbers(fit.log_likelihood / len(frame)),
        }
        if variant == "full":
            columns["content"] = _labels(fit.contents["content"])
            columns["content_ambiguity"] = _numbers(fit.contents["ambiguity"])
        return Computed(columns, fit.model)

    short = {"content_oblivious": "mle-co", "p910": "p910", "full": "mle-full"}[variant]
    call = f"mle_subject_model(ratings, variant={variant!r})"
    return Case(
        "subject_model",
        f"{short}-{dataset}",
        {"dataset": RATINGS[dataset], "subset": "all ratings", "call": call},
        run,
    )


SUBJECT_MODEL_CASES = [
    _subject_case("content_oblivious", "nflx"),
    _subject_case("content_oblivious", "vqeghd3"),
    _subject_case("p910", "nflx"),
    _subject_case("p910", "vqeghd3"),
    _subject_case("full", "vqeghd3"),
]


# -- pairwise ---------------------------------------------------------------------------------


def _per_group(values: dict[object, float]) -> NDArray[np.float64]:
    return _numbers([values[g] for g in sorted(values, key=str)])


def _scale_case(link: str, dataset: str, prior: str, ridge: float | None = None) -> Case:
    def run(datasets: Path) -> Computed:
        frame = trials(datasets, dataset)
        if link == "logistic":
            bt = pairwise.bradley_terry(frame, prior=prior, ridge=ridge)  # type: ignore[arg-type]
            numbers, model, objective = ["theta", "se", "elo"], bt.model, bt.log_likelihood
            table = bt.scores
        else:
            th = pairwise.thurstone_case_v(frame, prior=prior, ridge=ridge)  # type: ignore[arg-type]
            numbers, model, objective = ["v", "se", "jod"], th.model, th.log_likelihood
            table = th.scores
        columns = _table(table, ["group", "condition"], numbers)
        columns["objective"] = _per_group(objective)
        return Computed(columns, model)

    function = "bradley_terry" if link == "logistic" else "thurstone_case_v"
    model = "bt" if link == "logistic" else "thurstone"
    options = f"prior={prior!r}" + (f", ridge={ridge!r}" if ridge is not None else "")
    return Case(
        "pairwise",
        f"{model}-{prior}-{dataset}",
        {
            "dataset": TRIALS[dataset],
            "subset": TRIAL_SUBSETS[dataset],
            "call": f"{function}(trials, {options})",
        },
        run,
    )


def _significance_case(dataset: str) -> Case:
    def run(datasets: Path) -> Computed:
        table = pairwise.pairwise_significance(trials(datasets, dataset))
        columns = _table(
            table, ["group", "a", "b"], ["wins_a", "wins_b", "ties", "p_value", "p_adjusted"]
        )
        return Computed(columns, table.attrs["model"])

    return Case(
        "pairwise",
        f"significance-{dataset}",
        {
            "dataset": TRIALS[dataset],
            "subset": TRIAL_SUBSETS[dataset],
            "call": "pairwise_significance(trials, correction='holm', alpha=0.05)",
        },
        run,
    )


BOOTSTRAP_RESAMPLES = 20
BOOTSTRAP_SEED = 11


def _bootstrap_hific(datasets: Path) -> Computed:
    boot = pairwise.rater_bootstrap(
        trials(datasets, "hific"),
        n_resamples=BOOTSTRAP_RESAMPLES,
        seed=BOOTSTRAP_SEED,
        thurstone=False,
        prior="none",
    )
    numbers = ["bt_theta_low", "bt_theta_high", "bt_elo_low", "bt_elo_high"]
    columns = _table(boot.intervals, ["group", "condition"], numbers)
    columns["dropped"] = _per_group({k: float(v) for k, v in boot.dropped.items()})
    return Computed(columns, boot.model)


def _online_elo_tmo(datasets: Path) -> Computed:
    result = pairwise.online_elo(trials(datasets, "tmo"), n_orderings=500, seed=0)
    numbers = ["n", "elo_mean", "elo_sd", "elo_p2_5", "elo_p97_5", "elo_file_order"]
    return Computed(_table(result.ratings, ["group", "condition"], numbers), result.model)


PAIRWISE_CASES = [
    *(_scale_case("logistic", d, "none") for d in ("tmo", "lukas", "hific", "lightfield")),
    _scale_case("logistic", "tmo", "ridge", 0.1),
    _scale_case("logistic", "hific", "ridge", 0.5),
    *(_scale_case("probit", d, "none") for d in ("tmo", "lukas", "hific")),
    *(_significance_case(d) for d in ("tmo", "lukas", "hific")),
    Case(
        "pairwise",
        "bootstrap-bt-none-hific",
        {
            "dataset": TRIALS["hific"],
            "subset": TRIAL_SUBSETS["hific"],
            "call": f"rater_bootstrap(trials, n_resamples={BOOTSTRAP_RESAMPLES}, "
            f"seed={BOOTSTRAP_SEED}, thurstone=False, prior='none')",
        },
        _bootstrap_hific,
    ),
    # no Python reference (pwcmp is MATLAB; the CLIC Elo has no package): frozen outputs only
    _scale_case("logistic", "hific", "gaussian"),
    _scale_case("logistic", "tmo", "gaussian"),
    _scale_case("probit", "tmo", "gaussian"),
    Case(
        "pairwise",
        "online-elo-tmo",
        {
            "dataset": TRIALS["tmo"],
            "subset": TRIAL_SUBSETS["tmo"],
            "call": "online_elo(trials, n_orderings=500, seed=0)",
        },
        _online_elo_tmo,
    ),
]


# -- BD-rate ----------------------------------------------------------------------------------

BD_FUNCTIONS = {"rate": "bd_rate", "quality": "bd_quality"}


def _bd(kind: str) -> Callable[..., bdrate.BDResult]:
    return bdrate.bd_rate if kind == "rate" else bdrate.bd_quality  # type: ignore[no-any-return]


def _readme_case(kind: str, method: str) -> Case:
    def run(datasets: Path) -> Computed:
        anchor, test = README_ANCHOR, README_TEST
        result = _bd(kind)(
            anchor["rate"], anchor["quality"], test["rate"], test["quality"], method=method
        )
        return Computed(
            {"value": _numbers(result.value), "overlap": _numbers(result.overlap)}, result.model
        )

    return Case(
        "bdrate",
        f"readme-{kind}-{method}",
        {
            "dataset": "inline: the bjontegaard 1.3.0 README example (x265, PSNR dB)",
            "subset": {"anchor": README_ANCHOR, "test": README_TEST},
            "call": f"{BD_FUNCTIONS[kind]}(anchor rate, quality, test rate, quality, "
            f"method={method!r})",
        },
        run,
    )


def _mucped23_case(kind: str, method: str) -> Case:
    def run(datasets: Path) -> Computed:
        anchor = mucped23_curve(datasets, MUCPED23_ANCHOR)
        results = [
            _bd(kind)(*anchor, *mucped23_curve(datasets, codec), method=method)
            for codec in MUCPED23_TESTS
        ]
        columns: dict[str, Column] = {
            "codec": list(MUCPED23_TESTS),
            "value": _numbers([r.value for r in results]),
            "overlap": _numbers([r.overlap for r in results]),
        }
        return Computed(columns, results[0].model)

    return Case(
        "bdrate",
        f"mucped23-{kind}-{method}",
        {
            "dataset": MUCPED23,
            "subset": f"rate = bpp, quality = elo; anchor label {MUCPED23_ANCHOR!r}, "
            f"tests {', '.join(MUCPED23_TESTS)}",
            "call": f"{BD_FUNCTIONS[kind]}(anchor bpp, elo, test bpp, elo, method={method!r})",
        },
        run,
    )


LADDER_RESAMPLES = 100
LADDER_SEED = 11
INTERVAL_RESAMPLES = 300
INTERVAL_SEED = 20240601
LADDER_SUBSET = (
    "encodes (condition != 'ref') of contents ElFuente1 (anchor) and Tennis (test); rate = the "
    "kbps in the condition name, quality = MOS over the 26 raters; replicates: MOS in rater "
    "resamples rater_resamples(26, B, numpy.random.default_rng(seed)), one draw for both"
)


def _ladder_replicates(datasets: Path) -> Computed:
    ladders = nflx_ladders(datasets)
    (a, t) = (ladders[c] for c in LADDERS)
    mos_a, qa = ladder_replicates(a, LADDER_RESAMPLES, LADDER_SEED)
    mos_t, qt = ladder_replicates(t, LADDER_RESAMPLES, LADDER_SEED)
    point = bdrate.bd_rate(a.kbps, mos_a, t.kbps, mos_t, method="pchip")
    values = bdrate.bd_rate_replicates(a.kbps, qa, t.kbps, qt, method="pchip")
    return Computed({"value": _numbers(point.value), "replicates": values}, point.model)


def _ladder_interval(datasets: Path) -> Computed:
    ladders = nflx_ladders(datasets)
    (a, t) = (ladders[c] for c in LADDERS)
    _, qa = ladder_replicates(a, INTERVAL_RESAMPLES, INTERVAL_SEED)
    _, qt = ladder_replicates(t, INTERVAL_RESAMPLES, INTERVAL_SEED)
    result = bdrate.bd_rate_interval(a.kbps, qa, t.kbps, qt, monotone="isotonic")
    columns: dict[str, Column] = {
        "low": _numbers(result.low),
        "high": _numbers(result.high),
        "n_valid": _numbers(result.n_valid),
    }
    return Computed(columns, result.model)


BDRATE_CASES = [
    *(_readme_case(k, m) for k in ("rate", "quality") for m in bdrate.METHODS),
    *(_mucped23_case(k, m) for k in ("rate", "quality") for m in bdrate.METHODS),
    Case(
        "bdrate",
        "nflx-ladders-replicates-pchip",
        {
            "dataset": RATINGS["nflx"],
            "subset": LADDER_SUBSET + f"; B = {LADDER_RESAMPLES}, seed = {LADDER_SEED}",
            "call": "bd_rate(kbps, MOS, ...) and bd_rate_replicates(kbps, replicates, ..., "
            "method='pchip')",
        },
        _ladder_replicates,
    ),
    Case(
        "bdrate",
        "nflx-ladders-isotonic-interval",
        {
            "dataset": RATINGS["nflx"],
            "subset": LADDER_SUBSET + f"; B = {INTERVAL_RESAMPLES}, seed = {INTERVAL_SEED}",
            "call": "bd_rate_interval(kbps, replicates, ..., method='pchip', monotone='isotonic')",
        },
        _ladder_interval,
    ),
]


# -- screening --------------------------------------------------------------------------------


def kept_mos(kept: pd.DataFrame) -> pd.Series:
    """Mean score per stimulus (sorted) of the ratings a screening kept."""
    return kept.groupby("stimulus", sort=True)["score"].mean()


def _screening_case(method: str, variant: str, dataset: str) -> Case:
    def run(datasets: Path) -> Computed:
        frame = ratings(datasets, dataset)
        if method == "pcc":
            result = screening.bt500_pcc_screening(frame, variant=variant)  # type: ignore[arg-type]
            columns = _table(result.table, ["rater"], ["n_ratings", "pcc"])
            columns["threshold"] = _numbers(result.table["threshold"].iloc[0])
        else:
            screen = screening.bt500_screening if method == "bt500" else screening.p913_screening
            result = screen(frame, variant=variant)  # type: ignore[arg-type]
            numbers = ["n_ratings", "p", "q", "stat1", "stat2"]
            columns = _table(result.table, ["rater"], numbers)
            if method == "p913":
                columns["bias"] = _numbers(result.table["bias"])
        columns["rejected"] = result.rejected()
        if variant == "sureal" and method != "pcc":  # sureal reports this MOS
            columns["kept_mos"] = _numbers(kept_mos(result.kept))
        return Computed(columns, result.model)

    function = {"bt500": "bt500_screening", "p913": "p913_screening", "pcc": "bt500_pcc_screening"}
    subset = "all ratings"
    if variant == "sureal" and method != "pcc":
        subset += "; kept_mos = mean score per stimulus (sorted) of the kept ratings"
    return Case(
        "screening",
        f"{method}-{variant}-{dataset}",
        {
            "dataset": RATINGS[dataset],
            "subset": subset,
            "call": f"{function[method]}(ratings, variant={variant!r})",
        },
        run,
    )


SCREENING_CASES = [
    *(_screening_case("bt500", "sureal", d) for d in RATINGS),
    *(_screening_case("p913", "sureal", d) for d in RATINGS),
    _screening_case("pcc", "sureal", "frtv"),
    _screening_case("pcc", "sureal", "agh"),
    _screening_case("pcc", "corrected", "agh"),
    _screening_case("pcc", "corrected", "nflx"),
    # corrected BT.500 / P.913 variants: no reference (they depart from sureal on purpose)
    _screening_case("bt500", "corrected", "agh"),
    _screening_case("bt500", "corrected", "nflx"),
    _screening_case("p913", "corrected", "agh"),
]


CASES: list[Case] = [
    *MOS_CASES,
    *SUBJECT_MODEL_CASES,
    *PAIRWISE_CASES,
    *BDRATE_CASES,
    *SCREENING_CASES,
]


def by_family(family: str) -> list[Case]:
    return [case for case in CASES if case.family == family]


CASES_BY_KEY: dict[str, Case] = {case.key: case for case in CASES}
