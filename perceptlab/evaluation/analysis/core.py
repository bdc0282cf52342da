"""One study's full analysis, from its three flat frames to every number a report shows."""

from __future__ import annotations

import pandas as pd

from perceptlab.evaluation import exclusion
from perceptlab.evaluation.analysis.config import PAIRWISE, AnalysisConfig
from perceptlab.evaluation.analysis.pairwise import analyse_pairwise
from perceptlab.evaluation.analysis.ratings import analyse_ratings
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import objective_frame


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
        result = analyse_pairwise(stimuli, counted, judgments, metrics, config)
    else:
        result = analyse_ratings(stimuli, counted, metrics, config)
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
