"""A study's analysis: pure (no Django), from its three flat frames (``frames.py`` documents
them) to every number a report shows. The live report, the exported bundle and ``manage.py
score`` all run :func:`analyse` on the same frames, so a bundle reopened elsewhere gives the
same numbers.

Which judgments count: test trials of sessions that were not screened out and are not admin
previews, less what the study's exclusion policy removes (``exclusion.py``). Practice, gold
and repeat trials are quality control, not data.

Modules: ``config`` (the typed :class:`AnalysisConfig`), ``result`` (:class:`Analysis`),
``core`` (:func:`analyse`), ``ratings`` (ACR, DCR, ACR-HR DMOS, the subject model),
``pairwise`` (2AFC: scales, lapse model, significance), ``tables`` (shared frames: conditions,
objective metrics, the BD-rate table).
"""

from perceptlab.evaluation.analysis.config import (
    PAIRWISE,
    SCALE_LABELS,
    AnalysisConfig,
    LapseUse,
    Method,
    literal_choices,
)
from perceptlab.evaluation.analysis.core import analyse, counted_judgments
from perceptlab.evaluation.analysis.pairwise import trials_frame
from perceptlab.evaluation.analysis.ratings import ratings_frame
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.analysis.tables import (
    bd_rate_table,
    condition_info,
    higher_is_better,
    metric_table,
    objective_frame,
)

__all__ = [
    "PAIRWISE",
    "SCALE_LABELS",
    "Analysis",
    "AnalysisConfig",
    "LapseUse",
    "Method",
    "analyse",
    "bd_rate_table",
    "condition_info",
    "counted_judgments",
    "higher_is_better",
    "literal_choices",
    "metric_table",
    "objective_frame",
    "ratings_frame",
    "trials_frame",
]
