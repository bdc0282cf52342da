"""The exclusion policy on a hand-made judgments frame: every rule removes what it says,
in order, and says how many judgments and raters it removed."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptlab.evaluation.exclusion import ExclusionPolicy, apply_policy, summary_table
from perceptlab.evaluation.stats.common import StatsInputError


def _frame() -> pd.DataFrame:
    rows = []

    def add(rater: str, kind: str, flags: str = "", gold: object = None, **extra: str) -> None:
        rows.append(
            {
                "rater": rater,
                "trial_kind": kind,
                "platform": extra.get("platform", "prolific"),
                "session_state": extra.get("state", "completed"),
                "flags": flags,
                "gold_passed": gold,
            }
        )

    for _ in range(4):
        add("good", "test")
    add("good", "test", "too_fast")
    add("good", "test", "pane_cut")
    add("good", "gold", gold=True)
    add("good", "practice", "too_fast")  # never counted anyway
    for _ in range(3):
        add("careless", "test")
    add("careless", "gold", gold=False)
    add("careless", "gold", gold=True)
    add("careless", "repeat", "inconsistent_repeat")
    for _ in range(2):
        add("out", "test", state="screened_out")
    add("flicker", "test", "too_few_flips;pane_hidden")
    add("flicker", "test")
    add("flicker", "repeat")
    add("researcher", "test", platform="preview")
    return pd.DataFrame(rows)


def test_the_default_policy_drops_screened_out_raters_and_flagged_judgments() -> None:
    excluded = apply_policy(_frame(), ExclusionPolicy())
    assert excluded.counted == 4 + 2 + 3 + 2 + 2  # test trials, preview left out
    outcomes = {o.rule: (o.judgments, o.raters) for o in excluded.outcomes}
    assert outcomes == {
        "screened out while rating": (2, 1),
        "flagged too_fast": (1, 0),
        "flagged too_few_flips": (1, 0),  # the same judgment is not counted twice
        "flagged pane_hidden": (0, 0),
    }
    assert len(excluded.kept) == 13 - 2 - 1 - 1
    assert set(excluded.kept["rater"]) == {"good", "careless", "flicker"}
    assert "pane_cut" in set(excluded.kept["flags"])  # not in the default policy


def test_rater_rules_use_gold_and_repeat_trials_but_drop_only_test_judgments() -> None:
    policy = ExclusionPolicy(flags=(), max_gold_failure=0.4, max_inconsistency=0.5)
    excluded = apply_policy(_frame(), policy)
    outcomes = {o.rule: (o.judgments, o.raters) for o in excluded.outcomes}
    assert outcomes["gold failure rate > 0.4"] == (3, 1)  # careless failed 1 of 2
    assert outcomes["inconsistent repeats > 0.5"] == (0, 0)  # careless already gone
    assert set(excluded.kept["rater"]) == {"good", "flicker"}
    stricter = apply_policy(_frame(), ExclusionPolicy(flags=(), max_inconsistency=0.5))
    inconsistent = {o.rule: o.judgments for o in stricter.outcomes}
    assert inconsistent["inconsistent repeats > 0.5"] == 3  # careless: 1 of 1 repeats


def test_the_summary_says_counted_removed_and_kept() -> None:
    table = summary_table(apply_policy(_frame(), ExclusionPolicy()))
    assert table.iloc[0].tolist()[:2] == ["counted: test trials of real sessions", 13]
    assert table.iloc[-1]["rule"] == "kept" and table.iloc[-1]["judgments"] == 9
    assert table.iloc[-1]["raters"] == 3


def test_a_bad_policy_is_refused_naming_the_valid_values() -> None:
    with pytest.raises(StatsInputError, match=r"unknown flag.*valid: too_fast"):
        ExclusionPolicy(flags=("too_slow",))
    with pytest.raises(StatsInputError, match=r"max_gold_failure must lie in \[0, 1\)"):
        ExclusionPolicy(max_gold_failure=1.5)
