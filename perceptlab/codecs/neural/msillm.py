"""MS-ILLM and its No-GAN counterpart as codecs, from the released weights.

Paper: M. J. Muckley, A. El-Nouby, K. Ullrich, H. Jégou, J. Verbeek, "Improving Statistical
Fidelity for Neural Image Compression with Implicit Local Likelihood Models", ICML 2023,
PMLR 202 (https://proceedings.mlr.press/v202/muckley23a.html). Reference and weights:
facebookresearch/NeuralCompression (``neuralcompression`` package, torch hub entries
``msillm_quality_1`` … ``6`` and ``noganms_quality_1`` … ``6``; ``projects/illm``).

* ``msillm`` — MS-ILLM: a HiFiC autoencoder with a mean-scale hyperprior (Mentzer et al.,
  NeurIPS 2020; Minnen et al., NeurIPS 2018) trained for rate + MSE + LPIPS, then fine-tuned
  with an adversarial loss whose discriminator is the paper's implicit local likelihood model:
  a U-Net conditioned on the latent that labels each 8×8 region of a real image with its
  VQ-VAE code (one of 1024) and of a decoded one as "fake" (OASIS-style loss), improving
  statistical fidelity (FID) at a given rate. In the published recipe (``projects/illm``) the
  encoder and the entropy model are frozen in that stage.
* ``msillm-nogan`` — the same autoencoder after the first stage only (rate + MSE + LPIPS):
  the paper's "No-GAN" models, from which the GAN stage starts.

Each has one released model per rate target, the ``quality`` dial: 1 → 0.035, 2 → 0.07,
3 → 0.14, 4 → 0.3, 5 → 0.45, 6 → 0.9 bpp (targets of training; the rate an image gets
varies). The architecture is :mod:`.msillm_net` (our implementation, checked against the
reference on seeded weights); this module imports neither torch nor CompressAI.

**Weights.** ``<prefix>_target_<bpp>bpp.ckpt`` with prefix ``msillm`` or ``noganms``, published
at ``https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm/`` and released
under the **CC-BY-NC 4.0** licence (non-commercial use only; ``WEIGHTS_LICENSE`` of the
repository), which the manifest entries carry and ``fetch_weights`` prints. They are read only
from the platform's weights folder (``PERCEPTLAB_WEIGHTS_DIR``) and never downloaded here:
``manage.py fetch_weights --only msillm`` (or ``msillm-nogan``) downloads them, ``--from DIR``
copies them on an offline machine. Meta publishes no SHA-256 and the names carry no hash prefix
(torch hub loads them with ``check_hash=False``), so nothing is pinned
(:data:`PINNED_SHA256` is where a digest taken from a trusted download goes); the SHA-256 of
the file actually used is written into every bitstream's header and a decoder refuses a
bitstream made with other weights. Each file is a plain state dict (the hub code loads it
straight into the model) of one architecture for all levels, 181,481,110 learned values
(≈ 726 MB in float32; each loaded level holds that much memory). The levels are independent: the
codec is usable with any subset present, and rate control turns the dial over those only.

**Entropy-coder tables.** A file that holds CompressAI's integer CDF tables is coded with them
as stored. A file without them (empty buffers) gets them from ``update()`` on load, on the
CPU, as the reference's own evaluation does (``model.update()``). Tables computed from
floating-point densities can differ in the last bit between CPUs, which would make a bitstream
decode wrongly elsewhere; so a bitstream made with computed tables carries a third section,
the first 4 bytes of the tables' SHA-256, and a decoder whose tables differ refuses it.

**Bitstream.** The PerceptLab container (:mod:`.container`) with sections [y string, z string]
— byte for byte what the reference's ``compress`` returns — plus the tables tag above when the
tables were computed. The input is reflect-padded to a multiple of 64; z has shape
(H/64, W/64) of the padded size, which the decoder recomputes. The header's model name is the
weight file's name without ``.ckpt``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perceptlab.codecs.base import (
    CodecError,
    CodecUnavailable,
    Dial,
    Param,
    Params,
)
from perceptlab.codecs.neural.checkpoints import Checkpoint
from perceptlab.codecs.neural.codec import (
    PerLevelCodec,
    configured_threads,
    library_versions,
)
from perceptlab.codecs.neural.container import FORMAT_VERSION
from perceptlab.lib.weights import WeightFile, sha256_of

if TYPE_CHECKING:
    import torch

RELEASE_URL = "https://dl.fbaipublicfiles.com/NeuralCompression/2023-muckley-msillm"
"""Where the weights are published (``neuralcompression.zoo._msillm``/``_noganms``)."""
RELEASE = "neuralcompression-2023-muckley-msillm"
"""Stored as the model version in each header."""
LICENCE = (
    "CC-BY-NC 4.0, non-commercial use only: "
    "https://github.com/facebookresearch/NeuralCompression/blob/main/WEIGHTS_LICENSE"
)
"""The weights' licence (``WEIGHTS_LICENSE`` of the repository; the code is MIT)."""
SUFFIX = ".ckpt"
STRIDE = 64
TARGET_BPP = ("0.035", "0.07", "0.14", "0.3", "0.45", "0.9")
"""The rate target of quality 1 … 6, as the released files name them."""
FILE_PREFIX = {"msillm": "msillm", "msillm-nogan": "noganms"}
"""Codec slug → the released files' name prefix."""
PINNED_SHA256: dict[str, str] = {}
"""File name → SHA-256 from a trusted download; none is published (see the module doc)."""
TABLES_TAG_BYTES = 4


