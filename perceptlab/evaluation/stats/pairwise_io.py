"""Reading pairwise (2AFC) judgments into a trials frame.

A trials frame has one row per trial: ``rater``, ``a``, ``b`` (the two items shown) and
``outcome`` (float: 1.0 = a preferred, 0.0 = b preferred, 0.5 = undecided, the CLIC "cannot
decide" convention of half a win each way); an optional ``group`` (items of different groups are
scaled separately; no column = one group); every other column is carried along.

Two CSV layouts are recognised from their header:

* trials: ``trial,rater,group,stimulus_a,stimulus_b,winner,loser`` (the files converted from
  pwcmp and sureal in the ``pairwise`` dataset of :mod:`perceptlab.lib.datasets`);
  a = ``stimulus_a``;
* HiFiC user study: ``rater,record,image,crop_x,crop_y,crop_w,crop_h,greater,lesser,
  random_choice`` (Mentzer et al., NeurIPS 2020, ``raw/userstudy.json`` of hific.github.io);
  a = ``greater`` (the preferred method), one group. ``random_choice=1`` marks a trial where the
  rater could not decide and the study recorded a random side.

HiFiC rows whose two sides are the same method (``greater == lesser``; 2 of the 5,220 rows,
both ``minnen_mse_med`` and both ``random_choice=1``) showed the rater two identical
reconstructions: they say nothing about any pair of methods and are dropped, leaving the
5,218 usable trials. The count of dropped rows is kept in ``frame.attrs["dropped"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .common import StatsInputError

Undecided = Literal["half", "random", "drop"]

TRIALS_COLUMNS = ("trial", "rater", "group", "stimulus_a", "stimulus_b", "winner", "loser")
HIFIC_COLUMNS = (
    "rater",
    "record",
    "image",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "greater",
    "lesser",
    "random_choice",
)
UNDECIDED_CHOICES = ("half", "random", "drop")
MAX_LISTED = 5
FIRST_LINE = 2  # data row 0 is on line 2 of the file, after the header


def read_pairwise_csv(path: str | Path, *, undecided: Undecided = "half") -> pd.DataFrame:
    """Read a pairwise CSV of either layout (detected from the header) as a trials frame.

    ``undecided`` applies to HiFiC ``random_choice=1`` trials: ``"half"`` scores them 0.5
    (cannot decide = half a win each way), ``"random"`` keeps the recorded random side as a
    decision (outcome 1.0), ``"drop"`` removes them. The trials layout has no undecided trials.

    Raises :class:`StatsInputError` for a missing or empty file, an unknown header (listing the
    accepted column sets), missing values, a winner that is neither side, or a trial that
    compares an item with itself (file line numbers named).
    """
    if undecided not in UNDECIDED_CHOICES:
        raise StatsInputError(
            f"undecided={undecided!r} is not one of {', '.join(UNDECIDED_CHOICES)}"
        )
    path = Path(path)
    raw = _read_text_csv(path)
    what = f"pairwise file {path}"
    if set(TRIALS_COLUMNS) <= set(raw.columns):
        _require_values(raw, TRIALS_COLUMNS, what=what)
        frame = _from_trials(raw, what=what)
    elif set(HIFIC_COLUMNS) <= set(raw.columns):
        _require_values(raw, HIFIC_COLUMNS, what=what)
        frame = _from_hific(raw, undecided=undecided, what=what)
    else:
        raise StatsInputError(
            f"{what} has columns {', '.join(map(str, raw.columns))}, which match no known "
            f"layout; accepted: ({', '.join(TRIALS_COLUMNS)}) or ({', '.join(HIFIC_COLUMNS)})"
        )
    return frame


def _read_text_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise StatsInputError(f"pairwise file {path} does not exist")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except pd.errors.EmptyDataError as exc:
        raise StatsInputError(f"pairwise file {path} is empty") from exc
    if raw.empty:
        raise StatsInputError(f"pairwise file {path} has a header but no trials")
    return raw


def _require_values(raw: pd.DataFrame, columns: tuple[str, ...], *, what: str) -> None:
    """Every cell of the layout's columns must be non-blank."""
    for column in columns:
        blank = np.flatnonzero(raw[column].str.strip().eq("").to_numpy())
        if blank.size:
            raise StatsInputError(
                f"{what}: missing {column} on line(s) {_lines(blank)}; every trial needs one"
            )


