"""Rate control: find the codec parameter whose real bitstream lands on a target bpp.

The rule (the foundation issue): among the bitstreams tried, keep the one closest to the
target whose bpp does not exceed it by more than ``tolerance`` (3 %). The dial is searched
by safeguarded interpolation on log bpp (see :func:`_narrow`), assuming bpp is monotone in
it (quality up → bytes up; QP up → bytes down); every encode is real, so a non-monotone
step costs accuracy, never correctness. When even the dial's lowest-rate end overshoots,
the lowest-rate bitstream is kept and flagged ``within_tolerance=False`` with reason
``"floor"`` ("the codec's nearest step"); when even its highest-rate end stays more than the
tolerance under the target (a codec that cannot reach the rate, e.g. a learned model's top
step), the highest-rate bitstream is kept and flagged with reason ``"ceiling"``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from perceptlab.codecs.base import Codec, CodecError, Dial, Params, SideInputs, bits_per_pixel

TOLERANCE = 0.03
SEARCH_STEPS = 24
"""Most probes of one search (bisection alone would narrow a dial to 2^-24 of its range)."""
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
    reason: str = ""
    """Why not within tolerance: "floor" (the lowest rate overshoots), "ceiling" (the
    highest rate stays under the target by more than the tolerance); "" when within."""

    def as_record(self) -> dict[str, object]:
        """What is stored with the reconstruction to explain how it was chosen."""
        return {
            "mode": "target_bpp",
            "target_bpp": self.target_bpp,
            "tolerance": TOLERANCE,
            "within_tolerance": self.within_tolerance,
            **({"reason": self.reason} if self.reason else {}),
            "attempts": self.attempts,
            "tried": [list(pair) for pair in self.tried],
        }


_ENCODE_CACHE: OrderedDict[tuple[object, ...], Attempt] = OrderedDict()
ENCODE_CACHE_SIZE = 256
"""Recent encodes kept per process: the targets of one (image, codec) share their probes."""


def image_key(image: np.ndarray) -> str:
    return f"{image.shape}:{hashlib.sha1(image.tobytes(), usedforsecurity=False).hexdigest()}"


@dataclass
class _Search:
    codec: Codec
    image: np.ndarray
    base_params: Params
    target: float
    dial: Dial
    tried: dict[float, Attempt] = field(default_factory=dict)
    key: str = ""
    side: SideInputs | None = None

    def __post_init__(self) -> None:
        self.key = image_key(self.image) + (f":{self.side.digest}" if self.side else "")

    def params_for(self, value: float) -> Params:
        params = dict(self.base_params)
        params[self.dial.name] = self.dial.value_at(value)
        return params

    def bpp_at(self, value: float) -> float:
        if value not in self.tried:
            self.tried[value] = self._encode(value)
        return self.tried[value].bpp

    def _encode(self, value: float) -> Attempt:
        params = self.params_for(value)
        cache_key = (self.codec.slug, self.key, tuple(sorted(params.items())))
        if cache_key in _ENCODE_CACHE:
            _ENCODE_CACHE.move_to_end(cache_key)
            return _ENCODE_CACHE[cache_key]
        started = time.perf_counter()
        bitstream = self.codec.encode(self.image, params, side=self.side)
        seconds = time.perf_counter() - started
        height, width = self.image.shape[:2]
        attempt = Attempt(value, bitstream, bits_per_pixel(len(bitstream), height, width), seconds)
        _ENCODE_CACHE[cache_key] = attempt
        while len(_ENCODE_CACHE) > ENCODE_CACHE_SIZE:
            _ENCODE_CACHE.popitem(last=False)
        return attempt

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
    side: SideInputs | None = None,
) -> RateResult:
    """Encode ``image`` as close to ``target_bpp`` as the codec allows (see module doc);
    ``side``: the image's per-image inputs, for a codec that needs them."""
    dial = codec.rate_dial()
    if dial is None:
        raise CodecError(codec.slug, "has no rate dial; give fixed parameters instead")
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise CodecError(codec.slug, f"target bpp must be a positive number, got {target_bpp}")
    base = codec.validate_params(base_params or {})
    search = _Search(codec, image, base, target_bpp, dial, side=side)
    # Orient the dial so that larger u always means more bits.
    low, high = (dial.low, dial.high) if dial.increasing else (dial.high, dial.low)
    if dial.values:  # search the positions of the discrete settings
        first, last = 0, len(dial.values) - 1
        _search_integer(search, *((first, last) if dial.increasing else (last, first)))
    elif dial.integer:
        _search_integer(search, int(low), int(high))
    else:
        _search_continuous(search, low, high)
    chosen, within = search.best()
    reason = "" if within else "floor"
    highest = max(search.tried.values(), key=lambda a: a.bpp)
    if within and chosen is highest and chosen.bpp < target_bpp * (1 - TOLERANCE):
        within, reason = False, "ceiling"
    return RateResult(
        params=search.params_for(chosen.value),
        bitstream=chosen.bitstream,
        bpp=chosen.bpp,
        target_bpp=target_bpp,
        encode_seconds=chosen.encode_seconds,
        within_tolerance=within,
        attempts=len(search.tried),
        tried=tuple(sorted((float(dial.value_at(a.value)), a.bpp) for a in search.tried.values())),
        reason=reason,
    )


