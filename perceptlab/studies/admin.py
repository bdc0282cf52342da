"""Admin: build a study, run it (generate, build, preview, launch, pause, close), watch its
dashboard; sessions and judgments are read-only (they are the data)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html

from perceptlab.codecs import sideinputs
from perceptlab.codecs.admin import codec_choices_with_availability
from perceptlab.codecs.base import CodecError
from perceptlab.codecs.generation import parse_bpps, progress
from perceptlab.codecs.models import ImageSet, Reconstruction, SourceImage
from perceptlab.codecs.registry import get_codec, imported_entries, side_inputs_of
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.studies import access, lifecycle, participants
from perceptlab.studies.assignment import progress as session_progress
from perceptlab.studies.dashboard import QC_FLAGS, study_dashboard
from perceptlab.studies.models import (
    EXCLUDABLE_FLAGS,
    PAIRWISE_METHODS,
    DeviceClass,
    Judgment,
    Session,
    Study,
    StudyImage,
    Trial,
    default_devices,
    default_exclude_flags,
    default_gold_params,
)
from perceptlab.studies.stimuli import (
    BuildReport,
    StudyNotReady,
    build_stimuli,
    gold_overview,
    imported_plan,
    plan_generation,
)

# Settings that decide the stimuli, the items or what an answer means: fixed once raters
# may have seen the study.
LOCKED_WHEN_LAUNCHED = (
    "image_set",
    "method",
    "codecs",
    "target_bpps",
    "crop_width",
    "crop_height",
    "crop_mode",
    "seed",
    "scale",
    "hidden_reference",
    "dcr_layout",
    "allow_undecided",
    "triplet_mode",
    "boost_alpha",
    "pair_plan",
    "pair_band",
    "pair_budget",
    "sampling",
    "gold_codec",
    "gold_params",
)
STATUS_FIELDS = ("state", "created", "launched", "closed")

SECTIONS: dict[str, list[str]] = {
    "Study": ["name", "title", "method", "image_set", *STATUS_FIELDS],
    "Stimuli": ["codecs", "target_bpps", "crop_width", "crop_height", "crop_mode", "seed"],
    "Method settings": [
        "scale",
        "hidden_reference",
        "dcr_layout",
        "allow_undecided",
        "triplet_mode",
        "boost_alpha",
        "pair_plan",
        "pair_band",
        "pair_budget",
    ],
    "Assignment": ["judgments_per_item", "trials_per_session", "sampling", "target_width"],
    "Quality control": [
        "practice_trials",
        "gold_trials",
        "repeat_trials",
        "gold_codec",
        "gold_params",
        "gold_pass_fraction",
        "gold_min_answered",
        "min_view_seconds",
        "min_flips",
        "session_timeout_minutes",
    ],
    "Analysis: exclusion policy": [
        "exclude_flags",
        "max_gold_failure",
        "max_inconsistency",
        "max_lapse",
    ],
    "Raters' devices": ["allowed_devices"],
    "Objective metrics": ["cvvdp_display"],
    "Rater texts": ["consent_text", "instructions_text"],
    "Completion": ["completion_code", "completion_url", "screenout_code", "screenout_url"],
    "Access": ["owner", "collaborators"],
}
# The form's fields: every setting shown; the status changes only through the operations.
SETTINGS = [f for fields in SECTIONS.values() for f in fields if f not in STATUS_FIELDS]

# operation → button label; each is a POST on the change page and a changelist action.
OPERATIONS = {
    "generate": "Generate stimuli",
    "build": "Build stimuli",
    "metrics": "Compute metrics",
    "preview": "Preview as a rater",
    "launch": "Launch",
    "pause": "Pause",
    "resume": "Resume",
    "close": "Close",
}
# Operations a later layer carries out (the evaluation app contributes "metrics" from its
# AppConfig.ready): studies never imports evaluation. Each takes the study and returns what
# to tell the user, or raises StudyNotReady.
ContributedOperation = Callable[[Study], str]
CONTRIBUTABLE = frozenset({"metrics"})
CONTRIBUTED: dict[str, ContributedOperation] = {}


def contribute_operation(name: str, handler: ContributedOperation) -> None:
    """Offer ``handler`` as the study operation ``name`` (a key of :data:`OPERATIONS`)."""
    if name not in CONTRIBUTABLE:
        raise ValueError(
            f"no study operation {name!r} to contribute; known: {sorted(CONTRIBUTABLE)}"
        )
    CONTRIBUTED[name] = handler


PROLIFIC_QUERY = (
    "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
)


def _unavailable_reason(slug: str) -> str:
    try:
        state = get_codec(slug).availability()
    except (ImportError, CodecError) as exc:
        return str(exc)
    return "" if state.available else state.reason


def side_inputs_problem(slug: str, image_set: ImageSet) -> str:
    """For a codec that encodes with per-image inputs (GC's selective mode): which images of
    the set still lack them ("" when every image has them, or the codec needs none)."""
    needed = side_inputs_of(slug)
    if not needed:
        return ""
    lacking = [s.name for s in image_set.images.all() if sideinputs.missing(s)]
    if not lacking:
        return ""
    shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
    return (
        f"{slug} needs a {' and a '.join(needed)} for every image; {len(lacking)} of "
        f"{image_set.images.count()} images of {image_set.name!r} lack them ({shown}): upload "
        "them on each image's admin page (Codecs → Source images)"
    )


def imported_images(slug: str, image_set: ImageSet) -> int:
    """How many of the set's images the imported codec ``slug`` has reconstructions of."""
    imported = Reconstruction.objects.filter(
        codec=slug, imported__isnull=False, source__image_set=image_set
    )
    return imported.values("source").distinct().count()


def _formfield(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"  # Django 6's default; platform URLs are https
    return db_field.formfield(**kwargs)


class StudyForm(forms.ModelForm):
    codecs = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="each image is encoded with every codec"
    )
    target_bpps = forms.CharField(
        label="Target bpps", help_text="comma-separated bits per pixel, e.g. 0.25, 0.5, 1"
    )
    allowed_devices = forms.MultipleChoiceField(
        choices=DeviceClass.choices,
        initial=default_devices,
        widget=forms.CheckboxSelectMultiple,
        help_text="raters on other devices are told so at the instructions and screened out "
        "(a phone shows a 512-pixel crop about 1.4 cm wide)",
    )
    exclude_flags = forms.MultipleChoiceField(
        choices=EXCLUDABLE_FLAGS,
        initial=default_exclude_flags,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Exclude judgments flagged",
        help_text="the report's default; a researcher may change it on the report page",
    )
    gold_codec = forms.ChoiceField(
        initial="jpeg",
        help_text="the heavy compression raters must tell from the original: the 2AFC gold, "
        "and the degraded ACR/DCR practice image",
    )

    class Meta:
        model = Study
        fields = SETTINGS
        formfield_callback = _formfield

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a study may show imported codecs; the gold must be encoded here
        for name, imported in (("codecs", True), ("gold_codec", False)):
            field = self.fields.get(name)
            if isinstance(field, forms.ChoiceField):
                field.choices = codec_choices_with_availability(imported=imported)
        if "target_bpps" in self.fields and isinstance(self.initial.get("target_bpps"), list):
            self.initial["target_bpps"] = ", ".join(f"{b:g}" for b in self.initial["target_bpps"])

    def clean_codecs(self) -> list[str]:
        slugs: list[str] = self.cleaned_data["codecs"]
        imported = imported_entries()  # nothing to run: their stimuli are files
        reasons = {slug: _unavailable_reason(slug) for slug in slugs if slug not in imported}
        errors = [f"{slug} is unavailable: {reason}" for slug, reason in reasons.items() if reason]
        if errors:
            raise forms.ValidationError(errors)
        return slugs

    def clean_target_bpps(self) -> list[float]:
        try:
            return sorted(set(parse_bpps(self.cleaned_data["target_bpps"])))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "gold_codec" in self.fields and data.get("gold_codec"):
            self._check_gold(data["gold_codec"], data.get("gold_params"), data)
        image_set, imported = data.get("image_set"), imported_entries()
        for slug in [s for s in data.get("codecs") or [] if s in imported]:
            if image_set is not None and not imported_images(slug, image_set):
                self.add_error(
                    "codecs",
                    f"{slug} (imported) has no reconstruction of set {image_set.name!r}; "
                    "import them first (manage.py import_reconstructions --set "
                    f"{image_set.name} --codec {slug} ...)",
                )
        for slug in [s for s in data.get("codecs") or [] if s not in imported]:
            if image_set is not None:
                problem = side_inputs_problem(slug, image_set)
                if problem:
                    self.add_error("codecs", problem)
        return data

    def _check_gold(self, slug: str, params: object, data: dict[str, Any]) -> None:
        if params is None or params == {}:
            # Not the codec's own defaults: JPEG at quality 75 is no gold.
            params = data["gold_params"] = default_gold_params()
        if not isinstance(params, dict):
            self.add_error("gold_params", 'expected a JSON object, e.g. {"quality": 5}')
            return
        try:
            get_codec(slug).validate_params(params)
        except CodecError as exc:
            self.add_error("gold_params", str(exc))
        practice = data.get("practice_trials")
        gold = data.get("gold_trials") if data.get("method") in PAIRWISE_METHODS else 0
        reason = _unavailable_reason(slug)
        if (gold or practice) and reason:
            self.add_error("gold_codec", f"{slug} is unavailable: {reason}")


class StudyImageInline(admin.TabularInline):
    model = StudyImage
    extra = 0
    fields = ("source", "crop_x", "crop_y", "crop_preview")
    readonly_fields = ("crop_preview",)
    verbose_name = "image and crop"
    verbose_name_plural = "crop plan (created from the image set when stimuli are generated)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        source = formset.form.base_fields.get("source")
        if isinstance(source, forms.ModelChoiceField):
            images = SourceImage.objects.filter(image_set_id=obj.image_set_id) if obj else None
            source.queryset = images if images is not None else SourceImage.objects.none()
        return formset

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.state != Study.State.DRAFT:
            return self.fields
        return self.readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.state == Study.State.DRAFT) and super().has_add_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.state == Study.State.DRAFT) and super().has_delete_permission(
            request, obj
        )

    @admin.display(description="crop")
    def crop_preview(self, obj: StudyImage) -> str:
        """The whole image, 120 px wide, with the crop outlined."""
        if obj.pk is None:
            return "—"
        x, y, width, height = obj.crop_box()
        scale = 120 / obj.source.width
        return format_html(
            '<div style="position:relative;width:120px;height:{}px;'
            'background:url({}) 0 0/100% 100%">'
            '<div style="position:absolute;left:{}px;top:{}px;width:{}px;height:{}px;'
            'outline:2px solid #e0f"></div></div>',
            round(obj.source.height * scale),
            obj.source.png.url,
            round(x * scale),
            round(y * scale),
            round(width * scale),
            round(height * scale),
        )


