"""The tunable importance-map GAN codec of Wu, Huang & Shen, "A GAN-based Tunable Image
Compression System" (arXiv 2001.06580, 2020), built on the content-weighted importance map of
Li, Zuo, Gu, Zhao & Zhang (CVPR 2018).

Architecture (paper §3.1; what the paper leaves open is said so):

- **Encoder E** — pyramidal decomposition (paper Fig. 3): three branches on x, x↓2 and x↓4
  (2×2 average pooling) with stride-2 conv + norm + ReLU layers, each reaching the latent grid
  (H/16 × W/16 in the small configuration as in the research note's IM-small, H/8 × W/8 in
  the paper configuration, which gives the paper's bpp range of 0.05–0.4 with C = 16 and
  L = 4: at most 16·2/64 = 0.5 bpp). The branch outputs are summed with the weights ½, ¼, ¼
  (paper §4 "parameter settings"), then residual blocks and the paper's "two convolutional
  layers": a conv to features F and a conv + norm + ReLU to the code y with C channels (the
  ReLU of the authors' public TF code, LirongWu/A-Framework-for-Image-Compression, whose
  encoder ends in conv + BN + ReLU before the 4-centre quantiser). That last norm starts
  with scale and offset (L − 1)/2 so the initial code covers all L centres
  (:func:`spread_over_centres`).
- **Masker** — on F: residual blocks and a 1-filter conv give the map P (one value per latent
  position). Paper eq. (2) normalises it per image, P' = (P − μ)/σ (μ the mean and σ the
  standard deviation of the map; the paper's word is "variance", but only the standard
  deviation normalises), and the tunable offset n is added before the sigmoid:
  p = sigmoid(P' + n). Because P' has zero mean and unit variance whatever the image, the
  share of kept channels is fixed by n alone; during training n ~ U[−2, 2], redrawn for every
  batch (paper §3.1). **Sign convention:** here a higher n keeps more channels (bpp rises with
  n). The paper replaces μ by μ + n, so its n is the negative of this one (its Fig. 8 maps
  n = −1.32 to 0.384 bpp near the top of its 0.05–0.4 range).
- **Importance levels and channel mask** (paper eq. (3), following Li et al. 2018 eq. (6)–(8);
  the formula is not legible in our copy of the seed): with G groups of C/G channels, the
  level of a position is Q = min(⌊(G + 1)·p⌋, G) ∈ {0 … G} (G + 1 equal bins of (0, 1)), and
  channel k (group g = ⌊k·G/C⌋) is kept where Q > g: more channels where the importance is
  high. Forward the mask is this hard 0/1; backward it is the ramp
  clamp((G + 1)·p − g − ½, 0, 1) centred on the threshold (Li et al.'s windowed gradient).
  The paper masks per channel (G = C), and so do both configurations here.
- **Quantiser** — L = 4 centres {0, 1, 2, 3} (paper eq. (4), nearest neighbour); backward
  through the soft assignment Σ_j c_j·softmax(−σ(y − c_j)²) with σ = 1, the soft-to-hard
  quantisation of Agustsson et al. 2017 (the paper's ref. [2]) and Mentzer et al. 2018. The
  authors' TF code uses |y − c_j| in the softmax; its gradient is exactly zero for y outside
  [0, L − 1], and in a 400-step check here the code froze there (the same value at every
  position, PSNR stuck at 12.4 dB on kodim23) while the squared distance kept learning. The
  forward value is the hard value exactly (hard + (soft − soft.detach())), so the code the
  decoder sees in training is the code it reads from the bitstream, bit for bit.
- **Decoder / generator G** — conv + conv, residual blocks (15 × 256 in the paper), then ×2
  transposed convs (3×3 + norm + ReLU) to half size and a last 4×4 transposed conv that
  makes the image (paper: "3 convolution layers, 15 residual blocks, and 3 transposed
  convolution layers"), with tanh (images in [−1, 1] as the authors' code) mapped to [0, 1].
  Input: the masked code ŷ·m (paper Fig. 2).
- **Discriminator** — multi-scale PatchGAN on x, x↓2, x↓4 with Leaky ReLU (paper §3.1,
  :class:`~perceptlab.codecs.neural.layers.MultiScaleDiscriminator`).

Loss (paper eq. (5)–(7)): 1·L_adv + 16·MSE. L_adv is the sigmoid cross-entropy GAN loss
(non-saturating for G, as the authors' code) summed over the discriminator's scales with the
weights ½, ¼, ¼ (the paper's per-scale weights λ_s); MSE is computed on images in [−1, 1]
as in the authors' code (so 16·MSE_[−1,1] = 64·MSE_[0,1]). The paper has **no rate term**:
the normalisation fixes the average importance, so the rate is set by n, not learned. The
paper trains both terms from the start (``gan_start_step`` 0 in the paper configuration);
the CPU-sized small configuration first trains 1,000 MSE-only steps (like GC-small's
warm-up here), so that the few thousand steps a CPU affords start the adversarial term on a
generator that already reproduces the coarse image content.

Bitstream (two container sections; the container header holds n, which the decoder does not
need):

- section 0, the importance map (side information, lossless): a canonical Huffman table over
  the G + 1 levels and the levels' codes in raster order (:mod:`.huffman`);
- section 1, the code: for each channel k with at least one kept position, in channel order,
  its own Huffman table over {0, 1, 2, 3, EOB} and the codes of its **kept** symbols only,
  scanned from the bottom row up, each row left to right (paper §3.1 "Entropy encoder"); the
  run of zeros that ends the scan is replaced by the termination code EOB. Masked positions
  cost nothing: the decoder knows them from the levels. All channels share one bit stream,
  padded to a byte at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import nn

from perceptlab.codecs.base import bits_per_pixel
from perceptlab.codecs.neural import huffman, losses
from perceptlab.codecs.neural.codec import device_kind, pad_to, to_tensor
from perceptlab.codecs.neural.container import Header, pack
from perceptlab.codecs.neural.family import FamilyConfig
from perceptlab.codecs.neural.layers import (
    MultiScaleDiscriminator,
    ResidualBlock,
    TrainingSystem,
    conv_norm_relu,
    norm_layer,
    up_norm_relu,
)
from perceptlab.codecs.neural.registered import TUNABLE_OFFSET_RANGE

OFFSET_RANGE = TUNABLE_OFFSET_RANGE
"""The tunable offset n of paper eq. (2): drawn from U[−2, 2] in training, the dial's range."""


