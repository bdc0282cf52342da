"""Objective full-reference image-quality metrics over pairs of 8-bit RGB images.

Inputs are ``(reference, distorted)`` pairs of ``(H, W, 3)`` uint8 sRGB arrays. They become
float in [0, 1] in exactly one place, :func:`perceptlab.lib.ycbcr.to_unit_float` (``v / 255``),
so every metric below is called with ``data_range=1.0``:

=================  =====================================================  ==========  =============
slug               implementation                                         better      min. side
=================  =====================================================  ==========  =============
psnr               10·log10(1 / MSE) over R, G and B (here, numpy)        higher, dB  1
psnr_y             same on Y = 0.299 R + 0.587 G + 0.114 B (here)         higher, dB  1
ssim               ``piq.ssim``                                           higher      11
ms_ssim            ``piq.multi_scale_ssim``                               higher      161
haarpsi            ``piq.haarpsi``                                        higher      16
dists              ``piq.DISTS`` (VGG16 + learned α, β: weight files)     lower       1
lpips              ``piq.LPIPS`` (VGG16 + linear layers: weight files)    lower       32
ssimulacra2        PyPI ``ssimulacra2`` (Python port of libjxl's tool)    higher      8
flip               NVIDIA ``flip_evaluator``, LDR-FLIP, mean error        lower       1
iw_ssim            IW-SSIM of BT.601 luma (here, :mod:`.iwssim`)          higher      176
butteraugli        libjxl's ``butteraugli_main`` (a program), max-norm    lower       8
butteraugli_3norm  the same run's 3-norm (:mod:`.butteraugli`)            lower       8
cvvdp              ColorVideoVDP (PyPI ``cvvdp``), JOD on a display model  higher      32
=================  =====================================================  ==========  =============

ColorVideoVDP predicts quality in JOD (just-objectionable differences: 10 = identical to the
reference; one JOD less = 75 % of observers prefer the reference) for a display the study
names (``Study.cvvdp_display``; :attr:`BuildContext.display`), the ``[cvvdp]`` extra. Its
parameters ship in the wheel: no download. Its stored version names the display, so values
for another display are computed again, not reused.

PSNR is computed here rather than with ``piq.psnr`` because piq adds ε = 1e-8 to the MSE, which
caps identical images at 80 dB and shifts every finite value (by 0.004 dB at 50 dB). Identical
images get ``math.inf``, the exact value: a cap would be a made-up number that then enters means
and BD-rate fits. JSON has no infinity, so :meth:`MetricValue.to_json` writes the string
``"Infinity"`` (which both ``float()`` and JavaScript's ``Number()`` read back).

:class:`MetricSession` builds each metric once (piq's DISTS/LPIPS networks included) and scores
lists of pairs, stacking same-size pairs into one batch. A metric that cannot run says why,
per metric and pair, in :attr:`MetricValue.unavailable`: its weights are missing or corrupt,
the image is smaller than it needs, torch/piq are not installed, or its program (butteraugli's
``butteraugli_main``) is not there. DISTS and LPIPS read their
weights only from the weights directory (:mod:`perceptlab.lib.weights`); piq's and
torchvision's own loaders, which would download, are swapped out while the networks are built.

The convolutional metrics run on float32 tensors (torch's CPU convolutions are 5-30x slower in
float64) and score each pair of a batch alone: on CPU a grouped convolution runs ~1.5x slower
per image inside a batch, and a pair's value then never depends on its batch. SSIM and MS-SSIM
are :mod:`perceptlab.evaluation.ssim` (piq's definitions, separable windows, equal to piq to
float32 rounding), and share each pair's full-resolution scale. torch is imported inside
functions only, so importing this module does not import it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from perceptlab.evaluation.stats.common import ModelId
from perceptlab.lib import weights as weightfiles
from perceptlab.lib.fidelity import psnr
from perceptlab.lib.networks import import_piq, local_weights_only
from perceptlab.lib.ycbcr import to_unit_float

if TYPE_CHECKING:
    import torch

    from perceptlab.evaluation.butteraugli import ButteraugliDistance

Pixels = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]
Pair = tuple[Pixels, Pixels]
T = TypeVar("T")

BT601_LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601-7 §2.5.1 luma weights E'Y = 0.299 E'R + 0.587 E'G + 0.114 E'B, the weights
``piq.psnr(convert_to_greyscale=True)`` uses (piq 0.8.0, psnr.py)."""


