"""Studies, their stimuli and items, rater sessions, trials and judgments.

A **study** rates the reconstructions of an image set's images (one crop per image, the
study's crop plan) with one method: ACR (ITU-T P.910/P.913), DCR/DSIS (ITU-R BT.500),
2AFC against the original (the HiFiC/CLIC protocol) or triplet comparison (JPEG AIC-3,
ISO/IEC 29170-3: which of two reconstructions differs more from the original between them,
plain with toggling or boosted with flicker).

A **stimulus** is one image a rater can see (an original or a reconstruction, cropped),
served under a random token. An **item** is what one judgment is about: one stimulus
(ACR, DCR) or a pair of stimuli (2AFC; triplet, whose pivot is the image's original); items
are the unit of balanced assignment. A
**session** is one rater's visit, reachable only through its own random code; its
**trials** are the items it is shown, in order; each trial has at most one **judgment**
(a database constraint).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from perceptlab.codecs.models import ImageSet, Reconstruction, SourceImage


def new_token() -> str:
    """An opaque stimulus token: 128 random bits, nothing derived from the stimulus."""
    return secrets.token_urlsafe(16)


def new_completion_code() -> str:
    """A session's own completion code: 60 random bits in 12 unambiguous characters
    (no 0/O, 1/I/L), so a rater can type it and nobody can guess another's."""
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def default_gold_params() -> dict[str, object]:
    """JPEG quality 5: about 0.2 bpp, blocking no honest rater misses (the CLIC gold)."""
    return {"quality": 5}


class DeviceClass(models.TextChoices):
    """What kind of device a rater uses, classified from what the browser reports
    (``perceptlab.studies.viewing.device_class``)."""

    DESKTOP = "desktop", "desktop (large screen, mouse)"
    LAPTOP = "laptop", "laptop (built-in screen, mouse or touchpad)"
    TABLET = "tablet", "tablet"
    PHONE = "phone", "phone"


def default_devices() -> list[str]:
    return [DeviceClass.DESKTOP.value, DeviceClass.LAPTOP.value]


# The judgment flags an analysis may exclude (evaluation/exclusion.py holds the policy;
# this layer only stores a study's choice) and those it excludes by default: answers
# given without seeing the stimuli as the method requires.
EXCLUDABLE_FLAGS = [
    ("too_fast", "too fast (under the minimum view time)"),
    ("too_few_flips", "too few flips (2AFC, sequential DCR) or toggles (PTC triplets)"),
    ("pane_hidden", "tab hidden while the trial was on screen"),
    ("pane_cut", "a pane cut off by the window"),
    ("clock_mismatch", "browser and server clocks disagree"),
]


def default_exclude_flags() -> list[str]:
    return ["too_fast", "too_few_flips", "pane_hidden"]


class Method(models.TextChoices):
    ACR = "acr", "ACR / MOS (absolute category rating)"
    DCR = "dcr", "DCR / DSIS (degradation category rating with reference)"
    AFC2 = "2afc", "2AFC against the original"
    TRIPLET = "triplet", "triplet comparison in JND (JPEG AIC-3): which side differs more"
    FLICKER = "flicker", "flicker test (JPEG AIC-2): which side flickers — visually lossless"


PAIRWISE_METHODS = (Method.AFC2, Method.TRIPLET, Method.FLICKER)
"""Methods whose items are two stimuli of one image and whose answer is a side: 2AFC and
triplets two reconstructions (a triplet's may be the source), the flicker test the source
(a) and one reconstruction (b)."""


class TripletMode(models.TextChoices):
    """JPEG AIC-3's two triplet presentations (ISO/IEC 29170-3; Testolina et al., DCC 2025,
    arXiv:2410.09501)."""

    PLAIN = "ptc", "PTC: plain, the rater toggles each side against the original"
    BOOSTED = "btc", "BTC: boosted (amplified ×α, zoomed ×2, 10 Hz flicker, 8 s + 3 s blank)"


