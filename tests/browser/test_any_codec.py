"""Any codec in, as a researcher and a rater meet it: a pip-installed plugin (the example
package), a codec declared in TOML (``jxl-cli``: cjxl/djxl) and a codec known only by its
imported reconstructions each appear in ``manage.py codecs`` and in the study form, are
picked in a study built in the admin, and are rated in Chromium. What the rater's page
receives for an imported condition is the researcher's decoded pixels, cropped."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import importkit
import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image
from pluginkit import install_example, restored_registry
from raterbot import enter, log_in_as_researcher, operate, rate

from perceptlab.codecs.registry import get_codec
from perceptlab.studies.models import Judgment, Session, Stimulus, Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLUGIN, TOML, IMPORTED = "example-dct", "jxl-cli", "my-gan"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with restored_registry():
        yield install_example(tmp_path, monkeypatch)


def _codecs_json() -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    call_command("codecs", "--json", stdout=out)
    return {row["slug"]: row for row in map(json.loads, out.getvalue().splitlines())}


def test_a_plugin_a_toml_codec_and_imported_reconstructions_are_rated_in_one_study(
    plugin: str, browser: Any, page: Any, live_server: Any, tmp_path: Path
) -> None:
    state = get_codec(TOML).availability()
    if not state.available:
        pytest.skip(f"{TOML}: {state.reason} (scripts/browser.sh installs libjxl-tools)")
    image_set = importkit.kodak_crop_set(name="lab-kodak")  # 128×96 crops of two Kodak images
    output = importkit.researcher_output(tmp_path / "researcher")
    call_command(
        "import_reconstructions", str(output.images), "--set", image_set.name,
        "--codec", IMPORTED, "--label", "My GAN", "--bitstreams", str(output.bitstreams),
        stdout=io.StringIO(),
    )  # fmt: skip
    listed = _codecs_json()
    assert listed[PLUGIN]["available"] and listed[TOML]["available"]
    assert listed[IMPORTED]["family"] == "imported"
    # Targets the imported points stand for: each image's q20 and q75 rates, rounded.
    targets = sorted({round(np.mean([output.bpp[(p, n)] for n in importkit.IMAGES]), 2)
                      for p in importkit.POINTS})  # fmt: skip

    log_in_as_researcher(page, live_server)
    page.goto(f"{live_server.url}/admin/studies/study/add/")
    for slug in (PLUGIN, TOML, IMPORTED):  # each offered, and picked, in the study form
        page.check(f"input[name=codecs][value={slug}]")
    page.fill("#id_name", "any-codec")
    page.fill("#id_title", "How good is this image?")
    page.select_option("#id_method", "acr")
    page.select_option("#id_image_set", label=image_set.name)
    page.fill("#id_target_bpps", ", ".join(str(t) for t in targets))
    page.fill("#id_crop_width", "64")
    page.fill("#id_crop_height", "64")
    page.fill("#id_trials_per_session", "12")
    page.fill("#id_practice_trials", "0")
    page.fill("#id_gold_trials", "0")
    page.fill("#id_repeat_trials", "0")
    page.fill("#id_completion_code", "ANY-CODEC")
    page.click("input[name=_continue]")
    page.wait_for_selector("#study-operations")
    study = Study.objects.get(name="any-codec")
    operate(page, "Generate stimuli")  # jobs for the plugin and cjxl run inline under test
    operate(page, "Launch")
    study.refresh_from_db()
    assert study.state == Study.State.LIVE
    shown = study.stimuli.filter(role=Stimulus.Role.CONDITION)
    by_image = {(s.reconstruction.codec, s.study_image.source.name) for s in shown}
    images = {f"{name}.png" for name in importkit.IMAGES}
    assert by_image == {(codec, image) for codec in (PLUGIN, TOML, IMPORTED) for image in images}

    rater = browser.new_context(viewport={"width": 1280, "height": 800})
    rater_page = rater.new_page()
    rater_page.set_default_timeout(20_000)
    enter(rater_page, live_server, study, "?PROLIFIC_PID=rater-any")
    answered = rate(rater_page, ["4"])
    rater_page.wait_for_selector("[data-testid=completion-code]")
    assert rater_page.get_by_test_id("completion-code").inner_text().strip() == "ANY-CODEC"

    session = Session.objects.get(study=study, participant_id="rater-any")
    judgments = Judgment.objects.filter(trial__session=session).select_related(
        "trial__item__a__reconstruction", "trial__item__a__study_image__source"
    )
    assert sorted(j.trial.position for j in judgments) == sorted(answered)
    rated = {j.trial.item.a.reconstruction.codec for j in judgments}
    assert rated == {PLUGIN, TOML, IMPORTED}
    assert {j.score for j in judgments} == {4.0}
    # An imported condition as the rater's browser receives it: the researcher's pixels.
    judgment = next(j for j in judgments if j.trial.item.a.reconstruction.codec == IMPORTED)
    stimulus = judgment.trial.item.a
    point = stimulus.reconstruction.params["point"]
    image = stimulus.study_image.source.name.removesuffix(".png")
    x, y, width, height = stimulus.study_image.crop_box()
    expected = output.pixels[(point, image)][y : y + height, x : x + width]
    url = f"{live_server.url}/r/{session.code}/img/{stimulus.token}"
    served = rater_page.request.get(url)
    assert served.status == 200
    pixels = np.asarray(Image.open(io.BytesIO(served.body())).convert("RGB"))
    np.testing.assert_array_equal(pixels, expected)
    rater.close()
