"""Exports: the CSV files of a study and one reproducible bundle.

The bundle (a zip) holds the three input frames (``judgments.csv``, ``stimuli.csv``,
``metrics.csv``), the results (``scores.csv``, ``report.html``), the sureal-format dataset
(``sureal_dataset.json``, ACR/DCR) or the triplet responses (``triplets.csv``, triplet
studies, in the layout ``manage.py score --kind triplet`` reads), for flicker studies the
codecs' savings at the threshold (``flicker_savings.csv``; ``scores.csv`` holds each image and
codec's threshold), for ACR, DCR and triplet studies with metrics the study replayed as a
metric-guided one (``metric_guidance.csv``: the scale's error per number of stimuli measured,
guided and in random order), and ``manifest.json``: the
analysis settings, the model names and versions, the software versions and the SHA-256 of
every file. Reopening a bundle (:func:`open_bundle` → :func:`reanalyse`) reruns the same
analysis on its frames and gives the same scores, on any machine, without the database.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from perceptlab.evaluation.analysis import (
    Analysis,
    AnalysisConfig,
    analyse,
    counted_judgments,
    ratings_frame,
)
from perceptlab.evaluation.stats.common import StatsInputError

if TYPE_CHECKING:
    from perceptlab.evaluation.forms import ReportOptions
    from perceptlab.studies.models import Study

BUNDLE_FORMAT = "perceptlab-bundle/1"
INPUTS = ("judgments.csv", "stimuli.csv", "metrics.csv")
TEXT_COLUMNS = frozenset(
    {
        "judgment",
        "created",
        "rater",
        "platform",
        "participant_id",
        "session_state",
        "screened_reason",
        "trial_kind",
        "item_kind",
        "image",
        "a",
        "b",
        "choice",
        "chosen",
        "codec_a",
        "codec_b",
        "bpp_source",
        "bpp_source_a",
        "bpp_source_b",
        "flags",
        "answered",
        "device_class",
        "stimulus",
        "role",
        "condition",
        "codec",
        "codec_version",
        "params",
        "png_sha256",
        "bitstream_sha256",
        "weights_sha256",
        "source_png_sha256",
        "region",
        "metric",
        "unavailable",
        "version",
        "key",
        "level",
        "measure",
        "group",
        "note",
    }
)
PACKAGES = ("perceptlab", "numpy", "pandas", "scipy", "plotly", "piq", "torch", "Django")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV with full float precision (pandas writes repr, which round-trips exactly)."""
    return frame.to_csv(index=False, lineterminator="\n").encode()


def read_csv_bytes(data: bytes) -> pd.DataFrame:
    """Read an exported CSV back: labels stay text (an image called ``007`` stays ``007``),
    empty cells of text columns are empty strings, of numeric columns NaN."""
    frame = pd.read_csv(
        io.BytesIO(data),
        keep_default_na=False,
        na_values=[""],
        dtype={c: str for c in TEXT_COLUMNS},
        float_precision="round_trip",  # pandas' default parser may miss the last bit
    )
    for column in TEXT_COLUMNS.intersection(frame.columns):
        frame[column] = frame[column].fillna("")
    return frame


def software_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sureal_files(
    *, stimuli: pd.DataFrame, judgments: pd.DataFrame, config: AnalysisConfig, name: str
) -> dict[str, bytes]:
    """``sureal_dataset.json`` for ACR/DCR studies (sureal's dataset structure, as JSON) of
    the ratings the analysis counted under ``config``'s exclusion policy."""
    from perceptlab.evaluation.stats.ratings_io import to_sureal_dataset_json

    if config.method == "triplet":
        return triplet_files(stimuli=stimuli, judgments=judgments, config=config)
    if config.method in ("2afc", "flicker"):  # scores.csv holds what they yield
        return {}
    # the judgments the analysis counted (the exclusion policy applied), so that sureal or
    # ``manage.py score`` on this file give the bundle's scores
    ratings = ratings_frame(counted_judgments(judgments, config.policy()), stimuli)
    if ratings.empty:
        return {}
    dataset = to_sureal_dataset_json(ratings, dataset_name=name)
    return {"sureal_dataset.json": json.dumps(dataset, indent=1, sort_keys=True).encode()}


