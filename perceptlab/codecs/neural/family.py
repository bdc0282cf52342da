"""The contract every trainable neural-codec family module keeps (``hific``, ``gc``,
``tunable``, ``rdo``), and the one place a family name becomes its module.

A family module holds its architecture and its training system; the codec adapters
(:mod:`.codec`) only ``build`` a model from a checkpoint's configuration, the training loop
(:mod:`.training`) only reads ``CONFIGS`` and builds a ``training_system``. mypy checks each
module against :class:`Family` (the ``TYPE_CHECKING`` block below), so a family that drops
or renames one of these fails the type check, not a user's training run. Modules are
imported on first use: importing this module imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from torch import nn

    from perceptlab.codecs.neural.layers import TrainingSystem

FAMILIES = ("hific", "gc", "tunable", "rdo")
"""The family modules of :mod:`perceptlab.codecs.neural` (checkpoint ``family`` values)."""


class Family(Protocol):
    @property
    def CONFIGS(self) -> Mapping[str, Mapping[str, Any]]:
        """Named configurations (``small``, …): the architecture's and the loss's settings."""

    def build(self, config: dict[str, Any]) -> nn.Module:
        """The codec model (inference: encoder, entropy models, decoder) for ``config``."""

    def training_system(self, config: dict[str, Any]) -> TrainingSystem:
        """The model with its losses and discriminator, as the training loop drives it."""


def family(name: str) -> Family:
    """The module of family ``name``; a ValueError naming the families for any other."""
    if name not in FAMILIES:
        raise ValueError(f"unknown neural-codec family {name!r}; known: {', '.join(FAMILIES)}")
    return cast(Family, importlib.import_module(f"perceptlab.codecs.neural.{name}"))


if TYPE_CHECKING:  # mypy: each family module satisfies the contract
    from perceptlab.codecs.neural import gc, hific, rdo, tunable

    _CHECKED: tuple[Family, ...] = (hific, gc, tunable, rdo)
