"""The GLLMM conditional entropy model (Fu et al., IEEE TIP 2023): its discretised likelihood
against scipy's distributions, and its per-element rANS coding against the likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from perceptlab.codecs.neural.gllmm import (
    COMPONENTS,
    PARAMS_PER_CHANNEL,
    PRECISION,
    GaussianLaplacianLogisticMixtureConditional,
    gaussian_cdf,
    laplace_cdf,
    logistic_cdf,
)

pytestmark = pytest.mark.needs_torch

SCIPY_FAMILIES = (stats.norm, stats.laplace, stats.logistic)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def random_params(
    channels: int, height: int, width: int, seed: int, *, spread: float = 3.0
) -> torch.Tensor:
    """(1, 30·C, H, W) parameters: means N(0, spread²), |scales| in [0.05, 4] (some under the
    0.11 bound), weight and family logits N(0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    grouped = torch.randn(1, PARAMS_PER_CHANNEL, channels, height, width, generator=generator)
    shape = (1, COMPONENTS, channels, height, width)
    grouped[:, 1 : 3 * COMPONENTS : 3] = spread * torch.randn(shape, generator=generator)
    grouped[:, 2 : 3 * COMPONENTS : 3] = 0.05 + 3.95 * torch.rand(shape, generator=generator)
    return grouped.reshape(1, PARAMS_PER_CHANNEL * channels, height, width)


def sample_mixture(
    model: GaussianLaplacianLogisticMixtureConditional,
    params: torch.Tensor,
    channels: int,
    seed: int,
) -> torch.Tensor:
    """One draw of y from the mixture at every element (component by weight, then the family)."""
    generator = torch.Generator().manual_seed(seed)
    means, scales, weights = model.mixture(params, channels)
    flat = weights.movedim(1, -1).reshape(-1, COMPONENTS)
    chosen = torch.multinomial(flat, 1, generator=generator).reshape(weights[:, 0].shape)
    pick = chosen.unsqueeze(1)
    mean = means.gather(1, pick).squeeze(1)
    scale = scales.gather(1, pick).squeeze(1)
    uniform = torch.rand(mean.shape, generator=generator, dtype=torch.float64).clamp(
        1e-12, 1 - 1e-12
    )
    standard = torch.where(
        chosen < 3,
        torch.from_numpy(stats.norm.ppf(uniform.numpy())),
        torch.where(
            chosen < 6,
            torch.from_numpy(stats.laplace.ppf(uniform.numpy())),
            torch.from_numpy(stats.logistic.ppf(uniform.numpy())),
        ),
    )
    return (mean + scale * standard.float()).float()


def single_component_params(
    component: int, mean: float, scale: float, channels: int = 1
) -> torch.Tensor:
    """Parameters (float64) whose mixture is one component: the other weights are e^−100."""
    grouped = torch.zeros(1, PARAMS_PER_CHANNEL, channels, 1, 1, dtype=torch.float64)
    family = component // 3
    grouped[:, 0 : 3 * COMPONENTS : 3] = -100.0
    grouped[:, 3 * component] = 0.0
    grouped[:, 3 * component + 1] = mean
    grouped[:, 3 * component + 2] = scale
    grouped[:, 3 * COMPONENTS :] = -100.0
    grouped[:, 3 * COMPONENTS + family] = 0.0
    return grouped.reshape(1, -1, 1, 1)


def test_standard_cdfs_match_scipy() -> None:
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    for cdf, reference in zip(
        (gaussian_cdf, laplace_cdf, logistic_cdf), SCIPY_FAMILIES, strict=True
    ):
        np.testing.assert_allclose(
            cdf(x).numpy(), reference.cdf(x.numpy()), rtol=1e-12, atol=1e-300
        )


@pytest.mark.parametrize("component", range(COMPONENTS))
def test_each_component_is_the_scipy_distribution_discretised(component: int) -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    mean, scale = 1.3, 2.7
    params = single_component_params(component, mean, scale)
    values = torch.arange(-40, 41, dtype=torch.float64).reshape(-1, 1, 1, 1)
    likelihood = model.likelihood(values, params.expand(values.shape[0], -1, -1, -1))
    family = SCIPY_FAMILIES[component // 3]
    v = values.flatten().numpy()
    expected = family.cdf(v + 0.5, loc=mean, scale=scale) - family.cdf(
        v - 0.5, loc=mean, scale=scale
    )
    np.testing.assert_allclose(likelihood.flatten().numpy(), expected, rtol=1e-9, atol=1e-15)


def test_scales_are_bounded_below_at_0_11() -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    params = single_component_params(4, 0.0, -0.02)  # |s| = 0.02 → 0.11
    likelihood = model.likelihood(torch.zeros(1, 1, 1, 1, dtype=torch.float64), params)
    expected = stats.laplace.cdf(0.5, scale=0.11) - stats.laplace.cdf(-0.5, scale=0.11)
    assert float(likelihood) == pytest.approx(expected, rel=1e-8)  # the bound is float32 0.11


def test_mixture_weights_are_the_official_product_of_softmaxes() -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    params = random_params(2, 3, 3, seed=1)
    _, _, weights = model.mixture(params, 2)
    grouped = params.reshape(1, PARAMS_PER_CHANNEL, 2, 3, 3)
    logits = grouped[:, 0 : 3 * COMPONENTS : 3].reshape(1, 3, 3, 2, 3, 3)
    family = torch.softmax(grouped[:, 3 * COMPONENTS :], dim=1)
    within = torch.softmax(logits, dim=2)
    for f in range(3):
        for j in range(3):
            torch.testing.assert_close(weights[:, 3 * f + j], within[:, f, j] * family[:, f])
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(1, 2, 3, 3))


def test_likelihoods_over_a_wide_integer_support_sum_to_one() -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    params = random_params(4, 3, 3, seed=2, spread=5.0)
    values = torch.arange(-300, 301, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 4, 3, 3)
    likelihood = model.likelihood(values, params.expand(values.shape[0], -1, -1, -1))
    assert (likelihood >= 0).all()
    torch.testing.assert_close(likelihood.sum(dim=0), torch.ones(4, 3, 3), atol=1e-4, rtol=0)


def test_training_likelihood_is_noisy_bounded_and_differentiable() -> None:
    model = GaussianLaplacianLogisticMixtureConditional().train()
    params = random_params(3, 4, 4, seed=3).requires_grad_(True)
    y = 20 * torch.randn(1, 3, 4, 4)  # far from most means: some likelihoods hit the bound
    noisy, likelihood = model(y, params)
    assert 0 < (noisy - y).abs().max() <= 0.5
    assert likelihood.min() >= 1e-9 and likelihood.max() <= 1 + 1e-6
    (-torch.log2(likelihood).sum()).backward()
    assert params.grad is not None and torch.isfinite(params.grad).all()
    assert params.grad.abs().sum() > 0


def test_every_cdf_table_is_a_valid_16_bit_cdf_with_an_escape_slot() -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    tables = model.coding_tables(random_params(8, 6, 6, seed=4), 8)
    assert sorted(tables.indexes) == list(range(8 * 6 * 6))
    for cdf, length in zip(tables.cdfs, tables.lengths, strict=True):
        row = np.asarray(cdf[:length])
        assert row[0] == 0 and row[-1] == 2**PRECISION
        assert (np.diff(row) >= 1).all()  # every symbol and the escape can be coded


@pytest.mark.parametrize("step", [1.0, 2.0])
def test_coded_length_of_a_sampled_latent_is_within_one_percent_of_the_estimate(
    step: float,
) -> None:
    model = GaussianLaplacianLogisticMixtureConditional().eval()
    channels, height, width = 16, 32, 48  # 24,576 elements
    params = random_params(channels, height, width, seed=5)
    y = sample_mixture(model, params, channels, seed=6)
    data = model.compress(y, params, step)
    estimate = model.estimated_bits(y, params, step)
    assert 8 * len(data) == pytest.approx(estimate, rel=0.01)
    decoded = model.decompress(data, params, (1, channels, height, width), step)
    assert torch.equal(decoded, torch.round(y / step))


def test_decoding_reproduces_round_y_exactly_including_out_of_support_values() -> None:
    model = GaussianLaplacianLogisticMixtureConditional().eval()
    channels, height, width = 4, 8, 8
    params = random_params(channels, height, width, seed=7, spread=1.0)
    y = sample_mixture(model, params, channels, seed=8)
    outliers = {(0, 0, 0): 1000.4, (1, 2, 3): -777.6, (2, 5, 5): 70_000.0, (3, 7, 7): -2.0e6}
    for (c, h, w), value in outliers.items():
        y[0, c, h, w] = value
    tables = model.coding_tables(params, channels)
    for c, h, w in outliers:
        row = tables.indexes[(c * height + h) * width + w]
        symbol = round(float(y[0, c, h, w])) - tables.offsets[row]
        assert not 0 <= symbol < tables.lengths[row] - 2  # coded through the escape
    data = model.compress(y, params)
    decoded = model.decompress(data, params, (1, channels, height, width))
    assert torch.equal(decoded, torch.round(y))
    again = model.decompress(data, params, (1, channels, height, width))
    assert torch.equal(again, decoded)


def test_values_beyond_the_codable_range_are_refused() -> None:
    model = GaussianLaplacianLogisticMixtureConditional()
    params = random_params(1, 2, 2, seed=9)
    y = torch.zeros(1, 1, 2, 2)
    y[0, 0, 0, 0] = 1e9
    with pytest.raises(ValueError, match="cannot be coded"):
        model.compress(y, params)
