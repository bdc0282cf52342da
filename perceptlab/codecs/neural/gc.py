"""GC — generative compression of Agustsson, Tschannen, Mentzer, Timofte & Van Gool,
"Generative Adversarial Networks for Extreme Learned Image Compression" (ICCV 2019,
arXiv 1804.02958), with the selective mode (SC) as an optional input path.

Architecture (paper §3 and appendix; both public ports agree):

- E: c7s1-60, d120, d240, d480, d960, c3s1-C (instance norm + ReLU) → w with C channels at
  H/16 × W/16.
- q: L = 5 centres {−2, −1, 0, 1, 2}; forward to the nearest centre, backward through the soft
  assignment Σ_l c_l·softmax(−σ(w − c_l)²) (Mentzer et al. 2018), σ = 1.
- G: c3s1-960, 9 residual blocks, u480, u240, u120, u60, c7s1-3 with tanh.
- D: multi-scale PatchGAN (x, x↓2, x↓4), LSGAN.
- No entropy term: the rate is bounded by dim(ŵ)·log₂L, bpp = C·log₂5/256 (C = 2, 4, 8, 16 →
  0.0181, 0.0363, 0.0726, 0.1451). The bitstream codes every symbol with rANS under a static
  uniform distribution over the five centres, so it lands on that bound (plus a few bytes of
  coder flush and the container header).

Loss (paper eq. 5 and the pix2pixHD terms it uses): LSGAN + λ_MSE·MSE + λ_FM·feature matching
+ λ_P·perceptual, with MSE on images in [−1, 1]. The paper's perceptual term is VGG19
(pix2pixHD); ImageNet VGG weights are not available here, so LPIPS is used when present and
1 − MS-SSIM otherwise (the checkpoint says which). ``gan_start_step`` allows an MSE-only
warm-up before the adversarial terms (0 in the paper configuration).

SC (selective generative compression): with ``semantic_classes`` > 0 the model gets a label
map s (one-hot) and a preservation mask m. F(s), an encoder of E's structure, feeds G next to
ŵ; ŵ is zeroed where m (downsampled to the latent grid) is 0 and only the preserved symbols
are coded, plus the mask (one bit per latent position) and the label map (zlib-compressed
class indices). No dataset here has semantic label maps, so SC is trainable with
``--set semantic_classes=K --labels DIR`` (one PNG of class indices per image; training
preserves a random box per image and conditions D on s) on data that has them, but no SC
checkpoint ships.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from compressai._CXX import pmf_to_quantized_cdf
from compressai.ans import RansDecoder, RansEncoder
from compressai.models import CompressionModel
from torch import nn

from perceptlab.codecs.neural import losses
from perceptlab.codecs.neural.family import FamilyConfig
from perceptlab.codecs.neural.layers import (
    MultiScaleDiscriminator,
    ResidualBlock,
    TrainingSystem,
    conv_norm_relu,
    up_norm_relu,
)
from perceptlab.codecs.neural.registered import GC_CHANNEL_COUNTS

CENTERS = (-2.0, -1.0, 0.0, 1.0, 2.0)
LEVELS = len(CENTERS)
CHANNEL_COUNTS = GC_CHANNEL_COUNTS


@dataclass(frozen=True)
class Config(FamilyConfig):
    """GC's settings; the defaults are the CPU-sized ``small`` configuration."""

    FAMILY: ClassVar[str] = "gc"

    channels: int = 8
    encoder_channels: tuple[int, ...] = (32, 64, 128, 128, 128)
    generator_channels: int = 128
    generator_blocks: int = 6
    upsample_channels: tuple[int, ...] = (128, 64, 64, 32)
    discriminator_channels: tuple[int, ...] = (32, 64, 128, 256)
    norm: str = "instance"
    mse_weight: float = 10.0
    feature_matching_weight: float = 10.0
    perceptual: str = "lpips"
    perceptual_weight: float = 10.0
    gan_start_step: int = 2000
    soft_sigma: float = 1.0
    semantic_classes: int = 0


