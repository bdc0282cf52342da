"""The registered seed GAN codecs: parameters, rate dials and checkpoint names only.

This module imports neither torch nor CompressAI, so listing the codecs and asking whether
they can run (the admin's forms, ``manage.py codecs``) stays cheap on a web request; the
model family modules (:mod:`.hific`, :mod:`.gc`, :mod:`.tunable`, :mod:`.rdo`) are imported
by :func:`.codec.load_model` the first time something is encoded or decoded.
"""

from __future__ import annotations

from typing import ClassVar

from perceptlab.codecs.base import Availability, CodecUnavailable, Dial, Param, Params
from perceptlab.codecs.neural import checkpoints
from perceptlab.codecs.neural.codec import NeuralCodec, torch_installed

GC_CHANNEL_COUNTS = (2, 4, 8, 16)
"""GC's latent channel counts, one trained model each (Agustsson et al. 2019)."""
TUNABLE_OFFSET_RANGE = (-2.0, 2.0)
"""The tunable codec's importance offset n (Wu, Huang & Shen 2020)."""

_QSTEP = Param(
    "qstep",
    float,
    1.0,
    "quantisation step Δ of the latent (1 = as trained; larger = fewer bits)",
    low=0.25,
    high=16.0,
)


def _model(default: str) -> Param:
    return Param("model", str, default, "checkpoint name (shipped or trained here)")


class HiFiCCodec(NeuralCodec):
    """``hific``: HiFiC-small trained here; Δ (``qstep``) moves it along its rate curve."""

    slug = "hific"
    family = "hific"
    params = (_model("hific-small"), _QSTEP)
    dial = Dial("qstep", 0.25, 16.0, integer=False, increasing=False, log_scale=True)

    def bracket(self, target_bpp: float) -> tuple[float, float] | None:
        return (0.5, 4.0)


class HiFiCSparseCodec(HiFiCCodec):
    """``hific-sparse``: HiFiC trained with the latent-sparsity loss of seed 003."""

    slug = "hific-sparse"
    params = (_model("hific-sparse-small"), _QSTEP)


class RDOCodec(HiFiCCodec):
    """``rdo-gllmm``: the improved-RDO GAN codec (seed 000); Δ (``qstep``) as HiFiC's dial."""

    slug = "rdo-gllmm"
    family = "rdo"
    params = (_model("rdo-gllmm-small"), _QSTEP)


class GCCodec(NeuralCodec):
    """``gc``: one trained model per latent channel count C; C is the rate dial."""

    slug = "gc"
    family = "gc"
    params = (
        Param(
            "channels",
            int,
            8,
            "latent channels C (bpp ≤ C·log₂5/256: 0.018, 0.036, 0.073, 0.145)",
            choices=GC_CHANNEL_COUNTS,
        ),
        Param("config", str, "small", "which trained configuration (checkpoint gc-c<C>-<config>)"),
    )
    dial = Dial("channels", 2, 16, integer=True, increasing=True, values=GC_CHANNEL_COUNTS)
    default_checkpoint_name: ClassVar[str] = "gc-c8-small"

    def checkpoint_name(self, params: Params) -> str:
        return f"gc-c{params['channels']}-{params['config']}"

    def model_params(self, params: Params) -> dict[str, int | float | str]:
        return {}

    def default_checkpoint(self) -> str:
        return self.default_checkpoint_name

    def card_checkpoints(self) -> list[str]:
        config = dict(self.validate_params({}))["config"]
        return [f"gc-c{channels}-{config}" for channels in GC_CHANNEL_COUNTS]


NO_SC_CHECKPOINT = (
    "no SC checkpoint ships: GC's selective mode is trained on photos with semantic label "
    "maps (Cityscapes- or ADE20K-style), and none are available where the shipped models "
    "were trained; train one with `manage.py train_codec gc --labels DIR --set "
    "semantic_classes=N --name gc-sc-c8-small`"
)


class GCSelectiveCodec(GCCodec):
    """``gc-sc``: GC's selective mode (SC; Agustsson et al. 2019, §4.2). A mask says which
    regions are coded as GC codes them; everything else is synthesised by the generator
    from a semantic label map sent with the bitstream (:meth:`.gc.GC.compress_selective`).
    Each image needs its label map and mask besides the pixels (uploaded on the source
    image's admin page, :mod:`perceptlab.codecs.sideinputs`). No SC checkpoint ships
    (:data:`NO_SC_CHECKPOINT`): until one is trained here it is listed as unavailable,
    saying why."""

    slug = "gc-sc"
    default_checkpoint_name: ClassVar[str] = "gc-sc-c8-small"
    side_inputs: ClassVar[tuple[str, ...]] = ("semantic label map", "preserved-region mask")

    def checkpoint_name(self, params: Params) -> str:
        return f"gc-sc-c{params['channels']}-{params['config']}"

    def card_checkpoints(self) -> list[str]:
        return []

    def availability(self) -> Availability:
        state = torch_installed()
        if not state.available:
            return state
        if checkpoints.find(self.default_checkpoint()) is None:
            return Availability(False, NO_SC_CHECKPOINT)
        return Availability(True)

    def require_available(self) -> None:
        """Unlike the other seed codecs (whose shipped default stands in), nothing runs
        without an SC checkpoint: say so before asking for label maps."""
        state = self.availability()
        if not state.available:
            raise CodecUnavailable(self.slug, state.reason)


class TunableCodec(NeuralCodec):
    """``tunable``: one model, any rate in its range by the importance offset n."""

    slug = "tunable"
    family = "tunable"
    params = (
        Param("model", str, "tunable-small", "checkpoint name (trained configuration)"),
        Param(
            "offset",
            float,
            0.0,
            "importance offset n (−2 … 2; higher keeps more latent channels, more bits)",
            low=TUNABLE_OFFSET_RANGE[0],
            high=TUNABLE_OFFSET_RANGE[1],
        ),
    )
    dial = Dial(
        "offset", TUNABLE_OFFSET_RANGE[0], TUNABLE_OFFSET_RANGE[1], integer=False, increasing=True
    )

    def model_params(self, params: Params) -> dict[str, int | float | str]:
        return {"offset": float(params["offset"])}
