"""A small lossy codec: the 8×8 DCT of YCbCr 4:2:0, a uniform quantiser, DEFLATE.

Baseline JPEG's structure (ITU-T T.81) with its parts simplified, to show what a PerceptLab
codec plugin is; it spends more bits than JPEG for the same quality.

- Colour: JFIF's full-range YCbCr (ITU-T T.871 §7), chroma averaged over 2×2 pixels and
  repeated back on decoding.
- Transform: the orthonormal 8×8 DCT-II of each block, edge-padded to whole blocks.
- Quantiser: coefficient (u, v) of every plane divided by ``step · (1 + (u + v) / 2)`` and
  rounded, so high frequencies get coarser steps.
- Bitstream: a 12-byte header (magic ``PXD``, format, height, width, the step as float32),
  then zlib (DEFLATE, level 9) of the quantised values as little-endian int16: Y, Cb, Cr,
  each band-major (coefficient 0 of all blocks, then coefficient 1, ...), the DC band as
  differences between consecutive blocks.
"""

from __future__ import annotations

import struct
import zlib
from importlib import metadata

import numpy as np

from perceptlab.codecs.base import Codec, CodecError, Dial, Param, Params

BLOCK = 8
MAGIC = b"PXD"
FORMAT = 1
HEADER = struct.Struct("<3sBHHf")  # magic, format, height, width, step

RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)
CHROMA_OFFSET = np.array([0.0, 128.0, 128.0])


def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II: ``C[k, i] = a_k cos(π (2i + 1) k / 2n)``, a_0 = √(1/n), a_k = √(2/n)."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix


DCT = dct_matrix()
_U, _V = np.mgrid[0:BLOCK, 0:BLOCK]
WEIGHTS = 1.0 + (_U + _V) / 2.0


class DctCodec(Codec):
    slug = "example-dct"
    label = "Example DCT (plugin)"
    description = "Quantised 8×8 DCT of YCbCr 4:2:0 with DEFLATE; a teaching codec"
    file_extension = "pxd"
    params = (Param("step", float, 16.0, "quantiser step (larger: fewer bits)", low=1, high=512),)
    dial = Dial("step", 1, 512, integer=False, increasing=False, log_scale=True)

    def version(self) -> str:
        try:
            package = metadata.version("perceptlab-codec-example")
        except metadata.PackageNotFoundError:
            package = "not installed"
        return f"example-dct format {FORMAT}, package {package}; numpy {np.__version__}"

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        height, width = image.shape[:2]
        if max(height, width) > 0xFFFF:
            raise CodecError(self.slug, f"{width}x{height} is over the format's 65535 pixels")
        step = float(np.float32(params["step"]))  # the decoder sees the float32 header value
        ycbcr = image.astype(np.float64) @ RGB_TO_YCBCR.T + CHROMA_OFFSET
        planes = [ycbcr[..., 0], _halve(ycbcr[..., 1]), _halve(ycbcr[..., 2])]
        symbols = [_quantise(plane - 128.0, step) for plane in planes]
        payload = np.concatenate(symbols).astype("<i2").tobytes()
        return HEADER.pack(MAGIC, FORMAT, height, width, step) + zlib.compress(payload, 9)

    def _decode(self, bitstream: bytes) -> np.ndarray:
        try:
            magic, form, height, width, step = HEADER.unpack_from(bitstream)
            values = np.frombuffer(zlib.decompress(bitstream[HEADER.size :]), dtype="<i2")
        except (struct.error, zlib.error) as exc:
            raise CodecError(self.slug, f"not an example-dct bitstream: {exc}") from exc
        if magic != MAGIC or form != FORMAT or not (height and width and step > 0):
            raise CodecError(self.slug, f"bad header {magic!r} format {form} {width}x{height}")
        chroma = ((height + 1) // 2, (width + 1) // 2)
        shapes = [(height, width), chroma, chroma]
        sizes = [_blocks_in(shape) * BLOCK * BLOCK for shape in shapes]
        if values.size != sum(sizes):
            raise CodecError(self.slug, f"{values.size} coefficients, expected {sum(sizes)}")
        parts = np.split(values.astype(np.float64), np.cumsum(sizes)[:-1])
        y, cb, cr = (
            _dequantise(part, shape, step) + 128.0
            for part, shape in zip(parts, shapes, strict=True)
        )
        ycbcr = np.stack([y, _double(cb, height, width), _double(cr, height, width)], axis=-1)
        rgb = (ycbcr - CHROMA_OFFSET) @ YCBCR_TO_RGB.T
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _halve(plane: np.ndarray) -> np.ndarray:
    """2×2 means (an odd edge row or column is repeated first)."""
    padded = np.pad(plane, ((0, plane.shape[0] % 2), (0, plane.shape[1] % 2)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))


def _double(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    return plane.repeat(2, axis=0).repeat(2, axis=1)[:height, :width]


def _blocks_in(shape: tuple[int, int]) -> int:
    return -(-shape[0] // BLOCK) * -(-shape[1] // BLOCK)


def _quantise(plane: np.ndarray, step: float) -> np.ndarray:
    """Band-major quantised DCT coefficients of one plane (see the module docstring)."""
    height, width = plane.shape
    padded = np.pad(plane, ((0, -height % BLOCK), (0, -width % BLOCK)), mode="edge")
    rows, cols = padded.shape[0] // BLOCK, padded.shape[1] // BLOCK
    blocks = padded.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3)
    coefficients = np.einsum("ij,...jk,lk->...il", DCT, blocks, DCT)
    bands = np.rint(coefficients / (step * WEIGHTS)).reshape(-1, BLOCK * BLOCK).T
    bands[0] = np.diff(bands[0], prepend=0.0)
    return bands.ravel()


def _dequantise(values: np.ndarray, shape: tuple[int, int], step: float) -> np.ndarray:
    height, width = shape
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    bands = values.reshape(BLOCK * BLOCK, rows * cols).copy()
    bands[0] = np.cumsum(bands[0])
    coefficients = bands.T.reshape(rows, cols, BLOCK, BLOCK) * (step * WEIGHTS)
    blocks = np.einsum("ji,...jk,kl->...il", DCT, coefficients, DCT)
    return blocks.transpose(0, 2, 1, 3).reshape(rows * BLOCK, cols * BLOCK)[:height, :width]
