"""The codec registry: one entry per stable slug, classes imported on first use.

Web requests list codecs from here without importing any codec module (and so without
torch); :func:`get_codec` imports the class the first time it is asked for.

Imported codecs (a researcher's decoded images, ``manage.py import_reconstructions``) live in
the database, not in :data:`REGISTRY`: :func:`codec_entries` is every codec a study may
name (the registry's, then the imported ones, family ``"imported"``), read afresh on each
call so that every process sees an import at once. They cannot encode: ``get_codec`` on
one raises :class:`ImportedCodecCannotEncode`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from django.db import DatabaseError

from perceptlab.codecs.base import Codec, CodecError, CodecUnavailable


@dataclass(frozen=True)
class CodecEntry:
    slug: str
    label: str
    family: str  # "classical", "external", "neural", "plugin", "commandline" or "imported"
    target: str  # "package.module:ClassName"
    description: str
    package: str = ""
    """The installed distribution that provides the codec ("" for PerceptLab's own)."""
    package_version: str = ""


class UnknownCodec(CodecError, KeyError):
    def __init__(self, slug: str) -> None:
        super().__init__(slug, f"unknown codec; registered: {', '.join(REGISTRY)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ImportedCodecCannotEncode(CodecUnavailable):
    """The slug names an imported codec: its reconstructions are files, it has no encoder."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            slug,
            "an imported codec (decoded images imported with import_reconstructions) cannot "
            "encode; put it in a study's codecs, where each target takes its imported point "
            "nearest the target, or import more points with manage.py import_reconstructions",
        )


IMPORTED = "imported"
"""The family of imported codecs in :func:`codec_entries`."""

REGISTRY: dict[str, CodecEntry] = {}


def register(entry: CodecEntry) -> None:
    if entry.slug in REGISTRY:
        raise ValueError(f"codec slug {entry.slug!r} is registered twice")
    REGISTRY[entry.slug] = entry


_C = "perceptlab.codecs.classical"
_X = "perceptlab.codecs.external"
_N = "perceptlab.codecs.neural"
for _entry in (
    CodecEntry(
        "jpeg",
        "JPEG 4:2:0",
        "classical",
        f"{_C}:JpegCodec",
        "libjpeg-turbo through Pillow, 4:2:0 chroma, optimised Huffman tables",
    ),
    CodecEntry(
        "jpeg444",
        "JPEG 4:4:4",
        "classical",
        f"{_C}:Jpeg444Codec",
        "libjpeg-turbo through Pillow, no chroma subsampling",
    ),
    CodecEntry("webp", "WebP", "classical", f"{_C}:WebpCodec", "libwebp (lossy) through Pillow"),
    CodecEntry(
        "jpeg2000",
        "JPEG 2000",
        "classical",
        f"{_C}:Jpeg2000Codec",
        "OpenJPEG through Pillow, 9/7 wavelet with the multi-component transform",
    ),
    CodecEntry(
        "avif",
        "AVIF",
        "classical",
        f"{_C}:AvifCodec",
        "libavif (aom encoder, dav1d decoder) built into Pillow, 4:4:4",
    ),
    CodecEntry(
        "heic",
        "HEIC",
        "classical",
        f"{_C}:HeicCodec",
        "libheif (x265 encoder, libde265 decoder) through pillow-heif, 4:4:4",
    ),
    CodecEntry("jxl", "JPEG XL", "classical", f"{_C}:JxlCodec", "libjxl through pillow-jxl-plugin"),
    CodecEntry(
        "bpg",
        "BPG",
        "external",
        f"{_X}:BpgCodec",
        "bpgenc/bpgdec (libbpg, x265), 4:4:4 YCbCr 8-bit",
    ),
    CodecEntry(
        "vvc",
        "VVC (VVenC)",
        "external",
        f"{_X}:VvcCodec",
        "Fraunhofer vvencapp/vvdecapp, BT.709 full-range 4:2:0 10-bit",
    ),
    CodecEntry(
        "hific",
        "HiFiC",
        "neural",
        f"{_N}.registered:HiFiCCodec",
        "HiFiC (Mentzer et al. 2020) on CompressAI: mean-scale hyperprior, ChannelNorm, "
        "conditional GAN; rate by the latent quantisation step",
    ),
    CodecEntry(
        "hific-sparse",
        "HiFiC + latent sparsity",
        "neural",
        f"{_N}.registered:HiFiCSparseCodec",
        "HiFiC trained with an extra penalty on non-zero latent values (seed 003)",
    ),
    CodecEntry(
        "gc",
        "GC (extreme generative compression)",
        "neural",
        f"{_N}.registered:GCCodec",
        "Agustsson et al. 2019: 5-level quantised latent at the log2(5) bound, "
        "multi-scale GAN; rate by the channel count C",
    ),
    CodecEntry(
        "gc-sc",
        "GC selective (SC)",
        "neural",
        f"{_N}.registered:GCSelectiveCodec",
        "Agustsson et al. 2019 §4.2: GC with a preserved-region mask; the rest synthesised "
        "from a semantic label map. No checkpoint ships",
    ),
    CodecEntry(
        "tunable",
        "Tunable importance-map GAN codec",
        "neural",
        f"{_N}.registered:TunableCodec",
        "Wu, Huang & Shen 2020: pyramid encoder, importance map with a tunable offset n, "
        "L=4 quantiser, per-channel Huffman; rate by bisecting n per image",
    ),
    CodecEntry(
        "rdo-gllmm",
        "RDO-GAN (GLLMM)",
        "neural",
        f"{_N}.registered:RDOCodec",
        "HiFiC-style GAN codec with a DISTS + MS-SSIM rate-distortion objective and a "
        "Gaussian–Laplacian–logistic mixture entropy model (Xia et al. 2023)",
    ),
    CodecEntry(
        "bmshj2018-hyperprior",
        "Ballé 2018 hyperprior (MSE)",
        "neural",
        f"{_N}.baselines:Bmshj2018HyperpriorCodec",
        "CompressAI zoo scale hyperprior (Ballé et al., ICLR 2018), pretrained for MSE, "
        "quality 1–8",
    ),
    CodecEntry(
        "mbt2018-mean",
        "Minnen 2018 mean-scale (MSE)",
        "neural",
        f"{_N}.baselines:Mbt2018MeanCodec",
        "CompressAI zoo mean-scale hyperprior (Minnen et al., NeurIPS 2018), pretrained for "
        "MSE, quality 1–8",
    ),
    CodecEntry(
        "cheng2020-anchor",
        "Cheng 2020 anchor (MSE)",
        "neural",
        f"{_N}.baselines:Cheng2020AnchorCodec",
        "CompressAI zoo Cheng et al. (CVPR 2020) anchor with the autoregressive context "
        "model, pretrained for MSE, quality 1–6 (slow on CPU)",
    ),
    CodecEntry(
        "msillm",
        "MS-ILLM (Muckley 2023)",
        "neural",
        f"{_N}.msillm:MSILLMCodec",
        "Muckley et al., ICML 2023: HiFiC autoencoder with a mean-scale hyperprior, "
        "fine-tuned against an implicit local likelihood model (ILLM) discriminator; released "
        "weights (CC-BY-NC 4.0), quality 1–6 trained for 0.035–0.9 bpp",
    ),
    CodecEntry(
        "msillm-nogan",
        "MS-ILLM No-GAN (Muckley 2023)",
        "neural",
        f"{_N}.msillm:MSILLMNoGANCodec",
        "the No-GAN counterpart of MS-ILLM (Muckley et al., ICML 2023): the same autoencoder "
        "trained for MSE + LPIPS only; released weights (CC-BY-NC 4.0), quality 1–6",
    ),
):
    register(_entry)

# Third-party codecs installed under the entry-point group ``perceptlab.codecs``; read
# from package metadata only, so no plugin module is imported here.
from perceptlab.codecs.plugins import load_plugin_codecs  # noqa: E402

load_plugin_codecs()

# Command-line codecs declared in TOML (the shipped commandline.toml, then
# PERCEPTLAB_CODECS_FILE); bad entries are left out and reported by codecs.W030/W031.
from perceptlab.codecs.commandline import load_commandline_codecs  # noqa: E402

load_commandline_codecs(REGISTRY)


@cache
def get_codec(slug: str) -> Codec:
    """The codec instance for ``slug`` (imported on first use)."""
    try:
        entry = REGISTRY[slug]
    except KeyError:
        if slug in imported_entries():
            raise ImportedCodecCannotEncode(slug) from None
        raise UnknownCodec(slug) from None
    if entry.family == "plugin":
        from perceptlab.codecs.plugins import load_plugin  # plugins.py reads this module

        return load_plugin(entry)
    module_name, _, class_name = entry.target.partition(":")
    codec_class = getattr(importlib.import_module(module_name), class_name)
    codec = codec_class()
    if codec.slug != slug:
        raise ValueError(f"{entry.target} declares slug {codec.slug!r}, registered as {slug!r}")
    return codec


def side_inputs_of(slug: str) -> tuple[str, ...]:
    """What codec ``slug`` needs per image besides the pixels (``Codec.side_inputs``); none
    for a slug that is not registered or a plugin that will not load (said elsewhere)."""
    try:
        return get_codec(slug).side_inputs
    except (CodecError, ImportError):
        return ()


def parse_slugs(text: str) -> list[str]:
    """``"jpeg, webp"`` → ``["jpeg", "webp"]``; raises :class:`UnknownCodec` on a bad slug."""
    slugs = [s.strip() for s in text.split(",") if s.strip()]
    for slug in slugs:
        if slug not in REGISTRY:
            raise UnknownCodec(slug)
    return slugs


def codec_choices() -> list[tuple[str, str]]:
    """(slug, label) pairs of the registered codecs, in registry order (no database read;
    :func:`codec_entries` adds the imported codecs)."""
    return [(entry.slug, entry.label) for entry in REGISTRY.values()]


def imported_entries() -> dict[str, CodecEntry]:
    """The imported codecs as registry entries (family :data:`IMPORTED`), by slug; empty
    while the database has no table for them yet (before ``migrate``). A slug the registry
    took after the import is left out: the registered codec is what the slug means."""
    from perceptlab.codecs.models import ImportedCodec  # models load after the registry

    try:
        rows = list(ImportedCodec.objects.order_by("slug"))
    except DatabaseError:
        return {}
    return {
        row.slug: CodecEntry(
            slug=row.slug,
            label=row.display_label,
            family=IMPORTED,
            target="",
            description="reconstructions imported from files; cannot encode",
        )
        for row in rows
        if row.slug not in REGISTRY
    }


def codec_entries() -> dict[str, CodecEntry]:
    """Every codec a study may name: the registry's, then the imported codecs (reads the
    database, so an import is seen by every process at once)."""
    return {**REGISTRY, **imported_entries()}


def is_imported(slug: str) -> bool:
    return slug not in REGISTRY and slug in imported_entries()
