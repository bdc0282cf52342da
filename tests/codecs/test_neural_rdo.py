"""The improved-RDO GAN codec (seed 000: Xia, Jin et al. 2023) with the GLLMM entropy model.

Mechanics only, on the small config with seed-fixed random weights: the bitstream decodes to
exactly the training-time symbols, decoding is deterministic, the coded length matches the
likelihood estimate, the losses train, and a checkpoint from the training loop serves the
registered codec class.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.codecs.base import bits_per_pixel
from perceptlab.codecs.neural import codec as neural_codec
from perceptlab.codecs.neural import rdo
from perceptlab.codecs.neural.checkpoints import Checkpoint, load
from perceptlab.codecs.neural.codec import to_tensor
from perceptlab.codecs.neural.registered import RDOCodec
from perceptlab.codecs.neural.training import TrainOptions, train

pytestmark = pytest.mark.needs_torch


@pytest.fixture(scope="module")
def model() -> rdo.RDOGAN:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = rdo.build(rdo.CONFIGS["small"]).eval()
    net.update(force=True)
    return net


@pytest.fixture(scope="module")
def crop256(kodim23: np.ndarray) -> torch.Tensor:
    return to_tensor(kodim23[100:356, 200:456])


@pytest.fixture
def no_weights(settings: Any, tmp_path: Path) -> Path:
    """An empty ImageNet weights folder: DISTS is unavailable, so MS-SSIM stands in."""
    folder = tmp_path / "weights"
    folder.mkdir()
    settings.PERCEPTLAB_WEIGHTS_DIR = folder
    return folder


def test_configs_keep_hific_sizes_and_add_the_seed_distortion() -> None:
    from perceptlab.codecs.neural import hific

    for name in ("small", "paper"):
        config = rdo.CONFIGS[name]
        for key in ("encoder_channels", "latent_channels", "hyper_channels", "generator_blocks"):
            assert getattr(config, key) == getattr(hific.CONFIGS[name], key)
        assert config.perceptual == "dists" and config.ms_ssim_weight > 0
        assert config.sparsity_weight == 0


def test_the_hyper_synthesis_gives_30_parameters_per_latent_channel(
    model: rdo.RDOGAN, crop256: torch.Tensor
) -> None:
    with torch.inference_mode():
        y = model.encoder(crop256)
        z_hat, _ = model.entropy_bottleneck(model.hyper_analysis(y), training=False)
        params = model.mixture_parameters(z_hat)
        means, scales, _ = model.mixture_conditional.mixture(params, 64)
        location, shape = model.hyper_location(z_hat), model.hyper_shape(z_hat)
    assert params.shape == (1, 30 * 64, 16, 16) and y.shape == (1, 64, 16, 16)
    # the location branch gives the 9 means, the shape branch first the 9 scales
    assert torch.equal(means, location.reshape(1, 9, 64, 16, 16))
    assert torch.equal(scales, shape[:, : 9 * 64].abs().clamp(min=0.11).reshape(1, 9, 64, 16, 16))
    assert not hasattr(model, "gaussian_conditional")  # HiFiC's single Gaussian is gone


def test_decoded_symbols_equal_the_training_time_rounded_symbols(
    model: rdo.RDOGAN, crop256: torch.Tensor
) -> None:
    with torch.inference_mode():
        symbols = model(crop256)["y_symbols"]
        sections = model.compress(crop256, {})
        decoded = model.decompress_symbols(sections, (256, 256), {})
    assert torch.equal(decoded, symbols)
    assert symbols.abs().sum() > 0  # not a trivial all-zero latent


def test_two_decodes_of_the_same_bytes_are_identical(
    model: rdo.RDOGAN, crop256: torch.Tensor
) -> None:
    with torch.inference_mode():
        sections = model.compress(crop256, {})
        first = model.decompress(sections, (256, 256), {})
        second = model.decompress(sections, (256, 256), {})
    assert first.shape == crop256.shape
    assert torch.equal(first, second)


def test_coded_length_is_within_one_percent_of_the_likelihood_estimate(
    model: rdo.RDOGAN, crop256: torch.Tensor
) -> None:
    with torch.inference_mode():
        sections = model.compress(crop256, {})
        y_bits, z_bits = model.estimated_bits(crop256)
    assert 8 * len(sections[0]) == pytest.approx(y_bits, rel=0.01)
    assert 8 * sum(map(len, sections)) == pytest.approx(y_bits + z_bits, rel=0.01)


def test_a_larger_quantisation_step_codes_round_y_over_step_in_fewer_bytes(
    model: rdo.RDOGAN, crop256: torch.Tensor
) -> None:
    with torch.inference_mode():
        fine = model.compress(crop256, {"qstep": 0.5})
        coarse = model.compress(crop256, {"qstep": 2.0})
        decoded = model.decompress_symbols(coarse, (256, 256), {"qstep": 2.0})
        expected = model.symbols(crop256, 2.0)
        y_bits, _ = model.estimated_bits(crop256, 2.0)
    assert len(coarse[0]) < len(fine[0])
    assert torch.equal(decoded, expected)
    # ~110 bytes: rANS's flushed 32-bit state is more than 1 % here
    assert 8 * len(coarse[0]) == pytest.approx(y_bits, rel=0.01, abs=40)


def test_one_generator_and_discriminator_step_is_finite_with_gradients(
    no_weights: Path, kodim23: np.ndarray
) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(1)
    system = rdo.training_system(rdo.CONFIGS["small"].with_overrides({"gan_start_step": 0}))
    system.train()
    x = torch.cat([to_tensor(kodim23[0:64, 0:64]), to_tensor(kodim23[300:364, 400:464])])
    assert system.gan_active(0)
    loss, logs, cache = system.generator_loss(x, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert {"bpp", "bpp_hard", "mse255", "ms_ssim_loss", "g_adv", "loss"} <= set(logs)
    for name in ("encoder", "hyper_location", "hyper_shape", "generator_tail"):
        grads = [p.grad for p in getattr(system.codec, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(float(g.abs().sum()) > 0 for g in grads if g is not None), name
    d_loss, d_logs = system.discriminator_loss(x, cache, 0)
    d_loss.backward()
    assert torch.isfinite(d_loss) and d_logs["d_loss"] == pytest.approx(d_loss.item())
    d_grads = [p.grad for p in system.discriminator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in d_grads)
    card = system.description()
    assert card["perceptual"] == "ms-ssim" and "DISTS" in card["perceptual_note"].upper()
    assert any("in place of DISTS" in term for term in card["loss_terms"])


@pytest.fixture
def trained_dir(
    settings: Any, tmp_path: Path, no_weights: Path, kodim01: np.ndarray, kodim23: np.ndarray
) -> Iterator[Path]:
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(kodim01[100:196, 200:328]).save(data / "a.png")
    Image.fromarray(kodim23[200:296, 300:428]).save(data / "b.png")
    out = tmp_path / "neural"
    options = TrainOptions(
        codec="rdo-gllmm", data=data, steps=2, crop=64, batch=2, out=out, progress=False
    )
    train(options, echo=lambda message: None)
    settings.PERCEPTLAB_NEURAL_DIR = out
    yield out
    neural_codec.forget_models()


def test_a_two_step_training_run_writes_a_checkpoint_the_codec_encodes_with(
    trained_dir: Path, kodim23: np.ndarray
) -> None:
    checkpoint: Checkpoint = load(trained_dir / "rdo-gllmm-small.pt", family="rdo")
    assert checkpoint.card["steps"] == 2 and checkpoint.card["perceptual"] == "ms-ssim"
    codec = RDOCodec()
    assert codec.availability().available
    image = np.ascontiguousarray(kodim23[:72, :100])  # padded to 128×128 inside
    bitstream = codec.encode(image, {})
    decoded = codec.decode(bitstream)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.array_equal(codec.decode(bitstream), decoded)
    assert 0 < bits_per_pixel(len(bitstream), 72, 100) < 24
    coarse = codec.encode(image, {"qstep": 4.0})
    assert len(coarse) < len(bitstream)
