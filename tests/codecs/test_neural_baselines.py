"""CompressAI zoo baselines as codecs, with weight files made here (the real ones are absent).

Each weight file is a random-init zoo model (fixed seed) after ``update(force=True)``, saved
as a plain state dict and named like the zoo's files, ``<architecture>-<quality>-<hash>.pth.tar``,
with the real SHA-256 prefix of the bytes written, so the name check passes as it would for
the official files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from compressai import zoo

from perceptlab.codecs.base import (
    Availability,
    CodecError,
    CodecParamError,
    CodecUnavailable,
    bits_per_pixel,
)
from perceptlab.codecs.neural import baselines
from perceptlab.codecs.neural.baselines import (
    SUFFIX,
    Bmshj2018HyperpriorCodec,
    Cheng2020AnchorCodec,
    CompressAIBaseline,
    Mbt2018MeanCodec,
    official_name,
)
from perceptlab.codecs.neural.codec import device_kind
from perceptlab.codecs.neural.container import pack, unpack
from perceptlab.codecs.ratecontrol import encode_at_bpp

pytestmark = pytest.mark.needs_torch

HYPER = "bmshj2018-hyperprior"


def _state_dict(architecture: str, quality: int, seed: int, *, update: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = getattr(zoo, architecture.replace("-", "_"))(quality=quality, metric="mse")
    if update:
        net.update(force=True)
    return dict(net.state_dict())


def write_weights(
    directory: Path,
    architecture: str,
    quality: int,
    seed: int = 0,
    *,
    update: bool = True,
    prefix: str | None = None,
) -> Path:
    """Save a zoo model's state dict as ``<architecture>-<quality>-<sha256[:8]>.pth.tar``
    (or with ``prefix`` in place of the real one)."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{architecture}-{quality}.part"
    torch.save(_state_dict(architecture, quality, seed, update=update), temporary)
    digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
    path = directory / f"{architecture}-{quality}-{prefix or digest[:8]}{SUFFIX}"
    os.replace(temporary, path)
    return path


@pytest.fixture(scope="module")
def hyper_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """bmshj2018-hyperprior weights for quality 1 and for the default quality 4."""
    folder = tmp_path_factory.mktemp("zoo")
    return {q: write_weights(folder, HYPER, q, seed=q) for q in (1, 4)}


