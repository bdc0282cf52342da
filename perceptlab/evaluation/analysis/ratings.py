"""ACR and DCR: MOS/DMOS per stimulus and condition with rater-bootstrap intervals, P.910
ACR-HR DMOS, rater screening and the Li–Bampis subject model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from perceptlab.evaluation.analysis.config import AnalysisConfig
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import (
    bd_rate_table,
    bpp_sources,
    ci_columns,
    condition_info,
    crop_agreement,
    guidance_replay,
    metric_predictions,
    metric_table,
    stimulus_columns,
)
from perceptlab.evaluation.stats import mos, screening, subject_model
from perceptlab.evaluation.stats.common import ModelId, StatsInputError
from perceptlab.lib import calibration

SUBJECT_MODEL: subject_model.SubjectModelVariant = "content_oblivious"  # sureal's MLE_CO


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


def analyse_ratings(
    stimuli: pd.DataFrame, counted: pd.DataFrame, metrics: pd.DataFrame, config: AnalysisConfig
) -> Analysis:
    ratings = ratings_frame(counted, stimuli)
    screened, screening_table, models = _screen(ratings, config)
    if config.method == "dcr":
        label = "DMOS (DCR)"
    else:
        label = "MOS (ACR)"
    per_stimulus = _mos(screened, "stimulus", config)
    per_condition = _mos(screened, "condition", config)
    models += [per_stimulus.model, per_condition.model]
    scores = _rating_scores([per_stimulus, per_condition], stimuli)
    curves, replicates = _rating_curves(per_condition, stimuli)
    bd_table, bd_models = bd_rate_table(curves, replicates, config, measure=label)
    dmos_curves = pd.DataFrame()
    if config.method == "acr" and config.hidden_reference:
        dmos = _acr_hr_dmos(screened, stimuli, config)
        if dmos is not None:
            scores = pd.concat([scores, _rating_scores(list(dmos), stimuli)], ignore_index=True)
            dmos_curves, dmos_replicates = _rating_curves(dmos[1], stimuli)
            dmos_bd, _ = bd_rate_table(dmos_curves, dmos_replicates, config, measure="DMOS")
            bd_table = pd.concat([bd_table, dmos_bd], ignore_index=True)
            models.append(dmos[0].model)
    subject_scores, subject_raters, subject_models = _subject_model(screened, stimuli, config)
    human = per_stimulus.table.set_index("stimulus")["mos"]
    wide = metric_table(metrics, region="crop")
    return Analysis(
        config=config,
        quality_label=label,
        scores=scores,
        curves=curves,
        image_curves=_rating_image_curves(per_stimulus, stimuli),
        bd_table=bd_table,
        agreement=crop_agreement(human, wide),
        predictions=metric_predictions(human, wide, _image_of(stimuli)),
        guidance=guidance_replay(human, wide, _judgments_on(screened, human)),
        guided_scores=_guided_scores(screened, stimuli, wide, config)
        if config.guided
        else (pd.DataFrame()),
        screening=screening_table,
        objective=pd.DataFrame(),
        unavailable_metrics={},
        win_matrix=None,
        models=models + bd_models + subject_models,
        dmos_curves=dmos_curves,
        subject_scores=subject_scores,
        subject_raters=subject_raters,
    )


def _mos(ratings: pd.DataFrame, by: str, config: AnalysisConfig) -> mos.MosResult:
    """MOS (ACR) or DMOS (DCR, ITU-T P.910 §6.3) of ``ratings`` by ``by``, with the
    study's bootstrap options."""
    chosen = mos.dmos_dcr if config.method == "dcr" else mos.mos
    return chosen(
        ratings,
        by=by,
        confidence=config.confidence,
        n_resamples=config.n_resamples,
        seed=config.seed,
        bootstrap=config.bootstrap,
    )


def _screen(
    ratings: pd.DataFrame, config: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame, list[ModelId]]:
    if not config.screening:
        return ratings, pd.DataFrame(columns=["rater", "rejected", "reason"]), []
    result = screening.screen(ratings, method=config.screening, variant=config.screening_variant)
    table = result.table.copy()
    table["reason"] = np.where(table["rejected"], f"{config.screening} ({result.variant})", "")
    return result.kept, table, [result.model]


