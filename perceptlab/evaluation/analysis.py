"""One study's full analysis, from its three flat frames to every number a report shows.

Pure (no Django): the live report, the exported bundle and ``manage.py score`` all run this
same function on the same frames (``frames.py`` documents them), so a bundle reopened
elsewhere gives the same numbers.

Which judgments count: test trials of sessions that were not screened out and are not
admin previews. Practice, gold and repeat trials are quality control, not data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perceptlab.evaluation import exclusion
from perceptlab.evaluation.stats import agreement as agreement_stats
from perceptlab.evaluation.stats import bdrate, lapse, mos, pairwise, screening
from perceptlab.evaluation.stats.common import ModelId, StatsInputError

PAIRWISE = "2afc"
SCALE_LABELS: dict[str, str] = {
    "gaussian": "Bradley–Terry with pwcmp's distance prior",
    "ridge": "Bradley–Terry with a ridge prior",
    "none": "Bradley–Terry MLE",
}


@dataclass(frozen=True)
class AnalysisConfig:
    """Everything besides the data that changes a number; stored in a bundle's manifest."""

    method: str
    scale_min: float = 1.0
    scale_max: float = 5.0
    hidden_reference: bool = False
    confidence: float = 0.95
    n_resamples: int = 2000
    n_orderings: int = 1000
    seed: int = 0
    screening: str = ""  # "", "bt500" or "p913"
    screening_variant: str = "corrected"
    anchor: str = ""  # codec the BD-rates are relative to ("" = the first codec)
    bd_method: str = "pchip"
    # Human curves are noisy: a bootstrap replicate may dip; pool-adjacent-violators makes
    # each curve monotone before integrating (it leaves a monotone curve as it is).
    bd_monotone: str = "isotonic"
    bootstrap: str = "bca"
    # 2AFC: the prior of the Bradley–Terry and Thurstone scales (stats.pairwise.PRIORS) and its
    # λ when it is "ridge". pwcmp's distance prior keeps a condition that never lost (or never
    # won) on the scale; "none" (the plain MLE) refuses such a study.
    pairwise_prior: pairwise.Prior = pairwise.DEFAULT_PRIOR
    pairwise_ridge: float | None = None
    # The exclusion policy (evaluation/exclusion.py): judgments carrying these flags, and
    # raters above these gold-failure and repeat-inconsistency shares, are left out.
    exclude_flags: tuple[str, ...] = exclusion.DEFAULT_FLAGS
    max_gold_failure: float | None = None
    max_inconsistency: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_flags", tuple(self.exclude_flags))  # from JSON
        self.policy()  # a bad policy is refused here, naming the valid values

    def policy(self) -> exclusion.ExclusionPolicy:
        return exclusion.ExclusionPolicy(
            flags=self.exclude_flags,
            max_gold_failure=self.max_gold_failure,
            max_inconsistency=self.max_inconsistency,
        )

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "exclude_flags": list(self.exclude_flags)}


@dataclass
class Analysis:
    config: AnalysisConfig
    quality_label: str
    scores: pd.DataFrame
    curves: pd.DataFrame
    image_curves: pd.DataFrame
    bd_table: pd.DataFrame
    agreement: pd.DataFrame
    screening: pd.DataFrame
    objective: pd.DataFrame
    unavailable_metrics: dict[str, str]
    win_matrix: pd.DataFrame | None
    models: list[ModelId] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # what the exclusion policy removed (exclusion.summary_table), and for 2AFC each rater's
    # lapse (random-answer) probability with its interval (stats.lapse)
    exclusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    lapse: pd.DataFrame = field(default_factory=pd.DataFrame)
    # 2AFC: each pair of conditions, binomial test with Holm's correction
    significance: pd.DataFrame = field(default_factory=pd.DataFrame)


def analyse(
    *,
    stimuli: pd.DataFrame,
    judgments: pd.DataFrame,
    metrics: pd.DataFrame,
    config: AnalysisConfig,
) -> Analysis:
    excluded = exclusion.apply_policy(judgments, config.policy())
    counted = excluded.kept
    objective, unavailable = objective_frame(stimuli, metrics)
    if config.method == PAIRWISE:
        result = _analyse_pairwise(stimuli, counted, metrics, config)
        result.lapse = _lapse_table(judgments, counted, stimuli, config)
        if len(result.lapse):
            result.models.append(lapse.LAPSE_MODEL)
    else:
        result = _analyse_ratings(stimuli, counted, metrics, config)
    result.objective, result.unavailable_metrics = objective, unavailable
    result.exclusion = exclusion.summary_table(excluded)
    result.counts = {
        "raters": int(counted["rater"].nunique()) if len(counted) else 0,
        "judgments": len(counted),
        "counted": excluded.counted,
        "excluded": excluded.counted - len(counted),
        "images": int(stimuli["image"].nunique()) if len(stimuli) else 0,
        "codecs": int(stimuli.loc[stimuli["role"] == "condition", "codec"].nunique()),
    }
    return result


