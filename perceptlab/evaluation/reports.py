"""Report layer: plotly figures and a standalone HTML report over ready-made statistics frames.

Nothing here estimates anything. The statistics modules produce the frames described on
:class:`ReportData`; this module sorts, averages over images for display (objective metrics) and
draws. It is importable without Django: the Django view renders :func:`report_sections` with
``fig.to_html(full_html=False, include_plotlyjs=False)``, and :func:`standalone_html` writes one
offline file with plotly.js embedded once.

Every string that comes from data (codec, image and rater names, reasons) is escaped with
:func:`html.escape` before it enters HTML; inside figures plotly serialises it as JSON, which
escapes ``<`` and ``/``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb
from plotly.colors import qualitative as _qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from perceptlab.evaluation.stats.common import StatsInputError

METHODS = ("acr", "dcr", "2afc", "triplet", "flicker")
NO_DATA = "No data yet."
#: Tableau 10: ten well-separated colours; codec ``i`` in sorted order gets ``PALETTE[i % 10]``.
PALETTE: tuple[str, ...] = tuple(_qualitative.T10)
TEMPLATE = "plotly_white"

CURVE_COLUMNS = ("codec", "target", "bpp", "quality", "low", "high")
IMAGE_CURVE_COLUMNS = ("image", *CURVE_COLUMNS)
OBJECTIVE_COLUMNS = ("image", "codec", "target", "bpp", "metric", "value", "region")
BD_COLUMNS = ("codec", "measure", "bd_rate", "bd_rate_low", "bd_rate_high", "bd_quality")
SCREENING_COLUMNS = ("rater", "rejected", "reason")

SectionKind = Literal["figure", "table", "notice"]


@dataclass(frozen=True, eq=False, kw_only=True)
class ReportData:
    """Everything one study report shows; every frame may be empty (its section says so).

    ``method`` is ``"acr"``, ``"dcr"`` or ``"2afc"``. ``summary`` maps a label to a key fact
    (raters, judgments, images, codecs, confidence level, bootstrap resamples, seed, and one
    entry per model, e.g. ``"MOS model": "sureal MosModel v1"``); entries whose key contains the
    word "model" are repeated in the methods footer.

    Frames and their columns:

    - ``curves``: one row per codec × target, columns ``codec, target, bpp, quality, low,
      high``. ``bpp`` is the mean achieved bpp over images, ``quality`` the MOS, DMOS or Elo,
      ``low``/``high`` the confidence interval (may be NaN). ``quality_label`` names the measure,
      e.g. "MOS (ACR, 1–5)", "DMOS", "Elo (Bradley–Terry)".
    - ``image_curves``: ``image, codec, target, bpp, quality, low, high`` (per image).
    - ``objective``: ``image, codec, target, bpp, metric, value, region``; ``region`` is
      ``"full"`` or ``"crop"``, ``metric`` a slug (psnr, ms_ssim, dists, ssimulacra2).
      ``metric_labels`` maps slug → display name including "(higher is better)" or "(lower is
      better)"; ``unavailable_metrics`` maps slug → why it was not computed.
    - ``bd_table``: ``codec, measure, bd_rate, bd_rate_low, bd_rate_high, bd_quality, overlap,
      warning``, against codec ``anchor`` with method ``bd_method``.
    - ``agreement``: ``metric, n, srocc, krocc, plcc, rmse`` (ACR/DCR) or ``metric, n,
      accuracy, low, high`` (2AFC); whichever columns exist are shown.
    - ``screening``: ``rater, rejected, reason`` plus any statistic columns, by
      ``screening_method``.
    - ``win_matrix`` (2AFC only): square frame, index and columns the same conditions, cell =
      number of wins of the row condition over the column condition.

    - ``exclusion``: ``rule, judgments, raters``: what was counted, what each rule of the
      exclusion policy (``exclusion_policy``, in words) removed, what was kept.
    - ``lapse`` (2AFC): ``rater, n, n_gold, gold_wrong, q, q_low, q_high, weight``: each
      rater's random-answer probability with its interval (stats.lapse).
    - ``significance`` (2AFC): ``a, b, wins_a, wins_b, ties, n, p_value, p_adjusted,
      significant``: each compared pair of conditions, Holm-corrected.

    - ``dmos_curves`` (ACR with hidden reference): as ``curves``, of the P.910 ACR-HR DMOS.
    - ``subject_scores`` (ACR/DCR): ``condition, codec, target_bpp, bpp, images, ratings,
      quality, se, ci95_low, ci95_high``: the Li–Bampis subject model's quality per condition;
      ``subject_raters``: ``rater, n, bias, …, inconsistency, …`` with intervals. Empty with
      ``attrs["problem"]`` when the model could not be fitted.
    - ``lapse_weighted`` (2AFC, ``lapse_use == "weight"``): ``condition, codec, bpp, n, wins,
      losses, theta, se, elo, elo_se, elo_low, elo_high``: the lapse-weighted scale.

    ``pairwise_prior`` (2AFC only): the prior of the pairwise scale, ``"gaussian"``,
    ``"ridge"`` (with λ ``pairwise_ridge``) or ``"none"``; the methods footer says which and why.
    """

    title: str
    method: str
    generated_at: str
    summary: dict[str, str] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    quality_label: str = "quality"
    image_curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    objective: pd.DataFrame = field(default_factory=pd.DataFrame)
    metric_labels: dict[str, str] = field(default_factory=dict)
    unavailable_metrics: dict[str, str] = field(default_factory=dict)
    bd_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    anchor: str = ""
    bd_method: str = ""
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    screening: pd.DataFrame = field(default_factory=pd.DataFrame)
    screening_method: str = ""
    win_matrix: pd.DataFrame | None = None
    pairwise_prior: str = ""
    pairwise_ridge: float = 0.0
    exclusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    exclusion_policy: str = ""
    lapse: pd.DataFrame = field(default_factory=pd.DataFrame)
    significance: pd.DataFrame = field(default_factory=pd.DataFrame)
    dmos_curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    subject_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    subject_raters: pd.DataFrame = field(default_factory=pd.DataFrame)
    lapse_use: str = ""
    lapse_weighted: pd.DataFrame = field(default_factory=pd.DataFrame)
    jnd_scale: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Triplet: the JND of every stimulus with its interval (``analysis.triplet``)."""
    triplet_qc: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Triplet: each rater's trap accuracy and side bias (``stats.triplets.triplet_qc``)."""
    metric_predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    """ACR/DCR/triplet: each stimulus's human score predicted from the calibrated metrics,
    leaving its image out (``analysis.tables.metric_predictions``)."""
    guidance: pd.DataFrame = field(default_factory=pd.DataFrame)
    """ACR/DCR/triplet: the study replayed as a metric-guided one, the scale's error per number
    of stimuli measured (``analysis.tables.guidance_replay``)."""
    guided_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Metric-guided ACR/DCR: each stimulus's ratings, the metrics' prediction and the two
    combined, with 95 % half-widths (``analysis.ratings._guided_scores``)."""
    flicker_thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Flicker (AIC-2): each image and codec's visually lossless threshold (``stats.flicker``)."""
    flicker_savings: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Flicker: each codec's rate at the threshold against the reference codec's."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise StatsInputError(f"method {self.method!r} is not one of {', '.join(METHODS)}")

    def model_entries(self) -> dict[str, str]:
        """The summary entries naming a model and its version (key contains "model")."""
        return {k: v for k, v in self.summary.items() if "model" in k.lower()}


