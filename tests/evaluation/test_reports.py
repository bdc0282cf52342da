"""The report layer draws the frames it is given: right data per trace, same colours, safe HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs
from support import data

from perceptlab.evaluation.reports import (
    PALETTE,
    ReportData,
    Section,
    codec_colours,
    objective_figures,
    per_image_figure,
    rate_perception_figure,
    report_sections,
    standalone_html,
    table_html,
    win_matrix_figure,
)
from perceptlab.evaluation.stats.common import StatsInputError

EVIL = "<script>alert(1)</script>"
MOS = "MOS (ACR, 1–5)"


def acr_curves() -> pd.DataFrame:
    """Two codecs at three targets (rows deliberately out of bpp order), one with a NaN CI."""
    return pd.DataFrame(
        {
            "codec": ["jpeg", "jpeg", "jpeg", "hific", "hific", "hific"],
            "target": ["q50", "q10", "q30", "0.1", "0.05", "0.2"],
            "bpp": [0.9, 0.2, 0.5, 0.1, 0.05, 0.2],
            "quality": [4.1, 1.8, 3.0, 3.9, 3.1, 4.4],
            "low": [3.9, 1.6, 2.8, 3.6, np.nan, 4.2],
            "high": [4.3, 2.0, 3.2, 4.2, np.nan, 4.6],
        }
    )


def image_curves(images: list[str], codecs: list[str]) -> pd.DataFrame:
    rows = [
        (image, codec, t, 0.1 * (t + 1), 2.0 + t + 0.1 * k, 1.5 + t, 2.5 + t)
        for k, image in enumerate(images)
        for codec in codecs
        for t in range(2)
    ]
    return pd.DataFrame(rows, columns=["image", "codec", "target", "bpp", "quality", "low", "high"])


def objective_frame(codecs: list[str]) -> pd.DataFrame:
    rows = []
    for codec in codecs:
        for target, base in ((1, 0.2), (2, 0.4)):
            for image, offset in (("kodim01", 0.0), ("kodim02", 0.1)):
                bpp = base + offset
                rows.append((image, codec, target, bpp, "psnr", 30 + 10 * bpp, "full"))
                rows.append((image, codec, target, bpp, "psnr", 28 + 10 * bpp, "crop"))
                rows.append((image, codec, target, bpp, "dists", 0.3 - bpp / 2, "full"))
    columns = ["image", "codec", "target", "bpp", "metric", "value", "region"]
    return pd.DataFrame(rows, columns=columns)


LABELS = {"dists": "DISTS (lower is better)", "psnr": "PSNR (higher is better)"}


def acr_report(codec: str = "hific", *, rater: str = "r2") -> ReportData:
    curves = acr_curves().replace({"codec": {"hific": codec}})
    return ReportData(
        title="Kodak ACR study",
        method="acr",
        generated_at="2025-01-01 12:00",
        summary={"raters": "12", "MOS model": "sureal MosModel v1", "codecs": f"jpeg, {codec}"},
        curves=curves,
        quality_label=MOS,
        image_curves=image_curves(["kodim01", "kodim02"], ["jpeg", codec]),
        objective=objective_frame(["jpeg", codec]),
        metric_labels=LABELS,
        unavailable_metrics={"lpips": "weights missing: vgg16-397923af.pth, put it in var/weights"},
        bd_table=pd.DataFrame(
            {
                "codec": [codec],
                "measure": ["MOS"],
                "bd_rate": [-35.2],
                "bd_rate_low": [-41.0],
                "bd_rate_high": [-28.9],
                "bd_quality": [0.8],
                "overlap": [0.6],
                "warning": [""],
            }
        ),
        anchor="jpeg",
        bd_method="pchip (bjontegaard 1.3)",
        agreement=pd.DataFrame(
            {
                "metric": ["psnr"],
                "n": [6],
                "srocc": [0.8],
                "krocc": [0.6],
                "plcc": [0.85],
                "rmse": [0.4],
            }
        ),
        screening=pd.DataFrame(
            {"rater": ["r1", rater], "rejected": [False, True], "reason": ["", "kurtosis"]}
        ),
        screening_method="ITU-R BT.500-15 Annex 2 §2.3.2",
    )


def twoafc_report() -> ReportData:
    conditions = ["jpeg@0.2", "hific@0.1", "hific@0.2"]
    wins = pd.DataFrame([[0, 3, 1], [7, 0, 2], [9, 8, 0]], index=conditions, columns=conditions)
    elo = acr_curves().assign(quality=lambda f: 1500 + 100 * f["quality"])
    return ReportData(
        title="Kodak 2AFC study",
        method="2afc",
        generated_at="2025-01-02",
        curves=elo,
        quality_label="Elo (Bradley–Terry)",
        agreement=pd.DataFrame(
            {"metric": ["dists"], "n": [30], "accuracy": [0.7], "low": [0.55], "high": [0.82]}
        ),
        metric_labels=LABELS,
        win_matrix=wins,
    )


def lines(fig: go.Figure) -> list[go.Scatter]:
    return [t for t in fig.data if t.mode == "lines+markers"]


# -- rate–perception ------------------------------------------------------------------------------


def test_rate_perception_draws_one_line_per_codec_with_points_sorted_by_bpp() -> None:
    fig = rate_perception_figure(acr_curves(), quality_label=MOS)
    by_name = {t.name: t for t in lines(fig)}
    assert sorted(by_name) == ["hific", "jpeg"]
    assert list(by_name["jpeg"].x) == [0.2, 0.5, 0.9]
    assert list(by_name["jpeg"].y) == [1.8, 3.0, 4.1]
    assert list(by_name["hific"].x) == [0.05, 0.1, 0.2]
    assert fig.layout.yaxis.title.text == MOS


def test_the_band_spans_low_to_high_over_finite_intervals_in_the_line_colour() -> None:
    fig = rate_perception_figure(acr_curves(), quality_label=MOS)
    bands = {t.legendgroup: t for t in fig.data if t.fill == "toself"}
    assert len(fig.data) == 4 and sorted(bands) == ["hific", "jpeg"]
    assert list(bands["jpeg"].x) == [0.2, 0.5, 0.9, 0.9, 0.5, 0.2]
    assert list(bands["jpeg"].y) == [2.0, 3.2, 4.3, 3.9, 2.8, 1.6]
    # hific's lowest point has a NaN interval: the band covers only the two finite ones
    assert list(bands["hific"].x) == [0.1, 0.2, 0.2, 0.1]
    colour = codec_colours(["hific", "jpeg"])["jpeg"]
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    assert bands["jpeg"].fillcolor.startswith(f"rgba({r}, {g}, {b}, 0.")


def test_a_codec_with_a_single_point_gets_error_bars_instead_of_a_band() -> None:
    single = pd.DataFrame(
        {
            "codec": ["vvc"],
            "target": [32],
            "bpp": [0.3],
            "quality": [3.5],
            "low": [3.0],
            "high": [4.2],
        }
    )
    fig = rate_perception_figure(single, quality_label=MOS)
    (line,) = fig.data
    assert line.error_y.visible
    assert line.error_y.array == pytest.approx([0.7])
    assert line.error_y.arrayminus == pytest.approx([0.5])


def test_all_nan_intervals_draw_a_line_without_band_or_bars_and_serialise() -> None:
    curves = acr_curves().assign(low=np.nan, high=np.nan)
    fig = rate_perception_figure(curves, quality_label=MOS)
    assert len(fig.data) == 2
    assert all(not t.error_y.visible for t in fig.data)
    assert fig.data[0].customdata[0][3] == "n/a"
    assert "Plotly.newPlot" in fig.to_html(full_html=False, include_plotlyjs=False)


def test_hover_text_shows_codec_target_and_interval() -> None:
    fig = rate_perception_figure(acr_curves(), quality_label=MOS)
    jpeg = next(t for t in lines(fig) if t.name == "jpeg")
    assert list(jpeg.customdata[0]) == ["jpeg", "q10", "1.800", "[1.600, 2.000]"]
    assert "%{x:.4f}" in jpeg.hovertemplate and MOS in jpeg.hovertemplate


def test_published_mucped23_elo_curves_draw_one_line_and_band_per_encoder() -> None:
    published = pd.read_csv(data("bdrate", "mucped23_elo.csv"))
    curves = published.rename(
        columns={"label": "codec", "method": "target", "elo": "quality", "p99Low": "low"}
    ).rename(columns={"p99Hi": "high"})
    fig = rate_perception_figure(curves, quality_label="Elo (published, 99 % interval)")
    encoders = sorted(published["label"].unique())
    assert sorted(t.name for t in lines(fig)) == encoders
    assert len(fig.data) == 2 * len(encoders)
    for line in lines(fig):
        expected = published[published["label"] == line.name].sort_values("bpp")
        assert list(line.x) == pytest.approx(expected["bpp"].tolist())
        assert list(line.y) == pytest.approx(expected["elo"].tolist())


def test_a_colour_mapping_that_misses_a_codec_is_rejected_naming_it() -> None:
    with pytest.raises(StatsInputError, match=r"no entry for codec\(s\) jpeg"):
        rate_perception_figure(acr_curves(), quality_label=MOS, colours={"hific": "#000000"})


def test_codec_colours_follow_the_sorted_names() -> None:
    assert codec_colours(["webp", "avif", "webp", "bpg"]) == {
        "avif": PALETTE[0],
        "bpg": PALETTE[1],
        "webp": PALETTE[2],
    }


# -- per-image and objective -----------------------------------------------------------------------


def test_per_image_figure_has_one_panel_per_image_and_one_legend_entry_per_codec() -> None:
    images = [f"kodim{i:02d}" for i in range(1, 7)]
    fig = per_image_figure(image_curves(images, ["jpeg", "hific"]), quality_label=MOS)
    assert [a.text for a in fig.layout.annotations] == images
    assert len(fig.data) == 12
    assert sorted(t.name for t in fig.data if t.showlegend) == ["hific", "jpeg"]
    first = next(t for t in fig.data if t.name == "jpeg")
    assert list(first.x) == [0.1, 0.2] and list(first.y) == [2.0, 3.0]
    assert fig.layout.height == 2 * 230 + 140  # six images: two rows of four


def test_objective_figures_plot_the_mean_over_images_per_codec_and_target() -> None:
    figs = objective_figures(objective_frame(["jpeg", "hific"]), metric_labels=LABELS)
    assert [f.layout.title.text for f in figs] == list(LABELS.values())
    psnr = figs[1]
    full = next(t for t in psnr.data if t.name == "jpeg")
    assert list(full.x) == pytest.approx([0.25, 0.45])
    assert list(full.y) == pytest.approx([32.5, 34.5])
    crop = next(t for t in psnr.data if t.name == "jpeg (crop)")
    assert crop.line.dash == "dash" and list(crop.y) == pytest.approx([30.5, 32.5])
    faint = [t for t in psnr.data if t.mode == "markers"]
    assert len(faint) == 2 and all(t.marker.opacity < 0.5 for t in faint)
    assert len(faint[0].x) == 4  # full-region points only: two images x two targets


def test_infinite_metric_values_are_left_out_of_the_mean() -> None:
    frame = objective_frame(["jpeg"])
    frame.loc[0, "value"] = np.inf  # kodim01, target 1, psnr, full
    (_, psnr) = objective_figures(frame, metric_labels=LABELS)
    full = next(t for t in psnr.data if t.name == "jpeg")
    assert full.y[0] == pytest.approx(33.0)


def test_every_figure_of_a_report_gives_a_codec_the_same_colour() -> None:
    seen: dict[str, set[str]] = {}
    for section in report_sections(acr_report()):
        for trace in section.figure.data if section.figure is not None else ():
            if trace.mode == "lines+markers":
                seen.setdefault(trace.legendgroup, set()).add(trace.line.color)
    assert seen == {"hific": {PALETTE[0]}, "jpeg": {PALETTE[1]}}


# -- win matrix and tables ------------------------------------------------------------------------


def test_win_matrix_heatmap_shows_the_fraction_of_wins_of_row_over_column() -> None:
    wins = twoafc_report().win_matrix
    assert wins is not None
    heatmap = win_matrix_figure(wins).data[0]
    z = np.array(heatmap.z, dtype=float)
    assert z[0, 1] == pytest.approx(3 / 10) and z[1, 0] == pytest.approx(7 / 10)
    assert z[2, 0] == pytest.approx(0.9)
    assert np.isnan(np.diag(z)).all()
    assert heatmap.text[2][1] == "8/10" and heatmap.text[0][0] == ""


def test_a_win_matrix_with_different_rows_and_columns_is_rejected() -> None:
    bad = pd.DataFrame([[0, 1], [1, 0]], index=["a", "b"], columns=["a", "c"])
    with pytest.raises(StatsInputError, match="same conditions"):
        win_matrix_figure(bad)


def test_table_html_escapes_and_formats_every_cell() -> None:
    frame = pd.DataFrame({"rater": [EVIL, "r2"], "rejected": [True, False], "z": [1.23456, np.nan]})
    table = table_html(frame, float_format=".2f")
    assert EVIL not in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "<td>yes</td>" in table and '<td class="num">1.23</td>' in table
    assert '<td class="num">–</td>' in table


def test_table_html_rejects_a_float_format_that_is_not_a_format_spec() -> None:
    with pytest.raises(StatsInputError, match="float_format"):
        table_html(pd.DataFrame({"x": [1.0]}), float_format="{:.3f}")


# -- sections -------------------------------------------------------------------------------------


def test_an_empty_report_says_no_data_yet_instead_of_crashing() -> None:
    sections = report_sections(ReportData(title="new", method="dcr", generated_at="now"))
    assert all(s.kind == "notice" and "No data yet." in s.html for s in sections)
    assert [s.title for s in sections] == [
        "Summary",
        "Rate–perception curves",
        "Rate–perception per image",
        "Objective metrics",
        "BD-rate",
        "Subject model: quality per condition",
        "Subject model: raters",
        "Metric agreement with raters",
        "Metrics calibrated to the human scale",
        "What metric guidance would have saved",
        "Judgments counted and excluded",
        "Rater screening",
    ]
    assert "No data yet." in standalone_html(ReportData(title="x", method="2afc", generated_at=""))


def test_a_2afc_report_has_a_win_matrix_and_an_accuracy_table() -> None:
    sections = {s.title: s for s in report_sections(twoafc_report())}
    assert sections["Pairwise win matrix"].kind == "figure"
    assert "<th>accuracy</th>" in sections["Metric agreement with raters"].html
    assert "DISTS (lower is better)" in sections["Metric agreement with raters"].html
    elo = sections["Rate–perception curves"].figure
    assert elo is not None and elo.layout.yaxis.title.text == "Elo (Bradley–Terry)"


def test_an_acr_report_lists_its_sections_in_reading_order() -> None:
    sections = report_sections(acr_report())
    assert [(s.title, s.kind) for s in sections] == [
        ("Summary", "table"),
        ("Rate–perception curves", "figure"),
        ("Rate–perception per image", "figure"),
        ("Objective metrics not computed", "notice"),
        ("Objective: DISTS (lower is better)", "figure"),
        ("Objective: PSNR (higher is better)", "figure"),
        ("BD-rate", "table"),
        ("Subject model: quality per condition", "notice"),
        ("Subject model: raters", "notice"),
        ("Metric agreement with raters", "table"),
        ("Metrics calibrated to the human scale", "notice"),
        ("What metric guidance would have saved", "notice"),
        ("Judgments counted and excluded", "notice"),
        ("Rater screening", "table"),
    ]
    assert sections[-1].caption == "ITU-R BT.500-15 Annex 2 §2.3.2. 1 of 2 raters rejected."
    assert all(isinstance(s, Section) for s in sections)


def test_a_frame_missing_a_column_is_rejected_naming_the_column() -> None:
    data = ReportData(
        title="t", method="acr", generated_at="", curves=acr_curves().drop(columns="high")
    )
    with pytest.raises(StatsInputError, match=r"curves is missing column\(s\) high"):
        report_sections(data)


def test_an_unknown_method_is_rejected() -> None:
    with pytest.raises(StatsInputError, match="'mos' is not one of acr, dcr, 2afc"):
        ReportData(title="t", method="mos", generated_at="")


# -- standalone HTML ------------------------------------------------------------------------------


class TagBalance(HTMLParser):
    """Records every end tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.errors.append(f"unexpected </{tag}> at {self.getpos()}")


