"""The example codec keeps PerceptLab's contract: real bytes, a monotone rate dial, clean errors."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from perceptlab_codec_example.dct import DctCodec

from perceptlab.codecs.base import CodecError, bits_per_pixel
from perceptlab.codecs.ratecontrol import encode_at_bpp

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def photo_like(height: int = 72, width: int = 90) -> np.ndarray:
    """Smooth colour gradients plus noise: compressible, but not trivially."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [128 + 80 * np.sin(x / (9 + 4 * c) + y / (13 + c)) for c in range(3)]
    noisy = np.stack(channels, axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def test_the_entry_point_in_pyproject_names_this_class_under_its_slug() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]
    [(name, value)] = declared["perceptlab.codecs"].items()
    assert EntryPoint(name, value, "perceptlab.codecs").load() is DctCodec
    assert DctCodec.slug == name


def test_it_round_trips_an_odd_sized_image_at_a_fine_step() -> None:
    image = photo_like(37, 53)
    decoded = DctCodec().decode(DctCodec().encode(image, {"step": 2}))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert psnr(image, decoded) > 32


def test_a_larger_step_spends_fewer_bytes_and_loses_more() -> None:
    image, codec = photo_like(), DctCodec()
    sizes, qualities = [], []
    for step in (2, 8, 32, 128):
        bitstream = codec.encode(image, {"step": step})
        sizes.append(len(bitstream))
        qualities.append(psnr(image, codec.decode(bitstream)))
    assert sizes == sorted(sizes, reverse=True) and qualities == sorted(qualities, reverse=True)


def test_rate_control_reaches_a_target_bpp_over_the_step_dial() -> None:
    image = photo_like()
    result = encode_at_bpp(DctCodec(), image, 1.0)
    assert result.within_tolerance and 0.9 < result.bpp <= 1.03
    assert result.bpp == bits_per_pixel(len(result.bitstream), *image.shape[:2])


@pytest.mark.parametrize("bitstream", [b"PXD", b"JPEG" * 10, b"PXD\x01\x08\x00\x08\x00" + b"x" * 8])
def test_it_rejects_a_bitstream_it_did_not_write(bitstream: bytes) -> None:
    with pytest.raises(CodecError, match="example-dct"):
        DctCodec().decode(bitstream)
