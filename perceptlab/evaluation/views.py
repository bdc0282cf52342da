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

from perceptlab.evaluation import exports, stored
from perceptlab.evaluation.forms import ReportOptions, ReportOptionsForm
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.study_analysis import config_for
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


def _options(request: HttpRequest, study: Study) -> tuple[ReportOptionsForm, ReportOptions]:
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
    """The stored analysis for the chosen options (evaluation/stored.py): shown at once
    if computed, the last one with "updating…" while a newer one computes."""
    form, options = _options(request, study)
    context: dict[str, object] = {
        "study": study,
        "form": form,
        "exports": list(EXPORTS),
        "query": request.GET.urlencode(),
    }
    shown = stored.for_page(study, config_for(study, options))
    context.update(updating=shown.updating, failed=shown.failed)
    if shown.failed is not None:
        context["problem"] = shown.failed.error
    if shown.done is not None:
        context.update(
            analysis=shown.done,
            sections=stored.page_sections(shown.done),
            methods=shown.done.methods,
        )
    elif shown.updating:
        context["computing"] = True
    response = render(request, "evaluation/report.html", context)
    if shown.updating:
        response["Refresh"] = str(REFRESH_SECONDS)  # the page looks again by itself
    return response


REFRESH_SECONDS = 5


@study_page
def export(request: HttpRequest, study: Study, name: str) -> HttpResponse:
    if name not in EXPORTS:
        raise Http404(f"unknown export {name!r}; valid: {', '.join(EXPORTS)}")
    _, options = _options(request, study)
    try:
        body = exports.export_bytes(study, name, options)
    except exports.AnalysisPending:
        response = HttpResponse(
            f"The analysis for {name} is being computed; try again in a moment.\n",
            status=503,
            content_type="text/plain",
        )
        response["Retry-After"] = str(REFRESH_SECONDS)
        return response
    except StatsInputError as error:
        return HttpResponse(
            f"Cannot export {name}: {error}\n", status=409, content_type="text/plain"
        )
    response = HttpResponse(body, content_type=EXPORTS[name])
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{study.name}-{stamp}-{name}"'
    return response


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@cache_control(max_age=86400, public=True)
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed plotly package, so reports work without a CDN."""
    return HttpResponse(_plotly_js(), content_type="application/javascript")