def invitation_url(request: HttpRequest, study: Study) -> str | None:
    """The absolute rater link, or None if the rater pages are not installed."""
    try:
        return request.build_absolute_uri(reverse("studies:join", args=[study.invite]))
    except NoReverseMatch:
        return None


def _bulk(operation: str) -> Callable[..., HttpResponse | None]:
    """The changelist action running ``operation`` on every selected study."""

    def action(
        modeladmin: StudyAdmin, request: HttpRequest, queryset: QuerySet[Study]
    ) -> HttpResponse | None:
        studies = list(queryset)
        if operation == "preview" and len(studies) != 1:
            modeladmin.message_user(request, "select one study to preview", messages.ERROR)
            return None
        responses = [modeladmin.run_operation(request, study, operation) for study in studies]
        return next((r for r in responses if r is not None), None)

    action.__name__ = operation
    return admin.action(description=OPERATIONS[operation], permissions=["change"])(action)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    form = StudyForm
    inlines = [StudyImageInline]
    list_display = [
        "name",
        "title",
        "method",
        "state",
        "image_set",
        "item_count",
        "completed_count",
        "dashboard_link",
    ]
    list_filter = ["state", "method"]
    search_fields = ["name", "title"]
    actions = [*(_bulk(operation) for operation in OPERATIONS), "download_prolific_approvals"]
    fieldsets = [(title, {"fields": tuple(fields)}) for title, fields in SECTIONS.items()]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"  # Django 6's default; platform URLs are https
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The owner is set at creation; only a superuser hands a study to someone else.
        owner = () if request.user.is_superuser else ("owner",)
        if obj is not None and obj.state != Study.State.DRAFT:
            return (*STATUS_FIELDS, *LOCKED_WHEN_LAUNCHED, *owner)
        return (*STATUS_FIELDS, *owner)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "collaborators":
            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True)
            kwargs["widget"] = FilteredSelectMultiple("collaborators", is_stacked=False)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Study, form: Any, change: bool) -> None:
        if not change and obj.owner_id is None:
            obj.owner = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    # Object-level access (studies/access.py): the list holds the studies the user sees.

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or access.sees_any(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return super().has_view_permission(request) or access.sees_any(request.user)
        return access.can_view(request.user, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return super().has_change_permission(request)
        return access.can_change(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or access.can_view(request.user, obj))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        completed = Q(sessions__state=Session.State.COMPLETED) & ~Q(
            sessions__platform=Session.Platform.PREVIEW
        )
        return (
            super()
            .get_queryset(request)
            .filter(pk__in=access.visible_studies(request.user).values("pk"))
            .select_related("image_set")
            .annotate(
                n_items=Count("items", filter=Q(items__kind="test"), distinct=True),
                n_completed=Count("sessions", filter=completed, distinct=True),
            )
        )

    @admin.display(description="items", ordering="n_items")
    def item_count(self, obj: Any) -> int:
        return int(obj.n_items)

    @admin.display(description="raters completed", ordering="n_completed")
    def completed_count(self, obj: Any) -> int:
        return int(obj.n_completed)

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: Study) -> str:
        return format_html('<a href="{}">dashboard</a>', self._url("dashboard", obj.pk))

    def _url(self, view: str, *args: object) -> str:
        return reverse(f"admin:studies_study_{view}", args=args, current_app=self.admin_site.name)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/dashboard/",
                wrap(self.dashboard_view),
                name="studies_study_dashboard",
            ),
            path(
                "<path:object_id>/run/<slug:operation>/",
                wrap(self.operation_view),
                name="studies_study_run",
            ),
            *super().get_urls(),
        ]

    def _study(self, request: HttpRequest, object_id: str) -> Study:
        """The study, whoever may see it: the caller's permission check then answers 403
        to staff outside it (the admin's list hides it from them)."""
        key = unquote(object_id)
        study = Study.objects.filter(pk=key).first() if key.isdigit() else None
        if study is None:
            raise Http404(f"no study with id {object_id!r}")
        return study

    def dashboard_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        study = self._study(request, object_id)
        if not self.has_view_permission(request, study):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Dashboard: {study.name}",
            "study": study,
            "dashboard": study_dashboard(study=study),
            "invitation_url": invitation_url(request, study) if study.launched else None,
            "change_url": self._url("change", study.pk),
        }
        return TemplateResponse(request, "admin/studies/study/dashboard.html", context)

    def operation_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if operation not in OPERATIONS:
            raise Http404(f"unknown operation {operation!r}; valid: {list(OPERATIONS)}")
        study = self._study(request, object_id)
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        response = self.run_operation(request, study, operation)
        return response or redirect(self._url("change", study.pk))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        study = self.get_object(request, unquote(object_id))
        if study is not None:
            extra_context = {
                **(extra_context or {}),
                "operations": [
                    (name, OPERATIONS[name], self._url("run", study.pk, name))
                    for name in available_operations(study)
                ],
                "dashboard_url": self._url("dashboard", study.pk),
                "report_url": reverse("evaluation:report", args=[study.pk]),
                "invitation_url": invitation_url(request, study) if study.launched else None,
                "prolific_query": PROLIFIC_QUERY,
                "gold": gold_overview(study=study),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # Operations: one domain call each, its outcome told through messages.

    def run_operation(self, request: HttpRequest, study: Study, operation: str) -> Any:
        handlers: dict[str, Callable[[HttpRequest, Study], HttpResponse | None]] = {
            "generate": self._generate,
            "build": self._build,
            "preview": self._preview,
            "launch": self._launch,
            "pause": self._pause,
            "resume": self._resume,
            "close": self._close,
        }
        try:
            if operation in CONTRIBUTED:
                return self._contributed(request, study, operation)
            return handlers[operation](request, study)
        except StudyNotReady as exc:
            self.message_user(request, f"{study}: {exc.reason}", messages.ERROR)
        except CodecError as exc:
            self.message_user(request, f"{study}: {exc}", messages.ERROR)
        return None

    def _generate(self, request: HttpRequest, study: Study) -> None:
        jobs = plan_generation(study=study)
        enqueued = enqueue_jobs(jobs)
        counts = progress(jobs)
        waiting = counts["pending"] + counts["running"]
        self.message_user(
            request,
            f"{study}: {len(jobs)} generation job(s), {enqueued} enqueued for the worker; "
            f"{counts['done']} done, {counts['failed']} failed, {waiting} waiting",
        )
        imported = imported_plan(study=study)
        if imported.picks or imported.missing:
            self.message_user(
                request,
                f"{study}: {len(imported.picks)} stimuli from imported points (no jobs: the "
                "nearest point per image and target)",
            )
        if imported.missing:
            shown = "; ".join(imported.missing[:10])
            more = f" and {len(imported.missing) - 10} more" if len(imported.missing) > 10 else ""
            self.message_user(request, f"{study}: missing: {shown}{more}", messages.WARNING)

    def _report(self, request: HttpRequest, study: Study, report: BuildReport, done: str) -> None:
        self.message_user(
            request,
            f"{study}: {done}: {report.stimuli} stimuli, {report.test_items} test items, "
            f"{report.gold_items} gold items, {report.practice_items} practice items",
        )
        lists: dict[str, Sequence[object]] = {
            "missing (failed jobs)": report.missing,
            "refused, no item": report.refused,
            "check": report.warnings,
        }
        for title, entries in lists.items():
            if entries:
                shown = "; ".join(str(entry) for entry in entries[:10])
                more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
                self.message_user(request, f"{study}: {title}: {shown}{more}", messages.WARNING)

    def _build(self, request: HttpRequest, study: Study) -> None:
        self._report(request, study, build_stimuli(study=study), "built")

    def _contributed(self, request: HttpRequest, study: Study, operation: str) -> None:
        self.message_user(request, f"{study}: {CONTRIBUTED[operation](study)}")

    def _launch(self, request: HttpRequest, study: Study) -> None:
        self._report(request, study, lifecycle.launch(study=study), "launched")
        link = invitation_url(request, study)
        if link:
            self.message_user(request, f"{study}: raters join at {link}")

    def _preview(self, request: HttpRequest, study: Study) -> HttpResponse:
        session = lifecycle.start_preview(study=study)
        return redirect(reverse("studies:session", args=[session.code]))

    def _pause(self, request: HttpRequest, study: Study) -> None:
        lifecycle.pause(study=study)
        self.message_user(request, f"{study}: paused; no new raters until it is resumed")

    def _resume(self, request: HttpRequest, study: Study) -> None:
        lifecycle.resume(study=study)
        self.message_user(request, f"{study}: live again")

    def _close(self, request: HttpRequest, study: Study) -> None:
        lifecycle.close(study=study)
        self.message_user(request, f"{study}: closed")

    @admin.action(description="Download Prolific approval CSV", permissions=["view"])
    def download_prolific_approvals(
        self, request: HttpRequest, queryset: QuerySet[Study]
    ) -> HttpResponse | None:
        studies = list(queryset)
        if len(studies) != 1:
            self.message_user(request, "select one study for its approval CSV", messages.ERROR)
            return None
        study = studies[0]
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{study.name}-prolific-approvals.csv"'
        )
        participants.write_approvals(participants.approval_rows(study=study), response)
        return response


