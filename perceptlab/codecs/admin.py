"""Admin: image sets (upload, generate stimuli, progress), jobs, reconstructions and
imported codecs (the "Import reconstructions" form)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from perceptlab.codecs import sideinputs
from perceptlab.codecs.base import CodecError
from perceptlab.codecs.generation import JobRequest, parse_bpps, plan_jobs
from perceptlab.codecs.imported import (
    LAYOUT,
    ImportFile,
    ImportRefused,
    ImportResult,
    Rates,
    files_from_zip,
    holdings,
    import_reconstructions,
)
from perceptlab.codecs.intake import DuplicateImage, check_image, import_image
from perceptlab.codecs.models import (
    GenerationJob,
    ImageSet,
    ImportedCodec,
    Reconstruction,
    SourceImage,
)
from perceptlab.codecs.neural.cards import codec_floor
from perceptlab.codecs.neural.codec import NeuralCodec
from perceptlab.codecs.registry import REGISTRY, get_codec
from perceptlab.codecs.tasks import enqueue_jobs
from perceptlab.lib.images import ImageRejected


def codec_choices_with_availability(*, imported: bool = False) -> list[tuple[str, str]]:
    """Registry choices; unavailable codecs keep their place and show why. With
    ``imported``, the imported codecs follow (read from the database): a study may show
    them, but they never encode (no generating, no gold)."""
    choices = []
    for slug in list(REGISTRY):
        try:
            codec = get_codec(slug)
            state = codec.availability()
            name = REGISTRY[slug].label  # after loading: a plugin's class gives its label
            label = name if state.available else f"{name} — unavailable: {state.reason}"
            if state.available and isinstance(codec, NeuralCodec):
                if not codec_floor(codec).passes:
                    label += " — demonstrator: below the photographic floor (see its model card)"
        except (ImportError, CodecError) as exc:
            label = f"{REGISTRY[slug].label} — unavailable: {exc}"
        choices.append((slug, label))
    if imported:
        for entry in ImportedCodec.objects.exclude(slug__in=list(REGISTRY)):
            held = holdings(entry).describe()
            choices.append((entry.slug, f"{entry.display_label} — imported: {held}"))
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
        "bpp_source",
        "num_bytes",
        "encode_seconds",
        "decode_seconds",
        "created",
    ]
    list_filter = ["codec", "bpp_source", "source__image_set"]
    search_fields = ["source__name", "codec", "bitstream_sha256", "png_sha256"]
    readonly_fields = [f.name for f in Reconstruction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class SideInputsForm(forms.ModelForm):
    """The image's per-image codec inputs (GC's selective mode): a semantic label map and a
    preserved-region mask, each a one-channel PNG of the image's size, checked on upload
    (:mod:`perceptlab.codecs.sideinputs`); the image itself cannot be changed."""

    label_map_upload = forms.FileField(
        required=False,
        label="Semantic label map",
        help_text="one-channel PNG of class indices (mode L or P), the image's size",
    )
    preserve_mask_upload = forms.FileField(
        required=False,
        label="Preserved-region mask",
        help_text="one-channel PNG (mode 1 or L), the image's size; non-zero = preserved",
    )

    class Meta:
        model = SourceImage
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        size = (self.instance.width, self.instance.height)
        readers = {
            "label_map_upload": sideinputs.read_label_map,
            "preserve_mask_upload": sideinputs.read_mask,
        }
        for field, read in readers.items():
            upload = data.get(field)
            if upload:
                content = upload.read()
                try:
                    read(content, size=size)
                except sideinputs.SideInputError as error:
                    self.add_error(field, str(error))
                data[field] = content
        return data

    def save(self, commit: bool = True) -> SourceImage:
        source = super().save(commit=commit)
        sideinputs.attach(
            source,
            label_map=self.cleaned_data.get("label_map_upload") or None,
            mask=self.cleaned_data.get("preserve_mask_upload") or None,
        )
        return source


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "image_set",
        "width",
        "height",
        "source_format",
        "side_inputs",
        "png_sha256",
    ]
    list_filter = ["image_set"]
    form = SideInputsForm
    readonly_fields = [f.name for f in SourceImage._meta.fields]
    # The uploads first: the rest cannot change, and an upload's error shows without scrolling.
    fieldsets = [
        (
            "Per-image codec inputs (GC selective mode, gc-sc)",
            {"fields": ["label_map_upload", "preserve_mask_upload"]},
        ),
        (None, {"fields": tuple(readonly_fields)}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="label map / mask")
    def side_inputs(self, source: SourceImage) -> str:
        lacking = sideinputs.missing(source)
        return "both" if not lacking else "none" if len(lacking) == 2 else f"no {lacking[0]}"


class ImportReconstructionsForm(forms.Form):
    """What ``manage.py import_reconstructions`` takes, as uploads (the same import runs)."""

    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.all())
    codec = forms.SlugField(
        max_length=50,
        help_text="the codec's name in studies (e.g. my-gan); an imported codec of this name "
        "gets the new points",
    )
    label = forms.CharField(max_length=200, required=False, help_text="display name")
    version = forms.CharField(max_length=200, required=False)
    images_zip = forms.FileField(
        required=False, label="Decoded images (zip)", help_text=f"one folder per point: {LAYOUT}"
    )
    images = MultipleFileField(
        required=False,
        widget=MultipleFileInput(),
        label="or decoded images (files)",
        help_text="several files of one rate point, each named after its source image",
    )
    point = forms.CharField(
        max_length=50, required=False, help_text="the rate point of files not in a point folder"
    )
    bitstreams_zip = forms.FileField(
        required=False, label="Bitstreams (zip)", help_text="same layout: bpp measured"
    )
    bpp_csv = forms.FileField(
        required=False, label="or bpp table (CSV)", help_text="columns image, point, bpp: declared"
    )
    replace = forms.BooleanField(
        required=False, help_text="replace the points this codec already has in the set"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("images_zip")) == bool(data.get("images")):
            raise forms.ValidationError("upload the decoded images: a zip, or files (not both)")
        if bool(data.get("bitstreams_zip")) == bool(data.get("bpp_csv")):
            raise forms.ValidationError(
                "give the rates: a zip of bitstreams (bpp measured) or a bpp CSV (declared), "
                "not both"
            )
        return data

    def run(self) -> ImportResult:
        """The import; raises :class:`ImportRefused` with one line per problem."""
        data = self.cleaned_data
        # The uploads are read in place (Django spools large ones to temporary files),
        # one file at a time.
        if data["images_zip"]:
            upload = data["images_zip"]
            files = files_from_zip(upload, name=upload.name)
        else:
            files = [ImportFile.of_upload(u) for u in data["images"]]
        if data["bitstreams_zip"]:
            upload = data["bitstreams_zip"]
            rates = Rates(bitstreams=files_from_zip(upload, name=upload.name))
        else:
            rates = Rates(csv_name=data["bpp_csv"].name, csv_data=_read_upload(data["bpp_csv"]))
        return import_reconstructions(
            image_set=data["image_set"],
            codec=data["codec"],
            files=files,
            rates=rates,
            point=data["point"].strip(),
            version=data["version"].strip(),
            label=data["label"].strip(),
            replace=data["replace"],
        )


@admin.register(ImportedCodec)
class ImportedCodecAdmin(admin.ModelAdmin):
    list_display = ["slug", "label", "held", "created"]
    search_fields = ["slug", "label"]
    fields = ["slug", "label", "held", "created"]
    readonly_fields = ["slug", "held", "created"]
    change_list_template = "admin/codecs/importedcodec/change_list.html"

    @admin.display(description="reconstructions")
    def held(self, obj: ImportedCodec) -> str:
        summary = holdings(obj)
        versions = ", ".join(summary.versions) or "—"
        return f"{summary.describe()}; version {versions}; sets {', '.join(summary.sets) or '—'}"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="codecs_importedcodec_import"), *super().get_urls()]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return redirect("admin:codecs_importedcodec_import")

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportReconstructionsForm(request.POST or None, request.FILES or None)
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                result = form.run()
            except ImportRefused as exc:
                problems = exc.problems
            else:
                self.message_user(request, _imported_message(result))
                return redirect(reverse("admin:codecs_importedcodec_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import reconstructions",
            "form": form,
            "problems": problems,
            "layout": LAYOUT,
        }
        return TemplateResponse(request, "admin/codecs/importedcodec/import.html", context)


def _imported_message(result: ImportResult) -> str:
    replaced = f" ({result.replaced} replaced)" if result.replaced else ""
    return (
        f"{result.codec.slug}: {len(result.reconstructions)} reconstruction(s) imported at "
        f"point(s) {', '.join(result.points)}{replaced}"
    )