@dataclass(frozen=True, eq=False)
class Section:
    """One block of the report: a figure, an HTML table or an HTML notice.

    ``html`` is already escaped and safe to insert as is; ``caption`` is plain text (escape it).
    """

    title: str
    kind: SectionKind
    figure: go.Figure | None = None
    html: str = ""
    caption: str = ""


# -- colours and small helpers ------------------------------------------------------------------


def codec_colours(codecs: Iterable[str]) -> dict[str, str]:
    """Map each codec to a palette colour by its position among the sorted distinct names."""
    names = sorted({str(c) for c in codecs})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _colours_for(frame: pd.DataFrame, colours: Mapping[str, str] | None) -> Mapping[str, str]:
    """The given codec → colour mapping, checked to cover the frame; by default its own."""
    if colours is None:
        return codec_colours(frame["codec"])
    missing = sorted(set(_codecs_in(frame)) - set(colours))
    if missing:
        raise StatsInputError(f"colours has no entry for codec(s) {', '.join(missing)}")
    return colours


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = hex_to_rgb(hex_colour)
    return f"rgba({r}, {g}, {b}, {alpha})"


def _has_rows(frame: pd.DataFrame | None, columns: Sequence[str], *, what: str) -> bool:
    """False for a missing or empty frame; raise if a non-empty frame lacks a column."""
    if frame is None or frame.empty:
        return False
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StatsInputError(
            f"{what} is missing column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, frame.columns))}"
        )
    return True


def _number(value: float) -> str:
    """Short display text for a quality value: three decimals below 100, one above (Elo)."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def _interval_text(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{_number(low)}, {_number(high)}]"


def _float_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _codecs_in(frame: pd.DataFrame) -> list[str]:
    return sorted({str(c) for c in frame["codec"]})


def _add_log_x_toggle(fig: go.Figure, *, axes: Sequence[str]) -> None:
    """Buttons above the plot that switch the given x axes between linear and log scale."""
    buttons = [
        {
            "label": f"{scale} bpp",
            "method": "relayout",
            "args": [{f"{a}.type": scale for a in axes}],
        }
        for scale in ("linear", "log")
    ]
    menu = {"type": "buttons", "direction": "right", "buttons": buttons, "showactive": True}
    menu |= {"x": 0.0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "pad": {"b": 8}}
    fig.update_layout(updatemenus=[menu], margin={"t": 90})


# -- rate–perception curves ---------------------------------------------------------------------


def declared_points(rows: pd.DataFrame) -> np.ndarray:
    """Which rows' bpp is declared by the researcher (an imported codec without bitstreams),
    not measured: the optional ``bpp_source`` column of the curve frames."""
    if "bpp_source" not in rows.columns:
        return np.zeros(len(rows), dtype=bool)
    return (rows["bpp_source"].fillna("").astype(str) == "declared").to_numpy()


def _curve_customdata(rows: pd.DataFrame) -> list[list[str]]:
    """Codec, target, quality and interval per point; where any bpp is declared, also each
    point's "bpp declared" or "bpp measured"."""
    data = [
        [str(codec), str(target), _number(q), _interval_text(lo, hi)]
        for codec, target, q, lo, hi in zip(
            rows["codec"],
            rows["target"],
            _float_column(rows, "quality"),
            _float_column(rows, "low"),
            _float_column(rows, "high"),
            strict=True,
        )
    ]
    declared = declared_points(rows)
    if declared.any():
        for row, is_declared in zip(data, declared, strict=True):
            row.append("bpp declared" if is_declared else "bpp measured")
    return data


def _curve_hover(quality_label: str, *, declared: bool = False) -> str:
    label = quality_label.replace("%", "%%")
    source = "<br>%{customdata[4]}" if declared else ""
    return (
        "<b>%{customdata[0]}</b><br>target %{customdata[1]}<br>bpp %{x:.4f}<br>"
        f"{label} %{{customdata[2]}}<br>CI %{{customdata[3]}}{source}<extra></extra>"
    )


def _ci_band(rows: pd.DataFrame, *, colour: str, group: str) -> go.Scatter | None:
    """Closed polygon high(bpp) → low(reversed bpp), or None with fewer than two finite CIs."""
    low, high = _float_column(rows, "low"), _float_column(rows, "high")
    finite = np.isfinite(low) & np.isfinite(high)
    if finite.sum() < 2:
        return None
    x = _float_column(rows, "bpp")[finite]
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([high[finite], low[finite][::-1]]),
        mode="lines",  # plotly's default for few points adds markers in its own colours
        fill="toself",
        fillcolor=_rgba(colour, 0.18),
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
        name=f"{group} CI",
    )


def _error_bars(rows: pd.DataFrame, *, colour: str) -> dict[str, Any]:
    quality = _float_column(rows, "quality")
    with np.errstate(invalid="ignore"):
        plus = _float_column(rows, "high") - quality
        minus = quality - _float_column(rows, "low")
    visible = bool(np.isfinite(plus).any() or np.isfinite(minus).any())
    style = {"color": colour, "thickness": 1.2, "width": 3}
    return {"type": "data", "array": plus, "arrayminus": minus, "visible": visible, **style}


def _curve_line(
    rows: pd.DataFrame, *, colour: str, name: str, group: str, quality_label: str
) -> go.Scatter:
    return go.Scatter(
        x=_float_column(rows, "bpp"),
        y=_float_column(rows, "quality"),
        mode="lines+markers",
        name=name,
        legendgroup=group,
        line={"color": colour, "width": 2},
        # an open marker: the point's bpp is declared, not measured from a bitstream
        marker={"color": colour, "size": 7, "symbol": _symbols(rows)},
        customdata=_curve_customdata(rows),
        hovertemplate=_curve_hover(quality_label, declared=bool(declared_points(rows).any())),
    )


def _symbols(rows: pd.DataFrame) -> list[str] | str:
    declared = declared_points(rows)
    if not declared.any():
        return "circle"
    return ["circle-open" if d else "circle" for d in declared]


DECLARED_NOTE = (
    " Open markers: bpp declared by the researcher for an imported codec (no bitstream), "
    "not measured."
)


