from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.http import QueryDict

from perceptlab.studies.models import EXCLUDABLE_FLAGS, Method, Study

SCREENING_CHOICES = [
    ("", "none"),
    ("bt500", "ITU-R BT.500 kurtosis screening"),
    ("p913", "ITU-T P.913 §12.4 (bias removed, then screened)"),
]


@dataclass(frozen=True)
class ReportOptions:
    """What a researcher chose on the report page; the exclusion policy defaults to the
    study's own (its settings, section "Analysis: exclusion policy")."""

    screening: str = ""
    anchor: str = ""
    exclude_flags: tuple[str, ...] | None = None  # None: the study's
    max_gold_failure: float | None = None
    max_inconsistency: float | None = None
    max_lapse: float | None = None
    policy_chosen: bool = False  # the form was sent: its policy, not the study's
    lapse: str = "report"  # 2AFC: analysis.LapseUse


LAPSE_CHOICES = [
    ("report", "show each rater's lapse rate only"),
    ("weight", "also scale with each rater weighted by 1 − lapse rate"),
]


class ReportOptionsForm(forms.Form):
    """What a researcher may change on the report page: screening, the BD-rate anchor and
    the exclusion policy (initially the study's)."""

    screening = forms.ChoiceField(choices=SCREENING_CHOICES, required=False)
    anchor = forms.ChoiceField(choices=[], required=False, label="BD-rate anchor")
    exclude = forms.MultipleChoiceField(
        choices=EXCLUDABLE_FLAGS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Exclude judgments flagged",
    )
    max_gold_failure = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.99,
        label="Exclude raters failing more than this share of gold trials",
    )
    max_inconsistency = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.99,
        label="Exclude raters with more than this share of inconsistent repeats",
    )
    max_lapse = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.99,
        label="Exclude raters whose lapse rate exceeds (2AFC)",
    )
    lapse = forms.ChoiceField(
        choices=LAPSE_CHOICES,
        required=False,
        label="Rater lapses (2AFC)",
        help_text="The lapse model (Google's elo_rater_model) estimates each rater's share of "
        "random answers; weighting keeps every rater but counts a random clicker for little.",
    )
    policy = forms.CharField(widget=forms.HiddenInput, required=False, initial="chosen")

    def __init__(self, data: QueryDict | None = None, *, study: Study) -> None:
        super().__init__(data)
        codecs = sorted(study.codecs)
        self.fields["anchor"].choices = [(c, c) for c in codecs]  # type: ignore[attr-defined]
        self.fields["anchor"].initial = codecs[0] if codecs else ""
        self.fields["exclude"].initial = list(study.exclude_flags or [])
        self.fields["max_gold_failure"].initial = study.max_gold_failure
        self.fields["max_inconsistency"].initial = study.max_inconsistency
        self.fields["max_lapse"].initial = study.max_lapse
        if study.is_pairwise:
            self.fields["screening"].choices = [("", "none (pairwise: gold trials screen)")]  # type: ignore[attr-defined]
        if study.method != Method.AFC2:  # the lapse model is a 2AFC preference model
            del self.fields["lapse"], self.fields["max_lapse"]
        if study.is_flicker:
            self.fields["anchor"].label = "Reference codec (savings at the threshold)"

    def options(self) -> ReportOptions:
        if not self.is_bound or not self.is_valid():
            return ReportOptions()
        data = self.cleaned_data
        chosen = data.get("policy") == "chosen"
        return ReportOptions(
            screening=data.get("screening") or "",
            anchor=data.get("anchor") or "",
            exclude_flags=tuple(data.get("exclude") or ()) if chosen else None,
            max_gold_failure=data.get("max_gold_failure") if chosen else None,
            max_inconsistency=data.get("max_inconsistency") if chosen else None,
            max_lapse=data.get("max_lapse") if chosen else None,
            policy_chosen=chosen,
            lapse=data.get("lapse") or "report",
        )
