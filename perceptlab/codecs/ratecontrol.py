"""Rate control: find the codec parameter whose real bitstream lands on a target bpp.

The rule (the foundation issue): among the bitstreams tried, keep the one closest to the
target whose bpp does not exceed it by more than ``tolerance`` (3 %). The dial is searched
by bisection, assuming bpp is monotone in it (quality up → bytes up; QP up → bytes down);
every encode is real, so a non-monotone step costs accuracy, never correctness. When even
the dial's lowest-rate end overshoots, the lowest-rate bitstream is kept and flagged
``within_tolerance=False`` ("the codec's nearest step").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from perceptlab.codecs.base import Codec, CodecError, Params, bits_per_pixel

TOLERANCE = 0.03
CONTINUOUS_STEPS = 24
"""Bisection steps on a continuous dial (2^-24 of its range: far below one byte)."""
GOOD_ENOUGH = 0.005
"""A continuous search stops early once within ±0.5 % of the target (and not over)."""


@dataclass(frozen=True)
class Attempt:
    value: float
    bitstream: bytes
    bpp: float
    encode_seconds: float


@dataclass(frozen=True)
class RateResult:
    params: Params
    bitstream: bytes
    bpp: float
    target_bpp: float
    encode_seconds: float
    within_tolerance: bool
    attempts: int
    tried: tuple[tuple[float, float], ...] = ()
    """Every (dial value, bpp) encoded on the way, so the choice can be audited."""

    def as_record(self) -> dict[str, object]:
        """What is stored with the reconstruction to explain how it was chosen."""
        return {
            "mode": "target_bpp",
            "target_bpp": self.target_bpp,
            "tolerance": TOLERANCE,
            "within_tolerance": self.within_tolerance,
            "attempts": self.attempts,
            "tried": [list(pair) for pair in self.tried],
        }


@dataclass
class _Search:
    codec: Codec
    image: np.ndarray
    base_params: Params
    target: float
    tried: dict[float, Attempt] = field(default_factory=dict)

    def params_for(self, value: float) -> Params:
        dial = self.codec.dial
        assert dial is not None
        params = dict(self.base_params)
        params[dial.name] = round(value) if dial.integer else float(value)
        return params

    def bpp_at(self, value: float) -> float:
        if value not in self.tried:
            started = time.perf_counter()
            bitstream = self.codec.encode(self.image, self.params_for(value))
            seconds = time.perf_counter() - started
            height, width = self.image.shape[:2]
            bpp = bits_per_pixel(len(bitstream), height, width)
            self.tried[value] = Attempt(value, bitstream, bpp, seconds)
        return self.tried[value].bpp

    def fits(self, value: float) -> bool:
        return self.bpp_at(value) <= self.target * (1 + TOLERANCE)

    def best(self) -> tuple[Attempt, bool]:
        allowed = [a for a in self.tried.values() if a.bpp <= self.target * (1 + TOLERANCE)]
        if allowed:
            return min(allowed, key=lambda a: (abs(a.bpp - self.target), a.value)), True
        return min(self.tried.values(), key=lambda a: a.bpp), False


def encode_at_bpp(
    codec: Codec,
    image: np.ndarray,
    target_bpp: float,
    *,
    base_params: Mapping[str, object] | None = None,
) -> RateResult:
    """Encode ``image`` as close to ``target_bpp`` as the codec allows (see module doc)."""
    dial = codec.dial
    if dial is None:
        raise CodecError(codec.slug, "has no rate dial; give fixed parameters instead")
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise CodecError(codec.slug, f"target bpp must be a positive number, got {target_bpp}")
    search = _Search(codec, image, codec.validate_params(base_params or {}), target_bpp)
    # Orient the dial so that larger u always means more bits.
    low, high = (dial.low, dial.high) if dial.increasing else (dial.high, dial.low)
    if dial.integer:
        _bisect_integer(search, int(low), int(high))
    else:
        _bisect_continuous(search, low, high)
    chosen, within = search.best()
    return RateResult(
        params=search.params_for(chosen.value),
        bitstream=chosen.bitstream,
        bpp=chosen.bpp,
        target_bpp=target_bpp,
        encode_seconds=chosen.encode_seconds,
        within_tolerance=within,
        attempts=len(search.tried),
        tried=tuple(sorted((a.value, a.bpp) for a in search.tried.values())),
    )


def encode_at_bytes(
    codec: Codec,
    image: np.ndarray,
    num_bytes: int,
    *,
    base_params: Mapping[str, object] | None = None,
) -> RateResult:
    """Rate-matched comparison: encode at the size of another bitstream of this image."""
    height, width = image.shape[:2]
    return encode_at_bpp(
        codec, image, bits_per_pixel(num_bytes, height, width), base_params=base_params
    )


def _bisect_integer(search: _Search, low: int, high: int) -> None:
    """Largest fitting step on an integer dial (``low`` = fewest bits), then its neighbour."""
    step = 1 if high >= low else -1
    if not search.fits(low):
        return  # even the lowest rate overshoots: keep it, flagged
    if search.fits(high):
        return
    # Invariant: fits(good) and not fits(bad).
    good, bad = low, high
    while abs(bad - good) > 1:
        middle = good + (bad - good) // 2 if step > 0 else good - (good - bad) // 2
        if search.fits(middle):
            good = middle
        else:
            bad = middle
    if good != low:
        search.bpp_at(good - step)  # the step below may be closer to the target


def _bisect_continuous(search: _Search, low: float, high: float) -> None:
    dial = search.codec.dial
    assert dial is not None
    hint = search.codec.bracket(search.target)
    if hint is not None:
        a, b = hint if dial.increasing else hint[::-1]
        if not search.fits(a) or search.fits(b):
            a, b = low, high  # the hint does not bracket the target: search everything
        low, high = a, b
    if not search.fits(low) or search.fits(high):
        return
    warp, unwarp = (math.log, math.exp) if dial.log_scale else (float, float)
    good, bad = warp(low), warp(high)
    for _ in range(CONTINUOUS_STEPS):
        middle = unwarp((good + bad) / 2)
        if search.fits(middle):
            good = warp(middle)
            if search.bpp_at(middle) >= search.target * (1 - GOOD_ENOUGH):
                return
        else:
            bad = warp(middle)
