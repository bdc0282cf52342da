"""Read a study's stored rows into the flat frames the statistics and exports use.

Three frames describe a study completely, and they are exactly the CSV files of the export
bundle, so an analysis of the bundle and of the live database are the same computation:

* ``stimuli``: one row per stimulus (what was shown: image, codec, target and achieved bpp,
  the BTC boost it was stored with (``boost_alpha``, empty for a plain crop),
  where that bpp comes from (``bpp_source``: ``measured`` from the bitstream, or
  ``declared`` by the researcher for an imported codec without bitstreams), codec version
  and parameters, hashes of the crop and of the bitstream);
* ``judgments``: one row per judgment (who, which trial, what was shown, the answer,
  timings and quality-control flags);
* ``metrics``: one row per stimulus × region × objective metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db.models import QuerySet

from perceptlab.evaluation.models import StimulusMetric
from perceptlab.studies.models import Judgment, Session, Stimulus, Study

STIMULUS_COLUMNS = [
    "stimulus_id",
    "stimulus",
    "image",
    "role",
    "condition",
    "codec",
    "codec_version",
    "target_bpp",
    "bpp",
    "bpp_source",
    "num_bytes",
    "params",
    "width",
    "height",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "boost_alpha",
    "png_sha256",
    "bitstream_sha256",
    "weights_sha256",
    "source_png_sha256",
]

VIEWING_COLUMNS = [
    "dpr",
    "window_width",
    "window_height",
    "hidden_ms",
    "paused_ms",
    "focus_losses",
    "fullscreen_exits",
    "resizes",
    "cut",
]

JUDGMENT_COLUMNS = [
    "judgment",
    "created",
    "rater",
    "platform",
    "participant_id",
    "session_state",
    "screened_reason",
    "position",
    "trial_kind",
    "item_kind",
    "image",
    "a",
    "b",
    "swapped",
    "score",
    "choice",
    "chosen",
    "outcome",
    "codec_a",
    "target_bpp_a",
    "bpp_a",
    "bpp_source_a",
    "codec_b",
    "target_bpp_b",
    "bpp_b",
    "bpp_source_b",
    "view_ms",
    "server_ms",
    "flips",
    "flags",
    "gold_passed",
    # viewing conditions, for an exclusion policy (studies/viewing.py)
    "answered",
    "device_class",
    *VIEWING_COLUMNS,
]

METRIC_COLUMNS = ["stimulus", "region", "metric", "value", "unavailable", "version"]


def image_label(name: str) -> str:
    """The image's file name without its extension (Kodak ``kodim01.png`` → ``kodim01``)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def stimulus_label(stimulus: Stimulus) -> str:
    """A readable key that is unique within a study: ``<image>/<condition>``."""
    return f"{image_label(stimulus.study_image.source.name)}/{condition_of(stimulus)}"


def condition_of(stimulus: Stimulus) -> str:
    """``codec@target`` for reconstructions (the unit of a rate–quality curve); ``original``,
    ``hidden-reference`` (the original shown as a test image) or ``gold`` otherwise."""
    r = stimulus.reconstruction
    if r is None or stimulus.role != Stimulus.Role.CONDITION:
        names = {Stimulus.Role.ORIGINAL: "original", Stimulus.Role.HIDDEN: "hidden-reference"}
        return names.get(Stimulus.Role(stimulus.role), "gold")
    target_bpp = stimulus.target()
    target = f"{target_bpp:g}" if target_bpp is not None else "fixed"
    return f"{r.codec}@{target}"


def stimuli_frame(study: Study) -> pd.DataFrame:
    rows = []
    for s in _stimuli_of(study).order_by("id"):
        r, source = s.reconstruction, s.study_image.source
        x, y, w, h = s.study_image.crop_box()
        rows.append(
            {
                "stimulus_id": s.pk,
                "stimulus": stimulus_label(s),
                "image": image_label(source.name),
                "role": s.role,
                "condition": condition_of(s),
                "codec": r.codec if r else "",
                "codec_version": r.codec_version if r else "",
                "target_bpp": s.target(),
                "bpp": r.achieved_bpp if r else None,
                "bpp_source": r.bpp_source if r else "",
                "num_bytes": r.num_bytes if r else None,
                "params": json.dumps(r.params, sort_keys=True) if r else "",
                "width": source.width,
                "height": source.height,
                "crop_x": x,
                "crop_y": y,
                "crop_w": w,
                "crop_h": h,
                "boost_alpha": s.boost_alpha,
                "png_sha256": s.png_sha256,
                "bitstream_sha256": r.bitstream_sha256 if r else "",
                "weights_sha256": r.weights_sha256 if r else "",
                "source_png_sha256": source.png_sha256,
            }
        )
    return pd.DataFrame(rows, columns=STIMULUS_COLUMNS)