def available_operations(study: Study) -> list[str]:
    """The operations offered as buttons for the study's state."""
    state = Study.State
    if study.state == state.CLOSED:
        names = ["metrics", "preview"]
    else:
        step = {state.DRAFT: "launch", state.LIVE: "pause", state.PAUSED: "resume"}
        names = ["generate", "build", "metrics", "preview", step[state(study.state)], "close"]
    return [name for name in names if name not in CONTRIBUTABLE or name in CONTRIBUTED]


class TrialInline(admin.TabularInline):
    model = Trial
    extra = 0
    can_delete = False
    fields = ("position", "kind", "item", "swapped", "holds_slot", "assigned", "shown", "answer")
    readonly_fields = fields

    @admin.display(description="answer")
    def answer(self, obj: Trial) -> str:
        judgment = getattr(obj, "judgment", None)
        if judgment is None:
            return "—"
        value = judgment.choice or f"{judgment.score:g}"
        return f"{value} {judgment.flags}" if judgment.flags else value

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """The rating data: viewable, never added, edited or deleted through the admin; each
    user sees the data of the studies they see (``study_path`` leads to the study)."""

    study_path = "study"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = access.visible_studies(request.user).values("pk")
        return super().get_queryset(request).filter(**{f"{self.study_path}__in": visible})

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "study",
        "platform",
        "participant_id",
        "state",
        "progress",
        "created",
    ]
    list_filter = [("study", admin.RelatedOnlyFieldListFilter), "state", "platform"]
    list_select_related = ["study"]
    search_fields = ["participant_id", "code"]
    inlines = [TrialInline]
    actions = ["delete_participants_data"]

    @admin.display(description="answered")
    def progress(self, obj: Session) -> str:
        answered, total = session_progress(session=obj)
        return f"{answered}/{total}"

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Deleting a participant's data on request (GDPR) needs the delete permission on
        sessions; the admin's own delete stays off, it would keep the slots taken."""
        return request.user.has_perm(f"{self.opts.app_label}.delete_session")

    @admin.action(description="Delete the selected participants' data", permissions=["erase"])
    def delete_participants_data(
        self, request: HttpRequest, queryset: QuerySet[Session]
    ) -> HttpResponse | None:
        """Asks for confirmation first (listing what goes), then deletes each session."""
        chosen = list(queryset.select_related("study"))
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Delete the selected participants' data?",
                "sessions": chosen,
                "deletions": [participants.deletion_of(session=s) for s in chosen],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/studies/session/delete_participants.html", context
            )
        for session in chosen:
            deleted = participants.delete_participant(session=session)
            self.message_user(request, f"deleted {deleted}")
        return None


class FlagFilter(admin.SimpleListFilter):
    title = "quality-control flag"
    parameter_name = "flag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(flag, flag) for flag in QC_FLAGS] + [("none", "no flags")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        # JSON "contains" is not available on SQLite; the list's JSON text is.
        flagged = queryset.alias(flags_text=Cast("flags", output_field=TextField()))
        if value == "none":
            return flagged.filter(flags_text="[]")
        return flagged.filter(flags_text__contains=f'"{value}"')


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    study_path = "trial__session__study"
    list_display = [
        "__str__",
        "study",
        "trial_kind",
        "score",
        "choice",
        "flags",
        "gold_passed",
        "view_ms",
        "server_ms",
        "created",
    ]
    list_filter = [
        ("trial__session__study", admin.RelatedOnlyFieldListFilter),
        FlagFilter,
        "trial__kind",
        "gold_passed",
    ]
    list_select_related = ["trial__session__study"]

    @admin.display(description="study", ordering="trial__session__study")
    def study(self, obj: Judgment) -> Study:
        return obj.trial.session.study

    @admin.display(description="trial", ordering="trial__kind")
    def trial_kind(self, obj: Judgment) -> str:
        return obj.trial.kind