class MSILLMWeightsError(ValueError):
    """An MS-ILLM weight file is missing, corrupt or not an MS-ILLM state dict."""


def file_name(slug: str, quality: int) -> str:
    """E.g. ``msillm_target_0.14bpp.ckpt`` for ``("msillm", 3)``."""
    return f"{FILE_PREFIX[slug]}_target_{TARGET_BPP[quality - 1]}bpp{SUFFIX}"


def file_url(slug: str, quality: int) -> str:
    return f"{RELEASE_URL}/{file_name(slug, quality)}"


def msillm_weight_files() -> list[WeightFile]:
    """The manifest entries of the twelve released files (``fetch_weights --only msillm`` or
    ``--only msillm-nogan``), registered by the codecs app at start-up."""
    return [
        WeightFile(
            name=file_name(slug, quality),
            url=file_url(slug, quality),
            sha256=PINNED_SHA256.get(file_name(slug, quality)),
            sha256_source=(
                "Meta publishes no SHA-256 for the MS-ILLM files and their names carry no hash "
                "prefix (torch hub loads them with check_hash=False); the SHA-256 of the copy "
                "used is recorded in every bitstream header"
            ),
            metrics=(slug,),
            licence=LICENCE,
        )
        for slug in FILE_PREFIX
        for quality in range(1, len(TARGET_BPP) + 1)
    ]


def weights_dir() -> Path:
    """The platform's weights folder (``PERCEPTLAB_WEIGHTS_DIR``)."""
    from perceptlab.lib.weights import configured_weights_dir

    return configured_weights_dir()


def quality_of(slug: str, name: str) -> int | None:
    """The quality whose file is ``name`` (with or without ``.ckpt``), or ``None``."""
    stem = name.removesuffix(SUFFIX)
    for quality in range(1, len(TARGET_BPP) + 1):
        if file_name(slug, quality).removesuffix(SUFFIX) == stem:
            return quality
    return None


def missing_message(slug: str, quality: int, directory: Path) -> str:
    return (
        f"weights missing: {file_name(slug, quality)}, put it in {directory} (or run manage.py "
        f"fetch_weights --only {slug}; licence {LICENCE})"
    )


