"""Absolute-rating frames: reading, checking and exporting them.

A ratings frame is long format, one row per rating: required columns ``rater``, ``stimulus``
(strings) and ``score`` (float); optional ``content`` and ``condition``; any other column is
carried along. A rater who rated a stimulus more than once contributes repetitions (several rows
with the same ``rater`` and ``stimulus``), which every estimator keeps.

Three file formats are read (:func:`read_ratings`):

* ``csv``: the long CSV above (the format of the ``sureal`` dataset of
  :mod:`perceptlab.lib.datasets`);
* ``sureal-json``: sureal's dataset structure as a JSON object (``ref_videos``, ``dis_videos``
  with opinion scores ``os``), what sureal reads from a ``.json`` dataset file and what the
  platform exports as ``sureal_dataset.json`` (:func:`to_sureal_dataset_json`);
* ``p808``: the per-vote CSV of the ITU-T P.808 crowdsourcing toolkit's ``result_parser.py``
  (microsoft/P.808: ``<answers>_votes_per_worker_<scale>.csv`` or
  ``<answers>_all_votes_per_clip.csv``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .common import StatsInputError, require_columns

REQUIRED = ("rater", "stimulus", "score")
ID_COLUMNS = ("rater", "stimulus", "content", "condition")
MAX_LISTED = 5

FileFormat = Literal["auto", "csv", "sureal-json", "p808"]
FORMATS: dict[str, str] = {
    "csv": "a CSV with columns rater, stimulus, score",
    "sureal-json": "a JSON object with ref_videos and dis_videos (sureal's dataset; *.json)",
    "p808": "a CSV with columns workerid, file, vote (the ITU-T P.808 toolkit's votes)",
}
P808_RATER = ("workerid", "worker_id")
P808_STIMULUS = ("file", "file_url")
P808_SCORE = ("vote",)
# Bookkeeping columns of P.808's per-vote file; every other column is a condition_pattern group.
P808_IGNORED = frozenset(
    {"hitid", "assignment_id", "assignmentstatus", "short_file_name", "question_type", "unknown"}
)


def read_ratings(path: str | Path, *, file_format: FileFormat = "auto") -> pd.DataFrame:
    """Read a ratings file in one of :data:`FORMATS` as a ratings frame.

    ``file_format="auto"`` decides with :func:`detect_format`. ``frame.attrs["format"]`` names
    the format that was read. Raises :class:`StatsInputError` for an unknown format and for
    everything the format's reader refuses.
    """
    path = Path(path)
    readers = {
        "csv": read_ratings_csv,
        "sureal-json": read_sureal_dataset_json,
        "p808": read_p808_csv,
    }
    if file_format == "auto":
        chosen = detect_format(path)
    elif file_format in readers:
        chosen = file_format
    else:
        raise StatsInputError(
            f"unknown ratings format {file_format!r}; valid: auto, {', '.join(FORMATS)}"
        )
    frame = readers[chosen](path)
    frame.attrs["format"] = chosen
    return frame


def detect_format(path: str | Path) -> str:
    """The format of a ratings file: ``.json`` or a leading ``{`` is sureal-json, otherwise
    the CSV header decides (P.808's ``workerid``/``file``/``vote``, or ``rater,stimulus,score``).

    Raises :class:`StatsInputError` naming the formats when the file fits none of them, and for
    sureal's ``.py`` dataset files, which are Python code and are never executed.
    """
    path = Path(path)
    _require_file(path)
    if path.suffix.lower() == ".json":
        return "sureal-json"
    if path.suffix.lower() == ".py":
        raise StatsInputError(
            f"ratings file {path} is a sureal Python dataset; it is code and is not executed "
            "here: write the same structure (ref_videos, dis_videos) as a JSON object and pass "
            "the .json file"
        )
    with path.open(encoding="utf-8-sig", errors="replace") as file:
        head = file.read(4096)
    if not head.strip():
        raise StatsInputError(f"ratings file {path} is empty")
    if head.lstrip().startswith("{"):
        return "sureal-json"
    names = next(csv.reader([head.splitlines()[0]]), [])
    header = {name.strip().lower() for name in names}
    if _is_p808_header(header):
        return "p808"
    if set(REQUIRED) <= header:
        return "csv"
    fits = "; ".join(f"{name}: {sign}" for name, sign in FORMATS.items())
    raise StatsInputError(
        f"cannot tell the format of ratings file {path}: its header ({', '.join(names)}) fits "
        f"none of the formats ({fits}); name the format explicitly (--format)"
    )


def _is_p808_header(header: set[str]) -> bool:
    per_vote = bool(header & set(P808_RATER)) and bool(header & set(P808_STIMULUS))
    per_clip = {"file_url", "vote_1"} <= header
    return (per_vote and "vote" in header) or per_clip


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise StatsInputError(f"ratings file {path} does not exist")


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
    ``asset_id``, ``content_id``, ``path`` (the stimulus name), ``os`` = {rater: score}, or
    {rater: [scores]} for repetitions, and ``condition`` when the frame has that column (sureal
    ignores it; :func:`ratings_from_sureal_dataset` reads it back). Contents come from
    ``ref_stimulus_of`` (stimulus → its reference stimulus; the reference's ``path`` is then
    that stimulus name, which is how sureal's DMOS finds it), else from the ``content`` column,
    else one content for all.
    Written out as ``key = <json>`` lines it is a sureal dataset file.
    """
    frame = check_ratings(ratings)
    contents = _content_of(frame, ref_stimulus_of)
    conditions = _condition_of(frame)
    names = sorted(set(contents.values()))
    content_id = {name: i for i, name in enumerate(names)}
    ref_path = {
        name: (name if ref_stimulus_of is not None else f"{name}/reference") for name in names
    }
    dis_videos = []
    for asset_id, (stimulus, group) in enumerate(frame.groupby("stimulus", sort=True)):
        video: dict[str, Any] = {
            "asset_id": asset_id,
            "content_id": content_id[contents[str(stimulus)]],
            "path": str(stimulus),
            "os": _opinion_scores(group),
        }
        if str(stimulus) in conditions:
            video["condition"] = conditions[str(stimulus)]
        dis_videos.append(video)
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


def _condition_of(frame: pd.DataFrame) -> dict[str, str]:
    if "condition" not in frame.columns:
        return {}
    known = frame.loc[frame["condition"].notna(), ["stimulus", "condition"]].astype(str)
    pairs = known.drop_duplicates()
    clashes = pairs["stimulus"][pairs["stimulus"].duplicated()].unique()
    if clashes.size:
        raise StatsInputError(
            f"stimulus {', '.join(clashes[:MAX_LISTED])} has more than one condition value"
        )
    return dict(zip(pairs["stimulus"], pairs["condition"], strict=True))


def _opinion_scores(group: pd.DataFrame) -> dict[str, float | list[float]]:
    scores: dict[str, float | list[float]] = {}
    for rater, rows in group.groupby("rater", sort=True):
        values = [float(v) for v in rows["score"]]
        scores[str(rater)] = values[0] if len(values) == 1 else values
    return scores


# --- sureal's dataset structure (JSON) -------------------------------------------------------


def read_sureal_dataset_json(path: str | Path) -> pd.DataFrame:
    """Read a sureal dataset written as a JSON object (see :func:`ratings_from_sureal_dataset`).

    This is the structure sureal reads from a ``.json`` dataset file and the platform exports
    as ``sureal_dataset.json``; ``NaN`` in the file (Python's JSON writes it) is a missing rating.
    """
    path = Path(path)
    _require_file(path)
    what = f"sureal dataset {path}"
    try:
        dataset = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatsInputError(f"{what} is not valid JSON: {exc}") from exc
    return ratings_from_sureal_dataset(dataset, what=what)


def ratings_from_sureal_dataset(dataset: object, *, what: str = "sureal dataset") -> pd.DataFrame:
    """The ratings of sureal's dataset structure as a ratings frame (the inverse of
    :func:`to_sureal_dataset_json`).

    ``ref_videos``: ``content_id`` and ``content_name`` (→ ``content``; the id when there is no
    name). ``dis_videos``: ``path`` (→ ``stimulus``, verbatim), ``content_id`` and ``os``, the
    opinion scores in one of sureal's two forms, the same form in every entry:

    * a dict ``{rater: score}`` (``score`` a number or a list of repetitions);
    * a list with one entry per observer, the same length everywhere; raters are then named
      by the dataset's ``subjects`` list when it has one of that length, else ``s01, s02, …``
      in list order.

    ``null`` or ``NaN`` is a missing rating. An optional ``condition`` per entry (the platform
    writes it) becomes ``condition``. Raises :class:`StatsInputError` naming the entry and the
    key or value that is wrong (missing key, non-numeric or infinite score, duplicate path,
    unknown content id, lists of different lengths).
    """
    if not isinstance(dataset, Mapping):
        raise StatsInputError(
            f"{what}: expected a JSON object with ref_videos and dis_videos, "
            f"got {type(dataset).__name__}"
        )
    missing = [key for key in ("ref_videos", "dis_videos") if key not in dataset]
    if missing:
        raise StatsInputError(
            f"{what} has no {' or '.join(missing)}; a sureal dataset needs ref_videos and "
            "dis_videos (each dis_video with content_id, path and os)"
        )
    contents = _sureal_contents(dataset["ref_videos"], what=what)
    videos = [
        _dis_video(video, index, contents, what=what)
        for index, video in enumerate(_entries(dataset["dis_videos"], "dis_videos", what=what))
    ]
    _reject_duplicate_paths(videos, what=what)
    raters = _list_form_raters(dataset.get("subjects"), videos, what=what)
    rows = [row for video in videos for row in _sureal_rows(video, raters, what=what)]
    columns = ["rater", "stimulus", "score", "content", "condition"]
    frame = pd.DataFrame(rows, columns=columns)
    if not any(video.condition is not None for video in videos):
        frame = frame.drop(columns=["condition"])
    frame = check_ratings(frame, what=what)
    frame.attrs["dataset_name"] = str(dataset.get("dataset_name", ""))
    return frame


@dataclass(frozen=True)
class _DisVideo:
    """One checked ``dis_videos`` entry."""

    index: int
    stimulus: str
    content: str
    condition: str | None
    scores: list[Any] | dict[Any, Any]

    def where(self, what: str) -> str:
        return f"{what}: dis_videos[{self.index}] ({self.stimulus!r})"


def _entries(value: object, key: str, *, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value:
        raise StatsInputError(f"{what}: {key} must be a non-empty list of objects")
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise StatsInputError(
                f"{what}: {key}[{index}] is {type(entry).__name__}, expected an object"
            )
    return value


def _require_keys(entry: Mapping[str, Any], keys: Sequence[str], *, where: str) -> None:
    missing = [key for key in keys if key not in entry]
    if missing:
        raise StatsInputError(
            f"{where} has no {', '.join(missing)}; it has {', '.join(map(str, entry)) or 'no keys'}"
        )


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sureal_contents(ref_videos: object, *, what: str) -> dict[int, str]:
    contents: dict[int, str] = {}
    for index, ref in enumerate(_entries(ref_videos, "ref_videos", what=what)):
        where = f"{what}: ref_videos[{index}]"
        _require_keys(ref, ("content_id",), where=where)
        content_id = ref["content_id"]
        if not _is_integer(content_id):
            raise StatsInputError(f"{where}: content_id {content_id!r} is not an integer")
        if content_id in contents:
            raise StatsInputError(f"{where}: content_id {content_id} appears twice in ref_videos")
        contents[content_id] = str(ref.get("content_name", content_id))
    return contents


def _dis_video(
    video: Mapping[str, Any], index: int, contents: Mapping[int, str], *, what: str
) -> _DisVideo:
    where = f"{what}: dis_videos[{index}]"
    _require_keys(video, ("content_id", "path", "os"), where=where)
    path, content_id, scores = video["path"], video["content_id"], video["os"]
    if not isinstance(path, str) or not path.strip():
        raise StatsInputError(f"{where}: path {path!r} is not a file name")
    if not _is_integer(content_id) or content_id not in contents:
        raise StatsInputError(
            f"{where} ({path!r}): content_id {content_id!r} is not one of the ref_videos' "
            f"({', '.join(map(str, sorted(contents)))})"
        )
    if not isinstance(scores, list | dict):
        raise StatsInputError(
            f"{where} ({path!r}): os is {type(scores).__name__}; it must be a list (one entry "
            "per observer) or an object {rater: score}"
        )
    condition = video.get("condition")
    return _DisVideo(
        index, path, contents[content_id], None if condition is None else str(condition), scores
    )


def _reject_duplicate_paths(videos: list[_DisVideo], *, what: str) -> None:
    first: dict[str, int] = {}
    for video in videos:
        if video.stimulus in first:
            raise StatsInputError(
                f"{what}: dis_videos[{first[video.stimulus]}] and dis_videos[{video.index}] "
                f"have the same path {video.stimulus!r}; each stimulus must appear once"
            )
        first[video.stimulus] = video.index


def _list_form_raters(subjects: object, videos: list[_DisVideo], *, what: str) -> list[str] | None:
    """Rater names of list-form ``os`` (``None`` for the dict form)."""
    is_list = [isinstance(video.scores, list) for video in videos]
    if not any(is_list):
        return None
    if not all(is_list):
        mixed = videos[is_list.index(not is_list[0])]
        raise StatsInputError(
            f"{mixed.where(what)}: os is a {type(mixed.scores).__name__} but dis_videos[0]'s "
            f"is a {type(videos[0].scores).__name__}; use one form in every entry"
        )
    count = len(videos[0].scores)
    for video in videos:
        if len(video.scores) != count:
            raise StatsInputError(
                f"{video.where(what)}: os has {len(video.scores)} entries, "
                f"dis_videos[0] has {count}; list-form os needs one entry per observer everywhere"
            )
    if isinstance(subjects, list) and len(subjects) == count:
        return [str(subject) for subject in subjects]
    width = max(2, len(str(count)))
    return [f"s{i:0{width}d}" for i in range(1, count + 1)]


def _sureal_rows(
    video: _DisVideo, raters: list[str] | None, *, what: str
) -> Iterator[tuple[str, str, float, str, str | None]]:
    if isinstance(video.scores, dict):
        pairs: Iterable[tuple[object, object]] = video.scores.items()
    else:
        pairs = zip(raters or [], video.scores, strict=True)
    for rater, value in pairs:
        where = f"{video.where(what)}, rater {rater!r}"
        for score in _opinion_values(value, where=where):
            yield str(rater), video.stimulus, score, video.content, video.condition


def _opinion_values(value: object, *, where: str) -> list[float]:
    """One observer's scores of one stimulus: a number, a list of repetitions, or missing."""
    values = value if isinstance(value, list) else [value]
    scores = []
    for item in values:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise StatsInputError(
                f"{where}: score {item!r} is not a number; opinion scores are numbers "
                "(null or NaN for a missing rating)"
            )
        if math.isinf(item):
            raise StatsInputError(f"{where}: score {item!r} is infinite")
        if not math.isnan(item):
            scores.append(float(item))
    return scores


# --- ITU-T P.808 toolkit (microsoft/P.808) -----------------------------------------------------


def read_p808_csv(path: str | Path) -> pd.DataFrame:
    """Read the per-vote CSV of the P.808 toolkit's ``result_parser.py`` as a ratings frame.

    That file (``<answers>_votes_per_worker_<scale>.csv``, or ``<answers>_all_votes_per_clip.csv``)
    has one row per accepted vote. Columns read, names matched without regard to case:

    * ``rater`` ← ``workerid`` (or ``worker_id``);
    * ``stimulus`` ← ``file``, the clip URL that P.808 itself aggregates on (or ``file_url``);
    * ``score`` ← ``vote``;
    * ``content`` ← ``content`` and ``group`` ← ``group``, when present;
    * ``condition`` ← ``condition`` when present, else the columns that the project's
      ``condition_pattern`` added (its named groups: every column not named here), their values
      in column-name order joined by ``____``, which is P.808's own ``condition_name``.

    Ignored: ``HITId, assignment_id, assignmentstatus, short_file_name, question_type, Unknown``.
    A file whose ``question_type`` takes several values (P.835's all-votes file mixes the
    scales) is refused, and so is P.808's per-clip summary (``file_url, vote_1 … vote_n``),
    whose votes carry no worker ids; both errors name the file to use instead.
    """
    path = Path(path)
    _require_file(path)
    what = f"P.808 file {path}"
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except pd.errors.EmptyDataError as exc:
        raise StatsInputError(f"{what} is empty") from exc
    if raw.empty:
        raise StatsInputError(f"{what} has a header but no votes")
    columns = {str(name).strip().lower(): str(name) for name in raw.columns}
    if {"file_url", "vote_1"} <= columns.keys() and not columns.keys() & set(P808_RATER):
        raise StatsInputError(
            f"{what} is P.808's per-clip summary (file_url, vote_1 … vote_n): its votes carry "
            "no worker ids, which the rater bootstrap and screening need; pass the per-vote file "
            "<answers>_votes_per_worker_<scale>.csv instead"
        )
    _refuse_mixed_scales(raw, columns, what=what)
    picked = {
        "rater": _p808_column(columns, P808_RATER, what=what),
        "stimulus": _p808_column(columns, P808_STIMULUS, what=what),
        "score": _p808_column(columns, P808_SCORE, what=what),
    }
    frame = pd.DataFrame({name: raw[column].str.strip() for name, column in picked.items()})
    scores = pd.to_numeric(frame["score"], errors="coerce")
    _raise_on_bad_scores(raw[picked["score"]], scores, first_line=2, what=what)
    frame["score"] = scores.astype(np.float64)
    for name in ("content", "group", "condition"):
        if name in columns:
            frame[name] = raw[columns[name]].str.strip()
    used = {*P808_RATER, *P808_STIMULUS, *P808_SCORE, *P808_IGNORED, "content", "group"}
    keys = sorted(name for name in columns if name not in used)
    if "condition" not in columns and keys:
        rows = raw[[columns[key] for key in keys]].itertuples(index=False)
        frame["condition"] = ["____".join(row).strip("_") for row in rows]
    return check_ratings(frame, what=what)


def _p808_column(columns: Mapping[str, str], names: Sequence[str], *, what: str) -> str:
    for name in names:
        if name in columns:
            return columns[name]
    raise StatsInputError(
        f"{what} has no {' or '.join(names)} column; a P.808 per-vote file has workerid, "
        f"file and vote; it has {', '.join(columns.values())}"
    )


def _refuse_mixed_scales(raw: pd.DataFrame, columns: Mapping[str, str], *, what: str) -> None:
    if "question_type" not in columns:
        return
    kinds = sorted(set(raw[columns["question_type"]].str.strip()) - {""})
    if len(kinds) > 1:
        raise StatsInputError(
            f"{what} mixes the scales {', '.join(kinds)} (question_type); score one scale at "
            "a time: pass <answers>_votes_per_worker_<scale>.csv"
        )
