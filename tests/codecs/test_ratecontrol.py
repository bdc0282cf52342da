from __future__ import annotations

import numpy as np
import pytest

from perceptlab.codecs import ratecontrol
from perceptlab.codecs.base import Codec, CodecError, Dial, Param, Params
from perceptlab.codecs.ratecontrol import TOLERANCE, encode_at_bpp, encode_at_bytes
from perceptlab.codecs.registry import get_codec


class StepCodec(Codec):
    """A fake codec whose size is a known function of an integer QP (bytes fall with QP)."""

    slug = "step"
    params = (Param("qp", int, 10, "qp", low=0, high=51),)
    dial = Dial("qp", 0, 51, integer=True, increasing=False)

    def __init__(self, sizes: dict[int, int]) -> None:
        self.sizes = sizes
        self.calls = 0

    def version(self) -> str:
        return "1"

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        self.calls += 1
        return b"x" * self.sizes[int(params["qp"])]

    def _decode(self, bitstream: bytes) -> np.ndarray:
        return np.zeros((10, 10, 3), np.uint8)


IMAGE = np.zeros((10, 10, 3), np.uint8)  # 100 pixels: bpp = 8 * bytes / 100


@pytest.fixture(autouse=True)
def fresh_encode_cache() -> None:
    """Rate control remembers encodes by (slug, image, parameters) within a process; the
    fake codecs here share the slug "step" and the image but not their sizes, so without
    this a test read another's bytes whenever they met in one xdist worker."""
    ratecontrol._ENCODE_CACHE.clear()


def geometric_sizes(ratio: float = 0.85) -> dict[int, int]:
    return {qp: max(1, round(2000 * ratio**qp)) for qp in range(52)}


def test_it_picks_the_step_closest_to_the_target_without_exceeding_three_percent() -> None:
    sizes = geometric_sizes()
    codec = StepCodec(sizes)
    target = 8 * 300 / 100  # between steps
    result = encode_at_bpp(codec, IMAGE, target)
    allowed = {
        qp: 8 * s / 100 for qp, s in sizes.items() if 8 * s / 100 <= target * (1 + TOLERANCE)
    }
    best_qp = min(allowed, key=lambda qp: abs(allowed[qp] - target))
    assert result.params["qp"] == best_qp
    assert result.bpp == allowed[best_qp]
    assert result.within_tolerance
    assert codec.calls <= 9  # bisection, not a sweep of 52 steps


def test_it_takes_a_step_up_to_three_percent_over_when_that_is_closest() -> None:
    sizes = {qp: 1000 - 10 * qp for qp in range(52)}  # 1 % steps
    sizes[20] = 1025  # 2.5 % over the target
    sizes.update({qp: 1025 + (20 - qp) * 100 for qp in range(20)})
    sizes[21] = 950  # 5 % under
    result = encode_at_bpp(StepCodec(sizes), IMAGE, 80.0)  # 1000 bytes
    assert result.params["qp"] == 20 and result.within_tolerance


def test_when_even_the_lowest_rate_overshoots_it_keeps_it_and_says_so() -> None:
    result = encode_at_bpp(StepCodec(geometric_sizes()), IMAGE, 0.0001)
    assert result.params["qp"] == 51
    assert not result.within_tolerance
    assert result.reason == "floor" and result.as_record()["reason"] == "floor"


def test_when_even_the_highest_rate_stays_under_it_keeps_it_and_flags_the_ceiling() -> None:
    sizes = geometric_sizes()
    top = 8 * max(sizes.values()) / 100  # qp 0's bpp
    result = encode_at_bpp(StepCodec(sizes), IMAGE, top * 2)
    assert result.params["qp"] == 0 and result.bpp == top
    assert not result.within_tolerance
    assert result.reason == "ceiling" and result.as_record()["reason"] == "ceiling"
    # within the tolerance under the target it is the codec's nearest step, not a ceiling
    close = encode_at_bpp(StepCodec(sizes), IMAGE, top * 1.02)
    assert close.params["qp"] == 0 and close.within_tolerance and close.reason == ""
    assert "reason" not in close.as_record()


def test_it_refuses_a_non_positive_target() -> None:
    with pytest.raises(CodecError, match="positive"):
        encode_at_bpp(StepCodec(geometric_sizes()), IMAGE, 0)


def test_base_params_are_held_while_the_dial_turns(kodim23: np.ndarray) -> None:
    result = encode_at_bpp(get_codec("avif"), kodim23, 0.5, base_params={"speed": 8})
    assert result.params["speed"] == 8


@pytest.mark.parametrize(
    ("slug", "target"),
    [("jpeg", 0.5), ("webp", 0.25), ("jpeg2000", 0.1), ("jxl", 1.0), ("avif", 0.25)],
)
def test_real_codecs_land_within_three_percent_on_kodak(
    slug: str, target: float, kodim01: np.ndarray
) -> None:
    result = encode_at_bpp(get_codec(slug), kodim01, target)
    assert result.within_tolerance
    assert abs(result.bpp / target - 1) <= TOLERANCE
    # The recorded bpp is that of the returned bitstream.
    assert result.bpp == 8 * len(result.bitstream) / (768 * 512)
    assert get_codec(slug).encode(kodim01, result.params) == result.bitstream


def test_rate_matching_encodes_at_another_bitstreams_size(kodim01: np.ndarray) -> None:
    reference = get_codec("jpeg").encode(kodim01, {"quality": 40})
    result = encode_at_bytes(get_codec("jpeg2000"), kodim01, len(reference))
    assert len(result.bitstream) <= len(reference) * (1 + TOLERANCE)
    assert abs(len(result.bitstream) / len(reference) - 1) <= TOLERANCE
