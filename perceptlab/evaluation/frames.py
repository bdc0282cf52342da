"""Read a study's stored rows into the flat frames the statistics and exports use.

Three frames describe a study completely, and they are exactly the CSV files of the export
bundle, so an analysis of the bundle and of the live database are the same computation:

* ``stimuli``: one row per stimulus (what was shown: image, codec, target and achieved bpp,
  codec version and parameters, hashes of the crop and of the bitstream);
* ``judgments``: one row per judgment (who, which trial, what was shown, the answer,
  timings and quality-control flags);
* ``metrics``: one row per stimulus × region × objective metric.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from perceptlab.evaluation.models import StimulusMetric
from perceptlab.studies.models import Judgment, Stimulus, Study

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
    "num_bytes",
    "params",
    "width",
    "height",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "png_sha256",
    "bitstream_sha256",
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
    "codec_b",
    "target_bpp_b",
    "bpp_b",
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
    target = f"{r.target_bpp:g}" if r.target_bpp is not None else "fixed"
    return f"{r.codec}@{target}"


def stimuli_frame(study: Study) -> pd.DataFrame:
    rows = []
    stimuli = study.stimuli.select_related("study_image__source", "reconstruction")
    for s in stimuli.order_by("id"):
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
                "target_bpp": r.target_bpp if r else None,
                "bpp": r.achieved_bpp if r else None,
                "num_bytes": r.num_bytes if r else None,
                "params": json.dumps(r.params, sort_keys=True) if r else "",
                "width": source.width,
                "height": source.height,
                "crop_x": x,
                "crop_y": y,
                "crop_w": w,
                "crop_h": h,
                "png_sha256": s.png_sha256,
                "bitstream_sha256": r.bitstream_sha256 if r else "",
                "source_png_sha256": source.png_sha256,
            }
        )
    return pd.DataFrame(rows, columns=STIMULUS_COLUMNS)


def judgments_frame(study: Study) -> pd.DataFrame:
    judgments = (
        Judgment.objects.filter(trial__session__study=study)
        .select_related(
            "trial__session",
            "trial__item__a__study_image__source",
            "trial__item__a__reconstruction",
            "trial__item__b__reconstruction",
            "trial__item__b__study_image__source",
            "chosen",
        )
        .order_by("created", "id")
    )
    rows = [_judgment_row(j) for j in judgments]
    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


def _judgment_row(j: Judgment) -> dict[str, Any]:
    trial, session = j.trial, j.trial.session
    a, b = trial.item.a, trial.item.b
    row: dict[str, Any] = {
        "judgment": str(j.key),
        "created": j.created.isoformat(),
        "rater": str(session.code),
        "platform": session.platform,
        "participant_id": session.participant_id,
        "session_state": session.state,
        "screened_reason": session.screened_reason,
        "position": trial.position,
        "trial_kind": trial.kind,
        "item_kind": trial.item.kind,
        "image": image_label(a.study_image.source.name),
        "a": stimulus_label(a),
        "b": stimulus_label(b) if b is not None else "",
        "swapped": trial.swapped,
        "score": j.score,
        "choice": j.choice,
        "chosen": stimulus_label(j.chosen) if j.chosen is not None else "",
        "outcome": _outcome(j, a, b),
        "view_ms": j.view_ms,
        "server_ms": j.server_ms,
        "flips": j.flips,
        "flags": ";".join(j.flags),
        "gold_passed": j.gold_passed,
        "answered": j.answered.isoformat() if j.answered else "",
        "device_class": session.viewing.get("device_class", ""),
        **{name: j.viewing.get(name) for name in VIEWING_COLUMNS},
    }
    for side, s in (("a", a), ("b", b)):
        r = s.reconstruction if s is not None else None
        row[f"codec_{side}"] = r.codec if r else ""
        row[f"target_bpp_{side}"] = r.target_bpp if r else None
        row[f"bpp_{side}"] = r.achieved_bpp if r else None
    return row


def _outcome(j: Judgment, a: Stimulus, b: Stimulus | None) -> float | None:
    """2AFC outcome relative to the item's ``a``: 1 a chosen, 0 b chosen, 0.5 undecided."""
    if b is None:
        return None
    if j.choice == Judgment.Choice.UNDECIDED:
        return 0.5
    return 1.0 if j.chosen_id == a.pk else 0.0


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
