"""Golden numbers: PerceptLab against frozen reference outputs, and no silent model changes.

``tests/evaluation/golden/*.json`` (made by ``golden/make_golden.py`` from sureal, choix,
scipy and bjontegaard; its docstring says how) hold, for every case, the reference library's
numbers and PerceptLab's own numbers with the name and version of the model that produced
them. Nothing here imports a reference library: the references are frozen, so an upstream
release cannot move them. For every case:

* PerceptLab's output must equal the frozen reference within the case's stored tolerance;
* while the model's name and version are those stored, PerceptLab's output must equal the
  stored output to 1e-9 relative. A changed output needs a bumped ``ModelId`` version and
  regenerated files; a bumped version with stale files fails too, asking to regenerate.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from golden import cases, check
from support import data_dir

from perceptlab.evaluation.stats import pairwise
from perceptlab.evaluation.stats.common import ModelId

REFERENCE_LIBRARIES = {"sureal", "choix", "bjontegaard"}
KEYS = [case.key for case in cases.CASES]


def datasets() -> Path:
    """The datasets folder, with the golden cases' inputs in it (``sureal/…``, ``pairwise/…``,
    ``bdrate/…``)."""
    return data_dir("sureal", "pairwise", "bdrate")


@functools.cache
def golden(family: str) -> dict[str, Any]:
    return check.load(family)


def stored(case: cases.Case) -> check.Entry:
    entries = golden(case.family)["cases"]
    if case.name not in entries:
        pytest.fail(f"{case.key} has no golden numbers: {check.REGENERATE}")
    entry: check.Entry = entries[case.name]
    return entry


@functools.cache
def computed(key: str) -> cases.Computed:
    return cases.CASES_BY_KEY[key].run(datasets())


def test_the_golden_files_hold_the_current_cases_with_their_inputs() -> None:
    for family in cases.FAMILIES:
        entries = golden(family)["cases"]
        current = {case.name: case for case in cases.by_family(family)}
        assert sorted(entries) == sorted(current), f"{family}.json: {check.REGENERATE}"
        for name, case in current.items():
            same_input = json.loads(json.dumps(case.input)) == entries[name]["input"]
            assert same_input, f"{case.key}: the case's input changed: {check.REGENERATE}"


@pytest.mark.parametrize("key", KEYS)
def test_perceptlab_matches_the_frozen_reference(key: str) -> None:
    case = cases.CASES_BY_KEY[key]
    problems = check.reference_problems(key, stored(case), computed(key))
    if problems:
        pytest.fail("\n".join(problems))


@pytest.mark.parametrize("key", KEYS)
def test_output_is_unchanged_unless_the_model_version_was_bumped(key: str) -> None:
    case = cases.CASES_BY_KEY[key]
    problems = check.drift_problems(key, stored(case), computed(key))
    if problems:
        pytest.fail("\n".join(problems))


# -- the checks themselves --------------------------------------------------------------------

BT_CASE = "pairwise/bt-none-tmo"


def patch_bradley_terry(
    monkeypatch: pytest.MonkeyPatch, *, factor: float, model: ModelId | None = None
) -> None:
    """Make ``pairwise.bradley_terry`` scale θ by ``factor`` (and report ``model``)."""
    original: Callable[..., pairwise.BTResult] = pairwise.bradley_terry

    def perturbed(*args: Any, **kwargs: Any) -> pairwise.BTResult:
        result = original(*args, **kwargs)
        scores = result.scores.assign(theta=result.scores["theta"] * factor)
        return dataclasses.replace(result, scores=scores, model=model or result.model)

    monkeypatch.setattr(pairwise, "bradley_terry", perturbed)


def run_bt_case() -> tuple[check.Entry, cases.Computed]:
    case = cases.CASES_BY_KEY[BT_CASE]
    return stored(case), case.run(datasets())  # not the cached result


def test_a_changed_output_without_a_version_bump_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # θ × (1 + 1e-7): inside the 1e-6 tolerance of choix, so only the version check sees it
    patch_bradley_terry(monkeypatch, factor=1 + 1e-7)
    entry, result = run_bt_case()
    assert check.reference_problems(BT_CASE, entry, result) == []
    (problem,) = check.drift_problems(BT_CASE, entry, result)
    assert problem.startswith("bradley-terry-mle 1.0 output changed without a version bump")
    assert "bump its ModelId version and regenerate tests/evaluation/golden" in problem
    assert "theta:" in problem


def test_a_bumped_version_with_stale_golden_numbers_asks_to_regenerate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_bradley_terry(monkeypatch, factor=1 + 1e-7, model=ModelId("bradley-terry-mle", "1.1"))
    entry, result = run_bt_case()
    (problem,) = check.drift_problems(BT_CASE, entry, result)
    assert "without a version bump" not in problem
    assert "now bradley-terry-mle 1.1" in problem and "made with bradley-terry-mle 1.0" in problem
    assert problem.endswith(check.REGENERATE)


def test_an_output_that_leaves_the_reference_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_bradley_terry(monkeypatch, factor=1.001)
    entry, result = run_bt_case()
    (problem,) = check.reference_problems(BT_CASE, entry, result)
    assert problem.startswith(f"{BT_CASE}: theta moved away from the reference (choix 0.4.1")


def test_an_unchanged_output_passes_both_checks() -> None:
    entry, result = run_bt_case()
    assert check.reference_problems(BT_CASE, entry, result) == []
    assert check.drift_problems(BT_CASE, entry, result) == []


def test_the_golden_check_imports_no_reference_library() -> None:
    golden_dir = Path(check.__file__).parent
    for path in (Path(__file__), golden_dir / "cases.py", golden_dir / "check.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & REFERENCE_LIBRARIES, path.name