def rate_perception_figure(
    curves: pd.DataFrame, *, quality_label: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """Quality against mean bpp, one line per codec with its confidence band.

    Columns: ``codec, target, bpp, quality, low, high`` and optionally ``bpp_source``
    (``declared`` points get open markers). The band is the area between ``low``
    and ``high`` over the points whose interval is finite; a codec with fewer than two such
    points shows error bars instead. ``colours`` (codec → colour) keeps codecs the same colour
    across figures; by default :func:`codec_colours` of this frame.
    """
    _has_rows(curves, CURVE_COLUMNS, what="curves")
    colours = _colours_for(curves, colours)
    fig = go.Figure()
    for codec, unsorted in curves.groupby(curves["codec"].astype(str), sort=True):
        rows = unsorted.sort_values("bpp")
        colour = colours[str(codec)]
        band = _ci_band(rows, colour=colour, group=str(codec))
        if band is not None:
            fig.add_trace(band)
        line = _curve_line(
            rows, colour=colour, name=str(codec), group=str(codec), quality_label=quality_label
        )
        if band is None:
            line.error_y = _error_bars(rows, colour=colour)
        fig.add_trace(line)
    fig.update_layout(template=TEMPLATE, height=480, legend_title_text="codec")
    fig.update_xaxes(title_text="bits per pixel (mean over images)")
    fig.update_yaxes(title_text=quality_label)
    _add_log_x_toggle(fig, axes=["xaxis"])
    return fig


# -- per-image small multiples ------------------------------------------------------------------


def _facet_grid(n: int) -> tuple[int, int]:
    """Four facets per row keeps 24 images (six rows) readable on a laptop screen."""
    cols = min(4, n)
    return math.ceil(n / cols), cols


def per_image_figure(
    image_curves: pd.DataFrame, *, quality_label: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """One small panel per image (four per row, shared quality axis), one line per codec.

    Columns: ``image, codec, target, bpp, quality, low, high``; confidence intervals are error
    bars. Clicking a codec in the legend hides it in every panel.
    """
    _has_rows(image_curves, IMAGE_CURVE_COLUMNS, what="image_curves")
    colours = _colours_for(image_curves, colours)
    images = sorted({str(i) for i in image_curves["image"]})
    rows, cols = _facet_grid(len(images))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=images,
        shared_yaxes="all",
        horizontal_spacing=0.04,
        vertical_spacing=min(0.1, 0.45 / rows),
    )
    shown: set[str] = set()
    for k, image in enumerate(images):
        subset = image_curves[image_curves["image"].astype(str) == image]
        for codec, unsorted in subset.groupby(subset["codec"].astype(str), sort=True):
            points = unsorted.sort_values("bpp")
            line = _curve_line(
                points,
                colour=colours[str(codec)],
                name=str(codec),
                group=str(codec),
                quality_label=quality_label,
            )
            line.error_y = _error_bars(points, colour=colours[str(codec)])
            line.showlegend = str(codec) not in shown
            shown.add(str(codec))
            fig.add_trace(line, row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(template=TEMPLATE, height=230 * rows + 140, legend_title_text="codec")
    fig.update_xaxes(title_text="bpp", row=rows)
    fig.update_yaxes(title_text=quality_label, col=1)
    _add_log_x_toggle(fig, axes=[f"xaxis{i if i > 1 else ''}" for i in range(1, rows * cols + 1)])
    return fig


# -- objective metrics --------------------------------------------------------------------------


def _regions(frame: pd.DataFrame) -> list[str]:
    """The region names, "full" first; the others are drawn dashed."""
    names = sorted({str(r) for r in frame["region"]})
    return sorted(names, key=lambda r: r != "full")


def _image_points(rows: pd.DataFrame, *, colour: str, codec: str) -> go.Scatter:
    return go.Scatter(
        x=_float_column(rows, "bpp"),
        y=_float_column(rows, "value"),
        mode="markers",
        marker={"color": colour, "size": 5, "opacity": 0.3},
        name=f"{codec} per image",
        legendgroup=codec,
        showlegend=False,
        customdata=[
            [codec, str(i), str(t)] for i, t in zip(rows["image"], rows["target"], strict=True)
        ],
        hovertemplate=(
            "<b>%{customdata[0]}</b> · %{customdata[1]}<br>target %{customdata[2]}<br>"
            "bpp %{x:.4f}<br>value %{y:.4g}<extra></extra>"
        ),
    )


def _metric_means(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean bpp and mean value per target, sorted by bpp (display aggregation only)."""
    means = rows.groupby(rows["target"].astype(str), sort=False)[["bpp", "value"]].mean()
    return means.sort_values("bpp").reset_index()


def _metric_line(rows: pd.DataFrame, *, colour: str, codec: str, region: str) -> go.Scatter:
    means = _metric_means(rows)
    return go.Scatter(
        x=means["bpp"].to_numpy(dtype=float),
        y=means["value"].to_numpy(dtype=float),
        mode="lines+markers",
        name=codec if region == "full" else f"{codec} ({region})",
        legendgroup=codec,
        line={"color": colour, "width": 2, "dash": "solid" if region == "full" else "dash"},
        marker={"color": colour, "size": 7},
        customdata=[[codec, region, t] for t in means["target"]],
        hovertemplate=(
            "<b>%{customdata[0]}</b> (%{customdata[1]}, mean over images)<br>"
            "target %{customdata[2]}<br>bpp %{x:.4f}<br>value %{y:.4g}<extra></extra>"
        ),
    )


def _objective_figure(rows: pd.DataFrame, *, label: str, colours: Mapping[str, str]) -> go.Figure:
    fig = go.Figure()
    regions = _regions(rows)
    for codec, by_codec in rows.groupby(rows["codec"].astype(str), sort=True):
        colour = colours[str(codec)]
        first = by_codec[by_codec["region"].astype(str) == regions[0]]
        fig.add_trace(_image_points(first, colour=colour, codec=str(codec)))
        for region in regions:
            subset = by_codec[by_codec["region"].astype(str) == region]
            if not subset.empty:
                fig.add_trace(_metric_line(subset, colour=colour, codec=str(codec), region=region))
    fig.update_layout(template=TEMPLATE, height=440, title_text=label, legend_title_text="codec")
    fig.update_xaxes(title_text="bits per pixel")
    fig.update_yaxes(title_text=label)
    _add_log_x_toggle(fig, axes=["xaxis"])
    return fig


def _metric_order(objective: pd.DataFrame, metric_labels: Mapping[str, str]) -> list[str]:
    present = {str(m) for m in objective["metric"]}
    return [m for m in metric_labels if m in present] + sorted(present - set(metric_labels))


def objective_figures(
    objective: pd.DataFrame,
    *,
    metric_labels: Mapping[str, str],
    colours: Mapping[str, str] | None = None,
) -> list[go.Figure]:
    """One figure per metric: mean value against mean bpp per codec, per-image points faint.

    Columns: ``image, codec, target, bpp, metric, value, region``. Means are over images at each
    target, solid for the "full" region and dashed for any other ("crop"); the faint points are
    the per-image values of the first region. Infinite values (PSNR of identical images) are
    dropped before averaging. Metrics follow ``metric_labels`` order, unknown slugs last.
    """
    if not _has_rows(objective, OBJECTIVE_COLUMNS, what="objective"):
        return []
    colours = _colours_for(objective, colours)
    finite = objective.assign(value=_float_column(objective, "value"))
    finite = finite.replace({"value": {np.inf: np.nan, -np.inf: np.nan}})
    return [
        _objective_figure(
            finite[finite["metric"].astype(str) == metric],
            label=metric_labels.get(metric, metric),
            colours=colours,
        )
        for metric in _metric_order(objective, metric_labels)
    ]


# -- pairwise win matrix ------------------------------------------------------------------------


def _win_fractions(win_matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Wins of row over column and the fraction wins / (wins + losses); NaN where never paired."""
    rows = [str(r) for r in win_matrix.index]
    if sorted(rows) != sorted(str(c) for c in win_matrix.columns):
        raise StatsInputError(
            f"win_matrix must have the same conditions as index and columns; index has "
            f"{', '.join(rows)}, columns have {', '.join(map(str, win_matrix.columns))}"
        )
    ordered = win_matrix.set_axis(rows, axis=0).set_axis(list(map(str, win_matrix.columns)), axis=1)
    wins = ordered[rows].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = wins / (wins + wins.T)
    return wins, fractions


def _win_text(wins: np.ndarray) -> list[list[str]]:
    """Cell labels "wins/judgments" of row over column; blank where the pair was never judged."""
    n = len(wins)
    return [
        [
            f"{wins[i, j]:.0f}/{wins[i, j] + wins[j, i]:.0f}" if wins[i, j] + wins[j, i] > 0 else ""
            for j in range(n)
        ]
        for i in range(n)
    ]


def win_matrix_figure(win_matrix: pd.DataFrame) -> go.Figure:
    """Heatmap of the fraction of judgments in which the row condition beat the column one."""
    wins, fractions = _win_fractions(win_matrix)
    labels = [str(r) for r in win_matrix.index]
    text = _win_text(wins)
    fig = go.Figure(
        go.Heatmap(
            z=fractions,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            zmin=0.0,
            zmax=1.0,
            zmid=0.5,
            colorscale="RdBu",
            colorbar={"title": {"text": "wins"}},
            hovertemplate="%{y} beat %{x} in %{z:.2f} of judgments (%{text})<extra></extra>",
        )
    )
    fig.update_layout(template=TEMPLATE, height=max(420, 36 * len(labels) + 220))
    fig.update_xaxes(title_text="column condition", tickangle=-45)
    fig.update_yaxes(title_text="row condition", autorange="reversed")
    return fig


# -- HTML tables and notices --------------------------------------------------------------------


def _cell_text(value: object, float_format: str) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if value is None or (not isinstance(value, str | bytes) and bool(pd.isna(value))):  # type: ignore[call-overload]
        return "–"
    if isinstance(value, float | np.floating):
        return format(float(value), float_format)
    return str(value)


def _check_float_format(float_format: str) -> None:
    try:
        format(1.5, float_format)
    except ValueError as error:
        raise StatsInputError(
            f"float_format {float_format!r} is not a format spec for floats (e.g. '.3f'): {error}"
        ) from error


def table_html(frame: pd.DataFrame, *, float_format: str = ".3f", index: bool = False) -> str:
    """An HTML ``<table>`` of ``frame`` with every header and cell escaped.

    Floats use ``format(value, float_format)``, missing values show "–", booleans "yes"/"no";
    numeric columns get ``class="num"`` (right-aligned by the report CSS).
    """
    _check_float_format(float_format)
    shown = frame.reset_index() if index else frame
    numeric = [
        pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
        for c in shown.columns
    ]
    opening = ['<td class="num">' if num else "<td>" for num in numeric]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"{td}{html.escape(_cell_text(v, float_format))}</td>"
            for v, td in zip(row, opening, strict=True)
        )
        + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _notice(text: str) -> str:
    return f'<p class="notice">{html.escape(text)}</p>'


def _unavailable_html(unavailable: Mapping[str, str], labels: Mapping[str, str]) -> str:
    items = "".join(
        f"<li><strong>{html.escape(labels.get(slug, slug))}</strong>: {html.escape(reason)}</li>"
        for slug, reason in unavailable.items()
    )
    return f'<div class="notice"><p>These metrics were not computed:</p><ul>{items}</ul></div>'


# -- sections -----------------------------------------------------------------------------------


def _all_codecs(data: ReportData) -> list[str]:
    frames = (
        data.curves,
        data.image_curves,
        data.objective,
        data.bd_table,
        data.flicker_thresholds,
    )
    codecs = {str(c) for f in frames if "codec" in f.columns for c in f["codec"]}
    return sorted(codecs | ({data.anchor} if data.anchor else set()))


def _figure_or_notice(title: str, figure: go.Figure | None, *, caption: str = "") -> Section:
    if figure is None:
        return Section(title, "notice", html=_notice(NO_DATA), caption=caption)
    return Section(title, "figure", figure=figure, caption=caption)


def _table_or_notice(title: str, frame: pd.DataFrame | None, *, caption: str = "") -> Section:
    if frame is None or frame.empty:
        return Section(title, "notice", html=_notice(NO_DATA), caption=caption)
    return Section(title, "table", html=table_html(frame), caption=caption)


def _summary_section(data: ReportData) -> Section:
    frame = pd.DataFrame({"fact": list(data.summary), "value": list(data.summary.values())})
    return _table_or_notice("Summary", frame)


def _curve_sections(data: ReportData, colours: Mapping[str, str]) -> list[Section]:
    label = data.quality_label
    curves = image = None
    if _has_rows(data.curves, CURVE_COLUMNS, what="curves"):
        curves = rate_perception_figure(data.curves, quality_label=label, colours=colours)
    if _has_rows(data.image_curves, IMAGE_CURVE_COLUMNS, what="image_curves"):
        image = per_image_figure(data.image_curves, quality_label=label, colours=colours)
    caption = f"{label} against bits per pixel; shaded bands and bars are confidence intervals."
    if any(declared_points(f).any() for f in (data.curves, data.image_curves) if not f.empty):
        caption += DECLARED_NOTE
    return [
        _figure_or_notice("Rate–perception curves", curves, caption=caption),
        _figure_or_notice("Rate–perception per image", image, caption=caption),
    ]


def _objective_sections(data: ReportData, colours: Mapping[str, str]) -> list[Section]:
    sections: list[Section] = []
    if data.unavailable_metrics:
        notice = _unavailable_html(data.unavailable_metrics, data.metric_labels)
        sections.append(Section("Objective metrics not computed", "notice", html=notice))
    figures = objective_figures(data.objective, metric_labels=data.metric_labels, colours=colours)
    if not figures:
        return [*sections, _figure_or_notice("Objective metrics", None)]
    caption = "Lines: mean over images (dashed: crop region). Faint points: single images."
    return sections + [
        Section(f"Objective: {fig.layout.title.text}", "figure", figure=fig, caption=caption)
        for fig in figures
    ]


def _bd_section(data: ReportData) -> Section:
    caption = (
        f"Anchor: {data.anchor or 'not set'}. Method: {data.bd_method or 'not stated'}. "
        "Negative BD-rate: fewer bits than the anchor for the same quality. rate_ratio: the "
        "codec's bitrate at equal quality as a multiple of the anchor's (1 + BD-rate/100, the "
        "geometric mean over the common quality range), with its interval."
    )
    if _has_rows(data.bd_table, BD_COLUMNS, what="bd_table"):
        return Section("BD-rate", "table", html=table_html(data.bd_table), caption=caption)
    return _table_or_notice("BD-rate", None, caption=caption)


def _agreement_section(data: ReportData) -> Section:
    frame = data.agreement
    if not frame.empty and "metric" in frame.columns:
        frame = frame.assign(metric=[data.metric_labels.get(str(m), str(m)) for m in frame.metric])
    caption = "Agreement between each objective metric and the human judgments; n = pairs/stimuli."
    return _table_or_notice("Metric agreement with raters", frame, caption=caption)


GUIDANCE_TITLE = "What metric guidance would have saved"


@dataclass(frozen=True)
class GuidanceSaving:
    """At ``budget`` stimuli measured in random order the scale is off by ``error``; guided
    measurement is first that close at ``needed`` stimuli (None: not before the end)."""

    budget: int
    error: float
    needed: int | None
    per_stimulus: float

    @property
    def judgments(self) -> float:
        """Judgments saved: the stimuli not measured, at the study's judgments per stimulus."""
        return 0.0 if self.needed is None else (self.budget - self.needed) * self.per_stimulus


def guidance_savings(frame: pd.DataFrame) -> list[GuidanceSaving]:
    """For each number of stimuli measured short of all of them, what guided measurement
    needed to reach random order's error there (the replay's steps: ``bench/metric_guided``'s
    "guided needs for random's error")."""
    rows = frame.sort_values("measured")
    steps = rows["measured"].to_numpy(dtype=np.int64)
    guided_errors = rows["guided"].to_numpy(dtype=np.float64)
    savings = []
    for step, error, per in zip(
        steps, rows["random"].to_numpy(dtype=np.float64), rows["per_stimulus"], strict=True
    ):
        if step >= int(rows["stimuli"].iloc[0]) or step == steps[0]:
            continue  # all measured (both exact), or the shared random start
        reached = np.flatnonzero(guided_errors <= error + 1e-12)
        needed = int(steps[reached[0]]) if len(reached) else None
        savings.append(GuidanceSaving(int(step), float(error), needed, float(per)))
    return savings


def _stimuli(count: int) -> str:
    return f"{count} stimulus" if count == 1 else f"{count} stimuli"


def _guidance_section(data: ReportData) -> list[Section]:
    """How many judgments metric guidance would have saved this study (issue: metric-guided
    studies): the completed study replayed, guided against random order."""
    if data.method not in ("acr", "dcr", "triplet"):
        return []
    frame = data.guidance
    needed = {"measured", "stimuli", "guided", "random", "per_stimulus", "seeds"}
    if frame.empty or not needed <= set(frame.columns):
        return [
            Section(
                GUIDANCE_TITLE,
                "notice",
                html=_notice(
                    f"{NO_DATA} The replay needs objective metrics and human scores of at "
                    "least 12 stimuli."
                ),
            )
        ]
    savings = guidance_savings(frame)
    count = int(frame["stimuli"].iloc[0])
    unit = "JND" if data.method == "triplet" else data.quality_label.split(" ")[0]
    half = min(savings, key=lambda s: abs(s.budget - count / 2), default=None)
    if half is None:
        headline = "The study is too small to replay in steps."
    elif half.needed is None or half.needed > half.budget:
        later = "all of them" if half.needed is None else f"{half.needed}"
        headline = (
            f"With {half.budget} of the {count} stimuli measured in random order the scale is "
            f"off by {half.error:.3f} {unit} (RMS); guided measurement was not as close before "
            f"measuring {later}: on this study the metrics did not tell where raters were "
            "needed."
        )
    else:
        headline = (
            f"With {half.budget} of the {count} stimuli measured in random order the scale is "
            f"off by {half.error:.3f} {unit} (RMS); guided measurement was as close after "
            f"{half.needed}: {_stimuli(half.budget - half.needed)}, about "
            f"{half.judgments:.0f} judgments at this study's {half.per_stimulus:.1f} per "
            "stimulus, saved."
        )
    caption = (
        f"{headline} The completed study replayed: stimuli are 'measured' (their human score "
        "revealed) one batch at a time, either the one whose prediction from the calibrated "
        "metrics is least certain (fit, residual and the metrics' disagreement) or in random "
        "order, and every stimulus not measured yet takes its prediction; the error is that "
        "scale's RMS distance from the study's complete one, mean over "
        f"{int(frame['seeds'].iloc[0])} random starting sets (bench/metric_guided.py replays "
        "JPEG AIC-4 the same way)."
    )
    figure = go.Figure()
    for column, name, colour in (
        ("random", "random order", "#9aa5b1"),
        ("guided", "metric-guided", "#1f6feb"),
    ):
        figure.add_trace(
            go.Scatter(
                x=frame["measured"],
                y=frame[column],
                mode="lines+markers",
                name=name,
                line={"color": colour},
            )
        )
    figure.update_layout(
        xaxis_title=f"stimuli measured (of {count})",
        yaxis_title=f"RMS error of the scale ({unit})",
        template="plotly_white",
        height=400,
    )
    table = pd.DataFrame(
        {
            "measured in random order": [s.budget for s in savings],
            "its error": [round(s.error, 3) for s in savings],
            "guided needed": [s.needed if s.needed is not None else "—" for s in savings],
            "judgments saved (−: guidance needed more)": [round(s.judgments) for s in savings],
        }
    )
    return [
        _figure_or_notice(GUIDANCE_TITLE, figure, caption=caption),
        Section(
            "Guided measurement: stimuli needed for random order's error",
            "table",
            html=table_html(table),
        ),
    ]


def _guided_scores_section(data: ReportData) -> list[Section]:
    """A metric-guided study's scores as its planner saw them: a stimulus stopped when its
    combined half-width reached the target, so its ratings alone may be few."""
    frame = data.guided_scores
    needed = {"stimulus", "image", "ratings", "mean", "mean_half_width", "predicted"}
    needed |= {"predicted_half_width", "score", "half_width"}
    if frame.empty or not needed <= set(frame.columns):
        return []
    unit = data.quality_label.split(" ")[0] or "score"

    def shown(value: float, half: float) -> str:
        if not np.isfinite(value):
            return "–"
        return f"{value:.2f} ± {half:.2f}" if np.isfinite(half) else f"{value:.2f}"

    table = pd.DataFrame(
        {
            "stimulus": frame["stimulus"],
            "image": frame["image"],
            "ratings": frame["ratings"],
            f"{unit}, ratings alone": [
                shown(v, h) for v, h in zip(frame["mean"], frame["mean_half_width"], strict=True)
            ],
            "predicted from the metrics": [
                shown(v, h)
                for v, h in zip(frame["predicted"], frame["predicted_half_width"], strict=True)
            ],
            "combined": [
                shown(v, h) for v, h in zip(frame["score"], frame["half_width"], strict=True)
            ],
        }
    )
    caption = (
        "This study was sampled with metric guidance: a stimulus drew ratings until its "
        "score, its ratings combined with its crop metrics' prediction (each metric mapped "
        "onto the scores by ITU-T P.1401's logistic, fitted to the stimuli with at least 3 "
        "ratings), was known to the target half-width, so some stimuli have few ratings. "
        "Ratings alone: the mean ± 1.96 σ/√n (σ pooled over the stimuli); predicted: ± 1.96 "
        "times the prediction's sd (fit, residual net of the means' noise at its 90 % "
        "Q-profile bound, the metrics' disagreement); combined: the normal posterior of the "
        "two (precision 1/v + n/σ²). Computed here on the counted ratings; the main scores "
        "above stay the ratings' own."
    )
    return [
        Section(
            "Metric-guided scores",
            "table",
            html=table_html(table),
            caption=caption,
        )
    ]


def _prediction_section(data: ReportData) -> list[Section]:
    """Predicted against measured: how well the metrics, calibrated on the other images,
    stand in for raters on this one (ACR, DCR, triplets)."""
    if data.method not in ("acr", "dcr", "triplet"):
        return []
    frame = data.metric_predictions
    needed = {"stimulus", "image", "measured", "predicted", "sd", "within"}
    if frame.empty or not needed <= set(frame.columns):
        return [
            Section(
                "Metrics calibrated to the human scale",
                "notice",
                html=_notice(
                    f"{NO_DATA} A prediction needs objective metrics of the shown crops and "
                    "human scores on at least two images."
                ),
            )
        ]
    error = frame["predicted"] - frame["measured"]
    rmse = float(np.sqrt(np.mean(error**2)))
    inside = float(frame["within"].astype(bool).mean())
    caption = (
        "Each stimulus's human score predicted from the objective metrics of its crop, each "
        "metric mapped onto the human scale by ITU-T P.1401's monotone 4-parameter logistic "
        "fitted on the other images' stimuli (leave one image out), the metrics combined by "
        "inverse residual variance, the bars ±1.96 predictive sd (fit, residual and the "
        f"metrics' disagreement). RMS error {rmse:.3f}, {inside:.0%} of {len(frame)} measured "
        "values inside their 95 % predictive interval: where the bars are short and the "
        "points on the diagonal, the metrics could stand in for raters on new images; a study "
        "spends its judgments best where the bars are long (bench/metric_guided.py)."
    )
    figure = go.Figure()
    for image, rows in frame.groupby("image", sort=True):
        figure.add_trace(
            go.Scatter(
                x=rows["measured"],
                y=rows["predicted"],
                mode="markers",
                name=str(image),
                text=rows["stimulus"],
                error_y={"type": "data", "array": 1.96 * rows["sd"]},
            )
        )
    low = float(min(frame["measured"].min(), frame["predicted"].min()))
    high = float(max(frame["measured"].max(), frame["predicted"].max()))
    figure.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            name="predicted = measured",
            line={"color": "#9aa5b1", "dash": "dot"},
        )
    )
    figure.update_layout(
        xaxis_title=f"measured ({data.quality_label})",
        yaxis_title="predicted from the metrics",
        template="plotly_white",
        height=460,
    )
    return [_figure_or_notice("Metrics calibrated to the human scale", figure, caption=caption)]


