"""A study's life: draft → live ⇄ paused → closed, and researcher previews.

Each transition is one conditional UPDATE on the state it starts from, so two staff
members pressing "Launch" at once launch the study once; a transition that does not
apply raises :class:`StudyNotReady` saying why.
"""

from __future__ import annotations

from django.utils import timezone

from perceptlab.studies.models import Session, Study
from perceptlab.studies.stimuli import BuildReport, StudyNotReady, build_stimuli

State = Study.State


def launch(*, study: Study) -> BuildReport:
    """Build what the finished jobs allow, then open the study to raters.

    Refuses while generation jobs are unfinished (``build_stimuli`` says so) and when
    the build leaves no test item to rate.
    """
    if study.state != State.DRAFT:
        raise StudyNotReady(
            study, f"it is {study.state}; only a draft study can be launched (resume a paused one)"
        )
    report = build_stimuli(study=study)
    if report.test_items == 0:
        raise StudyNotReady(
            study,
            "no test items to rate: check the failed generation jobs, and for 2AFC that each "
            "image has at least two conditions (within the bitrate band for the band plan)",
        )
    _move(study, (State.DRAFT,), State.LIVE, launched=timezone.now())
    return report


def pause(*, study: Study) -> None:
    """Stop accepting new raters; sessions already started may finish."""
    _move(study, (State.LIVE,), State.PAUSED)


def resume(*, study: Study) -> None:
    _move(study, (State.PAUSED,), State.LIVE)


def close(*, study: Study) -> None:
    """Final: no new raters; the judgments stay for analysis."""
    _move(study, (State.DRAFT, State.LIVE, State.PAUSED), State.CLOSED, closed=timezone.now())


def start_preview(*, study: Study) -> Session:
    """A session for a researcher to try the study as a rater; it takes no slots and is
    left out of every count (``Session.Platform.PREVIEW``)."""
    if not study.items.exists():
        raise StudyNotReady(study, "there is nothing to preview yet: build the stimuli first")
    return Session.objects.create(study=study, platform=Session.Platform.PREVIEW)


def _move(study: Study, sources: tuple[str, ...], target: str, **fields: object) -> None:
    moved = Study.objects.filter(pk=study.pk, state__in=sources).update(state=target, **fields)
    study.refresh_from_db()
    if not moved:
        allowed = " or ".join(sources)
        raise StudyNotReady(study, f"it is {study.state}; this needs a study that is {allowed}")
