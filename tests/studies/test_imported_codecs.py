"""A study of a generated codec (JPEG, rate control) beside an imported one (the researcher's
decoded images): no jobs for the imported codec, each target takes the image's imported point
nearest the target, achieved bpp against target everywhere, declared rates marked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import importkit
import pytest
import studykit
from django.core.exceptions import ValidationError
from django.test import Client
from test_study_admin import add_form, messages_of

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.imported import ImportRefused, Rates, files_from_directory
from perceptlab.codecs.imported import import_reconstructions as import_files
from perceptlab.codecs.models import GenerationJob, ImageSet, Reconstruction
from perceptlab.evaluation import frames
from perceptlab.evaluation.analysis import analyse
from perceptlab.evaluation.exports import export_bytes, read_csv_bytes
from perceptlab.evaluation.reports import report_sections
from perceptlab.evaluation.study_analysis import build_report_data, config_for
from perceptlab.studies import lifecycle, stimuli
from perceptlab.studies.dashboard import study_dashboard
from perceptlab.studies.models import Stimulus, Study

pytestmark = pytest.mark.django_db


def import_reconstructions(
    image_set: ImageSet, output: importkit.Output, *, declared: bool
) -> None:
    rates = (
        Rates(csv_name="rates.csv", csv_data=output.csv.read_bytes())
        if declared
        else Rates(bitstreams=files_from_directory(output.bitstreams))
    )
    import_files(
        image_set=image_set,
        codec="my-gan",
        files=files_from_directory(output.images),
        rates=rates,
        version="1.0",
    )


def targets_apart(output: importkit.Output) -> list[float]:
    """A target under every q20 point and one over every q75 point: each image's q20 is
    nearest the first, its q75 nearest the second."""
    low = min(bpp for (point, _), bpp in output.bpp.items() if point == "q20")
    high = max(bpp for (point, _), bpp in output.bpp.items() if point == "q75")
    return [round(0.8 * low, 3), round(1.2 * high, 3)]


def built_study(image_set: ImageSet, targets: list[float], method: str = "acr") -> Study:
    study = Study(
        name=f"mixed-{method}",
        title="JPEG against my GAN",
        method=method,
        image_set=image_set,
        codecs=["jpeg", "my-gan"],
        target_bpps=targets,
        crop_width=64,
        crop_height=64,
        practice_trials=0,
        gold_trials=0,
        repeat_trials=0,
    )
    study.full_clean()  # the imported slug is a valid codec
    study.save()
    for job in stimuli.plan_generation(study=study):
        run_job(job.pk)
    return study


@pytest.fixture
def kodak() -> ImageSet:
    return importkit.kodak_crop_set()


@pytest.fixture
def output(tmp_path: Path) -> importkit.Output:
    return importkit.researcher_output(tmp_path / "researcher")


@pytest.mark.parametrize("method", ["acr", "2afc"])
def test_a_study_of_jpeg_and_an_imported_codec_builds_from_the_nearest_points(
    kodak: ImageSet, output: importkit.Output, method: str
) -> None:
    import_reconstructions(kodak, output, declared=False)
    targets = targets_apart(output)
    study = built_study(kodak, targets, method)
    assert set(GenerationJob.objects.values_list("codec", flat=True)) == {"jpeg"}
    assert GenerationJob.objects.count() == 2 * 2  # images × targets, JPEG only
    report = stimuli.build_stimuli(study=study)
    assert report.missing == []
    imported = Stimulus.objects.filter(study=study, reconstruction__codec="my-gan")
    chosen = {
        (s.study_image.source.name, s.target_bpp): s.reconstruction.point
        for s in imported.select_related("reconstruction", "study_image__source")
    }
    names = [f"{name}.png" for name in importkit.IMAGES]
    assert chosen == {
        **{(name, targets[0]): "q20" for name in names},
        **{(name, targets[1]): "q75" for name in names},
    }
    assert report.stimuli == 2 * (2 + 2 * 2)  # per image: original, hidden, 2 × 2 conditions
    # achieved against target, as for JPEG's rate-controlled stimuli
    table = frames.stimuli_frame(study).set_index("stimulus")
    gan = table.loc[table["codec"] == "my-gan"]
    assert set(gan["condition"]) == {f"my-gan@{t:g}" for t in targets}
    for label, row in gan.iterrows():
        point = "q20" if row["target_bpp"] == targets[0] else "q75"
        assert row["bpp"] == output.bpp[(point, str(label).split("/")[0])]
        assert row["bpp_source"] == "measured"
    jpeg = table.loc[table["codec"] == "jpeg"]
    assert set(jpeg["target_bpp"]) == set(targets) and set(jpeg["bpp_source"]) == {"measured"}
    # the imported points miss the targets by ±20 %+: the build says so, naming both
    notes = [str(n) for n in report.warnings if "nearest imported point" in n.reason]
    assert len(notes) == 4, report.warnings
    assert "my-gan point q20 at" in notes[0] and "(achieved" in notes[0]


def test_a_point_nearest_two_targets_stands_for_the_nearer_one(
    kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=False)
    low = targets_apart(output)[0]
    study = built_study(kodak, [low, round(low * 1.1, 3)])
    report = stimuli.build_stimuli(study=study)
    imported = Stimulus.objects.filter(study=study, reconstruction__codec="my-gan")
    assert {s.target_bpp for s in imported} == {round(low * 1.1, 3)}  # q20 is nearer this one
    assert len(report.missing) == 2
    assert f"my-gan at {low:g} bpp: its nearest imported point (q20" in report.missing[0]
    assert "import a point nearer" in report.missing[0]


def test_an_image_without_an_imported_point_is_listed_missing(
    kodak: ImageSet, output: importkit.Output, tmp_path: Path
) -> None:
    for point in importkit.POINTS:
        (output.images / point / "kodim23.png").unlink()
        (output.bitstreams / point / "kodim23.jpg").unlink()
    import_reconstructions(kodak, output, declared=False)
    study = built_study(kodak, targets_apart(output))
    report = stimuli.build_stimuli(study=study)
    assert report.missing == [
        "kodim23.png · my-gan: no imported reconstruction of this image; import it "
        "(manage.py import_reconstructions) or take the image out of the crop plan"
    ]
    generation = study_dashboard(study=study).generation
    assert generation.imported == ["my-gan"] and generation.imported_picks == 2


def test_a_study_of_imported_codecs_alone_needs_no_job(
    kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=False)
    study = built_study(kodak, targets_apart(output))
    study.codecs = ["my-gan"]
    study.save()
    assert stimuli.plan_generation(study=study) == []
    report = stimuli.build_stimuli(study=study)
    assert report.test_items == 2 * 2 and report.missing == []


def test_the_imported_codec_cannot_be_the_gold(kodak: ImageSet, output: importkit.Output) -> None:
    import_reconstructions(kodak, output, declared=False)
    study = Study(name="g", title="g", image_set=kodak, codecs=["my-gan"], target_bpps=[1.0])
    study.gold_codec = "my-gan"
    with pytest.raises(ValidationError, match=r"an imported codec \(it cannot encode\)"):
        study.full_clean()
    study.codecs = ["nope"]
    with pytest.raises(ValidationError, match=r"unknown codec\(s\) \['nope'\]; valid: .*my-gan"):
        study.full_clean()


def test_replacing_points_a_built_study_shows_is_refused(
    kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=False)
    study = built_study(kodak, targets_apart(output))
    stimuli.build_stimuli(study=study)
    with pytest.raises(ImportRefused, match="stimuli of built studies show them") as refused:
        import_files(
            image_set=kodak,
            codec="my-gan",
            files=files_from_directory(output.images),
            rates=Rates(bitstreams=files_from_directory(output.bitstreams)),
            replace=True,
        )
    assert "import the new version under other point names" in str(refused.value)
    assert Reconstruction.objects.filter(codec="my-gan").count() == 4


def test_declared_rates_are_marked_in_exports_dashboard_and_report(
    kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=True)
    study = built_study(kodak, targets_apart(output))
    lifecycle.launch(study=study)
    studykit.complete(studykit.rating_session(study))
    studykit.complete(studykit.rating_session(study))
    stimuli_csv = read_csv_bytes(export_bytes(study, "stimuli.csv"))
    by_codec = stimuli_csv.groupby("codec")["bpp_source"].agg(set).to_dict()
    assert by_codec == {"": {""}, "jpeg": {"measured"}, "my-gan": {"declared"}}
    judgments = read_csv_bytes(export_bytes(study, "judgments.csv"))
    assert {"bpp_source_a", "bpp_source_b"} <= set(judgments.columns)
    sources = dict(zip(judgments["codec_a"], judgments["bpp_source_a"], strict=True))
    assert sources == {"jpeg": "measured", "my-gan": "declared"}
    rows = study_dashboard(study=study).coverage.rows
    assert {c.codec for r in rows for c in r.conditions if c.declared} == {"my-gan"}
    # the analysis carries the source to the curves, the tables and the report's figures
    config = replace(config_for(study), n_resamples=50)
    analysis = analyse(
        stimuli=frames.stimuli_frame(study),
        judgments=frames.judgments_frame(study),
        metrics=frames.metrics_frame(study),
        config=config,
    )
    curves = analysis.curves.set_index("codec")["bpp_source"]
    assert set(curves.loc["my-gan"]) == {"declared"} and set(curves.loc["jpeg"]) == {"measured"}
    data = build_report_data(title="t", analysis=analysis, metric_labels={})
    assert data.summary["bpp declared, not measured"] == "my-gan"
    [section] = [s for s in report_sections(data) if s.title == "Rate–perception curves"]
    assert "Open markers: bpp declared" in section.caption
    assert section.figure is not None
    traces = {t.name: t for t in section.figure.data if t.mode == "lines+markers"}
    assert traces["my-gan"].marker.symbol == ("circle-open", "circle-open")
    assert traces["jpeg"].marker.symbol == "circle"
    assert traces["my-gan"].customdata[0][-1] == "bpp declared"
    bd = analysis.bd_table.set_index("codec")
    assert "bpp of my-gan declared, not measured" in str(bd.loc["my-gan", "warning"])
    assert "bpp_source" in analysis.scores.columns  # scores.csv of the bundle


def test_the_admin_generates_and_builds_a_study_of_jpeg_and_an_imported_codec(
    admin_client: Client, kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=True)
    targets = ", ".join(f"{t:g}" for t in targets_apart(output))
    form = add_form(kodak.pk, codecs=["jpeg", "my-gan"], target_bpps=targets, practice_trials=0)
    response = admin_client.post("/admin/studies/study/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    study = Study.objects.get(name="new-study")
    run = f"/admin/studies/study/{study.pk}/run/"
    generated = messages_of(admin_client.post(run + "generate/", follow=True))
    assert "4 generation job(s)" in generated  # JPEG: 2 images × 2 targets
    assert "4 stimuli from imported points" in generated
    built = messages_of(admin_client.post(run + "build/", follow=True))
    assert "built: 12 stimuli, 8 test items" in built
    dashboard = admin_client.get(f"/admin/studies/study/{study.pk}/dashboard/").content.decode()
    assert "Imported codecs (no jobs" in dashboard and "my-gan" in dashboard
    assert "(declared)" in dashboard  # achieved against target, the rate marked declared


def test_the_admin_refuses_an_imported_codec_without_reconstructions_of_the_set(
    admin_client: Client, kodak: ImageSet, output: importkit.Output
) -> None:
    import_reconstructions(kodak, output, declared=False)
    other = importkit.kodak_crop_set(("kodim05",))
    response = admin_client.post(
        "/admin/studies/study/add/", add_form(other.pk, codecs=["jpeg", "my-gan"])
    )
    assert response.status_code == 200
    assert f"my-gan (imported) has no reconstruction of set &#x27;{other.name}&#x27;" in (
        response.content.decode()
    )
    assert not Study.objects.filter(name="new-study").exists()
