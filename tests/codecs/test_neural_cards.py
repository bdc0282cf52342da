"""Model cards: measured on Kodak through the codec; shipped checkpoints match their cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from neuralkit import TINY_HIFIC, kodak, save_tiny
from support import data, kodak_path

from perceptlab.codecs.neural import cards, checkpoints, codec


@pytest.fixture
def neural_dir(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    settings.PERCEPTLAB_NEURAL_DIR = tmp_path
    codec.forget_models()
    yield tmp_path
    codec.forget_models()


def test_psnr_and_ms_ssim_follow_their_definitions() -> None:
    image = kodak(7)[:192, :192]
    noisy = np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)
    mse = np.mean((image.astype(float) - noisy.astype(float)) ** 2)
    assert cards.psnr(image, noisy) == pytest.approx(10 * np.log10(255**2 / mse))
    assert cards.psnr(image, image) == float("inf")
    assert cards.ms_ssim(image, image) == pytest.approx(1.0)
    assert 0.9 < cards.ms_ssim(image, noisy) < 1.0


def test_model_card_command_measures_kodak_and_writes_json_and_markdown(neural_dir: Path) -> None:
    path = save_tiny("hific", "tiny-hific", neural_dir, TINY_HIFIC)
    call_command(
        "model_card", "tiny-hific", "--codec", "hific", "--limit", "2",
        "--params", '{"qstep": 1.0}', "--params", '{"qstep": 4.0}', "--hardware", "test CPU",
    )  # fmt: skip
    card = json.loads(cards.card_path(path).read_text())
    assert card["weights_sha256"] == checkpoints.sha256_file(path)
    fine, coarse = card["evaluation"]["operating_points"]
    assert fine["params"] == {"qstep": 1.0} and len(fine["images"]) == 2
    assert fine["summary"]["bpp"] > coarse["summary"]["bpp"] > 0
    again = cards.measure("hific", {"model": "tiny-hific", "qstep": 1.0}, [kodak_path("kodim01")])
    assert again[0].bytes == fine["images"][0]["bytes"]
    assert again[0].psnr == pytest.approx(fine["images"][0]["psnr"])
    text = path.with_suffix(".md").read_text()
    assert text.startswith("# Model card: tiny-hific") and "| qstep=4.0 |" in text
    with pytest.raises(CommandError, match="weights missing"):
        call_command("model_card", "nothing", "--codec", "hific")


SHIPPED_CARDS = sorted(checkpoints.SHIPPED_DIR.glob(f"*{cards.CARD_SUFFIX}"))


def test_every_shipped_checkpoint_has_a_card_and_every_card_its_checkpoint() -> None:
    shipped = sorted(checkpoints.SHIPPED_DIR.glob(f"*{checkpoints.SUFFIX}"))
    assert shipped, "no shipped checkpoint"
    assert {p.stem for p in shipped} == {
        c.name.removesuffix(cards.CARD_SUFFIX) for c in SHIPPED_CARDS
    }
    for path in shipped:
        assert path.stat().st_size <= 25 * 1024 * 1024
        assert path.with_suffix(".md").is_file()


@pytest.mark.parametrize("card_file", SHIPPED_CARDS, ids=lambda p: p.name)
def test_a_shipped_checkpoint_decodes_kodak_at_its_cards_numbers(
    card_file: Path, neural_dir: Path
) -> None:
    # neural_dir: an empty PERCEPTLAB_NEURAL_DIR, so the shipped file is the one measured
    card = json.loads(card_file.read_text())
    checkpoint = checkpoints.SHIPPED_DIR / f"{card['name']}{checkpoints.SUFFIX}"
    assert checkpoints.sha256_file(checkpoint) == card["weights_sha256"]
    point = card["evaluation"]["operating_points"][0]
    recorded = point["images"][0]
    params = point["codec_params"]
    result = cards.measure(card["codec"], params, [data("kodak", recorded["image"])])[0]
    # the same bytes on this CPU; another CPU's float kernels may round a few latents the
    # other way, hence tolerances rather than equality
    assert result.bpp == pytest.approx(recorded["bpp"], rel=0.01)
    assert result.psnr == pytest.approx(recorded["psnr"], abs=0.1)
    assert result.ms_ssim == pytest.approx(recorded["ms_ssim"], abs=0.002)


def test_the_tunability_curve_is_drawn_and_fitted(neural_dir: Path) -> None:
    from perceptlab.codecs.neural import tunable

    path = save_tiny("tunable", "tiny-tunable", neural_dir, tunable.CONFIGS["small"].to_dict())
    call_command(
        "model_card", "tiny-tunable", "--codec", "tunable", "--limit", "1",
        "--params", '{"offset": 0}', "--tunability",
    )  # fmt: skip
    card = json.loads(cards.card_path(path).read_text())
    curve = card["tunability"]
    assert curve["offsets"] == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(a < b for a, b in pairwise(curve["mean_bpp"]))
    fitted = np.polyfit(curve["offsets"], curve["mean_bpp"], 1)  # one image: the same line
    assert curve["slope"] == pytest.approx(fitted[0]) and curve["slope"] > 0
    svg = (neural_dir / "tiny-tunable.tunability.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<circle") == 2 * 9
    assert "tiny-tunable.tunability.svg" in path.with_suffix(".md").read_text()
    # Measured again (the same weights), the card keeps its curve and gains the new numbers
    call_command(
        "model_card", "tiny-tunable", "--codec", "tunable", "--limit", "1",
        "--params", '{"offset": 1}',
    )  # fmt: skip
    again = json.loads(cards.card_path(path).read_text())
    assert again["tunability"] == curve
    summary = again["evaluation"]["operating_points"][0]["summary"]
    assert {"channel_mean_error", "ciede2000", "jpeg_bpp", "jpeg_psnr"} <= set(summary)
    # JPEG by rate control at the same bytes, or its lowest rate where it cannot go that low
    assert summary["jpeg_bpp"] > 0 and np.isfinite(summary["jpeg_psnr"])
    assert f"{summary['jpeg_psnr']:.2f} at {summary['jpeg_bpp']:.3f} bpp" in (
        path.with_suffix(".md").read_text()
    )


SHIPPED_TUNABLE = [c for c in SHIPPED_CARDS if json.loads(c.read_text())["codec"] == "tunable"]


@pytest.mark.parametrize("card_file", SHIPPED_TUNABLE, ids=lambda p: p.name)
def test_the_shipped_tunable_codec_spends_more_bits_as_n_grows(
    card_file: Path, neural_dir: Path
) -> None:
    name = json.loads(card_file.read_text())["name"]
    offsets = [-2.0, -1.0, 0.0, 1.0, 2.0]
    bpps = [
        cards.measure("tunable", {"model": name, "offset": n}, [kodak_path("kodim23")])[0].bpp
        for n in offsets
    ]
    assert all(a < b for a, b in pairwise(bpps)), bpps


SHIPPED_QSTEP = [
    c
    for c in SHIPPED_CARDS
    if json.loads(c.read_text())["codec"] in ("hific", "hific-sparse", "rdo-gllmm")
]


@pytest.mark.parametrize("card_file", SHIPPED_QSTEP, ids=lambda p: p.name)
def test_a_shipped_quantisation_step_codec_spends_fewer_bits_as_the_step_grows(
    card_file: Path, neural_dir: Path
) -> None:
    card = json.loads(card_file.read_text())
    steps = [0.5, 1.0, 2.0, 4.0]
    image = [kodak_path("kodim23")]
    results = [
        cards.measure(card["codec"], {"model": card["name"], "qstep": q}, image)[0] for q in steps
    ]
    bpps = [r.bpp for r in results]
    assert all(a > b for a, b in pairwise(bpps)), bpps
    assert results[0].psnr > results[-1].psnr


def test_the_shipped_sparse_hific_codes_more_zero_symbols_than_hific(neural_dir: Path) -> None:
    # seed 003's point: the sparsity loss leaves more of the quantised latent at exactly zero
    import torch

    from perceptlab.codecs.neural.codec import load_model, pad_to, to_tensor

    x, _, _ = pad_to(to_tensor(kodak(23)), 64)
    zeros = {}
    for name in ("hific-small", "hific-sparse-small"):
        model, _ = load_model("hific", name, "cpu")
        with torch.no_grad():
            zeros[name] = float((model.symbols(x) == 0).float().mean())
    assert zeros["hific-sparse-small"] > zeros["hific-small"] + 0.02, zeros


def test_the_card_says_which_checkpoint_a_continued_training_started_from() -> None:
    card = {
        "name": "b",
        "codec": "hific",
        "family": "hific",
        "weights_sha256": "0" * 64,
        "training": {
            "steps": 10,
            "steps_total": 30,
            "initialised_from": {"name": "a", "steps": 20, "note": "before its GAN stage"},
        },
        "evaluation": {"dataset": "Kodak", "metrics": "bpp", "hardware": "cpu",
                       "operating_points": []},
    }  # fmt: skip
    text = cards.markdown(card)
    assert "- Initialised from `a` after 20 steps (before its GAN stage); 30 steps in all" in text


def test_colour_errors_are_the_channel_mean_cast_and_ciede2000() -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab

    # scikit-image's ΔE00 against Sharma, Wu & Dalal (2005), Table 1, pair 1: 2.0425.
    pair = deltaE_ciede2000(np.array([50.0, 2.6772, -79.7751]), np.array([50.0, 0.0, -82.7485]))
    assert float(pair) == pytest.approx(2.0425, abs=5e-5)
    image = kodak(7)[:96, :128]
    tinted = image.astype(int)
    tinted[..., 2] += 5  # a blue cast of 5 grey levels, less where 255 clips it
    tinted = np.clip(tinted, 0, 255).astype(np.uint8)
    cast, ciede = cards.colour_errors(image, tinted)
    expected_cast = np.abs(tinted.reshape(-1, 3).mean(0) - image.reshape(-1, 3).mean(0)).max()
    assert cast == pytest.approx(expected_cast) and 4.5 < cast <= 5.0
    assert ciede == pytest.approx(float(np.mean(deltaE_ciede2000(rgb2lab(image), rgb2lab(tinted)))))
    assert cards.colour_errors(image, image) == (0.0, 0.0)


def _card(name: str, points: list[dict[str, float]]) -> dict[str, object]:
    return {"name": name, "evaluation": {"operating_points": [{"summary": p} for p in points]}}


def test_the_photographic_floor_is_judged_at_the_middle_rate_point() -> None:
    good = {"psnr": 25.0, "channel_mean_error": 1.0, "ciede2000": 3.0}
    low = {"bpp": 0.1, **good, "psnr": 20.0}
    middle = {"bpp": 0.2, **good}
    high = {"bpp": 0.4, **good, "ciede2000": 9.0}
    verdict = cards.floor_verdict([_card("m", [high, low, middle])])
    assert verdict == cards.FloorVerdict(True, "meets the photographic floor (m at 0.200 bpp)")
    # Points of several cards (one model per rate setting, as GC) are pooled by bpp; an
    # even count is judged at the lower middle.
    verdict = cards.floor_verdict([_card("a", [low]), _card("b", [middle])])
    assert not verdict.passes
    assert (
        verdict.reason
        == "demonstrator, below the photographic floor (a at 0.100 bpp: PSNR 20.00 dB < 22)"
    )
    cast = {"bpp": 0.2, **good, "channel_mean_error": 3.5}
    assert cards.floor_verdict([_card("c", [cast])]).reason.endswith(
        "colour cast 3.50 grey levels > 3)"
    )
    unmeasured = {"bpp": 0.2, "psnr": 30.0}
    assert cards.floor_verdict([_card("u", [unmeasured])]).reason.endswith(
        "colour cast not measured; mean CIEDE2000 not measured)"
    )
    assert not cards.floor_verdict([]).passes


@pytest.mark.parametrize("slug", ["hific", "hific-sparse", "gc", "tunable", "rdo-gllmm"])
def test_the_shipped_small_checkpoints_are_demonstrators(slug: str, neural_dir: Path) -> None:
    """Below the floor at their middle rate point, as their cards' PSNR shows (17–20 dB)."""
    from perceptlab.codecs.registry import get_codec

    model = get_codec(slug)
    assert isinstance(model, codec.NeuralCodec)
    found = cards.codec_cards(model)
    assert [card["name"] for card in found] == model.card_checkpoints()
    verdict = cards.codec_floor(model)
    assert not verdict.passes and "PSNR" in verdict.reason and "< 22" in verdict.reason
    text = cards.markdown(found[0])
    assert "**Status: demonstrator, below the photographic floor" in text
    # manage.py codecs and the study form say so too
    from perceptlab.codecs.admin import codec_choices_with_availability
    from perceptlab.codecs.management.commands.codecs import describe

    assert describe(slug)["note"] == verdict.reason
    label = dict(codec_choices_with_availability())[slug]
    assert label.endswith("— demonstrator: below the photographic floor (see its model card)")


@pytest.mark.parametrize("slug", ["msillm", "bmshj2018-hyperprior"])
def test_codecs_of_published_weights_are_not_judged_against_the_floor(slug: str) -> None:
    from perceptlab.codecs.registry import get_codec

    model = get_codec(slug)
    assert isinstance(model, codec.NeuralCodec) and model.card_checkpoints() == []
    assert cards.codec_floor(model) == cards.FloorVerdict(
        True, "published weights, measured by their paper"
    )
