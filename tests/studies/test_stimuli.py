from __future__ import annotations

import itertools

import numpy as np
import pytest
from studykit import make_study, synthetic_set

from perceptlab.codecs.files import read_bytes
from perceptlab.codecs.generation import run_job
from perceptlab.codecs.models import GenerationJob
from perceptlab.lib.images import decode_png
from perceptlab.studies import stimuli
from perceptlab.studies.models import Item, Stimulus, Study, StudyImage

pytestmark = pytest.mark.django_db


def test_the_centre_crop_plan_takes_the_middle_of_each_image() -> None:
    study = make_study("acr", build=False, crop_width=64, crop_height=32)
    (first, *_) = stimuli.ensure_crop_plan(study=study)
    assert (first.crop_x, first.crop_y) == ((96 - 64) // 2, (64 - 32) // 2)
    assert first.crop_box() == (16, 16, 64, 32)


def test_a_random_crop_plan_is_reproducible_from_the_seed_and_inside_the_image() -> None:
    study = make_study("acr", build=False, crop_mode=Study.CropMode.RANDOM, seed=7, crop_width=40)
    plan = [(si.crop_x, si.crop_y) for si in stimuli.ensure_crop_plan(study=study)]
    again = [stimuli.crop_position(study, si.source) for si in study.study_images.all()]
    assert plan == again
    for x, y in plan:
        assert 0 <= x <= 96 - 40 and 0 <= y <= 0


def test_a_crop_larger_than_the_image_shows_the_whole_image() -> None:
    study = make_study("acr", build=False, crop_width=512, crop_height=512)
    (first, *_) = stimuli.ensure_crop_plan(study=study)
    assert first.crop_box() == (0, 0, 96, 64)


def test_an_edited_crop_plan_is_kept() -> None:
    study = make_study("acr", build=False)
    stimuli.ensure_crop_plan(study=study)
    StudyImage.objects.filter(study=study).update(crop_x=3, crop_y=0)
    assert {si.crop_x for si in stimuli.ensure_crop_plan(study=study)} == {3}


def test_generation_needs_codecs_and_targets() -> None:
    study = make_study("acr", build=False, codecs=[])
    with pytest.raises(stimuli.StudyNotReady, match="at least one codec"):
        stimuli.plan_generation(study=study)


def test_generation_plans_one_job_per_image_codec_and_target_plus_the_2afc_gold() -> None:
    acr = make_study("acr", build=False, gold_trials=1)
    assert len(stimuli.plan_generation(study=acr)) == 2 * 2 * 2
    afc = make_study("2afc", build=False, gold_trials=1)
    jobs = stimuli.plan_generation(study=afc)
    assert len(jobs) == 2 * 2 * 2 + 2
    gold = [j for j in jobs if j.fixed_params is not None]
    assert {(j.codec, tuple(j.fixed_params.items())) for j in gold} == {("jpeg", (("quality", 5),))}
    assert len(stimuli.plan_generation(study=afc)) == len(jobs)  # found, not duplicated


def test_building_waits_for_unfinished_jobs_and_says_so() -> None:
    study = make_study("acr", build=False)
    stimuli.plan_generation(study=study)
    with pytest.raises(stimuli.StudyNotReady, match="not finished yet"):
        stimuli.build_stimuli(study=study)


def test_a_stimulus_is_exactly_the_crop_of_its_reconstruction() -> None:
    study = make_study("dcr")
    for stimulus in study.stimuli.select_related("reconstruction", "study_image__source"):
        x, y, w, h = stimulus.study_image.crop_box()
        whole_file = (stimulus.reconstruction or stimulus.study_image.source).png
        whole = decode_png(read_bytes(str(whole_file.name)))
        crop = decode_png(read_bytes(str(stimulus.png.name)))
        assert np.array_equal(crop, whole[y : y + h, x : x + w])


def test_stimulus_tokens_are_random_and_say_nothing_about_the_condition() -> None:
    study = make_study("2afc")
    tokens = list(study.stimuli.values_list("token", flat=True))
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert len(token) >= 20
        for word in ("jpeg", "webp", "orig", "gold", "0.5", "bpp"):
            assert word not in token.lower()


def test_all_pairs_gives_every_pair_of_conditions_per_image() -> None:
    study = make_study("2afc", gold_trials=1)
    conditions_per_image = 4
    expected = 2 * len(list(itertools.combinations(range(conditions_per_image), 2)))
    assert study.items.filter(kind=Item.Kind.TEST).count() == expected
    for item in study.items.select_related("a", "b"):
        assert item.b is not None
        assert item.a.study_image_id == item.b.study_image_id  # pairs never mix images
        assert item.a.pk < item.b.pk
    gold = study.items.get(kind=Item.Kind.GOLD, a__study_image__source__name="img0.png")
    assert gold.a.role == Stimulus.Role.HIDDEN and gold.b is not None
    # JPEG q5 spends more bits than webp at 0.5 bpp on these small images: the lowest-rate
    # condition is the gold's degraded side (tests/studies/test_build_validity.py).
    assert gold.b.role in (Stimulus.Role.GOLD, Stimulus.Role.CONDITION)
    assert gold.expected == "a"


def test_the_band_plan_pairs_only_conditions_with_similar_bitrates() -> None:
    study = make_study("2afc", pair_plan=Study.PairPlan.BAND, pair_band=1.3)
    items = list(study.items.select_related("a__reconstruction", "b__reconstruction"))
    assert items
    for item in items:
        assert item.b is not None and item.a.reconstruction and item.b.reconstruction
        low, high = sorted((item.a.reconstruction.achieved_bpp, item.b.reconstruction.achieved_bpp))
        assert high <= 1.3 * low
    assert len(items) < 12  # the 0.5 vs 1.0 bpp pairs are left out


def test_the_budget_plan_samples_a_fixed_number_of_pairs_per_image() -> None:
    study = make_study("2afc", pair_plan=Study.PairPlan.BUDGET, pair_budget=2)
    assert study.items.filter(kind=Item.Kind.TEST).count() == 2 * 2


def test_acr_items_are_single_stimuli_and_the_hidden_reference_adds_the_original() -> None:
    plain = make_study("acr")
    assert plain.items.filter(kind=Item.Kind.TEST).count() == 2 * 4
    assert not plain.items.filter(b__isnull=False).exists()
    hidden = make_study("acr", hidden_reference=True)
    originals = hidden.items.filter(kind=Item.Kind.TEST, a__role=Stimulus.Role.HIDDEN)
    assert originals.count() == 2
    assert hidden.items.filter(kind=Item.Kind.GOLD).count() == 2


def test_building_twice_creates_nothing_new() -> None:
    study = make_study("2afc", gold_trials=1)
    before = (study.stimuli.count(), study.items.count())
    report = stimuli.build_stimuli(study=study)
    assert (report.stimuli, report.test_items + report.gold_items) == before


def test_a_failed_job_is_reported_and_its_condition_left_out() -> None:
    study = Study.objects.create(
        name="with-failure",
        title="t",
        method="acr",
        image_set=synthetic_set(1),
        codecs=["jpeg"],
        target_bpps=[0.5, 1.0],
        crop_width=64,
        crop_height=64,
        practice_trials=0,  # no gold job: the two conditions are all there is
    )
    jobs = stimuli.plan_generation(study=study)
    run_job(jobs[0].pk)
    GenerationJob.objects.filter(pk=jobs[1].pk).update(
        state=GenerationJob.State.FAILED, error="boom"
    )
    report = stimuli.build_stimuli(study=study)
    assert report.missing == ["img0.png · jpeg: boom"]
    assert report.test_items == 1