def triplet_files(
    *, stimuli: pd.DataFrame, judgments: pd.DataFrame, config: AnalysisConfig
) -> dict[str, bytes]:
    """``triplets.csv`` for triplet studies: the counted judgments, and the traps of the same
    raters (role ``trap``), in the platform triplet layout (``analysis.triplet.triplet_frame``),
    which ``manage.py score --kind triplet --ratings triplets.csv`` scales as the report does
    (traps only enter its per-rater checks)."""
    from perceptlab.evaluation.analysis.triplet import traps_of, triplet_frame

    counted = counted_judgments(judgments, config.policy())
    if counted.empty:
        return {}
    answers = pd.concat([counted, traps_of(judgments, counted)])
    return {"triplets.csv": csv_bytes(triplet_frame(answers, stimuli))}


@dataclass
class Bundle:
    manifest: dict[str, Any]
    stimuli: pd.DataFrame
    judgments: pd.DataFrame
    metrics: pd.DataFrame
    scores: pd.DataFrame

    @property
    def config(self) -> AnalysisConfig:
        settings = dict(self.manifest["analysis"])
        # a bundle written before the option existed was scaled without a prior
        settings.setdefault("pairwise_prior", "none")
        # … and counted every judgment of a session not screened out (no exclusion policy)
        settings.setdefault("exclude_flags", [])
        return AnalysisConfig.from_json(settings)


def make_bundle(
    *,
    study: dict[str, Any],
    stimuli: pd.DataFrame,
    judgments: pd.DataFrame,
    metrics: pd.DataFrame,
    analysis: Analysis,
    report_html: str,
    extra: dict[str, bytes] | None = None,
    stored: dict[str, str] | None = None,
) -> bytes:
    """The zip: inputs, results and a manifest with hashes (see the module docstring).
    ``stored``: when and on which data (SHA-256 of the frames) the analysis was computed."""
    files = {
        "judgments.csv": csv_bytes(judgments),
        "stimuli.csv": csv_bytes(stimuli),
        "metrics.csv": csv_bytes(metrics),
        "scores.csv": csv_bytes(analysis.scores),
        # flicker: each codec's saving at the visually lossless threshold
        **(
            {"flicker_savings.csv": csv_bytes(analysis.flicker_savings)}
            if not analysis.flicker_savings.empty
            else {}
        ),
        # ACR/DCR/triplet: the study replayed as a metric-guided one (the report's section
        # "What metric guidance would have saved")
        **(
            {"metric_guidance.csv": csv_bytes(analysis.guidance)}
            if not analysis.guidance.empty
            else {}
        ),
        "report.html": report_html.encode(),
        **(extra or {}),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "study": study,
        "analysis": analysis.config.as_dict(),
        "models": sorted({f"{m.name} {m.version}" for m in analysis.models}),
        "software": software_versions(),
        "counts": analysis.counts,
        # the exclusion policy and what each rule removed (the raw tables keep everything)
        "exclusion": {
            "policy": analysis.config.policy().describe(),
            "rules": json.loads(analysis.exclusion.to_json(orient="records")),
        },
        **({"stored_analysis": stored} if stored else {}),
    }
    return _zip(files, manifest)


def make_raw_bundle(
    *,
    study: dict[str, Any],
    stimuli: pd.DataFrame,
    judgments: pd.DataFrame,
    metrics: pd.DataFrame,
    config: AnalysisConfig,
    error: str,
) -> bytes:
    """The zip of a study whose analysis failed: the raw tables and a manifest that says
    why there are no scores (raw data always export, whatever the analysis state)."""
    files = {
        "judgments.csv": csv_bytes(judgments),
        "stimuli.csv": csv_bytes(stimuli),
        "metrics.csv": csv_bytes(metrics),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "study": study,
        "analysis": config.as_dict(),
        "analysis_failed": error,
        "software": software_versions(),
    }
    return _zip(files, manifest)