@dataclass(frozen=True)
class Config(FamilyConfig):
    """The tunable codec's settings; the defaults are the CPU-sized ``small`` configuration."""

    FAMILY: ClassVar[str] = "tunable"

    channels: int = 16
    quantizer_levels: int = 4
    importance_groups: int = 16
    encoder_channels: tuple[int, ...] = (32, 64, 96, 128)
    encoder_kernel: int = 3
    encoder_blocks: int = 0
    pyramid_weights: tuple[float, ...] = (0.5, 0.25, 0.25)
    masker_channels: int = 48
    masker_blocks: int = 2
    generator_input_channels: int = 64
    generator_channels: int = 128
    generator_blocks: int = 6
    upsample_channels: tuple[int, ...] = (128, 64, 32)
    discriminator_channels: tuple[int, ...] = (32, 64, 128, 256)
    discriminator_scale_weights: tuple[float, ...] = (0.5, 0.25, 0.25)
    norm: str = "channel"
    soft_sigma: float = 1.0
    gan_weight: float = 1.0
    mse_weight: float = 16.0
    gan_start_step: int = 1000


CONFIGS: dict[str, Config] = {
    "small": Config(),
    "paper": Config(
        encoder_channels=(64, 128, 256),
        encoder_kernel=5,
        encoder_blocks=2,
        masker_channels=256,
        generator_input_channels=128,
        generator_channels=256,
        generator_blocks=15,
        upsample_channels=(128, 64),
        discriminator_channels=(64, 128, 256, 512),
        gan_start_step=0,
    ),
}


