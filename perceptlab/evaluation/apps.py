from __future__ import annotations

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "perceptlab.evaluation"
    label = "evaluation"
    verbose_name = "Evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The studies admin offers "Compute metrics" once this app contributes it (studies
        # is a lower layer and never imports evaluation).
        from perceptlab.evaluation.tasks import enqueue_metrics
        from perceptlab.studies.admin import contribute_operation

        contribute_operation("metrics", enqueue_metrics)
        # A metric-guided study calibrates the crop metrics to its scores as they arrive.
        from perceptlab.evaluation.frames import crop_metric_values
        from perceptlab.studies.guidance import contribute_metric_source

        contribute_metric_source(crop_metric_values)