@pytest.fixture(scope="module")
def evil_page() -> str:
    return standalone_html(acr_report(EVIL, rater=EVIL))


def test_the_standalone_page_embeds_plotly_js_exactly_once_and_uses_no_cdn(evil_page: str) -> None:
    assert evil_page.count(get_plotlyjs()) == 1
    assert evil_page.count("plotly.js v") == 1
    ours = evil_page.replace(get_plotlyjs(), "")
    assert "cdn.plot.ly" not in ours and "<script src" not in ours
    assert evil_page.count("Plotly.newPlot") == 4


def test_the_standalone_page_contains_every_section_and_the_methods_footer(evil_page: str) -> None:
    for section in report_sections(acr_report(EVIL, rater=EVIL)):
        assert f"<h2>{section.title}</h2>" in evil_page
    assert "How these numbers were computed" in evil_page
    assert "MOS model: sureal MosModel v1" in evil_page
    assert "weights missing: vgg16-397923af.pth" in evil_page


def test_the_standalone_page_escapes_names_taken_from_data(evil_page: str) -> None:
    assert EVIL not in evil_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil_page
    assert evil_page.count("<script") == 1 + 4  # plotly.js and one per figure


def test_the_standalone_page_parses_with_balanced_tags(evil_page: str) -> None:
    parser = TagBalance()
    parser.feed(evil_page)
    parser.close()
    assert parser.errors == [] and parser.open == []
