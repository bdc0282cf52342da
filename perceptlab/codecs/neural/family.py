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

import dataclasses
import importlib
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, cast

if TYPE_CHECKING:
    from torch import nn

    from perceptlab.codecs.neural.layers import TrainingSystem

FAMILIES = ("hific", "gc", "tunable", "rdo")
"""The family modules of :mod:`perceptlab.codecs.neural` (checkpoint ``family`` values)."""


class FamilyConfig:
    """Base of a family's configuration: a frozen dataclass whose fields are the
    architecture's and the loss's settings (each family module's ``Config``). A checkpoint
    stores it as a plain dict (:meth:`to_dict`); :meth:`of` reads one back, and
    :meth:`with_overrides` applies a recipe's or ``--set``'s settings, each checked against
    the field's type, unknown names refused with the known ones listed."""

    FAMILY: ClassVar[str] = ""

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Self:
        """The configuration a checkpoint stored; settings it lacks take the field's
        default (an older checkpoint), unknown ones are refused."""
        return cls().with_overrides(data)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Self:
        known = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown {self.FAMILY} setting(s) {unknown}; known: {sorted(known)}")
        hints = typing.get_type_hints(type(self))
        values = {
            name: _checked(self.FAMILY, name, hints[name], v) for name, v in overrides.items()
        }
        return dataclasses.replace(self, **values)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists), as a checkpoint stores them."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()  # type: ignore[call-overload]
        }


def _checked(family: str, name: str, kind: Any, value: Any) -> Any:
    """``value`` as the field's type (int, float, str, bool, or a tuple of int or float), or a
    ValueError that names the setting and what it takes."""
    wrong = ValueError(f"{family} setting {name} takes {_describe(kind)}, not {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if typing.get_origin(kind) is tuple:
        element = typing.get_args(kind)[0]
        if not isinstance(value, list | tuple):
            raise wrong
        try:
            return tuple(_checked(family, name, element, v) for v in value)
        except ValueError:
            raise wrong from None
    raise TypeError(f"{family} setting {name}: unsupported field type {kind!r}")


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return {int: "a list of integers", float: "a list of numbers"}[typing.get_args(kind)[0]]
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}[kind]


class Family(Protocol):
    @property
    def Config(self) -> type[FamilyConfig]:
        """The family's configuration class (a frozen dataclass)."""

    @property
    def CONFIGS(self) -> Mapping[str, FamilyConfig]:
        """Named configurations (``small``, …): the architecture's and the loss's settings."""

    def build(self, config: Any) -> nn.Module:
        """The codec model (inference: encoder, entropy models, decoder) for ``config``
        (the family's ``Config``)."""

    def training_system(self, config: Any) -> TrainingSystem:
        """The model with its losses and discriminator, as the training loop drives it."""


def family(name: str) -> Family:
    """The module of family ``name``; a ValueError naming the families for any other."""
    if name not in FAMILIES:
        raise ValueError(f"unknown neural-codec family {name!r}; known: {', '.join(FAMILIES)}")
    return cast(Family, importlib.import_module(f"perceptlab.codecs.neural.{name}"))


if TYPE_CHECKING:  # mypy: each family module satisfies the contract
    from perceptlab.codecs.neural import gc, hific, rdo, tunable

    _CHECKED: tuple[Family, ...] = (hific, gc, tunable, rdo)
