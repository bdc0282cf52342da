"""The flicker test (JPEG AIC-2) in Chromium: two panes, the test side alternating with the
original at 10 Hz while the other stays still, every canvas pixel the PNG's, and the answer
naming the side that flickers."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import numpy as np
import pytest
from raterbot import READY_OR_FEEDBACK, acknowledged, enter, log_in_as_researcher, position, rate
from studykit import make_study
from test_exact_pixels import _png

from perceptlab.studies.models import Judgment, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = """() => new Promise((done) => {
  const rater = document.querySelector("[data-testid=rater]");
  const canvases = ["canvas-left", "canvas-right"].map(
    (id) => document.querySelector(`[data-testid=${id}]`));
  const out = [];
  const start = performance.now();
  const tick = (now) => {
    const frame = {t: now - start, stage: rater.dataset.btcStage,
                   src: canvases.map((c) => c.dataset.src)};
    if (out.length % 7 === 0) {
      frame.pixels = canvases.map((c) => Array.from(
        c.getContext("2d").getImageData(0, 0, c.width, c.height).data));
    }
    out.push(frame);
    if (now - start < 3000) requestAnimationFrame(tick); else done(out);
  };
  requestAnimationFrame(tick);
})"""


def test_one_side_flickers_at_10_hz_against_a_still_original_and_the_answer_names_it(
    page: Any, live_server: Any
) -> None:
    study = make_study(
        "flicker", images=1, crop_width=96, crop_height=64, trials_per_session=4, min_flips=0
    )
    enter(page, live_server, study)
    assert page.get_by_test_id("canvas-reference").count() == 0  # two panes only
    assert "Which side flickers?" in page.get_by_test_id("answers").inner_text()
    assert page.get_by_test_id("undecided").count() == 0  # a forced choice
    trial = Trial.objects.select_related("item__a", "item__b").get(
        session__study=study, position=position(page)
    )
    flickering = 0 if trial.swapped else 1  # the condition (item.b) is on this side
    samples = page.evaluate(SAMPLE)
    shown = [s for s in samples if s["stage"] == "flicker" and "pixels" in s]
    assert len(shown) > 20
    height, width = study.crop_height, study.crop_width

    def rgb(sample: dict[str, Any], side: int) -> np.ndarray:
        return np.asarray(sample["pixels"][side], dtype=np.uint8).reshape(height, width, 4)[..., :3]

    original = _png(trial.item.a.token)
    condition = _png(trial.item.b.token)
    assert not np.array_equal(original, condition)
    for sample in shown:
        # the still side is the original in every frame; the other is the original or the test
        assert np.array_equal(rgb(sample, 1 - flickering), original)
        assert np.array_equal(rgb(sample, flickering), _png(sample["src"][flickering]))
    seen = {rgb(s, flickering).tobytes() for s in shown}
    assert seen == {original.tobytes(), condition.tobytes()}
    changes = [
        b["t"]
        for a, b in itertools.pairwise(samples)
        if a["stage"] == b["stage"] == "flicker" and a["src"][flickering] != b["src"][flickering]
    ]
    assert len(changes) > 20
    assert 90 <= statistics.median(np.diff(changes)) <= 110  # 100 ms per image: 10 Hz

    first = position(page)
    page.keyboard.press("1" if flickering == 0 else "2")
    page.wait_for_function(
        "p => document.querySelector('[data-testid=rater]').dataset.position !== String(p)",
        arg=first,
    )
    page.wait_for_selector(READY_OR_FEEDBACK)
    acknowledged(page)
    judgment = Judgment.objects.get(trial=trial)
    assert judgment.chosen_id == trial.item.b_id  # detected: the side showing the condition


def test_raters_complete_a_flicker_study_by_keyboard_and_the_report_shows_its_thresholds(
    browser: Any, page: Any, live_server: Any
) -> None:
    """Three raters who always find the flickering side: every answer is stored once as the
    condition, and the researcher's report gives each codec's threshold as the bound it is
    (above the highest rate shown: even it was seen flickering)."""
    study = make_study("flicker", images=1, trials_per_session=4, completion_code="SEEN-IT")

    def keys_for(rater: str) -> Any:
        def keys(at: int) -> list[str]:
            trial = Trial.objects.get(session__participant_id=rater, position=at)
            return ["2" if not trial.swapped else "1"]  # the condition's side

        return keys

    for index in range(3):
        rater = f"rater-{index}"
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        rater_page = context.new_page()
        rater_page.set_default_timeout(20_000)
        enter(rater_page, live_server, study, f"?PROLIFIC_PID={rater}")
        assert len(rate(rater_page, keys_for(rater))) == 4
        rater_page.wait_for_selector("[data-testid=completion-code]")
        assert rater_page.get_by_test_id("completion-code").inner_text().strip() == "SEEN-IT"
        context.close()
    judgments = Judgment.objects.filter(trial__session__study=study).select_related("trial__item")
    assert judgments.count() == 12
    assert all(j.chosen_id == j.trial.item.b_id for j in judgments)

    log_in_as_researcher(page, live_server)
    page.goto(f"{live_server.url}/reports/{study.pk}/", timeout=60_000)
    section = page.locator("section", has_text="Visually lossless thresholds").first
    rows = section.locator("tbody tr")
    assert rows.count() == 2  # jpeg and webp on the one image
    for index in range(2):
        cells = rows.nth(index).inner_text()
        assert "above" in cells  # censored: the threshold lies beyond the rates shown
    assert page.locator("section", has_text="Bit-rate saving at the threshold").count() >= 1
