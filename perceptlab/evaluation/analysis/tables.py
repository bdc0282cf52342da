"""Frames shared by every method: conditions, objective metrics and the BD-rate table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptlab.evaluation.analysis.config import AnalysisConfig
from perceptlab.evaluation.stats import agreement as agreement_stats
from perceptlab.evaluation.stats import bdrate, guided
from perceptlab.evaluation.stats.common import ModelId, StatsInputError

DECLARED = "declared"
MEASURED = "measured"


def bpp_sources(stimuli: pd.DataFrame) -> pd.Series:
    """Each row's ``bpp_source``: ``declared`` (an imported codec's rate from the researcher's
    table) or ``measured`` (8 · bitstream bytes / pixels); frames written before the column
    existed hold measured rates only."""
    if "bpp_source" not in stimuli.columns:
        return pd.Series(MEASURED, index=stimuli.index, dtype=object)
    declared = stimuli["bpp_source"].fillna("").astype(str) == DECLARED
    return pd.Series(np.where(declared, DECLARED, MEASURED), index=stimuli.index, dtype=object)


def condition_info(stimuli: pd.DataFrame) -> pd.DataFrame:
    """Per condition (``codec@target``): its codec, target, mean achieved bpp over images and
    ``bpp_source`` (``declared`` when any of its images' bpp is declared, else ``measured``)."""
    conditions = stimuli.loc[stimuli["role"] == "condition"]
    declared = bpp_sources(conditions) == DECLARED
    info = (
        conditions.assign(declared=declared)
        .groupby("condition")
        .agg(
            codec=("codec", "first"),
            target=("target_bpp", "first"),
            bpp=("bpp", "mean"),
            declared=("declared", "any"),
        )
    )
    sources = np.where(info.pop("declared").to_numpy(dtype=bool), DECLARED, MEASURED)
    return info.assign(bpp_source=sources)


def stimulus_columns(table: pd.DataFrame, key: str, stimuli: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each ``key``'s image, codec, target and mean bpp from ``stimuli``."""
    info = stimuli.drop_duplicates(key).set_index(key)
    out = table.copy()
    for column in ("image", "codec", "target_bpp", "bpp_source"):
        if column in info.columns and column != key:
            out[column] = out[key].map(info[column])
    out["bpp"] = out[key].map(stimuli.groupby(key)["bpp"].mean())
    return out


def ci_columns(table: pd.DataFrame) -> tuple[str, str]:
    """The bootstrap interval's columns of a stats.mos table."""
    low = next(c for c in table.columns if c.startswith("ci") and c.endswith("_boot_low"))
    return low, low.replace("_low", "_high")


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


def crop_agreement(human: pd.Series, wide: pd.DataFrame) -> pd.DataFrame:
    """Each crop metric of ``wide`` (:func:`metric_table`) against the human score per stimulus
    (``human``, indexed by stimulus; its name is the column): ``stats.agreement``'s table; empty
    with no metric or under 4 stimuli scored by both."""
    if wide.empty:
        return pd.DataFrame()
    joined = human.to_frame().join(wide, how="inner")
    if len(joined) < agreement_stats.MIN_POINTS:
        return pd.DataFrame()
    return agreement_stats.agreement_table(joined, metrics=list(wide.columns), mos=str(human.name))


def metric_predictions(human: pd.Series, wide: pd.DataFrame, images: pd.Series) -> pd.DataFrame:
    """The human score of each stimulus predicted from the crop metrics (``wide``) calibrated
    on the *other* images' stimuli (leave one image out: a study's next image is one the
    calibration has not seen), with ``stats.guided``'s predictive sd; ``within``: the measured
    value inside the 95 % predictive interval. Empty with no metric, under two images or
    under four stimuli to calibrate on."""
    if wide.empty:
        return pd.DataFrame()
    joined = human.to_frame("measured").join(wide, how="inner")
    joined["image"] = images.reindex(joined.index).astype(str).to_numpy()
    joined = joined.loc[joined["measured"].notna()]
    if joined["image"].nunique() < 2 or len(joined) < 5:
        return pd.DataFrame()
    values = joined[list(wide.columns)].to_numpy(dtype=np.float64)
    measured = joined["measured"].to_numpy(dtype=np.float64)
    predicted = np.full(len(joined), np.nan)
    sd = np.full(len(joined), np.nan)
    for image in joined["image"].unique():
        held_out = (joined["image"] == image).to_numpy()
        try:
            mean, var = guided.predict(values, ~held_out, measured)
        except StatsInputError:
            continue
        predicted[held_out], sd[held_out] = mean[held_out], np.sqrt(var[held_out])
    return pd.DataFrame(
        {
            "stimulus": joined.index.astype(str),
            "image": joined["image"].to_numpy(),
            "measured": measured,
            "predicted": predicted,
            "sd": sd,
            "within": np.abs(measured - predicted) <= 1.96 * sd,
        }
    ).dropna(subset=["predicted"])


REPLAY_SEEDS = 5
REPLAY_MIN_STIMULI = 12


def guidance_replay(
    human: pd.Series, wide: pd.DataFrame, judgments: int, *, seeds: int = REPLAY_SEEDS
) -> pd.DataFrame:
    """This completed study replayed as a metric-guided one (:func:`stats.guided.replay`, as
    ``bench/metric_guided.py`` does on JPEG AIC-4): its stimuli are measured — their human
    score revealed — most uncertain first (the calibrated metrics' predictive variance) or in
    random order, every other stimulus predicted from the metrics calibrated on those
    measured; per number measured, the RMS error of that scale against the study's complete
    one (``guided``, ``random``), averaged over ``seeds`` random starting sets. A study
    spends ``per_stimulus`` = ``judgments`` ÷ stimuli judgments on a stimulus on average,
    which turns stimuli saved into judgments saved. Empty under
    :data:`REPLAY_MIN_STIMULI` stimuli with a human score, or with no metric on 4 of them."""
    if wide.empty:
        return pd.DataFrame()
    joined = human.to_frame("measured").join(wide, how="inner")
    joined = joined.loc[joined["measured"].notna()]
    columns = [c for c in wide.columns if joined[c].notna().sum() >= 4]
    count = len(joined)
    if count < REPLAY_MIN_STIMULI or not columns:
        return pd.DataFrame()
    seed_size = max(5, min(guided.DEFAULT_SEED_SIZE, count // 4))
    steps = np.unique(np.linspace(seed_size, count, 9).round().astype(np.intp))
    try:
        result = guided.replay(
            joined[columns].to_numpy(dtype=np.float64),
            joined["measured"].to_numpy(dtype=np.float64),
            steps=steps,
            seeds=seeds,
            seed_size=seed_size,
            batch=max(1, count // 25),  # at most ~25 refits per seed, whatever the size
        )
    except StatsInputError:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "measured": result.measured,
            "stimuli": count,
            "guided": result.guided,
            "random": result.random,
            "per_stimulus": judgments / count,
            "seeds": seeds,
        }
    )


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
    """BD-rate, BD-quality and the bitrate at equal quality of every codec against the
    anchor, with rater-bootstrap intervals: :func:`stats.bdrate.bd_rate_table` with the
    study's options, and a ``measure`` column. An unusable anchor curve gives every row NaN
    and the reason; fewer than two codecs, an empty table."""
    codecs = sorted(curves["codec"].unique()) if len(curves) else []
    anchor = config.anchor or (codecs[0] if codecs else "")
    empty = pd.DataFrame(columns=["codec", "measure", *bdrate.TABLE_COLUMNS[1:]])
    if anchor not in codecs or len(codecs) < 2:
        return empty, []
    try:
        table = bdrate.bd_rate_table(
            curves,
            anchor=anchor,
            method=config.bd_method,
            monotone=config.bd_monotone,
            replicates=replicates,
            confidence=config.confidence,
        )
    except StatsInputError as error:  # the anchor's own curve is unusable
        rows = [{"codec": c, "warning": str(error)} for c in codecs if c != anchor]
        table = pd.DataFrame(rows, columns=bdrate.TABLE_COLUMNS)
        models: list[ModelId] = []
    else:
        models = [table.attrs["model"]] if table["bd_rate"].notna().any() else []
    table.insert(1, "measure", measure)
    return _mark_declared(table, curves, anchor), models


def _mark_declared(table: pd.DataFrame, curves: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """A warning on each row whose codec, or whose anchor, has declared rates."""
    if "bpp_source" not in curves.columns or table.empty:
        return table
    declared = {str(c) for c in curves.loc[curves["bpp_source"] == DECLARED, "codec"]}
    if not declared:
        return table
    table = table.copy()
    if "warning" not in table.columns:
        table["warning"] = ""
    for index, codec in table["codec"].items():
        named = sorted({str(codec), anchor} & declared)
        if named:
            note = f"bpp of {', '.join(named)} declared, not measured from bitstreams"
            previous = str(table.at[index, "warning"] or "")
            previous = "" if previous == "nan" else previous
            table.at[index, "warning"] = f"{previous}; {note}" if previous else note
    return table
