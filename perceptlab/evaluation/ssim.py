"""SSIM and MS-SSIM with separable Gaussian windows, equal to piq's to float rounding.

SSIM (Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861)
and MS-SSIM (Wang, Simoncelli and Bovik, Asilomar 2003, doi:10.1109/ACSSC.2003.1292216), in the
conventions of piq 0.8 (``piq.ssim``, ``piq.multi_scale_ssim``), which the platform used before
and against which the tests check every value (to 1e-12 in float64; in float32 no further from
the exact value than piq's own float32 result, or 3e-6):

* inputs (N, C, H, W) in [0, 1]; an 11-tap Gaussian window, σ = 1.5, normalised; "valid"
  filtering (no padding); K1 = 0.01, K2 = 0.03; the value is the mean of the SSIM map over
  pixels, then over channels;
* SSIM first average-pools the images by f = max(1, round(min(H, W) / 256)) (piq's
  ``downsample``, after Wang's own MATLAB code);
* MS-SSIM: 5 scales with the weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333; between scales
  each image is padded on the top and left by replication when a side is odd, then 2×2
  average-pooled; the product of cs at scales 1–4 and SSIM at scale 5, each clipped at 0
  (ReLU) and raised to its weight, averaged over channels.

Why not piq's own functions: piq filters with the full 11×11 window (121 products per pixel
and map) and, on CPU, PyTorch's grouped convolution is ~1.5× slower per image in a batch than
alone. The window is separable (the 2-D Gaussian is the outer product of the 1-D one), so
two 11-tap passes give the same sums with 22 products, and the five local statistics (μx,
μy, E[x²], E[y²], E[xy]) are filtered in one stacked call; each image is filtered on its own.
And SSIM's pre-pooled pair is one of MS-SSIM's scales (the first at f = 1, the second at f = 2
for even sides), so a stimulus scored with both computes it once (:class:`Pyramid`). Only the
metrics layer imports this module, inside its builders (it imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_MIN_SIDE = (WINDOW - 1) * 2 ** (len(MS_WEIGHTS) - 1) + 1  # 161


@dataclass(frozen=True)
class Scale:
    """One scale of one image pair: the mean SSIM and the mean contrast–structure term cs,
    per channel, shape (C,)."""

    ssim: torch.Tensor
    cs: torch.Tensor


def gaussian_window(dtype: torch.dtype, size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product is piq's 2-D window."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    window = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return window / window.sum()


def _filter(maps: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Valid separable filtering of every channel of (1, K, H, W): rows, then columns."""
    channels = maps.size(1)
    rows = window.view(1, 1, 1, -1).expand(channels, 1, 1, window.numel())
    columns = window.view(1, 1, -1, 1).expand(channels, 1, window.numel(), 1)
    return F.conv2d(F.conv2d(maps, rows, groups=channels), columns, groups=channels)


def scale(x: torch.Tensor, y: torch.Tensor) -> Scale:
    """SSIM and cs of one pair (1, C, H, W) at its own resolution; H and W ≥ 11."""
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"{tuple(x.shape[-2:])} is smaller than the {WINDOW}-px window")
    channels = x.size(1)
    window = gaussian_window(x.dtype).to(x.device)
    stats = _filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, xx, yy, xy = stats.split(channels, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx, sigma_yy, sigma_xy = xx - mu_xx, yy - mu_yy, xy - mu_xy
    c1, c2 = K1**2, K2**2
    cs = (2.0 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs
    return Scale(ssim=ssim_map.mean(dim=(-1, -2))[0], cs=cs.mean(dim=(-1, -2))[0])


def downsample_factor(height: int, width: int) -> int:
    """piq's SSIM pre-pooling: f = max(1, round(min(H, W) / 256))."""
    return max(1, round(min(height, width) / 256))


class Pyramid:
    """One pair (1, C, H, W) at MS-SSIM's scales, each scale's :class:`Scale` computed once.

    Level 0 is the pair itself; level k + 1 pads level k on the top and left by replication
    when a side is odd, then 2×2 average-pools it (piq's MS-SSIM). SSIM's pre-pooled pair is
    level 0 at f = 1 and level 1 at f = 2 when H and W are even (no padding: piq's SSIM pools
    without it), so a stimulus scored with SSIM and MS-SSIM computes that scale once.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._pairs = [(x, y)]
        self._scales: dict[int, Scale] = {}

    def pair(self, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        while len(self._pairs) <= level:
            x, y = self._pairs[-1]
            pad = max(x.size(-2) % 2, x.size(-1) % 2)
            if pad:
                x = F.pad(x, pad=[pad, 0, pad, 0], mode="replicate")
                y = F.pad(y, pad=[pad, 0, pad, 0], mode="replicate")
            self._pairs.append((F.avg_pool2d(x, kernel_size=2), F.avg_pool2d(y, kernel_size=2)))
        return self._pairs[level]

    def scale(self, level: int) -> Scale:
        if level not in self._scales:
            self._scales[level] = scale(*self.pair(level))
        return self._scales[level]

    def ssim_level(self) -> int | None:
        """The level equal to SSIM's pre-pooled pair, or None when there is none."""
        x, _ = self._pairs[0]
        height, width = x.size(-2), x.size(-1)
        factor = downsample_factor(height, width)
        if factor == 1:
            return 0
        if factor == 2 and height % 2 == 0 and width % 2 == 0:
            return 1
        return None


def ssim(x: torch.Tensor, y: torch.Tensor, pyramid: Pyramid | None = None) -> float:
    """SSIM of one pair (1, C, H, W); ``pyramid``: the pair's :class:`Pyramid`, whose scale is
    used where it is SSIM's pre-pooled pair."""
    level = pyramid.ssim_level() if pyramid is not None else None
    if pyramid is not None and level is not None:
        return float(pyramid.scale(level).ssim.mean())
    factor = downsample_factor(x.size(-2), x.size(-1))
    if factor > 1:
        x, y = F.avg_pool2d(x, kernel_size=factor), F.avg_pool2d(y, kernel_size=factor)
    return float(scale(x, y).ssim.mean())


def ms_ssim(x: torch.Tensor, y: torch.Tensor, pyramid: Pyramid | None = None) -> float:
    """MS-SSIM of one pair (1, C, H, W), H and W ≥ 161; ``pyramid``: the pair's
    :class:`Pyramid` when other metrics share it."""
    if min(x.shape[-2:]) < MS_MIN_SIDE:
        raise ValueError(f"{tuple(x.shape[-2:])} is smaller than MS-SSIM's {MS_MIN_SIDE} px")
    levels = Pyramid(x, y) if pyramid is None else pyramid
    last = len(MS_WEIGHTS) - 1
    terms = [levels.scale(level).cs for level in range(last)] + [levels.scale(last).ssim]
    stacked = torch.relu(torch.stack(terms))  # (levels, C)
    weights = torch.tensor(MS_WEIGHTS, dtype=stacked.dtype, device=stacked.device)
    return float(torch.prod(stacked ** weights.view(-1, 1), dim=0).mean())
