"""MS-ILLM (Muckley et al., ICML 2023): the architecture against the reference, and the codecs.

The real weights (≈ 726 MB a file) are absent, so:

* the architecture is checked against golden files made from the reference implementation
  (``tests/codecs/golden/make_msillm_golden.py``): the state dict every released model builds,
  and on seeded weights (``tests/msillmkit.py``) the latents, symbols, generator output,
  decoded image and bitstream bytes;
* the codecs run on weight files written here with the same names as the released ones: a
  narrow architecture (:data:`msillmkit.TINY`) for most tests, the released size in one
  ``slow`` test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.core.management import call_command
from msillmkit import GOLDEN_REFERENCE, GOLDEN_TENSORS, SEED, TINY, seeded_state_dict

from perceptlab.codecs.base import (
    Availability,
    CodecError,
    CodecParamError,
    CodecUnavailable,
    bits_per_pixel,
)
from perceptlab.codecs.neural import msillm
from perceptlab.codecs.neural.codec import device_kind, pad_to, to_image, to_tensor
from perceptlab.codecs.neural.container import pack, unpack
from perceptlab.codecs.neural.msillm import (
    LICENCE,
    RELEASE,
    RELEASE_URL,
    MSILLMCodec,
    MSILLMNoGANCodec,
    file_name,
)
from perceptlab.codecs.neural.msillm_net import (
    MSILLM,
    Architecture,
    ArchitectureError,
    coding_tables,
    from_state_dict,
)
from perceptlab.codecs.ratecontrol import encode_at_bpp
from perceptlab.codecs.registry import REGISTRY, get_codec
from perceptlab.lib.weights import MANIFEST, select

pytestmark = pytest.mark.needs_torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN_TENSORS) as tensors:
        return {key: tensors[key] for key in tensors.files}


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(GOLDEN_REFERENCE.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def image(golden: dict[str, np.ndarray]) -> np.ndarray:
    """Kodak kodim23, rows 200–263, columns 300–395 (stored with the golden tensors)."""
    return golden["image"]


def tables_sha256(net: MSILLM) -> str:
    """As the golden script digests them."""
    digest = hashlib.sha256()
    for table in coding_tables(net):
        digest.update(table.to(torch.int32).numpy().tobytes())
    return digest.hexdigest()


def tiny_state(seed: int, *, tables: bool = True) -> dict[str, torch.Tensor]:
    """A narrow MS-ILLM's seeded state dict, with the coder's tables (``update()``) or not."""
    net = MSILLM(Architecture(**TINY))
    net.load_state_dict(seeded_state_dict(net.state_dict(), seed))
    if tables:
        net.update(force=True)
    return dict(net.state_dict())


def write_weights(
    directory: Path, slug: str, quality: int, seed: int = 0, *, tables: bool = True
) -> Path:
    """Save a tiny model under the released name of ``(slug, quality)``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(slug, quality)
    path.unlink(missing_ok=True)
    torch.save(tiny_state(seed, tables=tables), path)
    return path