def _screening_section(data: ReportData) -> Section:
    caption = f"{(data.screening_method or 'Screening method not stated').rstrip('.')}."
    if _has_rows(data.screening, SCREENING_COLUMNS, what="screening"):
        rejected = sum(not pd.isna(v) and bool(v) for v in data.screening["rejected"])
        caption += f" {rejected} of {len(data.screening)} raters rejected."
    return _table_or_notice("Rater screening", data.screening, caption=caption)


def _exclusion_section(data: ReportData) -> Section:
    caption = (
        f"Exclusion policy: {data.exclusion_policy or 'not stated'}. The raw data "
        "(judgments.csv) keep every judgment."
    )
    return _table_or_notice("Judgments counted and excluded", data.exclusion, caption=caption)


def _lapse_section(data: ReportData) -> list[Section]:
    if data.method != "2afc":
        return []
    caption = (
        "Each rater's lapse probability q: P(a wins) = q/2 + (1 − q)·P_BT(a ≻ b), gold trials "
        "inside the likelihood (Google's elo_rater_model), Beta(0.2, 2) prior on q, 95 % "
        "Laplace intervals. A high q means answers close to random; weight = 1 − q."
    )
    table = data.lapse
    if table is not None and not table.empty:
        table = table.sort_values("q", ascending=False)
        counts = [c for c in ("n", "n_gold") if c in table.columns]
        table = table.astype({c: "Int64" for c in counts})
        if "gold_wrong" in table.columns:  # an undecided gold counts half
            table["gold_wrong"] = [f"{v:g}" for v in table["gold_wrong"]]
    return [_table_or_notice("Rater reliability (lapse model)", table, caption=caption)]


