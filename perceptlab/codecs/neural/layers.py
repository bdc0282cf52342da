"""Building blocks shared by the GAN codecs (imported only where torch is wanted).

- :class:`ChannelNorm` — HiFiC's normalisation (Mentzer et al. 2020, §3.1): per pixel, mean
  and variance over the channels, learned per-channel scale and offset. Unlike instance norm
  it does not depend on the image size, so a model trained on crops runs on full images.
- :class:`ResidualBlock` — conv3×3, norm, ReLU, conv3×3, norm, plus the input.
- :class:`PatchDiscriminator` / :class:`MultiScaleDiscriminator` — pix2pixHD's PatchGAN at
  several scales (Wang et al. 2018), used by GC (Agustsson et al. 2019, §3) and the tunable
  codec; they return every intermediate feature map for the feature-matching loss.
- :class:`ConditionalDiscriminator` — HiFiC's conditional PatchGAN with spectral norm: the
  latent, upsampled to the image size, is concatenated with the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

if TYPE_CHECKING:
    from perceptlab.codecs.neural.family import FamilyConfig


class ChannelNorm(nn.Module):
    """x ← γ · (x − mean_c) / sqrt(var_c + ε) + β, statistics over channels per pixel."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=True)
        return self.gamma * (x - mean) * torch.rsqrt(var + self.eps) + self.beta


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "channel":
        return ChannelNorm(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str = "channel") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_norm_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int, norm: str
) -> list[nn.Module]:
    pad = kernel // 2
    return [
        nn.ReflectionPad2d(pad) if stride == 1 else nn.ZeroPad2d(pad),
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


def up_norm_relu(in_channels: int, out_channels: int, norm: str) -> list[nn.Module]:
    """×2 transposed conv 3×3 (as HiFiC's and GC's generators)."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


class PatchDiscriminator(nn.Module):
    """PatchGAN: 4×4 convs, stride 2 then 1, LeakyReLU 0.2, instance norm after the first."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], norm: str = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(widths):
            stride = 2 if index < len(widths) - 1 else 1
            block: list[nn.Module] = [nn.Conv2d(previous, width, 4, stride=stride, padding=2)]
            if index > 0 and norm != "none":
                block.append(norm_layer(norm, width))
            block.append(nn.LeakyReLU(0.2, inplace=True))
            layers.append(nn.Sequential(*block))
            previous = width
        layers.append(nn.Conv2d(previous, 1, 4, stride=1, padding=2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features  # the last one is the logits map


class MultiScaleDiscriminator(nn.Module):
    """The same PatchGAN on x, x↓2, x↓4 … (3×3 average pooling, stride 2)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], scales: int = 3) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, widths) for _ in range(scales)
        )

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class ConditionalDiscriminator(nn.Module):
    """HiFiC's D(x, y): sg(y) → conv3×3(12) + LReLU → nearest ×``factor`` → concat with x →
    4×4 convs (stride 2, 2, 2, 1) → 1-channel logits map; spectral norm on every conv."""

    def __init__(
        self, latent_channels: int, factor: int, widths: tuple[int, ...] = (64, 128, 256, 512)
    ) -> None:
        super().__init__()
        sn: Callable[[nn.Module], nn.Module] = spectral_norm
        self.factor = factor
        self.context = sn(nn.Conv2d(latent_channels, 12, 3, padding=1))
        layers: list[nn.Module] = []
        previous = 3 + 12
        for index, width in enumerate(widths):
            stride = 2 if index < len(widths) - 1 else 1
            layers += [
                sn(nn.Conv2d(previous, width, 4, stride=stride, padding=1 if stride == 2 else 2)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            previous = width
        layers.append(sn(nn.Conv2d(previous, 1, 4, stride=1, padding=1)))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        context = F.leaky_relu(self.context(latent.detach()), 0.2)
        context = F.interpolate(context, scale_factor=self.factor, mode="nearest")
        return self.body(torch.cat([x, context], dim=1))  # type: ignore[no-any-return]


class TrainingSystem(nn.Module):
    """What the training loop (:mod:`.training`) drives, the same for every family: the codec
    (a CompressAI ``CompressionModel``: its ``aux_loss`` and ``update`` are called), its
    discriminator, and the two losses of a GAN step."""

    config: FamilyConfig  # the family's Config
    codec: Any  # the family's CompressionModel subclass
    discriminator: nn.Module

    def gan_active(self, step: int) -> bool:
        """Whether the GAN terms (and the discriminator's step) are on at ``step``."""
        raise NotImplementedError

    def generator_loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        """(loss, logged values, what the discriminator step reuses) for batch ``x``;
        ``labels``: the semantic label maps of a selective (SC) model, else None."""
        raise NotImplementedError

    def discriminator_loss(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def description(self) -> dict[str, Any]:
        """The loss terms and settings as the model card states them."""
        raise NotImplementedError
