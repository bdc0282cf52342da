"""Stored evaluation results: objective metric values per stimulus.

Subjective statistics are recomputed from the judgments whenever a report or an export is
asked for (they are cheap and must always reflect every stored judgment); metric values are
expensive (a VGG forward pass per image) and are stored once per stimulus and region.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from perceptlab.studies.models import Stimulus


class StimulusMetric(models.Model):
    """One objective metric of one stimulus against its original.

    ``region`` is ``full`` (the whole decoded image against the whole source) or ``crop``
    (the crop raters saw against the same crop of the original). A metric that could not be
    computed keeps ``value`` empty and says why in ``unavailable`` (for example missing
    weights), so a report can show the reason instead of a number.
    """

    class Region(models.TextChoices):
        FULL = "full", "full image"
        CROP = "crop", "crop shown to raters"

    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="metrics")
    region = models.CharField(max_length=4, choices=Region.choices)
    metric = models.CharField(max_length=40, help_text="metric slug, see evaluation.metrics")
    value = models.FloatField(null=True, blank=True)
    unavailable = models.CharField(max_length=500, blank=True)
    version = models.CharField(max_length=200, help_text="implementation and its version")
    computed = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stimulus", "region", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["stimulus", "region", "metric"], name="one_value_per_stimulus_metric"
            )
        ]

    def __str__(self) -> str:
        shown = f"{self.value:.4f}" if self.value is not None else "unavailable"
        return f"{self.stimulus_id} {self.region} {self.metric} = {shown}"
