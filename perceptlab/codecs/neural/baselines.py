"""CompressAI's pretrained MSE models as codecs: the learned, non-GAN baselines.

Three architectures from CompressAI's model zoo (``compressai.zoo``, package 1.2.8), each
with one pretrained model per quality level, trained by InterDigital for MSE:

* ``bmshj2018-hyperprior`` — scale hyperprior, Ballé, Minnen, Singh, Hwang, Johnston,
  "Variational image compression with a scale hyperprior", ICLR 2018 (arXiv 1802.01436);
  quality 1–8.
* ``mbt2018-mean`` — mean-scale hyperprior without the context model, Minnen, Ballé,
  Toderici, "Joint autoregressive and hierarchical priors for learned image compression",
  NeurIPS 2018 (arXiv 1809.02736); quality 1–8.
* ``cheng2020-anchor`` — the anchor of Cheng, Sun, Takeuchi, Katto, "Learned image
  compression with discretized Gaussian mixture likelihoods and attention modules",
  CVPR 2020 (arXiv 2001.01568): residual blocks, sub-pixel upsampling and the serial
  autoregressive context model of mbt2018, single Gaussians (no mixture); quality 1–6.
  Its entropy coding runs position by position on the CPU and is much slower.

**Weights.** The architecture comes from ``compressai.zoo.<function>(quality, metric="mse",
pretrained=False)``; the state dict is read from a local file in the platform's weights
folder (``PERCEPTLAB_WEIGHTS_DIR``, see :mod:`perceptlab.lib.weights`), never
downloaded here. The official files (``compressai.zoo.image.model_urls``) are named
``<architecture>-<quality>-<hash>.pth.tar``, where ``<hash>`` is the beginning (8 hex digits)
of the file's SHA-256: the convention of ``torch.hub.load_state_dict_from_url(check_hash=True)``
(whose ``HASH_REGEX`` is ``-([a-f0-9]*)\\.``) and of CompressAI's exporter
``compressai.utils.update_model``, which renames its output to ``<name>-<sha256[:8]>``.
CompressAI publishes no full digests, so offline only that prefix can be checked: a file
whose SHA-256 does not begin with the prefix its name carries is refused. The official name
is looked for first; a file following the same pattern with another prefix (a model re-trained
and exported with ``update_model``) is used when it is the only one for that quality. The
full SHA-256 of the file actually used goes into every bitstream's header, and a decoder
refuses a bitstream made with other weights.

**Entropy-coder tables.** The zoo files already hold them: ``update_model`` calls
``net.update(force=True)`` before saving, and the zoo loads a pretrained model with
``from_state_dict`` → ``CompressionModel.load_state_dict`` only, without calling ``update()``
(that ``load_state_dict`` resizes the ``_quantized_cdf``/``_offset``/``_cdf_length``/
``scale_table`` buffers from the file and fails when they are absent). CompressAI's
maintainers recommend exactly that: run ``update`` once, save, then only load (CompressAI
issue #50). The tables are therefore loaded as stored and never recomputed here, so every
machine codes with the same integer CDFs (see :mod:`.checkpoints` for why recomputing could
break decoding across machines). A file without them, or with empty ones (a raw training
checkpoint, ``update()`` never run), is refused with the command that exports it.

**Bitstream.** The PerceptLab container (:mod:`.container`) with two sections, CompressAI's
``y`` string then its ``z`` string; the input is reflect-padded to a multiple of 64 (the
models' ``downsampling_factor``, 2^(4+2)), so ``z`` has shape ``(H/64, W/64)`` of the padded
size, which the decoder recomputes instead of storing. The header's model name is the weight
file's name without ``.pth.tar`` (so it names architecture, quality and hash prefix).
"""

from __future__ import annotations

import re
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
from perceptlab.codecs.neural.checkpoints import Checkpoint, sha256_file
from perceptlab.codecs.neural.codec import (
    PerLevelCodec,
    configured_threads,
    library_versions,
)
from perceptlab.codecs.neural.container import FORMAT_VERSION
from perceptlab.lib.weights import WeightFile

if TYPE_CHECKING:
    import torch

ROOT_URL = "https://compressai.s3.amazonaws.com/models/v1"
"""Where CompressAI publishes its zoo weights (``compressai.zoo.image.root_url``)."""
SUFFIX = ".pth.tar"
STRIDE = 64
"""``downsampling_factor`` of all three models: 4 stride-2 layers in g_a, 2 more in h_a."""
ZOO_VERSION = "compressai-zoo-v1"
"""Stored as the model version in each header (the zoo's ``models/v1`` release)."""