@pytest.fixture
def weights(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    settings.PERCEPTLAB_WEIGHTS_DIR = folder
    return folder


# --- the architecture against the reference ------------------------------------------------


def test_the_state_dict_is_the_one_every_released_model_builds(reference: dict[str, Any]) -> None:
    names = set(reference["hub_entries"])
    assert {f"msillm_quality_{q}" for q in range(1, 7)} <= names
    assert {f"noganms_quality_{q}" for q in range(1, 7)} <= names
    with torch.device("meta"):
        state = MSILLM().state_dict()
    ours = [[key, list(value.shape), str(value.dtype)] for key, value in state.items()]
    assert ours == reference["state_dict"]
    assert Architecture.of(state) == Architecture()
    assert sum(value.numel() for value in state.values()) == 181_481_110


def test_a_state_dict_saved_under_compressai_1_2_4_names_loads_strictly() -> None:
    """CompressAI 1.2.4 (pinned by the reference's training recipe) named the factorised
    model's parameters ``_matrix0``, ``_bias0``, ``_factor0``."""
    state = tiny_state(1, tables=False)
    old = {}
    for key, value in state.items():
        for new, was in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            key = key.replace(f"hyper_bottleneck.{new}", f"hyper_bottleneck.{was}")
        old[key] = value
    assert "hyper_bottleneck._matrix0" in old and "hyper_bottleneck.matrices.0" not in old
    net, computed = from_state_dict(old)
    assert computed
    for key, value in state.items():
        if not key.endswith(("_quantized_cdf", "_offset", "_cdf_length", "scale_table")):
            assert torch.equal(net.state_dict()[key], value), key


def test_other_state_dicts_are_refused_naming_what_is_wrong() -> None:
    state = tiny_state(1)
    with pytest.raises(ArchitectureError, match=r"has no encoder\.blocks\.0\.0\.weight"):
        from_state_dict({k: v for k, v in state.items() if not k.startswith("encoder.")})
    with pytest.raises(ArchitectureError, match="not an MS-ILLM state dict"):
        from_state_dict({k: v for k, v in state.items() if k != "decoder.blocks.4.weight"})
    with pytest.raises(ArchitectureError, match="not an MS-ILLM state dict"):
        from_state_dict({**state, "discriminator.weight": torch.zeros(1)})


@pytest.fixture(scope="module")
def released_size() -> MSILLM:
    """Our model at the released size with the golden seeded weights and fresh tables."""
    net = MSILLM()
    net.load_state_dict(seeded_state_dict(net.state_dict(), SEED))
    net.update(force=True)
    return net.eval()


@pytest.fixture(scope="module")
def padded(image: np.ndarray) -> torch.Tensor:
    x, pad_bottom, pad_right = pad_to(to_tensor(image), 64)
    assert (pad_bottom, pad_right) == (0, 32)
    return x


def test_seeded_weights_give_the_references_latents_symbols_and_image(
    released_size: MSILLM,
    padded: torch.Tensor,
    golden: dict[str, np.ndarray],
    reference: dict[str, Any],
) -> None:
    """Same y (float tolerance), same symbols (exactly: no y − μ or z − m of the golden
    input lies within ``rounding_margin`` ≈ 7e-5 of a rounding boundary), same G(ŷ) and x̂."""
    assert reference["rounding_margin"] > 1e-5
    with torch.inference_mode():
        y, y_symbols, z_symbols = released_size.symbols(padded)
        medians = released_size.hyper_bottleneck.quantiles[:, 0, 1].reshape(1, -1, 1, 1)
        means, _ = released_size.hyperprior(z_symbols + medians)
        g = released_size.decoder(y_symbols + means)
    np.testing.assert_allclose(y.numpy(), golden["y"], rtol=1e-5, atol=1e-5)
    assert np.array_equal(y_symbols.numpy().astype(np.int32), golden["y_symbols"])
    assert np.array_equal(z_symbols.numpy().astype(np.int32), golden["z_symbols"])
    assert len(np.unique(golden["y_symbols"])) >= 4  # not a degenerate all-zero latent
    np.testing.assert_allclose(g.numpy(), golden["g"], rtol=1e-4, atol=1e-4)
    x_hat = g.clamp(0.0, 1.0)[..., :64, :96]
    np.testing.assert_allclose(x_hat.numpy(), golden["x_hat"], rtol=0, atol=1e-4)


def test_seeded_weights_give_the_references_bitstream_bytes(
    released_size: MSILLM,
    padded: torch.Tensor,
    golden: dict[str, np.ndarray],
    reference: dict[str, Any],
) -> None:
    here = tables_sha256(released_size)
    if here != reference["tables_sha256"]:
        pytest.skip(
            f"CompressAI's update() computes other coding tables here (sha256 {here[:12]}…) "
            f"than on the golden machine ({reference['tables_sha256'][:12]}…, "
            f"{reference['cpu_capability']}, compressai {reference['libraries']['compressai']})"
            "; the symbols are checked by the test above"
        )
    y_string, z_string = golden["y_string"].tobytes(), golden["z_string"].tobytes()
    with torch.inference_mode():
        assert released_size.compress_strings(padded) == (y_string, z_string)
        x_hat = released_size.decompress_strings(y_string, z_string, (64, 128))
    np.testing.assert_allclose(x_hat[..., :64, :96].numpy(), golden["x_hat"], atol=1e-4, rtol=0)


# --- the codecs -----------------------------------------------------------------------------


def test_the_codecs_are_registered_as_neural_with_the_paper_named() -> None:
    for slug, factory in (("msillm", MSILLMCodec), ("msillm-nogan", MSILLMNoGANCodec)):
        entry = REGISTRY[slug]
        assert entry.family == "neural" and "Muckley" in entry.label
        assert "ICML 2023" in entry.description and "CC-BY-NC 4.0" in entry.description
        assert type(get_codec(slug)) is factory
        assert get_codec(slug).needs_weights


def test_quality_is_validated_against_the_six_released_levels() -> None:
    codec = MSILLMCodec()
    assert codec.validate_params({}) == {"quality": 3}
    assert codec.validate_params({"quality": "6"}) == {"quality": 6}
    for bad in (0, 7, 2.5, "high"):
        with pytest.raises(CodecParamError, match="quality"):
            codec.validate_params({"quality": bad})
    assert codec.dial is not None and (codec.dial.low, codec.dial.high) == (1, 6)


def test_the_manifest_names_each_released_file_with_its_url_and_licence() -> None:
    expected = {
        f"{prefix}_target_{bpp}bpp.ckpt": slug
        for slug, prefix in (("msillm", "msillm"), ("msillm-nogan", "noganms"))
        for bpp in ("0.035", "0.07", "0.14", "0.3", "0.45", "0.9")
    }
    for name, slug in expected.items():
        entry = MANIFEST[name]  # registered by the codecs app at start-up
        assert entry.url == f"{RELEASE_URL}/{name}"
        assert entry.url.startswith("https://dl.fbaipublicfiles.com/NeuralCompression/")
        assert entry.metrics == (slug,)
        assert entry.sha256 is None and "publishes no SHA-256" in entry.sha256_source
        assert entry.licence == LICENCE and "CC-BY-NC 4.0" in entry.licence
    assert sorted(e.name for e in select(["msillm"])) == sorted(
        name for name, slug in expected.items() if slug == "msillm"
    )


def test_fetch_weights_copies_the_files_and_states_their_licence(tmp_path: Path) -> None:
    source = write_weights(tmp_path / "carried", "msillm", 1)
    for quality in range(2, 7):
        os.link(source, source.parent / file_name("msillm", quality))
    out = StringIO()
    dest = tmp_path / "weights"
    call_command(
        "fetch_weights", "--only", "msillm", "--from", source.parent, "--dest", dest, stdout=out
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    for line in lines:
        assert "licence: CC-BY-NC 4.0, non-commercial use only" in line
        assert "WEIGHTS_LICENSE" in line and "[copied from" in line
    assert sorted(path.name for path in dest.iterdir()) == sorted(
        file_name("msillm", q) for q in range(1, 7)
    )


def test_missing_weights_make_the_codec_unavailable_and_say_where_to_put_them(
    weights: Path, image: np.ndarray
) -> None:
    codec = MSILLMCodec()
    state = codec.availability()
    assert state == Availability(
        False,
        f"weights missing: no msillm level is in {weights}; put any of its files there (for "
        "quality 3: msillm_target_0.14bpp.ckpt), or run manage.py fetch_weights --only msillm "
        f"(licence {LICENCE})",
    )
    with pytest.raises(CodecUnavailable, match="no msillm level"):
        codec.rate_dial()
    with pytest.raises(CodecUnavailable) as raised:
        codec.encode(image, {"quality": 2})
    assert (
        f"weights missing: msillm_target_0.07bpp.ckpt, put it in {weights} (or run manage.py "
        "fetch_weights --only msillm; licence CC-BY-NC 4.0"
    ) in str(raised.value)


def test_each_level_is_usable_without_the_others(weights: Path, image: np.ndarray) -> None:
    write_weights(weights, "msillm", 1, seed=1)
    codec = MSILLMCodec()
    assert codec.availability().available
    assert codec.levels_present() == ((1,), {})
    dial = codec.rate_dial()
    assert dial is not None and dial.values == (1,)
    result = encode_at_bpp(codec, image, 0.5)
    assert result.params == {"quality": 1} and [v for v, _ in result.tried] == [1.0]
    with pytest.raises(CodecUnavailable, match=r"weights missing: msillm_target_0\.14bpp\.ckpt"):
        codec.encode(image, {"quality": 3})
    write_weights(weights, "msillm", 3, seed=3)
    dial = codec.rate_dial()
    assert dial is not None and dial.values == (1, 3)
    # the No-GAN codec has files of its own
    assert not MSILLMNoGANCodec().availability().available
    write_weights(weights, "msillm-nogan", 6, seed=6)
    assert MSILLMNoGANCodec().levels_present() == ((6,), {})


def test_round_trip_codes_the_models_own_strings_in_the_container(
    weights: Path, image: np.ndarray
) -> None:
    path = write_weights(weights, "msillm", 1, seed=1)
    codec = MSILLMCodec()
    data = codec.encode(image, {"quality": 1})
    first, second = codec.decode(data), codec.decode(data)
    assert first.shape == (64, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert bits_per_pixel(len(data), 64, 96) == 8 * len(data) / (64 * 96)

    container = unpack(data)
    header = container.header
    assert (header.model, header.model_version) == ("msillm_target_0.035bpp", RELEASE)
    assert header.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (header.height, header.width, header.pad_bottom, header.pad_right) == (64, 96, 0, 32)
    assert header.params == {"quality": 1} and header.device_type == device_kind("cpu")

    # The file holds its tables: two sections, the model's own y and z strings.
    net, computed = from_state_dict(torch.load(path, weights_only=True))
    assert not computed
    with torch.inference_mode():
        x, _, _ = pad_to(to_tensor(image), 64)
        strings = net.compress_strings(x)
        x_hat = net.decompress_strings(*strings, (64, 128))
    assert list(container.sections) == list(strings)
    assert np.array_equal(to_image(x_hat[..., :64, :96]), first)


def test_tables_computed_on_load_are_tagged_and_checked_by_the_decoder(
    weights: Path, image: np.ndarray
) -> None:
    write_weights(weights, "msillm", 2, seed=2, tables=False)
    codec = MSILLMCodec()
    data = codec.encode(image, {"quality": 2})
    container = unpack(data)
    assert len(container.sections) == 3 and len(container.sections[2]) == 4
    assert codec.decode(data).shape == (64, 96, 3)
    other = bytes(b ^ 0xFF for b in container.sections[2])
    forged = pack(container.header, [*container.sections[:2], other])
    differ = r"entropy-coder tables \(tag [0-9a-f]{8}\) differ from the ones computed here"
    with pytest.raises(CodecError, match=differ):
        codec.decode(forged)


def test_a_bitstream_made_with_other_weights_or_for_another_codec_is_refused(
    weights: Path, image: np.ndarray
) -> None:
    codec = MSILLMCodec()
    write_weights(weights, "msillm", 1, seed=1)
    data = codec.encode(image, {"quality": 1})
    header = unpack(data).header
    write_weights(weights, "msillm", 1, seed=99)  # the file is replaced
    with pytest.raises(CodecError, match=r"made with other weights of msillm_target_0\.035bpp"):
        codec.decode(data)
    nogan = dataclasses.replace(header, model="noganms_target_0.035bpp")
    with pytest.raises(CodecError, match="is not a msillm bitstream"):
        codec.decode(pack(nogan, unpack(data).sections))


def test_an_unusable_file_is_named_with_what_is_wrong(weights: Path, image: np.ndarray) -> None:
    codec = MSILLMCodec()
    (weights / file_name("msillm", 4)).write_bytes(b"a truncated download")
    with pytest.raises(CodecUnavailable, match="is not a readable state dict"):
        codec.encode(image, {"quality": 4})
    state = {k: v for k, v in tiny_state(5).items() if k != "decoder.blocks.4.weight"}
    torch.save(state, weights / file_name("msillm", 5))
    with pytest.raises(CodecUnavailable, match="not an MS-ILLM state dict"):
        codec.encode(image, {"quality": 5})


def test_listing_the_codecs_does_not_import_torch() -> None:
    script = (
        "import django, sys; django.setup()\n"
        "from perceptlab.codecs.registry import get_codec\n"
        "for slug in ('msillm', 'msillm-nogan'):\n"
        "    codec = get_codec(slug); codec.version(); codec.availability()\n"
        "print(sorted({'torch', 'compressai'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "perceptlab.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_released_size_file_round_trips_through_the_codec(
    weights: Path,
    released_size: MSILLM,
    golden: dict[str, np.ndarray],
    reference: dict[str, Any],
    image: np.ndarray,
) -> None:
    """The golden seeded model saved as ``msillm_target_0.14bpp.ckpt`` (≈ 726 MB) encodes the
    golden crop to the reference's strings and decodes to the reference's image."""
    torch.save(released_size.state_dict(), weights / file_name("msillm", 3))
    codec = MSILLMCodec()
    try:
        data = codec.encode(image, {"quality": 3})
        decoded = codec.decode(data)
    finally:
        msillm.forget_models()
    sections = unpack(data).sections
    assert len(sections) == 2  # the tables were saved with the weights
    if tables_sha256(released_size) == reference["tables_sha256"]:
        assert list(sections) == [golden["y_string"].tobytes(), golden["z_string"].tobytes()]
    expected = to_image(torch.from_numpy(golden["x_hat"]))
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
