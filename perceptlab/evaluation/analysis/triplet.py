"""Triplet studies (JPEG AIC-3): the platform's judgments as a triplet frame, scaled in JND.

A triplet judgment answers which side (left or right, as shown) differs more from the pivot,
the image's original. :func:`triplet_frame` turns the study's counted judgments into the triplet
frame of :mod:`perceptlab.evaluation.stats.triplet_io` (its "platform" layout), so the same file
that an export writes is what ``manage.py score --kind triplet`` reads:

* ``source`` is the image, ``rater`` and ``batch`` the session;
* ``method`` is ``BTC`` when the shown stimuli were stored boosted (``boost_alpha`` set in the
  stimuli frame), else ``PTC``;
* a side's ``codec``/``level``: the source shown as a side (the hidden original) is codec
  ``source``, level 0; a reconstruction is its codec and its level, the rank of its target
  among that codec's targets in the study, highest bpp first (level 1 = the mildest, as AIC-3
  numbers its levels); the gold is ``gold``, level 1;
* ``response``: choice ``a`` (the side shown left) → ``left``, ``b`` → ``right``, ``undecided``
  → ``not sure``;
* ``role``: gold trials are AIC-3's ``trap`` (the source against a heavy compression), an item
  with the same stimulus both sides is ``bias``, the rest ``scale``.

:func:`analyse_triplet` fits the JND scale (``stats.triplets.scale_triplets``, Thurstone Case V
with σ = 1.4826, rater bootstrap) and gives each condition (codec at a target)
the mean JND over the images, with the percentile interval of that mean over the same rater
draws. JND is a distance from the original: lower is better, 0 is the original itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptlab.evaluation.analysis.config import AnalysisConfig
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import (
    bpp_sources,
    condition_info,
    crop_agreement,
    guidance_replay,
    metric_predictions,
    metric_table,
)
from perceptlab.evaluation.stats import triplets
from perceptlab.evaluation.stats.bootstrap import percentile_interval
from perceptlab.evaluation.stats.common import StatsInputError

SOURCE_CODEC = "source"
GOLD_CODEC = "gold"
RESPONSES = {"a": "left", "b": "right", "undecided": "not sure"}
QUALITY_LABEL = "JND from the original (Thurstone Case V, 1 JND = 75 %; lower is better)"


def levels_of(stimuli: pd.DataFrame) -> pd.DataFrame:
    """``stimulus → codec, level`` for every stimulus a triplet side can show."""
    frame = stimuli.set_index("stimulus")
    role = frame["role"].astype(str).to_numpy()
    codec = np.where(role == "gold", GOLD_CODEC, SOURCE_CODEC).astype(object)
    level = np.where(role == "gold", 1, 0).astype(np.int64)
    conditions = role == "condition"
    codec[conditions] = frame["codec"].astype(str).to_numpy()[conditions]
    targets = frame["target_bpp"].to_numpy(dtype=np.float64)
    for name in set(codec[conditions]):
        mine = conditions & (codec == name)
        ladder = sorted({t for t in targets[mine] if np.isfinite(t)}, reverse=True)
        rank = {t: i + 1 for i, t in enumerate(ladder)}
        level[mine] = [rank.get(t, 0) for t in targets[mine]]
    return pd.DataFrame({"codec": codec, "level": level}, index=frame.index)


def triplet_frame(counted: pd.DataFrame, stimuli: pd.DataFrame) -> pd.DataFrame:
    """The counted triplet judgments in the platform triplet layout (the module docstring)."""
    rows = counted.loc[counted["choice"].isin(list(RESPONSES))]
    swapped = rows["swapped"].astype(bool).to_numpy()
    left = np.where(swapped, rows["b"], rows["a"])
    right = np.where(swapped, rows["a"], rows["b"])
    sides = levels_of(stimuli)
    alphas = stimuli["boost_alpha"] if "boost_alpha" in stimuli.columns else pd.Series(np.nan)
    boosted = pd.Series(alphas.notna().to_numpy(), index=stimuli["stimulus"].to_numpy())
    kind = rows["item_kind"].astype(str).to_numpy()
    frame = pd.DataFrame(
        {
            "rater": rows["rater"].astype(str).to_numpy(),
            "batch": rows["rater"].astype(str).to_numpy(),
            "source": rows["image"].astype(str).to_numpy(),
            "method": np.where(boosted.reindex(left).fillna(False).to_numpy(), "BTC", "PTC"),
            "codec_pivot": SOURCE_CODEC,
            "level_pivot": 0,
            "codec_left": sides["codec"].reindex(left).to_numpy(),
            "level_left": sides["level"].reindex(left).to_numpy(),
            "codec_right": sides["codec"].reindex(right).to_numpy(),
            "level_right": sides["level"].reindex(right).to_numpy(),
            "response": rows["choice"].map(RESPONSES).to_numpy(),
            "role": np.where(kind == "gold", "trap", np.where(left == right, "bias", "scale")),
            "stimulus_left": left,
            "stimulus_right": right,
        }
    )
    unknown = frame["codec_left"].isna() | frame["codec_right"].isna()
    if unknown.any():
        raise StatsInputError(
            f"{int(unknown.sum())} triplet judgment(s) show a stimulus the stimuli table lacks"
        )
    frame["level_left"] = frame["level_left"].astype(np.int64)
    frame["level_right"] = frame["level_right"].astype(np.int64)
    parts = ["method", "source", "codec_left", "level_left", "codec_right", "level_right"]
    frame["question"] = frame[parts].astype(str).agg(":".join, axis=1)
    return frame


def traps_of(judgments: pd.DataFrame, counted: pd.DataFrame) -> pd.DataFrame:
    """The trap (gold) trials of the raters whose judgments are ``counted``: AIC-3's quality
    control, which the scale leaves out but the rater checks and the export keep."""
    kept = set(counted["rater"].astype(str))
    gold = (judgments["trial_kind"] == "gold") & judgments["rater"].astype(str).isin(kept)
    return judgments.loc[gold & judgments["choice"].isin(list(RESPONSES))]


def analyse_triplet(
    stimuli: pd.DataFrame,
    counted: pd.DataFrame,
    metrics: pd.DataFrame,
    config: AnalysisConfig,
    traps: pd.DataFrame | None = None,
) -> Analysis:
    """JND per stimulus (``scores``, level ``image``) and per condition (``curves``: mean over
    images, rater-bootstrap interval); ``triplet_qc`` holds each rater's trap accuracy and side
    bias (:func:`stats.triplets.triplet_qc`); ``agreement`` each objective metric (on the shown
    crop) against the human JND over the stimuli, and ``scores`` carries CVVDP's predicted JOD
    beside the JND where it was computed (``cvvdp_jod``). JND grows with the distortion, so a
    quality metric (CVVDP's JOD, PSNR, SSIM) agrees with it through a negative SROCC, a
    distance (butteraugli) through a positive one. ``traps`` (:func:`traps_of`) enter the
    rater checks."""
    with_traps = counted if traps is None or traps.empty else pd.concat([counted, traps])
    frame = triplet_frame(with_traps, stimuli)
    scale_rows = frame.loc[frame["role"] == "scale"]
    if scale_rows.empty:
        raise StatsInputError("no triplet judgments to scale yet")
    fitted = triplets.scale_triplets(
        frame,
        bootstrap="raters",
        n_replicates=config.n_resamples,
        seed=config.seed,
        confidence=config.confidence,
    )
    scores, replicates = _stimulus_scores(fitted, stimuli)
    wide = metric_table(metrics, region="crop") if len(metrics) else pd.DataFrame()
    if "cvvdp" in wide.columns:  # the metric's JOD beside the human JND
        scores["cvvdp_jod"] = wide["cvvdp"].reindex(scores["stimulus"]).to_numpy()
    curves = _condition_curves(scores, replicates, stimuli, config)
    image_curves = _image_curves(scores)
    return Analysis(
        config=config,
        quality_label=QUALITY_LABEL,
        scores=scores,
        curves=curves,
        image_curves=image_curves,
        bd_table=pd.DataFrame(),
        agreement=crop_agreement(scores.set_index("stimulus")["jnd"], wide),
        predictions=metric_predictions(
            scores.set_index("stimulus")["jnd"], wide, stimuli.set_index("stimulus")["image"]
        ),
        guidance=guidance_replay(scores.set_index("stimulus")["jnd"], wide, len(scale_rows)),
        screening=pd.DataFrame(columns=["rater", "rejected", "reason"]),
        triplet_qc=triplets.triplet_qc(frame).reset_index(),
        objective=pd.DataFrame(),
        unavailable_metrics={},
        win_matrix=None,
        models=[fitted.model],
    )


def _stimulus_scores(
    fitted: triplets.TripletScale, stimuli: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The scale's rows of the study's conditions (not the gold), each with its stimulus,
    condition and bpp, and their bootstrap rows."""
    sides = levels_of(stimuli)
    conditions = stimuli.loc[stimuli["role"] == "condition"].set_index("stimulus")
    by_key = pd.Series(
        conditions.index,
        index=pd.MultiIndex.from_arrays(
            [
                conditions["image"].astype(str),
                sides.loc[conditions.index, "codec"],
                sides.loc[conditions.index, "level"].astype(np.int64),
            ]
        ),
    )
    scale = fitted.scale
    key = pd.MultiIndex.from_arrays(
        [scale["source"].astype(str), scale["codec"].astype(str), scale["level"].astype(np.int64)]
    )
    stimulus = by_key.reindex(key).to_numpy()
    known = pd.notna(stimulus)
    scores = scale.loc[known].assign(stimulus=stimulus[known]).rename(columns={"source": "image"})
    ids = scores["stimulus"]
    scores = scores.assign(
        condition=conditions["condition"].reindex(ids).to_numpy(),
        target_bpp=conditions["target_bpp"].reindex(ids).to_numpy(),
        bpp=conditions["bpp"].reindex(ids).to_numpy(),
        bpp_source=bpp_sources(conditions.reindex(ids)).to_numpy(),
        level_kind="image",
    ).reset_index(drop=True)
    replicates = fitted.replicates[known] if fitted.replicates is not None else None
    return scores, replicates


def _condition_curves(
    scores: pd.DataFrame,
    replicates: np.ndarray | None,
    stimuli: pd.DataFrame,
    config: AnalysisConfig,
) -> pd.DataFrame:
    """Per condition the mean JND over its images; the interval is the percentile interval
    of that mean over the rater draws (every image refitted on the same draw)."""
    info = condition_info(stimuli)
    rows = []
    for name, group in scores.groupby("condition", sort=True):
        low = high = float("nan")
        if replicates is not None:
            means = np.nanmean(replicates[group.index.to_numpy()], axis=0)
            interval = percentile_interval(means[None, :], config.confidence)
            low, high = float(interval[0][0]), float(interval[1][0])
        row = info.loc[str(name)]
        rows.append(
            {
                "codec": row["codec"],
                "target": row["target"],
                "bpp": row["bpp"],
                "quality": float(group["jnd"].mean()),
                "low": low,
                "high": high,
                "bpp_source": row["bpp_source"],
            }
        )
    columns = ["codec", "target", "bpp", "quality", "low", "high", "bpp_source"]
    return pd.DataFrame(rows, columns=columns).sort_values(["codec", "bpp"], ignore_index=True)


def _image_curves(scores: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "image": scores["image"].to_numpy(),
            "codec": scores["codec"].to_numpy(),
            "target": scores["target_bpp"].to_numpy(),
            "bpp": scores["bpp"].to_numpy(),
            "quality": scores["jnd"].to_numpy(),
            "low": scores["ci95_low"].to_numpy(),
            "high": scores["ci95_high"].to_numpy(),
            "bpp_source": scores["bpp_source"].to_numpy(),
        }
    )
    return frame.sort_values(["image", "codec", "bpp"], ignore_index=True)