def quantize(y: torch.Tensor, levels: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard symbols as float, straight-through value) for the centres 0 … levels − 1.

    Forward: the nearest centre (paper eq. (4); ties go to the lower centre). Backward: the
    soft assignment Σ_j c_j·softmax(−σ(y − c_j)²) (Agustsson et al. 2017; Mentzer et al.
    2018). The returned value equals the hard one exactly (the soft part enters as
    soft − soft.detach() = 0).
    """
    centers = torch.arange(levels, dtype=y.dtype, device=y.device)
    difference = y.unsqueeze(-1) - centers
    hard = difference.abs().argmin(-1).to(y.dtype)
    soft = (torch.softmax(-sigma * difference**2, dim=-1) * centers).sum(-1)
    return hard, hard + (soft - soft.detach())


def normalised_importance(raw: torch.Tensor, offset: float | torch.Tensor) -> torch.Tensor:
    """p = sigmoid((P − μ)/σ + n), statistics per image over the map (paper eq. (2))."""
    mean = raw.mean(dim=(-2, -1), keepdim=True)
    var = raw.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return torch.sigmoid((raw - mean) * torch.rsqrt(var + 1e-6) + offset)


def importance_levels(p: torch.Tensor, groups: int) -> torch.Tensor:
    """Q = min(⌊(G + 1)·p⌋, G): the number of kept channel groups (an integer tensor)."""
    return torch.clamp(torch.floor(p * (groups + 1)), max=groups).long()


def channel_groups(channels: int, groups: int) -> torch.Tensor:
    """Group index ⌊k·G/C⌋ of each channel k."""
    return torch.div(torch.arange(channels) * groups, channels, rounding_mode="floor")


def level_mask(levels: torch.Tensor, group_of: torch.Tensor) -> torch.Tensor:
    """Hard mask (B, C, h, w) from levels (B, h, w): channel k kept where Q > group(k)."""
    return (levels.unsqueeze(1) > group_of.to(levels.device).view(1, -1, 1, 1)).float()


def spread_over_centres(norm: nn.Module, levels: int) -> None:
    """Start the code's normalisation with scale and offset (L − 1)/2.

    The unit-variance normalised code then spreads over all L centres (relu(1.5·z + 1.5)
    for L = 4) instead of piling up at 0 and 1, so every centre gets soft-quantiser gradients
    from the first step. An initialisation choice of this implementation, not the paper's.
    """
    half = (levels - 1) / 2.0
    for name in ("gamma", "beta", "weight", "bias"):
        parameter = getattr(norm, name, None)
        if isinstance(parameter, nn.Parameter):
            with torch.no_grad():
                parameter.fill_(half)


class PyramidEncoder(nn.Module):
    """Three branches on x, x↓2, x↓4 to the same grid, weighted ½, ¼, ¼ (paper Fig. 3)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        widths = list(config.encoder_channels)
        if len(widths) < 3:
            raise ValueError("the pyramid encoder needs at least 3 stride-2 stages (stride ≥ 8)")
        norm = config.norm
        kernel = config.encoder_kernel
        self.weights = list(config.pyramid_weights)
        if len(self.weights) != 3:
            raise ValueError("pyramid_weights needs one weight per scale (3)")
        branches = []
        for scale in range(3):
            layers: list[nn.Module] = []
            previous = 3
            for width in widths[scale:]:
                layers += conv_norm_relu(previous, width, kernel, 2, norm)
                previous = width
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)
        top = widths[-1]
        self.body = nn.Sequential(
            *[ResidualBlock(top, norm) for _ in range(config.encoder_blocks)],
            *conv_norm_relu(top, top, 3, 1, norm),
        )
        channels = config.channels
        self.head = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(top, channels, 3),
            norm_layer(norm, channels),
            nn.ReLU(),
        )
        spread_over_centres(self.head[2], config.quantizer_levels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(code y before quantisation, features F for the masker)."""
        fused: torch.Tensor | None = None
        for scale, (branch, weight) in enumerate(zip(self.branches, self.weights, strict=True)):
            level = F.avg_pool2d(x, 2**scale) if scale else x
            term = weight * branch(level)
            fused = term if fused is None else fused + term
        assert fused is not None
        features = self.body(fused)
        return self.head(features), features


class Masker(nn.Module):
    """Residual blocks and a 1-filter conv on the encoder's features (paper §3.1 "Masker")."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        norm = config.norm
        top = config.encoder_channels[-1]
        width = config.masker_channels
        layers: list[nn.Module] = []
        if width != top:
            layers += conv_norm_relu(top, width, 3, 1, norm)
        layers += [ResidualBlock(width, norm) for _ in range(config.masker_blocks)]
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(width, 1, 3)]
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)  # type: ignore[no-any-return]