# BTC presentation (AIC-3, arXiv:2410.09501 and the SDR25 test): each side alternates with
# the pivot every 100 ms (10 Hz), for 8 s, then the screen is blank for 3 s.
BTC_FLICKER_MS = 100
BTC_SHOW_MS = 8000
BTC_BLANK_MS = 3000
# The flicker test (JPEG AIC-2, ISO/IEC 29170-2 Annex B): the test image alternates with the
# original at the ~10 Hz ISO recommends (100 ms per image, as AIC-3's BTC); shown 10 s at a
# time with a 1 s blank between showings (our choice: the standard's timing could not be
# checked here), again on request, until the rater answers.
FLICKER_MS = 100
FLICKER_SHOW_MS = 10_000
FLICKER_BLANK_MS = 1000


class Scale(models.TextChoices):
    """Rating scales: ITU-T P.910 §6 (5, 9, 11 points) and a continuous 0–100 slider."""

    FIVE = "5", "5 points"
    NINE = "9", "9 points"
    ELEVEN = "11", "11 points (0–10)"
    CONTINUOUS = "continuous", "continuous 0–100"


ACR_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")  # ITU-T P.910 Table 1
DCR_LABELS = (  # ITU-R BT.500-15 Annex 1 Table 1 (impairment scale)
    "Very annoying",
    "Annoying",
    "Slightly annoying",
    "Perceptible, but not annoying",
    "Imperceptible",
)


# ColorVideoVDP's SDR display models (pycvvdp vvdp_data/display_models.json): the ones a
# study of 8-bit sRGB stimuli can mean.
CVVDP_DISPLAYS = [
    ("standard_4k", "30-inch 4K monitor, 200 cd/m², 250 lux, 0.75 m (standard_4k)"),
    ("standard_fhd", "24-inch full-HD monitor, 200 cd/m², 250 lux, 0.6 m (standard_fhd)"),
    ("standard_phone", "6-inch phone, 2400×1080, 500 cd/m², 250 lux, 0.4 m (standard_phone)"),
    ("sdr_4k_30", "30-inch 4K monitor, 100 cd/m², 250 lux, 0.6 m (sdr_4k_30)"),
    ("sdr_fhd_24", "24-inch full-HD monitor, 100 cd/m², 250 lux, 0.6 m (sdr_fhd_24)"),
]


