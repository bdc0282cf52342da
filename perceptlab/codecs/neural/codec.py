"""The adapter between the codec contract (:mod:`perceptlab.codecs.base`) and a neural model.

Every neural codec is a :class:`NeuralCodec` subclass naming its model family module
(``perceptlab.codecs.neural.hific`` ...). The family module provides ``build(config)``,
returning a :class:`CodecNet`-shaped ``torch.nn.Module``::

    stride: int                                   # inputs are padded to a multiple of it
    compress(x, params) -> list[bytes]            # x: (1, 3, H, W) float in [0, 1], padded
    decompress(sections, (H, W), params) -> x̂     # the padded size; x̂ in [0, 1]

The adapter does the rest the same way for every family: uint8 → float, reflect padding to
the stride, the container (:mod:`.container`, whose bytes give bpp), cropping, float →
uint8, checking that a bitstream was made by the same weights (SHA-256) and on the same
device type, and loading each checkpoint once per process (thread-safe). torch is imported
only when a model is first used.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from perceptlab.codecs.base import (
    Availability,
    Codec,
    CodecError,
    CodecUnavailable,
    Dial,
    Params,
    SideInputs,
)
from perceptlab.codecs.neural import checkpoints
from perceptlab.codecs.neural.container import (
    FORMAT_VERSION,
    ContainerError,
    Header,
    pack,
    unpack,
)
from perceptlab.codecs.neural.family import family as neural_family

if TYPE_CHECKING:
    import torch

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str, str], Any] = {}


def torch_available() -> Availability:
    try:
        import compressai  # noqa: F401
        import torch  # noqa: F401
    except Exception as error:  # ImportError, or a broken torchvision raising RuntimeError
        return Availability(
            False, f"PyTorch/CompressAI cannot be imported ({error}); pip install -e '.[neural]'"
        )
    return Availability(True)


def torch_installed() -> Availability:
    """Whether PyTorch and CompressAI are installed, found without importing them (the
    admin asks on web requests; importing torch there would cost seconds and memory)."""
    missing = [name for name in ("torch", "compressai") if importlib.util.find_spec(name) is None]
    if missing:
        return Availability(
            False, f"{' and '.join(missing)} not installed; pip install -e '.[neural]'"
        )
    return Availability(True)


def library_versions() -> str:
    """``torch X, compressai Y`` from the installed distributions (nothing imported)."""
    from importlib import metadata

    try:
        return f"torch {metadata.version('torch')}, compressai {metadata.version('compressai')}"
    except metadata.PackageNotFoundError:
        return "PyTorch unavailable"


def configured_device() -> str:
    try:
        from django.conf import settings

        if settings.configured:
            return str(settings.PERCEPTLAB_NEURAL_DEVICE)
    except ImportError:  # pragma: no cover
        pass
    return "cpu"


def configured_threads() -> int | None:
    try:
        from django.conf import settings

        if settings.configured:
            return int(settings.PERCEPTLAB_TORCH_THREADS)
    except ImportError:  # pragma: no cover
        pass
    return None


def device_kind(device: str) -> str:
    """What the header records of the encoding device: ``cuda``, or ``cpu/<SIMD level>``
    (``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512 …). CPUs with other vector
    units may round a network's outputs differently in the last bit, which can change the
    coding tables the decoder derives from them."""
    import torch

    kind = device.split(":")[0]
    if kind == "cpu":
        return f"cpu/{torch.backends.cpu.get_cpu_capability()}"
    return kind


def to_tensor(image: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float32 in [0, 1] (the one place this happens)."""
    import torch

    tensor = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).to(device)
    return tensor.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] → (H, W, 3) uint8, rounded half to even after clamping."""
    pixels = tensor.detach().clamp(0.0, 1.0).mul(255.0).round().to("cpu")
    return np.ascontiguousarray(pixels[0].permute(1, 2, 0).numpy().astype(np.uint8))


def pad_to(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad bottom/right to a multiple of ``stride`` (as the official HiFiC code)."""
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    pad_bottom, pad_right = (-height) % stride, (-width) % stride
    if pad_bottom or pad_right:
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        x = F.pad(x, (0, pad_right, 0, pad_bottom), mode=mode)
    return x, pad_bottom, pad_right


