"""The tunable importance-map GAN codec (Wu, Huang & Shen 2020) and its Huffman coder.

The model is the small configuration with random weights from a fixed seed: the mechanics
(exact round trip, rate tuned by n, deterministic decoding, the training losses and the
training loop) do not depend on training.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.codecs.base import CodecParamError, bits_per_pixel
from perceptlab.codecs.neural import checkpoints, huffman, tunable
from perceptlab.codecs.neural.codec import forget_models, load_model, pad_to, to_tensor
from perceptlab.codecs.neural.container import unpack
from perceptlab.codecs.neural.registered import TunableCodec
from perceptlab.codecs.neural.training import TrainOptions, train

pytestmark = pytest.mark.needs_torch

OFFSETS = (-2.0, -1.0, 0.0, 1.0, 2.0)


@pytest.fixture(scope="module")
def model() -> tunable.TunableNet:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return tunable.build(tunable.CONFIGS["small"]).eval()


@pytest.fixture(scope="module")
def crop(kodim23: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kodim23[128:256, 256:384])  # 128 x 128


def _round_trip(symbols: np.ndarray, alphabet: int) -> bytes:
    data = huffman.encode(symbols, alphabet)
    assert np.array_equal(huffman.decode(data, symbols.size, alphabet), symbols)
    return data


# --- Huffman coder ----------------------------------------------------------------------


def test_huffman_round_trips_random_symbols_near_the_entropy() -> None:
    rng = np.random.default_rng(1)
    for alphabet in (2, 3, 5, 17, 64):
        probabilities = rng.dirichlet(np.full(alphabet, 0.5))
        symbols = rng.choice(alphabet, size=5000, p=probabilities)
        data = _round_trip(symbols, alphabet)
        counts = np.bincount(symbols, minlength=alphabet)
        code = huffman.HuffmanCode.from_counts(counts)
        p = counts[counts > 0] / symbols.size
        entropy = float(-(p * np.log2(p)).sum())
        mean_length = float((counts * code.lengths).sum() / symbols.size)
        # a Huffman code is within one bit of the entropy per symbol (Huffman 1952)
        if np.count_nonzero(counts) > 1:
            assert entropy <= mean_length < entropy + 1
        # the stream is exactly the table plus the codes, padded to a byte
        assert len(data) == math.ceil((code.table_bits() + counts @ code.lengths) / 8)


def test_canonical_codes_follow_rfc1951() -> None:
    # RFC 1951 §3.2.2's example: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A … H
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4])
    codes = huffman.canonical_codes(lengths)
    assert codes.tolist() == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_huffman_lengths_are_limited_to_15_bits_keeping_a_complete_code() -> None:
    fibonacci = [1, 1]
    while len(fibonacci) < 24:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    counts = np.array(fibonacci)
    assert huffman.huffman_lengths(counts).max() == 23  # unlimited: a 23-bit code
    code = huffman.HuffmanCode.from_counts(counts)
    assert code.longest == huffman.MAX_LENGTH
    assert sum(2.0 ** -int(n) for n in code.lengths) == 1.0  # Kraft equality kept
    symbols = np.repeat(np.arange(counts.size), counts)
    np.random.default_rng(2).shuffle(symbols)
    _round_trip(symbols, counts.size)


def test_huffman_degenerate_inputs() -> None:
    # nothing to code: the table says "empty" in 4 bits
    assert huffman.encode(np.zeros(0, dtype=np.int64), 5) == b"\x00"
    assert huffman.decode(b"\x00", 0, 5).size == 0
    # one symbol: the table only, zero bits per symbol, whatever the count
    data = _round_trip(np.full(1000, 3), 5)
    assert len(data) == math.ceil((4 + 5 * 1) / 8)
    # one symbol repeated once and a 1-symbol alphabet
    _round_trip(np.array([0]), 1)
    # two symbols: one bit each
    assert len(_round_trip(np.array([0, 1] * 40), 2)) == math.ceil((4 + 2 * 1 + 80) / 8)


def test_termination_code_replaces_the_trailing_zeros() -> None:
    eob = 4
    assert huffman.terminated(np.array([2, 0, 1, 0, 0, 0]), 4).tolist() == [2, 0, 1, eob]
    assert huffman.terminated(np.array([2, 0, 1]), 4).tolist() == [2, 0, 1]  # no EOB needed
    assert huffman.terminated(np.zeros(7, dtype=np.int64), 4).tolist() == [eob]
    blocks = [
        np.array([2, 0, 1, 0, 0, 0]),
        np.array([3, 3, 1]),
        np.zeros(50, dtype=np.int64),  # only EOB: a one-symbol code, no code bits
        np.zeros(0, dtype=np.int64),  # an empty block writes nothing
        np.array([0, 0, 0, 1]),
        np.random.default_rng(3).integers(0, 4, size=500),
    ]
    writer = huffman.BitWriter()
    for block in blocks:
        huffman.encode_block(block, 4, writer)
    reader = huffman.BitReader(writer.to_bytes())
    for block in blocks:
        assert np.array_equal(huffman.decode_block(reader, block.size, 4), block)
    assert reader.remaining < 8  # only the padding of the last byte is left

    # the trailing zeros cost one EOB code instead of one code each
    long_tail = np.concatenate([np.array([1, 2, 3, 1, 2]), np.zeros(500, dtype=np.int64)])
    writer = huffman.BitWriter()
    huffman.encode_block(long_tail, 4, writer)
    assert writer.bit_length < 40


def test_damaged_streams_are_refused() -> None:
    symbols = np.random.default_rng(4).integers(0, 5, size=300)
    data = huffman.encode(symbols, 5)
    with pytest.raises(huffman.HuffmanError, match="truncated"):
        huffman.decode(data[: len(data) // 2], symbols.size, 5)
    # a table whose lengths are not a complete prefix code: L = 3, lengths 1, 3, 0, 0, 0
    writer = huffman.BitWriter()
    writer.write(3, 4)
    for length in (1, 3, 0, 0, 0):
        writer.write(length, 2)
    with pytest.raises(huffman.HuffmanError, match="damaged"):
        huffman.decode(writer.to_bytes(), 10, 5)
    with pytest.raises(huffman.HuffmanError, match="outside the alphabet"):
        huffman.encode(np.array([0, 5]), 5)


# --- the model --------------------------------------------------------------------------


def test_compress_then_decompress_recovers_the_training_time_masked_symbols(
    model: tunable.TunableNet, crop: np.ndarray
) -> None:
    x = to_tensor(crop)
    for offset in (-1.5, 0.0, 1.7):
        with torch.no_grad():
            out = model(x, offset)
        sections = model.compress(x, {"offset": offset})
        code, levels = model.decode_code(sections, (128, 128))
        assert np.array_equal(levels, out["levels"][0].numpy())
        trained = out["code"][0]
        assert torch.equal(trained, trained.round())  # exact integers in the forward pass
        assert np.array_equal(code, trained.long().numpy())
        # masked symbols are zero; channel k is kept where the level exceeds its group
        kept = model.kept(levels)
        assert np.array_equal(kept, out["mask"][0].numpy().astype(bool))
        assert not code[~kept].any()
        assert 0 < kept.sum() < kept.size
        assert code.min() >= 0 and code.max() <= 3


def test_higher_offset_keeps_more_channels_everywhere(
    model: tunable.TunableNet, crop: np.ndarray
) -> None:
    x = to_tensor(crop)
    with torch.no_grad():
        levels = [model.analyse(x, n)[1] for n in OFFSETS]
    for lower, higher in itertools.pairwise(levels):
        assert np.all(higher >= lower) and np.any(higher > lower)
    assert levels[0].min() >= 0 and levels[-1].max() <= model.groups


def test_bpp_from_the_bytes_rises_strictly_with_the_offset(
    model: tunable.TunableNet, kodim23: np.ndarray
) -> None:
    image = np.ascontiguousarray(kodim23[:, :512])  # 512 x 512 crop of a Kodak image
    curve = tunable.tunability_curve(model, [image], OFFSETS)
    assert curve.offsets == OFFSETS
    assert all(b > a for a, b in itertools.pairwise(curve.bpp))
    assert curve.per_image[0] == curve.bpp
    assert curve.slope > 0 and 0.9 < curve.r2 <= 1.0
    assert math.isclose(curve.offset_for(curve.slope * 0.5 + curve.intercept), 0.5)
    # bpp comes from whole bytes: 8 · bytes / pixels
    for bpp in curve.bpp:
        assert math.isclose(bpp * 512 * 512 / 8, round(bpp * 512 * 512 / 8), abs_tol=1e-6)


def test_two_decodes_are_identical(model: tunable.TunableNet, crop: np.ndarray) -> None:
    x, _, _ = pad_to(to_tensor(crop[:100, :90]), model.stride)
    sections = model.compress(x, {"offset": 0.5})
    with torch.inference_mode():
        first = model.decompress(sections, (x.shape[-2], x.shape[-1]), {})
        second = model.decompress(sections, (x.shape[-2], x.shape[-1]), {})
    assert first.shape == (1, 3, 112, 96)
    assert torch.equal(first, second)
    assert first.min() >= 0 and first.max() <= 1


def test_wrong_section_count_is_refused(model: tunable.TunableNet) -> None:
    with pytest.raises(ValueError, match="2 sections"):
        model.decompress([b""], (64, 64), {})


def test_training_losses_are_finite_and_reach_every_part() -> None:
    torch.manual_seed(0)
    system = tunable.training_system(tunable.CONFIGS["small"])
    x = torch.rand(2, 3, 64, 64)
    start = tunable.CONFIGS["small"].gan_start_step
    assert not system.gan_active(start - 1) and system.gan_active(start)
    warm_up, warm_logs, _ = system.generator_loss(x, start - 1)
    assert torch.isfinite(warm_up) and "g_adv" not in warm_logs
    loss, logs, cache = system.generator_loss(x, start)
    assert torch.isfinite(loss) and math.isfinite(logs["mse"]) and math.isfinite(logs["g_adv"])
    assert -2.0 <= logs["offset"] <= 2.0 and 0.0 <= logs["kept"] <= 1.0
    loss.backward()
    codec = system.codec
    for part in (codec.encoder, codec.masker, codec.generator):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), type(part).__name__
        assert all(torch.isfinite(g).all() for g in grads)
    # the masker learns only through the ramp gradient of the mask
    last = codec.masker.body[-1]
    assert isinstance(last, torch.nn.Conv2d) and float(last.weight.grad.abs().sum()) > 0
    # D's step trains D only: x̂ is detached in the cache
    system.zero_grad(set_to_none=True)
    d_loss, d_logs = system.discriminator_loss(x, cache, start)
    assert torch.isfinite(d_loss) and math.isfinite(d_logs["d_loss"])
    d_loss.backward()
    assert all(p.grad is not None for p in system.discriminator.parameters())
    assert all(p.grad is None for p in codec.parameters())
    assert float(codec.aux_loss()) == 0.0 and codec.update(force=True) is False
    description = system.description()
    assert description["parameters"] < 3_000_000


@pytest.fixture
def neural_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.PERCEPTLAB_NEURAL_DIR = tmp_path
    forget_models()
    yield tmp_path
    forget_models()


def test_a_short_training_run_gives_a_checkpoint_the_codec_uses(
    neural_dir: Path, kodim01: np.ndarray, kodim23: np.ndarray
) -> None:
    data = neural_dir / "data"
    data.mkdir()
    Image.fromarray(kodim01[:96, :128]).save(data / "a.png")
    Image.fromarray(kodim23[100:196, 200:296]).save(data / "b.png")
    path = train(
        TrainOptions(
            codec="tunable", data=data, steps=2, crop=64, batch=2, out=neural_dir, progress=False
        ),
        echo=lambda _: None,
    )
    checkpoint = checkpoints.load(path, family="tunable")
    assert checkpoint.name == "tunable-small" and checkpoint.card["steps"] == 2
    assert path.stat().st_size <= 6_000_000  # fp16 weights of < 3 M parameters

    codec = TunableCodec()
    assert codec.dial is not None and codec.dial.name == "offset" and codec.dial.increasing
    assert codec.availability().available
    image = np.ascontiguousarray(kodim23[200:270, 300:390])  # 70 x 90: needs padding
    bitstream = codec.encode(image, {"model": "tunable-small", "offset": 1.0})
    header = unpack(bitstream).header
    assert header.params == {"offset": 1.0}
    assert (header.pad_bottom, header.pad_right) == (10, 6)
    decoded = codec.decode(bitstream)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(codec.decode(bitstream), decoded)

    # the codec's bytes are what tunability_curve counts
    model, _ = load_model("tunable", "tunable-small", "cpu")
    curve = tunable.tunability_curve(model, [image], [-1.0, 1.0])
    assert curve.bpp[1] == bits_per_pixel(len(bitstream), 70, 90)
    low = codec.encode(image, {"model": "tunable-small", "offset": -1.0})
    assert curve.bpp[0] == bits_per_pixel(len(low), 70, 90)
    with pytest.raises(CodecParamError):
        codec.validate_params({"offset": 2.5})