def _significance_section(data: ReportData) -> list[Section]:
    if data.method != "2afc":
        return []
    caption = (
        "Exact two-sided binomial test of no preference for each compared pair of conditions "
        "(pooled over images, undecided answers left out), p adjusted by Holm's step-down "
        "method over the pairs (Holm 1979); significant at adjusted p ≤ 0.05."
    )
    table = data.significance
    if table is not None and not table.empty:
        table = table.astype({c: "Int64" for c in ("wins_a", "wins_b", "ties", "n")})
    return [_table_or_notice("Pairwise significance (Holm)", table, caption=caption)]


def _dmos_section(data: ReportData, colours: Mapping[str, str]) -> list[Section]:
    if not _has_rows(data.dmos_curves, CURVE_COLUMNS, what="dmos_curves"):
        return []
    label = "DMOS (ACR-HR)"
    figure = rate_perception_figure(data.dmos_curves, quality_label=label, colours=colours)
    caption = (
        "ITU-T P.910 ACR with hidden reference: each rater's score of a stimulus minus their "
        "score of its hidden reference, plus the top of the scale (5 = as good as the "
        "reference), averaged per codec and target; rater-bootstrap intervals."
    )
    return [_figure_or_notice("Rate–DMOS curves (ACR-HR)", figure, caption=caption)]


