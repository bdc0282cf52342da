"""The rating page shows exactly the stimulus's pixels, and never a blank pane between trials.

Every device pixel of a pane must equal the served PNG's pixel at 1×, or its nearest-neighbour
replica at 2× and 4× after panning by keys and by drag, at device pixel ratios 1, 1.5, 2 and
3. Screens with those ratios are real ones (``--force-device-scale-factor``, see
``page_at_ratio`` in conftest.py): Playwright's ``device_scale_factor`` emulates the ratio by
scaling a page laid out in CSS pixels, which no rater's browser does, and which cannot be
exact at 1.5 or 3 unless the crop is a multiple of 3; the page says so (the last test).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from raterbot import READY_OR_FEEDBACK, acknowledged, enter, rate
from studykit import make_study

from perceptlab.codecs.files import read_bytes
from perceptlab.studies.models import Session, Stimulus, Study, Trial

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RATIOS = [1, 1.5, 2, 3]
READY = '[data-testid="rater"][data-status="ready"]'
BLANK_FRAMES = """() => {
  // Every animation frame: is any pane invisible or one flat colour (cleared, or not drawn)?
  window.perceptlabFrames = [];
  const canvases = Array.from(document.querySelectorAll("canvas[data-testid^=canvas-]"));
  const flat = (canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 4; i < data.length; i += 4) {
      if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) return false;
    }
    return true;
  };
  const tick = () => {
    window.perceptlabFrames.push(canvases.map((canvas) => ({
      blank: !canvas.checkVisibility({ opacityProperty: true, visibilityProperty: true })
        || flat(canvas),
      src: canvas.dataset.src,
    })));
    if (!window.perceptlabStop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def _study(method: str, **fields: Any) -> Study:
    # The synthetic images are 96×64: the crop is the whole image, 96 not a multiple of 64.
    values: dict[str, Any] = {"crop_width": 96, "crop_height": 64, "trials_per_session": 3}
    values.update(fields)
    return make_study(method, **values)


def _png(url: str) -> np.ndarray:
    stimulus = Stimulus.objects.get(token=url.rsplit("/", 1)[-1])
    with Image.open(io.BytesIO(read_bytes(str(stimulus.png.name)))) as image:
        return np.asarray(image.convert("RGB"))


def _view(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const stage = document.querySelector("[data-testid=stage]");
          const panes = {};
          document.querySelectorAll("canvas[data-testid^=canvas-]").forEach((canvas) => {
            const box = canvas.getBoundingClientRect();
            panes[canvas.dataset.testid] = {
              left: box.left, top: box.top, right: box.right, bottom: box.bottom,
              src: canvas.dataset.src,
            };
          });
          return { ...stage.dataset, ratio: devicePixelRatio, panes };
        }"""
    )


def _assert_exact(page: Any, study: Study) -> dict[str, Any]:
    """Every pane's device pixels equal the PNG's, nearest-neighbour zoomed and panned."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    view = _view(page)
    ratio, zoom = view["ratio"], int(view["zoom"])
    pan_x, pan_y = int(view["panX"]), int(view["panY"])
    assert view["exact"] == "true", f"the page reports inexact panes at ratio {ratio}"
    right = max(pane["right"] for pane in view["panes"].values()) + 4
    bottom = max(pane["bottom"] for pane in view["panes"].values()) + 4
    shot = page.screenshot(clip={"x": 0, "y": 0, "width": right, "height": bottom}, scale="device")
    screen = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    width, height = study.crop_width, study.crop_height
    for name, pane in view["panes"].items():
        # viewer.js aligns each canvas to the device grid: its corner is a whole device pixel.
        x, y = round(pane["left"] * ratio), round(pane["top"] * ratio)
        shown = screen[y : y + height, x : x + width]
        zoomed = np.repeat(np.repeat(_png(pane["src"]), zoom, axis=0), zoom, axis=1)
        expected = zoomed[pan_y : pan_y + height, pan_x : pan_x + width]
        assert shown.shape == expected.shape == (height, width, 3)
        equal = float(np.mean(np.all(shown == expected, axis=-1)))
        assert equal == 1.0, (
            f"{name} at ratio {ratio}, zoom {zoom}×, pan ({pan_x}, {pan_y}): "
            f"{100 * equal:.2f} % of its pixels equal the PNG's"
        )
    return view


def _drag(page: Any, dx: float, dy: float) -> None:
    box = page.get_by_test_id("canvas-test").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=3)
    page.mouse.up()


def _zoom_pan_and_check(page: Any, study: Study, *, flip: bool) -> None:
    """At 1× (and flipped), then at 2× and 4× after panning by keys and by drag."""
    first = _assert_exact(page, study)["panes"]["canvas-test"]["src"]
    if flip:
        page.keyboard.press("Space")  # A → B: B's pixels must be exact too
        assert _assert_exact(page, study)["panes"]["canvas-test"]["src"] != first
        page.keyboard.press("Space")
    seen = set()
    for zoom in (2, 4):
        page.keyboard.press("+")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowDown")
        keyed = _assert_exact(page, study)
        assert int(keyed["zoom"]) == zoom
        _drag(page, -9.5, -5.25)  # fractional CSS pixels: the pan still lands on whole pixels
        dragged = _assert_exact(page, study)
        assert (keyed["panX"], keyed["panY"]) != (dragged["panX"], dragged["panY"])
        seen.add((dragged["panX"], dragged["panY"]))
        if flip:
            page.keyboard.press("Space")
            _assert_exact(page, study)
    assert len(seen) == 2


@pytest.mark.parametrize("ratio", RATIOS)
def test_2afc_panes_show_the_stimulus_pixels_exactly(
    page_at_ratio: Any, live_server: Any, ratio: float
) -> None:
    page = page_at_ratio(ratio)
    study = _study("2afc")
    enter(page, live_server, study)
    assert page.evaluate("devicePixelRatio") == ratio
    _zoom_pan_and_check(page, study, flip=True)


@pytest.mark.parametrize("ratio", RATIOS)
def test_acr_pane_shows_the_stimulus_pixels_exactly(
    page_at_ratio: Any, live_server: Any, ratio: float
) -> None:
    page = page_at_ratio(ratio)
    study = _study("acr")
    enter(page, live_server, study)
    _zoom_pan_and_check(page, study, flip=False)


def test_no_frame_shows_a_blank_pane_between_trials(page: Any, live_server: Any) -> None:
    study = _study("2afc", trials_per_session=6)
    enter(page, live_server, study)
    page.evaluate(BLANK_FRAMES)
    rate(page, ["a"], limit=5)
    page.wait_for_selector(f"{READY_OR_FEEDBACK}, [data-testid=completion-code]")
    frames = page.evaluate(
        "() => { window.perceptlabStop = true; return window.perceptlabFrames; }"
    )
    assert len(frames) > 10
    blank = [index for index, frame in enumerate(frames) if any(p["blank"] for p in frame)]
    assert not blank, f"{len(blank)} of {len(frames)} frames showed a blank pane"
    shown = {pane["src"] for frame in frames for pane in frame}
    assert len(shown) >= 6  # the samples span the swaps: several trials' images were on screen


def test_each_trials_images_come_in_one_request_each_image_once(
    page: Any, live_server: Any
) -> None:
    """The page asks for the images of a trial it lacks in one request (the server's
    multipart bundle), never for an image twice, and shows them exactly."""
    study = _study("2afc", trials_per_session=5)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/img" in r.url else None)
    enter(page, live_server, study)
    _assert_exact(page, study)
    rate(page, ["a"], limit=2)
    page.wait_for_selector(READY)
    _assert_exact(page, study)  # a trial that came in a bundle while the first was shown
    rate(page, ["a"], limit=2)  # the last trial on screen: every trial's images asked for
    page.wait_for_selector(READY_OR_FEEDBACK)
    acknowledged(page)
    session = Session.objects.get(study=study)
    trials = Trial.objects.filter(session=session).order_by("position")
    held: set[str] = set()
    requests = 0  # what the page should ask: per trial in order, one request for its new images
    for trial in trials.select_related("item__a", "item__b"):
        original = Stimulus.objects.get(
            study_image=trial.item.a.study_image, role=Stimulus.Role.ORIGINAL
        )
        new = {trial.item.a.token, trial.item.b.token, original.token} - held
        requests += bool(new)
        held |= new
    tokens = [token for url in asked for token in url.rsplit("/", 1)[1].split(".")]
    assert sorted(tokens) == sorted(held)  # each image once, every one shown
    assert len(asked) == requests
    assert all(("/imgs/" in url) == ("." in url.rsplit("/", 1)[1]) for url in asked)
    assert any("/imgs/" in url for url in asked)


def test_an_emulated_fractional_ratio_asks_to_reset_the_zoom(
    browser: Any, live_server: Any
) -> None:
    # DevTools emulation at 1.5 paints a 64-pixel crop into 42 or 43 CSS pixels × 1.5: never
    # 64 device pixels, so the page cannot be exact and must say what to do.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1.5)
    try:
        page = context.new_page()
        enter(page, live_server, make_study("2afc"))
        warning = page.get_by_test_id("pixel-warning")
        warning.wait_for()
        assert "zoom" in warning.inner_text()
        assert page.get_by_test_id("stage").get_attribute("data-exact") == "false"
    finally:
        context.close()
