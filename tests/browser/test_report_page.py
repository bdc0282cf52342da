"""A study's report in Chromium: plotly draws the rate–perception curves with their interval
bands from the locally served plotly.js, and the page has no script errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from evalkit import rated_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_report_draws_curves_with_interval_bands(
    page: Any, live_server: Any, settings: Any
) -> None:
    settings.EVALUATION_RESAMPLES = 200  # the first view computes the analysis inline
    study = rated_study(
        "acr",
        images=2,
        raters=6,
        seed=3,
        judgments_per_item=6,
        trials_per_session=8,
        hidden_reference=True,
    )
    get_user_model().objects.create_superuser("researcher", "", "a-long-passphrase")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/admin/login/?next=/reports/{study.pk}/")
    page.fill("#id_username", "researcher")
    page.fill("#id_password", "a-long-passphrase")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/reports/{study.pk}/")
    page.wait_for_selector(".js-plotly-plot")
    plots = page.locator(".js-plotly-plot")
    assert plots.count() >= 2  # the study curves and the per-image curves
    traces = page.evaluate(
        "() => document.querySelector('.js-plotly-plot').data.map(t => [t.name, t.fill || ''])"
    )
    names = {name for name, _ in traces}
    assert {"jpeg", "webp"} <= names
    assert any(fill == "toself" for _, fill in traces), traces  # the CI bands
    # what a person sees: one dot per codec and target (2 × 2) in each curve figure, in
    # its codec's colour; the bands draw no dots of their own (plotly adds markers in its
    # default colours to a short trace unless told "lines")
    for title in ("Rate–perception curves", "Rate–DMOS curves (ACR-HR)"):
        section = page.locator("section.report-section", has_text=title)
        dots = section.evaluate(
            """s => [...s.querySelectorAll('.scatterlayer .trace')].map(t => [
                [...t.querySelectorAll('path.point')].map(p => p.style.fill)])"""
        )
        fills = [fill for (points,) in dots for fill in points]
        assert len(fills) == 4, (title, dots)
        line_colours = section.evaluate(
            """s => [...s.querySelectorAll('.scatterlayer .trace path.js-line')]
                .map(p => p.style.stroke).filter(c => c)"""
        )
        assert set(fills) <= set(line_colours), (fills, line_colours)
    assert errors == []
