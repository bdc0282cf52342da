"""What the study dashboard shows: pure queries returning dataclasses.

Preview sessions (researchers trying the study) are left out of every count. Coverage
counts the judgments of test trials (not practice, gold or consistency repeats), which
are what the items' ``Study.judgments_per_item`` target is about.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from perceptlab.codecs.generation import progress
from perceptlab.codecs.models import GenerationJob
from perceptlab.studies import guidance
from perceptlab.studies.adaptive import Progress, study_progress
from perceptlab.studies.models import Item, Judgment, Session, Stimulus, Study, Trial
from perceptlab.studies.stimuli import imported_codecs, imported_plan, study_jobs

QC_FLAGS = (
    "too_fast",
    "too_few_flips",
    "gold_failed",
    "inconsistent_repeat",
    "clock_mismatch",
    "pane_hidden",
    "pane_cut",
)


@dataclass(frozen=True)
class FailedJob:
    image: str
    codec: str
    target: str
    error: str


@dataclass(frozen=True)
class Generation:
    counts: dict[str, int]  # job state → number of jobs
    failed: list[FailedJob]
    note: str = ""  # why there are no jobs yet
    imported: list[str] = field(default_factory=list)  # the study's imported codecs (no jobs)
    imported_picks: int = 0  # (image, imported codec, target)s with a point
    imported_missing: list[str] = field(default_factory=list)  # … and those without

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return self.counts.get("done", 0) + self.counts.get("failed", 0)


@dataclass(frozen=True)
class ScreenedRater:
    rater: str
    reason: str


@dataclass(frozen=True)
class Raters:
    not_started: int  # consent or instructions
    active: int  # rating
    completed: int
    screened_out: int
    declined: int
    previews: int  # not counted anywhere else
    screened: list[ScreenedRater] = field(default_factory=list)


@dataclass(frozen=True)
class Condition:
    codec: str  # "original" for the hidden reference
    target_bpp: float | None
    achieved_bpp: float | None
    declared: bool = False  # an imported point whose bpp was declared, not measured


@dataclass(frozen=True)
class ItemRow:
    item_id: int
    image: str
    conditions: tuple[Condition, ...]  # one (ACR, DCR) or two (2AFC)
    assigned: int  # slots taken, answered or not (screened-out raters' slots are given back)
    judgments: int  # all test judgments of the item
    screened_judgments: int  # of those, from raters screened out since

    @property
    def valid(self) -> int:
        """Judgments that count: from raters not screened out."""
        return self.judgments - self.screened_judgments


@dataclass(frozen=True)
class Coverage:
    target: int  # judgments wanted per item
    rows: list[ItemRow]

    @property
    def items(self) -> int:
        return len(self.rows)

    @property
    def judgments(self) -> int:
        """All test judgments, screened-out raters' included."""
        return sum(row.judgments for row in self.rows)

    @property
    def valid(self) -> int:
        """Valid judgments towards the target: each item counts up to the target (an
        ACR-HR hidden reference is rated by every rater of its image)."""
        return sum(min(row.valid, self.target) for row in self.rows)

    @property
    def wanted(self) -> int:
        return self.items * self.target

    @property
    def minimum(self) -> int:
        return min((row.valid for row in self.rows), default=0)

    @property
    def median(self) -> float:
        return statistics.median([row.valid for row in self.rows]) if self.rows else 0.0

    @property
    def maximum(self) -> int:
        return max((row.valid for row in self.rows), default=0)


@dataclass(frozen=True)
class Timing:
    trials: int  # answered trials (practice excluded)
    median_server_ms: float | None
    median_view_ms: float | None


@dataclass(frozen=True)
class QualityControl:
    flags: dict[str, int]  # flag → judgments carrying it
    gold_answered: int
    gold_passed: int

    @property
    def gold_pass_rate(self) -> float | None:
        return self.gold_passed / self.gold_answered if self.gold_answered else None


@dataclass(frozen=True)
class Dashboard:
    generation: Generation
    raters: Raters
    coverage: Coverage
    timing: Timing
    quality: QualityControl
    adaptive: Progress | None = None  # an adaptive study's widths against its target


def study_dashboard(*, study: Study) -> Dashboard:
    return Dashboard(
        generation=generation(study=study),
        raters=raters(study=study),
        coverage=coverage(study=study),
        timing=timing(study=study),
        quality=quality_control(study=study),
        adaptive=_progress(study) if study.is_adaptive else None,
    )


def _progress(study: Study) -> Progress:
    return guidance.study_progress(study) if study.is_guided else study_progress(study)