@pytest.fixture
def weights(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    settings.PERCEPTLAB_WEIGHTS_DIR = folder
    return folder


@pytest.fixture
def hyper_weights(weights: Path, hyper_files: dict[int, Path]) -> Path:
    for path in hyper_files.values():
        os.link(path, weights / path.name)
    return weights


@pytest.fixture(scope="module")
def crop(kodim23: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kodim23[200:264, 300:396])  # 64 x 96


def test_file_names_and_levels_are_the_zoo_ones() -> None:
    from compressai.zoo.image import cfgs, model_urls

    codecs: list[CompressAIBaseline] = [
        Bmshj2018HyperpriorCodec(),
        Mbt2018MeanCodec(),
        Cheng2020AnchorCodec(),
    ]
    for codec in codecs:
        urls = model_urls[codec.slug]["mse"]
        assert sorted(urls) == sorted(cfgs[codec.slug]) == list(range(1, codec.levels + 1))
        for quality, url in urls.items():
            assert url == baselines.official_url(codec.slug, quality)
            assert url.rsplit("/", 1)[1] == official_name(codec.slug, quality)
        assert codec.dial is not None
        assert (codec.dial.low, codec.dial.high) == (1, codec.levels)
        assert codec.dial.integer and codec.dial.increasing and not codec.dial.values
    assert official_name(HYPER, 1) == "bmshj2018-hyperprior-1-7eb97409.pth.tar"


def test_quality_is_validated_against_the_levels_of_each_model() -> None:
    hyper, cheng = Bmshj2018HyperpriorCodec(), Cheng2020AnchorCodec()
    for bad in (0, 9, 1.5, "four"):
        with pytest.raises(CodecParamError, match="quality"):
            hyper.validate_params({"quality": bad})
    assert hyper.validate_params({"quality": "8"}) == {"quality": 8}
    assert hyper.validate_params({}) == {"quality": 4}
    assert cheng.validate_params({"quality": 6}) == {"quality": 6}
    with pytest.raises(CodecParamError, match=r"outside \[1, 6\]"):
        cheng.validate_params({"quality": 7})
    with pytest.raises(CodecParamError, match="unknown parameter"):
        hyper.validate_params({"qp": 30})


def test_missing_weights_make_the_codec_unavailable_and_say_what_to_fetch(
    weights: Path, crop: np.ndarray
) -> None:
    codec = Bmshj2018HyperpriorCodec()
    expected = (
        f"weights missing: no bmshj2018-hyperprior quality level is in {weights}; put any of "
        "its files there (for quality 4: bmshj2018-hyperprior-4-de1b779c.pth.tar), or run "
        "manage.py fetch_weights --only bmshj2018-hyperprior"
    )
    assert codec.availability() == Availability(False, expected)
    with pytest.raises(CodecUnavailable, match="no bmshj2018-hyperprior quality level"):
        codec.rate_dial()
    # encoding names the file of the quality it asks for
    with pytest.raises(CodecUnavailable, match="weights missing: bmshj2018-hyperprior-1-"):
        codec.encode(crop, {"quality": 1})


def test_a_missing_quality_is_named_when_it_is_used(
    weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    os.link(hyper_files[4], weights / hyper_files[4].name)
    codec = Bmshj2018HyperpriorCodec()
    assert codec.availability().available
    with pytest.raises(CodecUnavailable, match=r"weights missing: bmshj2018-hyperprior-2-93677231"):
        codec.encode(crop, {"quality": 2})


def test_a_file_whose_sha256_does_not_begin_with_its_name_prefix_is_refused(
    weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    real = hyper_files[1].name.rsplit("-", 1)[1][:8]
    fake = "00000000" if real != "00000000" else "11111111"
    os.link(hyper_files[1], weights / f"{HYPER}-1-{fake}{SUFFIX}")
    os.link(hyper_files[4], weights / hyper_files[4].name)
    codec = Bmshj2018HyperpriorCodec()
    with pytest.raises(CodecUnavailable, match=f"does not begin with {fake} as its name says"):
        codec.encode(crop, {"quality": 1})
    # The official file name is checked too, and a corrupt official file is never bypassed
    # for another file of the same quality.
    (weights / official_name(HYPER, 4)).write_bytes(b"a truncated download")
    digest = hashlib.sha256(b"a truncated download").hexdigest()
    state = codec.availability()
    assert not state.available  # both levels present are refused, and both are named
    assert f"does not begin with {fake} as its name says" in state.reason
    assert (
        f"weights corrupt: {weights / official_name(HYPER, 4)} has SHA-256 {digest}, which "
        "does not begin with de1b779c as its name says; delete it and run "
        "manage.py fetch_weights --only bmshj2018-hyperprior"
    ) in state.reason


def test_each_quality_level_is_usable_on_its_own(
    weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    """Only quality 1's file (not the default 4's): the codec is available, rate control
    turns the dial over the levels present only, and a missing level is named."""
    os.link(hyper_files[1], weights / hyper_files[1].name)
    codec = Bmshj2018HyperpriorCodec()
    assert codec.availability().available
    assert codec.levels_present() == ((1,), {})
    dial = codec.rate_dial()
    assert dial is not None and dial.values == (1,)
    result = encode_at_bpp(codec, crop, 3.0)  # far above what quality 1 reaches
    assert result.params == {"quality": 1}
    assert [value for value, _ in result.tried] == [1.0]
    assert (result.within_tolerance, result.reason) == (False, "ceiling")
    with pytest.raises(CodecUnavailable, match=r"weights missing: bmshj2018-hyperprior-4-"):
        codec.encode(crop, {"quality": 4})
    # With quality 4 too, the dial holds both levels and the search uses only them.
    os.link(hyper_files[4], weights / hyper_files[4].name)
    dial = codec.rate_dial()
    assert dial is not None and dial.values == (1, 4)
    high = encode_at_bpp(codec, crop, 50.0)
    assert {value for value, _ in high.tried} == {1.0, 4.0}  # never 2 or 3
    assert high.params == {"quality": max(high.tried, key=lambda t: t[1])[0]}
    # A corrupt level is left out of the dial; the others stay usable.
    (weights / hyper_files[4].name).unlink()
    (weights / hyper_files[4].name).write_bytes(b"truncated")
    usable, problems = codec.levels_present()
    assert usable == (1,) and "weights corrupt" in problems[4]
    assert codec.availability().available


def test_weights_without_entropy_coder_tables_are_refused(
    weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    os.link(hyper_files[4], weights / hyper_files[4].name)
    write_weights(weights, HYPER, 1, seed=1, update=False)
    with pytest.raises(CodecUnavailable, match=r"has no entropy-coder tables \(entropy_bottleneck"):
        Bmshj2018HyperpriorCodec().encode(crop, {"quality": 1})


def test_several_unofficial_files_for_one_quality_are_ambiguous(
    hyper_weights: Path, crop: np.ndarray
) -> None:
    write_weights(hyper_weights, HYPER, 1, seed=99)
    with pytest.raises(CodecUnavailable, match="several weight files for bmshj2018-hyperprior"):
        Bmshj2018HyperpriorCodec().encode(crop, {"quality": 1})


def test_round_trip_is_the_zoo_models_own_compress_and_decompress(
    hyper_weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    from perceptlab.codecs.neural.codec import pad_to, to_image, to_tensor

    codec = Bmshj2018HyperpriorCodec()
    assert codec.availability().available
    data = codec.encode(crop, {"quality": 1})
    first, second = codec.decode(data), codec.decode(data)
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert bits_per_pixel(len(data), 64, 96) == 8 * len(data) / (64 * 96)

    container = unpack(data)
    header = container.header
    path = hyper_files[1]
    assert header.model == path.name[: -len(SUFFIX)]
    assert header.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (header.height, header.width, header.pad_bottom, header.pad_right) == (64, 96, 0, 32)
    assert header.params == {"quality": 1} and header.device_type == device_kind("cpu")
    assert len(container.sections) == 2

    # Same bytes and pixels as CompressAI's own compress/decompress on the padded input.
    net = zoo.bmshj2018_hyperprior(quality=1, metric="mse")
    net.load_state_dict(torch.load(path, weights_only=True))
    net.eval()
    with torch.inference_mode():
        x, _, _ = pad_to(to_tensor(crop), 64)
        out = net.compress(x)
        assert tuple(out["shape"]) == (1, 2)
        assert [out["strings"][0][0], out["strings"][1][0]] == list(container.sections)
        x_hat = net.decompress(out["strings"], out["shape"])["x_hat"]
    assert np.array_equal(to_image(x_hat[..., :64, :96]), first)


def test_a_bitstream_made_with_other_weights_is_refused(
    hyper_weights: Path, hyper_files: dict[int, Path], crop: np.ndarray
) -> None:
    codec = Bmshj2018HyperpriorCodec()
    data = codec.encode(crop, {"quality": 1})
    # Same file name, other digest in the header.
    container = unpack(data)
    forged = dataclasses.replace(container.header, weights_sha256="ab" * 32)
    with pytest.raises(CodecError, match="made with other weights of bmshj2018-hyperprior-1-"):
        codec.decode(pack(forged, container.sections))
    # The weights that made it are gone; others for quality 1 are here.
    (hyper_weights / hyper_files[1].name).unlink()
    write_weights(hyper_weights, HYPER, 1, seed=7)
    with pytest.raises(CodecError, match="made with other weights"):
        codec.decode(data)
    # A bitstream of another architecture is not decoded with these weights at all.
    alien = dataclasses.replace(container.header, model="mbt2018-mean-1-e522738d")
    with pytest.raises(CodecError, match="is not a bmshj2018-hyperprior bitstream"):
        codec.decode(pack(alien, container.sections))


def test_models_are_loaded_once_per_process_even_from_several_threads(
    hyper_weights: Path, hyper_files: dict[int, Path]
) -> None:
    baselines.forget_models()
    path = hyper_weights / hyper_files[1].name
    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(baselines.load(HYPER, path, "cpu")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 3 and got[0] is got[1] is got[2]


@pytest.mark.parametrize(
    ("factory", "default"),
    [(Mbt2018MeanCodec, 4), (Cheng2020AnchorCodec, 3)],
)
def test_mean_scale_and_cheng_anchor_round_trip(
    weights: Path,
    crop: np.ndarray,
    factory: Callable[[], CompressAIBaseline],
    default: int,
) -> None:
    codec = factory()
    for quality in sorted({1, default}):
        write_weights(weights, codec.slug, quality, seed=quality)
    image = np.ascontiguousarray(crop[:, :64])
    data = codec.encode(image, {"quality": 1})
    decoded = codec.decode(data)
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.uint8
    assert np.array_equal(decoded, codec.decode(data))
    header = unpack(data).header
    assert header.model.startswith(f"{codec.slug}-1-") and header.params == {"quality": 1}