class Study(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        LIVE = "live"
        PAUSED = "paused"
        CLOSED = "closed"

    class CropMode(models.TextChoices):
        CENTER = "center", "centre of each image"
        RANDOM = "random", "random position (seeded)"
        MANUAL = "manual", "set per image"

    class PairPlan(models.TextChoices):
        ALL = "all", "all pairs of conditions per image"
        BAND = "band", "pairs within a bitrate band"
        BUDGET = "budget", "a random pair budget per image"

    class Sampling(models.TextChoices):
        BALANCED = "balanced", "balanced: the least-served item next"
        ADAPTIVE = "adaptive", "adaptive: the most informative item next, stop at a target width"

    class DcrLayout(models.TextChoices):
        SIDE_BY_SIDE = "side_by_side", "side by side"
        SEQUENTIAL = "sequential", "sequential (flip between reference and test)"

    name = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200, help_text="shown to raters")
    invite = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.AFC2)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)

    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="studies")
    codecs = models.JSONField(default=list, help_text="registry slugs")
    target_bpps = models.JSONField(default=list, help_text="target bits per pixel")
    crop_width = models.PositiveIntegerField(default=512, validators=[MinValueValidator(16)])
    crop_height = models.PositiveIntegerField(default=512, validators=[MinValueValidator(16)])
    crop_mode = models.CharField(max_length=8, choices=CropMode.choices, default=CropMode.CENTER)
    seed = models.PositiveIntegerField(default=0, help_text="seeds crops and pair budgets")

    scale = models.CharField(max_length=12, choices=Scale.choices, default=Scale.FIVE)
    hidden_reference = models.BooleanField(
        default=False, help_text="ACR-HR: also rate the original as a condition"
    )
    dcr_layout = models.CharField(
        max_length=14, choices=DcrLayout.choices, default=DcrLayout.SIDE_BY_SIDE
    )
    allow_undecided = models.BooleanField(
        default=True, help_text="2AFC: offer 'cannot decide'; triplet: offer 'not sure'"
    )
    triplet_mode = models.CharField(
        max_length=4,
        choices=TripletMode.choices,
        default=TripletMode.BOOSTED,
        help_text="triplet: plain (PTC) or boosted (BTC) presentation",
    )
    boost_alpha = models.FloatField(
        default=2.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(8.0)],
        help_text="BTC: artefact amplification v' = v + α(v̂ − v) (AIC-3 uses 2)",
    )
    pair_plan = models.CharField(max_length=8, choices=PairPlan.choices, default=PairPlan.ALL)
    pair_band = models.FloatField(
        default=1.5,
        validators=[MinValueValidator(1.0)],
        help_text="band plan: pair conditions whose bpp differ by at most this factor",
    )
    pair_budget = models.PositiveIntegerField(default=10, help_text="budget plan: pairs per image")
    sampling = models.CharField(
        max_length=8,
        choices=Sampling.choices,
        default=Sampling.BALANCED,
        help_text="which item a rater gets next (adaptive: in 2AFC and triplets the expected "
        "information gain on each image's Thurstone scale, in the flicker test QUEST on each "
        "image and codec's ladder, in ACR and DCR metric guidance: the stimulus whose score "
        "is least certain from its ratings and the objective metrics calibrated to the "
        "scores so far; a share of them the least asked; each stops at the target width)",
    )
    target_width = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.05), MaxValueValidator(5.0)],
        help_text="adaptive: an image stops drawing pairs once every condition's 95 % "
        "half-width is at most this (JOD in 2AFC, JND in triplets; in the flicker test "
        "each image and codec's threshold, in log2 bpp: 0.5 is ±41 %; in ACR and DCR each "
        "stimulus's score, in points of the scale)",
    )
    ladder_levels = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="adaptive flicker studies: the rates added on demand to each image and "
        "codec's ladder ({'<study image id>:<codec>': [bpp, …]}, studies.ladders)",
    )

    judgments_per_item = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="judgments wanted per item"
    )
    trials_per_session = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)], help_text="test trials per rater"
    )
    practice_trials = models.PositiveIntegerField(default=2)
    gold_trials = models.PositiveIntegerField(default=2, help_text="gold trials per rater")
    repeat_trials = models.PositiveIntegerField(
        default=1, help_text="consistency repeats of earlier trials per rater"
    )
    gold_codec = models.CharField(max_length=50, default="jpeg")
    gold_params = models.JSONField(
        default=default_gold_params,
        blank=True,
        help_text='heavily compressed gold; default {"quality": 5} with JPEG',
    )
    gold_pass_fraction = models.FloatField(
        default=0.75,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="a rater passing fewer of their gold trials is screened out",
    )
    gold_min_answered = models.PositiveIntegerField(
        default=2, help_text="gold trials answered before screening can apply"
    )
    min_view_seconds = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0)],
        help_text="the answer buttons open after the images were visible this long",
    )
    min_flips = models.PositiveIntegerField(
        default=0,
        help_text="2AFC and sequential DCR: flips needed before the answer buttons open; "
        "PTC triplets: toggles (at least 1)",
    )
    cvvdp_display = models.CharField(
        "CVVDP display",
        max_length=16,
        choices=CVVDP_DISPLAYS,
        default="standard_4k",
        help_text=(
            "the display ColorVideoVDP's predictions (JOD) assume: its size, resolution, "
            "peak luminance and viewing distance (pycvvdp's display_models.json)"
        ),
    )
    allowed_devices = models.JSONField(
        default=default_devices,
        blank=True,
        help_text=f"device classes admitted: {', '.join(DeviceClass.values)}",
    )
    session_timeout_minutes = models.PositiveIntegerField(
        default=60, help_text="unanswered trials of a session idle this long are given back"
    )
    # The analysis' exclusion policy, the report's default (evaluation/exclusion.py).
    exclude_flags = models.JSONField(
        default=default_exclude_flags,
        blank=True,
        help_text="analysis: judgments carrying these flags are left out (raw data keep them)",
    )
    max_gold_failure = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.99)],
        help_text="analysis: leave out raters who failed more than this share of their gold "
        "trials (empty: no such rule; the gold pass fraction already screens while rating)",
    )
    max_inconsistency = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.99)],
        help_text="analysis: leave out raters with more than this share of inconsistent repeats",
    )
    max_lapse = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.99)],
        help_text="analysis (2AFC): leave out raters whose lapse rate (share of random answers, "
        "fitted by the lapse model) exceeds this; empty: no such rule",
    )

    consent_text = models.TextField(default="", blank=True)
    instructions_text = models.TextField(default="", blank=True)
    completion_code = models.CharField(max_length=100, blank=True)
    completion_url = models.URLField(blank=True, help_text="e.g. Prolific's completion URL")
    screenout_code = models.CharField(max_length=100, blank=True)
    screenout_url = models.URLField(blank=True)

    created = models.DateTimeField(default=timezone.now)
    launched = models.DateTimeField(null=True, blank=True)
    closed = models.DateTimeField(null=True, blank=True)

    # Who sees the study's dashboard, report and exports (raw judgments carry participant
    # ids): its owner, its collaborators and superusers (studies/access.py).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_studies",
        help_text="who created the study; sees and edits it",
    )
    collaborators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="shared_studies",
        help_text="staff accounts that see this study's dashboard, report and exports "
        "(and edit it, with the change permission on studies)",
    )

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from perceptlab.codecs.registry import REGISTRY, codec_entries

        known = codec_entries()  # the registry's and the imported codecs
        unknown = [slug for slug in self.codecs or [] if slug not in known]
        if unknown:
            raise ValidationError({"codecs": f"unknown codec(s) {unknown}; valid: {sorted(known)}"})
        bpps = self.target_bpps or []
        if not all(isinstance(b, int | float) and b > 0 for b in bpps):
            raise ValidationError({"target_bpps": "every target bpp must be a positive number"})
        devices = self.allowed_devices or []
        if not devices or any(d not in DeviceClass.values for d in devices):
            raise ValidationError(
                {"allowed_devices": f"choose one or more of {list(DeviceClass.values)}"}
            )
        if self.is_boosted and (self.crop_width % 2 or self.crop_height % 2):
            raise ValidationError(
                {
                    "crop_width": "a boosted triplet study zooms the centred half of the crop "
                    f"×2: give an even width and height (not {self.crop_width}×"
                    f"{self.crop_height})"
                }
            )
        if self.gold_trials and self.gold_codec not in REGISTRY:
            kind = "an imported codec (it cannot encode)" if self.gold_codec in known else "unknown"
            raise ValidationError(
                {"gold_codec": f"{self.gold_codec!r} is {kind}; choose a registered codec: jpeg"}
            )

    @property
    def is_pairwise(self) -> bool:
        """2AFC and triplet: an item is two reconstructions, the answer a choice."""
        return self.method in PAIRWISE_METHODS

    @property
    def offers_undecided(self) -> bool:
        """Whether a rater may answer "cannot decide" / "not sure"; never in the flicker
        test, a forced choice whose correct-decision rate has its chance level at ½."""
        return self.allow_undecided and not self.is_flicker

    @property
    def is_flicker(self) -> bool:
        """JPEG AIC-2 (ISO/IEC 29170-2 Annex B): one side alternates between the original and
        the test image at 10 Hz, the other shows the original; the rater names the side."""
        return self.method == Method.FLICKER

    @property
    def is_adaptive(self) -> bool:
        """Adaptive sampling (:mod:`perceptlab.studies.adaptive`; in ACR and DCR metric
        guidance, :mod:`perceptlab.studies.guidance`)."""
        return self.sampling == Study.Sampling.ADAPTIVE

    @property
    def is_guided(self) -> bool:
        """A metric-guided ACR or DCR study: adaptive sampling of single stimuli."""
        return self.is_adaptive and not self.is_pairwise

    @property
    def is_triplet(self) -> bool:
        return self.method == Method.TRIPLET

    @property
    def is_boosted(self) -> bool:
        """A BTC triplet study: its stimuli are stored amplified and zoomed."""
        return self.is_triplet and self.triplet_mode == TripletMode.BOOSTED

    @property
    def uses_flips(self) -> bool:
        """2AFC, sequential DCR and PTC triplets: the rater flips (toggles) images in place."""
        if self.is_triplet:
            return not self.is_boosted
        if self.is_flicker:
            return False  # the page flickers
        return self.is_pairwise or (
            self.method == Method.DCR and self.dcr_layout == Study.DcrLayout.SEQUENTIAL
        )

    def required_flips(self) -> int:
        """Flips before an answer: ``min_flips`` in 2AFC; in sequential DCR and PTC triplets
        at least one, since the rater must have seen the test image(s) against the
        reference (AIC-3 PTC asks for one toggle at least); BTC none (the page flickers)."""
        if self.is_triplet:
            return 0 if self.is_boosted else max(self.min_flips, 1)
        if self.is_flicker:
            return 0
        if self.is_pairwise:
            return self.min_flips
        if self.uses_flips:
            return max(self.min_flips, 1)
        return 0

    @property
    def is_acr_hr(self) -> bool:
        """ACR with hidden reference (ITU-T P.910 §6.1.1): each rater also rates the
        originals of the images they rate, for per-rater DMOS."""
        return self.method == Method.ACR and self.hidden_reference

    @property
    def accepts_raters(self) -> bool:
        return self.state == Study.State.LIVE

    def scale_points(self) -> list[tuple[float, str]]:
        """(value, label) of each category; empty for the continuous scale."""
        if self.is_pairwise:
            return []
        if self.scale == Scale.CONTINUOUS:
            return []
        if self.scale == Scale.FIVE:
            labels = DCR_LABELS if self.method == Method.DCR else ACR_LABELS
            return [(float(i + 1), label) for i, label in enumerate(labels)]
        if self.scale == Scale.NINE:
            return [(float(i), "") for i in range(1, 10)]
        return [(float(i), "") for i in range(0, 11)]

    def scale_range(self) -> tuple[float, float]:
        if self.scale == Scale.CONTINUOUS:
            return 0.0, 100.0
        points = [value for value, _ in self.scale_points()]
        return min(points), max(points)

    def gold_expectation(self) -> float:
        """Lowest score that passes a gold ACR/DCR trial (the original): the top 40 %."""
        low, high = self.scale_range()
        return low + 0.6 * (high - low)

    def degraded_expectation(self) -> float:
        """Highest score that passes a heavily degraded practice image: the bottom 40 %."""
        low, high = self.scale_range()
        return low + 0.4 * (high - low)

    def label_of(self, score: float) -> str:
        """The scale's words for a score: the category's label, else the nearer end's
        label with the number ("8 (near “Excellent”)") for unlabelled points."""
        for value, label in self.scale_points():
            if value == score and label:
                return label
        labels = DCR_LABELS if self.method == Method.DCR else ACR_LABELS
        low, high = self.scale_range()
        end = labels[-1] if score >= (low + high) / 2 else labels[0]
        return f"{score:g} (near “{end}”)"

    def panes(self) -> int:
        """How many crops are side by side on a rater's screen."""
        if self.method == Method.ACR:
            return 1
        if self.method == Method.DCR and self.dcr_layout == Study.DcrLayout.SEQUENTIAL:
            return 1
        if self.is_triplet:
            return 3
        return 2


