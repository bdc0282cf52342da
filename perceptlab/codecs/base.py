"""The codec contract every registered codec implements.

A codec turns an 8-bit RGB image (``numpy.ndarray`` of shape ``(H, W, 3)``, dtype uint8)
into the bytes of a real bitstream and back. Parameters travel as a plain mapping under
the codec's documented names (``quality`` for JPEG, ``qp`` for BPG/VVC, ...), are checked
by :meth:`Codec.validate_params` and stored exactly as validated, so a stored
reconstruction can always be reproduced. bpp is never estimated: it is
``8 * len(bitstream) / (H * W)`` (:func:`bits_per_pixel`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perceptlab.lib.images import sha256_hex

ParamValue = int | float | str | bool
Params = dict[str, ParamValue]


class CodecError(Exception):
    """A codec failed on an input it should handle; the message says what and why."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(f"{slug}: {message}")
        self.slug = slug


class CodecUnavailable(CodecError):
    """The codec cannot run here (missing library, binary or weights)."""


class CodecParamError(CodecError, ValueError):
    """A parameter is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""


@dataclass(frozen=True)
class Param:
    """One documented codec parameter."""

    name: str
    kind: type  # int, float, str or bool
    default: ParamValue
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[ParamValue, ...] = ()

    def coerce(self, slug: str, value: object) -> ParamValue:
        """Return ``value`` as this parameter's type, or raise :class:`CodecParamError`."""
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in ("true", "false", "1", "0"):
                        raise ValueError(value)
                    out: ParamValue = lowered in ("true", "1")
                else:
                    out = bool(value)
            elif self.kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                out = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
            elif self.kind is float:
                out = float(value)  # type: ignore[arg-type]
                if not math.isfinite(out):
                    raise ValueError(value)
            else:
                out = str(value)
        except (TypeError, ValueError):
            raise CodecParamError(
                slug, f"parameter {self.name}={value!r} is not a valid {self.kind.__name__}"
            ) from None
        if self.choices and out not in self.choices:
            raise CodecParamError(
                slug,
                f"parameter {self.name}={out!r} is not one of {list(self.choices)}",
            )
        if isinstance(out, int | float) and not isinstance(out, bool):
            if (self.low is not None and out < self.low) or (
                self.high is not None and out > self.high
            ):
                raise CodecParamError(
                    slug,
                    f"parameter {self.name}={out!r} is outside [{self.low}, {self.high}]",
                )
        return out


@dataclass(frozen=True)
class Dial:
    """The one parameter rate control turns to reach a target bpp.

    ``increasing``: bpp grows with the value (quality) rather than falling (QP).
    ``log_scale``: bisect in log space (for rates and compression ratios).
    ``values``: a dial with a few discrete settings (one trained model per setting, as GC's
    channel counts); rate control then searches their positions ``0 .. len(values) - 1``
    (``low``/``high`` are the first and last value) and stores the value itself.
    """

    name: str
    low: float
    high: float
    integer: bool
    increasing: bool
    log_scale: bool = False
    values: tuple[float, ...] = ()

    def value_at(self, position: float) -> ParamValue:
        """The parameter value of a search position (an index when ``values`` is set)."""
        if self.values:
            value = self.values[round(position)]
            return int(value) if self.integer else float(value)
        return round(position) if self.integer else float(position)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """bpp of a real bitstream: ``8 * bytes / (H * W)``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size {width}x{height} has no pixels")
    return 8.0 * num_bytes / (height * width)


def check_rgb8(slug: str, image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise CodecError(
            slug, f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise CodecError(slug, "the image has no pixels")


@dataclass(frozen=True)
class SideInputs:
    """What a codec with per-image inputs encodes with besides the pixels (GC's selective
    mode): (H, W) uint8 semantic class indices and an (H, W) bool mask of the regions to
    preserve. Read from a source image's uploads by :mod:`.sideinputs`."""

    labels: np.ndarray
    mask: np.ndarray

    @property
    def digest(self) -> str:
        """SHA-256 of both arrays: what a generated stimulus depends on besides its pixels."""
        return sha256_hex(self.labels.astype(np.uint8).tobytes() + np.packbits(self.mask).tobytes())


