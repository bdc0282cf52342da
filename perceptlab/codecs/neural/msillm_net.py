"""The MS-ILLM network: HiFiC's autoencoder with a mean-scale hyperprior, layer for layer as
released, on CompressAI's entropy models.

Paper: M. J. Muckley, A. El-Nouby, K. Ullrich, H. Jégou, J. Verbeek, "Improving Statistical
Fidelity for Neural Image Compression with Implicit Local Likelihood Models", ICML 2023,
PMLR 202 (https://proceedings.mlr.press/v202/muckley23a.html). Reference implementation:
facebookresearch/NeuralCompression, ``neuralcompression.models.HiFiCAutoencoder`` (package
``neuralcompression`` 0.3.1), which every released model (torch hub ``msillm_quality_1`` … ``6``,
``msillm_quality_vlo1``/``vlo2``, ``noganms_quality_1`` … ``6``) builds with its defaults.
The ILLM discriminator shapes training only; the codec is this autoencoder. It is written here
from the reference's description and layer names, not copied; the tests check it against the
reference on seeded weights (``tests/codecs/golden/make_msillm_golden.py``).

The network (x in [0, 1], fed as is; k = kernel, s = stride; every convolution zero-pads k//2):

- E (``encoder.blocks``): conv k7 → 60, then conv k3 s2 → 120, 240, 480, 960, each followed
  by ChannelNorm and ReLU; conv k3 → y, 220 channels at H/16 × W/16.
- h_a (``hyper_analysis``): conv k3 → 320, ReLU, conv k5 s2, ReLU, conv k5 s2 → z, 320
  channels at H/64 × W/64.
- z is coded with CompressAI's factorised ``EntropyBottleneck`` (``hyper_bottleneck``): the
  symbols are round(z − m) with m the learned medians, and ẑ = symbols + m.
- h_s, two branches (``hyper_synthesis_mean``, ``hyper_synthesis_scale``): deconv k5 s2
  (output padding 1), ReLU, deconv k5 s2, ReLU, conv k3 → μ and σ, 220 channels each.
- y is coded with CompressAI's ``GaussianConditional`` (``latent_bottleneck``; scale table
  of 64 log-spaced scales 0.11–256): the symbols are round(y − μ), coded with N(0, σ) tables,
  and ŷ = symbols + μ (Minnen, Ballé, Toderici, NeurIPS 2018, mean-scale hyperprior).
- G (``decoder``): ``block_0`` = ChannelNorm, conv k3 → 960, ChannelNorm, giving h; then
  h + R(h), R being nine residual blocks (``resid_blocks``; each conv k3, ChannelNorm, ReLU,
  conv k3, ChannelNorm, plus its input); then deconv k3 s2 (output padding 1) → 480, 240, 120,
  60, each with ChannelNorm and ReLU; conv k7 → RGB. x̂ = clamp(G(ŷ), 0, 1).
- ChannelNorm (Mentzer, Toderici, Tschannen, Agustsson, "High-Fidelity Generative Image
  Compression", NeurIPS 2020, §3.1): per pixel, x̃ = (x − mean_c) · (var_c + 10⁻³)^(−½) with the
  unbiased variance over channels, then γ·x̃ + β per channel.

Module and parameter names are the released state dict's, so a released file loads with
``load_state_dict(strict=True)``. Files saved under CompressAI 1.2.4 (which the reference's
training recipe pins) name the factorised model's parameters ``_matrix0``, ``_bias0``,
``_factor0``; CompressAI ≥ 1.2.6's ``CompressionModel.load_state_dict`` renames them to
``matrices.0`` … before the strict load. The widths are read from the state dict
(:meth:`Architecture.of`): every released file has the defaults below; tests use narrow ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import nn

STRIDE = 64
"""2⁴ in E times 2² in h_a: inputs are padded to a multiple of it."""


class ArchitectureError(ValueError):
    """A state dict that is not an MS-ILLM (HiFiC mean-scale hyperprior) state dict."""


@dataclass(frozen=True)
class Architecture:
    """The widths of one model; the defaults are the released models' (all of them)."""

    encoder_channels: tuple[int, ...] = (60, 120, 240, 480, 960)
    """E's five stages; G's widths are the same in reverse (960, 480, 240, 120, 60)."""
    latent_features: int = 220
    hyper_features: int = 320
    residual_blocks: int = 9

    def __post_init__(self) -> None:
        if len(self.encoder_channels) != 5:
            raise ArchitectureError(
                f"the encoder has 5 stages (4 of stride 2), not {len(self.encoder_channels)}"
            )

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> Architecture:
        """The widths a state dict was made with, read from its tensors' shapes."""

        def rows(key: str) -> int:
            if key not in state:
                raise ArchitectureError(f"not an MS-ILLM state dict: it has no {key}")
            return int(state[key].shape[0])

        stages = tuple(rows(f"encoder.blocks.{index}.0.weight") for index in range(5))
        block = re.compile(r"^decoder\.resid_blocks\.(\d+)\.sequence\.0\.weight$")
        blocks = {int(m[1]) for key in state if (m := block.match(key)) is not None}
        if blocks != set(range(len(blocks))):
            raise ArchitectureError(f"residual blocks {sorted(blocks)} are not numbered 0 … n-1")
        return cls(
            encoder_channels=stages,
            latent_features=rows("encoder.blocks.5.weight"),
            hyper_features=rows("hyper_analysis.0.weight"),
            residual_blocks=len(blocks),
        )


