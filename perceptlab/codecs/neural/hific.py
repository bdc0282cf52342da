"""HiFiC — High-Fidelity Generative Image Compression (Mentzer, Toderici, Tschannen,
Agustsson, NeurIPS 2020, arXiv 2006.09965), on CompressAI's entropy models.

Architecture (paper Fig. 2 / the official TF code, ``models/hific/archs.py``):

- E: conv7×7, then four stride-2 conv3×3, ChannelNorm + ReLU after each, then conv3×3 to
  the latent y (C channels at H/16 × W/16).
- Hyperprior (Minnen et al. 2018 mean-scale): h_a (conv3×3, conv5×5/2, conv5×5/2) gives z
  (N channels at H/64) coded with a factorised :class:`EntropyBottleneck`; h_s has two
  separate branches (means, scales). y is coded with a :class:`GaussianConditional` as the
  symbols round(y − μ), and the decoder sees ŷ = round(y − μ) + μ (straight-through in
  training), so training, evaluation and the bitstream agree exactly.
- G: ChannelNorm, conv3×3, ChannelNorm, residual blocks with a global skip, four ×2
  transposed convs, conv7×7 to RGB (on [−1, 1], see the value range below).
- D: conditional PatchGAN with spectral norm, D(x, sg(ŷ))
  (:class:`layers.ConditionalDiscriminator`).
- Value range: E sees 2x − 1 and x̂ = (G(ŷ) + 1)/2, so the untrained G outputs mid-grey. With
  x in [0, 1] fed straight through, G first spends thousands of Adam steps (≤ lr per step)
  moving its output bias to the image mean — measured here: MSE₂₅₅ 28,200 at step 0 and
  still ≈ 5,000 at step 100, against 6,400 and ≈ 2,300 centred (HiFiC-small, lr 1e-4, random
  CID22 crops). GC and the tunable codec here use the same range.

Loss (official ``configs.py``/``model.py``; effective weights in the research note):
L = C·(R/λ′ + k_M·MSE₂₅₅) + k_P·P + β·(−log D(x̂, ŷ)), with C = 0.1·2⁻⁵, k_M = 0.75,
β = 0.15, λ′ = λ_a = 0.1·2⁻⁶ while the quantised bpp is above the rate target r_t and
λ_b = 0.1·2¹ below it; for the first ``warmup_steps`` both λ are doubled and r_t is ×0.20/0.14
(the official schedule: the rate is penalised half as hard early on). P is LPIPS when its
weights are present, else 1 − MS-SSIM (stated in the checkpoint). Training runs in two stages
in one run: no discriminator until ``gan_start_step`` (the paper's "MSE+LPIPS" stage), then
the GAN terms.

``chroma_weight`` (beyond the paper, default 0) adds C·k_M·w·MSE₂₅₅ of the chroma (Cb, Cr):
trained ~4,000 CPU steps without it, hific-small learned luma only (on Kodak the decoded
16×16-block Cb and Cr do not follow the original's, slope ≈ 0, so every image comes out in
one tint, the training set's mean chroma: the "colour cast"). Chroma has about a tenth of
luma's variance; its gradient leaves that plateau slowly (a tiny HiFiC autoencoder without
quantisation or rate, MSE only, shows the same: luma slope ≈ 1, chroma ≈ 0 after 600 steps,
where a GDN autoencoder on the same crops has the chroma after 200).

``hific-sparse`` (seed 003, a student project on HiFiC): the same model plus
λ_s · mean φ(ŷ) with φ(v) = 1 − exp(−v²/(2σ²)), σ = ½ — a smooth count of the latent values
that are not (close to) zero, evaluated on the straight-through quantised ŷ. The fraction of
zero symbols is logged.

Rate dial (beyond the paper): the quantisation step Δ of Choi, El-Khamy & Lee (ICCV 2019,
"Variable rate deep image compression with a conditional autoencoder", §3.3): the symbols are
round((y − μ)/Δ) coded with scales σ/Δ, and ŷ = Δ·symbols + μ. Δ = 1 is the trained operating
point; larger Δ spends fewer bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from perceptlab.codecs.neural import losses
from perceptlab.codecs.neural.family import FamilyConfig
from perceptlab.codecs.neural.layers import (
    ChannelNorm,
    ConditionalDiscriminator,
    ResidualBlock,
    TrainingSystem,
    conv_norm_relu,
    up_norm_relu,
)


@dataclass(frozen=True)
class Config(FamilyConfig):
    """HiFiC's settings; the defaults are the CPU-sized ``small`` configuration."""

    FAMILY: ClassVar[str] = "hific"

    encoder_channels: tuple[int, ...] = (64, 128, 128, 128, 128)
    latent_channels: int = 64
    hyper_channels: int = 128
    generator_channels: int = 128
    generator_blocks: int = 4
    upsample_channels: tuple[int, ...] = (128, 128, 64, 64)
    discriminator_channels: tuple[int, ...] = (32, 64, 128, 256)
    rate_target: float = 0.30
    perceptual: str = "lpips"
    perceptual_weight: float = 1.0
    gan_weight: float = 0.15
    warmup_steps: int = 1000
    gan_start_step: int = 3000
    sparsity_weight: float = 0.0
    chroma_weight: float = 0.0