def judgments_frame(study: Study) -> pd.DataFrame:
    """One row per stored judgment (:data:`JUDGMENT_COLUMNS`), oldest first.

    Read as plain values, not model instances: the stimuli (a few hundred) and the
    sessions once each, then the judgments with their trial and item ids in one query. A
    study of 100,000 judgments is read in seconds (through ``select_related`` it took
    40 s, eight model instances a row).
    """
    stimuli = {s.pk: _StimulusInfo.of(s) for s in _stimuli_of(study)}
    sessions = {
        pk: (str(code), platform, participant_id, state, reason, (viewing or {}))
        for pk, code, platform, participant_id, state, reason, viewing in Session.objects.filter(
            study=study
        ).values_list(
            "pk", "code", "platform", "participant_id", "state", "screened_reason", "viewing"
        )
    }
    values = (
        Judgment.objects.filter(trial__session__study=study)
        .order_by("created", "id")
        .values_list(
            "key",
            "created",
            "score",
            "choice",
            "chosen_id",
            "view_ms",
            "server_ms",
            "flips",
            "flags",
            "gold_passed",
            "answered",
            "viewing",
            "trial__session_id",
            "trial__position",
            "trial__kind",
            "trial__swapped",
            "trial__item__kind",
            "trial__item__a_id",
            "trial__item__b_id",
        )
    )
    rows = [_judgment_row(v, stimuli, sessions) for v in values.iterator(chunk_size=5000)]
    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


@dataclass(frozen=True)
class _StimulusInfo:
    label: str
    image: str
    codec: str
    target_bpp: float | None
    bpp: float | None
    bpp_source: str

    @classmethod
    def of(cls, stimulus: Stimulus) -> _StimulusInfo:
        r = stimulus.reconstruction
        return cls(
            label=stimulus_label(stimulus),
            image=image_label(stimulus.study_image.source.name),
            codec=r.codec if r else "",
            target_bpp=stimulus.target(),
            bpp=r.achieved_bpp if r else None,
            bpp_source=r.bpp_source if r else "",
        )


def _stimuli_of(study: Study) -> QuerySet[Stimulus]:
    return Stimulus.objects.filter(study=study).select_related(
        "study_image__source", "reconstruction"
    )


def _judgment_row(
    v: tuple[Any, ...],
    stimuli: dict[int, _StimulusInfo],
    sessions: dict[int, tuple[str, str, str, str, str, dict[str, Any]]],
) -> dict[str, Any]:
    key, created, score, choice, chosen_id, view_ms, server_ms, flips, flags = v[:9]
    gold_passed, answered, viewing, session_id, position, trial_kind, swapped = v[9:16]
    item_kind, a_id, b_id = v[16:]
    rater, platform, participant_id, state, reason, session_viewing = sessions[session_id]
    a, b = stimuli[a_id], stimuli.get(b_id) if b_id is not None else None
    viewing = viewing or {}
    row: dict[str, Any] = {
        "judgment": str(key),
        "created": created.isoformat(),
        "rater": rater,
        "platform": platform,
        "participant_id": participant_id,
        "session_state": state,
        "screened_reason": reason,
        "position": position,
        "trial_kind": trial_kind,
        "item_kind": item_kind,
        "image": a.image,
        "a": a.label,
        "b": b.label if b is not None else "",
        "swapped": swapped,
        "score": score,
        "choice": choice,
        "chosen": stimuli[chosen_id].label if chosen_id is not None else "",
        "outcome": _outcome(choice, chosen_id, a_id, b_id),
        "view_ms": view_ms,
        "server_ms": server_ms,
        "flips": flips,
        "flags": ";".join(flags or []),
        "gold_passed": gold_passed,
        "answered": answered.isoformat() if answered else "",
        "device_class": session_viewing.get("device_class", ""),
        **{name: viewing.get(name) for name in VIEWING_COLUMNS},
    }
    for side, info in (("a", a), ("b", b)):
        row[f"codec_{side}"] = info.codec if info else ""
        row[f"target_bpp_{side}"] = info.target_bpp if info else None
        row[f"bpp_{side}"] = info.bpp if info else None
        row[f"bpp_source_{side}"] = info.bpp_source if info else ""
    return row


def _outcome(choice: str, chosen_id: int | None, a_id: int, b_id: int | None) -> float | None:
    """2AFC outcome relative to the item's ``a``: 1 a chosen, 0 b chosen, 0.5 undecided."""
    if b_id is None:
        return None
    if choice == Judgment.Choice.UNDECIDED:
        return 0.5
    return 1.0 if chosen_id == a_id else 0.0


def crop_metric_values(study: Study) -> dict[int, dict[str, float]]:
    """Stimulus id → metric → value on the crop raters see (computed values only): what a
    metric-guided study calibrates (:mod:`perceptlab.studies.guidance`)."""
    values: dict[int, dict[str, float]] = {}
    rows = StimulusMetric.objects.filter(
        stimulus__study=study, region=StimulusMetric.Region.CROP, value__isnull=False
    ).values_list("stimulus_id", "metric", "value")
    for stimulus, metric, value in rows:
        if value is not None:
            values.setdefault(stimulus, {})[metric] = float(value)
    return values


def metrics_frame(study: Study) -> pd.DataFrame:
    values = StimulusMetric.objects.filter(stimulus__study=study).select_related(
        "stimulus__study_image__source", "stimulus__reconstruction"
    )
    rows = [
        {
            "stimulus": stimulus_label(m.stimulus),
            "region": m.region,
            "metric": m.metric,
            "value": m.value,
            "unavailable": m.unavailable,
            "version": m.version,
        }
        for m in values.order_by("stimulus_id", "region", "metric")
    ]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)
