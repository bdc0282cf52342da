"""The GAN codec with an improved rate–distortion optimisation process of Xia, Jin, Meng, Ding
& Zhang, "GAN-based Image Compression with Improved RDO Process", arXiv 2306.10461 (2023)
(seed 000), built on this project's HiFiC (:mod:`.hific`, Mentzer et al. 2020).

What the paper changes relative to HiFiC (its abstract; no public code exists):

1. the distortion of the rate–distortion objective measures colour, texture and structure with
   DISTS (Ding, Ma, Wang & Simoncelli, TPAMI 2022) and MS-SSIM (Wang, Simoncelli & Bovik 2003);
2. the latent y is coded with the discretised Gaussian–Laplacian–logistic mixture (GLLMM) of
   Fu et al. (IEEE TIP 2023, arXiv 2107.06463), :mod:`.gllmm`, instead of a single Gaussian.

Architecture (:class:`RDOGAN`): HiFiC's E, G, h_a and factorised entropy bottleneck for z
(inherited from :class:`hific.HiFiC`). HiFiC's two-branch hyper-synthesis (one branch for the
means, one for the scales) is kept, widened to the mixture: the *location* branch gives the
9 component means (9·C channels), the *shape* branch gives the 9 scales, the 9 within-family
weight logits and the 3 family logits (21·C channels); they are interleaved into the GLLMM's
30·C-channel layout. There is no autoregressive context (the GLLMM paper's 5×5 masked context
is left out): every element's distribution is known from ẑ alone, so decoding is one rANS call.
The symbols are round(y) (the mixture models y itself, as the official GLLMM code); the
generator sees ŷ = round(y) (straight-through in training), so training, evaluation and the
bitstream agree exactly.

Loss (:class:`RDOSystem`), HiFiC's rate-target form with the seed's distortion:
L = C/λ′ · R + C·k_M · MSE₂₅₅ + k_D · DISTS(x̂, x) + k_S · (1 − MS-SSIM(x̂, x)) + β · (−log D(x̂, ŷ)),
with HiFiC's constants C = 0.1·2⁻⁵, k_M = 0.75, β = 0.15 and its λ′ switch between
λ_a = 0.1·2⁻⁶ (bpp above the target r_t) and λ_b = 0.1·2¹ (below), doubled with r_t × 0.20/0.14
during the warm-up, and its conditional spectral-norm PatchGAN D (non-saturating loss) from
``gan_start_step``. k_D = k_S = 1 are this project's choice (the seed does not give the
weights; HiFiC weights its perceptual term 1). DISTS needs the VGG16 ImageNet weights; when
they are absent :class:`losses.PerceptualTerm` substitutes 1 − MS-SSIM for it (so MS-SSIM
then carries weight k_D + k_S), and the checkpoint's model card says so.

Rate dial (beyond the paper, as :mod:`.hific`): the quantisation step Δ (Choi, El-Khamy & Lee,
ICCV 2019): symbols round(y/Δ) coded with the mixture of y/Δ (every mean and scale divided by
Δ — exact, all three families are location–scale families), ŷ = Δ·symbols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from compressai.ops import quantize_ste
from torch import nn

from perceptlab.codecs.neural import hific, losses
from perceptlab.codecs.neural.gllmm import (
    COMPONENTS,
    PARAMS_PER_CHANNEL,
    GaussianLaplacianLogisticMixtureConditional,
)
from perceptlab.codecs.neural.layers import ConditionalDiscriminator


@dataclass(frozen=True)
class Config(hific.Config):
    """HiFiC's sizes and schedules (``small`` as hific-small, ``paper`` as the HiFiC paper),
    with k_D (``perceptual_weight``, DISTS) and k_S (``ms_ssim_weight``); no sparsity term."""

    FAMILY: ClassVar[str] = "rdo"

    perceptual: str = "dists"
    ms_ssim_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.sparsity_weight:
            raise ValueError("rdo setting sparsity_weight: the RDO loss has no sparsity term")


_LOSS = {"perceptual": "dists", "perceptual_weight": 1.0, "ms_ssim_weight": 1.0}
CONFIGS: dict[str, Config] = {
    name: Config().with_overrides({**hific.CONFIGS[name].to_dict(), **_LOSS})
    for name in ("small", "paper")
}

LOCATION_CHANNELS = COMPONENTS  # per latent channel: μ_0..μ_8
SHAPE_CHANNELS = PARAMS_PER_CHANNEL - COMPONENTS  # σ_0..σ_8, 9 weight logits, 3 family logits


class RDOGAN(hific.HiFiC):
    """HiFiC's E, G and hyperprior with the GLLMM conditional for y (what ships)."""

    def __init__(self, config: hific.Config) -> None:
        super().__init__(config)
        latent = config.latent_channels
        hyper = config.hyper_channels
        # HiFiC's single-Gaussian mean/scale branches and conditional are replaced.
        del self.hyper_means, self.hyper_scales, self.gaussian_conditional
        self.latent_channels = latent
        self.hyper_location = self._hyper_synthesis(hyper, LOCATION_CHANNELS * latent)
        self.hyper_shape = self._hyper_synthesis(hyper, SHAPE_CHANNELS * latent)
        self.mixture_conditional = GaussianLaplacianLogisticMixtureConditional()

    def mixture_parameters(self, z_hat: torch.Tensor) -> torch.Tensor:
        """(B, 30·C, h, w) GLLMM parameters in the official order (see :mod:`.gllmm`)."""
        location = self.hyper_location(z_hat)
        shape = self.hyper_shape(z_hat)
        batch, _, height, width = location.shape  # the latent's size, 4× ẑ's
        c = self.latent_channels
        means = location.reshape(batch, COMPONENTS, c, height, width)
        scales = shape[:, : COMPONENTS * c].reshape(batch, COMPONENTS, c, height, width)
        logits = shape[:, COMPONENTS * c : 2 * COMPONENTS * c]
        logits = logits.reshape(batch, COMPONENTS, c, height, width)
        family = shape[:, 2 * COMPONENTS * c :].reshape(batch, 3, c, height, width)
        components = torch.stack([logits, means, scales], dim=2)  # prob_k, mean_k, scale_k
        grouped = torch.cat(
            [components.reshape(batch, 3 * COMPONENTS, c, height, width), family], 1
        )
        return grouped.reshape(batch, PARAMS_PER_CHANNEL * c, height, width)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """Training pass: noisy likelihoods, straight-through ŷ = round(y), reconstruction."""
        y = self.analyse(x)
        z = self.hyper_analysis(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        params = self.mixture_parameters(z_hat)
        _, y_likelihoods = self.mixture_conditional(y, params)
        y_hat = quantize_ste(y)
        with torch.no_grad():  # the bpp of the hard-quantised latents (for the rate target)
            conditional = self.mixture_conditional
            hard_y = conditional.likelihood_lower_bound(
                conditional.likelihood(torch.round(y), params)
            )
            _, hard_z = self.entropy_bottleneck(z, training=False)
        return {
            "x_hat": self.generate(y_hat),
            "y_hat": y_hat,
            "y_symbols": torch.round(y).detach(),
            "likelihoods": (y_likelihoods, z_likelihoods),
            "hard_likelihoods": (hard_y, hard_z),
        }

    def _analyse(self, x: torch.Tensor) -> tuple[torch.Tensor, bytes, torch.Tensor]:
        """(y, z bytes, mixture parameters from the *decoded* ẑ, as the decoder sees them)."""
        y = self.analyse(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        return y, z_strings[0], self.mixture_parameters(z_hat)

    def compress(self, x: torch.Tensor, params: dict[str, Any]) -> list[bytes]:
        if x.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {x.shape[0]}")
        step = float(params.get("qstep", 1.0))
        y, z_string, mixture = self._analyse(x)
        return [self.mixture_conditional.compress(y, mixture, step), z_string]

    def symbols(self, x: torch.Tensor, step: float = 1.0) -> torch.Tensor:
        """The integer symbols round(y/Δ) that :meth:`compress` codes (for tests)."""
        return self.mixture_conditional.symbols(self.analyse(x), step)

    def estimated_bits(self, x: torch.Tensor, step: float = 1.0) -> tuple[float, float]:
        """(y bits, z bits) = −Σ log₂ p of what :meth:`compress` codes (likelihood estimate)."""
        y, _, mixture = self._analyse(x)
        _, z_likelihoods = self.entropy_bottleneck(self.hyper_analysis(y), training=False)
        y_bits = self.mixture_conditional.estimated_bits(y, mixture, step)
        return y_bits, float(-torch.log2(z_likelihoods).sum())

    def decompress_symbols(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        """The decoded symbols round(y/Δ), (1, C, H/16, W/16)."""
        if len(sections) != 2:
            raise ValueError(f"an RDO-GLLMM bitstream has 2 sections, this one {len(sections)}")
        step = float(params.get("qstep", 1.0))
        z_hat = self.entropy_bottleneck.decompress([sections[1]], (size[0] // 64, size[1] // 64))
        mixture = self.mixture_parameters(z_hat)
        shape = (1, self.latent_channels, size[0] // 16, size[1] // 16)
        return self.mixture_conditional.decompress(sections[0], mixture, shape, step)

    def decompress(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        step = float(params.get("qstep", 1.0))
        y_hat = self.decompress_symbols(sections, size, params) * step
        return self.generate(y_hat).clamp_(0.0, 1.0)


def build(config: Config) -> RDOGAN:
    return RDOGAN(config)


class RDOSystem(hific.HiFiCSystem):
    """:class:`RDOGAN` with HiFiC's discriminator and the seed's rate–distortion loss.

    The rate-target schedule (:meth:`rate_weight`), :meth:`gan_active` and the discriminator
    loss are HiFiC's (inherited)."""

    config: Config

    def __init__(self, config: Config) -> None:
        nn.Module.__init__(self)  # HiFiCSystem.__init__ would build a HiFiC codec as well
        self.config = config
        self.codec = RDOGAN(config)
        self.discriminator = ConditionalDiscriminator(
            config.latent_channels, 16, config.discriminator_channels
        )
        self.perceptual = losses.PerceptualTerm(config.perceptual)

    def generator_loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        out = self.codec(x)
        pixels = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = hific.bits_per_pixel(out["likelihoods"], pixels)
        hard_bpp = float(hific.bits_per_pixel(out["hard_likelihoods"], pixels))
        x_hat = out["x_hat"]
        mse = F.mse_loss(x_hat * 255.0, x * 255.0)
        ms_ssim = losses.ms_ssim_loss(x_hat, x)
        # the DISTS slot: DISTS when its weights are present, else the same 1 − MS-SSIM
        dists = ms_ssim if self.perceptual.kind == "ms-ssim" else self.perceptual(x_hat, x)
        loss = (
            self.rate_weight(hard_bpp, step) * bpp
            + hific.RATE_SCALE * hific.MSE_WEIGHT * mse
            + self.config.perceptual_weight * dists
            + self.config.ms_ssim_weight * ms_ssim
        )
        logs = {
            "bpp": float(bpp.detach()),
            "bpp_hard": hard_bpp,
            "mse255": float(mse.detach()),
            "ms_ssim_loss": float(ms_ssim.detach()),
        }
        loss = loss + self.chroma_term(x_hat, x, logs)
        if dists is not ms_ssim:
            logs[self.perceptual.kind] = float(dists.detach())
        if self.gan_active(step):
            fake = self.discriminator(x_hat, out["y_hat"])
            adversarial = losses.ns_generator_loss(fake)
            loss = loss + self.config.gan_weight * adversarial
            logs["g_adv"] = float(adversarial.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs, {"x_hat": x_hat.detach(), "y_hat": out["y_hat"].detach()}

    def description(self) -> dict[str, Any]:
        dists_slot = (
            "DISTS"
            if self.perceptual.kind == "dists"
            else f"{self.perceptual.kind} (in place of DISTS)"
        )
        terms = [
            f"rate (C/λ′ with target {self.config.rate_target} bpp, warm-up "
            f"{self.config.warmup_steps} steps), GLLMM entropy model for y",
            f"{hific.RATE_SCALE * hific.MSE_WEIGHT:.3g}·MSE (0–255)",
            f"{self.config.perceptual_weight}·{dists_slot}",
            f"{self.config.ms_ssim_weight}·(1 − MS-SSIM)",
            f"{self.config.gan_weight}·non-saturating GAN from step {self.config.gan_start_step}",
        ]
        return {
            "loss_terms": terms,
            "perceptual": self.perceptual.kind,
            "perceptual_note": self.perceptual.reason,
            "entropy_model": "GLLMM (3 Gaussian + 3 Laplacian + 3 logistic), hyperprior only",
            "parameters": sum(p.numel() for p in self.codec.parameters()),
        }


def training_system(config: Config) -> RDOSystem:
    return RDOSystem(config)