def generation(*, study: Study) -> Generation:
    """Jobs by state and the failed ones with their errors (failed jobs stay failed here)."""
    if not study.study_images.exists():
        return Generation(counts={}, failed=[], note="stimuli not generated yet")
    jobs = study_jobs(study=study).jobs
    failed = sorted(
        (job for job in jobs if job.state == GenerationJob.State.FAILED),
        key=lambda j: (j.source.name, j.codec, j.target_bpp or 0.0),
    )
    imported = imported_plan(study=study)
    return Generation(
        counts=progress(jobs),
        failed=[FailedJob(j.source.name, j.codec, j.describe_target(), j.error) for j in failed],
        imported=imported_codecs(study),
        imported_picks=len(imported.picks),
        imported_missing=imported.missing,
    )


def _sessions(study: Study) -> QuerySet[Session]:
    return study.sessions.exclude(platform=Session.Platform.PREVIEW)


def raters(*, study: Study) -> Raters:
    counts = _sessions(study).order_by().values_list("state").annotate(n=Count("id"))
    by_state = Counter(dict(counts))
    screened = _sessions(study).filter(state=Session.State.SCREENED_OUT).order_by("finished")
    return Raters(
        not_started=by_state[Session.State.CONSENT] + by_state[Session.State.INSTRUCTIONS],
        active=by_state[Session.State.RATING],
        completed=by_state[Session.State.COMPLETED],
        screened_out=by_state[Session.State.SCREENED_OUT],
        declined=by_state[Session.State.DECLINED],
        previews=study.sessions.filter(platform=Session.Platform.PREVIEW).count(),
        screened=[ScreenedRater(str(s), s.screened_reason) for s in screened],
    )


def _condition(stimulus: Stimulus | None) -> Condition:
    if stimulus is None or stimulus.reconstruction is None:
        return Condition("original", None, None)
    r = stimulus.reconstruction
    return Condition(r.codec, stimulus.target(), r.achieved_bpp, r.bpp_is_declared)


def coverage(*, study: Study) -> Coverage:
    """Test judgments per test item (previews excluded), against the study's target."""
    counted = Q(
        trials__kind=Trial.Kind.TEST,
        trials__judgment__isnull=False,
    ) & ~Q(trials__session__platform=Session.Platform.PREVIEW)
    screened = counted & Q(trials__session__state=Session.State.SCREENED_OUT)
    items = (
        study.items.filter(kind=Item.Kind.TEST)
        .select_related("a__reconstruction", "a__study_image__source", "b__reconstruction")
        .annotate(n=Count("trials", filter=counted), n_screened=Count("trials", filter=screened))
        .order_by("id")
    )
    rows = [
        ItemRow(
            item_id=item.pk,
            image=item.a.study_image.source.name,
            conditions=tuple(_condition(s) for s in ((item.a, item.b) if item.b_id else (item.a,))),
            assigned=item.assigned,
            judgments=item.n,  # type: ignore[attr-defined]
            screened_judgments=item.n_screened,  # type: ignore[attr-defined]
        )
        for item in items
    ]
    return Coverage(target=study.judgments_per_item, rows=rows)


def _judgments(study: Study) -> QuerySet[Judgment]:
    return Judgment.objects.filter(trial__session__study=study).exclude(
        trial__session__platform=Session.Platform.PREVIEW
    )


def timing(*, study: Study) -> Timing:
    """Median time per answered trial, on the server's clock and the browser's."""
    rows = list(
        _judgments(study)
        .exclude(trial__kind=Trial.Kind.PRACTICE)
        .values_list("server_ms", "view_ms")
    )
    if not rows:
        return Timing(trials=0, median_server_ms=None, median_view_ms=None)
    return Timing(
        trials=len(rows),
        median_server_ms=float(statistics.median(server for server, _ in rows)),
        median_view_ms=float(statistics.median(view for _, view in rows)),
    )


def quality_control(*, study: Study) -> QualityControl:
    # JSON "contains" is not available on SQLite; the list's JSON text is, on every backend.
    judgments = (
        _judgments(study)
        .exclude(trial__kind=Trial.Kind.PRACTICE)
        .alias(flags_text=Cast("flags", output_field=TextField()))
    )
    flags = {flag: judgments.filter(flags_text__contains=f'"{flag}"').count() for flag in QC_FLAGS}
    golds = _judgments(study).filter(trial__kind=Trial.Kind.GOLD)
    return QualityControl(
        flags=flags,
        gold_answered=golds.count(),
        gold_passed=golds.filter(gold_passed=True).count(),
    )