def _rating_scores(results: list[mos.MosResult], stimuli: pd.DataFrame) -> pd.DataFrame:
    """The scores table: one row per stimulus or condition per result, with its measure."""
    frames = []
    for result in results:
        level = str(result.table.columns[0])  # "stimulus" or "condition"
        table = stimulus_columns(result.table, level, stimuli).rename(columns={level: "key"})
        table.insert(0, "level", level)
        table.insert(1, "measure", result.model.name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _acr_hr_dmos(
    ratings: pd.DataFrame, stimuli: pd.DataFrame, config: AnalysisConfig
) -> tuple[mos.MosResult, mos.MosResult] | None:
    """ACR with hidden reference (ITU-T P.910 §6.2): each rater's rating of a condition
    stimulus against their rating of its image's reference, per stimulus and per condition;
    None when no rater has rated both yet."""
    refs = stimuli.loc[stimuli["role"] == "hidden"].set_index("image")["stimulus"]
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    reference_of = dict(zip(conditions["stimulus"], conditions["image"].map(refs), strict=True))

    def dmos(by: str) -> mos.MosResult:
        return mos.dmos_acr_hr(
            ratings,
            by=by,
            reference_of=reference_of,
            scale_max=config.scale_max,
            confidence=config.confidence,
            n_resamples=config.n_resamples,
            seed=config.seed,
            bootstrap=config.bootstrap,
        )

    try:
        return dmos("stimulus"), dmos("condition")
    except StatsInputError:
        return None


def _rating_curves(
    per_condition: mos.MosResult, stimuli: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rate–quality curves (codec, target, bpp, quality, low, high, bpp_source) with each
    row's bootstrap replicates, ordered by codec then bpp."""
    table = per_condition.table
    ci = ci_columns(table)
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
            "bpp_source": rows["condition"].map(info["bpp_source"]).to_numpy(),
        }
    )
    order = np.lexsort((curves["bpp"].to_numpy(), curves["codec"].to_numpy()))
    return curves.iloc[order].reset_index(drop=True), per_condition.replicates[keep][order]


def _rating_image_curves(per_stimulus: mos.MosResult, stimuli: pd.DataFrame) -> pd.DataFrame:
    table = per_stimulus.table
    low, high = ci_columns(table)
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    info = conditions.assign(bpp_source=bpp_sources(conditions)).set_index("stimulus")
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
            "bpp_source": keys.map(info["bpp_source"]).to_numpy(),
        }
    ).sort_values(["image", "codec", "bpp"], ignore_index=True)


def _subject_model(
    ratings: pd.DataFrame, stimuli: pd.DataFrame, config: AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame, list[ModelId]]:
    """The Li–Bampis subject model (DCC 2017; ITU-T P.910 Annex E; sureal MLE_CO) of the
    counted ratings: per condition, the mean over its images of the stimuli's quality ψ_e,
    with SE √(Σ SE(ψ_e)²)/n (the images' estimates are independent given the raters' biases
    and inconsistencies) and a normal interval; per rater, bias Δ_s and inconsistency υ_s with
    their intervals. Empty tables with the reason in ``attrs["problem"]`` when the ratings
    cannot be fitted (fewer than two raters)."""
    try:
        raters = ratings["rater"].nunique()
        if raters < 2:  # one rater's bias is 0 and their scores fit exactly: υ = 0, SE = 0
            raise StatsInputError(
                f"the subject model needs ratings of at least 2 raters to tell rater bias "
                f"and inconsistency from quality; {raters} so far"
            )
        fit = _fit_subject_model(ratings, config)
    except StatsInputError as error:
        problem = pd.DataFrame()
        problem.attrs["problem"] = f"no subject model: {error}"
        return problem, problem.copy(), []
    level = round(config.confidence * 100)
    per_stimulus = fit.scores.set_index("stimulus")
    info = stimuli.loc[stimuli["role"] == "condition"].set_index("stimulus")
    rows = per_stimulus.loc[per_stimulus.index.isin(info.index)].copy()
    rows["condition"] = info["condition"].reindex(rows.index).to_numpy()
    grouped = rows.groupby("condition")
    z = mos.normal_quantile(config.confidence)
    quality = grouped["quality"].mean()
    se = np.sqrt(grouped["std"].apply(lambda s: float(np.sum(np.square(s))))) / grouped.size()
    conditions = condition_info(stimuli).reindex(quality.index)
    table = pd.DataFrame(
        {
            "condition": quality.index,
            "codec": conditions["codec"].to_numpy(),
            "target_bpp": conditions["target"].to_numpy(),
            "bpp": conditions["bpp"].to_numpy(),
            "bpp_source": conditions["bpp_source"].to_numpy(),
            "images": grouped.size().to_numpy(),
            "ratings": grouped["n"].sum().to_numpy(),
            "quality": quality.to_numpy(),
            "se": se.to_numpy(),
            f"ci{level}_low": (quality - z * se).to_numpy(),
            f"ci{level}_high": (quality + z * se).to_numpy(),
        }
    ).sort_values(["codec", "bpp"], ignore_index=True)
    table.attrs["converged"] = fit.converged
    return table, fit.raters, [fit.model]


