"""Forms of the rater-facing pages: consent, the screen check and one judgment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from perceptlab.studies.judging import Answer
from perceptlab.studies.models import Judgment, Study
from perceptlab.studies.viewing import Screen, trial_viewing

PANE_GAP_DEVICE_PX = 16  # between side-by-side panes (rater.css/viewer.js use the same)
CONTROLS_CSS_PX = 160  # header, pane labels and answer buttons around the images


def needed_device_pixels(study: Study, device_pixel_ratio: float) -> tuple[int, int]:
    """(width, height) a window needs to show the study's panes at 1:1 device pixels.

    Width: panes × crop width + (panes − 1) × 16 gap; height: crop height + 160 CSS
    pixels (× devicePixelRatio) for the controls.
    """
    panes = study.panes()
    width = panes * study.crop_width + (panes - 1) * PANE_GAP_DEVICE_PX
    return width, study.crop_height + round(CONTROLS_CSS_PX * device_pixel_ratio)


class ConsentForm(forms.Form):
    decision = forms.ChoiceField(choices=[("agree", "I agree"), ("decline", "I do not agree")])

    def agreed(self) -> bool:
        return bool(self.cleaned_data["decision"] == "agree")


class ScreenForm(forms.Form):
    """The viewport and device the rater's browser reports (filled in by the
    instructions page's script); ``gave_up``: the rater could not make the window large
    enough and chose to leave."""

    inner_width = forms.IntegerField(min_value=1, max_value=100_000)
    inner_height = forms.IntegerField(min_value=1, max_value=100_000)
    device_pixel_ratio = forms.FloatField(min_value=0.1, max_value=16.0)
    screen_width = forms.IntegerField(min_value=0, max_value=100_000, required=False)
    screen_height = forms.IntegerField(min_value=0, max_value=100_000, required=False)
    touch_points = forms.IntegerField(min_value=0, max_value=1_000, required=False)
    pointer_fine = forms.BooleanField(required=False)
    zoom = forms.FloatField(min_value=0.1, max_value=10.0, required=False)
    gave_up = forms.BooleanField(required=False)

    def screen(self) -> dict[str, float | int]:
        data = self.cleaned_data
        dpr = data["device_pixel_ratio"]
        return {
            "inner_width": data["inner_width"],
            "inner_height": data["inner_height"],
            "device_pixel_ratio": dpr,
            "device_width": round(data["inner_width"] * dpr),
            "device_height": round(data["inner_height"] * dpr),
        }

    def device(self) -> Screen:
        data = self.cleaned_data
        return Screen(
            inner_width=data["inner_width"],
            inner_height=data["inner_height"],
            device_pixel_ratio=data["device_pixel_ratio"],
            screen_width=data.get("screen_width") or 0,
            screen_height=data.get("screen_height") or 0,
            touch_points=data.get("touch_points") or 0,
            pointer_fine=bool(data.get("pointer_fine")),
            zoom=data.get("zoom") or 1.0,
        )

    def shortfall(self, study: Study) -> str:
        """Why the window cannot show the study's crops at 1:1 device pixels ("" if it can)."""
        screen = self.screen()
        need_width, need_height = needed_device_pixels(study, screen["device_pixel_ratio"])
        if screen["device_width"] >= need_width and screen["device_height"] >= need_height:
            return ""
        return (
            f"screen too small: the window has {screen['device_width']}×"
            f"{screen['device_height']} device pixels, the study needs at least "
            f"{need_width}×{need_height}"
        )


class FiniteFloatField(forms.FloatField):
    """A FloatField whose out-of-range input (a 300-digit integer in JSON: OverflowError
    in float()) is a validation error, not a server error."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except OverflowError:
            raise forms.ValidationError("Enter a number.", code="invalid") from None


class JudgeForm(forms.Form):
    """One answer as the browser sends it; judging.record checks it against the trial.

    The judgment path reads it with :func:`parse_answer` (the same fields, messages and
    values without a form instance per request)."""

    position = forms.IntegerField(min_value=0, max_value=100_000)
    key = forms.UUIDField()
    score = FiniteFloatField(required=False)
    choice = forms.ChoiceField(choices=Judgment.Choice.choices, required=False)
    flips = forms.IntegerField(min_value=0, max_value=10_000, required=False)
    view_ms = forms.IntegerField(min_value=0, max_value=86_400_000, required=False)
    # How long before sending the rater answered (a replay after a lost connection
    # sends its original answer's age, so the server's clock stops when they answered).
    age_ms = forms.IntegerField(min_value=0, max_value=7 * 86_400_000, required=False)
    viewing = forms.JSONField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:
            _one_kind_of_answer(data)
        return data

    def answer(self) -> Answer:
        return _answer(self.cleaned_data)


class InvalidAnswer(Exception):
    """An answer whose fields do not validate: ``errors`` as ``Form.errors`` gives them
    (field name, or ``__all__``, → messages)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(" ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


def parse_answer(data: Mapping[str, Any]) -> Answer:
    """:class:`JudgeForm`'s validation of ``data`` (a JSON object or a form's QueryDict)
    without building a form: each declared field's own ``clean`` on the value its widget
    reads, so values and messages are the form's. A form instance deep-copies its eight
    fields and binds each; on the judgment path that was ~7 % of a judgment's CPU (py-spy).
    Raises :class:`InvalidAnswer`. ``tests/studies/test_judgment_path.py`` holds the two
    to the same result on valid and hostile bodies."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, field in _JUDGE_FIELDS.items():
        try:
            cleaned[name] = field.clean(field.widget.value_from_datadict(data, {}, name))
        except forms.ValidationError as exc:
            errors[name] = list(exc.messages)
    if not errors:
        try:
            _one_kind_of_answer(cleaned)
        except forms.ValidationError as exc:
            errors[NON_FIELD_ERRORS] = list(exc.messages)
    if errors:
        raise InvalidAnswer(errors)
    return _answer(cleaned)


# The class's declared fields: clean() only reads them, so one set serves every request.
_JUDGE_FIELDS: dict[str, forms.Field] = dict(JudgeForm.base_fields)


def _one_kind_of_answer(data: Mapping[str, Any]) -> None:
    if (data.get("score") is not None) == bool(data.get("choice")):
        raise forms.ValidationError("Send either a score or a choice.")


def _answer(data: Mapping[str, Any]) -> Answer:
    return Answer(
        position=data["position"],
        key=data["key"],
        score=data["score"],
        choice=data["choice"] or "",
        flips=data["flips"] or 0,
        view_ms=data["view_ms"] or 0,
        age_ms=data["age_ms"] or 0,
        viewing=trial_viewing(data.get("viewing")),
    )
