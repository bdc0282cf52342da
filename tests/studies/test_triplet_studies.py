"""Triplet studies (JPEG AIC-3): design, boosted stimuli, answers, the page's payload, JND."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from studykit import answer_current, make_study, rating_session

from perceptlab.codecs.files import read_bytes
from perceptlab.evaluation.analysis import analyse, counted_judgments
from perceptlab.evaluation.analysis.triplet import triplet_frame
from perceptlab.evaluation.exports import triplet_files
from perceptlab.evaluation.models import StimulusMetric
from perceptlab.evaluation.reports import standalone_html
from perceptlab.evaluation.scoring import TripletOptions, score_triplet_files
from perceptlab.evaluation.stats.triplet_io import read_triplet_csv
from perceptlab.evaluation.study_analysis import config_for, report_data, study_frames
from perceptlab.lib.boost import boosted_pair
from perceptlab.lib.images import decode_png
from perceptlab.studies import stimuli
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.judging import Answer, JudgmentRejected, record
from perceptlab.studies.models import Item, Judgment, Session, Stimulus, Study

pytestmark = pytest.mark.django_db


def _pixels(stimulus: Stimulus) -> np.ndarray:
    return decode_png(read_bytes(str(stimulus.png.name)))


def _side(stimulus: Stimulus) -> str:
    r = stimulus.reconstruction
    return "source" if r is None else f"{r.codec}@{stimulus.target():g}"


def test_the_triplet_design_pairs_each_codecs_levels_with_the_source_and_ties_codecs() -> None:
    study = make_study("triplet", triplet_mode="ptc", gold_trials=1)
    first = study.study_images.order_by("pk").first()
    items = study.items.filter(kind=Item.Kind.TEST, a__study_image=first)
    sides = sorted(tuple(sorted((_side(i.a), _side(i.b)))) for i in items if i.b)  # type: ignore[arg-type]
    assert sides == sorted(
        [
            # jpeg: its two levels and the source, all pairs
            ("jpeg@0.5", "source"),
            ("jpeg@1", "source"),
            ("jpeg@0.5", "jpeg@1"),
            ("source", "webp@0.5"),
            ("source", "webp@1"),
            ("webp@0.5", "webp@1"),
            # cross-codec at each target
            ("jpeg@0.5", "webp@0.5"),
            ("jpeg@1", "webp@1"),
            # the bias triplet: the median-rate condition on both sides
            (_side(_median(first)), _side(_median(first))),
        ]
    )
    (bias,) = [i for i in items if i.a_id == i.b_id]
    assert bias.a.role == Stimulus.Role.CONDITION
    (trap,) = study.items.filter(kind=Item.Kind.GOLD, a__study_image=first)
    assert trap.a.role == Stimulus.Role.HIDDEN
    assert trap.expected == Item.Expect.B  # the compressed side differs more


def _median(study_image: object) -> Stimulus:
    conditions = Stimulus.objects.filter(
        study_image=study_image, role=Stimulus.Role.CONDITION
    ).select_related("reconstruction")
    by_rate = sorted(conditions, key=lambda s: (s.reconstruction.achieved_bpp, s.pk))  # type: ignore[union-attr]
    return by_rate[(len(by_rate) - 1) // 2]


def test_building_a_triplet_study_twice_creates_nothing_new() -> None:
    study = make_study("triplet", triplet_mode="ptc")
    before = sorted(study.items.values_list("pk", flat=True))
    stimuli.build_stimuli(study=study)
    assert sorted(study.items.values_list("pk", flat=True)) == before


def test_a_btc_study_stores_its_stimuli_boosted_and_the_pivot_zoomed_alike() -> None:
    study = make_study("triplet", triplet_mode="btc", boost_alpha=2.0)
    first = study.study_images.select_related("source").order_by("pk").first()
    assert first is not None
    reference = decode_png(read_bytes(str(first.source.png.name)))
    box = first.crop_box()
    original = Stimulus.objects.get(study_image=first, role=Stimulus.Role.ORIGINAL)
    pivot, _ = boosted_pair(reference, reference, box, 2.0)
    assert np.array_equal(_pixels(original), pivot)
    assert original.boost_alpha == 2.0
    shown = 0
    for stimulus in Stimulus.objects.filter(study_image=first, role=Stimulus.Role.CONDITION):
        assert stimulus.reconstruction is not None
        decoded = decode_png(read_bytes(str(stimulus.reconstruction.png.name)))
        _, boosted = boosted_pair(reference, decoded, box, 2.0)
        assert np.array_equal(_pixels(stimulus), boosted)
        # the boost makes the difference from the pivot larger than the plain crop's
        x, y, w, h = box
        plain = decoded[y : y + h, x : x + w].astype(int) - reference[y : y + h, x : x + w]
        assert np.abs(boosted.astype(int) - pivot).mean() > np.abs(plain).mean()
        shown += 1
    assert shown == 4


def test_changing_a_built_study_from_btc_to_ptc_stores_plain_crops_under_the_same_tokens() -> None:
    study = make_study("triplet", triplet_mode="btc")
    tokens = dict(study.stimuli.values_list("pk", "token"))
    study.triplet_mode = "ptc"
    study.save()
    stimuli.build_stimuli(study=study)
    assert dict(study.stimuli.values_list("pk", "token")) == tokens
    for stimulus in study.stimuli.select_related("study_image__source", "reconstruction"):
        assert stimulus.boost_alpha is None
        x, y, w, h = stimulus.study_image.crop_box()
        png = (
            stimulus.reconstruction.png
            if stimulus.reconstruction
            else stimulus.study_image.source.png
        )
        whole = decode_png(read_bytes(str(png.name)))
        assert np.array_equal(_pixels(stimulus), whole[y : y + h, x : x + w])


def test_a_btc_study_needs_an_even_crop() -> None:
    study = make_study("triplet", build=False, triplet_mode="btc", crop_width=63)
    with pytest.raises(ValidationError, match="even width and height"):
        study.full_clean()
    study.triplet_mode = "ptc"
    study.full_clean()


def test_ptc_needs_one_toggle_and_btc_none() -> None:
    ptc = Study(method="triplet", triplet_mode="ptc", min_flips=0)
    btc = Study(method="triplet", triplet_mode="btc", min_flips=3)
    assert ptc.required_flips() == 1 and ptc.uses_flips and ptc.panes() == 3
    assert btc.required_flips() == 0 and not btc.uses_flips and btc.is_boosted


def test_a_triplet_answer_names_the_side_that_differs_more_as_shown() -> None:
    study = make_study("triplet", triplet_mode="ptc")
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None
    left, right = trial.shown_as()
    recorded = answer_current(session, choice="b", flips=2)
    assert recorded is not None
    judgment = recorded.judgment
    assert judgment.choice == "b" and judgment.chosen == right and judgment.flips == 2
    assert left != right or trial.item.a_id == trial.item.b_id


def test_a_triplet_trap_passes_when_the_compressed_side_is_picked() -> None:
    study = make_study("triplet", triplet_mode="ptc", gold_trials=2, gold_min_answered=5)
    session = rating_session(study)
    outcomes = []
    while (trial := upcoming(session=session).current) is not None:
        left, _ = trial.shown_as()
        if trial.kind == "gold":
            compressed_left = left.role == Stimulus.Role.GOLD or (
                left.role == Stimulus.Role.CONDITION
            )
            recorded = answer_current(session, choice="a" if compressed_left else "b")
            assert recorded is not None
            outcomes.append(recorded.judgment.gold_passed)
        else:
            answer_current(session, choice="undecided")
    assert outcomes == [True, True]


def test_a_triplet_without_not_sure_refuses_it_in_the_pages_words() -> None:
    study = make_study("triplet", triplet_mode="ptc", allow_undecided=False)
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None
    answer = Answer(
        position=trial.position,
        key=uuid.uuid4(),
        score=None,
        choice="undecided",
        flips=1,
        view_ms=3000,
        age_ms=0,
        viewing={},
    )
    with pytest.raises(JudgmentRejected, match="left or the right side"):
        record(session=session, answer=answer)


def test_the_rating_page_sends_the_triplet_layout_timing_and_both_sides(client: Client) -> None:
    study = make_study("triplet", triplet_mode="btc")
    session = rating_session(study)
    Session.objects.filter(pk=session.pk).update(state=Session.State.RATING)
    page = client.get(reverse("studies:session", args=[session.code]))
    assert page.status_code == 200
    html = page.content.decode()
    config = json.loads(html.split('id="rater-config" type="application/json">')[1].split("<")[0])
    assert config["layout"] == "triplet" and config["method"] == "triplet"
    assert config["triplet"] == {"mode": "btc", "flickerMs": 100, "showMs": 8000, "blankMs": 3000}
    assert config["minFlips"] == 0
    images = config["initial"]["trial"]["images"]
    assert images["reference"] and images["a"] and images["b"]
    original = Stimulus.objects.get(
        study=study, role=Stimulus.Role.ORIGINAL, token=images["reference"].rsplit("/", 1)[1]
    )
    assert original.boost_alpha == 2.0


def _simulated(study: Study, raters: int, seed: int) -> None:
    """Raters who see a larger bpp gap as a smaller distortion: the side with the lower bpp
    differs more (the source counts as infinite bpp), with 15 % random answers."""
    rng = np.random.default_rng(seed)
    for _ in range(raters):
        session = rating_session(study)
        while (trial := upcoming(session=session).current) is not None:
            left, right = trial.shown_as()
            rate = [
                math.inf if s.reconstruction is None else s.reconstruction.achieved_bpp
                for s in (left, right)
            ]
            if rng.random() < 0.15 or rate[0] == rate[1]:
                choice = str(rng.choice(["a", "b", "undecided"]))
            else:
                choice = "a" if rate[0] < rate[1] else "b"
            answer_current(session, choice=choice)


def test_a_triplet_study_is_scaled_in_jnd_and_exported_in_the_scoring_layout(
    tmp_path: Path,
) -> None:
    study = make_study(
        "triplet",
        triplet_mode="btc",
        judgments_per_item=40,
        trials_per_session=20,
        gold_trials=1,
        gold_min_answered=5,
    )
    _simulated(study, raters=30, seed=3)
    # stored CVVDP predictions of the shown crops (made up here: more bits, higher JOD)
    for stimulus in study.stimuli.filter(role=Stimulus.Role.CONDITION):
        assert stimulus.reconstruction is not None
        jod = 10 - 1 / stimulus.reconstruction.achieved_bpp
        StimulusMetric.objects.create(
            stimulus=stimulus, region="crop", metric="cvvdp", value=jod, version="test"
        )
    data = study_frames(study)
    config = config_for(study)
    analysis = analyse(
        stimuli=data.stimuli, judgments=data.judgments, metrics=data.metrics, config=config
    )
    curves = analysis.curves
    assert set(curves["codec"]) == {"jpeg", "webp"}
    for _, codec in curves.groupby("codec"):
        ordered = codec.sort_values("bpp")
        # more bits, closer to the original: fewer JND
        assert ordered["quality"].iloc[0] > ordered["quality"].iloc[1] > 0
        assert (ordered["low"] <= ordered["quality"]).all()
        assert (ordered["quality"] <= ordered["high"]).all()
    assert "JND" in analysis.quality_label
    # JOD beside JND, and the metric's agreement with the human scale (opposite directions)
    assert analysis.scores["cvvdp_jod"].notna().all()
    (cvvdp,) = analysis.agreement.loc[analysis.agreement["metric"] == "cvvdp"].itertuples()
    assert cvvdp.n == 8 and cvvdp.srocc < -0.5
    assert len(analysis.image_curves) == 2 * 2 * 2
    frame = triplet_frame(counted_judgments(data.judgments, config.policy()), data.stimuli)
    assert set(frame["method"]) == {"BTC"}
    assert set(frame["role"]) == {"scale", "bias"}  # the counted judgments: test trials
    # the traps (one per rater) reach the rater checks, answered as the simulation answers
    qc = analysis.triplet_qc.set_index("rater")
    assert (qc["traps"] == 1).all() and len(qc) == 30
    assert qc["trap_accuracy"].mean() > 0.7
    files = triplet_files(stimuli=data.stimuli, judgments=data.judgments, config=config)
    path = tmp_path / "triplets.csv"
    path.write_bytes(files["triplets.csv"])
    read = read_triplet_csv(path)
    assert len(read) == len(frame) + 30 and (read["role"] == "trap").sum() == 30
    assert list(read["response"].iloc[: len(frame)]) == list(frame["response"])
    # `manage.py score --kind triplet` on the export gives the report's JND values
    scored = score_triplet_files([path], TripletOptions(bootstrap="none")).scores
    ours = analysis.scores.set_index(["image", "codec", "level"])["jnd"]
    theirs = scored.set_index(["img_num", "codec", "level"])["jnd"]
    assert np.allclose(theirs.reindex(ours.index).to_numpy(), ours.to_numpy())
    report = report_data(study, analysis)
    html = standalone_html(report)
    assert "JND scale per image" in html and "Triplet rater checks" in html
    assert "JND from the original" in html and "cvvdp_jod" in html


def test_the_dashboard_of_a_triplet_study_counts_its_judgments(admin_client: Client) -> None:
    study = make_study("triplet", triplet_mode="ptc", trials_per_session=4)
    _simulated(study, raters=2, seed=1)
    page = admin_client.get(f"/admin/studies/study/{study.pk}/dashboard/")
    assert page.status_code == 200
    text = page.content.decode()
    stored = Judgment.objects.filter(trial__session__study=study).count()
    assert stored == 8
    assert f'<span id="coverage-all">{stored}</span>' in text