def _problem_notice(title: str, frame: pd.DataFrame, *, caption: str) -> Section | None:
    problem = frame.attrs.get("problem") if frame is not None else None
    if problem and frame.empty:
        return Section(title, "notice", html=_notice(str(problem)), caption=caption)
    return None


def _subject_sections(data: ReportData) -> list[Section]:
    if data.method == "2afc":
        return []
    caption = (
        "Li & Bampis subject model (DCC 2017; ITU-T P.910 Annex E; sureal MLE_CO): each score "
        "= stimulus quality ψ + rater bias Δ + rater inconsistency υ × noise, fitted by maximum "
        "likelihood. Quality per condition: the mean ψ of its images, SE from the Fisher "
        "information, normal interval."
    )
    title = "Subject model: quality per condition"
    notice = _problem_notice(title, data.subject_scores, caption=caption)
    if notice is not None:
        return [notice]
    rater_caption = (
        "Each rater's bias Δ (mean offset from the stimulus quality, in scale points; zero on "
        "average) and inconsistency υ (SD of their noise), with intervals: a rater with a "
        "large υ adds mostly noise."
    )
    raters = data.subject_raters
    if raters is not None and not raters.empty:
        raters = raters.sort_values("inconsistency", ascending=False)
        raters = raters.astype({"n": "Int64"})
    scores = data.subject_scores
    if scores is not None and not scores.empty:
        scores = scores.astype({c: "Int64" for c in ("images", "ratings")})
    return [
        _table_or_notice(title, scores, caption=caption),
        _table_or_notice("Subject model: raters", raters, caption=rater_caption),
    ]