def load_model(family: str, name: str, device: str) -> tuple[Any, checkpoints.Checkpoint]:
    """The eval-mode model of checkpoint ``name`` on ``device`` (loaded once per process)."""
    key = (family, name, device)
    with _LOCK:
        if key not in _MODELS:
            import torch

            threads = configured_threads()
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            checkpoint = checkpoints.load(checkpoints.require(name), family=family)
            module = neural_family(family)
            model = module.build(module.Config.of(checkpoint.config))
            model.load_state_dict(checkpoint.state_dict)
            model.to(device).eval()
            _MODELS[key] = (model, checkpoint)
        return _MODELS[key]  # type: ignore[no-any-return]


def forget_models() -> None:
    """Drop the loaded models (tests, or after a checkpoint file was replaced)."""
    with _LOCK:
        _MODELS.clear()


class NeuralCodec(Codec):
    """Base of the registered neural codecs; subclasses set the family and the parameters."""

    family: ClassVar[str]
    needs_weights = True
    file_extension = "plnc"

    def checkpoint_name(self, params: Params) -> str:
        """The checkpoint that encodes with ``params`` (one per trained operating point)."""
        return str(params["model"])

    def model_params(self, params: Params) -> dict[str, int | float | str]:
        """What the model itself needs of ``params`` (stored in the container header)."""
        return {k: v for k, v in params.items() if k != "model" and not isinstance(v, bool)}

    def default_checkpoint(self) -> str:
        for param in self.params:
            if param.name == "model":
                return str(param.default)
        raise NotImplementedError

    def card_checkpoints(self) -> list[str]:
        """The checkpoints whose model cards describe the codec as a user meets it by default
        (one; a codec with one model per rate setting lists each). Empty for a codec of
        published weights (MS-ILLM, the CompressAI zoo): the paper measured them, and the
        photographic floor (:mod:`.cards`) is for checkpoints trained here."""
        return [self.default_checkpoint()]

    def version(self) -> str:
        return f"{self.family} container-{FORMAT_VERSION}, {library_versions()}"

    def availability(self) -> Availability:
        state = torch_installed()
        if not state.available:
            return state
        name = self.default_checkpoint()
        if checkpoints.find(name) is None:
            try:
                checkpoints.require(name)
            except checkpoints.CheckpointError as error:
                return Availability(False, str(error))
        return Availability(True)

    def require_available(self) -> None:
        """PyTorch must be importable; the checkpoint a call names is checked when it loads
        (a codec whose default checkpoint is missing still runs with another one)."""
        state = torch_available()
        if not state.available:
            raise CodecUnavailable(self.slug, state.reason)

    def weights_sha256(self, bitstream: bytes) -> str:
        """The weights' SHA-256 from the bitstream's container header (every learned codec
        writes it there, and its decoder refuses other weights)."""
        return unpack(bitstream).header.weights_sha256

    def _model(self, name: str, device: str) -> tuple[Any, checkpoints.Checkpoint]:
        try:
            return load_model(self.family, name, device)
        except checkpoints.CheckpointError as error:
            raise CodecUnavailable(self.slug, str(error)) from None

    def _device(self, device_type: str | None = None) -> str:
        import torch

        device = device_type or configured_device()
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise CodecUnavailable(
                self.slug,
                f"this bitstream or setting needs a CUDA device ({device}); none is available "
                "(a neural bitstream decodes on the device type that encoded it)",
            )
        return device

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        import torch

        device = self._device()
        name = self.checkpoint_name(params)
        model, checkpoint = self._model(name, device)
        model_params = self.model_params(params)
        with torch.inference_mode():
            x, pad_bottom, pad_right = pad_to(to_tensor(image, device), model.stride)
            sections = model.compress(x, model_params)
        padding = (pad_bottom, pad_right)
        return self._pack(image, name, checkpoint, device, padding, model_params, sections)

    def _encode_side(self, image: np.ndarray, params: Params, side: SideInputs) -> bytes:
        """GC's selective mode: the model codes the masked regions and sends the label map
        (:meth:`.gc.GC.compress_selective`); label map and mask padded as the image is
        (labels repeated at the edge, the padding never preserved)."""
        import torch
        import torch.nn.functional as F

        device = self._device()
        name = self.checkpoint_name(params)
        model, checkpoint = self._model(name, device)
        classes = int(getattr(model, "semantic_classes", 0))
        if not classes:
            raise CodecError(self.slug, f"{name} is not a selective (SC) model")
        if int(side.labels.max()) >= classes:
            raise CodecError(
                self.slug,
                f"the label map holds class {int(side.labels.max())}; {name} knows "
                f"classes 0–{classes - 1}",
            )
        with torch.inference_mode():
            x, pad_bottom, pad_right = pad_to(to_tensor(image, device), model.stride)
            labels = torch.from_numpy(side.labels.astype(np.int64)).to(device)
            onehot = F.one_hot(labels, classes).permute(2, 0, 1)[None].float()
            onehot = F.pad(onehot, (0, pad_right, 0, pad_bottom), mode="replicate")
            mask = torch.from_numpy(side.mask.astype(np.float32)).to(device)[None, None]
            mask = F.pad(mask, (0, pad_right, 0, pad_bottom), value=0.0)
            sections = model.compress_selective(x, onehot, mask)
        return self._pack(image, name, checkpoint, device, (pad_bottom, pad_right), {}, sections)

    def _pack(
        self,
        image: np.ndarray,
        name: str,
        checkpoint: checkpoints.Checkpoint,
        device: str,
        padding: tuple[int, int],
        model_params: dict[str, int | float | str],
        sections: list[bytes],
    ) -> bytes:
        pad_bottom, pad_right = padding
        header = Header(
            model=name,
            model_version=checkpoint.version,
            weights_sha256=checkpoint.sha256,
            height=image.shape[0],
            width=image.shape[1],
            pad_bottom=pad_bottom,
            pad_right=pad_right,
            device_type=device_kind(device),
            params=model_params,
        )
        return pack(header, sections)

    def _decode(self, bitstream: bytes) -> np.ndarray:
        import torch

        try:
            container = unpack(bitstream)
        except ContainerError as error:
            raise CodecError(self.slug, str(error)) from None
        header = container.header
        device_type = header.device_type.split("/")[0]
        device = self._device(
            None if configured_device().split(":")[0] == device_type else device_type
        )
        model, checkpoint = self._model(header.model, device)
        if checkpoint.sha256 != header.weights_sha256:
            raise CodecError(
                self.slug,
                f"the bitstream was made with other weights of {header.model} "
                f"(sha256 {header.weights_sha256[:12]}…, here {checkpoint.sha256[:12]}…)",
            )
        padded = (header.height + header.pad_bottom, header.width + header.pad_right)
        here = device_kind(device)
        try:
            with torch.inference_mode():
                x_hat = model.decompress(list(container.sections), padded, dict(header.params))
        except (ValueError, RuntimeError) as error:
            note = (
                f"; it was encoded on {header.device_type} and this is {here}: entropy-coded "
                "neural bitstreams decode reliably only where the model's floating-point "
                "results are bit-identical"
                if header.device_type != here
                else ""
            )
            raise CodecError(self.slug, f"the bitstream does not decode ({error}){note}") from None
        return to_image(x_hat[..., : header.height, : header.width])


