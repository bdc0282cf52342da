"""Source images, generation jobs and the reconstructions (stimuli) they produce, and the
imported codecs whose reconstructions came as files (``import_reconstructions``).

Identity is always names plus versions (codec slug, codec version, exact parameters,
SHA-256 of every file), never positions in a list, so a reconstruction can be reproduced
and checked long after the registry has changed.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ImageSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SourceImage(models.Model):
    """A source image, stored as a lossless 8-bit RGB PNG."""

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="images")
    name = models.CharField(max_length=255, help_text="file name it was imported from")
    png = models.FileField(upload_to="sources/", max_length=255)
    png_sha256 = models.CharField(max_length=64)
    pixels_sha256 = models.CharField(
        max_length=64, help_text="hash of the decoded pixels: finds duplicates by content"
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source_format = models.CharField(max_length=32)
    source_mode = models.CharField(max_length=16)
    conversion_notes = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # What a codec with per-image inputs (GC's selective mode, gc-sc) encodes with besides
    # the pixels: a semantic label map (8-bit class indices) and the mask of regions to
    # preserve; uploaded on the image's admin page (perceptlab/codecs/sideinputs.py).
    label_map = models.FileField(upload_to="labels/", max_length=255, blank=True)
    label_map_sha256 = models.CharField(max_length=64, blank=True)
    preserve_mask = models.FileField(upload_to="masks/", max_length=255, blank=True)
    preserve_mask_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["image_set", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["image_set", "pixels_sha256"], name="unique_image_content_per_set"
            ),
            models.UniqueConstraint(fields=["image_set", "name"], name="unique_image_name_per_set"),
        ]

    def __str__(self) -> str:
        return f"{self.image_set.name}/{self.name}"

    @property
    def pixel_count(self) -> int:
        return self.width * self.height


class ImportedCodec(models.Model):
    """A codec known only by its decoded images: the researcher's reconstructions imported
    as files (``manage.py import_reconstructions`` or the admin's import form).

    Its slug is a codec slug like the registry's (a study names it in ``Study.codecs``), but
    it cannot encode: a study takes, per image and target, its imported point nearest the
    target. Each reconstruction records its own version and whether its bpp was measured
    from a bitstream file or declared in a table (``Reconstruction.bpp_source``).
    """

    slug = models.SlugField(max_length=50, unique=True, help_text="the codec's name in studies")
    label = models.CharField(max_length=200, blank=True, help_text="display name")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def display_label(self) -> str:
        return self.label or self.slug


class BppSource(models.TextChoices):
    """Where a reconstruction's bpp comes from."""

    MEASURED = "measured", "measured: 8 · bytes / (H · W) of its bitstream"
    DECLARED = "declared", "declared by the researcher (no bitstream)"


class Reconstruction(models.Model):
    """One encoded-and-decoded image: a stimulus raters may see.

    Generated ones come from a :class:`GenerationJob`; imported ones (``imported`` set) from
    the researcher's files, their rate point in ``params["point"]``. Only an imported one
    without bitstream has a declared bpp, no bitstream file and no byte count.
    """

    source = models.ForeignKey(
        SourceImage, on_delete=models.CASCADE, related_name="reconstructions"
    )
    codec = models.CharField(max_length=50, help_text="registry slug")
    codec_version = models.CharField(max_length=200)
    params = models.JSONField(help_text="exact parameters the bitstream was encoded with")
    target_bpp = models.FloatField(null=True, blank=True)
    achieved_bpp = models.FloatField(help_text="8 · bytes / (H · W) of the bitstream")
    bpp_source = models.CharField(
        max_length=8, choices=BppSource.choices, default=BppSource.MEASURED
    )
    num_bytes = models.PositiveIntegerField(
        null=True, blank=True, help_text="bitstream size (empty: bpp declared, no bitstream)"
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bitstream = models.FileField(upload_to="bitstreams/", max_length=255, blank=True)
    bitstream_sha256 = models.CharField(max_length=64, blank=True)
    png = models.FileField(upload_to="reconstructions/", max_length=255)
    png_sha256 = models.CharField(max_length=64)
    weights_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the weight file a learned codec encoded with (empty: no weights)",
    )
    encode_seconds = models.FloatField(null=True, blank=True, help_text="empty: imported")
    decode_seconds = models.FloatField(null=True, blank=True, help_text="empty: imported")
    rate_control = models.JSONField(default=dict, blank=True)
    imported = models.ForeignKey(
        ImportedCodec,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="reconstructions",
        help_text="the imported codec it belongs to (empty: generated here)",
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source", "codec", "achieved_bpp"]
        indexes = [models.Index(fields=["codec", "target_bpp"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(bpp_source=BppSource.MEASURED, num_bytes__isnull=False)
                | Q(bpp_source=BppSource.DECLARED, imported__isnull=False),
                name="reconstruction_bpp_measured_or_imported_declared",
            ),
        ]

    def __str__(self) -> str:
        declared = " (declared)" if self.bpp_is_declared else ""
        return f"{self.source} · {self.codec} · {self.achieved_bpp:.3f} bpp{declared}"

    @property
    def bpp_is_declared(self) -> bool:
        return self.bpp_source == BppSource.DECLARED

    @property
    def point(self) -> str:
        """An imported reconstruction's rate point ("" for generated ones)."""
        return str(self.params.get("point", "")) if self.imported_id is not None else ""


class GenerationJob(models.Model):
    """Make one reconstruction: (image, codec, target) with rate control, or fixed params.

    Exactly one of ``target_bpp``, ``fixed_params`` and ``match`` says what to make;
    ``key`` is a hash of that request, so asking twice finds the same job.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    key = models.CharField(max_length=64, unique=True)
    source = models.ForeignKey(SourceImage, on_delete=models.CASCADE, related_name="jobs")
    codec = models.CharField(max_length=50, help_text="registry slug")
    target_bpp = models.FloatField(null=True, blank=True)
    fixed_params = models.JSONField(null=True, blank=True)
    base_params = models.JSONField(
        default=dict, blank=True, help_text="parameters held fixed while rate control runs"
    )
    match = models.ForeignKey(
        Reconstruction,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="matched_by",
        help_text="rate-matched: encode at this reconstruction's size",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="renewed by the running worker's heartbeat"
    )
    task_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="the django-tasks task last enqueued to run this job (blank: never enqueued)",
    )
    error = models.TextField(blank=True)
    reconstruction = models.OneToOneField(
        Reconstruction, null=True, blank=True, on_delete=models.SET_NULL, related_name="job"
    )
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state"])]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(target_bpp__isnull=False, fixed_params__isnull=True, match__isnull=True)
                    | Q(target_bpp__isnull=True, fixed_params__isnull=False, match__isnull=True)
                    | Q(target_bpp__isnull=True, fixed_params__isnull=True, match__isnull=False)
                ),
                name="job_has_exactly_one_target",
            ),
            models.CheckConstraint(
                condition=Q(target_bpp__isnull=True) | Q(target_bpp__gt=0),
                name="job_target_bpp_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} · {self.codec} · {self.describe_target()}"

    def describe_target(self) -> str:
        if self.target_bpp is not None:
            return f"{self.target_bpp:g} bpp"
        if self.match_id is not None:
            return f"size of reconstruction #{self.match_id}"
        return f"params {self.fixed_params}"

    def is_finished(self) -> bool:
        return self.state == self.State.DONE
