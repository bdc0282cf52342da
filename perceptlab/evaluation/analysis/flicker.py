"""Flicker studies (JPEG AIC-2): visually lossless thresholds per image and codec, and each
codec's bit-rate saving at the threshold.

A flicker judgment names the side that flickers; its item's ``a`` is the image's original
(shown still) and ``b`` the test image, so an answer is correct when ``b`` was chosen
(``outcome`` 0). :func:`flicker_answers` turns the counted test judgments into the answers of
:mod:`perceptlab.evaluation.stats.flicker` (rater, image, codec, the test image's achieved bpp,
correct); :func:`analyse_flicker` fits the thresholds (rater bootstrap) and the savings
against the report's anchor codec (or the first codec).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptlab.evaluation.analysis.config import AnalysisConfig
from perceptlab.evaluation.analysis.result import Analysis
from perceptlab.evaluation.stats import flicker
from perceptlab.evaluation.stats.common import StatsInputError

QUALITY_LABEL = (
    "visually lossless threshold: the bpp at which 75 % of answers find the flickering side "
    "(JPEG AIC-2; lower is better)"
)


def flicker_answers(counted: pd.DataFrame) -> pd.DataFrame:
    """The counted test judgments as flicker answers (the module docstring)."""
    rows = counted.loc[counted["outcome"].isin([0.0, 1.0]) & (counted["bpp_b"].notna())]
    return pd.DataFrame(
        {
            "rater": rows["rater"].astype(str).to_numpy(),
            "image": rows["image"].astype(str).to_numpy(),
            "codec": rows["codec_b"].astype(str).to_numpy(),
            "bpp": rows["bpp_b"].to_numpy(dtype=np.float64),
            "correct": (rows["outcome"].to_numpy(dtype=np.float64) == 0.0).astype(np.int64),
        }
    )


def analyse_flicker(
    stimuli: pd.DataFrame, counted: pd.DataFrame, config: AnalysisConfig
) -> Analysis:
    """``scores``: each (image, codec)'s threshold with its rater-bootstrap interval;
    ``curves``: each codec's geometric-mean threshold ratio and saving against the anchor."""
    answers = flicker_answers(counted)
    if answers.empty:
        raise StatsInputError("no flicker answers to fit yet")
    fitted = flicker.thresholds(
        answers, n_replicates=config.n_resamples, seed=config.seed, confidence=config.confidence
    )
    codecs = sorted(set(fitted.table["codec"]))
    reference = config.anchor if config.anchor in codecs else codecs[0]
    saved = flicker.savings(fitted, reference, confidence=config.confidence)
    saved.insert(1, "reference", reference)
    return Analysis(
        config=config,
        quality_label=QUALITY_LABEL,
        scores=fitted.table,
        curves=pd.DataFrame(),
        image_curves=pd.DataFrame(),
        bd_table=pd.DataFrame(),
        agreement=pd.DataFrame(),
        screening=pd.DataFrame(columns=["rater", "rejected", "reason"]),
        objective=pd.DataFrame(),
        unavailable_metrics={},
        win_matrix=None,
        models=[fitted.model],
        flicker_savings=saved,
        flicker_spread=fitted.spread,
    )
