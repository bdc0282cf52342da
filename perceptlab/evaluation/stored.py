"""Analyses computed once, stored, and read by the report page and the exports.

A study's analysis (thousands of rater bootstraps, BD-rate replicates, plots) takes
seconds to minutes; a page view must not. So an analysis is a
:class:`~perceptlab.evaluation.models.StudyAnalysis` row, computed by the background task
:func:`perceptlab.evaluation.tasks.compute_analysis` (django-tasks: ``db_worker`` runs
it; ``PERCEPTLAB_TASKS=immediate`` runs it inline):

* :func:`for_page` gives the newest finished analysis for the study and options, and
  requests a new one when the study's data changed since (its :func:`fingerprint`
  differs) and none is under way; the page shows the last one with "updating…";
* :func:`refresh_pass` (run by ``db_worker`` every ``WORKER_MAINTENANCE_SECONDS``)
  requests the default analysis of every study whose data changed, at most once per
  ``ANALYSIS_DEBOUNCE_SECONDS`` per study, so the report is ready before anyone asks;
* a failed analysis keeps its error (shown instead of the report, never a traceback);
  a running one whose worker was lost (``ANALYSIS_LOST_SECONDS``) is failed and
  requested again; the last :data:`KEEP` finished ones per study and options are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from perceptlab.evaluation.analysis import Analysis, AnalysisConfig
from perceptlab.evaluation.models import StimulusMetric, StudyAnalysis
from perceptlab.evaluation.reports import (
    Section,
    methods_html,
    report_body,
    section_html,
    standalone_html,
)
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.study_analysis import StudyFrames, analyse_study, report_data
from perceptlab.studies.models import Judgment, Session, Stimulus, Study

logger = logging.getLogger(__name__)

State = StudyAnalysis.State
KEEP = 3  # finished analyses kept per study and options
RESULT_FORMAT = 2  # of the pickled (frames, analysis) and sections; a new one recomputes old rows


def options_key(config: AnalysisConfig) -> str:
    """SHA-256 of the options as canonical JSON."""
    return hashlib.sha256(_options_json(config).encode()).hexdigest()


def _options_json(config: AnalysisConfig) -> str:
    return json.dumps(config.as_dict(), sort_keys=True, default=str)


def fingerprint(study: Study) -> str:
    """A digest of everything in the database an analysis of ``study`` reads: its
    judgments (count, newest id), its sessions' states (screening out removes a rater's
    judgments without adding one), its stimuli and their metric values. Three aggregate
    queries: cheap enough for every page view."""
    judgments = Judgment.objects.filter(trial__session__study=study).aggregate(
        n=Count("id"), last=Max("id")
    )
    sessions = Session.objects.filter(study=study).aggregate(
        n=Count("id"),
        out=Count("id", filter=Q(state=Session.State.SCREENED_OUT)),
        finished=Max("finished"),
    )
    metrics = StimulusMetric.objects.filter(stimulus__study=study).aggregate(
        n=Count("id"), last=Max("computed"), stimuli=Count("stimulus", distinct=True)
    )
    stimuli = Stimulus.objects.filter(study=study).count()
    parts = [judgments, sessions, metrics, {"stimuli": stimuli, "format": RESULT_FORMAT}]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Shown:
    """What a report page or an export has to show for one study and set of options."""

    done: StudyAnalysis | None  # the newest finished analysis (maybe of older data)
    failed: StudyAnalysis | None  # the attempt on the current data failed (and why)
    updating: bool  # a newer analysis is waiting or running


def for_page(study: Study, config: AnalysisConfig) -> Shown:
    """The stored analysis to show, requesting a new one if the data changed."""
    now_print = fingerprint(study)
    key = options_key(config)
    shown = _shown(study, key, now_print)
    done_now = shown.done is not None and shown.done.fingerprint == now_print
    if not done_now and not shown.updating and shown.failed is None:
        request(study, config, now_print)
        shown = _shown(study, key, now_print)  # inline backends have finished it
    return shown


def _shown(study: Study, key: str, now_print: str) -> Shown:
    _fail_lost(study, key)
    rows = StudyAnalysis.objects.filter(study=study, options_key=key).defer("result", "report_html")
    done = rows.filter(state=State.DONE).order_by("-finished", "-id").first()
    updating = rows.filter(state__in=(State.PENDING, State.RUNNING), fingerprint=now_print)
    failed = None
    if done is None or done.fingerprint != now_print:
        failed = rows.filter(state=State.FAILED, fingerprint=now_print).first()
    return Shown(done=done, failed=failed, updating=updating.exists())


def _fail_lost(study: Study, key: str) -> None:
    lost = timezone.now() - timedelta(seconds=settings.ANALYSIS_LOST_SECONDS)
    StudyAnalysis.objects.filter(
        study=study, options_key=key, state=State.RUNNING, started__lt=lost
    ).update(state=State.FAILED, error="its worker was lost; requested again", fingerprint="")


def request(study: Study, config: AnalysisConfig, now_print: str | None = None) -> StudyAnalysis:
    """A new pending analysis of the study's current data, enqueued for a worker."""
    from perceptlab.evaluation.tasks import compute_analysis

    row = StudyAnalysis.objects.create(
        study=study,
        options=json.loads(_options_json(config)),
        options_key=options_key(config),
        fingerprint=now_print if now_print is not None else fingerprint(study),
    )
    compute_analysis.enqueue(row.pk)
    return row


