"""Background tasks (django-tasks): measure a study's stimuli with the objective metrics;
compute a stored analysis."""

from __future__ import annotations

from django_tasks import task

from perceptlab.evaluation.objective import compute_study_metrics
from perceptlab.studies.models import Study
from perceptlab.studies.stimuli import StudyNotReady


@task()
def compute_metrics(study_id: int) -> int:
    """Measure every stimulus of the study that has no stored values; returns how many."""
    study = Study.objects.get(pk=study_id)
    return compute_study_metrics(study=study).computed


def enqueue_metrics(study: Study) -> str:
    """The study admin's "Compute metrics" operation (contributed in ``EvaluationConfig.ready``)."""
    if not study.stimuli.filter(reconstruction__isnull=False).exists():
        raise StudyNotReady(study, "no stimuli built yet: build them first")
    compute_metrics.enqueue(study.pk)
    return "objective metrics enqueued for the worker; the report shows them once they are stored"


@task()
def compute_analysis(analysis_id: int) -> str:
    """Compute and store a requested analysis (evaluation/stored.py); returns its state."""
    from perceptlab.evaluation.stored import compute

    return compute(analysis_id)
