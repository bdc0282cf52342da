"""Example results for the demo: closed copies of the demo's ACR and 2AFC studies, rated by
simulated raters (see :mod:`perceptlab.evaluation.simulation`), so a fresh installation has a
report with curves, intervals and BD-rates to look at before any human has rated anything.
Their titles say that the raters are simulated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from perceptlab.codecs.models import ImageSet
from perceptlab.evaluation.simulation import simulate_raters
from perceptlab.evaluation.tasks import compute_metrics
from perceptlab.studies import lifecycle
from perceptlab.studies.demo import _COMMON, DEMO_STUDIES
from perceptlab.studies.models import Study
from perceptlab.studies.stimuli import StudyNotReady

EXAMPLE_RATERS = 8
EXAMPLES = ("acr", "2afc", "triplet", "flicker")


@dataclass(frozen=True)
class ExampleOutcome:
    study: Study
    note: str


def ensure_example_studies(
    *, image_set: ImageSet, codecs: Sequence[str], bpps: Sequence[float]
) -> list[Study]:
    """``<set>-<method>-example`` for ACR, 2AFC, BTC triplets and the flicker test, created as
    drafts (their
    stimuli are generated with the demo's own)."""
    studies = []
    for suffix in EXAMPLES:
        name = f"{image_set.name}-{suffix}-example"
        study = Study.objects.filter(name=name).first()
        studies.append(study or _create(name, suffix, image_set, codecs, bpps))
    return studies


def rate_example_studies(
    *, studies: Sequence[Study], raters: int = EXAMPLE_RATERS
) -> list[ExampleOutcome]:
    """Build each draft example, let ``raters`` simulated raters rate every item once, close
    it and enqueue its objective metrics for the worker."""
    outcomes = []
    for study in studies:
        if study.state == Study.State.CLOSED:
            outcomes.append(ExampleOutcome(study, "already rated"))
            continue
        try:
            report = lifecycle.launch(study=study)
        except StudyNotReady as exc:
            outcomes.append(ExampleOutcome(study, f"left in draft: {exc.reason}"))
            continue
        study.trials_per_session = report.test_items
        study.judgments_per_item = raters
        study.save(update_fields=["trials_per_session", "judgments_per_item"])
        simulate_raters(study=study, raters=raters, seed=study.seed)
        lifecycle.close(study=study)
        compute_metrics.enqueue(study.pk)
        note = f"{raters} simulated raters × {report.test_items} items; metrics enqueued"
        outcomes.append(ExampleOutcome(study, note))
    return outcomes


def _create(
    name: str,
    suffix: str,
    image_set: ImageSet,
    codecs: Sequence[str],
    bpps: Sequence[float],
) -> Study:
    settings = {**_COMMON, **DEMO_STUDIES[suffix]}
    settings.update(
        title=f"Example results (SIMULATED raters, not human data): {settings['title']}",
        practice_trials=0,
        gold_trials=0,
        repeat_trials=0,
        judgments_per_item=EXAMPLE_RATERS,
        min_view_seconds=0.0,
    )
    if suffix == "2afc":
        # 20 random pairs per image: every condition meets every bitrate, so the pooled
        # Bradley–Terry scale exists (a band plan compares neighbours only).
        settings.update(pair_plan=Study.PairPlan.BUDGET, pair_budget=20)
    return Study.objects.create(
        name=name,
        image_set=image_set,
        codecs=list(codecs),
        target_bpps=[float(b) for b in bpps],
        **settings,
    )