def counted_judgments(
    judgments: pd.DataFrame, policy: exclusion.ExclusionPolicy | None = None
) -> pd.DataFrame:
    """The judgments an analysis counts: test trials of real sessions, less what
    ``policy`` excludes (by default, raters screened out while rating only)."""
    chosen = policy if policy is not None else exclusion.ExclusionPolicy(flags=())
    return exclusion.apply_policy(judgments, chosen).kept


def _lapse_table(
    judgments: pd.DataFrame, counted: pd.DataFrame, stimuli: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """Each rater's lapse probability q (Google's elo_rater_model; stats.lapse) from their
    counted pairs, with the gold trials inside the likelihood; empty (with the reason
    logged in the table's attrs) when the pairs cannot be scaled."""
    trials = trials_frame(counted, stimuli, level="stimulus")
    if trials.empty:
        return pd.DataFrame()
    golds = judgments.loc[
        (judgments["trial_kind"] == "gold")
        & judgments["rater"].isin(set(trials["rater"]))
        & judgments["gold_passed"].notna()
    ]
    gold_frame = pd.DataFrame(
        {"rater": golds["rater"].astype(str), "correct": golds["gold_passed"].astype(float)}
    )
    try:
        golds_given = gold_frame if len(gold_frame) else None
        fit = lapse.lapse_fit(trials, golds=golds_given, confidence=config.confidence)
    except StatsInputError as error:
        table = pd.DataFrame()
        table.attrs["problem"] = str(error)
        return table
    return fit.raters


# --- ACR / DCR -------------------------------------------------------------------------


def ratings_frame(counted: pd.DataFrame, stimuli: pd.DataFrame) -> pd.DataFrame:
    """Long ratings (``rater, stimulus, score, content, condition``) of the counted trials."""
    info = stimuli.set_index("stimulus")
    frame = pd.DataFrame(
        {
            "rater": counted["rater"].astype(str),
            "stimulus": counted["a"].astype(str),
            "score": pd.to_numeric(counted["score"], errors="coerce"),
        }
    ).dropna(subset=["score"])
    frame["content"] = frame["stimulus"].map(info["image"])
    frame["condition"] = frame["stimulus"].map(info["condition"])
    return frame.reset_index(drop=True)


def _analyse_ratings(
    stimuli: pd.DataFrame, counted: pd.DataFrame, metrics: pd.DataFrame, config: AnalysisConfig
) -> Analysis:
    ratings = ratings_frame(counted, stimuli)
    screened, screening_table, models = _screen(ratings, config)
    options = {
        "confidence": config.confidence,
        "n_resamples": config.n_resamples,
        "seed": config.seed,
        "bootstrap": config.bootstrap,
    }
    if config.method == "dcr":
        label = "DMOS (DCR)"
        per_stimulus = mos.dmos_dcr(screened, by="stimulus", **options)  # type: ignore[arg-type]
        per_condition = mos.dmos_dcr(screened, by="condition", **options)  # type: ignore[arg-type]
    else:
        label = "MOS (ACR)"
        per_stimulus = mos.mos(screened, by="stimulus", **options)  # type: ignore[arg-type]
        per_condition = mos.mos(screened, by="condition", **options)  # type: ignore[arg-type]
    models += [per_stimulus.model, per_condition.model]
    scores = _rating_scores(per_stimulus, per_condition, stimuli)
    if config.method == "acr" and config.hidden_reference:
        dmos_table, dmos_model = _acr_hr_dmos(screened, stimuli, options, config)
        scores = pd.concat([scores, dmos_table], ignore_index=True)
        models.append(dmos_model)
    curves, replicates = _rating_curves(per_condition, stimuli)
    image_curves = _rating_image_curves(per_stimulus, stimuli)
    bd_table, bd_models = bd_rate_table(curves, replicates, config, measure=label)
    agreement = _rating_agreement(per_stimulus.table, metrics)
    return Analysis(
        config=config,
        quality_label=label,
        scores=scores,
        curves=curves,
        image_curves=image_curves,
        bd_table=bd_table,
        agreement=agreement,
        screening=screening_table,
        objective=pd.DataFrame(),
        unavailable_metrics={},
        win_matrix=None,
        models=models + bd_models,
    )


def _screen(
    ratings: pd.DataFrame, config: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame, list[ModelId]]:
    if not config.screening:
        return ratings, pd.DataFrame(columns=["rater", "rejected", "reason"]), []
    result = screening.screen(
        ratings,
        method=config.screening,
        variant=config.screening_variant,  # type: ignore[arg-type]
    )
    table = result.table.copy()
    table["reason"] = np.where(table["rejected"], f"{config.screening} ({result.variant})", "")
    return result.kept, table, [result.model]


def _stimulus_columns(table: pd.DataFrame, key: str, stimuli: pd.DataFrame) -> pd.DataFrame:
    info = stimuli.drop_duplicates(key).set_index(key)
    out = table.copy()
    for column in ("image", "codec", "target_bpp"):
        if column in info.columns and column != key:
            out[column] = out[key].map(info[column])
    out["bpp"] = out[key].map(stimuli.groupby(key)["bpp"].mean())
    return out


def _rating_scores(
    per_stimulus: mos.MosResult, per_condition: mos.MosResult, stimuli: pd.DataFrame
) -> pd.DataFrame:
    frames = []
    for level, result in (("stimulus", per_stimulus), ("condition", per_condition)):
        key = level
        table = _stimulus_columns(result.table, key, stimuli).rename(columns={key: "key"})
        table.insert(0, "level", level)
        table.insert(1, "measure", result.model.name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _acr_hr_dmos(
    ratings: pd.DataFrame, stimuli: pd.DataFrame, options: dict[str, object], config: AnalysisConfig
) -> tuple[pd.DataFrame, ModelId]:
    """ACR with hidden reference: each condition stimulus against its image's reference."""
    refs = stimuli.loc[stimuli["role"] == "hidden"].set_index("image")["stimulus"]
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    reference_of = dict(zip(conditions["stimulus"], conditions["image"].map(refs), strict=True))
    result = mos.dmos_acr_hr(
        ratings,
        reference_of=reference_of,
        scale_max=config.scale_max,
        **options,  # type: ignore[arg-type]
    )
    table = _stimulus_columns(result.table, "stimulus", stimuli).rename(columns={"stimulus": "key"})
    table.insert(0, "level", "stimulus")
    table.insert(1, "measure", result.model.name)
    return table, result.model


def _rating_curves(
    per_condition: mos.MosResult, stimuli: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    table = per_condition.table
    ci = _ci_columns(table)
    info = condition_info(stimuli)
    keep = table["condition"].isin(info.index).to_numpy()
    rows = table.loc[keep]
    curves = pd.DataFrame(
        {
            "codec": rows["condition"].map(info["codec"]).to_numpy(),
            "target": rows["condition"].map(info["target"]).to_numpy(),
            "bpp": rows["condition"].map(info["bpp"]).to_numpy(),
            "quality": rows["mos"].to_numpy(),
            "low": rows[ci[0]].to_numpy(),
            "high": rows[ci[1]].to_numpy(),
        }
    )
    order = np.lexsort((curves["bpp"].to_numpy(), curves["codec"].to_numpy()))
    return curves.iloc[order].reset_index(drop=True), per_condition.replicates[keep][order]


def condition_info(stimuli: pd.DataFrame) -> pd.DataFrame:
    """Per condition (``codec@target``): its codec, target and mean achieved bpp over images."""
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    return conditions.groupby("condition").agg(
        codec=("codec", "first"), target=("target_bpp", "first"), bpp=("bpp", "mean")
    )


def _ci_columns(table: pd.DataFrame) -> tuple[str, str]:
    low = next(c for c in table.columns if c.startswith("ci") and c.endswith("_boot_low"))
    return low, low.replace("_low", "_high")


def _rating_image_curves(per_stimulus: mos.MosResult, stimuli: pd.DataFrame) -> pd.DataFrame:
    table = per_stimulus.table
    low, high = _ci_columns(table)
    info = stimuli.loc[stimuli["role"] == "condition"].set_index("stimulus")
    rows = table.loc[table["stimulus"].isin(info.index)]
    keys = rows["stimulus"]
    return pd.DataFrame(
        {
            "image": keys.map(info["image"]).to_numpy(),
            "codec": keys.map(info["codec"]).to_numpy(),
            "target": keys.map(info["target_bpp"]).to_numpy(),
            "bpp": keys.map(info["bpp"]).to_numpy(),
            "quality": rows["mos"].to_numpy(),
            "low": rows[low].to_numpy(),
            "high": rows[high].to_numpy(),
        }
    ).sort_values(["image", "codec", "bpp"], ignore_index=True)


def _rating_agreement(per_stimulus: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    wide = metric_table(metrics, region="crop")
    if wide.empty:
        return pd.DataFrame()
    joined = per_stimulus.set_index("stimulus")[["mos"]].join(wide, how="inner")
    if len(joined) < 4:
        return pd.DataFrame()
    return agreement_stats.agreement_table(joined, metrics=list(wide.columns), mos="mos")


# --- 2AFC -----------------------------------------------------------------------------


def trials_frame(counted: pd.DataFrame, stimuli: pd.DataFrame, *, level: str) -> pd.DataFrame:
    """Pairwise trials (``rater, a, b, outcome, group``); ``level`` is ``condition`` (a and b
    are codec@target, pooled over images) or ``stimulus`` (a and b are the stimuli)."""
    pairs = counted.loc[counted["b"].fillna("").astype(str) != ""]
    frame = pd.DataFrame(
        {
            "rater": pairs["rater"].astype(str),
            "a": pairs["a"].astype(str),
            "b": pairs["b"].astype(str),
            "outcome": pd.to_numeric(pairs["outcome"], errors="coerce"),
            "group": pairs["image"].astype(str),
        }
    ).dropna(subset=["outcome"])
    if level == "condition":
        condition = stimuli.set_index("stimulus")["condition"]
        frame["a"] = frame["a"].map(condition)
        frame["b"] = frame["b"].map(condition)
    return frame.reset_index(drop=True)


def _analyse_pairwise(
    stimuli: pd.DataFrame, counted: pd.DataFrame, metrics: pd.DataFrame, config: AnalysisConfig
) -> Analysis:
    trials = trials_frame(counted, stimuli, level="condition")
    pooled = trials.drop(columns=["group"])
    boot = pairwise.rater_bootstrap(
        pooled,
        n_resamples=config.n_resamples,
        seed=config.seed,
        thurstone=False,
        prior=config.pairwise_prior,
        ridge=config.pairwise_ridge,
    )
    scaled = pairwise.scale_pairwise(
        pooled,
        n_orderings=config.n_orderings,
        n_resamples=config.n_resamples,
        seed=config.seed,
        prior=config.pairwise_prior,
        ridge=config.pairwise_ridge,
        bootstrap=boot,
    )
    per_image = _per_image_scaling(trials, config)
    curves, replicates = _pairwise_curves(scaled, boot, stimuli)
    bd_table, bd_models = bd_rate_table(curves, replicates, config, measure="Elo")
    scores = pd.concat(
        [scaled.assign(level="condition"), per_image.assign(level="image")], ignore_index=True
    )
    info = stimuli.drop_duplicates("condition").set_index("condition")
    scores["codec"] = scores["condition"].map(info["codec"])
    scores["target_bpp"] = scores["condition"].map(info["target_bpp"])
    scores["bpp"] = scores["condition"].map(stimuli.groupby("condition")["bpp"].mean())
    stimulus_trials = trials_frame(counted, stimuli, level="stimulus")
    return Analysis(
        config=config,
        quality_label=f"Elo ({SCALE_LABELS[config.pairwise_prior]}, rater bootstrap CI)",
        scores=scores,
        curves=curves,
        image_curves=_pairwise_image_curves(per_image, stimuli),
        bd_table=bd_table,
        agreement=_pairwise_agreement(stimulus_trials, metrics),
        screening=pd.DataFrame(columns=["rater", "rejected", "reason"]),
        objective=pd.DataFrame(),
        unavailable_metrics={},
        win_matrix=pairwise.win_matrix(pooled),
        significance=_significance(pooled),
        models=[boot.model, *bd_models, pairwise.SIGNIFICANCE_MODEL],
    )


def _significance(pooled: pd.DataFrame) -> pd.DataFrame:
    """Every compared pair of conditions (pooled over images): exact binomial test of no
    preference, Holm-corrected over the pairs (stats.pairwise.pairwise_significance)."""
    table = pairwise.pairwise_significance(pooled, correction="holm")
    return table.drop(columns=["group"]).sort_values("p_adjusted").reset_index(drop=True)


def _per_image_scaling(trials: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """Scale each image's conditions on their own, with the study's prior; an image whose
    comparisons determine no scale (under the prior "none": an item that never wins or never
    loses; under any: conditions never compared with each other) gets NaN and the reason."""
    frames = []
    for image, group in trials.groupby("group", sort=True):
        try:
            table = pairwise.scale_pairwise(
                group,
                n_orderings=config.n_orderings,
                n_resamples=config.n_resamples,
                seed=config.seed,
                prior=config.pairwise_prior,
                ridge=config.pairwise_ridge,
            )
            table["note"] = ""
        except StatsInputError as error:
            items = sorted(set(group["a"]) | set(group["b"]))
            table = pd.DataFrame({"condition": items, "n": np.nan, "note": str(error)})
        table["group"] = image
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pairwise_curves(
    scaled: pd.DataFrame, boot: pairwise.BootstrapResult, stimuli: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    info = condition_info(stimuli)
    rows = scaled.loc[scaled["condition"].isin(info.index)]
    curves = pd.DataFrame(
        {
            "codec": rows["condition"].map(info["codec"]).to_numpy(),
            "target": rows["condition"].map(info["target"]).to_numpy(),
            "bpp": rows["condition"].map(info["bpp"]).to_numpy(),
            "quality": rows["bt_elo"].to_numpy(),
            "low": rows["ci95_low"].to_numpy(),
            "high": rows["ci95_high"].to_numpy(),
            "condition": rows["condition"].to_numpy(),
        }
    )
    order = np.lexsort((curves["bpp"].to_numpy(), curves["codec"].to_numpy()))
    curves = curves.iloc[order].reset_index(drop=True)
    replicates = boot.elo_replicates.reindex(curves["condition"]).to_numpy()
    return curves.drop(columns=["condition"]), replicates


def _pairwise_image_curves(per_image: pd.DataFrame, stimuli: pd.DataFrame) -> pd.DataFrame:
    if per_image.empty:
        return pd.DataFrame()
    info = stimuli.loc[stimuli["role"] == "condition"]
    keyed = info.set_index(["image", "condition"])
    index = pd.MultiIndex.from_arrays([per_image["group"], per_image["condition"]])
    known = index.isin(keyed.index)
    rows, index = per_image.loc[known], index[known]
    return pd.DataFrame(
        {
            "image": rows["group"].to_numpy(),
            "codec": keyed.loc[index, "codec"].to_numpy(),
            "target": keyed.loc[index, "target_bpp"].to_numpy(),
            "bpp": keyed.loc[index, "bpp"].to_numpy(),
            "quality": rows.get("bt_elo", pd.Series(np.nan, index=rows.index)).to_numpy(),
            "low": rows.get("ci95_low", pd.Series(np.nan, index=rows.index)).to_numpy(),
            "high": rows.get("ci95_high", pd.Series(np.nan, index=rows.index)).to_numpy(),
        }
    ).sort_values(["image", "codec", "bpp"], ignore_index=True)


def _pairwise_agreement(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    wide = metric_table(metrics, region="crop")
    if wide.empty or trials.empty:
        return pd.DataFrame()
    return agreement_stats.twoafc_table(trials, wide, higher_is_better=higher_is_better())


# --- shared ---------------------------------------------------------------------------


def higher_is_better() -> dict[str, bool]:
    """Direction of each metric (from the metric registry; DISTS, LPIPS, FLIP: lower)."""
    from perceptlab.evaluation.metrics import METRICS

    return {slug: spec.higher_is_better for slug, spec in METRICS.items()}


def metric_table(metrics: pd.DataFrame, *, region: str) -> pd.DataFrame:
    """Stimuli × metrics values of one region (unavailable values are NaN)."""
    chosen = metrics.loc[(metrics["region"] == region)]
    if chosen.empty:
        return pd.DataFrame()
    values = pd.to_numeric(chosen["value"], errors="coerce")
    wide = chosen.assign(value=values).pivot_table(
        index="stimulus", columns="metric", values="value", aggfunc="first", dropna=False
    )
    return wide.dropna(axis=1, how="all")


def objective_frame(
    stimuli: pd.DataFrame, metrics: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long objective values with each stimulus' image, codec, target and bpp."""
    unavailable = (
        metrics.loc[metrics["unavailable"].fillna("").astype(str) != ""]
        .drop_duplicates("metric")
        .set_index("metric")["unavailable"]
        .astype(str)
        .to_dict()
    )
    measured = metrics.loc[pd.to_numeric(metrics["value"], errors="coerce").notna()]
    info = stimuli.loc[stimuli["role"] == "condition"].set_index("stimulus")
    measured = measured.loc[measured["stimulus"].isin(info.index)]
    keys = measured["stimulus"]
    frame = pd.DataFrame(
        {
            "image": keys.map(info["image"]).to_numpy(),
            "codec": keys.map(info["codec"]).to_numpy(),
            "target": keys.map(info["target_bpp"]).to_numpy(),
            "bpp": keys.map(info["bpp"]).to_numpy(),
            "metric": measured["metric"].to_numpy(),
            "value": pd.to_numeric(measured["value"]).to_numpy(),
            "region": measured["region"].to_numpy(),
        }
    )
    measured_metrics = set(frame["metric"])
    return frame, {str(k): str(v) for k, v in unavailable.items() if k not in measured_metrics}


def bd_rate_table(
    curves: pd.DataFrame, replicates: np.ndarray, config: AnalysisConfig, *, measure: str
) -> tuple[pd.DataFrame, list[ModelId]]:
    """BD-rate and BD-quality of every codec against the anchor, with a bootstrap interval."""
    columns = [
        "codec",
        "measure",
        "bd_rate",
        "bd_rate_low",
        "bd_rate_high",
        "bd_quality",
        "rate_ratio",
        "rate_ratio_low",
        "rate_ratio_high",
        "overlap",
        "warning",
    ]
    codecs = sorted(curves["codec"].unique()) if len(curves) else []
    anchor = config.anchor or (codecs[0] if codecs else "")
    if anchor not in codecs or len(codecs) < 2:
        return pd.DataFrame(columns=columns), []
    rows: list[dict[str, object]] = []
    models: list[ModelId] = []
    a = curves["codec"].to_numpy() == anchor
    for codec in codecs:
        if codec == anchor:
            continue
        t = curves["codec"].to_numpy() == codec
        rows.append(_bd_row(curves, replicates, a, t, codec, config, measure, models))
    return pd.DataFrame(rows, columns=columns), models[:1]


def _bd_row(
    curves: pd.DataFrame,
    replicates: np.ndarray,
    a: np.ndarray,
    t: np.ndarray,
    codec: str,
    config: AnalysisConfig,
    measure: str,
    models: list[ModelId],
) -> dict[str, object]:
    rate, quality = curves["bpp"].to_numpy(float), curves["quality"].to_numpy(float)
    row: dict[str, object] = {"codec": codec, "measure": measure}
    options = {"method": config.bd_method, "monotone": config.bd_monotone}
    try:
        rate_result = bdrate.bd_rate(rate[a], quality[a], rate[t], quality[t], **options)  # type: ignore[arg-type]
        quality_result = bdrate.bd_quality(rate[a], quality[a], rate[t], quality[t], **options)  # type: ignore[arg-type]
        interval = bdrate.bd_rate_interval(
            rate[a],
            replicates[a],
            rate[t],
            replicates[t],
            confidence=config.confidence,
            **options,  # type: ignore[arg-type]
        )
    except StatsInputError as error:
        row.update(
            bd_rate=np.nan,
            bd_rate_low=np.nan,
            bd_rate_high=np.nan,
            bd_quality=np.nan,
            rate_ratio=np.nan,
            rate_ratio_low=np.nan,
            rate_ratio_high=np.nan,
            overlap=np.nan,
            warning=str(error),
        )
        return row
    models.append(rate_result.model)
    row.update(
        bd_rate=rate_result.value,
        bd_rate_low=interval.low,
        bd_rate_high=interval.high,
        bd_quality=quality_result.value,
        # the bitrate at equal quality as a multiple of the anchor's, 1 + BD-rate/100
        # (stats.bdrate.bitrate_at_equal_quality), with the same bootstrap interval
        rate_ratio=rate_result.rate_ratio,
        rate_ratio_low=1.0 + interval.low / 100.0,
        rate_ratio_high=1.0 + interval.high / 100.0,
        overlap=rate_result.overlap,
        warning="; ".join(w for w in (rate_result.warning, interval.warning) if w),
    )
    return row
