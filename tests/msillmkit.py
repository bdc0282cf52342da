"""Seeded MS-ILLM weights for tests, and the golden files made from the reference with them.

:func:`seeded_state_dict` draws every learned tensor from its own generator, seeded from the
run's seed and the CRC-32 of the tensor's name, so the weights depend on names and shapes only
(not on the order or the code that built a model): the reference model and ours get the same
weights from the same template. ``tests/codecs/golden/make_msillm_golden.py`` uses it on the
reference; ``tests/codecs/test_neural_msillm.py`` on ours.

The recipe (u(a, b) uniform, per tensor):

* convolution weights (4-D): u(−b, b), b = √(3 / ∏shape[1:]) (unit-variance gain);
  convolution biases: u(−0.1, 0.1);
* ChannelNorm γ: 1 + u(−0.2, 0.2); β: u(−0.2, 0.2);
* the factorised model's matrices u(−1, 1), biases and factors u(−0.5, 0.5), quantiles
  (−10, m, 10) per channel with the median m ~ u(−0.5, 0.5);
* CompressAI's fixed buffers (``target``, the bounds, ``scale_bound``) and the entropy-coder
  tables (empty until ``update()``) are kept from the template.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

GOLDEN_DIR = Path(__file__).resolve().parent / "codecs" / "golden"
GOLDEN_TENSORS = GOLDEN_DIR / "msillm_seeded.npz"
GOLDEN_REFERENCE = GOLDEN_DIR / "msillm_reference.json"
SEED = 2023
"""The seed of the golden weights."""

TINY: dict[str, Any] = {
    "encoder_channels": (8, 8, 8, 8, 16),
    "latent_features": 8,
    "hyper_features": 8,
    "residual_blocks": 1,
}
"""A narrow MS-ILLM for the codec tests (the released widths are 60 … 960, 220, 320, 9)."""

_KEPT = ("target", ".bound", "scale_bound", "_offset", "_quantized_cdf", "_cdf_length")


def _uniform(generator: torch.Generator, shape: torch.Size, low: float, high: float) -> Any:
    return torch.rand(shape, generator=generator).mul_(high - low).add_(low)


def seeded_tensor(key: str, template: torch.Tensor, seed: int) -> torch.Tensor:
    """The recipe's value of one state-dict entry (see the module docstring)."""
    if key.endswith(_KEPT) or key.endswith("scale_table"):
        return template.clone()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    shape = template.shape
    if key.endswith(".quantiles"):
        medians = _uniform(generator, shape[:1], -0.5, 0.5)
        ends = torch.full_like(medians, 10.0)
        return torch.stack([-ends, medians, ends], dim=-1).reshape(shape)
    if ".matrices." in key or "._matrix" in key:
        return _uniform(generator, shape, -1.0, 1.0)
    if any(part in key for part in (".biases.", "._bias", ".factors.", "._factor")):
        return _uniform(generator, shape, -0.5, 0.5)
    if key.endswith(".gamma"):
        return _uniform(generator, shape, 0.8, 1.2)
    if key.endswith(".beta"):
        return _uniform(generator, shape, -0.2, 0.2)
    if key.endswith(".weight") and len(shape) == 4:
        bound = (3.0 / shape[1:].numel()) ** 0.5
        return _uniform(generator, shape, -bound, bound)
    if key.endswith(".bias") and len(shape) == 1:
        return _uniform(generator, shape, -0.1, 0.1)
    raise KeyError(f"the seeded recipe has no rule for {key} {tuple(shape)}")


def seeded_state_dict(template: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every entry of ``template`` (a model's state dict) by the recipe."""
    return {key: seeded_tensor(key, value, seed) for key, value in template.items()}
