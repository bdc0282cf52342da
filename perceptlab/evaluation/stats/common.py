"""Shared pieces of the statistics modules: model identity and input validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ModelId:
    """The name and version of the model that produced a result; stored with every output."""

    name: str
    version: str

    def label(self) -> str:
        return f"{self.name} v{self.version}"


class StatsInputError(ValueError):
    """A ratings or trials frame that a statistic cannot use; the message names the problem."""


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise :class:`StatsInputError` naming every missing column and the columns present."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StatsInputError(
            f"{what} is missing column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, frame.columns)) or 'no columns'}"
        )
    if frame.empty:
        raise StatsInputError(f"{what} has no rows")