def _lapse_weighted_section(data: ReportData) -> list[Section]:
    if data.method != "2afc" or data.lapse_use != "weight":
        return []
    title = "Lapse-weighted scale"
    caption = (
        "Bradley–Terry (ridge λ = 0.01) with each rater's trials weighted by 1 − q, their lapse "
        "probability: random clickers count for little instead of being excluded. Elo = 2000 "
        "+ 400·θ/ln 10, 95 % Laplace intervals; pooled over images."
    )
    notice = _problem_notice(title, data.lapse_weighted, caption=caption)
    if notice is not None:
        return [notice]
    table = data.lapse_weighted
    if table is not None and not table.empty:
        table = table.astype({"n": "Int64"})
        for column in ("wins", "losses"):  # undecided answers count ½
            table[column] = [f"{v:g}" for v in table[column]]
    return [_table_or_notice(title, table, caption=caption)]


def _win_section(data: ReportData) -> list[Section]:
    if data.win_matrix is None and data.method != "2afc":
        return []
    figure = None
    if data.win_matrix is not None and not data.win_matrix.empty:
        figure = win_matrix_figure(data.win_matrix)
    return [_figure_or_notice("Pairwise win matrix", figure)]


def report_sections(data: ReportData) -> list[Section]:
    """The report's blocks in reading order; empty frames become "No data yet." notices.

    One codec → colour mapping (:func:`codec_colours` over every codec in the report) is shared
    by all figures.
    """
    colours = codec_colours(_all_codecs(data))
    if data.method == "flicker":  # thresholds, not rate–quality curves
        return [
            _summary_section(data),
            *_flicker_sections(data, colours),
            _exclusion_section(data),
        ]
    return [
        _summary_section(data),
        *_curve_sections(data, colours),
        *_dmos_section(data, colours),
        *_objective_sections(data, colours),
        _bd_section(data),
        *_subject_sections(data),
        _agreement_section(data),
        *_prediction_section(data),
        *_guidance_section(data),
        *_guided_scores_section(data),
        _exclusion_section(data),
        _screening_section(data),
        *_lapse_section(data),
        *_lapse_weighted_section(data),
        *_significance_section(data),
        *_win_section(data),
        *_triplet_sections(data),
    ]


JND_COLUMNS = ("image", "codec", "level", "bpp", "jnd", "ci95_low", "ci95_high", "n", "scale")


def _triplet_sections(data: ReportData) -> list[Section]:
    """Triplet studies: the JND scale per image and the raters' trap accuracy and side bias."""
    if data.method != "triplet":
        return []
    scale = data.jnd_scale
    if _has_rows(scale, JND_COLUMNS, what="jnd_scale"):
        jod = ["cvvdp_jod"] if "cvvdp_jod" in scale.columns else []
        scale = scale.loc[:, [*JND_COLUMNS, *jod]].sort_values(["image", "codec", "level"])
    caption = (
        "JND from the original per image (0 = the original; 1 JND = 75 % of raters see the "
        "image as differing more): Thurstone Case V maximum likelihood, σ = 1.4826, 'not sure' "
        "counted ½ to each side (JPEG AIC-3; Testolina et al., DCC 2025, arXiv:2410.09501), "
        "95 % percentile intervals over raters resampled. Level 1 is each codec's highest "
        "target bpp; n = responses involving the image; scale: plain (PTC responses, or BTC "
        "mapped onto PTC through the fitted h) or boosted (BTC responses only: the boosted "
        "scale, not plain JND). cvvdp_jod: ColorVideoVDP's predicted "
        "quality of the shown crop in JOD (10 = identical; a JOD step is also 75 % "
        "preference, Mantiuk et al. 2024), where computed."
    )
    qc_caption = (
        "Trap accuracy: share of trap triplets (the original against a heavy compression) "
        "answered with the compressed side, 'not sure' ½. Right share: 'right' among decided "
        "answers, with the exact binomial p-value against ½ (AIC-3 saw a right-side bias in "
        "unfiltered crowd data)."
    )
    return [
        _table_or_notice("JND scale per image", scale, caption=caption),
        _table_or_notice("Triplet rater checks", data.triplet_qc, caption=qc_caption),
    ]


THRESHOLD_COLUMNS = (
    "image",
    "codec",
    "threshold_bpp",
    "ci_low_bpp",
    "ci_high_bpp",
    "censored",
    "lowest_bpp",
    "highest_bpp",
    "answers",
    "correct_share",
)
SAVING_COLUMNS = ("codec", "reference", "images", "ratio", "saving", "ci_low", "ci_high")


def _flicker_sections(data: ReportData, colours: dict[str, str]) -> list[Section]:
    """Flicker studies (JPEG AIC-2): thresholds per image and codec, a figure of them, and each
    codec's saving at the threshold."""
    thresholds = data.flicker_thresholds
    if _has_rows(thresholds, THRESHOLD_COLUMNS, what="flicker_thresholds"):
        thresholds = thresholds.loc[:, list(THRESHOLD_COLUMNS)].sort_values(["image", "codec"])
    caption = (
        "Visually lossless threshold per image and codec: the bpp at which 75 % of answers name "
        "the flickering side (JPEG AIC-2, ISO/IEC 29170-2 Annex B: the test image alternates "
        "with the original at 10 Hz beside the still original; chance is 50 %). Psychometric "
        "function with guess ½ and lapse 2 %, one spread shared by the study, maximum "
        "likelihood on a grid; 95 % percentile intervals over raters resampled. Censored: "
        "the threshold lies outside the rates shown (above: even the highest rate was seen "
        "flickering; below: even the lowest was not), so it is only a bound: threshold_bpp is "
        "then the end of the rates shown, without interval."
    )
    saving_caption = (
        "Bit rate each codec needs at the threshold against the reference codec: geometric mean "
        "over the images where both thresholds lie inside the rates shown; saving = 1 − ratio "
        "(0.3: 30 % fewer bits for visually lossless quality), 95 % interval over the same "
        "rater draws."
    )
    savings = data.flicker_savings
    if _has_rows(savings, SAVING_COLUMNS, what="flicker_savings"):
        savings = savings.loc[:, list(SAVING_COLUMNS)]
    return [
        _table_or_notice("Visually lossless thresholds", thresholds, caption=caption),
        _figure_or_notice(
            "Thresholds per image",
            _threshold_figure(data.flicker_thresholds, colours),
            caption="Each codec's threshold per image with its 95 % interval; a triangle marks "
            "a censored threshold at the end of the rates shown (▲: above the highest rate, "
            "▼: below the lowest).",
        ),
        _table_or_notice("Bit-rate saving at the threshold", savings, caption=saving_caption),
    ]