class ChannelNorm2d(nn.Module):
    """x̃ = (x − mean_c) · rsqrt(var_c + ε), then γ·x̃ + β (statistics over channels, per pixel).

    Evaluated in the reference's order of operations (``ChannelNorm2D``), so that on one
    machine the two give the same bits and the rounded symbols agree exactly.
    """

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        variance = x.var(dim=1, keepdim=True)
        return self.gamma * ((x - mean) * torch.rsqrt(variance + self.eps)) + self.beta


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2)


def _deconv(in_channels: int, out_channels: int, kernel: int) -> nn.ConvTranspose2d:
    """×2 upsampling: stride 2, padding k//2, output padding 1."""
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel, stride=2, padding=kernel // 2, output_padding=1
    )


def _normed(layer: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(layer, ChannelNorm2d(channels), nn.ReLU())


class Encoder(nn.Module):
    """E: y = E(x), 16× smaller."""

    def __init__(self, widths: tuple[int, ...], latent: int) -> None:
        super().__init__()
        stages = [_normed(_conv(3, widths[0], 7), widths[0])]
        stages += [_normed(_conv(a, b, 3, stride=2), b) for a, b in pairwise(widths)]
        self.blocks = nn.Sequential(*stages, _conv(widths[-1], latent, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)  # type: ignore[no-any-return]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.sequence = nn.Sequential(
            _conv(channels, channels, 3),
            ChannelNorm2d(channels),
            nn.ReLU(),
            _conv(channels, channels, 3),
            ChannelNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sequence(x)  # type: ignore[no-any-return]


class Generator(nn.Module):
    """G: ŷ → image (unclamped), 16× larger; widths are E's in reverse."""

    def __init__(self, widths: tuple[int, ...], latent: int, residual_blocks: int) -> None:
        super().__init__()
        wide = widths[0]
        self.block_0 = nn.Sequential(
            ChannelNorm2d(latent), _conv(latent, wide, 3), ChannelNorm2d(wide)
        )
        self.resid_blocks = nn.Sequential(*(ResidualBlock(wide) for _ in range(residual_blocks)))
        upsampling = [_normed(_deconv(a, b, 3), b) for a, b in pairwise(widths)]
        self.blocks = nn.Sequential(*upsampling, _conv(widths[-1], 3, 7))

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        h = self.block_0(y_hat)
        return self.blocks(h + self.resid_blocks(h))  # type: ignore[no-any-return]


def _hyper_analysis(latent: int, hyper: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(latent, hyper, 3),
        nn.ReLU(inplace=True),
        _conv(hyper, hyper, 5, stride=2),
        nn.ReLU(inplace=True),
        _conv(hyper, hyper, 5, stride=2),
    )


def _hyper_synthesis(hyper: int, latent: int) -> nn.Sequential:
    return nn.Sequential(
        _deconv(hyper, hyper, 5),
        nn.ReLU(inplace=True),
        _deconv(hyper, hyper, 5),
        nn.ReLU(inplace=True),
        _conv(hyper, latent, 3),
    )


class MSILLM(CompressionModel):
    """E, the hyperprior and G with the released module names (see the module docstring)."""

    stride = STRIDE

    def __init__(self, architecture: Architecture | None = None) -> None:
        super().__init__()
        arch = architecture or Architecture()
        self.architecture = arch
        widths = arch.encoder_channels
        self.encoder = Encoder(widths, arch.latent_features)
        self.decoder = Generator(
            tuple(reversed(widths)), arch.latent_features, arch.residual_blocks
        )
        self.hyper_analysis = _hyper_analysis(arch.latent_features, arch.hyper_features)
        self.hyper_synthesis_mean = _hyper_synthesis(arch.hyper_features, arch.latent_features)
        self.hyper_synthesis_scale = _hyper_synthesis(arch.hyper_features, arch.latent_features)
        self.hyper_bottleneck = EntropyBottleneck(arch.hyper_features)
        self.latent_bottleneck = GaussianConditional(None)

    def hyperprior(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ) of y from the decoded ẑ."""
        return self.hyper_synthesis_mean(z_hat), self.hyper_synthesis_scale(z_hat)

    def symbols(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y, round(y − μ), round(z − m)) for a padded ``x``, the symbols
        :meth:`compress_strings` codes (for tests), with m the factorised model's medians."""
        y = self.encoder(x)
        z = self.hyper_analysis(y)
        medians = self.hyper_bottleneck.quantiles[:, 0, 1].reshape(1, -1, 1, 1)
        z_symbols = torch.round(z - medians)
        means, _ = self.hyperprior(z_symbols + medians)
        return y, torch.round(y - means), z_symbols

    def compress_strings(self, x: torch.Tensor) -> tuple[bytes, bytes]:
        """``x``: (1, 3, H, W) in [0, 1], H and W multiples of 64 → (y string, z string)."""
        y = self.encoder(x)
        z = self.hyper_analysis(y)
        z_strings = self.hyper_bottleneck.compress(z)
        z_hat = self.hyper_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.hyperprior(z_hat)
        indexes = self.latent_bottleneck.build_indexes(scales)
        y_strings = self.latent_bottleneck.compress(y, indexes, means=means)
        return bytes(y_strings[0]), bytes(z_strings[0])

    def decode_latent(
        self, y_string: bytes, z_string: bytes, size: tuple[int, int]
    ) -> torch.Tensor:
        """ŷ = symbols + μ from the two strings; ``size`` is the padded image size."""
        z_hat = self.hyper_bottleneck.decompress([z_string], (size[0] // STRIDE, size[1] // STRIDE))
        means, scales = self.hyperprior(z_hat)
        indexes = self.latent_bottleneck.build_indexes(scales)
        return self.latent_bottleneck.decompress([y_string], indexes, means=means)

    def decompress_strings(
        self, y_string: bytes, z_string: bytes, size: tuple[int, int]
    ) -> torch.Tensor:
        """The padded (1, 3, H, W) x̂ = clamp(G(ŷ), 0, 1)."""
        return self.decoder(self.decode_latent(y_string, z_string, size)).clamp(0.0, 1.0)


def from_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[MSILLM, bool]:
    """The eval-mode model holding ``state`` (strict), and whether its entropy-coder tables
    had to be computed (``update()``) because the state dict has none.

    Tables present in ``state`` are used as stored, as the reference's ``model.update()``
    (``force=False``) does. Raises :class:`ArchitectureError` on any other state dict.
    """
    net = MSILLM(Architecture.of(state))
    try:
        net.load_state_dict(dict(state), strict=True)
    except (RuntimeError, KeyError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise ArchitectureError(f"not an MS-ILLM state dict ({first})") from None
    computed = bool(net.update(force=False))
    return net.eval(), computed


def coding_tables(net: MSILLM) -> list[torch.Tensor]:
    """The integer CDF tables the entropy coder uses (for a digest of them)."""
    return [
        getattr(module, name)
        for module in (net.hyper_bottleneck, net.latent_bottleneck)
        for name in ("_quantized_cdf", "_offset", "_cdf_length")
    ]