class TunableNet(CompressionModel):
    """E, masker, quantiser and G: the part that ships (:func:`build`)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.channels = config.channels
        self.levels = config.quantizer_levels
        self.groups = config.importance_groups
        self.sigma = config.soft_sigma
        if self.channels % self.groups:
            raise ValueError("channels must be a multiple of importance_groups")
        self.stride = 2 ** len(config.encoder_channels)
        norm = config.norm
        self.encoder = PyramidEncoder(config)
        self.masker = Masker(config)
        self.register_buffer(
            "group_of", channel_groups(self.channels, self.groups), persistent=False
        )
        g_in = config.generator_input_channels
        width = config.generator_channels
        ups = list(config.upsample_channels)
        if len(ups) != len(config.encoder_channels) - 1:
            raise ValueError("upsample_channels needs one entry per encoder stage but the last")
        layers: list[nn.Module] = [
            *conv_norm_relu(self.channels, g_in, 3, 1, norm),
            *conv_norm_relu(g_in, width, 3, 1, norm),
        ]
        layers += [ResidualBlock(width, norm) for _ in range(config.generator_blocks)]
        for previous, out in zip([width, *ups[:-1]], ups, strict=True):
            layers += up_norm_relu(previous, out, norm)
        # the last transposed conv makes the image (paper §3.1); 4×4 with stride 2 gives
        # every output pixel the same number of taps (no checkerboard from uneven overlap)
        layers += [nn.ConvTranspose2d(ups[-1], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.generator = nn.Sequential(*layers)

    # CompressAI's interface, for the training loop: there is no learned entropy model.
    def update(self, scale_table: Any = None, force: bool = False, **_: Any) -> bool:
        return False  # Huffman tables are built per image at encode time

    def aux_loss(self) -> torch.Tensor:
        return torch.zeros((), device=next(self.parameters()).device)

    def importance(self, features: torch.Tensor, offset: float | torch.Tensor) -> torch.Tensor:
        """p in (0, 1), shape (B, 1, h, w)."""
        return normalised_importance(self.masker(features), offset)

    def generate(self, code: torch.Tensor) -> torch.Tensor:
        return (self.generator(code) + 1.0) / 2.0  # tanh output → [0, 1]

    def forward(
        self, x: torch.Tensor, offset: float | torch.Tensor = 0.0
    ) -> dict[str, torch.Tensor]:
        """The training path: x̂, the masked code ŷ·m (exact integers forward), the levels."""
        y, features = self.encoder(x)
        _, y_hat = quantize(y, self.levels, self.sigma)
        p = self.importance(features, offset)
        levels = importance_levels(p.detach(), self.groups)[:, 0]
        hard = level_mask(levels, self.group_of)
        group = self.group_of.to(p.dtype).view(1, -1, 1, 1)
        ramp = torch.clamp((self.groups + 1) * p - group - 0.5, 0.0, 1.0)
        mask = hard + (ramp - ramp.detach())
        code = y_hat * mask
        return {"x_hat": self.generate(code), "code": code, "levels": levels, "mask": hard}

    def analyse(self, x: torch.Tensor, offset: float) -> tuple[np.ndarray, np.ndarray]:
        """(symbols (C, h, w), levels (h, w)) of one image, as int64 arrays."""
        if x.shape[0] != 1:
            raise ValueError("compress one image at a time")
        y, features = self.encoder(x)
        symbols, _ = quantize(y, self.levels, self.sigma)
        levels = importance_levels(self.importance(features, offset), self.groups)
        return (
            symbols[0].long().cpu().numpy(),
            levels[0, 0].cpu().numpy().astype(np.int64),
        )

    def compress(self, x: torch.Tensor, params: dict[str, Any]) -> list[bytes]:
        offset = float(params.get("offset", 0.0))
        if not math.isfinite(offset):
            raise ValueError(f"offset must be finite, got {offset}")
        symbols, levels = self.analyse(x, offset)
        return [self.code_levels(levels), self.code_symbols(symbols, levels)]

    def kept(self, levels: np.ndarray) -> np.ndarray:
        """Boolean (C, h, w): which symbols are coded."""
        group_of = self.group_of.cpu().numpy()
        return levels[None, :, :] > group_of[:, None, None]

    def code_levels(self, levels: np.ndarray) -> bytes:
        return huffman.encode(levels.ravel(), self.groups + 1)

    def code_symbols(self, symbols: np.ndarray, levels: np.ndarray) -> bytes:
        kept = self.kept(levels)
        writer = huffman.BitWriter()
        for channel in range(self.channels):
            # bottom row first, each row left to right (paper §3.1), masked positions skipped
            scan = symbols[channel, ::-1][kept[channel, ::-1]]
            huffman.encode_block(scan, self.levels, writer)
        return writer.to_bytes()

    def decode_code(
        self, sections: list[bytes], size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(masked code (C, h, w) as int64, levels (h, w)) from the two sections."""
        if len(sections) != 2:
            raise ValueError(f"a tunable bitstream has 2 sections, this one {len(sections)}")
        height, width = size[0] // self.stride, size[1] // self.stride
        levels = huffman.decode(sections[0], height * width, self.groups + 1)
        if levels.size != height * width:
            raise huffman.HuffmanError("the importance map is truncated")
        levels = levels.reshape(height, width)
        kept = self.kept(levels)
        reader = huffman.BitReader(sections[1])
        code = np.zeros((self.channels, height, width), dtype=np.int64)
        for channel in range(self.channels):
            where = kept[channel, ::-1]
            values = huffman.decode_block(reader, int(where.sum()), self.levels)
            flipped = code[channel, ::-1]  # a view: writing it fills the channel bottom-up
            flipped[where] = values
        return code, levels

    def decompress(
        self, sections: list[bytes], size: tuple[int, int], params: dict[str, Any]
    ) -> torch.Tensor:
        device = next(self.parameters()).device
        code, _ = self.decode_code(sections, size)
        tensor = torch.from_numpy(code).to(device=device, dtype=torch.float32).unsqueeze(0)
        return self.generate(tensor).clamp_(0.0, 1.0)


