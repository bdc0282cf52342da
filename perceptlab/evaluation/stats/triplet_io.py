"""Reading triplet comparisons (JPEG AIC-3 BTC/PTC) into a triplet frame, and published scales.

A **triplet frame** (what :mod:`.triplets` scales) has one row per response:

============== ==================================================================================
``rater``      who answered (string)
``batch``      the assignment/session the answer belongs to (string; reliability is judged per
               batch, as AIC-3 does)
``source``     the source image (string); all conditions of one source share one scale
``method``     ``"BTC"`` (boosted triplet) or ``"PTC"`` (plain triplet)
``codec_*``    codec of the pivot, left and right image (string)
``level_*``    distortion level of the pivot, left and right image (int; 0 = the source itself)
``response``   ``"left"``, ``"right"`` or ``"not sure"``: which side differs **more** from the pivot
``role``       ``"scale"`` (a scaling question), ``"trap"`` (source vs a strong distortion, with a
               right answer) or ``"bias"`` (the same image on both sides)
``question``   the question's id (string; the unit of AIC-3's response bootstrap)
============== ==================================================================================

Two response layouts are read (:func:`read_triplet_csv`, detected from the header):

* **SDR25**: the response CSVs of the JPEG AIC-3 test of JPEG AI (jpeg-aic/dataset-JPEG-AI-SDR25,
  ``JPEG_AIC_SDR_{BTC,PTC}_JPEG_AI_responses_2025.02.28_v1.csv``; Jenadeleh et al. 2025,
  arXiv:2504.06301): columns ``assignment, worker, method, question_id, img_num, codec_left,
  codec_right, codec_pivot, dlevel_left, dlevel_right, dlevel_pivot, is_bias, is_trap,
  response`` (others carried along). The BTC and PTC files number their workers from 1
  independently (386 and 73 different people, 459 in all), so ``rater`` is
  ``"<method>:<worker>"``; ``batch`` is the assignment; ``question`` is
  ``"<method>:<question_id>"``. ``notsure`` is read as ``"not sure"``; ``skip`` answers carry no
  judgment and are dropped (counted in ``frame.attrs["dropped"]``).
* **platform**: the triplet-frame columns themselves, as PerceptLab exports them. Required:
  ``rater, source, method, codec_left, level_left, codec_right, level_right, response``.
  Optional: ``batch`` (default: the rater), ``codec_pivot``/``level_pivot`` (default: the
  source, level 0), ``role`` (default ``scale``; a row with the same image on both sides is a
  ``bias`` row whatever it says), ``question`` (default: method, source and the two sides).

:func:`read_published_scale` reads a published AIC-3 scale (``JPEG_AIC_reconstructed_jnd_scores``
of jpeg-aic/JPEG-AIC-4-datasets: ``img_num, codec, dlevel, distortion, CI_min, CI_max``).

Every reader raises :class:`~.common.StatsInputError` naming the file, the line(s) and the
column of a bad value and listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .common import StatsInputError

METHODS = ("BTC", "PTC")
RESPONSES = ("left", "right", "not sure")
ROLES = ("scale", "trap", "bias")
FRAME_COLUMNS = (
    "rater",
    "batch",
    "source",
    "method",
    "codec_pivot",
    "level_pivot",
    "codec_left",
    "level_left",
    "codec_right",
    "level_right",
    "response",
    "role",
    "question",
)
SDR25_COLUMNS = (
    "assignment",
    "worker",
    "method",
    "question_id",
    "img_num",
    "codec_left",
    "codec_right",
    "codec_pivot",
    "dlevel_left",
    "dlevel_right",
    "dlevel_pivot",
    "is_bias",
    "is_trap",
    "response",
)
PLATFORM_COLUMNS = (
    "rater",
    "source",
    "method",
    "codec_left",
    "level_left",
    "codec_right",
    "level_right",
    "response",
)
PUBLISHED_COLUMNS = ("img_num", "codec", "dlevel", "distortion", "CI_min", "CI_max")
SDR25_RESPONSES = {"left": "left", "right": "right", "notsure": "not sure", "not sure": "not sure"}
SKIP = "skip"
MAX_LISTED = 5
FIRST_LINE = 2  # data row 0 is on line 2 of the file, after the header


def read_triplet_csv(path: str | Path) -> pd.DataFrame:
    """Read one triplet response file (SDR25 or platform layout, from its header).

    ``frame.attrs``: ``layout`` (``"sdr25"`` or ``"platform"``), ``dropped`` (reason → rows).
    """
    path = Path(path)
    raw = _read_text_csv(path)
    what = f"triplet file {path}"
    if set(SDR25_COLUMNS) <= set(raw.columns):
        frame = _from_sdr25(raw, what=what)
    elif set(PLATFORM_COLUMNS) <= set(raw.columns):
        frame = _from_platform(raw, what=what)
    else:
        raise StatsInputError(
            f"{what} has columns {', '.join(map(str, raw.columns))}, which match no triplet "
            f"layout; accepted: SDR25 ({', '.join(SDR25_COLUMNS)}) or platform "
            f"({', '.join(PLATFORM_COLUMNS)}[, batch, codec_pivot, level_pivot, role, question])"
        )
    return frame


def read_triplet_files(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read and stack several response files (e.g. the BTC and the PTC file of one test).

    ``frame.attrs["dropped"]`` adds up the files' dropped rows; ``attrs["files"]`` lists them.
    """
    if not paths:
        raise StatsInputError("no triplet file given")
    frames = [read_triplet_csv(path) for path in paths]
    dropped: dict[str, int] = {}
    for frame in frames:
        for reason, count in frame.attrs["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    stacked = pd.concat(frames, ignore_index=True)
    stacked.attrs = {
        "layout": "+".join(frame.attrs["layout"] for frame in frames),
        "dropped": dropped,
        "files": [str(path) for path in paths],
    }
    return stacked


def read_published_scale(path: str | Path) -> pd.DataFrame:
    """A published AIC-3 JND scale as ``source, codec, level, jnd, ci95_low, ci95_high``."""
    path = Path(path)
    raw = _read_text_csv(path)
    what = f"published scale {path}"
    missing = [c for c in PUBLISHED_COLUMNS if c not in raw.columns]
    if missing:
        raise StatsInputError(
            f"{what} is missing column(s) {', '.join(missing)}; it has {', '.join(raw.columns)}"
        )
    return pd.DataFrame(
        {
            "source": _text(raw["img_num"], column="img_num", what=what),
            "codec": _text(raw["codec"], column="codec", what=what),
            "level": _integers(raw["dlevel"], column="dlevel", what=what),
            "jnd": _floats(raw["distortion"], column="distortion", what=what),
            "ci95_low": _floats(raw["CI_min"], column="CI_min", what=what),
            "ci95_high": _floats(raw["CI_max"], column="CI_max", what=what),
        }
    )


def _read_text_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise StatsInputError(f"triplet file {path} does not exist")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except pd.errors.EmptyDataError as exc:
        raise StatsInputError(f"triplet file {path} is empty") from exc
    except pd.errors.ParserError as exc:
        raise StatsInputError(f"triplet file {path} is not a readable CSV: {exc}") from exc
    if raw.empty:
        raise StatsInputError(f"triplet file {path} has a header but no rows")
    return raw


def _from_sdr25(raw: pd.DataFrame, *, what: str) -> pd.DataFrame:
    method = _choice(raw["method"], METHODS, column="method", what=what)
    response = raw["response"].str.strip()
    _check_choice(response, (*SDR25_RESPONSES, SKIP), column="response", what=what)
    trap = _flags(raw["is_trap"], column="is_trap", what=what)
    bias = _flags(raw["is_bias"], column="is_bias", what=what)
    worker = _text(raw["worker"], column="worker", what=what)
    frame = pd.DataFrame(
        {
            "rater": method + ":" + worker,
            "batch": _text(raw["assignment"], column="assignment", what=what),
            "source": _text(raw["img_num"], column="img_num", what=what),
            "method": method,
            "codec_pivot": _text(raw["codec_pivot"], column="codec_pivot", what=what),
            "level_pivot": _levels(raw["dlevel_pivot"], column="dlevel_pivot", what=what),
            "codec_left": _text(raw["codec_left"], column="codec_left", what=what),
            "level_left": _levels(raw["dlevel_left"], column="dlevel_left", what=what),
            "codec_right": _text(raw["codec_right"], column="codec_right", what=what),
            "level_right": _levels(raw["dlevel_right"], column="dlevel_right", what=what),
            "response": response.map(SDR25_RESPONSES).fillna(SKIP),
            "role": np.where(trap, "trap", np.where(bias, "bias", "scale")),
            "question": method + ":" + _text(raw["question_id"], column="question_id", what=what),
        }
    )
    _check_pivot(frame, what=what)
    extra = [c for c in raw.columns if c not in SDR25_COLUMNS and c not in frame.columns]
    return _finish(pd.concat([frame, raw[extra]], axis=1), layout="sdr25")


def _from_platform(raw: pd.DataFrame, *, what: str) -> pd.DataFrame:
    rater = _text(raw["rater"], column="rater", what=what)
    source = _text(raw["source"], column="source", what=what)
    method = _choice(raw["method"], METHODS, column="method", what=what)
    response = _choice(raw["response"], RESPONSES, column="response", what=what)
    sides = {
        f"{part}_{side}": (
            _text(raw[f"codec_{side}"], column=f"codec_{side}", what=what)
            if part == "codec"
            else _levels(raw[f"level_{side}"], column=f"level_{side}", what=what)
        )
        for side in ("left", "right")
        for part in ("codec", "level")
    }
    pivot_codec = (
        _text(raw["codec_pivot"], column="codec_pivot", what=what)
        if "codec_pivot" in raw.columns
        else pd.Series("source", index=raw.index)
    )
    pivot_level = (
        _levels(raw["level_pivot"], column="level_pivot", what=what)
        if "level_pivot" in raw.columns
        else np.zeros(len(raw), dtype=np.int64)
    )
    role = (
        _choice(raw["role"], ROLES, column="role", what=what)
        if "role" in raw.columns
        else pd.Series("scale", index=raw.index)
    )
    same = (sides["codec_left"] == sides["codec_right"]) & (
        sides["level_left"] == sides["level_right"]
    )
    frame = pd.DataFrame(
        {
            "rater": rater,
            "batch": _text(raw["batch"], column="batch", what=what)
            if "batch" in raw.columns
            else rater,
            "source": source,
            "method": method,
            "codec_pivot": pivot_codec,
            "level_pivot": pivot_level,
            "codec_left": sides["codec_left"],
            "level_left": sides["level_left"],
            "codec_right": sides["codec_right"],
            "level_right": sides["level_right"],
            "response": response,
            "role": np.where(same, "bias", role),
        }
    )
    frame["question"] = (
        _text(raw["question"], column="question", what=what)
        if "question" in raw.columns
        else _default_question(frame)
    )
    _check_pivot(frame, what=what)
    extra = [c for c in raw.columns if c not in frame.columns]
    return _finish(pd.concat([frame, raw[extra]], axis=1), layout="platform")


def _default_question(frame: pd.DataFrame) -> pd.Series:
    parts = ["method", "source", "codec_left", "level_left", "codec_right", "level_right"]
    return frame[parts].astype(str).agg(":".join, axis=1)


def _finish(frame: pd.DataFrame, *, layout: str) -> pd.DataFrame:
    skipped = frame["response"].eq(SKIP).to_numpy()
    kept = frame.loc[~skipped].reset_index(drop=True)
    dropped = {"skip (no judgment given)": int(skipped.sum())} if skipped.any() else {}
    kept.attrs = {"layout": layout, "dropped": dropped}
    return kept


def _check_pivot(frame: pd.DataFrame, *, what: str) -> None:
    """The pivot must be the source (level 0): AIC-3 triplets are all of that kind."""
    bad = np.flatnonzero(frame["level_pivot"].to_numpy() != 0)
    if bad.size:
        raise StatsInputError(
            f"{what}: the pivot is not the source (pivot level "
            f"{int(frame['level_pivot'].iloc[bad[0]])}) on line(s) {_lines(bad)}; only triplets "
            "with the source as pivot (level 0) are scaled"
        )


def _text(values: pd.Series, *, column: str, what: str) -> pd.Series:
    stripped = values.str.strip()
    blank = np.flatnonzero(stripped.eq("").to_numpy())
    if blank.size:
        raise StatsInputError(
            f"{what}: column {column} is empty on line(s) {_lines(blank)}; every row needs one"
        )
    return stripped


def _choice(values: pd.Series, valid: Sequence[str], *, column: str, what: str) -> pd.Series:
    stripped = values.str.strip()
    _check_choice(stripped, valid, column=column, what=what)
    return stripped


def _check_choice(values: pd.Series, valid: Sequence[str], *, column: str, what: str) -> None:
    bad = np.flatnonzero(~values.isin(list(valid)).to_numpy())
    if bad.size:
        raise StatsInputError(
            f"{what}: line {bad[0] + FIRST_LINE}, column {column}: {values.iloc[bad[0]]!r} is "
            f"not one of {', '.join(valid)}" + _also(bad)
        )


def _integers(values: pd.Series, *, column: str, what: str) -> np.ndarray:
    parsed = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(parsed) | (parsed != np.round(parsed)))
    if bad.size:
        raise StatsInputError(
            f"{what}: line {bad[0] + FIRST_LINE}, column {column}: {values.iloc[bad[0]]!r} is "
            "not an integer" + _also(bad)
        )
    return parsed.astype(np.int64)


