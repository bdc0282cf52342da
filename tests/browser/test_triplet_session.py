"""Triplet sessions (JPEG AIC-3) in Chromium: exact pixels on three panes, PTC toggles, the
BTC 10 Hz flicker with its 8 s + 3 s window, and a session completed by keyboard whose every
answer is stored once, naming the side the rater picked."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import numpy as np
import pytest
from raterbot import READY_OR_FEEDBACK, acknowledged, enter, position, rate
from studykit import make_study
from test_exact_pixels import _assert_exact, _png

from perceptlab.studies.models import Judgment, Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CANVASES = ("canvas-left", "canvas-reference", "canvas-right")


def _study(mode: str, **fields: Any) -> Study:
    values: dict[str, Any] = {
        "crop_width": 96,
        "crop_height": 64,
        "trials_per_session": 4,
        "triplet_mode": mode,
        "completion_code": "DONE-TRIPLET",
    }
    values.update(fields)
    return make_study("triplet", **values)


def _screen_matches(page: Any, study: Study) -> dict[str, str]:
    """Every pane's device pixels equal its PNG's (``test_exact_pixels``' check, here at 1×),
    the panes in the order left, original, right; their image URLs."""
    panes = _assert_exact(page, study)["panes"]
    lefts = [panes[name]["left"] for name in CANVASES]
    assert lefts == sorted(lefts), "panes in the order left, original, right"
    return {name: panes[name]["src"] for name in CANVASES}


@pytest.mark.parametrize("ratio", [1, 2])
def test_ptc_panes_are_exact_and_each_side_toggles_against_the_original(
    page_at_ratio: Any, live_server: Any, ratio: float
) -> None:
    page = page_at_ratio(ratio)
    study = _study("ptc")
    enter(page, live_server, study)
    first = _screen_matches(page, study)
    assert len(set(first.values())) == 3 or first["canvas-left"] == first["canvas-right"]
    assert page.get_by_test_id("choose-left").is_disabled()  # one toggle at least (AIC-3)
    page.keyboard.press("f")
    toggled = _screen_matches(page, study)
    assert toggled["canvas-left"] == first["canvas-reference"]
    assert toggled["canvas-right"] == first["canvas-right"]
    assert page.get_by_test_id("label-left").inner_text() == "Left: original"
    page.keyboard.press("j")
    both = _screen_matches(page, study)
    assert both["canvas-right"] == first["canvas-reference"]
    page.keyboard.press("Space")  # both back
    assert _screen_matches(page, study) == first
    assert page.get_by_test_id("flip-count").inner_text() == "4 toggles"
    assert page.get_by_test_id("choose-left").is_enabled()


def test_a_ptc_session_is_completed_by_keyboard_and_every_answer_stored_once(
    page: Any, live_server: Any
) -> None:
    study = _study("ptc", gold_trials=1, gold_min_answered=5, trials_per_session=5)
    enter(page, live_server, study)
    answered = rate(page, ["f", "1"])
    page.wait_for_selector("[data-testid=completion-code]")
    judgments = list(
        Judgment.objects.filter(trial__session__study=study).select_related(
            "trial__item__a", "trial__item__b", "chosen"
        )
    )
    assert len(judgments) == len(answered) == 6  # 5 test + 1 trap
    for judgment in judgments:
        left, _ = judgment.trial.shown_as()
        assert judgment.choice == "a" and judgment.chosen == left  # "1": the left side
        assert judgment.flips == 1
        assert "too_few_flips" not in judgment.flags


def test_btc_flickers_each_side_at_10_hz_for_8_s_then_blanks_3_s(
    page: Any, live_server: Any
) -> None:
    study = _study("btc")
    enter(page, live_server, study)
    samples = page.evaluate(
        """() => new Promise((done) => {
          const rater = document.querySelector("[data-testid=rater]");
          const canvases = ["canvas-left", "canvas-reference", "canvas-right"].map(
            (id) => document.querySelector(`[data-testid=${id}]`));
          const out = [];
          const start = performance.now();
          const tick = (now) => {
            const frame = {t: now - start, stage: rater.dataset.btcStage,
                           src: canvases.map((c) => c.dataset.src)};
            if (out.length < 3 || out.length % 40 === 0) {  // a few pixel reads, not every frame
              frame.pixels = canvases.map((c) => Array.from(
                c.getContext("2d").getImageData(0, 0, c.width, c.height).data));
            }
            out.push(frame);
            if (now - start < 12000) requestAnimationFrame(tick); else done(out);
          };
          requestAnimationFrame(tick);
        })"""
    )
    left_sources = [s["src"][0] for s in samples if s["stage"] == "flicker"]
    pivot = samples[0]["src"][1]
    assert set(left_sources) >= {pivot} and len(set(left_sources)) == 2
    changes = [
        b["t"]
        for a, b in itertools.pairwise(samples)
        if a["stage"] == b["stage"] == "flicker" and a["src"][0] != b["src"][0]
    ]
    periods = np.diff(changes)
    assert len(periods) > 40
    assert 90 <= statistics.median(periods) <= 110, f"median phase {statistics.median(periods)} ms"
    flicker = [s["t"] for s in samples if s["stage"] == "flicker"]
    blank = [s["t"] for s in samples if s["stage"] == "blank"]
    assert 7800 <= max(flicker) - min(flicker) <= 8100
    assert 2800 <= max(blank) - min(blank) <= 3100
    assert all(src == "" for s in samples if s["stage"] == "blank" for src in s["src"])
    assert samples[-1]["stage"] == "idle"
    # what each canvas holds is the PNG its data-src names: boosted sides, zoomed pivot
    for sample in (s for s in samples if "pixels" in s):
        for src, pixels in zip(sample["src"], sample["pixels"], strict=True):
            rgba = np.asarray(pixels, dtype=np.uint8).reshape(study.crop_height, -1, 4)
            if src:
                assert np.array_equal(rgba[..., :3], _png(src))
            else:
                assert len(np.unique(rgba[..., :3].reshape(-1, 3), axis=0)) == 1  # blank
    # Space replays; the answer counts the replay and names the side
    first = position(page)
    page.keyboard.press("Space")
    page.wait_for_selector("[data-testid=rater][data-btc-stage=flicker]")
    page.keyboard.press("2")
    page.wait_for_function(
        "p => document.querySelector('[data-testid=rater]').dataset.position !== String(p)",
        arg=first,
    )
    page.wait_for_selector(READY_OR_FEEDBACK)
    acknowledged(page)
    judgment = Judgment.objects.get(trial__session__study=study, trial__position=first)
    assert judgment.choice == "b" and judgment.flips == 1
    assert judgment.chosen == judgment.trial.shown_as()[1]
