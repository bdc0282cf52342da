"""Real headless Chromium (Debian's package) driven by Playwright against a live server.

Playwright's own browser download is never used: ``scripts/browser.sh`` installs Debian's
chromium and the tests launch it by path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PERCEPTLAB_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: run scripts/browser.sh")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests
    # make between browser steps are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def page_at_ratio(browser: Any) -> Iterator[Callable[[float], Any]]:
    """Opens pages on a screen with a real device pixel ratio: ``page_at_ratio(1.5)``.

    Each ratio gets its own Chromium launched with ``--force-device-scale-factor``, which
    lays pages out in device pixels as a high-DPI screen or the browser's zoom does. Playwright's
    ``device_scale_factor`` is DevTools emulation instead: layout in CSS pixels, then the whole
    page scaled, which resamples anything not on the grid (see test_exact_pixels.py).
    """
    launched: list[Any] = []

    def open_page(ratio: float) -> Any:
        chromium = browser.browser_type.launch(
            executable_path=str(CHROMIUM),
            args=[*FLAGS, f"--force-device-scale-factor={ratio}", "--window-size=1280,800"],
        )
        launched.append(chromium)
        context = chromium.new_context(no_viewport=True)  # no emulation: the real ratio
        context.set_default_timeout(15_000)
        return context.new_page()

    yield open_page
    for chromium in launched:
        chromium.close()
