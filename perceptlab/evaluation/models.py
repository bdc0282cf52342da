"""Stored evaluation results: objective metric values per stimulus, and analyses.

Metric values are expensive (a VGG forward pass per image) and are stored once per
stimulus and region. A study's analysis (bootstraps, BD-rates, plots) is computed once per
state of its data and options by a background task and stored (:class:`StudyAnalysis`,
evaluation/stored.py); the report and the exports read it.
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


class StudyAnalysis(models.Model):
    """One analysis of a study, computed once by a background task and stored.

    Keyed by the study, the analysis options (``options``, the typed
    :class:`~perceptlab.evaluation.analysis.AnalysisConfig` as a dict, and its hash
    ``options_key``) and ``fingerprint``, a cheap digest of the study's data at request
    time (judgments, sessions' states, stimuli, metric values: see
    :func:`perceptlab.evaluation.stored.fingerprint`); ``data_sha256`` is the SHA-256 of
    the frames the analysis actually read, and ``versions`` the model ids and software
    versions it ran with. The report page and the exports read the newest finished row;
    while a newer one computes, they show the last (see :mod:`perceptlab.evaluation.stored`).
    """

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="analyses")
    options = models.JSONField()
    options_key = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    requested = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="time to compute")
    data_sha256 = models.CharField(max_length=64, blank=True)
    versions = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    # The rendered report (sections as HTML from reports.report_body, the methods text, the
    # standalone file) and the pickled (frames, analysis) the exports are made from.
    sections = models.JSONField(default=list, blank=True)
    methods = models.TextField(blank=True)
    report_html = models.TextField(blank=True)
    result = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["-requested", "-id"]
        verbose_name_plural = "study analyses"
        indexes = [models.Index(fields=["study", "options_key", "state"])]

    def __str__(self) -> str:
        return (
            f"{self.study_id} {self.options_key[:8]} {self.state} {self.requested:%Y-%m-%d %H:%M}"
        )
