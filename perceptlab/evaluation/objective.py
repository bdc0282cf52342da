"""Compute and store the objective metrics of a study's stimuli.

Each reconstruction shown in a study is measured twice against its original: on the full
decoded image (what the codec did) and on the crop raters saw (what the humans judged;
metric–human agreement uses this one). Values are stored per stimulus in
:class:`~perceptlab.evaluation.models.StimulusMetric`; a metric that cannot run (for example
DISTS without its VGG weights) is stored with its reason, never with a made-up number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction

from perceptlab.codecs.files import read_bytes
from perceptlab.evaluation.models import StimulusMetric
from perceptlab.lib.images import decode_png
from perceptlab.lib.weights import configured_weights_dir
from perceptlab.studies.models import Stimulus, Study

CHUNK = 8  # pairs per batch: bounds memory (a VGG pass on 8 full Kodak images is ~2 GB)


@dataclass
class MetricsReport:
    computed: int = 0
    skipped: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)


def measured_stimuli(study: Study) -> list[Stimulus]:
    """The stimuli that have a reconstruction (conditions and gold), grouped by image."""
    return list(
        study.stimuli.filter(reconstruction__isnull=False)
        .select_related("study_image__source", "reconstruction")
        .order_by("study_image_id", "id")
    )


def compute_study_metrics(
    *, study: Study, metrics: Sequence[str] | None = None, force: bool = False
) -> MetricsReport:
    """Measure every reconstructed stimulus of ``study`` that lacks a stored value."""
    from perceptlab.evaluation.metrics import METRICS, MetricSession

    slugs = list(metrics or METRICS)
    report = MetricsReport()
    display = study.cvvdp_display
    versions = {slug: METRICS[slug].version_for(display) for slug in slugs}
    todo = _todo(study, versions, force=force, report=report)
    if not todo:
        return report
    session = MetricSession(slugs, weights_dir=configured_weights_dir(), display=display)
    for region, batch in _batches(todo):
        values = session.compute([pair for _, pair in batch])
        with transaction.atomic():
            for (stimulus, _), measured in zip(batch, values, strict=True):
                _store(stimulus, region, measured, report, versions)
    return report


def _todo(
    study: Study, versions: dict[str, str], *, force: bool, report: MetricsReport
) -> list[Stimulus]:
    """Stimuli lacking a value of a metric in ``versions`` (slug → the version to store), on
    either region; a value stored under another version (a display model changed since,
    or the implementation) does not count."""
    stimuli = measured_stimuli(study)
    if force:
        return stimuli
    want = 2 * len(versions)
    have: dict[int, int] = defaultdict(int)
    stored = StimulusMetric.objects.filter(stimulus__in=stimuli, metric__in=list(versions))
    for sid, slug, version in stored.values_list("stimulus_id", "metric", "version"):
        if version == versions[slug]:
            have[sid] += 1
    todo = [s for s in stimuli if have[s.pk] < want]
    report.skipped = len(stimuli) - len(todo)
    return todo


Pair = tuple[np.ndarray, np.ndarray]


def _batches(stimuli: list[Stimulus]) -> Iterator[tuple[str, list[tuple[Stimulus, Pair]]]]:
    """Yield (region, [(stimulus, (reference, distorted))]) in chunks; each source decoded once."""
    by_image: dict[int, list[Stimulus]] = defaultdict(list)
    for s in stimuli:
        by_image[s.study_image_id].append(s)
    for group in by_image.values():
        study_image = group[0].study_image
        source = decode_png(read_bytes(str(study_image.source.png.name)))
        x, y, w, h = study_image.crop_box()
        source_crop = source[y : y + h, x : x + w]
        for start in range(0, len(group), CHUNK):
            chunk = group[start : start + CHUNK]
            decoded = [decode_png(read_bytes(str(s.reconstruction.png.name))) for s in chunk]  # type: ignore[union-attr]
            yield (
                StimulusMetric.Region.FULL,
                [(s, (source, d)) for s, d in zip(chunk, decoded, strict=True)],
            )
            yield (
                StimulusMetric.Region.CROP,
                [
                    (s, (source_crop, d[y : y + h, x : x + w]))
                    for s, d in zip(chunk, decoded, strict=True)
                ],
            )


def _store(
    stimulus: Stimulus,
    region: str,
    measured: dict,  # type: ignore[type-arg]
    report: MetricsReport,
    versions: dict[str, str],
) -> None:
    for slug, m in measured.items():
        StimulusMetric.objects.update_or_create(
            stimulus=stimulus,
            region=region,
            metric=slug,
            defaults={
                "value": m.value,
                "unavailable": m.unavailable or "",
                "version": versions[slug],
            },
        )
        if m.unavailable:
            report.unavailable.setdefault(slug, m.unavailable)
    report.computed += 1
