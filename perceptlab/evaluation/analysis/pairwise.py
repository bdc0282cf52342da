"""2AFC: Bradley–Terry and Thurstone scales with rater-bootstrap intervals, online Elo, the
per-rater lapse model, Holm-corrected pairwise significance and the win matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptlab.evaluation.analysis.config import SCALE_LABELS, AnalysisConfig
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import (
    bd_rate_table,
    bpp_sources,
    condition_info,
    higher_is_better,
    metric_table,
)
from perceptlab.evaluation.stats import agreement as agreement_stats
from perceptlab.evaluation.stats import lapse, pairwise
from perceptlab.evaluation.stats.common import StatsInputError


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


def analyse_pairwise(
    stimuli: pd.DataFrame,
    counted: pd.DataFrame,
    metrics: pd.DataFrame,
    config: AnalysisConfig,
    lapse_table: pd.DataFrame,
) -> Analysis:
    """The 2AFC analysis of the ``counted`` judgments; ``lapse_table`` is the raters' lapse
    fit (:func:`lapse_table_of`), shown in the report and used by ``config.lapse``."""
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
    scores["bpp_source"] = scores["condition"].map(condition_info(stimuli)["bpp_source"])
    stimulus_trials = trials_frame(counted, stimuli, level="stimulus")
    lapse_models = [lapse.LAPSE_MODEL] if len(lapse_table) else []
    weighted = pd.DataFrame()
    if config.lapse == "weight":
        weighted = _lapse_weighted(trials, lapse_table, stimuli, config)
        lapse_models += [lapse.WEIGHTED_BT_MODEL] if len(weighted) else []
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
        models=[boot.model, *bd_models, pairwise.SIGNIFICANCE_MODEL, *lapse_models],
        lapse=lapse_table,
        lapse_weighted=weighted,
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
            "bpp_source": rows["condition"].map(info["bpp_source"]).to_numpy(),
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
    keyed = info.assign(bpp_source=bpp_sources(info)).set_index(["image", "condition"])
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
            "bpp_source": keyed.loc[index, "bpp_source"].to_numpy(),
        }
    ).sort_values(["image", "codec", "bpp"], ignore_index=True)


def _pairwise_agreement(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    wide = metric_table(metrics, region="crop")
    if wide.empty or trials.empty:
        return pd.DataFrame()
    return agreement_stats.twoafc_table(trials, wide, higher_is_better=higher_is_better())


def lapse_table_of(
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


def _lapse_weighted(
    trials: pd.DataFrame, lapse_table: pd.DataFrame, stimuli: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """The pooled Bradley–Terry scale with each rater's trials weighted by 1 − q̂_r (their
    lapse fit's weight; stats.lapse.weighted_bradley_terry, ridge λ = 0.01, Laplace
    intervals): a rater who answers at random counts for little instead of being excluded.
    Empty, with the reason in ``attrs["problem"]``, when there is no lapse fit or no scale."""
    problem = ""
    if lapse_table.empty:
        problem = lapse_table.attrs.get("problem", "no lapse fit")
    else:
        pooled = trials.drop(columns=["group"])
        weights = pd.Series(lapse_table["weight"].to_numpy(), index=lapse_table["rater"])
        if "excluded" in lapse_table.columns:  # the lapse rule left them out of the trials
            weights = weights.loc[~lapse_table["excluded"].to_numpy()]
        pooled = pooled.loc[pooled["rater"].isin(weights.index)]
        try:
            fit = lapse.weighted_bradley_terry(
                pooled, weights=weights, confidence=config.confidence
            )
        except StatsInputError as error:
            problem = str(error)
    if problem:
        table = pd.DataFrame()
        table.attrs["problem"] = f"no lapse-weighted scale: {problem}"
        return table
    scores = fit.scores.drop(columns=["group"])
    info = condition_info(stimuli)
    scores.insert(1, "codec", scores["condition"].map(info["codec"]))
    scores.insert(2, "bpp", scores["condition"].map(info["bpp"]))
    scores.insert(3, "bpp_source", scores["condition"].map(info["bpp_source"]))
    return scores.sort_values(["codec", "bpp"], ignore_index=True)
