"""Staff pages: a study's report, its standalone HTML file and its exports, each for the
staff who see that study (owner, collaborators, superusers: studies/access.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import cache_control

from perceptlab.evaluation import exports, frames
from perceptlab.evaluation.forms import ReportOptionsForm
from perceptlab.evaluation.reports import (
    Section,
    methods_html,
    report_sections,
    standalone_html,
)
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.study_analysis import analyse_study, config_for, report_data
from perceptlab.studies.access import require_view
from perceptlab.studies.models import Study

EXPORTS = {
    "judgments.csv": "text/csv",
    "stimuli.csv": "text/csv",
    "metrics.csv": "text/csv",
    "scores.csv": "text/csv",
    "report.html": "text/html",
    "bundle.zip": "application/zip",
}


def _options(request: HttpRequest, study: Study) -> tuple[ReportOptionsForm, dict[str, str]]:
    form = ReportOptionsForm(request.GET or None, study=study)
    return form, form.options()


StudyView = Callable[..., HttpResponse]


def study_page(view: StudyView) -> StudyView:
    """Staff only (others go to the admin's login), and only on a study the user sees
    (403 otherwise, as in the admin); the view receives the study."""

    @staff_member_required
    @wraps(view)
    def wrapper(request: HttpRequest, study_id: int, **kwargs: str) -> HttpResponse:
        study = get_object_or_404(Study, pk=study_id)
        require_view(request.user, study)
        return view(request, study, **kwargs)

    return wrapper


@study_page
def report(request: HttpRequest, study: Study) -> HttpResponse:
    form, options = _options(request, study)
    context: dict[str, object] = {"study": study, "form": form, "exports": list(EXPORTS)}
    try:
        _, analysis = analyse_study(study, config_for(study, **options))
    except StatsInputError as error:
        context["problem"] = str(error)
        return render(request, "evaluation/report.html", context)
    data = report_data(study, analysis)
    context.update(
        sections=[_section_html(s) for s in report_sections(data)],
        methods=methods_html(data),
        query=request.GET.urlencode(),
    )
    return render(request, "evaluation/report.html", context)


def _section_html(section: Section) -> dict[str, str]:
    """A section as escaped HTML; figures without plotly.js (the page loads it once)."""
    html = section.html
    if section.figure is not None:
        html = section.figure.to_html(full_html=False, include_plotlyjs=False)
    return {"title": section.title, "html": html, "caption": section.caption}


@study_page
def export(request: HttpRequest, study: Study, name: str) -> HttpResponse:
    if name not in EXPORTS:
        raise Http404(f"unknown export {name!r}; valid: {', '.join(EXPORTS)}")
    _, options = _options(request, study)
    try:
        body = export_bytes(study, name, **options)
    except StatsInputError as error:
        return HttpResponse(
            f"Cannot export {name}: {error}\n", status=409, content_type="text/plain"
        )
    response = HttpResponse(body, content_type=EXPORTS[name])
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{study.name}-{stamp}-{name}"'
    return response


def export_bytes(study: Study, name: str, *, screening: str = "", anchor: str = "") -> bytes:
    inputs = {
        "judgments.csv": lambda: frames.judgments_frame(study),
        "stimuli.csv": lambda: frames.stimuli_frame(study),
        "metrics.csv": lambda: frames.metrics_frame(study),
    }
    if name in inputs:  # the stored rows as they are: no analysis needed
        return exports.csv_bytes(inputs[name]())
    data, analysis = analyse_study(study, config_for(study, screening=screening, anchor=anchor))
    if name == "scores.csv":
        return exports.csv_bytes(analysis.scores)
    html = standalone_html(report_data(study, analysis))
    if name == "report.html":
        return html.encode()
    return exports.make_bundle(
        study=study_manifest(study),
        stimuli=data.stimuli,
        judgments=data.judgments,
        metrics=data.metrics,
        analysis=analysis,
        report_html=html,
        extra=exports.sureal_files(
            stimuli=data.stimuli,
            judgments=data.judgments,
            config=analysis.config,
            name=study.name,
        ),
    )


def study_manifest(study: Study) -> dict[str, object]:
    return {
        "name": study.name,
        "title": study.title,
        "method": study.method,
        "scale": study.scale,
        "hidden_reference": study.hidden_reference,
        "image_set": study.image_set.name,
        "codecs": study.codecs,
        "target_bpps": study.target_bpps,
        "crop": [study.crop_width, study.crop_height, study.crop_mode],
        "judgments_per_item": study.judgments_per_item,
        "seed": study.seed,
        "state": study.state,
        "exported": timezone.now().isoformat(timespec="seconds"),
    }


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@cache_control(max_age=86400, public=True)
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed plotly package, so reports work without a CDN."""
    return HttpResponse(_plotly_js(), content_type="application/javascript")
