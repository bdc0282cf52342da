"""HiFiC: the coded symbols are the training-time symbols, Δ moves the rate, the losses."""

from __future__ import annotations

import pytest
import torch
from neuralkit import TINY_HIFIC, kodak

from perceptlab.codecs.neural import hific, losses
from perceptlab.codecs.neural.codec import pad_to, to_tensor
from perceptlab.codecs.neural.layers import ChannelNorm


@pytest.fixture(scope="module")
def model() -> hific.HiFiC:
    torch.manual_seed(0)
    net = hific.build(hific.Config.of(TINY_HIFIC)).eval()
    net.update(force=True)
    return net


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    x, _, _ = pad_to(to_tensor(kodak(1)[:120, :200]), hific.HiFiC.stride)
    return x


def test_decoded_latent_equals_the_training_time_quantised_latent(model, image) -> None:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        out = model(image)  # eval mode: z rounded around its medians, ŷ = round(y − μ) + μ
        sections = model.compress(image, {"qstep": 1.0})
        decoded = model.decode_latent(sections, image.shape[-2:], {"qstep": 1.0})
        assert torch.equal(decoded, out["y_hat"])
        assert torch.equal(model.symbols(image), out["y_symbols"])


def test_two_decodes_of_the_same_bytes_are_identical(model, image) -> None:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        sections = model.compress(image, {})
        first = model.decompress(sections, image.shape[-2:], {})
        second = model.decompress(sections, image.shape[-2:], {})
    assert torch.equal(first, second)
    assert first.shape == image.shape and 0.0 <= float(first.min()) <= float(first.max()) <= 1.0


def test_a_larger_quantisation_step_codes_fewer_bytes_and_decodes_its_symbols(  # type: ignore[no-untyped-def]
    model, image
) -> None:
    sizes = []
    with torch.inference_mode():
        for step in (0.5, 1.0, 2.0, 4.0):
            sections = model.compress(image, {"qstep": step})
            sizes.append(len(sections[0]))
            decoded = model.decode_latent(sections, image.shape[-2:], {"qstep": step})
            z_hat, _ = model.entropy_bottleneck(model.hyper_analysis(model.encoder(image)))
            means = model.hyper_means(z_hat)
            expected = model.symbols(image, step) * step + means
            assert torch.allclose(decoded, expected, atol=1e-5)
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]


def test_a_bitstream_with_missing_sections_is_refused(model, image) -> None:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        sections = model.compress(image, {})
        with pytest.raises(ValueError, match="2 sections"):
            model.decompress(sections[:1], image.shape[-2:], {})


def test_rate_weight_follows_the_official_rate_target_schedule() -> None:
    system = hific.HiFiCSystem(
        hific.Config.of({**TINY_HIFIC, "warmup_steps": 10, "rate_target": 0.3})
    )
    assert system.rate_weight(0.5, step=100) == pytest.approx(2.0)  # C/λ_a above the target
    assert system.rate_weight(0.1, step=100) == pytest.approx(2**-6)  # C/λ_b below it
    # warm-up: target ×0.20/0.14 (0.4286) and both λ doubled (rate weight halved)
    assert system.rate_weight(0.40, step=0) == pytest.approx(2**-7)
    assert system.rate_weight(0.45, step=0) == pytest.approx(1.0)


def test_the_sparsity_penalty_counts_values_away_from_zero() -> None:
    assert float(hific.sparsity_penalty(torch.zeros(10))) == 0.0
    assert float(hific.sparsity_penalty(torch.full((10,), 3.0))) == pytest.approx(1.0, abs=1e-7)
    half = hific.sparsity_penalty(torch.tensor([0.0, 0.5]))
    assert float(half) == pytest.approx((1 - torch.exp(torch.tensor(-0.5))).item() / 2)


