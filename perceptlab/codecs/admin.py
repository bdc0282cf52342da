"""Admin: image sets (upload, generate stimuli, progress), jobs and reconstructions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from perceptlab.codecs.base import CodecError
from perceptlab.codecs.generation import JobRequest, parse_bpps, plan_jobs
from perceptlab.codecs.intake import DuplicateImage, check_image, import_image
from perceptlab.codecs.models import GenerationJob, ImageSet, Reconstruction, SourceImage
from perceptlab.codecs.registry import REGISTRY, get_codec
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.lib.images import ImageRejected


def codec_choices_with_availability() -> list[tuple[str, str]]:
    """Registry choices; unavailable codecs keep their place and show why."""
    choices = []
    for slug in list(REGISTRY):
        try:
            state = get_codec(slug).availability()
            name = REGISTRY[slug].label  # after loading: a plugin's class gives its label
            label = name if state.available else f"{name} — unavailable: {state.reason}"
        except (ImportError, CodecError) as exc:
            label = f"{REGISTRY[slug].label} — unavailable: {exc}"
        choices.append((slug, label))
    return choices


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(f, initial) for f in files if f]


class ImageSetForm(forms.ModelForm):
    upload = MultipleFileField(
        required=False, widget=MultipleFileInput(), help_text="add images (several at once)"
    )
    generate_codecs = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Generate with codecs"
    )
    generate_bpps = forms.CharField(
        required=False, label="at target bpps", help_text="comma-separated, e.g. 0.1,0.25,0.5"
    )

    class Meta:
        model = ImageSet
        fields = ["name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["generate_codecs"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = codec_choices_with_availability()

    def clean_upload(self) -> list[Any]:
        """Refuse an upload none of whose files is an image we accept, so a new set is not
        created empty; the files after the first good one are checked as they are imported."""
        uploads: list[Any] = self.cleaned_data["upload"]
        refused = []
        for upload in uploads:
            try:
                check_image(name=upload.name, data=_read_upload(upload))
            except ImageRejected as exc:
                refused.append(str(exc))
            else:
                return uploads
        if refused:
            raise forms.ValidationError(
                [f"None of the {len(refused)} file(s) can be imported:", *refused]
            )
        return uploads

    def clean_generate_bpps(self) -> list[float]:
        text = self.cleaned_data["generate_bpps"]
        try:
            return parse_bpps(text) if text.strip() else []
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("generate_codecs")) != bool(data.get("generate_bpps")):
            raise forms.ValidationError("to generate stimuli, choose codecs and target bpps")
        for slug in data.get("generate_codecs") or []:
            state = get_codec(slug).availability()
            if not state.available:
                self.add_error("generate_codecs", f"{slug} is unavailable: {state.reason}")
        return data


def _read_upload(upload: Any) -> bytes:
    """The whole uploaded file, however often it was read before."""
    upload.seek(0)
    return bytes(upload.read())


class SourceImageInline(admin.TabularInline):
    model = SourceImage
    extra = 0
    can_delete = True
    fields = ("name", "width", "height", "source_format", "conversion_notes", "png_sha256")
    readonly_fields = fields


def progress_bar(done: int, total: int, failed: int = 0) -> str:
    if total == 0:
        return "—"
    percent = 100 * done // total
    return format_html(
        '<progress value="{}" max="{}"></progress> {}/{} ({}%){}',
        done,
        total,
        done,
        total,
        percent,
        f", {failed} failed" if failed else "",
    )


@admin.register(ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    form = ImageSetForm
    list_display = ["name", "image_count", "generation_progress", "created"]
    inlines = [SourceImageInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "upload"]}),
        ("Generate stimuli", {"fields": ["generate_codecs", "generate_bpps"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImageSet]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_images=Count("images", distinct=True),
                n_jobs=Count("images__jobs", distinct=True),
                n_done=Count("images__jobs", filter=Q(images__jobs__state="done"), distinct=True),
                n_failed=Count(
                    "images__jobs", filter=Q(images__jobs__state="failed"), distinct=True
                ),
            )
        )

    @admin.display(description="images", ordering="n_images")
    def image_count(self, obj: Any) -> int:
        return int(obj.n_images)

    @admin.display(description="stimuli generated")
    def generation_progress(self, obj: Any) -> str:
        return progress_bar(obj.n_done, obj.n_jobs, obj.n_failed)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        image_set = form.instance
        for upload in form.cleaned_data.get("upload") or []:
            try:
                image = import_image(
                    image_set=image_set, name=upload.name, data=_read_upload(upload)
                )
            except (ImageRejected, DuplicateImage) as exc:
                self.message_user(request, f"not imported: {exc}", messages.WARNING)
            else:
                notes = "; ".join(image.conversion_notes)
                self.message_user(
                    request, f"imported {image.name}" + (f" ({notes})" if notes else "")
                )
        codecs, bpps = (
            form.cleaned_data.get("generate_codecs"),
            form.cleaned_data.get("generate_bpps"),
        )
        if codecs and bpps:
            requests = [JobRequest(codec=c, target_bpp=b) for c in codecs for b in bpps]
            jobs = plan_jobs(sources=image_set.images.all(), requests=requests)
            count = enqueue_jobs(jobs)
            self.message_user(request, f"{count} generation job(s) enqueued for the worker")


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "source",
        "codec",
        "describe_target",
        "state",
        "attempts",
        "worker",
        "finished",
        "short_error",
    ]
    list_filter = ["state", "codec", "source__image_set"]
    search_fields = ["source__name", "codec", "error"]
    readonly_fields = [f.name for f in GenerationJob._meta.fields]
    actions = ["retry"]

    @admin.display(description="error")
    def short_error(self, obj: GenerationJob) -> str:
        return obj.error[:120]

    @admin.action(description="Retry selected jobs (failed or stuck)")
    def retry(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        queryset.exclude(state=GenerationJob.State.DONE).update(
            state=GenerationJob.State.PENDING, error="", lease_until=None
        )
        count = enqueue_jobs(list(queryset))
        self.message_user(request, f"{count} job(s) enqueued")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Reconstruction)
class ReconstructionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "source",
        "codec",
        "target_bpp",
        "achieved_bpp",
        "num_bytes",
        "encode_seconds",
        "decode_seconds",
        "created",
    ]
    list_filter = ["codec", "source__image_set"]
    search_fields = ["source__name", "codec", "bitstream_sha256", "png_sha256"]
    readonly_fields = [f.name for f in Reconstruction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ["name", "image_set", "width", "height", "source_format", "png_sha256"]
    list_filter = ["image_set"]
    readonly_fields = [f.name for f in SourceImage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
