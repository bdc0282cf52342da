"""Training losses of the GAN codecs.

- :func:`ms_ssim_loss` — 1 − MS-SSIM (Wang, Simoncelli, Bovik 2003) through pytorch_msssim,
  with the Gaussian window shrunk for small crops (MS-SSIM's five scales need a short side
  above (win − 1)·2⁴ px: 160 at the standard 11, 96 at 7).
- :func:`ns_generator_loss` / :func:`ns_discriminator_loss` — the non-saturating GAN loss
  of HiFiC (Mentzer et al. 2020, eq. 4/5; Goodfellow et al. 2014), on logits.
- :func:`lsgan_generator_loss` / :func:`lsgan_discriminator_loss` — least-squares GAN (Mao et
  al. 2017) averaged over discriminator scales, as in GC (Agustsson et al. 2019).
- :func:`feature_matching_loss` — L1 between D's intermediate features on x and x̂
  (pix2pixHD, Wang et al. 2018), averaged over layers and scales.
- :func:`chroma_mse` — the mean squared error of the chroma (Cb, Cr of BT.601 YCbCr) on the
  0–255 scale: an extra weight on it keeps colour from being left out (see ``chroma_weight``
  in :mod:`.hific`).
- :class:`PerceptualTerm` — LPIPS or DISTS when their ImageNet weights are in the weights
  folder (loaded by :func:`perceptlab.lib.networks.load_network`), otherwise a stated
  fallback (MS-SSIM); :attr:`PerceptualTerm.kind` says which, for the model card.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim


def ms_ssim_win(side: int) -> int:
    """Largest odd Gaussian window ≤ 11 for which five-scale MS-SSIM accepts ``side`` px."""
    for win in (11, 9, 7, 5, 3):
        if side > (win - 1) * 16:
            return win
    raise ValueError(f"{side} px is too small for five-scale MS-SSIM (needs more than 32 px)")


def ms_ssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 − MS-SSIM(x̂, x) on images in [0, 1] (data range 1)."""
    win = ms_ssim_win(min(x.shape[-2:]))
    return 1.0 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0, win_size=win, size_average=True)


# BT.601 RGB → (Cb, Cr) rows of the YCbCr matrix (full range, no offset).
_CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def chroma_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared (Cb, Cr) error on the 0–255 scale of images in [0, 1]: zero for any
    luma-only difference (equal on R, G, B), ≈ the RGB MSE for a pure chroma shift."""
    rows = x.new_tensor(_CHROMA)
    diff = torch.einsum("kc,bchw->bkhw", rows, (x_hat - x) * 255.0)
    return (diff**2).mean()


def ns_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(x̂) = softplus(−logit)."""
    return F.softplus(-fake_logits).mean()


def ns_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(x) − log(1 − D(x̂))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def lsgan_generator_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([((scale[-1] - 1.0) ** 2).mean() for scale in fake]).mean()


def lsgan_discriminator_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]
) -> torch.Tensor:
    terms = [
        ((r[-1] - 1.0) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real, fake, strict=True)
    ]
    return torch.stack(terms).mean()


def feature_matching_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]
) -> torch.Tensor:
    terms = [
        F.l1_loss(f, r.detach())
        for real_scale, fake_scale in zip(real, fake, strict=True)
        for r, f in zip(real_scale[:-1], fake_scale[:-1], strict=True)
    ]
    return torch.stack(terms).mean()


class PerceptualTerm(torch.nn.Module):
    """A perceptual distance for training: ``preferred`` ("lpips" or "dists") when its weights
    are present, else 1 − MS-SSIM. Never a network with random weights.

    :attr:`kind` is what is actually used and :attr:`reason` why (for the model card).
    """

    def __init__(self, preferred: str, *, folder: Path | None = None, device: str = "cpu") -> None:
        super().__init__()
        from perceptlab.lib import weights as weightfiles
        from perceptlab.lib.networks import load_network
        from perceptlab.lib.weights import configured_weights_dir

        self.network: torch.nn.Module | None = None
        self.kind = "ms-ssim"
        self.reason = ""
        if preferred != "ms-ssim":
            try:
                self.network = load_network(
                    preferred, folder or configured_weights_dir(), device=device
                )
                self.kind = preferred
            except weightfiles.WeightsUnavailable as error:
                self.reason = f"{preferred} unavailable ({error}); 1 − MS-SSIM used instead"

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.network is not None:
            return self.network(x_hat.clamp(0, 1), x)  # type: ignore[no-any-return]
        return ms_ssim_loss(x_hat, x)