def verify(path: Path) -> str:
    """The file's SHA-256, checked against :data:`PINNED_SHA256` where a digest is pinned."""
    digest = sha256_of(path)
    expected = PINNED_SHA256.get(path.name)
    if expected is not None and digest != expected:
        raise MSILLMWeightsError(
            f"weights corrupt: {path} has SHA-256 {digest}, expected {expected}; delete it "
            "and run manage.py fetch_weights"
        )
    return digest


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The plain state dict in ``path`` (the released files are ``model.state_dict()``)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not readable"
        raise MSILLMWeightsError(f"{path} is not a readable state dict ({error})") from None
    if not isinstance(payload, dict) or not all(
        isinstance(value, torch.Tensor) for value in payload.values()
    ):
        raise MSILLMWeightsError(f"{path} does not hold a state dict of tensors")
    return payload


def tables_tag(net: Any) -> bytes:
    """The first bytes of the SHA-256 of the integer CDF tables (see the module doc)."""
    import torch

    from perceptlab.codecs.neural.msillm_net import coding_tables

    digest = hashlib.sha256()
    for table in coding_tables(net):
        digest.update(table.to("cpu", torch.int32).numpy().tobytes())
    return digest.digest()[:TABLES_TAG_BYTES]


@dataclass
class MSILLMNet:
    """A loaded model with the interface :class:`.codec.NeuralCodec` expects."""

    slug: str
    quality: int
    net: Any
    """A :class:`.msillm_net.MSILLM`."""
    tag: bytes
    """:func:`tables_tag` when the tables were computed on load, else empty."""
    stride: int = STRIDE

    def compress(self, x: torch.Tensor, params: dict[str, int | float | str]) -> list[bytes]:
        """``x``: (1, 3, H, W) in [0, 1], H and W multiples of 64 → [y, z(, tables tag)]."""
        y_string, z_string = self.net.compress_strings(x)
        return [y_string, z_string, self.tag] if self.tag else [y_string, z_string]

    def decompress(
        self,
        sections: list[bytes],
        size: tuple[int, int],
        params: dict[str, int | float | str],
    ) -> torch.Tensor:
        """The padded (1, 3, H, W) reconstruction in [0, 1]."""
        expected = 3 if self.tag else 2
        if len(sections) != expected:
            raise CodecError(
                self.slug, f"the bitstream has {len(sections)} sections, expected {expected}"
            )
        if params.get("quality") != self.quality:
            raise CodecError(
                self.slug,
                f"the bitstream header is damaged (quality {params.get('quality')!r} with the "
                f"weights of quality {self.quality})",
            )
        if self.tag and sections[2] != self.tag:
            raise ValueError(
                f"its entropy-coder tables (tag {sections[2].hex()}) differ from the ones "
                f"computed here from the same weights ({self.tag.hex()})"
            )
        height, width = size
        if height % STRIDE or width % STRIDE:
            raise CodecError(
                self.slug, f"the padded size {width}x{height} is not a multiple of {STRIDE}"
            )
        x_hat: torch.Tensor = self.net.decompress_strings(sections[0], sections[1], size)
        return x_hat


_LOCK = threading.Lock()
_NETS: dict[tuple[str, int, str, str], tuple[MSILLMNet, Checkpoint]] = {}


def load(slug: str, path: Path, device: str) -> tuple[MSILLMNet, Checkpoint]:
    """The eval-mode model in ``path`` on ``device``, loaded once per process (keyed by the
    file's SHA-256, so a replaced file is loaded again)."""
    quality = quality_of(slug, path.name)
    if quality is None:
        raise MSILLMWeightsError(f"{path.name} is not a {slug} weight file")
    digest = verify(path)
    key = (slug, quality, digest, device)
    with _LOCK:
        if key not in _NETS:
            import torch

            from perceptlab.codecs.neural.msillm_net import ArchitectureError, from_state_dict

            threads = configured_threads()
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            try:
                net, computed = from_state_dict(read_state_dict(path))  # tables on the CPU
            except ArchitectureError as error:
                raise MSILLMWeightsError(f"{path}: {error}") from None
            tag = tables_tag(net) if computed else b""
            net.to(device)
            checkpoint = Checkpoint(
                path=path,
                family="msillm",
                name=path.name.removesuffix(SUFFIX),
                version=RELEASE,
                config={
                    "slug": slug,
                    "quality": quality,
                    "tables": "computed" if computed else "stored",
                },
                state_dict={},
                card={"source": file_url(slug, quality), "licence": LICENCE},
                sha256=digest,
            )
            _NETS[key] = (MSILLMNet(slug, quality, net, tag), checkpoint)
        return _NETS[key]