OFFICIAL_HASHES: dict[str, tuple[str, ...]] = {
    "bmshj2018-hyperprior": (
        "7eb97409",
        "93677231",
        "6d87be32",
        "de1b779c",
        "f8b614e1",
        "1ab9c41e",
        "3804dcbd",
        "a583f0cf",
    ),
    "mbt2018-mean": (
        "e522738d",
        "e54a039d",
        "723404a8",
        "6dba02a3",
        "d504e8eb",
        "a19628ab",
        "d5d441d1",
        "8089ae3e",
    ),
    "cheng2020-anchor": (
        "dad2ebff",
        "a29008eb",
        "e49be189",
        "98b0b468",
        "23852949",
        "4c052b1a",
    ),
}
"""SHA-256 prefixes in the official MSE file names, quality 1 first, copied from
``compressai.zoo.image.model_urls`` of CompressAI 1.2.8 (a test checks they still agree)."""

_ZOO_FUNCTIONS = {
    "bmshj2018-hyperprior": "bmshj2018_hyperprior",
    "mbt2018-mean": "mbt2018_mean",
    "cheng2020-anchor": "cheng2020_anchor",
}
_CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")
_NAME = re.compile(r"^(?P<arch>[a-z0-9-]+?)-(?P<quality>[0-9]+)-(?P<hash>[0-9a-f]{8,64})$")


class BaselineWeightsError(ValueError):
    """A baseline weight file is missing, ambiguous, corrupt or not the expected model."""


def zoo_weight_files() -> list[WeightFile]:
    """The manifest entries of every official file (``fetch_weights --only <slug>``),
    registered by the codecs app at start-up; the 8-digit prefix is checked on load."""
    return [
        WeightFile(
            name=official_name(slug, quality),
            url=official_url(slug, quality),
            sha256=None,
            sha256_source=(
                "CompressAI publishes no full SHA-256; the file name carries its first 8 "
                "hex digits (torch.hub check_hash), which the codec checks on load"
            ),
            metrics=(slug,),
        )
        for slug, prefixes in OFFICIAL_HASHES.items()
        for quality in range(1, len(prefixes) + 1)
    ]


def official_name(architecture: str, quality: int) -> str:
    """The zoo's file name, e.g. ``bmshj2018-hyperprior-1-7eb97409.pth.tar``."""
    return f"{architecture}-{quality}-{OFFICIAL_HASHES[architecture][quality - 1]}{SUFFIX}"


def official_url(architecture: str, quality: int) -> str:
    return f"{ROOT_URL}/{official_name(architecture, quality)}"


def weights_dir() -> Path:
    """The platform's weights folder (``PERCEPTLAB_WEIGHTS_DIR``)."""
    from perceptlab.lib.weights import configured_weights_dir

    return configured_weights_dir()