CONFIGS: dict[str, Config] = {
    "small": Config(),
    "paper": Config(
        encoder_channels=(60, 120, 240, 480, 960),
        latent_channels=220,
        hyper_channels=320,
        generator_channels=960,
        generator_blocks=9,
        upsample_channels=(480, 240, 120, 60),
        discriminator_channels=(64, 128, 256, 512),
        rate_target=0.14,
        warmup_steps=50_000,
        gan_start_step=1_000_000,
    ),
}

RATE_SCALE = 0.1 * 2**-5  # C
MSE_WEIGHT = 0.75  # k_M, on the 0–255 scale
LAMBDA_ABOVE = 0.1 * 2**-6  # λ_a: bpp above the target
LAMBDA_BELOW = 0.1 * 2**1  # λ_b
WARMUP_TARGET_FACTOR = 0.20 / 0.14
SPARSITY_SIGMA = 0.5


class HiFiC(CompressionModel):
    """The codec part of HiFiC: E, hyperprior and G (what ships in a checkpoint)."""

    stride = 64

    def __init__(self, config: Config) -> None:
        super().__init__()
        widths = list(config.encoder_channels)
        latent = config.latent_channels
        hyper = config.hyper_channels
        encoder: list[nn.Module] = conv_norm_relu(3, widths[0], 7, 1, "channel")
        for previous, width in pairwise(widths):
            encoder += conv_norm_relu(previous, width, 3, 2, "channel")
        encoder += [nn.ReflectionPad2d(1), nn.Conv2d(widths[-1], latent, 3)]
        self.encoder = nn.Sequential(*encoder)
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(latent, hyper, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hyper, hyper, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(hyper, hyper, 5, stride=2, padding=2),
        )
        self.hyper_means = self._hyper_synthesis(hyper, latent)
        self.hyper_scales = self._hyper_synthesis(hyper, latent)
        self.entropy_bottleneck = EntropyBottleneck(hyper)
        self.gaussian_conditional = GaussianConditional(None)
        g = config.generator_channels
        ups = list(config.upsample_channels)
        generator: list[nn.Module] = [
            ChannelNorm(latent),
            nn.Conv2d(latent, g, 3, padding=1),
            ChannelNorm(g),
        ]
        self.generator_head = nn.Sequential(*generator)
        self.generator_blocks = nn.Sequential(
            *(ResidualBlock(g, "channel") for _ in range(config.generator_blocks))
        )
        tail: list[nn.Module] = []
        for previous, width in zip([g, *ups[:-1]], ups, strict=True):
            tail += up_norm_relu(previous, width, "channel")
        tail += [nn.ReflectionPad2d(3), nn.Conv2d(ups[-1], 3, 7)]
        self.generator_tail = nn.Sequential(*tail)

    @staticmethod
    def _hyper_synthesis(hyper: int, latent: int) -> nn.Sequential:
        return nn.Sequential(
            nn.ConvTranspose2d(hyper, hyper, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(hyper, hyper, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hyper, latent, 3, padding=1),
        )

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """y = E(2x − 1): the encoder sees the image centred on [−1, 1]."""
        return self.encoder(x * 2.0 - 1.0)  # type: ignore[no-any-return]

    def generate(self, y_hat: torch.Tensor) -> torch.Tensor:
        """x̂ = (G(ŷ) + 1)/2: G works on [−1, 1], so its untrained output sits at mid-grey."""
        head = self.generator_head(y_hat)
        return (self.generator_tail(head + self.generator_blocks(head)) + 1.0) / 2.0

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """Training pass: noisy likelihoods, straight-through ŷ, reconstruction."""
        y = self.analyse(x)
        z = self.hyper_analysis(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        means, scales = self.hyper_means(z_hat), self.hyper_scales(z_hat)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = quantize_ste(y - means) + means
        with torch.no_grad():  # the bpp of the hard-quantised latents (for the rate target)
            hard_y = self.gaussian_conditional._likelihood(
                torch.round(y - means) + means, scales, means
            )
            hard_y = self.gaussian_conditional.likelihood_lower_bound(hard_y)
            _, hard_z = self.entropy_bottleneck(z, training=False)
        return {
            "x_hat": self.generate(y_hat),
            "y_hat": y_hat,
            "y_symbols": torch.round(y - means).detach(),
            "likelihoods": (y_likelihoods, z_likelihoods),
            "hard_likelihoods": (hard_y, hard_z),
        }

    def compress(self, x: torch.Tensor, params: dict[str, Any]) -> list[bytes]:
        step = float(params.get("qstep", 1.0))
        y = self.analyse(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.hyper_means(z_hat), self.hyper_scales(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales / step)
        y_strings = self.gaussian_conditional.compress(y / step, indexes, means=means / step)
        return [y_strings[0], z_strings[0]]

    def symbols(self, x: torch.Tensor, step: float = 1.0) -> torch.Tensor:
        """The integer symbols round((y − μ)/Δ) that :meth:`compress` codes (for tests)."""
        y = self.analyse(x)
        z_hat, _ = self.entropy_bottleneck(self.hyper_analysis(y), training=False)
        return torch.round((y - self.hyper_means(z_hat)) / step)

    def decompress(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        return self.generate(self.decode_latent(sections, size, params)).clamp_(0.0, 1.0)

    def decode_latent(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        """ŷ = Δ·symbols + μ from the two coded sections (``size``: the padded image size)."""
        if len(sections) != 2:
            raise ValueError(f"a HiFiC bitstream has 2 sections, this one {len(sections)}")
        step = float(params.get("qstep", 1.0))
        z_size = (size[0] // 64, size[1] // 64)
        z_hat = self.entropy_bottleneck.decompress([sections[1]], z_size)
        means, scales = self.hyper_means(z_hat), self.hyper_scales(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales / step)
        symbols_plus_mean = self.gaussian_conditional.decompress(
            [sections[0]], indexes, means=means / step
        )
        return symbols_plus_mean * step  # Δ·(s + μ/Δ) = Δ·s + μ


def build(config: Config) -> HiFiC:
    return HiFiC(config)


def bits_per_pixel(likelihoods: tuple[torch.Tensor, ...], pixels: int) -> torch.Tensor:
    """−Σ log₂ p over all latents, per image pixel (``pixels`` = B·H·W)."""
    bits = torch.stack([torch.log2(lk).sum() for lk in likelihoods]).sum()
    return -bits / pixels


def sparsity_penalty(y_hat: torch.Tensor) -> torch.Tensor:
    """mean φ(ŷ), φ(v) = 1 − exp(−v²/(2σ²)): ≈0 at zero, →1 for |v| ≳ 3σ (seed 003)."""
    return (1.0 - torch.exp(-(y_hat**2) / (2 * SPARSITY_SIGMA**2))).mean()


class HiFiCSystem(TrainingSystem):
    """HiFiC with its discriminator and losses, for :mod:`.training`."""

    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.codec = HiFiC(config)
        self.discriminator = ConditionalDiscriminator(
            config.latent_channels, 16, config.discriminator_channels
        )
        self.perceptual = losses.PerceptualTerm(config.perceptual)

    def gan_active(self, step: int) -> bool:
        return step >= self.config.gan_start_step and self.config.gan_weight > 0

    def rate_weight(self, hard_bpp: float, step: int) -> float:
        """C/λ′ of the rate-target schedule (official HiFiC ``configs.py``)."""
        warm = step < self.config.warmup_steps
        target = self.config.rate_target * (WARMUP_TARGET_FACTOR if warm else 1.0)
        lam = LAMBDA_ABOVE if hard_bpp > target else LAMBDA_BELOW
        return RATE_SCALE / (lam * (2.0 if warm else 1.0))

    def generator_loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        out = self.codec(x)
        pixels = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = bits_per_pixel(out["likelihoods"], pixels)
        hard_bpp = float(bits_per_pixel(out["hard_likelihoods"], pixels))
        x_hat = out["x_hat"]
        mse = F.mse_loss(x_hat * 255.0, x * 255.0)
        perceptual = self.perceptual(x_hat, x)
        loss = (
            self.rate_weight(hard_bpp, step) * bpp
            + RATE_SCALE * MSE_WEIGHT * mse
            + self.config.perceptual_weight * perceptual
        )
        logs = {
            "bpp": float(bpp.detach()),
            "bpp_hard": hard_bpp,
            "mse255": float(mse.detach()),
            "perceptual": float(perceptual.detach()),
            "zeros": float((out["y_hat"].detach().round() == 0).float().mean()),
        }
        loss = loss + self.chroma_term(x_hat, x, logs)
        weight = self.config.sparsity_weight
        if weight > 0:
            sparsity = sparsity_penalty(out["y_hat"])
            loss = loss + weight * sparsity
            logs["sparsity"] = float(sparsity.detach())
        if self.gan_active(step):
            fake = self.discriminator(x_hat, out["y_hat"])
            adversarial = losses.ns_generator_loss(fake)
            loss = loss + self.config.gan_weight * adversarial
            logs["g_adv"] = float(adversarial.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs, {"x_hat": x_hat.detach(), "y_hat": out["y_hat"].detach()}

    def chroma_term(
        self, x_hat: torch.Tensor, x: torch.Tensor, logs: dict[str, float]
    ) -> torch.Tensor:
        """``chroma_weight`` · C·k_M · chroma MSE (see the module), logged as ``chroma255``;
        zero without the setting."""
        if self.config.chroma_weight <= 0:
            return x_hat.new_zeros(())
        chroma = losses.chroma_mse(x_hat, x)
        logs["chroma255"] = float(chroma.detach())
        return RATE_SCALE * MSE_WEIGHT * self.config.chroma_weight * chroma

    def discriminator_loss(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        real = self.discriminator(x, cache["y_hat"])
        fake = self.discriminator(cache["x_hat"], cache["y_hat"])
        loss = losses.ns_discriminator_loss(real, fake)
        return loss, {"d_loss": float(loss.detach())}

    def description(self) -> dict[str, Any]:
        terms = [
            f"rate (C/λ′ with target {self.config.rate_target} bpp, warm-up "
            f"{self.config.warmup_steps} steps)",
            f"{RATE_SCALE * MSE_WEIGHT:.3g}·MSE (0–255)",
            f"{self.config.perceptual_weight}·{self.perceptual.kind}",
        ]
        if self.config.chroma_weight > 0:
            terms.append(
                f"{RATE_SCALE * MSE_WEIGHT * self.config.chroma_weight:.3g}·chroma MSE (Cb, Cr)"
            )
        if self.config.sparsity_weight > 0:
            terms.append(f"{self.config.sparsity_weight}·sparsity φ(ŷ) (σ={SPARSITY_SIGMA})")
        gan = f"{self.config.gan_weight}·non-saturating GAN"
        terms.append(f"{gan} from step {self.config.gan_start_step}")
        return {
            "loss_terms": terms,
            "perceptual": self.perceptual.kind,
            "perceptual_note": self.perceptual.reason,
            "parameters": sum(p.numel() for p in self.codec.parameters()),
        }


def training_system(config: Config) -> HiFiCSystem:
    return HiFiCSystem(config)
