"""Absolute-rating frames: reading, checking and exporting them.

A ratings frame is long format, one row per rating: required columns ``rater``, ``stimulus``
(strings) and ``score`` (float); optional ``content`` and ``condition``; any other column is
carried along. A rater who rated a stimulus more than once contributes repetitions (several rows
with the same ``rater`` and ``stimulus``), which every estimator keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .common import StatsInputError, require_columns

REQUIRED = ("rater", "stimulus", "score")
ID_COLUMNS = ("rater", "stimulus", "content", "condition")
MAX_LISTED = 5


def read_ratings_csv(path: str | Path) -> pd.DataFrame:
    """Read a long-format ratings CSV (``rater,stimulus,score`` plus optional columns).

    Identifier columns are read as strings (rater ``103`` stays ``"103"``), ``score`` as float.
    Raises :class:`StatsInputError` for a missing or empty file, missing columns, and missing or
    non-numeric scores (naming up to five file line numbers).
    """
    path = Path(path)
    if not path.is_file():
        raise StatsInputError(f"ratings file {path} does not exist")
    try:
        raw = pd.read_csv(
            path, dtype={c: str for c in ID_COLUMNS}, keep_default_na=False, na_values=[]
        )
    except pd.errors.EmptyDataError as exc:
        raise StatsInputError(f"ratings file {path} is empty") from exc
    require_columns(raw, REQUIRED, what=f"ratings file {path}")
    text = pd.Series([str(v).strip() for v in raw["score"]], index=raw.index, dtype=object)
    scores = pd.to_numeric(text, errors="coerce")
    _raise_on_bad_scores(raw["score"], scores, first_line=2, what=f"ratings file {path}")
    frame = raw.assign(score=scores.astype(np.float64))
    return check_ratings(frame, what=f"ratings file {path}")


def check_ratings(ratings: pd.DataFrame, *, what: str = "ratings") -> pd.DataFrame:
    """Validate a ratings frame and return a copy with string ids and float scores.

    Raises :class:`StatsInputError` when a required column is missing, the frame is empty, a
    rater or stimulus is empty, or a score is missing, non-numeric or infinite.
    """
    require_columns(ratings, REQUIRED, what=what)
    scores = pd.to_numeric(ratings["score"], errors="coerce")
    _raise_on_bad_scores(ratings["score"], scores, first_line=None, what=what)
    frame = ratings.copy()
    frame["score"] = scores.to_numpy(dtype=np.float64)
    for column in ("rater", "stimulus"):
        missing = frame[column].isna().to_numpy()
        frame[column] = frame[column].astype(str)
        blank = np.flatnonzero(missing | frame[column].str.strip().eq("").to_numpy())
        if blank.size:
            raise StatsInputError(
                f"{what}: empty {column} in row(s) {_rows(blank, None)}; every rating needs one"
            )
    return frame.reset_index(drop=True)


def _raise_on_bad_scores(
    original: pd.Series, parsed: pd.Series, *, first_line: int | None, what: str
) -> None:
    bad = np.flatnonzero(~np.isfinite(parsed.to_numpy(dtype=np.float64, na_value=np.nan)))
    if bad.size:
        shown = ", ".join(repr(str(v)) for v in original.iloc[bad[:MAX_LISTED]])
        place = "line(s)" if first_line is not None else "row(s)"
        raise StatsInputError(
            f"{what}: missing or non-numeric score in {place} {_rows(bad, first_line)} "
            f"(values {shown}); scores must be finite numbers"
        )


def _rows(positions: np.ndarray, first_line: int | None) -> str:
    offset = first_line if first_line is not None else 0
    listed = ", ".join(str(int(p) + offset) for p in positions[:MAX_LISTED])
    more = f" and {positions.size - MAX_LISTED} more" if positions.size > MAX_LISTED else ""
    return listed + more


def to_sureal_dataset_json(
    ratings: pd.DataFrame, *, dataset_name: str, ref_stimulus_of: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The dataset structure that sureal's ``RawDatasetReader`` reads, as JSON-safe values.

    ``ref_videos``: one entry per source content (``content_id`` 0…C−1 in sorted order,
    ``content_name``, ``path``). ``dis_videos``: one entry per stimulus in sorted order with
    ``asset_id``, ``content_id``, ``path`` (the stimulus name) and ``os`` = {rater: score}, or
    {rater: [scores]} for repetitions. Contents come from ``ref_stimulus_of`` (stimulus →
    its reference stimulus; the reference's ``path`` is then that stimulus name, which is how
    sureal's DMOS finds it), else from the ``content`` column, else one content for all.
    Written out as ``key = <json>`` lines it is a sureal dataset file.
    """
    frame = check_ratings(ratings)
    contents = _content_of(frame, ref_stimulus_of)
    names = sorted(set(contents.values()))
    content_id = {name: i for i, name in enumerate(names)}
    ref_path = {
        name: (name if ref_stimulus_of is not None else f"{name}/reference") for name in names
    }
    dis_videos = []
    for asset_id, (stimulus, group) in enumerate(frame.groupby("stimulus", sort=True)):
        dis_videos.append(
            {
                "asset_id": asset_id,
                "content_id": content_id[contents[str(stimulus)]],
                "path": str(stimulus),
                "os": _opinion_scores(group),
            }
        )
    ref_videos = [
        {"content_id": content_id[n], "content_name": n, "path": ref_path[n]} for n in names
    ]
    return {"dataset_name": dataset_name, "ref_videos": ref_videos, "dis_videos": dis_videos}


def _content_of(frame: pd.DataFrame, ref_stimulus_of: Mapping[str, str] | None) -> dict[str, str]:
    stimuli = sorted(frame["stimulus"].unique())
    if ref_stimulus_of is not None:
        missing = [s for s in stimuli if s not in ref_stimulus_of]
        if missing:
            raise StatsInputError(
                f"ref_stimulus_of has no reference for stimulus {', '.join(missing[:MAX_LISTED])}"
            )
        return {s: str(ref_stimulus_of[s]) for s in stimuli}
    if "content" in frame.columns:
        pairs = frame[["stimulus", "content"]].astype(str).drop_duplicates()
        clashes = pairs["stimulus"][pairs["stimulus"].duplicated()].unique()
        if clashes.size:
            raise StatsInputError(
                f"stimulus {', '.join(clashes[:MAX_LISTED])} has more than one content value"
            )
        return dict(zip(pairs["stimulus"], pairs["content"], strict=True))
    return dict.fromkeys(stimuli, "all")


def _opinion_scores(group: pd.DataFrame) -> dict[str, float | list[float]]:
    scores: dict[str, float | list[float]] = {}
    for rater, rows in group.groupby("rater", sort=True):
        values = [float(v) for v in rows["score"]]
        scores[str(rater)] = values[0] if len(values) == 1 else values
    return scores