class Codec(ABC):
    """Base class of every codec; subclasses are registered in :mod:`.registry`."""

    slug: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    dial: ClassVar[Dial | None] = None
    """The parameter rate control bisects; ``None`` when the codec has no rate dial."""
    file_extension: ClassVar[str] = "bin"
    """Extension of the stored bitstream (``jpg``, ``bpg``, ``266`` ...)."""
    needs_weights: ClassVar[bool] = False
    """True for learned codecs whose weights must be present before use."""
    label: ClassVar[str] = ""
    """Display name; optional (plugins set it, built-ins take theirs from the registry)."""
    description: ClassVar[str] = ""
    """One line on what the codec is; optional, as :attr:`label`."""
    side_inputs: ClassVar[tuple[str, ...]] = ()
    """What it needs per image besides the pixels (:class:`SideInputs`); such a codec
    implements :meth:`_encode_side` instead of :meth:`_encode`."""

    @property
    def supports_rate_control(self) -> bool:
        """True when :mod:`.ratecontrol` can hit a target bpp by turning :attr:`dial`."""
        return self.dial is not None

    def rate_dial(self) -> Dial | None:
        """The dial as rate control may turn it on this machine: :attr:`dial`, or, for a
        codec with one model per setting of which only some are installed, the settings
        present (``values``). Raises :class:`CodecUnavailable` when none is."""
        return self.dial

    @abstractmethod
    def version(self) -> str:
        """Codec and library version, stored with every reconstruction."""

    def weights_sha256(self, bitstream: bytes) -> str:
        """SHA-256 of the weights ``bitstream`` was encoded with, stored with every
        reconstruction ("" for a codec without learned weights)."""
        return ""

    def availability(self) -> Availability:
        """Whether the codec can run on this machine, and if not, why."""
        return Availability(True)

    def require_available(self) -> None:
        state = self.availability()
        if not state.available:
            raise CodecUnavailable(self.slug, state.reason)

    def validate_params(self, params: Mapping[str, object]) -> Params:
        """Defaults filled in, types coerced and ranges checked; unknown names rejected."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise CodecParamError(
                self.slug,
                f"unknown parameter(s) {unknown}; valid: {sorted(known) or 'none'}",
            )
        return {
            name: spec.coerce(self.slug, params[name]) if name in params else spec.default
            for name, spec in known.items()
        }

    def encode(
        self, image: np.ndarray, params: Mapping[str, object], *, side: SideInputs | None = None
    ) -> bytes:
        """Encode an (H, W, 3) uint8 RGB image; returns the bitstream's bytes. ``side``:
        the image's per-image inputs, for a codec that names some (ignored otherwise)."""
        check_rgb8(self.slug, image)
        self.require_available()
        pixels, valid = np.ascontiguousarray(image), self.validate_params(params)
        if not self.side_inputs:
            return self._encode(pixels, valid)
        if side is None:
            raise CodecParamError(
                self.slug, f"needs a {' and a '.join(self.side_inputs)} for each image"
            )
        if side.labels.shape != image.shape[:2] or side.mask.shape != image.shape[:2]:
            raise CodecParamError(
                self.slug,
                f"the {' and '.join(self.side_inputs)} must be {image.shape[1]}×"
                f"{image.shape[0]} px like the image",
            )
        return self._encode_side(pixels, valid, side)

    def _encode_side(self, image: np.ndarray, params: Params, side: SideInputs) -> bytes:
        """Encoding with per-image inputs (a codec that declares :attr:`side_inputs`)."""
        raise NotImplementedError(f"{self.slug} declares side inputs but cannot encode with them")

    def decode(self, bitstream: bytes) -> np.ndarray:
        """Decode a bitstream from :meth:`encode` into an (H, W, 3) uint8 RGB image."""
        if not bitstream:
            raise CodecError(self.slug, "cannot decode an empty bitstream")
        self.require_available()
        image = self._decode(bitstream)
        check_rgb8(self.slug, image)
        return image

    def bracket(self, target_bpp: float) -> tuple[float, float] | None:
        """A narrower dial range likely to hold ``target_bpp`` (a hint for rate control)."""
        return None

    @abstractmethod
    def _encode(self, image: np.ndarray, params: Params) -> bytes: ...

    @abstractmethod
    def _decode(self, bitstream: bytes) -> np.ndarray: ...