class PerLevelCodec(NeuralCodec):
    """A codec of published weights with one file per quality level (the CompressAI zoo,
    MS-ILLM): each level is a model of its own, usable without the others. Subclasses say
    which levels are here (:meth:`levels_present`) and what to fetch when none is
    (:meth:`no_level_reason`); availability and the rate dial follow from that."""

    levels: ClassVar[int]
    default_quality: ClassVar[int]

    def levels_present(self) -> tuple[tuple[int, ...], dict[int, str]]:
        """The levels whose weights are here and usable, and why each level whose file is
        here was refused."""
        raise NotImplementedError

    def no_level_reason(self) -> str:
        """What to say, and to fetch, when no level's weights are here."""
        raise NotImplementedError

    def card_checkpoints(self) -> list[str]:
        return []  # published weights, measured by their papers: no photographic-floor card

    def availability(self) -> Availability:
        """Torch and CompressAI are installed and at least one level's weights are here; a
        missing or refused level is named when it is asked for."""
        state = torch_installed()
        if not state.available:
            return state
        usable, problems = self.levels_present()
        if usable:
            return Availability(True)
        if problems:
            return Availability(False, "; ".join(problems.values()))
        return Availability(False, self.no_level_reason())

    def rate_dial(self) -> Dial | None:
        """Quality over the levels present (all of them: the plain dial)."""
        assert self.dial is not None
        usable = self.levels_present()[0]
        if not usable:
            raise CodecUnavailable(self.slug, self.availability().reason)
        if len(usable) == self.levels:
            return self.dial
        return Dial("quality", usable[0], usable[-1], integer=True, increasing=True, values=usable)
