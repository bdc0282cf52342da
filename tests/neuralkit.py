"""Tiny neural-codec configurations and checkpoints for tests (seconds, not minutes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from support import kodak_path

TINY_HIFIC: dict[str, Any] = {
    "encoder_channels": [8, 8, 8, 8, 8],
    "latent_channels": 8,
    "hyper_channels": 8,
    "generator_channels": 8,
    "generator_blocks": 1,
    "upsample_channels": [8, 8, 8, 8],
    "discriminator_channels": [8, 8, 8, 8],
    "rate_target": 0.3,
    "perceptual": "ms-ssim",
    "perceptual_weight": 1.0,
    "gan_weight": 0.15,
    "warmup_steps": 1,
    "gan_start_step": 1,
    "sparsity_weight": 0.0,
}

TINY_GC: dict[str, Any] = {
    "channels": 4,
    "encoder_channels": [8, 8, 8, 8, 8],
    "generator_channels": 8,
    "generator_blocks": 1,
    "upsample_channels": [8, 8, 8, 8],
    "discriminator_channels": [8, 8, 8, 8],
    "norm": "instance",
    "mse_weight": 10.0,
    "feature_matching_weight": 10.0,
    "perceptual": "ms-ssim",
    "perceptual_weight": 10.0,
    "gan_start_step": 1,
    "soft_sigma": 1.0,
    "semantic_classes": 0,
}


def kodak(index: int = 1) -> np.ndarray:
    with Image.open(kodak_path(f"kodim{index:02d}")) as image:
        return np.asarray(image.convert("RGB"))


def save_tiny(
    family: str, name: str, folder: Path, config: Mapping[str, Any], seed: int = 0
) -> Path:
    """A seeded, untrained checkpoint of ``family`` (coding tables built) in ``folder``."""
    import torch

    from perceptlab.codecs.neural import checkpoints
    from perceptlab.codecs.neural.family import family as family_module

    torch.manual_seed(seed)
    module = family_module(family)
    typed = module.Config.of(config)  # as a checkpoint's dict is read back
    model = module.build(typed).eval()
    model.update(force=True)
    path = folder / f"{name}{checkpoints.SUFFIX}"
    stored = typed.to_dict()
    checkpoints.save(
        path, family=family, name=name, version="1", config=stored, state_dict=model.state_dict()
    )
    return path


def training_images(folder: Path, count: int = 2, size: tuple[int, int] = (96, 128)) -> Path:
    """``count`` crops of Kodak images as PNGs in ``folder`` (a training set for smoke runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(kodak(index + 1)[: size[0], : size[1]]).save(folder / f"{index}.png")
    return folder