class MetricInputError(ValueError):
    """Pairs or metric names a session cannot use; the message names the bad value."""


class MetricUnavailable(Exception):
    """A metric that cannot be built here; the message is the reason shown to the user."""


@dataclass(frozen=True)
class MetricValue:
    """One metric's result for one pair: a value, or why there is none."""

    value: float | None
    unavailable: str | None = None

    def to_json(self) -> dict[str, float | str | None]:
        """JSON-safe form; an infinite value (PSNR of identical images) becomes "Infinity"."""
        value: float | str | None = self.value
        if self.value is not None and math.isinf(self.value):
            value = "Infinity" if self.value > 0 else "-Infinity"
        return {"value": value, "unavailable": self.unavailable}


class Batch:
    """N same-size pairs; each representation a metric asks for is made once, on first use."""

    def __init__(self, pairs: Sequence[Pair], *, device: str) -> None:
        self.references = np.stack([reference for reference, _ in pairs])
        self.distorted = np.stack([distorted for _, distorted in pairs])
        self.device = device
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._shared: dict[str, Any] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.references.shape[1], self.references.shape[2]

    @cached_property
    def unit(self) -> tuple[Floats, Floats]:
        """(reference, distorted), each (N, H, W, 3) float64 in [0, 1]."""
        return _unit_stack(self.references), _unit_stack(self.distorted)

    def tensors(self, dtype: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
        """(reference, distorted), each (N, 3, H, W) in [0, 1] on the session's device."""
        if dtype not in self._tensors:
            import torch

            self._tensors[dtype] = tuple(  # type: ignore[assignment]
                torch.from_numpy(x.astype(dtype)).permute(0, 3, 1, 2).contiguous().to(self.device)
                for x in self.unit
            )
        return self._tensors[dtype]

    def shared(self, key: str, compute: Callable[[Batch], list[T]]) -> list[T]:
        """``compute(self)``, run once per batch for every metric that asks under ``key`` (the
        two butteraugli norms come from one run of the program)."""
        if key not in self._shared:
            self._shared[key] = compute(self)
        result: list[T] = self._shared[key]
        return result


def _unit_stack(images: Pixels) -> Floats:
    return np.stack([to_unit_float(image) for image in images])


Scorer = Callable[[Batch], list[float]]


DEFAULT_DISPLAY = "standard_4k"
MIN_CVVDP_SIDE = 16


@dataclass(frozen=True)
class BuildContext:
    """What a metric's builder gets: the resolved weight files, the device and the display
    a display-dependent metric (CVVDP) models."""

    weights: Mapping[str, Path]
    device: str
    display: str = DEFAULT_DISPLAY


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric: identity, direction, requirements and how to build it."""

    slug: str
    name: str
    package: str
    """Distribution whose version identifies the implementation."""
    higher_is_better: bool
    unit: str
    citation: str
    build: Callable[[BuildContext], Scorer]
    min_side: int = 1
    """Smallest height and width (px) the implementation accepts."""
    min_side_why: str = ""
    needs_torch: bool = False
    """Whether it needs the 'neural' extra (torch, torchvision, piq)."""
    version_of: Callable[[], str | None] | None = None
    """For a metric computed by an external program (``package`` then names the system
    package): its version, or None when it is not installed. Else the distribution's version."""
    uses_display: bool = False
    """Whether its value depends on :attr:`BuildContext.display` (recorded in its version)."""

    @property
    def needs_weights(self) -> tuple[str, ...]:
        """Weight file names (in the weights manifest) this metric loads."""
        manifest = weightfiles.MANIFEST.values()
        return tuple(entry.name for entry in manifest if self.slug in entry.metrics)

    def version(self) -> str:
        try:
            version = self.version_of() if self.version_of else metadata.version(self.package)
        except metadata.PackageNotFoundError:
            version = None
        return f"{self.package} {version}" if version else f"{self.package} (not installed)"

    def model_id(self, display: str = DEFAULT_DISPLAY) -> ModelId:
        return ModelId(self.slug, self.version_for(display))

    def version_for(self, display: str) -> str:
        """The version stored with a value: the implementation's, and the display model for
        a metric that depends on one."""
        return f"{self.version()}, display {display}" if self.uses_display else self.version()

    def too_small(self, height: int, width: int) -> str | None:
        if min(height, width) >= self.min_side:
            return None
        side = self.min_side
        return f"{width}×{height} px is smaller than the {side}×{side} px {self.name} needs" + (
            f" ({self.min_side_why})" if self.min_side_why else ""
        )


# --- builders: each returns a scorer mapping a Batch to N floats ----------------------------


def luma_bt601(rgb: Floats) -> Floats:
    """(..., 3) non-linear R'G'B' → (..., 1) luma Y' = 0.299 R' + 0.587 G' + 0.114 B'.

    Full range, not rounded (ITU-R BT.601-7 §2.5.1; the greyscale conversion of ``piq.psnr``).
    """
    return rgb @ np.asarray(BT601_LUMA)[:, None]


def _build_psnr(context: BuildContext) -> Scorer:
    return lambda batch: psnr(*batch.unit).tolist()


def _build_psnr_y(context: BuildContext) -> Scorer:
    return lambda batch: psnr(*(luma_bt601(x) for x in batch.unit)).tolist()


def _piq_function(name: str, *, at_most: float = math.inf) -> Callable[[BuildContext], Scorer]:
    """Builder for a stateless piq function ``f(x, y, data_range=...)`` on float32 tensors,
    called on each pair alone: on CPU PyTorch's grouped convolutions run ~1.5× slower per image in a
    batch than alone (measured with piq's SSIM, MS-SSIM and HaarPSI at 256² px), and a pair's
    value then never depends on the batch it came in (in float32 HaarPSI moved by ~3·10⁻⁶
    with the batch). ``at_most``: the definition's maximum, which float32 rounding may pass."""

    def build(context: BuildContext) -> Scorer:
        function = getattr(import_piq(), name)

        def score(batch: Batch) -> list[float]:
            reference, distorted = batch.tensors("float32")
            return [
                min(
                    at_most,
                    float(function(distorted[i : i + 1], reference[i : i + 1], data_range=1.0)),
                )
                for i in range(reference.size(0))
            ]

        return score

    return build


def _pyramids(batch: Batch) -> list[Any]:
    """Each pair's :class:`perceptlab.evaluation.ssim.Pyramid` (float32), shared by SSIM and
    MS-SSIM: SSIM's pre-pooled pair is one of MS-SSIM's scales."""
    from perceptlab.evaluation import ssim as separable

    reference, distorted = batch.tensors("float32")
    return [
        separable.Pyramid(distorted[i : i + 1], reference[i : i + 1])
        for i in range(reference.size(0))
    ]


def _separable(name: str) -> Callable[[BuildContext], Scorer]:
    """Builder for ``evaluation.ssim.ssim`` or ``.ms_ssim`` over the batch's shared pyramids."""

    def build(context: BuildContext) -> Scorer:
        from perceptlab.evaluation import ssim as separable

        function = getattr(separable, name)

        def score(batch: Batch) -> list[float]:
            reference, distorted = batch.tensors("float32")
            pyramids = batch.shared("ssim-pyramid", _pyramids)
            return [
                function(distorted[i : i + 1], reference[i : i + 1], pyramids[i])
                for i in range(reference.size(0))
            ]

        return score

    return build


def _piq_network(class_name: str) -> Callable[[BuildContext], Scorer]:
    """Builder for piq's DISTS or LPIPS, loaded from the weights directory only.

    Both take (N, 3, H, W) float in [0, 1] (no ``data_range`` argument) and normalise with the
    ImageNet mean and standard deviation, which for LPIPS equals the original's scaling layer
    applied to [-1, 1] inputs. piq's DISTS first resizes so the short side is 256 px (bilinear).
    """

    def build(context: BuildContext) -> Scorer:
        piq = import_piq()
        with local_weights_only(context.weights):
            model = getattr(piq, class_name)(reduction="none").to(context.device).eval()

        def score(batch: Batch) -> list[float]:
            import torch

            reference, distorted = batch.tensors()
            with torch.inference_mode():
                return _to_floats(model(distorted, reference))

        return score

    return build


def _to_floats(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values.detach().cpu().reshape(-1)]


def _build_ssimulacra2(context: BuildContext) -> Scorer:
    from ssimulacra2 import compute_ssimulacra2

    # The package reads its inputs with PIL.Image.open (paths or file objects): hand it
    # lossless in-memory PNGs of the exact 8-bit pixels.
    def score(batch: Batch) -> list[float]:
        pairs = zip(batch.references, batch.distorted, strict=True)
        return [float(compute_ssimulacra2(_png(r), _png(d))) for r, d in pairs]

    return score


def _png(pixels: Pixels) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    buffer.seek(0)
    return buffer


def _build_flip(context: BuildContext) -> Scorer:
    import flip_evaluator

    # evaluate(reference, test, "LDR") takes (H, W, 3) float32 sRGB in [0, 1] and returns
    # (error map, mean error, parameters); default viewing: 67 pixels per degree.
    def score(batch: Batch) -> list[float]:
        pairs = zip(*(x.astype(np.float32) for x in batch.unit), strict=True)
        return [float(flip_evaluator.evaluate(r, d, "LDR", applyMagma=False)[1]) for r, d in pairs]

    return score


def _build_iw_ssim(context: BuildContext) -> Scorer:
    from perceptlab.evaluation.iwssim import iw_ssim

    def score(batch: Batch) -> list[float]:
        reference, distorted = (luma_bt601(x)[..., 0] for x in batch.unit)
        return iw_ssim(reference, distorted, data_range=1.0).tolist()

    return score


def _butteraugli(pick: Callable[[ButteraugliDistance], float]) -> Callable[[BuildContext], Scorer]:
    """Builder for one of the distances of a ``butteraugli_main`` run: the metrics that read the
    same run share it through :meth:`Batch.shared`, so the program runs once per pair."""

    def build(context: BuildContext) -> Scorer:
        from perceptlab.evaluation import butteraugli

        binary = butteraugli.find_binary()
        if binary is None:
            raise MetricUnavailable(butteraugli.missing_binary_reason())

        def run(batch: Batch) -> list[ButteraugliDistance]:
            pairs = zip(batch.references, batch.distorted, strict=True)
            return [butteraugli.distance(r, d, binary=binary) for r, d in pairs]

        return lambda batch: [pick(d) for d in batch.shared(f"butteraugli {binary}", run)]

    return build


def _build_cvvdp(context: BuildContext) -> Scorer:
    """ColorVideoVDP on the study's display model, one image pair at a time (its pyramid is
    built per image size; a stack of N same-size images would be read as N video frames)."""
    try:
        import pycvvdp
        import torch
    except ImportError:
        raise MetricUnavailable(
            "ColorVideoVDP is not installed: pip install -e '.[cvvdp]' (PyPI cvvdp)"
        ) from None
    from perceptlab.studies.models import CVVDP_DISPLAYS

    if context.display not in dict(CVVDP_DISPLAYS):
        raise MetricUnavailable(f"unknown CVVDP display {context.display!r}")
    metric = pycvvdp.cvvdp(display_name=context.display, device=torch.device(context.device))

    def score(batch: Batch) -> list[float]:
        values = []
        with torch.inference_mode():
            for reference, distorted in zip(batch.references, batch.distorted, strict=True):
                jod, _ = metric.predict(distorted, reference, dim_order="HWC")
                values.append(float(jod))
        return values

    return score


def _butteraugli_version() -> str | None:
    from perceptlab.evaluation import butteraugli

    return butteraugli.version()


# --- the registry -----------------------------------------------------------------------------

METRICS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> None:
    if spec.slug in METRICS:
        raise ValueError(f"metric slug {spec.slug!r} is registered twice")
    METRICS[spec.slug] = spec


_BUTTERAUGLI = (
    "J. Alakuijala, R. Obryk, O. Stoliarchuk, Z. Szabadka, L. Vandevenne, J. Wassenberg, "
    "'Guetzli: perceptually guided JPEG encoder', arXiv:1703.04421, 2017 (butteraugli); "
    "libjxl's butteraugli_main (Debian libjxl-devtools), sRGB PNGs shown at its default 80 nits"
)

_WANG_2004 = (
    "Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, 'Image quality assessment: from "
    "error visibility to structural similarity', IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861"
)

for _spec in (
    MetricSpec(
        slug="psnr",
        name="PSNR (RGB)",
        package="perceptlab",
        higher_is_better=True,
        unit="dB",
        citation=(
            "10·log10(1/MSE) over R, G, B in [0, 1]; Q. Huynh-Thu, M. Ghanbari, Electronics "
            "Letters 44(13), 2008, doi:10.1049/el:20080522"
        ),
        build=_build_psnr,
    ),
    MetricSpec(
        slug="psnr_y",
        name="PSNR-Y (BT.601 luma)",
        package="perceptlab",
        higher_is_better=True,
        unit="dB",
        citation=(
            "PSNR of full-range luma Y' = 0.299 R' + 0.587 G' + 0.114 B' (ITU-R BT.601-7 "
            "§2.5.1), as piq.psnr(convert_to_greyscale=True)"
        ),
        build=_build_psnr_y,
    ),
    MetricSpec(
        slug="ssim",
        name="SSIM",
        package="perceptlab",
        higher_is_better=True,
        unit="",
        citation=_WANG_2004
        + (
            "; as piq 0.8: average-pooled by max(1, round(min(H, W) / 256)), 11×11 Gaussian "
            "σ 1.5 (applied as two separable passes, evaluation/ssim.py), K1 0.01, K2 0.03, "
            "mean over R, G, B"
        ),
        build=_separable("ssim"),
        min_side=11,
        min_side_why="11-px Gaussian window",
        needs_torch=True,
    ),
    MetricSpec(
        slug="ms_ssim",
        name="MS-SSIM",
        package="perceptlab",
        higher_is_better=True,
        unit="",
        citation=(
            "Z. Wang, E. P. Simoncelli, A. C. Bovik, 'Multiscale structural similarity for image "
            "quality assessment', Asilomar 2003, doi:10.1109/ACSSC.2003.1292216; as piq 0.8's "
            "multi_scale_ssim, separable Gaussian (evaluation/ssim.py)"
        ),
        build=_separable("ms_ssim"),
        min_side=161,
        min_side_why="11-px window at 5 scales: (11 - 1)·2⁴ + 1",
        needs_torch=True,
    ),
    MetricSpec(
        slug="haarpsi",
        name="HaarPSI",
        package="piq",
        higher_is_better=True,
        unit="",
        citation=(
            "R. Reisenhofer, S. Bosse, G. Kutyniok, T. Wiegand, 'A Haar wavelet-based perceptual "
            "similarity index for image quality assessment', Signal Processing: Image "
            "Communication 61, 2018, doi:10.1016/j.image.2017.11.001"
        ),
        # Each pair alone in float32: its value does not depend on a batch (in a float32
        # batch HaarPSI moved by ~3e-6); float32 lies within 1e-5 of float64 (tested;
        # 3.2e-6 on Kodak JPEG crops) at a third of its time. HaarPSI is at most 1 by
        # definition (1 for identical images), which float32 rounding can pass by ~2e-6:
        # clamped there.
        build=_piq_function("haarpsi", at_most=1.0),
        min_side=16,
        min_side_why="3-scale Haar filters are 16 px wide",
        needs_torch=True,
    ),
    MetricSpec(
        slug="dists",
        name="DISTS",
        package="piq",
        higher_is_better=False,
        unit="",
        citation=(
            "K. Ding, K. Ma, S. Wang, E. P. Simoncelli, 'Image quality assessment: unifying "
            "structure and texture similarity', IEEE TPAMI 44(5), 2022, arXiv:2004.07728"
        ),
        build=_piq_network("DISTS"),
        needs_torch=True,
    ),
    MetricSpec(
        slug="lpips",
        name="LPIPS (VGG)",
        package="piq",
        higher_is_better=False,
        unit="",
        citation=(
            "R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, 'The unreasonable "
            "effectiveness of deep features as a perceptual metric', CVPR 2018, arXiv:1801.03924"
        ),
        build=_piq_network("LPIPS"),
        min_side=32,
        min_side_why="VGG16's fifth pooling needs 2 px left after four halvings",
        needs_torch=True,
    ),
    MetricSpec(
        slug="ssimulacra2",
        name="SSIMULACRA 2",
        package="ssimulacra2",
        higher_is_better=True,
        unit="",
        citation=(
            "J. Sneyers, SSIMULACRA 2 (libjxl tools/ssimulacra2, github.com/cloudinary/"
            "ssimulacra2); Python port github.com/Pacidus/py-ssimulacra2"
        ),
        build=_build_ssimulacra2,
        min_side=8,
        min_side_why="below 8 px the package scores no scale and returns 100",
    ),
    MetricSpec(
        slug="flip",
        name="FLIP (LDR, mean)",
        package="flip-evaluator",
        higher_is_better=False,
        unit="",
        citation=(
            "P. Andersson, J. Nilsson, T. Akenine-Möller, M. Oskarsson, K. Åström, M. D. "
            "Fairchild, 'FLIP: A difference evaluator for alternating images', Proc. ACM "
            "Comput. Graph. Interact. Tech. 3(2), 2020, doi:10.1145/3406183"
        ),
        build=_build_flip,
    ),
    MetricSpec(
        slug="iw_ssim",
        name="IW-SSIM (BT.601 luma)",
        package="perceptlab",
        higher_is_better=True,
        unit="",
        citation=(
            "Z. Wang, Q. Li, 'Information content weighting for perceptual image quality "
            "assessment', IEEE TIP 20(5), 2011, doi:10.1109/TIP.2010.2092435; parameters and "
            "details of the authors' iwssim.m, on luma Y' = 0.299 R' + 0.587 G' + 0.114 B' "
            "(not rounded) in [0, 255]"
        ),
        build=_build_iw_ssim,
        min_side=176,
        min_side_why="11-px window at the 5th scale: 11·2⁴, the check of the authors' iwssim.m",
    ),
    MetricSpec(
        slug="butteraugli",
        name="Butteraugli (max-norm)",
        package="libjxl-devtools",
        higher_is_better=False,
        unit="",
        citation=_BUTTERAUGLI + "; the largest per-pixel distance",
        build=_butteraugli(lambda d: d.max_norm),
        min_side=8,
        min_side_why="below 8 px butteraugli_main reports 0 for any pair",
        version_of=_butteraugli_version,
    ),
    MetricSpec(
        slug="butteraugli_3norm",
        name="Butteraugli (3-norm)",
        package="libjxl-devtools",
        higher_is_better=False,
        unit="",
        citation=_BUTTERAUGLI + "; the 3-norm of the distance map ('3-norm:' line)",
        build=_butteraugli(lambda d: d.p_norm),
        min_side=8,
        min_side_why="below 8 px butteraugli_main reports 0 for any pair",
        version_of=_butteraugli_version,
    ),
    MetricSpec(
        slug="cvvdp",
        name="ColorVideoVDP (JOD)",
        package="cvvdp",
        higher_is_better=True,
        unit="JOD",
        citation=(
            "R. K. Mantiuk, P. Hanji, M. Ashraf, Y. Asano, A. Chapiro, 'ColorVideoVDP: a visual "
            "difference predictor for image, video and display distortions', ACM TOG 43(4), "
            "2024, doi:10.1145/3658144; pycvvdp on the study's display model, sRGB 8-bit input"
        ),
        build=_build_cvvdp,
        min_side=MIN_CVVDP_SIDE,
        min_side_why="its Laplacian pyramid",
        needs_torch=True,
        uses_display=True,
    ),
):
    register(_spec)


# --- the session ------------------------------------------------------------------------------


class MetricSession:
    """Build metrics once, then score many (reference, distorted) pairs.

    ``metrics``: slugs from :data:`METRICS`. ``weights_dir``: where DISTS/LPIPS weights live
    (see :mod:`perceptlab.lib.weights`); ``manifest`` is the list of weight files and
    their digests (tests pass their own). ``device``: a torch device for the piq metrics.
    Metrics that cannot be built are listed in :attr:`unavailable` with the reason.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        weights_dir: Path,
        device: str = "cpu",
        manifest: Mapping[str, weightfiles.WeightFile] = weightfiles.MANIFEST,
        max_batch: int = 8,
        display: str = DEFAULT_DISPLAY,
    ) -> None:
        self.metrics = _checked_slugs(metrics)
        self.weights_dir = Path(weights_dir)
        self.device = device
        self.display = display
        self.max_batch = max_batch
        self.unavailable: dict[str, str] = {}
        self.weights_used: dict[str, dict[str, str | None]] = {}
        """Per metric, the SHA-256 of each weight file it loaded (record it with results)."""
        self._scorers: dict[str, Scorer] = {}
        for slug in self.metrics:
            self._build(METRICS[slug], manifest)

    def _build(self, spec: MetricSpec, manifest: Mapping[str, weightfiles.WeightFile]) -> None:
        names = [e.name for e in manifest.values() if spec.slug in e.metrics]
        try:
            files = weightfiles.resolve(names, self.weights_dir, manifest=manifest)
            paths = {n: s.path for n, s in files.items()}
            context = BuildContext(paths, self.device, self.display)
            self._scorers[spec.slug] = spec.build(context)
        except (MetricUnavailable, weightfiles.WeightsUnavailable) as exc:
            self.unavailable[spec.slug] = str(exc)
            return
        if files:
            self.weights_used[spec.slug] = {n: s.sha256 for n, s in files.items()}

    def model_ids(self) -> dict[str, ModelId]:
        return {slug: METRICS[slug].model_id(self.display) for slug in self.metrics}

    def version(self, slug: str) -> str:
        """What is stored with this session's values of ``slug`` (display included)."""
        return METRICS[slug].version_for(self.display)

    def compute(self, pairs: Sequence[Pair]) -> list[dict[str, MetricValue]]:
        """Score each (reference, distorted) pair: one {slug: MetricValue} per pair, in order.

        Pairs of the same size are stacked into batches of up to ``max_batch``.
        """
        _check_pairs(pairs)
        results: list[dict[str, MetricValue]] = [{} for _ in pairs]
        for indices in _same_size_chunks(pairs, self.max_batch):
            batch = Batch([pairs[i] for i in indices], device=self.device)
            for slug in self.metrics:
                for i, value in zip(indices, self._score(slug, batch), strict=True):
                    results[i][slug] = value
        return results

    def _score(self, slug: str, batch: Batch) -> list[MetricValue]:
        n = len(batch.references)
        reason = self.unavailable.get(slug) or METRICS[slug].too_small(*batch.size)
        if reason is not None:
            return [MetricValue(None, reason)] * n
        return [MetricValue(v) for v in self._scorers[slug](batch)]


def _checked_slugs(metrics: Sequence[str]) -> list[str]:
    unknown = [slug for slug in metrics if slug not in METRICS]
    if unknown:
        raise MetricInputError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}"
        )
    if len(set(metrics)) != len(metrics):
        raise MetricInputError(f"metric listed twice in {list(metrics)}")
    if not metrics:
        raise MetricInputError(f"no metrics requested; known: {', '.join(METRICS)}")
    return list(metrics)


def _check_pairs(pairs: Sequence[Pair]) -> None:
    for index, (reference, distorted) in enumerate(pairs):
        for role, image in (("reference", reference), ("distorted", distorted)):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise MetricInputError(
                    f"pair {index}: {role} is {image.dtype} {image.shape}, "
                    "expected an (H, W, 3) uint8 RGB image"
                )
        if reference.shape != distorted.shape:
            raise MetricInputError(
                f"pair {index}: reference {reference.shape} and distorted {distorted.shape} "
                "differ in size"
            )


def _same_size_chunks(pairs: Sequence[Pair], max_batch: int) -> Iterator[list[int]]:
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, (reference, _) in enumerate(pairs):
        by_size.setdefault(reference.shape, []).append(index)
    for indices in by_size.values():
        for start in range(0, len(indices), max_batch):
            yield indices[start : start + max_batch]
