from __future__ import annotations

from django import forms

from perceptlab.studies.models import Study

SCREENING_CHOICES = [
    ("", "none"),
    ("bt500", "ITU-R BT.500 kurtosis screening"),
    ("p913", "ITU-T P.913 §12.4 (bias removed, then screened)"),
]


class ReportOptionsForm(forms.Form):
    """What a researcher may change on the report page: screening and the BD-rate anchor."""

    screening = forms.ChoiceField(choices=SCREENING_CHOICES, required=False)
    anchor = forms.ChoiceField(choices=[], required=False, label="BD-rate anchor")

    def __init__(self, *args: object, study: Study, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        codecs = sorted(study.codecs)
        self.fields["anchor"].choices = [(c, c) for c in codecs]  # type: ignore[attr-defined]
        self.fields["anchor"].initial = codecs[0] if codecs else ""
        if study.is_pairwise:
            self.fields["screening"].choices = [("", "none (pairwise: gold trials screen)")]  # type: ignore[attr-defined]

    def options(self) -> dict[str, str]:
        if not self.is_valid():
            return {"screening": "", "anchor": ""}
        return {k: self.cleaned_data.get(k) or "" for k in ("screening", "anchor")}
