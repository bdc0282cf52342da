"""Viewing conditions: what a rater's browser reports, checked and kept per session and
per trial, so an analysis can exclude judgments made on a hidden or cut-off pane.

Django-free: plain functions over what the browser sent.

Device classes (``models.DeviceClass``) are read from the user agent and the screen, in
this order: a "Mobi" user agent (the token every mobile browser sends, per MDN's
"Browser detection using the user agent") or a touch-only device whose screen's short
side is under 600 CSS px is a phone; other touch-only devices (no fine pointer) and
iPads (which report as Macs with touch points) are tablets; a screen whose long side is
at most 1,600 CSS px is a laptop; anything larger is a desktop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PHONE_SHORT_SIDE_CSS = 600
LAPTOP_LONG_SIDE_CSS = 1600

# Per-trial fields the rater app reports, with their largest plausible values.
TRIAL_FIELDS: dict[str, tuple[type, float]] = {
    "dpr": (float, 16.0),
    "window_width": (int, 100_000),
    "window_height": (int, 100_000),
    "screen_width": (int, 100_000),
    "screen_height": (int, 100_000),
    "zoom": (float, 10.0),  # browser zoom estimate (outer/inner width); 1 when unknown
    "hidden_ms": (int, 86_400_000),  # tab hidden while the trial was on screen
    "paused_ms": (int, 86_400_000),  # paused because a pane was cut off
    "focus_losses": (int, 10_000),
    "fullscreen_exits": (int, 10_000),
    "resizes": (int, 10_000),
    "cut": (bool, 1),  # a pane was cut off (outside the window) while the trial was shown
}


@dataclass(frozen=True)
class Screen:
    """What the instructions page reports (CSS pixels, as the browser counts them)."""

    inner_width: int
    inner_height: int
    device_pixel_ratio: float
    screen_width: int = 0
    screen_height: int = 0
    touch_points: int = 0
    pointer_fine: bool = True
    zoom: float = 1.0


def device_class(screen: Screen, user_agent: str) -> str:
    """desktop, laptop, tablet or phone (see the module docstring for the rules)."""
    short = min(screen.screen_width, screen.screen_height) or min(
        screen.inner_width, screen.inner_height
    )
    long = max(screen.screen_width, screen.screen_height) or max(
        screen.inner_width, screen.inner_height
    )
    touch_only = screen.touch_points > 0 and not screen.pointer_fine
    if "Mobi" in user_agent or (touch_only and short < PHONE_SHORT_SIDE_CSS):
        return "phone"
    if touch_only or "iPad" in user_agent:
        return "tablet"
    if "Macintosh" in user_agent and screen.touch_points > 1:
        return "tablet"  # iPadOS asks for the desktop site but has a touch screen
    return "laptop" if long <= LAPTOP_LONG_SIDE_CSS else "desktop"


def trial_viewing(raw: object) -> dict[str, Any]:
    """The per-trial report, keeping only known fields with plausible values.

    Unknown keys and values of the wrong type or out of range are dropped (never an
    error: a rater must not lose an answer over a bad report).
    """
    if not isinstance(raw, dict):
        return {}
    clean: dict[str, Any] = {}
    for name, (kind, largest) in TRIAL_FIELDS.items():
        value = raw.get(name)
        if kind is bool:
            if isinstance(value, bool):
                clean[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, int) and not 0 <= value <= largest:
            continue  # also keeps a 300-digit integer away from float()
        if not math.isfinite(value) or not 0 <= value <= largest:
            continue
        clean[name] = int(value) if kind is int else float(value)
    return clean


def viewing_flags(viewing: dict[str, Any]) -> list[str]:
    """QC flags from a trial's viewing report: ``pane_hidden`` (the tab was hidden while
    the trial was on screen) and ``pane_cut`` (a pane was cut off by the window)."""
    flags = []
    if viewing.get("hidden_ms", 0) > 0:
        flags.append("pane_hidden")
    if viewing.get("cut"):
        flags.append("pane_cut")
    return flags