def build(config: Config) -> TunableNet:
    return TunableNet(config)


class TunableSystem(TrainingSystem):
    """Training: n ~ U[−2, 2] per batch, 1·GAN (3-scale D, ½/¼/¼) + 16·MSE on [−1, 1]."""

    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.codec = TunableNet(config)
        self.discriminator = MultiScaleDiscriminator(3, config.discriminator_channels)
        self.scale_weights = list(config.discriminator_scale_weights)
        if len(self.scale_weights) != 3:
            raise ValueError("discriminator_scale_weights needs one weight per scale (3)")

    def gan_active(self, step: int) -> bool:
        return step >= self.config.gan_start_step

    def _adversarial(self, logits: list[list[torch.Tensor]]) -> torch.Tensor:
        terms = [
            w * losses.ns_generator_loss(s[-1])
            for w, s in zip(self.scale_weights, logits, strict=True)
        ]
        return torch.stack(terms).sum()

    def generator_loss(
        self, x: torch.Tensor, step: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
        low, high = OFFSET_RANGE
        offset = float(torch.empty(()).uniform_(low, high))
        out = self.codec(x, offset)
        x_hat = out["x_hat"]
        mse = F.mse_loss(x_hat * 2.0 - 1.0, x * 2.0 - 1.0)  # images in [−1, 1]
        loss = self.config.mse_weight * mse
        kept = out["mask"].mean()
        stride = self.codec.stride
        logs = {
            "mse": float(mse.detach()),
            "offset": offset,
            "kept": float(kept),
            # upper bound of the code's rate: log₂L bits per kept symbol
            "raw_bpp": float(kept) * self.codec.channels * math.log2(self.codec.levels) / stride**2,
        }
        if self.gan_active(step):
            adversarial = self._adversarial(self.discriminator(x_hat * 2.0 - 1.0))
            loss = loss + self.config.gan_weight * adversarial
            logs["g_adv"] = float(adversarial.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs, {"x_hat": x_hat.detach()}

    def discriminator_loss(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        real = self.discriminator(x * 2.0 - 1.0)
        fake = self.discriminator(cache["x_hat"] * 2.0 - 1.0)
        terms = [
            w * losses.ns_discriminator_loss(r[-1], f[-1])
            for w, r, f in zip(self.scale_weights, real, fake, strict=True)
        ]
        loss = torch.stack(terms).sum()
        return loss, {"d_loss": float(loss.detach())}

    def description(self) -> dict[str, Any]:
        c = self.config
        return {
            "loss_terms": [
                f"{c.gan_weight}·GAN (sigmoid cross-entropy, non-saturating G; 3-scale D "
                f"weighted {list(c.discriminator_scale_weights)})"
                + (f" from step {c.gan_start_step}" if c.gan_start_step else ""),
                f"{c.mse_weight}·MSE (images in [−1, 1], as the authors' code)",
            ],
            "rate": "no rate term (as the paper): the normalised importance map plus the "
            "offset n sets the share of kept channels",
            "offset_training": f"n ~ U{list(OFFSET_RANGE)} per batch (higher n, more bits)",
            "channels": c.channels,
            "quantizer_levels": c.quantizer_levels,
            "importance_groups": c.importance_groups,
            "stride": self.codec.stride,
            "parameters": sum(p.numel() for p in self.codec.parameters()),
            "paper_optimiser_note": "the paper trains with Adam lr 2e-4 (β₁ 0.5 in the "
            "authors' code); the shared loop's --lr sets the rate",
        }


def training_system(config: Config) -> TunableSystem:
    return TunableSystem(config)


@dataclass(frozen=True)
class TunabilityCurve:
    """bpp against n and its least-squares line (paper §4 "Tunability analysis", Fig. 8)."""

    offsets: tuple[float, ...]
    bpp: tuple[float, ...]
    """Mean bpp over the images at each offset."""
    per_image: tuple[tuple[float, ...], ...]
    """bpp of each image (rows) at each offset (columns)."""
    slope: float
    intercept: float
    r2: float

    def offset_for(self, bpp: float) -> float:
        """The n the fitted line gives for a target bpp (the paper's look-up)."""
        return (bpp - self.intercept) / self.slope


def _as_tensor(image: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        return to_tensor(image, str(device))
    tensor = image if image.dim() == 4 else image.unsqueeze(0)
    return tensor.to(device=device, dtype=torch.float32)


def tunability_curve(
    model: TunableNet,
    images: Sequence[np.ndarray | torch.Tensor],
    offsets: Sequence[float],
    *,
    name: str = "tunable-small",
) -> TunabilityCurve:
    """bpp of real bitstreams (container header included) at each offset, and the line
    bpp ≈ slope·n + intercept fitted by least squares to every (n, bpp) point with its r².

    ``images``: (H, W, 3) uint8 arrays or (1, 3, H, W) / (3, H, W) float tensors in [0, 1].
    The container header is the codec's own (:func:`.container.pack`) with a dummy weights
    hash of the same length, so the byte counts equal what :class:`.registered.TunableCodec` writes.
    """
    if not images or not offsets:
        raise ValueError("tunability_curve needs at least one image and one offset")
    device = next(model.parameters()).device
    rows: list[tuple[float, ...]] = []
    with torch.inference_mode():
        for image in images:
            x = _as_tensor(image, device)
            height, width = x.shape[-2:]
            padded, pad_bottom, pad_right = pad_to(x, model.stride)
            row = []
            for offset in offsets:
                sections = model.compress(padded, {"offset": float(offset)})
                header = Header(
                    model=name,
                    model_version="1",
                    weights_sha256="0" * 64,
                    height=int(height),
                    width=int(width),
                    pad_bottom=pad_bottom,
                    pad_right=pad_right,
                    device_type=device_kind(str(device)),
                    params={"offset": float(offset)},
                )
                row.append(bits_per_pixel(len(pack(header, sections)), int(height), int(width)))
            rows.append(tuple(row))
    table = np.asarray(rows, dtype=np.float64)
    xs = np.tile(np.asarray(offsets, dtype=np.float64), len(rows))
    ys = table.ravel()
    if np.ptp(xs) == 0:
        raise ValueError("a line needs at least two different offsets")
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = float(np.sum((ys - (slope * xs + intercept)) ** 2))
    total = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return TunabilityCurve(
        offsets=tuple(float(o) for o in offsets),
        bpp=tuple(float(v) for v in table.mean(axis=0)),
        per_image=tuple(rows),
        slope=float(slope),
        intercept=float(intercept),
        r2=r2,
    )
