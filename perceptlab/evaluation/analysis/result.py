"""What one analysis of a study holds: every table and curve a report or an export shows."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from perceptlab.evaluation.analysis.config import AnalysisConfig
from perceptlab.evaluation.stats.common import ModelId


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
    # 2AFC with config.lapse == "weight": the Bradley–Terry scale with each rater's trials
    # weighted by 1 − q (stats.lapse.weighted_bradley_terry), per condition
    lapse_weighted: pd.DataFrame = field(default_factory=pd.DataFrame)
    # ACR with hidden reference: the rate–DMOS curves (P.910 ACR-HR) per condition; DCR's
    # main curves are DMOS already
    dmos_curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    # ACR/DCR: the Li–Bampis subject model (stats.subject_model, sureal MLE_CO): quality per
    # condition (mean of its stimuli's ψ) and each rater's bias and inconsistency
    subject_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    subject_raters: pd.DataFrame = field(default_factory=pd.DataFrame)
    # triplet: each rater's trap accuracy and side bias (stats.triplets.triplet_qc)
    triplet_qc: pd.DataFrame = field(default_factory=pd.DataFrame)
    # each stimulus's human score predicted from the crop metrics calibrated on the other
    # images (tables.metric_predictions): the metric-guided view of the study
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the study replayed as a metric-guided one (tables.guidance_replay): the scale's error
    # per number of stimuli measured, guided and in random order
    guidance: pd.DataFrame = field(default_factory=pd.DataFrame)
    # metric-guided ACR/DCR: each stimulus's score from its ratings combined with the
    # calibrated metrics' prior (ratings._guided_scores)
    guided_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    # flicker (AIC-2): each codec's rate at the threshold against the reference codec's
    # (stats.flicker.savings), and the psychometric spread shared by the study (log2 bpp)
    flicker_savings: pd.DataFrame = field(default_factory=pd.DataFrame)
    flicker_spread: float = float("nan")