def _from_trials(raw: pd.DataFrame, *, what: str) -> pd.DataFrame:
    a, b = raw["stimulus_a"], raw["stimulus_b"]
    winner, loser = raw["winner"], raw["loser"]
    _reject_self_comparisons(a.eq(b).to_numpy(), what=what)
    consistent = (winner.eq(a) & loser.eq(b)) | (winner.eq(b) & loser.eq(a))
    bad = np.flatnonzero(~consistent.to_numpy())
    if bad.size:
        raise StatsInputError(
            f"{what}: winner/loser are not the two stimuli of the trial on line(s) "
            f"{_lines(bad)}; winner must be stimulus_a or stimulus_b and loser the other"
        )
    trial = _integers(raw["trial"], column="trial", what=what)
    extra = [c for c in raw.columns if c not in TRIALS_COLUMNS]
    frame = pd.DataFrame(
        {
            "trial": trial,
            "rater": raw["rater"],
            "group": raw["group"],
            "a": a,
            "b": b,
            "outcome": winner.eq(a).to_numpy(dtype=np.float64),
        }
    )
    frame = pd.concat([frame, raw[extra]], axis=1)
    frame.attrs = {"layout": "trials", "dropped": {}}
    return frame


def _from_hific(raw: pd.DataFrame, *, undecided: Undecided, what: str) -> pd.DataFrame:
    random_choice = _integers(raw["random_choice"], column="random_choice", what=what)
    not_flag = np.flatnonzero(~np.isin(random_choice, (0, 1)))
    if not_flag.size:
        raise StatsInputError(f"{what}: random_choice must be 0 or 1 on line(s) {_lines(not_flag)}")
    same = raw["greater"].eq(raw["lesser"]).to_numpy()
    _reject_self_comparisons(same & (random_choice == 0), what=what)
    keep = ~same
    dropped = {"same method on both sides (shown two identical images)": int(same.sum())}
    if undecided == "drop":
        dropped["undecided (random_choice=1)"] = int((keep & (random_choice == 1)).sum())
        keep &= random_choice == 0
    outcome = np.where((random_choice == 1) & (undecided == "half"), 0.5, 1.0)
    crops = {c: _integers(raw[c], column=c, what=what) for c in HIFIC_COLUMNS[3:7]}
    extra = [c for c in raw.columns if c not in HIFIC_COLUMNS]
    frame = pd.DataFrame(
        {
            "record": raw["record"],
            "rater": raw["rater"],
            "image": raw["image"],
            "a": raw["greater"],
            "b": raw["lesser"],
            "outcome": outcome,
            "random_choice": random_choice,
            **crops,
        }
    )
    frame = pd.concat([frame, raw[extra]], axis=1).loc[keep].reset_index(drop=True)
    frame.attrs = {"layout": "hific", "dropped": {k: v for k, v in dropped.items() if v}}
    return frame


def _reject_self_comparisons(same: np.ndarray, *, what: str) -> None:
    rows = np.flatnonzero(same)
    if rows.size:
        raise StatsInputError(
            f"{what}: the trial on line(s) {_lines(rows)} compares an item with itself; "
            "a trial needs two different items"
        )


def _integers(values: pd.Series, *, column: str, what: str) -> np.ndarray:
    parsed = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(parsed) | (parsed != np.round(parsed)))
    if bad.size:
        shown = ", ".join(repr(v) for v in values.iloc[bad[:MAX_LISTED]])
        raise StatsInputError(
            f"{what}: {column} must be an integer on line(s) {_lines(bad)} (values {shown})"
        )
    return parsed.astype(np.int64)


def _lines(positions: np.ndarray) -> str:
    listed = ", ".join(str(int(p) + FIRST_LINE) for p in positions[:MAX_LISTED])
    more = f" and {positions.size - MAX_LISTED} more" if positions.size > MAX_LISTED else ""
    return listed + more
