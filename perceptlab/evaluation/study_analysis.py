"""The Django side of a study's analysis: its frames, its settings, its report data."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from django.conf import settings
from django.utils import timezone

from perceptlab.evaluation import frames
from perceptlab.evaluation.analysis import Analysis, AnalysisConfig, analyse
from perceptlab.evaluation.analysis.config import as_lapse, as_method, as_screening
from perceptlab.evaluation.forms import ReportOptions
from perceptlab.evaluation.reports import ReportData
from perceptlab.evaluation.stats.pairwise import scale_prior
from perceptlab.studies.models import Method, Study


@dataclass
class StudyFrames:
    stimuli: pd.DataFrame
    judgments: pd.DataFrame
    metrics: pd.DataFrame


def study_frames(study: Study) -> StudyFrames:
    return StudyFrames(
        stimuli=frames.stimuli_frame(study),
        judgments=frames.judgments_frame(study),
        metrics=frames.metrics_frame(study),
    )


def config_for(study: Study, options: ReportOptions | None = None) -> AnalysisConfig:
    """The analysis settings of a study: its method and scale, the study's seed, its
    exclusion policy, the installation's number of bootstrap resamples, and what the
    researcher chose on the report page (``options``)."""
    chosen = options if options is not None else ReportOptions()
    screening, anchor = chosen.screening, chosen.anchor
    if chosen.policy_chosen:
        flags = chosen.exclude_flags or ()
        max_gold, max_inconsistent = chosen.max_gold_failure, chosen.max_inconsistency
        max_lapse = chosen.max_lapse
    else:
        flags = tuple(study.exclude_flags or ())
        max_gold, max_inconsistent = study.max_gold_failure, study.max_inconsistency
        max_lapse = study.max_lapse
    low, high = (0.0, 1.0) if study.is_pairwise else study.scale_range()
    return AnalysisConfig(
        method=as_method(study.method),
        scale_min=float(low),
        scale_max=float(high),
        hidden_reference=study.hidden_reference,
        n_resamples=settings.EVALUATION_RESAMPLES,
        seed=study.seed,
        screening=as_screening(screening),
        lapse=as_lapse(chosen.lapse),
        anchor=anchor if anchor in study.codecs else "",
        exclude_flags=tuple(flags),
        max_gold_failure=max_gold,
        max_inconsistency=max_inconsistent,
        max_lapse=max_lapse if study.method == Method.AFC2 else None,
        guided=study.is_guided,
    )


def analyse_study(study: Study, config: AnalysisConfig) -> tuple[StudyFrames, Analysis]:
    data = study_frames(study)
    return data, analyse(
        stimuli=data.stimuli, judgments=data.judgments, metrics=data.metrics, config=config
    )


def report_data(study: Study, analysis: Analysis) -> ReportData:
    from perceptlab.evaluation.metrics import METRICS

    return build_report_data(
        title=f"{study.title} ({study.name})",
        analysis=analysis,
        metric_labels={
            slug: f"{spec.name} ({'higher' if spec.higher_is_better else 'lower'} is better)"
            for slug, spec in METRICS.items()
        },
    )


def build_report_data(
    *, title: str, analysis: Analysis, metric_labels: dict[str, str]
) -> ReportData:
    config = analysis.config
    prior = scale_prior(config.pairwise_prior, config.pairwise_ridge)
    pairwise = config.method == "2afc"
    summary = {
        "method": config.method,
        **{k: str(v) for k, v in analysis.counts.items()},
        "confidence level": f"{config.confidence:.0%}",
        "bootstrap": (
            f"{config.n_resamples} resamples of raters "
            f"({'percentile' if config.method in ('triplet', 'flicker') else config.bootstrap}), "
            f"seed {config.seed}"
        ),
        "screening": config.screening or "none",
        "exclusion policy": config.policy().describe(),
        **({"pairwise prior": _prior_summary(prior.kind, prior.ridge)} if pairwise else {}),
        "models": "; ".join(sorted({m.label() for m in analysis.models})),
        **_declared_summary(analysis),
    }
    return ReportData(
        title=title,
        method=config.method,
        generated_at=timezone.now().isoformat(timespec="seconds"),
        summary=summary,
        curves=analysis.curves,
        quality_label=analysis.quality_label,
        image_curves=analysis.image_curves,
        objective=analysis.objective,
        metric_labels=metric_labels,
        unavailable_metrics=analysis.unavailable_metrics,
        bd_table=analysis.bd_table,
        anchor=config.anchor or _first_codec(analysis),
        bd_method=config.bd_method,
        agreement=analysis.agreement,
        screening=analysis.screening,
        screening_method=config.screening or "none",
        win_matrix=analysis.win_matrix,
        pairwise_prior=prior.kind if pairwise else "",
        pairwise_ridge=prior.ridge,
        exclusion=analysis.exclusion,
        exclusion_policy=config.policy().describe(),
        lapse=analysis.lapse,
        significance=analysis.significance,
        dmos_curves=analysis.dmos_curves,
        subject_scores=analysis.subject_scores,
        subject_raters=analysis.subject_raters,
        lapse_use=config.lapse if pairwise else "",
        lapse_weighted=analysis.lapse_weighted,
        jnd_scale=analysis.scores if config.method == "triplet" else pd.DataFrame(),
        triplet_qc=analysis.triplet_qc,
        metric_predictions=analysis.predictions,
        guidance=analysis.guidance,
        guided_scores=analysis.guided_scores,
        flicker_thresholds=analysis.scores if config.method == "flicker" else pd.DataFrame(),
        flicker_savings=analysis.flicker_savings,
    )


def _prior_summary(kind: str, ridge: float) -> str:
    return {"gaussian": "pwcmp distance prior", "none": "none (maximum likelihood)"}.get(
        kind, f"ridge, λ = {ridge:g}"
    )


def _declared_summary(analysis: Analysis) -> dict[str, str]:
    """The codecs whose bpp the researcher declared (imported without bitstreams)."""
    curves = analysis.curves
    if curves.empty or "bpp_source" not in curves.columns:
        return {}
    declared = sorted({str(c) for c in curves.loc[curves["bpp_source"] == "declared", "codec"]})
    return {"bpp declared, not measured": ", ".join(declared)} if declared else {}


def _first_codec(analysis: Analysis) -> str:
    codecs = sorted(analysis.curves["codec"].unique()) if len(analysis.curves) else []
    return codecs[0] if codecs else ""