def _threshold_figure(thresholds: pd.DataFrame, colours: dict[str, str]) -> go.Figure | None:
    """Each codec's threshold per image with its interval (log bpp axis)."""
    if thresholds.empty or not set(THRESHOLD_COLUMNS) <= set(thresholds.columns):
        return None
    figure = go.Figure()
    symbols = {"": "circle", "above": "triangle-up", "below": "triangle-down"}
    images = sorted({str(i) for i in thresholds["image"]})
    position = {image: i for i, image in enumerate(images)}
    codecs = sorted({str(c) for c in thresholds["codec"]})
    # codecs side by side within each image's slot, so equal thresholds do not hide each other
    shift = {
        c: (j - (len(codecs) - 1) / 2) * 0.5 / max(len(codecs), 1) for j, c in enumerate(codecs)
    }
    for codec, rows in thresholds.groupby("codec", sort=True):
        rows = rows.sort_values("image")
        figure.add_trace(
            go.Scatter(
                x=[position[str(i)] + shift[str(codec)] for i in rows["image"]],
                y=rows["threshold_bpp"],
                mode="markers",
                name=str(codec),
                marker={
                    "color": colours.get(str(codec)),
                    "size": 10,
                    "symbol": [symbols.get(str(c), "circle") for c in rows["censored"]],
                },
                hovertext=[
                    f"threshold beyond the rates shown ({c})" if c else ""
                    for c in rows["censored"].astype(str)
                ],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_high_bpp"] - rows["threshold_bpp"],
                    "arrayminus": rows["threshold_bpp"] - rows["ci_low_bpp"],
                },
            )
        )
    figure.update_layout(
        xaxis={
            "title": "image",
            "tickmode": "array",
            "tickvals": list(range(len(images))),
            "ticktext": images,
        },
        yaxis_title="threshold (bpp, 75 % correct)",
        yaxis_type="log",
        template="plotly_white",
        height=420,
    )
    return figure


# -- standalone HTML ----------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
  margin: 0; background: #f7f8fa; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; } h1 { margin: 0 0 4px; font-size: 26px; }
.meta { color: #52606d; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; padding: 12px 18px;
  margin: 0 0 18px; }
h2 { font-size: 19px; margin: 4px 0 6px; } .caption { color: #52606d; margin: 0 0 8px; }
table.data { border-collapse: collapse; font-size: 14px; margin: 6px 0; }
table.data th, table.data td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px;
  text-align: left; } table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data thead th { border-bottom: 2px solid #9aa5b1; }
.notice { background: #fffbea; border-left: 4px solid #f0b429; padding: 6px 12px; margin: 6px 0; }
footer { color: #3e4c59; font-size: 14px; padding-bottom: 32px; }
"""


def methods_html(data: ReportData) -> str:
    """The "how these numbers were computed" notes, escaped, with the models from the summary."""
    notes = _flicker_notes(data) if data.method == "flicker" else _curve_notes(data)
    if data.pairwise_prior:
        notes.append(prior_note(data.pairwise_prior, data.pairwise_ridge))
    models = [f"{key}: {value}" for key, value in data.model_entries().items()]
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    model_items = "".join(f"<li>{html.escape(m)}</li>" for m in models) or "<li>none listed</li>"
    return (
        f"<h2>How these numbers were computed</h2><ul>{items}</ul>"
        f"<p>Models and versions:</p><ul>{model_items}</ul>"
    )


def _flicker_notes(data: ReportData) -> list[str]:
    return [
        f"Threshold: {data.quality_label}; bpp is each test image's achieved bits per pixel "
        "(8 · bitstream bytes / pixels).",
        "Intervals: percentile intervals over raters resampled with replacement; the summary "
        "gives the confidence level, the number of resamples and the seed.",
        f"Savings: against {_saving_reference(data)}, over the images where both "
        "thresholds lie inside the rates shown.",
    ]


def _saving_reference(data: ReportData) -> str:
    savings = data.flicker_savings
    if "reference" in savings.columns and len(savings):
        return str(savings["reference"].iloc[0])
    return data.anchor or "the first codec"


def _curve_notes(data: ReportData) -> list[str]:
    return [
        f"Perceived quality: {data.quality_label} per codec and target; bpp is the mean achieved "
        "bits per pixel (8 · bitstream bytes / pixels) over images"
        + (
            ", except where marked declared: an imported codec's rates as the researcher "
            "gave them, without bitstreams."
            if not data.curves.empty and declared_points(data.curves).any()
            else "."
        ),
        "Confidence intervals come from the statistics model; the summary gives the confidence "
        "level, the number of bootstrap resamples and the seed.",
        f"BD-rate: {data.bd_method or 'method not stated'}, anchor {data.anchor or 'not set'}.",
        f"Rater screening: {data.screening_method or 'not stated'}.",
    ]


def prior_note(prior: str, ridge: float) -> str:
    """One sentence: which prior the pairwise scale was fitted with, and why."""
    if prior == "gaussian":
        return (
            "Pairwise scale: fitted with pwcmp's distance prior (Perez-Ortiz & Mantiuk 2017), so "
            "that a condition that never lost or never won still gets a finite score and "
            "interval, while well-measured differences move only slightly."
        )
    if prior == "ridge":
        return (
            f"Pairwise scale: fitted with a ridge prior ½·λ·Σθ² (λ = {ridge:g}), which keeps "
            "every condition finite by shrinking all scores toward their mean."
        )
    return (
        "Pairwise scale: plain maximum likelihood without a prior, as asked for; it exists only "
        "when every condition both won and lost."
    )


def section_html(section: Section, *, number: int) -> str:
    """One section as HTML, the same on the report page and in the standalone file: title,
    caption, then the table, notice or figure (a plotly div; the page or file loads plotly.js
    once)."""
    caption = f'<p class="caption">{html.escape(section.caption)}</p>' if section.caption else ""
    if section.figure is not None:
        body = section.figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"figure-{number}"
        )
    else:
        body = section.html
    title = f"<h2>{html.escape(section.title)}</h2>"
    return f'<section class="report-section" id="section-{number}">{title}{caption}{body}</section>'


def report_body(data: ReportData) -> list[str]:
    """Every section of the report as HTML (:func:`section_html`), in reading order."""
    return [section_html(section, number=i) for i, section in enumerate(report_sections(data), 1)]


def standalone_html(data: ReportData, *, body: Sequence[str] | None = None) -> str:
    """One self-contained offline HTML page: plotly.js inline once, the sections of
    :func:`report_body` (``body`` when already rendered), the methods footer."""
    sections = "\n".join(body if body is not None else report_body(data))
    meta = f"Method: {data.method.upper()} · generated {data.generated_at}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(data.title)}</title>\n<style>{_CSS}</style>\n"
        f"<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        f'<header><h1>{html.escape(data.title)}</h1><p class="meta">{html.escape(meta)}</p>'
        "</header>\n"
        f"<main>\n{sections}\n</main>\n<footer>{methods_html(data)}</footer>\n</body>\n</html>\n"
    )