def _levels(values: pd.Series, *, column: str, what: str) -> np.ndarray:
    levels = _integers(values, column=column, what=what)
    bad = np.flatnonzero(levels < 0)
    if bad.size:
        raise StatsInputError(
            f"{what}: line {bad[0] + FIRST_LINE}, column {column}: {values.iloc[bad[0]]!r} is "
            "negative; levels are 0 (the source) or more" + _also(bad)
        )
    return levels


def _flags(values: pd.Series, *, column: str, what: str) -> np.ndarray:
    flags = _integers(values, column=column, what=what)
    bad = np.flatnonzero(~np.isin(flags, (0, 1)))
    if bad.size:
        raise StatsInputError(
            f"{what}: line {bad[0] + FIRST_LINE}, column {column}: {values.iloc[bad[0]]!r} is "
            "not 0 or 1" + _also(bad)
        )
    return flags.astype(bool)


def _floats(values: pd.Series, *, column: str, what: str) -> np.ndarray:
    parsed = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size:
        raise StatsInputError(
            f"{what}: line {bad[0] + FIRST_LINE}, column {column}: {values.iloc[bad[0]]!r} is "
            "not a number" + _also(bad)
        )
    return parsed


def _also(positions: np.ndarray) -> str:
    """`` (also on lines …)`` when more rows than the first are bad."""
    if positions.size < 2:
        return ""
    return f" (bad on line(s) {_lines(positions)})"


def _lines(positions: np.ndarray) -> str:
    listed = ", ".join(str(int(p) + FIRST_LINE) for p in positions[:MAX_LISTED])
    more = f" and {positions.size - MAX_LISTED} more" if positions.size > MAX_LISTED else ""
    return listed + more