class StudyImage(models.Model):
    """One image of a study and its crop: every condition of the image shows this crop."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="study_images")
    source = models.ForeignKey(SourceImage, on_delete=models.PROTECT, related_name="+")
    crop_x = models.PositiveIntegerField(default=0)
    crop_y = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["study", "source__name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "source"], name="unique_study_image"),
        ]

    def __str__(self) -> str:
        return f"{self.study} · {self.source.name}"

    def crop_box(self) -> tuple[int, int, int, int]:
        """(x, y, width, height), clipped to the image."""
        width = min(self.study.crop_width, self.source.width)
        height = min(self.study.crop_height, self.source.height)
        x = min(self.crop_x, self.source.width - width)
        y = min(self.crop_y, self.source.height - height)
        return x, y, width, height


class Stimulus(models.Model):
    """One cropped image a rater can see, served only under its random token."""

    class Role(models.TextChoices):
        ORIGINAL = "original", "original (reference)"
        HIDDEN = "hidden", "original shown as a candidate (hidden reference, gold)"
        CONDITION = "condition", "reconstruction under test"
        GOLD = "gold", "heavily compressed gold"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="stimuli")
    study_image = models.ForeignKey(StudyImage, on_delete=models.CASCADE, related_name="stimuli")
    reconstruction = models.ForeignKey(
        Reconstruction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    target_bpp = models.FloatField(
        null=True,
        blank=True,
        help_text="the study target it stands for, where not its reconstruction's: an "
        "imported codec's point chosen as the nearest to this target",
    )
    # The hidden reference has the same pixels as the original but its own token, so a
    # gold or hidden-reference trial cannot be told from its URL.
    token = models.CharField(max_length=32, unique=True, default=new_token, editable=False)
    png = models.FileField(upload_to="stimuli/", max_length=255, help_text="the crop, no metadata")
    png_sha256 = models.CharField(max_length=64)
    boost_alpha = models.FloatField(
        null=True,
        blank=True,
        help_text="BTC triplets: the crop is stored boosted (amplified with this α against "
        "the original, its centred half zoomed ×2); empty: the plain crop",
    )

    class Meta:
        ordering = ["study", "study_image", "role", "id"]
        verbose_name_plural = "stimuli"
        constraints = [
            models.UniqueConstraint(
                fields=["study_image", "reconstruction"],
                condition=Q(reconstruction__isnull=False),
                name="unique_stimulus_per_reconstruction",
            ),
            models.UniqueConstraint(
                fields=["study_image", "role"],
                condition=Q(role__in=["original", "hidden"]),
                name="one_original_per_study_image",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study_image} · {self.condition_label()}"

    def condition_label(self) -> str:
        if self.reconstruction is None:
            return "original"
        r = self.reconstruction
        return f"{r.codec} @ {r.achieved_bpp:.3f} bpp" + (
            " (declared)" if r.bpp_is_declared else ""
        )

    def target(self) -> float | None:
        """The target bpp this stimulus stands for: its own (an imported codec's point
        chosen for a study target), else its reconstruction's (rate control's)."""
        if self.target_bpp is not None:
            return self.target_bpp
        return self.reconstruction.target_bpp if self.reconstruction is not None else None


class Item(models.Model):
    """What one judgment is about: a stimulus (ACR, DCR) or a pair (2AFC).

    ``assigned`` counts trials holding this item (the slots taken); balanced assignment
    raises it with a conditional UPDATE, so it never passes ``Study.judgments_per_item``.
    """

    class Kind(models.TextChoices):
        TEST = "test"
        GOLD = "gold"
        PRACTICE = "practice", "practice (ACR/DCR: shows the scale's range, with feedback)"

    class Expect(models.TextChoices):
        NONE = "", "no right answer"
        A = "a", "2AFC: the item's a; triplet: a differs more"
        B = "b", "2AFC: the item's b; triplet: b differs more"
        HIGH = "high", "ACR/DCR: the top 40 % of the scale (the original)"
        LOW = "low", "ACR/DCR: the bottom 40 % of the scale (heavily degraded)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEST)
    a = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="items_as_a")
    b = models.ForeignKey(
        Stimulus, null=True, blank=True, on_delete=models.CASCADE, related_name="items_as_b"
    )
    expected = models.CharField(
        max_length=4,
        choices=Expect.choices,
        blank=True,
        help_text="gold and practice: the right answer",
    )
    assigned = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["study", "id"]
        indexes = [models.Index(fields=["study", "kind", "assigned"])]
        constraints = [
            models.UniqueConstraint(fields=["study", "kind", "a", "b"], name="unique_item"),
            models.UniqueConstraint(
                fields=["study", "kind", "a"],
                condition=Q(b__isnull=True),
                name="unique_single_item",
            ),
        ]

    def __str__(self) -> str:
        if self.b_id is None:
            return f"{self.kind} {self.a}"
        return f"{self.kind} {self.a} vs {self.b.condition_label() if self.b else '?'}"


class ItemTally(models.Model):
    """The adaptive planner's state of one test item (adaptive studies): the test answers
    stored so far and the share of them for ``a`` (a "not sure" counts ½), added in the
    judgment's transaction so every web process reads the same scale.

    A row of its own, not columns of :class:`Item`: a judgment's transaction counts its
    answer here and then takes the next trial's slot on an item, so two raters answering
    each other's next items lock a tally row and then an item row, always in that order,
    and cannot deadlock (on PostgreSQL, with both counters on ``Item``, they did).
    """

    item = models.OneToOneField(
        Item, primary_key=True, on_delete=models.CASCADE, related_name="tally"
    )
    answers = models.PositiveIntegerField(default=0)
    a_wins = models.FloatField(default=0.0)
    # ACR/DCR (metric-guided studies): the sum of the ratings and of their squares
    score_sum = models.FloatField(default=0.0)
    score_squares = models.FloatField(default=0.0)

    def __str__(self) -> str:
        if self.item.b_id is None:
            return f"{self.item}: {self.answers} ratings summing to {self.score_sum:g}"
        return f"{self.item}: {self.a_wins:g} of {self.answers}"


class Session(models.Model):
    """One rater's visit; reachable only through ``code``."""

    class State(models.TextChoices):
        CONSENT = "consent"
        INSTRUCTIONS = "instructions"
        RATING = "rating"
        COMPLETED = "completed"
        SCREENED_OUT = "screened_out"
        DECLINED = "declined"

    class Platform(models.TextChoices):
        DIRECT = "direct"
        PROLIFIC = "prolific"
        MTURK = "mturk"
        PREVIEW = "preview"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sessions")
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    state = models.CharField(max_length=14, choices=State.choices, default=State.CONSENT)
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.DIRECT)
    participant_id = models.CharField(max_length=200, blank=True)
    external = models.JSONField(default=dict, blank=True, help_text="platform ids as received")
    schedule = models.JSONField(default=list, blank=True, help_text="trial kinds, in order")
    screen = models.JSONField(default=dict, blank=True, help_text="viewport the rater reported")
    viewing = models.JSONField(
        default=dict,
        blank=True,
        help_text="viewing conditions: device class, DPR, window, screen, zoom, size checks",
    )
    completion_secret = models.CharField(
        max_length=16,
        default=new_completion_code,
        editable=False,
        help_text="this session's own completion code (shown next to the study's)",
    )
    user_agent = models.CharField(max_length=500, blank=True)
    screened_reason = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now)
    consented = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "participant_id"],
                condition=~Q(participant_id=""),
                name="one_session_per_participant",
            ),
        ]

    def __str__(self) -> str:
        who = self.participant_id or str(self.code)[:8]
        return f"{self.study} · {who}"

    @property
    def is_preview(self) -> bool:
        return self.platform == Session.Platform.PREVIEW

    def is_finished(self) -> bool:
        return self.state in (
            Session.State.COMPLETED,
            Session.State.SCREENED_OUT,
            Session.State.DECLINED,
        )


