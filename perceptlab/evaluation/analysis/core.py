"""One study's full analysis, from its three flat frames to every number a report shows."""

from __future__ import annotations

import pandas as pd

from perceptlab.evaluation import exclusion
from perceptlab.evaluation.analysis.config import FLICKER, PAIRWISE, TRIPLET, AnalysisConfig
from perceptlab.evaluation.analysis.flicker import analyse_flicker
from perceptlab.evaluation.analysis.pairwise import analyse_pairwise, lapse_table_of
from perceptlab.evaluation.analysis.ratings import analyse_ratings
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import objective_frame
from perceptlab.evaluation.analysis.triplet import analyse_triplet, traps_of


def analyse(
    *,
    stimuli: pd.DataFrame,
    judgments: pd.DataFrame,
    metrics: pd.DataFrame,
    config: AnalysisConfig,
) -> Analysis:
    excluded = exclusion.apply_policy(judgments, config.policy())
    objective, unavailable = objective_frame(stimuli, metrics)
    if config.method == PAIRWISE:
        # the lapse model on what rules 1–4 kept, then the lapse rule (exclusion.py, rule 5);
        # the report's table keeps the raters it removed, marked
        lapse_table = lapse_table_of(judgments, excluded.kept, stimuli, config)
        if config.max_lapse is not None and len(lapse_table):
            over = lapse_table["q"] > config.max_lapse
            lapse_table = lapse_table.assign(excluded=over)
            dropped = {str(rater) for rater in lapse_table.loc[over, "rater"]}
            excluded = exclusion.drop_raters(
                excluded, f"lapse rate > {config.max_lapse:g}", dropped
            )
        result = analyse_pairwise(stimuli, excluded.kept, metrics, config, lapse_table)
    elif config.method == FLICKER:
        result = analyse_flicker(stimuli, excluded.kept, config)
    elif config.method == TRIPLET:
        traps = traps_of(judgments, excluded.kept)
        result = analyse_triplet(stimuli, excluded.kept, metrics, config, traps)
    else:
        result = analyse_ratings(stimuli, excluded.kept, metrics, config)
    counted = excluded.kept
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
