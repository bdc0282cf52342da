"""The exclusion policy: which judgments and raters an analysis leaves out, and how many
each rule removed. Pure pandas over the judgments frame (``frames.JUDGMENT_COLUMNS``);
the raw data always keep everything.

What counts at all (not an exclusion): test trials (practice, gold and repeat trials are
quality control) of real sessions (a researcher's preview never counts). Then, in order,
each rule removes what is still counted and says how much:

1. ``screened out while rating``: sessions the study screened out (gold trials failed
   during the session, ``studies/judging.py``);
2. ``gold failure rate > x``: raters whose share of failed gold trials exceeds
   ``max_gold_failure`` (ITU-T P.808 §6.2.1 uses gold questions the same way; off by
   default: the study's own screening already applies its pass fraction while rating);
3. ``inconsistent repeats > x``: raters whose share of repeat trials flagged
   ``inconsistent_repeat`` exceeds ``max_inconsistency`` (a repeat answered more than one
   category away, or the other image of a pair; off by default);
4. one rule per flag in ``flags``: judgments carrying it. The default drops ``too_fast``
   (shorter than the study's minimum view time on either clock), ``too_few_flips`` (2AFC
   and sequential DCR answered before the minimum number of flips) and ``pane_hidden``
   (the tab was hidden while the trial was on screen): judgments given without seeing the
   stimuli as the method requires. ``pane_cut`` and ``clock_mismatch`` are available;
5. ``lapse rate > x`` (2AFC): raters whose lapse (random-answer) probability q, fitted by the
   lapse model on what the rules above kept (``stats.lapse``, as Google's elo_rater_model),
   exceeds ``max_lapse``. It needs the model, so the analysis applies it
   (:func:`drop_raters`); :func:`apply_policy` applies rules 1–4.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from perceptlab.evaluation.stats.common import StatsInputError

JUDGMENT_FLAGS = ("too_fast", "too_few_flips", "pane_hidden", "pane_cut", "clock_mismatch")
DEFAULT_FLAGS = ("too_fast", "too_few_flips", "pane_hidden")
SCREENED_OUT = "screened_out"


@dataclass(frozen=True)
class ExclusionPolicy:
    flags: tuple[str, ...] = DEFAULT_FLAGS
    max_gold_failure: float | None = None  # a share in [0, 1); None: rule off
    max_inconsistency: float | None = None  # a share in [0, 1); None: rule off
    max_lapse: float | None = None  # a probability in [0, 1); None: rule off (2AFC only)
    drop_screened_out: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.flags) - set(JUDGMENT_FLAGS))
        if unknown:
            raise StatsInputError(
                f"unknown flag(s) {', '.join(unknown)}; valid: {', '.join(JUDGMENT_FLAGS)}"
            )
        for name in ("max_gold_failure", "max_inconsistency", "max_lapse"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise StatsInputError(f"{name} must lie in [0, 1), got {value}")

    def describe(self) -> str:
        parts = []
        if self.drop_screened_out:
            parts.append("raters screened out while rating")
        if self.max_gold_failure is not None:
            parts.append(f"raters failing more than {self.max_gold_failure:.0%} of gold trials")
        if self.max_inconsistency is not None:
            parts.append(f"raters with more than {self.max_inconsistency:.0%} inconsistent repeats")
        if self.flags:
            parts.append("judgments flagged " + ", ".join(self.flags))
        if self.max_lapse is not None:
            parts.append(f"raters whose lapse rate exceeds {self.max_lapse:g}")
        return "; ".join(parts) if parts else "nothing excluded"


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    judgments: int  # counted judgments this rule removed (after the rules before it)
    raters: int  # raters who lost every counted judgment to it


@dataclass
class Excluded:
    kept: pd.DataFrame  # the counted judgments the analysis uses
    outcomes: list[RuleOutcome]
    counted: int  # test judgments of real sessions, before any rule


def counted(judgments: pd.DataFrame) -> pd.Series:
    """Test trials of real sessions: what an analysis could count at all."""
    return (judgments["trial_kind"] == "test") & (judgments["platform"] != "preview")


def apply_policy(judgments: pd.DataFrame, policy: ExclusionPolicy) -> Excluded:
    """The counted judgments that survive ``policy``, and what each rule removed."""
    base = counted(judgments)
    keep = base.copy()
    outcomes: list[RuleOutcome] = []

    def remove(rule: str, mask: pd.Series) -> None:
        nonlocal keep
        hit = keep & mask
        before = set(judgments.loc[keep, "rater"])
        keep = keep & ~mask
        after = set(judgments.loc[keep, "rater"])
        outcomes.append(RuleOutcome(rule, int(hit.sum()), len(before - after)))

    if policy.drop_screened_out:
        remove("screened out while rating", judgments["session_state"] == SCREENED_OUT)
    if policy.max_gold_failure is not None:
        rate = _rater_rate(judgments, judgments["trial_kind"] == "gold", _gold_failed(judgments))
        rule = f"gold failure rate > {policy.max_gold_failure:g}"
        remove(rule, judgments["rater"].map(rate).fillna(0) > policy.max_gold_failure)
    if policy.max_inconsistency is not None:
        repeats = judgments["trial_kind"] == "repeat"
        rate = _rater_rate(judgments, repeats, _flagged(judgments, "inconsistent_repeat"))
        rule = f"inconsistent repeats > {policy.max_inconsistency:g}"
        remove(rule, judgments["rater"].map(rate).fillna(0) > policy.max_inconsistency)
    for flag in policy.flags:
        remove(f"flagged {flag}", _flagged(judgments, flag))
    kept = judgments.loc[keep].reset_index(drop=True)
    return Excluded(kept=kept, outcomes=outcomes, counted=int(base.sum()))


def drop_raters(excluded: Excluded, rule: str, raters: set[str]) -> Excluded:
    """``excluded`` less every kept judgment of ``raters``, recorded as ``rule``."""
    hit = excluded.kept["rater"].astype(str).isin(raters)
    outcome = RuleOutcome(rule, int(hit.sum()), int(excluded.kept.loc[hit, "rater"].nunique()))
    return Excluded(
        kept=excluded.kept.loc[~hit].reset_index(drop=True),
        outcomes=[*excluded.outcomes, outcome],
        counted=excluded.counted,
    )


def _flagged(judgments: pd.DataFrame, flag: str) -> pd.Series:
    names = [str(value).split(";") for value in judgments["flags"].fillna("")]
    return pd.Series([flag in row for row in names], index=judgments.index, dtype=bool)


def _gold_failed(judgments: pd.DataFrame) -> pd.Series:
    return judgments["gold_passed"].map(lambda v: v is False or v == 0 or v == "False")


def _rater_rate(judgments: pd.DataFrame, among: pd.Series, hit: pd.Series) -> pd.Series:
    """Per rater: the share of their ``among`` rows that ``hit`` (raters without any such
    row are absent: no evidence, no exclusion)."""
    rows = judgments.loc[among & (judgments["platform"] != "preview")]
    if rows.empty:
        return pd.Series(dtype=float)
    return hit.loc[rows.index].astype(float).groupby(rows["rater"]).mean()


def summary_table(excluded: Excluded) -> pd.DataFrame:
    """The report's table: what was counted, what each rule removed, what is kept."""
    kept = excluded.kept
    rows = [{"rule": "counted: test trials of real sessions", "judgments": excluded.counted}]
    rows += [
        {"rule": f"removed: {o.rule}", "judgments": o.judgments, "raters": o.raters}
        for o in excluded.outcomes
    ]
    rows.append({"rule": "kept", "judgments": len(kept), "raters": kept["rater"].nunique()})
    table = pd.DataFrame(rows, columns=["rule", "judgments", "raters"])
    return table.astype({"judgments": "Int64", "raters": "Int64"})  # counts, "–" where none
