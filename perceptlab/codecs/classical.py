"""Classical codecs through Pillow and its plugins (all in-process, no binaries).

Every codec writes a bare bitstream with no metadata (no EXIF, XMP or ICC), so bpp counts
the codec's own bytes and a stored file reveals nothing about its source.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any, ClassVar

import numpy as np
import PIL
from PIL import Image, features

from perceptlab.codecs.base import Codec, CodecError, Dial, Param, Params


def _pillow_version(feature: str, library: str) -> str:
    return f"{library} {features.version(feature)}; Pillow {PIL.__version__}"


class PillowCodec(Codec):
    """A codec whose encoder and decoder are a Pillow image format."""

    pillow_format: ClassVar[str]

    def _save_options(self, params: Params) -> dict[str, Any]:
        raise NotImplementedError

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        buffer = io.BytesIO()
        try:
            Image.fromarray(image, "RGB").save(
                buffer, format=self.pillow_format, **self._save_options(params)
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise CodecError(self.slug, f"encoder failed with {params}: {exc}") from exc
        return buffer.getvalue()

    def _decode(self, bitstream: bytes) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(bitstream), formats=[self.pillow_format]) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:
            raise CodecError(self.slug, f"decoder failed: {exc}") from exc


@cache
def _ijg_base_tables() -> tuple[list[int], list[int]]:
    """libjpeg's standard luma/chroma tables (ITU-T T.81 Annex K), natural order.

    Read back from libjpeg itself: at quality 50 its scaling factor is 100 %, so the
    tables it writes are the base tables exactly.
    """
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=50)
    with Image.open(buffer) as im:
        tables = im.quantization  # type: ignore[attr-defined]
    return list(tables[0]), list(tables[1])


def ijg_quant_tables(quality: float) -> list[list[int]]:
    """Quantisation tables for a (possibly fractional) IJG quality in [1, 100].

    libjpeg's ``jpeg_quality_scaling``: scale = 5000/q for q < 50, else 200 − 2q
    (percent, integer division at integer q); entry = ⌊(base·scale + 50)/100⌋ clamped to
    [1, 255] (baseline). At integer qualities the tables equal libjpeg's own, so the
    bitstreams are byte-identical to ``quality=q``; fractional qualities give rate control
    a continuous dial.
    """
    if float(quality).is_integer():  # libjpeg's own integer arithmetic
        scale = float(5000 // int(quality) if quality < 50 else 200 - 2 * int(quality))
    else:
        scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return [
        [min(255, max(1, int((b * scale + 50.0) // 100.0))) for b in base]
        for base in _ijg_base_tables()
    ]


class JpegCodec(PillowCodec):
    slug = "jpeg"
    pillow_format = "JPEG"
    file_extension = "jpg"
    subsampling: ClassVar[int] = 2  # Pillow: 0 = 4:4:4, 2 = 4:2:0
    params = (
        Param(
            "quality", float, 75.0, "IJG quality 1–100 (fractional values allowed)", low=1, high=100
        ),
        Param("optimize", bool, True, "optimised Huffman tables (smaller, same pixels)"),
        Param("progressive", bool, False, "progressive scan"),
    )
    dial = Dial("quality", 1, 100, integer=False, increasing=True)

    def version(self) -> str:
        return _pillow_version("libjpeg_turbo", "libjpeg-turbo")

    def _save_options(self, params: Params) -> dict[str, Any]:
        return {
            "qtables": ijg_quant_tables(float(params["quality"])),
            "subsampling": self.subsampling,
            "optimize": params["optimize"],
            "progressive": params["progressive"],
        }


class Jpeg444Codec(JpegCodec):
    slug = "jpeg444"
    subsampling = 0


class WebpCodec(PillowCodec):
    slug = "webp"
    pillow_format = "WEBP"
    file_extension = "webp"
    params = (
        Param("quality", float, 75.0, "libwebp quality 0–100", low=0, high=100),
        # libwebp's (and Pillow's) default effort, as in CompressAI's benchmarks.
        Param("method", int, 4, "effort 0 (fast) – 6 (best)", low=0, high=6),
    )
    dial = Dial("quality", 0, 100, integer=False, increasing=True)

    def version(self) -> str:
        return _pillow_version("webp", "libwebp")

    def _save_options(self, params: Params) -> dict[str, Any]:
        return {"quality": params["quality"], "method": params["method"], "lossless": False}


class Jpeg2000Codec(PillowCodec):
    """JPEG 2000 with the irreversible 9/7 wavelet and the multi-component transform.

    Pillow leaves ``mct`` off by default, coding R, G and B independently, which costs
    2–8 dB on photographs; here it is always on. ``rate`` is handed to OpenJPEG's rate
    allocation as the compression ratio 24/rate (24 bits per RGB pixel).
    """

    slug = "jpeg2000"
    pillow_format = "JPEG2000"
    file_extension = "jp2"
    params = (
        Param("rate", float, 0.5, "target rate in bpp given to OpenJPEG", low=0.001, high=24),
        Param("resolutions", int, 6, "wavelet decomposition levels + 1", low=1, high=12),
    )
    dial = Dial("rate", 0.001, 24, integer=False, increasing=True, log_scale=True)

    def version(self) -> str:
        return _pillow_version("jpg_2000", "OpenJPEG")

    def bracket(self, target_bpp: float) -> tuple[float, float]:
        return (0.8 * target_bpp, 1.2 * target_bpp)

    def _save_options(self, params: Params) -> dict[str, Any]:
        return {
            "quality_mode": "rates",
            "quality_layers": [24.0 / float(params["rate"])],
            "irreversible": True,
            "mct": 1,
            "num_resolutions": params["resolutions"],
            "no_jp2": False,
        }


class AvifCodec(PillowCodec):
    slug = "avif"
    pillow_format = "AVIF"
    file_extension = "avif"
    params = (
        Param("quality", int, 60, "libavif quality 0–100", low=0, high=100),
        Param("speed", int, 6, "encoder speed 0 (slowest) – 10", low=0, high=10),
        Param(
            "subsampling", str, "4:4:4", "chroma subsampling", choices=("4:4:4", "4:2:2", "4:2:0")
        ),
    )
    dial = Dial("quality", 0, 100, integer=True, increasing=True)

    def version(self) -> str:
        return _pillow_version("avif", "libavif")

    def _save_options(self, params: Params) -> dict[str, Any]:
        return {
            "quality": params["quality"],
            "speed": params["speed"],
            "subsampling": params["subsampling"],
            "range": "full",
        }


class HeicCodec(Codec):
    """HEVC intra (x265) in a HEIF container; bpp includes the container's ~400 bytes."""

    slug = "heic"
    file_extension = "heic"
    params = (
        Param("quality", int, 50, "libheif/x265 quality 0–100", low=0, high=100),
        Param("chroma", int, 444, "chroma subsampling", choices=(420, 422, 444)),
    )
    dial = Dial("quality", 0, 100, integer=True, increasing=True)

    def version(self) -> str:
        import pillow_heif

        return f"libheif {pillow_heif.libheif_version()}; pillow-heif {pillow_heif.__version__}"

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        import pillow_heif

        heif = pillow_heif.from_bytes(
            mode="RGB", size=(image.shape[1], image.shape[0]), data=image.tobytes()
        )
        buffer = io.BytesIO()
        try:
            heif.save(buffer, quality=params["quality"], chroma=params["chroma"])
        except (OSError, ValueError, RuntimeError) as exc:
            raise CodecError(self.slug, f"encoder failed with {params}: {exc}") from exc
        return buffer.getvalue()

    def _decode(self, bitstream: bytes) -> np.ndarray:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(io.BytesIO(bitstream), convert_hdr_to_8bit=True)
            return np.asarray(heif.to_pillow().convert("RGB"))
        except (OSError, ValueError, RuntimeError) as exc:
            raise CodecError(self.slug, f"decoder failed: {exc}") from exc


class JxlCodec(PillowCodec):
    slug = "jxl"
    pillow_format = "JXL"
    file_extension = "jxl"
    params = (
        # 100 would mean distance 0, which libjxl only accepts in lossless mode.
        Param(
            "quality",
            float,
            75.0,
            "libjxl quality 0–99 (maps to Butteraugli distance)",
            low=0,
            high=99,
        ),
        Param("effort", int, 7, "encoder effort 1–9", low=1, high=9),
    )
    dial = Dial("quality", 0, 99, integer=False, increasing=True)

    def __init__(self) -> None:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)

    def version(self) -> str:
        from importlib.metadata import version

        return (
            f"libjxl via pillow-jxl-plugin {version('pillow-jxl-plugin')}; Pillow {PIL.__version__}"
        )

    def _save_options(self, params: Params) -> dict[str, Any]:
        return {
            "quality": params["quality"],
            "effort": params["effort"],
            "lossless": False,
            "use_container": False,
            "num_threads": 1,
        }
