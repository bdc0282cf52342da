"""Reading, writing and comparing the golden files (no reference library is imported here).

A golden file ``<family>.json`` holds ``libraries`` (the versions that made it) and ``cases``;
each case has its ``input`` (see :mod:`.cases`), the ``model`` (name and version of the
PerceptLab result), ``perceptlab`` (PerceptLab's columns), ``reference`` (``source`` and
``values``, the reference library's columns; empty for a case without a reference) and
``tolerance`` (``rtol`` and ``atol`` per reference column).

Two checks per case:

* :func:`reference_problems`: PerceptLab's columns equal the frozen reference columns within
  the case's tolerance, |ours − reference| ≤ atol + rtol·|reference|, NaN where NaN.
* :func:`drift_problems`: with the model's name and version unchanged, PerceptLab's columns
  equal the stored ones to :data:`DRIFT_RTOL` (relative; plus :data:`DRIFT_ATOL_SCALE` times
  the column's largest magnitude, for values that are rounding noise about zero). A changed
  model name or version means the golden numbers are stale: regenerate them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from perceptlab.evaluation.stats.common import ModelId

from .cases import Column, Computed

GOLDEN_DIR = Path(__file__).resolve().parent
SIGNIFICANT_DIGITS = 12
DRIFT_RTOL = 1e-9
DRIFT_ATOL_SCALE = 1e-12
WIDTH = 100
REGENERATE = "regenerate tests/evaluation/golden with make_golden.py"

Stored = list[Any]
Entry = dict[str, Any]


def golden_path(family: str, directory: Path = GOLDEN_DIR) -> Path:
    return directory / f"{family}.json"


def load(family: str, directory: Path = GOLDEN_DIR) -> dict[str, Any]:
    with golden_path(family, directory).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def dumps(data: dict[str, Any]) -> str:
    """Deterministic JSON text: sorted keys, one key per line, lists of numbers or labels
    wrapped at :data:`WIDTH` characters (NaN must already be None, written as null)."""
    return _dump(data, 0) + "\n"


def _dump(value: Any, depth: int) -> str:
    pad = " " * depth
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{pad} {_scalar(str(key))}: {_dump(value[key], depth + 1)}" for key in sorted(value)
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if any(isinstance(v, dict | list) for v in value):
            items = [f"{pad} {_dump(v, depth + 1)}" for v in value]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        parts = [_scalar(v) for v in value]
        one_line = "[" + ", ".join(parts) + "]"
        if depth + len(one_line) <= WIDTH:
            return one_line
        lines: list[str] = []
        for part in parts:
            if lines and depth + 1 + len(lines[-1]) + len(part) + 2 <= WIDTH:
                lines[-1] += ", " + part
            else:
                lines.append(part)
        return "[\n" + ",\n".join(f"{pad} {line}" for line in lines) + "\n" + pad + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def encode(column: Column) -> Stored:
    """JSON values of a column: labels as strings, numbers rounded to 12 significant digits."""
    if isinstance(column, list):
        return [str(v) for v in column]
    values: Stored = []
    for x in np.asarray(column, dtype=np.float64).ravel().tolist():
        if np.isnan(x):
            values.append(None)
        elif not np.isfinite(x):
            raise ValueError(f"cannot store the infinite value {x} in a golden file")
        else:
            values.append(float(f"{x:.{SIGNIFICANT_DIGITS}g}") + 0.0)  # + 0.0: no -0.0
    return values


def decode(values: Stored) -> Column:
    """A stored column back as labels (all strings) or a float array (null → NaN)."""
    if values and all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def differences(ours: Column, expected: Column, *, rtol: float, atol: float) -> str | None:
    """None if ``ours`` equals ``expected`` within atol + rtol·|expected| (labels exactly, NaN
    only where NaN), else what differs."""
    if isinstance(ours, list) or isinstance(expected, list):
        mine, theirs = encode(ours), encode(expected)
        if mine == theirs:
            return None
        if len(mine) != len(theirs):
            return f"{len(mine)} entries instead of {len(theirs)}"
        i = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
        return f"entry {i} is {mine[i]!r} instead of {theirs[i]!r}"
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return f"{a.size} values instead of {b.size}"
    bad = _outside(a, b, rtol=rtol, atol=atol)
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    return (
        f"{int(bad.sum())} of {b.size} values differ, the first at index {i}: "
        f"{a[i]!r} instead of {b[i]!r}"
    )


def _outside(
    a: NDArray[np.float64], b: NDArray[np.float64], *, rtol: float, atol: float
) -> NDArray[np.bool_]:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    bad = nan_a != nan_b
    both = ~nan_a & ~nan_b
    bad[both] = np.abs(a[both] - b[both]) > atol + rtol * np.abs(b[both])
    return bad


def stored_model(entry: Entry) -> ModelId:
    return ModelId(str(entry["model"]["name"]), str(entry["model"]["version"]))


def reference_problems(key: str, entry: Entry, computed: Computed) -> list[str]:
    """Where PerceptLab's columns leave the frozen reference columns' tolerance."""
    reference = entry["reference"]
    problems = []
    for column, values in sorted(reference["values"].items()):
        tolerance = entry["tolerance"][column]
        rtol, atol = float(tolerance["rtol"]), float(tolerance["atol"])
        if column not in computed.columns:
            problems.append(f"{key}: PerceptLab no longer gives {column!r}")
            continue
        found = differences(computed.columns[column], decode(values), rtol=rtol, atol=atol)
        if found:
            problems.append(
                f"{key}: {column} moved away from the reference ({reference['source']}) "
                f"beyond rtol={rtol:g}, atol={atol:g}: {found}"
            )
    return problems


def drift_problems(key: str, entry: Entry, computed: Computed) -> list[str]:
    """Why the stored PerceptLab numbers no longer stand: the model's name or version changed
    (regenerate), or its output changed while they did not (bump the version, regenerate)."""
    model, frozen = computed.model, stored_model(entry)
    if model != frozen:
        return [
            f"{key}: the model is now {model.name} {model.version} but the golden numbers were "
            f"made with {frozen.name} {frozen.version}: {REGENERATE}"
        ]
    stored = entry["perceptlab"]
    changed = []
    for column in sorted(set(stored) | set(computed.columns)):
        if column not in computed.columns:
            changed.append(f"{column} is no longer given")
            continue
        if column not in stored:
            changed.append(f"{column} is new")
            continue
        expected = decode(stored[column])
        scale = 0.0
        if not isinstance(expected, list) and np.isfinite(expected).any():
            scale = float(np.nanmax(np.abs(expected)))
        found = differences(
            computed.columns[column], expected, rtol=DRIFT_RTOL, atol=DRIFT_ATOL_SCALE * scale
        )
        if found:
            changed.append(f"{column}: {found}")
    if not changed:
        return []
    return [
        f"{model.name} {model.version} output changed without a version bump: bump its ModelId "
        f"version and {REGENERATE} ({key}: {'; '.join(changed)})"
    ]