def compute(analysis_id: int) -> str:
    """Compute a pending analysis and store it (the task's body); returns its state.

    Taken with a conditional UPDATE, so two workers never compute the same row. Bad
    data (StatsInputError) fail the row with the reason the page then shows.
    """
    taken = StudyAnalysis.objects.filter(pk=analysis_id, state=State.PENDING).update(
        state=State.RUNNING, started=timezone.now()
    )
    if not taken:
        return "taken"
    row = StudyAnalysis.objects.select_related("study").get(pk=analysis_id)
    config = AnalysisConfig.from_json(row.options)
    start = time.perf_counter()
    try:
        data, analysis = analyse_study(row.study, config)
        report = report_data(row.study, analysis)
        body = report_body(report)  # one rendering for the page and the standalone file
        fields: dict[str, Any] = {
            "state": State.DONE,
            "sections": body,
            "methods": methods_html(report),
            "report_html": standalone_html(report, body=body),
            "result": pickle.dumps((data, analysis), protocol=pickle.HIGHEST_PROTOCOL),
            "counts": analysis.counts,
            "versions": _versions(analysis),
            "data_sha256": data_sha256(data),
        }
    except StatsInputError as error:
        fields = {"state": State.FAILED, "error": str(error)}
    except Exception as error:
        logger.exception("analysis %s of study %s failed", row.pk, row.study_id)
        fields = {"state": State.FAILED, "error": f"internal error ({type(error).__name__})"}
    fields.update(finished=timezone.now(), seconds=time.perf_counter() - start)
    StudyAnalysis.objects.filter(pk=row.pk).update(**fields)
    _prune(row.study_id, row.options_key)
    return str(fields["state"])


def page_sections(row: StudyAnalysis) -> list[str]:
    """A stored row's sections as HTML for the report page: as stored (``report_body``), or,
    for a row stored as title/html/caption (result format 1), rendered by the same
    ``section_html``."""
    sections = row.sections or []
    return [
        s
        if isinstance(s, str)
        else section_html(
            Section(s["title"], "table", html=s["html"], caption=s.get("caption", "")),
            number=i,
        )
        for i, s in enumerate(sections, 1)
    ]


def data_sha256(data: StudyFrames) -> str:
    """SHA-256 over the three frames the analysis read, as CSV."""
    digest = hashlib.sha256()
    for frame in (data.stimuli, data.judgments, data.metrics):
        digest.update(frame.to_csv(index=False).encode())
    return digest.hexdigest()


def _versions(analysis: Analysis) -> dict[str, Any]:
    from perceptlab.evaluation.exports import software_versions

    return {
        "models": sorted({f"{m.name} {m.version}" for m in analysis.models}),
        "software": software_versions(),
        "result_format": RESULT_FORMAT,
    }


def result_of(row: StudyAnalysis) -> tuple[StudyFrames, Analysis] | None:
    """The stored (frames, analysis) of a finished row; None if it cannot be read back
    (written by another version of the code: the caller requests a new one)."""
    blob = StudyAnalysis.objects.filter(pk=row.pk).values_list("result", flat=True).first()
    if not blob:
        return None
    try:
        data, analysis = pickle.loads(bytes(blob))
    except Exception:  # an old format: recompute rather than fail the page
        logger.warning("stored analysis %s could not be read back", row.pk)
        return None
    if not isinstance(analysis, Analysis) or not isinstance(data.judgments, pd.DataFrame):
        return None
    return data, analysis


def report_file(row: StudyAnalysis) -> str:
    return StudyAnalysis.objects.filter(pk=row.pk).values_list("report_html", flat=True).get()


def _prune(study_id: int, key: str) -> None:
    rows = StudyAnalysis.objects.filter(study_id=study_id, options_key=key)
    keep = list(rows.filter(state=State.DONE).order_by("-finished", "-id")[:KEEP])
    newest_failed = rows.filter(state=State.FAILED).order_by("-id").first()
    kept = [r.pk for r in keep] + ([newest_failed.pk] if newest_failed else [])
    rows.filter(state__in=(State.DONE, State.FAILED)).exclude(pk__in=kept).delete()


def refresh_pass() -> int:
    """Request the default analysis of each study whose data changed since its last one,
    at most once per ``ANALYSIS_DEBOUNCE_SECONDS`` per study; returns how many."""
    from perceptlab.evaluation.study_analysis import config_for

    since = timezone.now() - timedelta(seconds=settings.ANALYSIS_DEBOUNCE_SECONDS)
    requested = 0
    studies = Study.objects.exclude(state=Study.State.DRAFT)
    for study in studies.filter(sessions__trials__judgment__isnull=False).distinct():
        config = config_for(study)
        key = options_key(config)
        now_print = fingerprint(study)
        shown = _shown(study, key, now_print)
        if shown.updating or shown.failed is not None:
            continue
        if shown.done is not None and shown.done.fingerprint == now_print:
            continue
        recent = StudyAnalysis.objects.filter(study=study, options_key=key, requested__gte=since)
        if recent.exists():
            continue  # debounced: judgments are still coming in
        request(study, config, now_print)
        requested += 1
    return requested