def forget_models() -> None:
    """Drop the loaded models (tests, or to free memory: each holds ≈ 726 MB)."""
    with _LOCK:
        _NETS.clear()


class MSILLMCodec(PerLevelCodec):
    """MS-ILLM (Muckley et al., ICML 2023) at one of its six released rates (module doc)."""

    slug = "msillm"
    family = "msillm"
    levels: ClassVar[int] = len(TARGET_BPP)
    default_quality: ClassVar[int] = 3
    params = (
        Param(
            "quality",
            int,
            3,
            "released model 1–6, trained for 0.035, 0.07, 0.14, 0.3, 0.45, 0.9 bpp",
            low=1,
            high=6,
        ),
    )
    dial = Dial("quality", 1, 6, integer=True, increasing=True)

    def version(self) -> str:
        return f"{self.slug} {RELEASE} container-{FORMAT_VERSION}, {library_versions()}"

    def no_level_reason(self) -> str:
        return (
            f"weights missing: no {self.slug} level is in {weights_dir()}; put any of its "
            f"files there (for quality {self.default_quality}: "
            f"{file_name(self.slug, self.default_quality)}), or run manage.py fetch_weights "
            f"--only {self.slug} (licence {LICENCE})"
        )

    def levels_present(self) -> tuple[tuple[int, ...], dict[int, str]]:
        """The levels whose files are here (and verified where pinned), and why each level
        whose file is here was refused. Unpinned files are not hashed here (≈ 726 MB each):
        their digest is taken when they load."""
        directory = weights_dir()
        usable: list[int] = []
        problems: dict[int, str] = {}
        for quality in range(1, self.levels + 1):
            path = directory / file_name(self.slug, quality)
            if not path.is_file():
                continue
            try:
                if path.name in PINNED_SHA256:
                    verify(path)
            except MSILLMWeightsError as error:
                problems[quality] = str(error)
            else:
                usable.append(quality)
        return tuple(usable), problems

    def default_checkpoint(self) -> str:
        return file_name(self.slug, self.default_quality).removesuffix(SUFFIX)

    def checkpoint_name(self, params: Params) -> str:
        """The stem of the file for ``params["quality"]``; unavailable when it is absent."""
        quality = int(params["quality"])
        directory = weights_dir()
        if not (directory / file_name(self.slug, quality)).is_file():
            raise CodecUnavailable(self.slug, missing_message(self.slug, quality, directory))
        return file_name(self.slug, quality).removesuffix(SUFFIX)

    def _model(self, name: str, device: str) -> tuple[Any, Checkpoint]:
        """The model of file ``name`` (from :meth:`checkpoint_name` or a header)."""
        quality = quality_of(self.slug, name)
        if quality is None:
            raise CodecError(self.slug, f"the bitstream is not a {self.slug} bitstream ({name})")
        directory = weights_dir()
        path = directory / file_name(self.slug, quality)
        if not path.is_file():
            raise CodecUnavailable(self.slug, missing_message(self.slug, quality, directory))
        try:
            return load(self.slug, path, device)
        except MSILLMWeightsError as error:
            raise CodecUnavailable(self.slug, str(error)) from None


class MSILLMNoGANCodec(MSILLMCodec):
    """MS-ILLM's No-GAN counterpart (MSE + LPIPS only), six released rates (module doc)."""

    slug = "msillm-nogan"