def parse_name(name: str) -> tuple[str, int, str] | None:
    """``(architecture, quality, hash prefix)`` of a weight file name (with or without
    ``.pth.tar``), or ``None`` when it does not follow ``<architecture>-<quality>-<hex>``."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    match = _NAME.match(stem)
    if match is None or match["arch"] not in OFFICIAL_HASHES:
        return None
    return match["arch"], int(match["quality"]), match["hash"]


def missing_message(architecture: str, quality: int, directory: Path) -> str:
    return (
        f"weights missing: {official_name(architecture, quality)}, put it in {directory} "
        f"(or run manage.py fetch_weights --only {architecture})"
    )


def candidates(architecture: str, quality: int, directory: Path) -> list[Path]:
    """Weight files for this model in ``directory``: the official one first, then any other
    ``<architecture>-<quality>-<hex>.pth.tar`` in name order."""
    official = directory / official_name(architecture, quality)
    found = [official] if official.is_file() else []
    if directory.is_dir():
        for path in sorted(directory.glob(f"{architecture}-{quality}-*{SUFFIX}")):
            if path != official and path.is_file() and parse_name(path.name) is not None:
                found.append(path)
    return found


def find_weights(architecture: str, quality: int, directory: Path) -> Path:
    """The file to encode with: the official one, else the only one following the pattern."""
    found = candidates(architecture, quality, directory)
    if not found:
        raise BaselineWeightsError(missing_message(architecture, quality, directory))
    official = directory / official_name(architecture, quality)
    if found[0] == official:
        return official
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise BaselineWeightsError(
            f"several weight files for {architecture} quality {quality} in {directory} "
            f"({names}) and not the official {official.name}; keep only one"
        )
    return found[0]


def verify(path: Path) -> str:
    """The file's full SHA-256 after checking it begins with the prefix in its name.

    Only the prefix can be checked: CompressAI publishes no full digests, and torch.hub's
    ``check_hash`` checks no more than this either.
    """
    parsed = parse_name(path.name)
    if parsed is None:
        raise BaselineWeightsError(
            f"{path.name} is not named <architecture>-<quality>-<sha256 prefix>{SUFFIX}"
        )
    prefix = parsed[2]
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise BaselineWeightsError(
            f"weights corrupt: {path} has SHA-256 {digest}, which does not begin with "
            f"{prefix} as its name says; delete it and run manage.py fetch_weights "
            f"--only {parsed[0]}"
        )
    return digest


def read_state_dict(path: Path, architecture: str, quality: int) -> dict[str, torch.Tensor]:
    """The file's state dict with the zoo's key renaming (``compressai.zoo.load_state_dict``).

    Accepts a plain state dict (the zoo's files, ``update_model``'s output) or one under
    ``network``/``state_dict``/``model_state_dict`` (as CompressAI's ``eval_model`` does).
    """
    import torch
    from compressai.zoo.pretrained import load_pretrained

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not readable"
        raise BaselineWeightsError(f"{path} is not a readable state dict ({error})") from None
    if isinstance(payload, dict):
        for key in ("network", "state_dict", "model_state_dict"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not all(
        isinstance(value, torch.Tensor) for value in payload.values()
    ):
        raise BaselineWeightsError(f"{path} does not hold a state dict of tensors")
    state = load_pretrained(payload)
    lacking = [
        f"{module}.{buffer}"
        for module in ("entropy_bottleneck", "gaussian_conditional")
        for buffer in _CDF_BUFFERS
        if f"{module}.{buffer}" not in state or state[f"{module}.{buffer}"].numel() == 0
    ]
    if lacking:
        raise BaselineWeightsError(
            f"{path} has no entropy-coder tables ({', '.join(lacking)}); export it with "
            f"`python -m compressai.utils.update_model -a {architecture} {path.name}` "
            "(which runs update(force=True)) and use that file"
        )
    return state


def build_model(architecture: str, quality: int, state: dict[str, torch.Tensor]) -> Any:
    """The zoo's architecture for ``quality`` with ``state`` loaded (tables as stored)."""
    from compressai import zoo

    net = getattr(zoo, _ZOO_FUNCTIONS[architecture])(
        quality=quality, metric="mse", pretrained=False
    )
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise BaselineWeightsError(
            f"the file does not hold a {architecture} quality {quality} model ({first})"
        ) from None
    return net


@dataclass
class ZooNet:
    """A loaded zoo model with the interface :class:`.codec.NeuralCodec` expects."""

    slug: str
    architecture: str
    quality: int
    net: Any
    stride: int = STRIDE

    def compress(self, x: torch.Tensor, params: dict[str, int | float | str]) -> list[bytes]:
        """``x``: (1, 3, H, W) in [0, 1], H and W multiples of 64 → [y string, z string]."""
        out = self.net.compress(x)
        y_strings, z_strings = out["strings"]
        expected = (x.shape[-2] // STRIDE, x.shape[-1] // STRIDE)
        if tuple(out["shape"]) != expected:
            raise CodecError(self.slug, f"z has shape {tuple(out['shape'])}, expected {expected}")
        return [bytes(y_strings[0]), bytes(z_strings[0])]

    def decompress(
        self,
        sections: list[bytes],
        size: tuple[int, int],
        params: dict[str, int | float | str],
    ) -> torch.Tensor:
        """The padded (1, 3, H, W) reconstruction; z's shape is (H/64, W/64)."""
        if len(sections) != 2:
            raise CodecError(
                self.slug, f"the bitstream has {len(sections)} sections, expected 2 (y and z)"
            )
        if params.get("quality") != self.quality:
            raise CodecError(
                self.slug,
                f"the bitstream header is damaged (quality {params.get('quality')!r} "
                f"with the weights of quality {self.quality})",
            )
        height, width = size
        if height % STRIDE or width % STRIDE:
            raise CodecError(
                self.slug, f"the padded size {width}x{height} is not a multiple of {STRIDE}"
            )
        shape = (height // STRIDE, width // STRIDE)
        out = self.net.decompress([[sections[0]], [sections[1]]], shape)
        x_hat: torch.Tensor = out["x_hat"]
        return x_hat


_LOCK = threading.Lock()
_NETS: dict[tuple[str, int, str, str], tuple[ZooNet, Checkpoint]] = {}


def load(slug: str, path: Path, device: str) -> tuple[ZooNet, Checkpoint]:
    """The eval-mode model in ``path`` on ``device``, verified, loaded once per process.

    Keyed by the file's SHA-256, so a replaced file is loaded again.
    """
    parsed = parse_name(path.name)
    if parsed is None or parsed[0] != slug:
        raise BaselineWeightsError(f"{path.name} is not a {slug} weight file")
    architecture, quality, _ = parsed
    digest = verify(path)
    key = (architecture, quality, digest, device)
    with _LOCK:
        if key not in _NETS:
            import torch

            threads = configured_threads()
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            net = build_model(architecture, quality, read_state_dict(path, architecture, quality))
            net.to(device).eval()
            stem = path.name[: -len(SUFFIX)]
            checkpoint = Checkpoint(
                path=path,
                family="compressai",
                name=stem,
                version=ZOO_VERSION,
                config={"architecture": architecture, "quality": quality, "metric": "mse"},
                state_dict={},
                card={"source": official_url(architecture, quality)},
                sha256=digest,
            )
            _NETS[key] = (ZooNet(slug, architecture, quality, net), checkpoint)
        return _NETS[key]


def forget_models() -> None:
    """Drop the loaded models (tests, or to free memory)."""
    with _LOCK:
        _NETS.clear()


class CompressAIBaseline(PerLevelCodec):
    """A CompressAI zoo architecture at one of its MSE quality levels (see the module doc)."""

    family = "compressai"
    levels: ClassVar[int]
    default_quality: ClassVar[int]

    def version(self) -> str:
        return f"{self.slug} mse {ZOO_VERSION} container-{FORMAT_VERSION}, {library_versions()}"

    def no_level_reason(self) -> str:
        return (
            f"weights missing: no {self.slug} quality level is in {weights_dir()}; put any of "
            f"its files there (for quality {self.default_quality}: "
            f"{official_name(self.slug, self.default_quality)}), or run manage.py "
            f"fetch_weights --only {self.slug}"
        )

    def levels_present(self) -> tuple[tuple[int, ...], dict[int, str]]:
        """The quality levels whose weights are here and verified, and for each level whose
        file is here but refused (corrupt, ambiguous), why. A file's SHA-256 is computed
        once per process while its size and modification time stay the same
        (:func:`perceptlab.lib.weights.sha256_of`)."""
        directory = weights_dir()
        usable: list[int] = []
        problems: dict[int, str] = {}
        for quality in range(1, self.levels + 1):
            if not candidates(self.slug, quality, directory):
                continue
            try:
                verify(find_weights(self.slug, quality, directory))
            except BaselineWeightsError as error:
                problems[quality] = str(error)
            else:
                usable.append(quality)
        return tuple(usable), problems

    def default_checkpoint(self) -> str:
        return official_name(self.slug, self.default_quality)[: -len(SUFFIX)]

    def checkpoint_name(self, params: Params) -> str:
        """The stem of the weight file for ``params["quality"]``."""
        quality = int(params["quality"])
        try:
            path = find_weights(self.slug, quality, weights_dir())
        except BaselineWeightsError as error:
            raise CodecUnavailable(self.slug, str(error)) from None
        return path.name[: -len(SUFFIX)]

    def _model(self, name: str, device: str) -> tuple[Any, Checkpoint]:
        """The model of weight file ``name`` (from :meth:`checkpoint_name` or a header).

        When a header names a file that is not here, the file in use for that quality is
        loaded, and the adapter then refuses the bitstream as made with other weights.
        """
        parsed = parse_name(name)
        if parsed is None or parsed[0] != self.slug:
            raise CodecError(self.slug, f"the bitstream is not a {self.slug} bitstream ({name})")
        quality = parsed[1]
        if not 1 <= quality <= self.levels:
            raise CodecError(self.slug, f"the bitstream names quality {quality}")
        directory = weights_dir()
        path = directory / f"{name}{SUFFIX}"
        try:
            if not path.is_file():
                path = find_weights(self.slug, quality, directory)
            return load(self.slug, path, device)
        except BaselineWeightsError as error:
            raise CodecUnavailable(self.slug, str(error)) from None


def _quality_param(levels: int, default: int) -> Param:
    return Param(
        "quality",
        int,
        default,
        f"CompressAI quality level 1–{levels} (one MSE-trained model each; 1 = fewest bits)",
        low=1,
        high=levels,
    )


class Bmshj2018HyperpriorCodec(CompressAIBaseline):
    """Scale hyperprior (Ballé et al., ICLR 2018), CompressAI zoo, MSE, quality 1–8."""

    slug = "bmshj2018-hyperprior"
    levels = 8
    default_quality = 4
    params = (_quality_param(8, 4),)
    dial = Dial("quality", 1, 8, integer=True, increasing=True)


class Mbt2018MeanCodec(CompressAIBaseline):
    """Mean-scale hyperprior (Minnen et al., NeurIPS 2018), CompressAI zoo, MSE, 1–8."""

    slug = "mbt2018-mean"
    levels = 8
    default_quality = 4
    params = (_quality_param(8, 4),)
    dial = Dial("quality", 1, 8, integer=True, increasing=True)


class Cheng2020AnchorCodec(CompressAIBaseline):
    """Cheng et al. (CVPR 2020) anchor, CompressAI zoo, MSE, quality 1–6."""

    slug = "cheng2020-anchor"
    levels = 6
    default_quality = 3
    params = (_quality_param(6, 3),)
    dial = Dial("quality", 1, 6, integer=True, increasing=True)