def encode_at_bytes(
    codec: Codec,
    image: np.ndarray,
    num_bytes: int,
    *,
    base_params: Mapping[str, object] | None = None,
    side: SideInputs | None = None,
) -> RateResult:
    """Rate-matched comparison: encode at the size of another bitstream of this image."""
    height, width = image.shape[:2]
    bpp = bits_per_pixel(num_bytes, height, width)
    return encode_at_bpp(codec, image, bpp, base_params=base_params, side=side)


def _search_integer(search: _Search, low: int, high: int) -> None:
    """Largest fitting step on an integer dial (``low`` = fewest bits), then its neighbour."""
    step = 1 if high >= low else -1
    if not search.fits(low) or search.fits(high):
        return  # the lowest rate overshoots (kept, flagged), or even the highest fits
    good = _narrow(search, float(low), float(high), integer=True, log_scale=False)
    if round(good) != low:
        search.bpp_at(round(good) - step)  # the step below may be closer to the target


def _search_continuous(search: _Search, low: float, high: float) -> None:
    dial = search.dial
    hint = search.codec.bracket(search.target)
    if hint is not None:
        a, b = hint if dial.increasing else hint[::-1]
        if search.fits(a) and not search.fits(b):
            low, high = a, b
    if not search.fits(low) or search.fits(high):
        return
    _narrow(search, low, high, integer=False, log_scale=dial.log_scale)


def _narrow(search: _Search, good: float, bad: float, *, integer: bool, log_scale: bool) -> float:
    """Shrink a bracket with fits(good) and not fits(bad); returns the final ``good``.

    Each probe interpolates log(bpp) linearly in the dial (log bpp is close to linear in
    quality and QP), falling back to bisection when one end has moved twice in a row
    (the Illinois remedy for a stalled regula falsi). Interpolation typically needs about
    half the encodes of plain bisection.
    """
    warp, unwarp = (math.log, math.exp) if log_scale else (float, float)
    last_side = 0
    for _ in range(SEARCH_STEPS):
        if integer and abs(bad - good) <= 1:
            break
        value = _probe(search, good, bad, bisect=last_side in (-2, 2), warp=warp, unwarp=unwarp)
        if integer:
            value = _inside(round(value), good, bad)
        if search.fits(value):
            good, last_side = value, (-2 if last_side < 0 else -1)
            if not integer and search.bpp_at(value) >= search.target * (1 - GOOD_ENOUGH):
                break
        else:
            bad, last_side = value, (2 if last_side > 0 else 1)
    return good


def _probe(
    search: _Search,
    good: float,
    bad: float,
    *,
    bisect: bool,
    warp: Callable[[float], float],
    unwarp: Callable[[float], float],
) -> float:
    u_good, u_bad = warp(good), warp(bad)
    fraction = 0.5
    if not bisect:
        low, high = math.log(search.bpp_at(good)), math.log(search.bpp_at(bad))
        if high > low:
            fraction = min(0.9, max(0.1, (math.log(search.target) - low) / (high - low)))
    return unwarp(u_good + fraction * (u_bad - u_good))


def _inside(value: int, good: float, bad: float) -> float:
    """``value`` moved strictly between two integer bracket ends."""
    step = 1 if bad > good else -1
    if (value - good) * step <= 0:
        value = round(good) + step
    if (bad - value) * step <= 0:
        value = round(bad) - step
    return float(value)