@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_one_training_step_gives_finite_losses_and_gradients(sparsity: float) -> None:
    torch.manual_seed(1)
    system = hific.training_system(hific.Config.of({**TINY_HIFIC, "sparsity_weight": sparsity}))
    x = torch.rand(2, 3, 64, 64)
    loss, logs, cache = system.generator_loss(x, step=5)
    loss.backward()
    assert torch.isfinite(loss) and logs["bpp"] > 0 and "g_adv" in logs
    assert ("sparsity" in logs) == (sparsity > 0)
    grads = [p.grad for p in system.codec.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    d_loss, d_logs = system.discriminator_loss(x, cache, step=5)
    d_loss.backward()
    assert torch.isfinite(d_loss) and d_logs["d_loss"] > 0
    assert system.description()["perceptual"] == "ms-ssim"


def test_the_first_stage_trains_without_the_discriminator() -> None:
    system = hific.training_system(hific.Config.of({**TINY_HIFIC, "gan_start_step": 100}))
    _, logs, _ = system.generator_loss(torch.rand(1, 3, 64, 64), step=0)
    assert not system.gan_active(0) and system.gan_active(100) and "g_adv" not in logs


def test_channel_norm_normalises_over_channels_per_pixel() -> None:
    x = torch.randn(2, 16, 5, 7) * 3 + 2
    y = ChannelNorm(16)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 5, 7), atol=1e-5)
    assert torch.allclose(y.var(dim=1), torch.ones(2, 5, 7), atol=1e-3)


def test_chroma_mse_ignores_luma_and_counts_colour() -> None:
    torch.manual_seed(2)
    x = torch.rand(2, 3, 16, 16) * 0.8 + 0.1
    brighter = x + 0.1  # the same change on R, G and B: luma only
    assert float(losses.chroma_mse(brighter, x)) == pytest.approx(0.0, abs=1e-6)
    grey = x.mean(dim=1, keepdim=True).expand_as(x)  # the colours taken out
    assert float(losses.chroma_mse(grey, x)) > 10.0
    tinted = x + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)  # warmer, 25.5 levels on R, B
    assert float(losses.chroma_mse(tinted, x)) == pytest.approx(
        (25.5 * 0.5 + 25.5 * 0.168736) ** 2 / 2 + (25.5 * 0.5 + 25.5 * 0.081312) ** 2 / 2, rel=1e-4
    )


def test_the_chroma_weight_adds_its_term_and_pulls_a_grey_decoder_towards_the_colours() -> None:
    """hific-small, trained without it, decoded every image in one tint (issue 14): its loss
    must be able to weigh the chroma of x̂, and that term's gradient must push the output
    layer towards the colours when the reconstruction lacks them."""
    x = torch.zeros(1, 3, 64, 64)
    x[:, 0, :, :32] = 0.8  # a red half and a blue half: strong, opposite chroma
    x[:, 2, :, 32:] = 0.8
    results = {}
    for weight in (0.0, 4.0):
        torch.manual_seed(3)
        system = hific.training_system(
            hific.Config.of({**TINY_HIFIC, "gan_weight": 0.0, "chroma_weight": weight})
        )
        loss, logs, cache = system.generator_loss(x, step=5)
        loss.backward()
        results[weight] = (loss, logs, cache, system.codec.generator_tail[-1].bias.grad)
    loss0, logs0, cache, grad0 = results[0.0]
    loss4, logs4, _, grad4 = results[4.0]
    chroma = losses.chroma_mse(cache["x_hat"], x)
    assert "chroma255" not in logs0 and logs4["chroma255"] == pytest.approx(float(chroma))
    expected = hific.RATE_SCALE * hific.MSE_WEIGHT * 4.0 * float(chroma)
    assert float((loss4 - loss0).detach()) == pytest.approx(expected, rel=1e-4)
    assert grad0 is not None and grad4 is not None
    # the chroma term's own gradient on G's output bias is −(∂/∂b) of a colour shift towards
    # x's mean chroma: descending it moves the output's mean (Cb, Cr) towards x's
    rows = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    step_direction = -(grad4 - grad0)
    mean_error = (x - cache["x_hat"]).mean(dim=(0, 2, 3))
    assert float((rows @ step_direction) @ (rows @ mean_error)) > 0
