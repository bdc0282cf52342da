"""Viewing conditions: device classes and the per-trial report (studies/viewing.py)."""

from __future__ import annotations

import math

import pytest

from perceptlab.studies.viewing import Screen, device_class, trial_viewing, viewing_flags

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
SAFARI_IPADOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Safari/605.1.15"
)
CHROME_ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def screen(width: int, height: int, **fields: object) -> Screen:
    values: dict = {"inner_width": width, "inner_height": height - 120, "device_pixel_ratio": 1.0}
    values.update({"screen_width": width, "screen_height": height, **fields})
    return Screen(**values)


@pytest.mark.parametrize(
    ("device", "agent", "expected"),
    [
        (screen(2560, 1440), CHROME_WINDOWS, "desktop"),
        (screen(1536, 864, device_pixel_ratio=1.25), CHROME_WINDOWS, "laptop"),
        (screen(1440, 900, touch_points=10), CHROME_WINDOWS, "laptop"),  # touch + mouse
        (
            screen(390, 844, device_pixel_ratio=3, touch_points=5, pointer_fine=False),
            SAFARI_IPHONE,
            "phone",
        ),
        (
            screen(1024, 1366, device_pixel_ratio=2, touch_points=5, pointer_fine=False),
            SAFARI_IPADOS,
            "tablet",
        ),
        (screen(1280, 800, touch_points=10, pointer_fine=False), CHROME_ANDROID_TABLET, "tablet"),
        (screen(360, 740, touch_points=5, pointer_fine=False), CHROME_ANDROID_TABLET, "phone"),
    ],
)
def test_devices_are_classified_from_the_user_agent_and_the_screen(
    device: Screen, agent: str, expected: str
) -> None:
    assert device_class(device, agent) == expected


def test_the_trial_report_keeps_known_fields_with_plausible_values_only() -> None:
    raw = {
        "dpr": 1.5,
        "window_width": 1280.0,
        "hidden_ms": -5,
        "resizes": True,
        "cut": 1,
        "zoom": math.inf,
        "focus_losses": "2",
        "screen_width": 10**9,
        "paused_ms": 120,
        "unknown": 7,
    }
    assert trial_viewing(raw) == {"dpr": 1.5, "window_width": 1280, "paused_ms": 120}
    assert trial_viewing(["not", "a", "dict"]) == {}
    assert trial_viewing(None) == {}


def test_a_hidden_tab_or_a_cut_pane_is_flagged() -> None:
    assert viewing_flags({}) == []
    assert viewing_flags({"hidden_ms": 0, "cut": False}) == []
    assert viewing_flags({"hidden_ms": 1, "cut": True}) == ["pane_hidden", "pane_cut"]


def test_a_huge_integer_in_the_report_is_dropped_not_a_server_error() -> None:
    assert trial_viewing({"hidden_ms": 10**400, "dpr": 2}) == {"dpr": 2.0}