def _fit_subject_model(
    ratings: pd.DataFrame, config: AnalysisConfig
) -> subject_model.SubjectModelResult:
    """The fit, or a StatsInputError when its likelihood runs off to its unbounded edge: the
    iteration gives one rater ever more weight until their scores are fitted exactly (υ → 0;
    Li & Bampis' caveat, and sureal's P910/MLE_CO reach the same point), seen as υ ≈ 0, an
    overflow or a non-finite estimate. Measured on simulated studies with 12 ratings per
    rater it happens often; with 24 per rater it did not."""
    try:
        with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
            warnings.simplefilter("error", RuntimeWarning)
            fit = subject_model.mle_subject_model(
                ratings, variant=SUBJECT_MODEL, confidence=config.confidence
            )
    except (FloatingPointError, RuntimeWarning) as error:
        raise StatsInputError(_DEGENERATE + f" ({error})") from error
    estimates = (fit.scores["quality"], fit.raters["bias"], fit.raters["inconsistency"])
    if not all(np.isfinite(column.to_numpy(dtype=float)).all() for column in estimates):
        raise StatsInputError(_DEGENERATE)
    if (fit.raters["inconsistency"] <= 1e-6).any():
        raise StatsInputError(_DEGENERATE)
    return fit


_DEGENERATE = (
    "its likelihood has no maximum on these ratings: a rater's scores are fitted exactly "
    "(inconsistency → 0, infinite weight), which happens while each rater has scored few "
    "stimuli; it needs more ratings per rater (sureal reports υ = 0 here)"
)


def _image_of(stimuli: pd.DataFrame) -> pd.Series:
    return stimuli.set_index("stimulus")["image"]


def _judgments_on(ratings: pd.DataFrame, human: pd.Series) -> int:
    """The ratings behind the stimuli of ``human`` (the scores the replay measures)."""
    return int(ratings["stimulus"].isin(human.index.astype(str)).sum())


def _guided_scores(
    ratings: pd.DataFrame, stimuli: pd.DataFrame, wide: pd.DataFrame, config: AnalysisConfig
) -> pd.DataFrame:
    """A metric-guided study's condition stimuli scored as its planner scores them
    (``studies.guidance``), here on the counted ratings: the ratings' mean and its
    ratings-alone half-width (1.96 σ/√n, σ² pooled), the calibrated metrics' prediction, and
    the two combined (``lib.calibration``: pooled_variance, metric_prior, combine)."""
    info = stimuli.loc[stimuli["role"] == "condition"].set_index("stimulus")
    names = [str(s) for s in info.index]
    scores = ratings.assign(square=ratings["score"] ** 2).groupby("stimulus")
    n = np.asarray(scores["score"].count().reindex(names, fill_value=0), dtype=np.float64)
    sums = scores["score"].sum().reindex(names, fill_value=0.0).to_numpy(dtype=np.float64)
    squares = scores["square"].sum().reindex(names, fill_value=0.0).to_numpy(dtype=np.float64)
    span = config.scale_max - config.scale_min
    sigma2 = calibration.pooled_variance(n, sums, squares, span=span)
    metrics = (
        wide.reindex(names).to_numpy(dtype=np.float64)
        if not wide.empty
        else np.empty((len(names), 0))
    )
    mean, var = calibration.metric_prior(metrics, n, sums, sigma2)
    combined = calibration.combine(n, sums, sigma2, mean, var, span=span)
    rated = n > 0
    return pd.DataFrame(
        {
            "stimulus": names,
            "image": info["image"].astype(str).to_numpy(),
            "ratings": n.astype(np.int64),
            "mean": np.where(rated, sums / np.where(rated, n, 1.0), np.nan),
            "mean_half_width": np.where(
                rated, calibration.Z95 * np.sqrt(sigma2 / np.where(rated, n, 1.0)), np.inf
            ),
            "predicted": mean,
            "predicted_half_width": calibration.Z95 * np.sqrt(combined.prior_var),
            "score": combined.score,
            "half_width": combined.half_width,
        }
    )
