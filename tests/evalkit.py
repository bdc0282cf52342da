"""Studies rated by simulated raters (perceptlab.evaluation.simulation), for evaluation tests."""

from __future__ import annotations

import studykit

from perceptlab.evaluation.simulation import simulate_raters
from perceptlab.studies.models import Study


def rated_study(method: str, *, images: int, raters: int, seed: int, **fields: object) -> Study:
    study = studykit.make_study(method, images=images, **fields)
    simulate_raters(study=study, raters=raters, seed=seed)
    return study