class Trial(models.Model):
    class Kind(models.TextChoices):
        PRACTICE = "practice"
        TEST = "test"
        GOLD = "gold"
        REPEAT = "repeat"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="trials")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="trials")
    swapped = models.BooleanField(
        default=False,
        help_text="2AFC: the item's b is shown as 'A'; triplet: on the left (randomised)",
    )
    holds_slot = models.BooleanField(
        default=False, help_text="counted in the item's assigned slots"
    )
    assigned = models.DateTimeField(default=timezone.now)
    shown = models.DateTimeField(
        null=True,
        blank=True,
        help_text="first sent to the browser (as the current or the preloaded next trial)",
    )

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="unique_trial_position"),
            models.UniqueConstraint(
                fields=["session", "item"],
                condition=Q(kind__in=["test", "gold"]),
                name="no_item_twice_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session} #{self.position} ({self.kind})"

    def shown_as(self) -> tuple[Stimulus, Stimulus | None]:
        """The stimuli labelled 'A' and 'B' on screen (B is None for ACR/DCR)."""
        if self.item.b is None:
            return self.item.a, None
        if self.swapped:
            return self.item.b, self.item.a
        return self.item.a, self.item.b


class Judgment(models.Model):
    """One answer to one trial, stored the moment it is given."""

    class Choice(models.TextChoices):
        A = "a", "A (as shown; triplet: the left side differs more)"
        B = "b", "B (as shown; triplet: the right side differs more)"
        UNDECIDED = "undecided", "cannot decide (triplet: not sure)"

    trial = models.OneToOneField(Trial, on_delete=models.CASCADE, related_name="judgment")
    key = models.UUIDField(unique=True, help_text="idempotency key sent by the browser")
    score = models.FloatField(null=True, blank=True, help_text="ACR/DCR: the scale value")
    choice = models.CharField(max_length=10, choices=Choice.choices, blank=True)
    chosen = models.ForeignKey(
        Stimulus,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="2AFC: the stimulus picked (resolved from what was shown); triplet: the "
        "one judged to differ more from the original",
    )
    flips = models.PositiveIntegerField(
        default=0,
        help_text="flips (2AFC, sequential DCR), toggles (PTC triplet) or replays (BTC triplet)",
    )
    view_ms = models.PositiveIntegerField(
        default=0, help_text="visible time on the trial (browser clock, paused while hidden)"
    )
    server_ms = models.PositiveIntegerField(
        default=0, help_text="first sent → answered, server clock (an upper bound of view_ms)"
    )
    viewing = models.JSONField(
        default=dict,
        blank=True,
        help_text="per-trial viewing conditions the browser reported (hidden time, resizes, …)",
    )
    answered = models.DateTimeField(
        null=True, blank=True, help_text="when the rater answered (replays keep it)"
    )
    flags = models.JSONField(default=list, blank=True, help_text="quality-control flags")
    gold_passed = models.BooleanField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(score__isnull=False) & Q(choice=""))
                | (Q(score__isnull=True) & ~Q(choice="")),
                name="judgment_is_score_or_choice",
            ),
        ]

    def __str__(self) -> str:
        answer: Any = self.score if self.score is not None else self.choice
        return f"{self.trial}: {answer}"