CONFIGS: dict[str, Config] = {
    "small": Config(),
    "paper": Config(
        encoder_channels=(60, 120, 240, 480, 960),
        generator_channels=960,
        generator_blocks=9,
        upsample_channels=(480, 240, 120, 60),
        discriminator_channels=(64, 128, 256, 512),
        gan_start_step=0,
    ),
}


def bound_bpp(channels: int) -> float:
    """Bits per pixel of C channels of 5-ary symbols at H/16 × W/16: C·log₂5/256."""
    return channels * math.log2(LEVELS) / 256.0


def quantize(w: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Nearest centre forward; gradient of the soft assignment backward (Mentzer et al. 2018)."""
    centers = w.new_tensor(CENTERS).view(1, 1, 1, 1, -1)
    distance = (w.unsqueeze(-1) - centers) ** 2
    soft = (torch.softmax(-sigma * distance, dim=-1) * centers).sum(-1)
    hard = distance.argmin(-1).to(w.dtype) + CENTERS[0]  # centres are consecutive integers
    return soft + (hard - soft).detach()


def _uniform_cdf() -> list[int]:
    return list(pmf_to_quantized_cdf([1.0 / LEVELS] * LEVELS + [1e-9], 16))


_CDF = _uniform_cdf()


def code_symbols(symbols: np.ndarray) -> bytes:
    """rANS-code integers in [0, 5) under the uniform distribution (nothing for none: SC
    with an empty mask preserves no symbol, and CompressAI's coder crashes on an empty list)."""
    values = symbols.astype(np.int32).ravel().tolist()
    if not values:
        return b""
    return bytes(
        RansEncoder().encode_with_indexes(values, [0] * len(values), [_CDF], [len(_CDF)], [0])
    )


def decode_symbols(data: bytes, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    values = RansDecoder().decode_with_indexes(data, [0] * count, [_CDF], [len(_CDF)], [0])
    return np.asarray(values, dtype=np.int64)


class GC(CompressionModel):
    """E, q and G (what ships); SC's label-map encoder F when ``semantic_classes`` > 0."""

    stride = 16

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.channels = config.channels
        self.sigma = config.soft_sigma
        self.semantic_classes = config.semantic_classes
        norm = config.norm
        self.encoder = self._encoder(3, config, norm, self.channels)
        self.label_encoder = (
            self._encoder(self.semantic_classes, config, norm, self.channels)
            if self.semantic_classes
            else None
        )
        g = config.generator_channels
        ups = list(config.upsample_channels)
        inputs = self.channels * (2 if self.semantic_classes else 1)
        layers: list[nn.Module] = [*conv_norm_relu(inputs, g, 3, 1, norm)]
        layers += [ResidualBlock(g, norm) for _ in range(config.generator_blocks)]
        for previous, width in zip([g, *ups[:-1]], ups, strict=True):
            layers += up_norm_relu(previous, width, norm)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ups[-1], 3, 7), nn.Tanh()]
        self.generator = nn.Sequential(*layers)

    @staticmethod
    def _encoder(inputs: int, config: Config, norm: str, channels: int) -> nn.Sequential:
        widths = list(config.encoder_channels)
        layers: list[nn.Module] = conv_norm_relu(inputs, widths[0], 7, 1, norm)
        for previous, width in pairwise(widths):
            layers += conv_norm_relu(previous, width, 3, 2, norm)
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(widths[-1], channels, 3)]
        return nn.Sequential(*layers)

    def update(self, scale_table: Any = None, force: bool = False, **_: Any) -> bool:
        return False  # no learned entropy model: symbols are coded at the log₂5 bound

    def aux_loss(self) -> torch.Tensor:
        return torch.zeros((), device=next(self.parameters()).device)

    def generate(self, w_hat: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_encoder is not None:
            if labels is None:
                raise ValueError("an SC model needs the semantic label map")
            w_hat = torch.cat([w_hat, self.label_encoder(labels)], dim=1)
        return (self.generator(w_hat) + 1.0) / 2.0  # tanh output → [0, 1]

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        w_hat = quantize(self.encoder(x), self.sigma)
        if mask is not None:
            w_hat = w_hat * latent_mask(mask, w_hat.shape[-2:])
        return {"x_hat": self.generate(w_hat, labels), "w_hat": w_hat}

    def symbols(self, x: torch.Tensor) -> torch.Tensor:
        """The integer symbols (centre index 0..4) of x's latent, as coded."""
        return (quantize(self.encoder(x), self.sigma) + 2.0).round().long()

    def compress(self, x: torch.Tensor, params: dict[str, Any]) -> list[bytes]:
        if self.semantic_classes:
            raise ValueError(
                "this is an SC model: compress it with compress_selective(x, labels, mask)"
            )
        symbols = self.symbols(x).cpu().numpy()
        return [code_symbols(symbols)]

    def compress_selective(
        self, x: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> list[bytes]:
        """SC: the preserved symbols, the latent mask (packed bits) and the label map (zlib)."""
        symbols = self.symbols(x)
        keep = latent_mask(mask, symbols.shape[-2:])[0, 0].bool()
        preserved = symbols[0][:, keep].cpu().numpy()
        label_map = labels.argmax(1)[0].to(torch.uint8).cpu().numpy()
        return [
            code_symbols(preserved),
            np.packbits(keep.cpu().numpy().astype(np.uint8)).tobytes(),
            zlib.compress(label_map.tobytes(), 9),
        ]

    def decompress(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        device = next(self.parameters()).device
        grid = (size[0] // 16, size[1] // 16)
        if self.semantic_classes:
            return self._decompress_selective(sections, size, grid, device)
        if len(sections) != 1:
            raise ValueError(f"a GC bitstream has 1 section, this one {len(sections)}")
        count = self.channels * grid[0] * grid[1]
        symbols = decode_symbols(sections[0], count).reshape(1, self.channels, *grid)
        w_hat = torch.from_numpy(symbols).to(device).float() - 2.0
        return self.generate(w_hat).clamp_(0.0, 1.0)

    def _decompress_selective(
        self, sections: list[bytes], size: tuple[int, int], grid: tuple[int, int], device: Any
    ) -> torch.Tensor:
        if len(sections) != 3:
            raise ValueError(f"an SC bitstream has 3 sections, this one {len(sections)}")
        cells = grid[0] * grid[1]
        keep = np.unpackbits(np.frombuffer(sections[1], np.uint8))[:cells].astype(bool)
        preserved = decode_symbols(sections[0], self.channels * int(keep.sum()))
        w = np.zeros((self.channels, cells), np.float32)
        w[:, keep] = preserved.reshape(self.channels, -1) - 2.0
        label_map = np.frombuffer(zlib.decompress(sections[2]), np.uint8).reshape(size)
        labels = (
            F.one_hot(torch.from_numpy(label_map.astype(np.int64)), self.semantic_classes)
            .permute(2, 0, 1)[None]
            .float()
        )
        w_hat = torch.from_numpy(w.reshape(1, self.channels, *grid)).to(device)
        return self.generate(w_hat, labels.to(device)).clamp_(0.0, 1.0)


def latent_mask(mask: torch.Tensor, grid: torch.Size | tuple[int, int]) -> torch.Tensor:
    """A (B, 1, H, W) region mask in {0, 1} → the latent grid (a cell is kept if any pixel is)."""
    return (F.adaptive_max_pool2d(mask.float(), tuple(grid)) > 0.5).float()


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, 1, H, W) class indices → (B, K, H, W) float one-hot; an index ≥ K is an error."""
    if int(labels.max()) >= classes or int(labels.min()) < 0:
        raise ValueError(f"label map values must lie in [0, {classes - 1}]")
    return F.one_hot(labels[:, 0], classes).permute(0, 3, 1, 2).float()


def random_boxes(
    count: int, size: torch.Size | tuple[int, int], *, device: Any = "cpu"
) -> torch.Tensor:
    """SC training's preservation masks: one random box per image covering 30–80 % of each
    side (1 = preserved, stored; 0 = generated from the label map)."""
    height, width = int(size[0]), int(size[1])
    masks = torch.zeros(count, 1, height, width, device=device)
    sides = 0.3 + 0.5 * torch.rand(count, 2)
    for index in range(count):
        h = max(1, int(sides[index, 0] * height))
        w = max(1, int(sides[index, 1] * width))
        top = int(torch.randint(0, height - h + 1, ()))
        left = int(torch.randint(0, width - w + 1, ()))
        masks[index, :, top : top + h, left : left + w] = 1.0
    return masks


def build(config: Config) -> GC:
    return GC(config)


class GCSystem(TrainingSystem):
    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__()
        if config.channels < 1:
            raise ValueError("channels must be at least 1")
        self.config = config
        self.codec = GC(config)
        classes = config.semantic_classes
        # SC's D is conditioned on the label map: it sees [image, one-hot s]
        self.discriminator = MultiScaleDiscriminator(3 + classes, config.discriminator_channels)
        self.perceptual = losses.PerceptualTerm(config.perceptual)

    def gan_active(self, step: int) -> bool:
        return step >= self.config.gan_start_step

    def _condition(self, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        return x if onehot is None else torch.cat([x, onehot], dim=1)

    def generator_loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        onehot = mask = None
        if self.codec.semantic_classes:
            if labels is None:
                raise ValueError("an SC model trains on images with label maps")
            onehot = one_hot(labels, self.codec.semantic_classes)
            mask = random_boxes(x.shape[0], x.shape[-2:], device=x.device)
        out = self.codec(x, onehot, mask)
        x_hat = out["x_hat"]
        mse = F.mse_loss(x_hat * 2.0 - 1.0, x * 2.0 - 1.0)  # images in [−1, 1]
        perceptual = self.perceptual(x_hat, x)
        loss = self.config.mse_weight * mse + self.config.perceptual_weight * perceptual
        logs = {"mse": float(mse.detach()), "perceptual": float(perceptual.detach())}
        if mask is not None:
            logs["preserved"] = float(mask.mean())
        if self.gan_active(step):
            fake = self.discriminator(self._condition(x_hat, onehot))
            with torch.no_grad():
                real = self.discriminator(self._condition(x, onehot))
            adversarial = losses.lsgan_generator_loss(fake)
            matching = losses.feature_matching_loss(real, fake)
            loss = loss + adversarial + self.config.feature_matching_weight * matching
            logs.update({"g_adv": float(adversarial.detach()), "fm": float(matching.detach())})
        logs["loss"] = float(loss.detach())
        cache = {"x_hat": x_hat.detach()}
        if onehot is not None:
            cache["onehot"] = onehot
        return loss, logs, cache

    def discriminator_loss(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        onehot = cache.get("onehot")
        loss = losses.lsgan_discriminator_loss(
            self.discriminator(self._condition(x, onehot)),
            self.discriminator(self._condition(cache["x_hat"], onehot)),
        )
        return loss, {"d_loss": float(loss.detach())}

    def description(self) -> dict[str, Any]:
        c = self.config
        return {
            "loss_terms": [
                "LSGAN (multi-scale D, 3 scales)"
                + (f" from step {c.gan_start_step}" if c.gan_start_step else ""),
                f"{c.mse_weight}·MSE (images in [−1, 1])",
                f"{c.feature_matching_weight}·feature matching",
                f"{c.perceptual_weight}·{self.perceptual.kind} (the paper: VGG19)",
            ],
            "perceptual": self.perceptual.kind,
            "perceptual_note": self.perceptual.reason,
            "channels": c.channels,
            "bound_bpp": bound_bpp(c.channels),
            "parameters": sum(p.numel() for p in self.codec.parameters()),
        }


def training_system(config: Config) -> GCSystem:
    return GCSystem(config)