def _zip(files: dict[str, bytes], manifest: dict[str, Any]) -> bytes:
    manifest = {
        **manifest,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return buffer.getvalue()


def open_bundle(path: Path | str) -> Bundle:
    """Read a bundle, checking its format and every file's SHA-256 against the manifest."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise StatsInputError(f"{path}: not a readable bundle zip ({error})") from error
    with archive:
        names = set(archive.namelist())
        if "manifest.json" not in names:
            raise StatsInputError(f"{path}: no manifest.json; is this a PerceptLab bundle?")
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != BUNDLE_FORMAT:
            raise StatsInputError(
                f"{path}: bundle format {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}"
            )
        data = {name: archive.read(name) for name in manifest["files"] if name in names}
    for name, entry in manifest["files"].items():
        if name not in data:
            raise StatsInputError(f"{path}: {name} is listed in the manifest but missing")
        digest = hashlib.sha256(data[name]).hexdigest()
        if digest != entry["sha256"]:
            raise StatsInputError(
                f"{path}: {name} has SHA-256 {digest}, the manifest says {entry['sha256']}"
            )
    if "scores.csv" not in data:  # a raw bundle: its analysis had failed
        failed = manifest.get("analysis_failed", "no scores.csv")
        raise StatsInputError(f"{path}: holds the raw data only, no scores: {failed}")
    return Bundle(
        manifest=manifest,
        stimuli=read_csv_bytes(data["stimuli.csv"]),
        judgments=read_csv_bytes(data["judgments.csv"]),
        metrics=read_csv_bytes(data["metrics.csv"]),
        scores=read_csv_bytes(data["scores.csv"]),
    )


def reanalyse(bundle: Bundle, config: AnalysisConfig | None = None) -> Analysis:
    """Run the bundle's analysis again on its own input frames (with ``config`` instead of
    the bundle's, e.g. another exclusion policy, when given)."""
    return analyse(
        stimuli=bundle.stimuli,
        judgments=bundle.judgments,
        metrics=bundle.metrics,
        config=config if config is not None else bundle.config,
    )


# -- a study's exports (Django: the stored rows and the stored analysis) ---------------------


class AnalysisPending(Exception):
    """No stored analysis yet for these options; one is being computed."""


def export_bytes(study: Study, name: str, options: ReportOptions | None = None) -> bytes:
    """An export's bytes. The raw tables are read as they are now; scores, the report and
    the bundle come from the newest stored analysis (the bundle's manifest says which
    data it used). A bundle is made even when the analysis failed: the raw data, and the
    reason in the manifest, instead of the scores."""
    from perceptlab.evaluation import frames, stored
    from perceptlab.evaluation.study_analysis import config_for

    inputs = {
        "judgments.csv": lambda: frames.judgments_frame(study),
        "stimuli.csv": lambda: frames.stimuli_frame(study),
        "metrics.csv": lambda: frames.metrics_frame(study),
    }
    if name in inputs:  # the stored rows as they are: no analysis needed
        return csv_bytes(inputs[name]())
    config = config_for(study, options)
    shown = stored.for_page(study, config)
    result = stored.result_of(shown.done) if shown.done is not None else None
    if result is None:
        if shown.failed is None:
            raise AnalysisPending(name)
        if name != "bundle.zip":
            raise StatsInputError(shown.failed.error)
        return _raw_bundle(study, config, shown.failed.error)
    data, analysis = result
    assert shown.done is not None
    if name == "scores.csv":
        return csv_bytes(analysis.scores)
    html = stored.report_file(shown.done)
    if name == "report.html":
        return html.encode()
    return make_bundle(
        study=study_manifest(study),
        stimuli=data.stimuli,
        judgments=data.judgments,
        metrics=data.metrics,
        analysis=analysis,
        report_html=html,
        extra=sureal_files(
            stimuli=data.stimuli,
            judgments=data.judgments,
            config=analysis.config,
            name=study.name,
        ),
        stored={
            "computed": shown.done.finished.isoformat() if shown.done.finished else "",
            "data_sha256": shown.done.data_sha256,
            "fingerprint": shown.done.fingerprint,
        },
    )


def _raw_bundle(study: Study, config: AnalysisConfig, error: str) -> bytes:
    from perceptlab.evaluation.study_analysis import study_frames

    data = study_frames(study)
    return make_raw_bundle(
        study=study_manifest(study),
        stimuli=data.stimuli,
        judgments=data.judgments,
        metrics=data.metrics,
        config=config,
        error=error,
    )


def study_manifest(study: Study) -> dict[str, object]:
    from django.utils import timezone

    return {
        "name": study.name,
        "title": study.title,
        "method": study.method,
        "scale": study.scale,
        "hidden_reference": study.hidden_reference,
        "image_set": study.image_set.name,
        "codecs": study.codecs,
        "target_bpps": study.target_bpps,
        "crop": [study.crop_width, study.crop_height, study.crop_mode],
        "judgments_per_item": study.judgments_per_item,
        "seed": study.seed,
        "state": study.state,
        "exported": timezone.now().isoformat(timespec="seconds"),
    }
