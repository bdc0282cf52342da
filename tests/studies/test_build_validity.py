"""What a build refuses to ask raters, and what it gives them to calibrate and screen with.

Identical conditions are made the natural way: a flat image, on which rate control lands
JPEG (and WebP) on the same reconstruction at both targets, and JPEG at any quality
reproduces a flat grey of 128 exactly.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import numpy as np
import pytest
from studykit import answer_current, make_study, rating_session

from perceptlab.codecs.files import read_bytes
from perceptlab.codecs.generation import run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import ImageSet
from perceptlab.lib.images import decode_png, encode_png, sha256_hex
from perceptlab.studies import stimuli
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.models import Item, Method, Stimulus, Study, Trial

pytestmark = pytest.mark.django_db


def flat_study(method: str, *, grey: int = 100, **fields: Any) -> Study:
    """A study of one flat 96×64 image (value ``grey``), its jobs run, not yet built."""
    image_set = ImageSet.objects.create(name=f"flat-{uuid.uuid4().hex[:8]}")
    flat = np.full((64, 96, 3), grey, dtype=np.uint8)
    import_image(image_set=image_set, name="flat.png", data=encode_png(flat))
    settings: dict[str, Any] = {
        "name": f"flat-{uuid.uuid4().hex[:8]}",
        "title": "Flat",
        "method": method,
        "codecs": ["jpeg", "webp"],
        "target_bpps": [0.5, 1.0],
        "crop_width": 64,
        "crop_height": 64,
        "practice_trials": 0,
        "gold_trials": 0,
        "repeat_trials": 0,
        **fields,
    }
    study = Study.objects.create(image_set=image_set, **settings)
    for job in stimuli.plan_generation(study=study):
        run_job(job.pk)
    return study


def pixels(stimulus: Stimulus) -> np.ndarray:
    return decode_png(read_bytes(str(stimulus.png.name)))


def file_bytes(stimulus: Stimulus) -> bytes:
    return read_bytes(str(stimulus.png.name))


def png_chunks(data: bytes) -> list[str]:
    """The chunk types of a PNG file, in order (PNG spec §5.3)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    return chunks


# --- never a choice between identical images -------------------------------------------


def test_a_2afc_pair_of_pixel_identical_crops_is_refused_and_reported() -> None:
    study = flat_study(Method.AFC2)
    report = stimuli.build_stimuli(study=study)
    items = list(study.items.filter(kind=Item.Kind.TEST).select_related("a", "b"))
    assert len(items) == 6 - 2  # 4 conditions, 2 of the 6 pairs identical (jpeg, webp)
    for item in items:
        assert item.b is not None
        assert not np.array_equal(pixels(item.a), pixels(item.b))
    refused = {(note.image, note.a, note.b) for note in report.refused}
    assert refused == {
        ("flat.png", "jpeg at 0.5 bpp (achieved 0.417)", "jpeg at 1 bpp (achieved 0.417)"),
        ("flat.png", "webp at 0.5 bpp (achieved 0.089)", "webp at 1 bpp (achieved 0.089)"),
    }
    assert all("pixel-identical" in note.reason for note in report.refused)
    assert "flat.png: jpeg at 0.5 bpp" in str(report.refused[0])


def test_an_identical_pair_an_earlier_build_made_is_removed_on_rebuild() -> None:
    study = flat_study(Method.AFC2)
    stimuli.build_stimuli(study=study)
    jpegs = study.stimuli.filter(reconstruction__codec="jpeg", role=Stimulus.Role.CONDITION)
    a, b = sorted(jpegs, key=lambda s: s.pk)
    Item.objects.create(study=study, kind=Item.Kind.TEST, a=a, b=b)  # as builds used to
    report = stimuli.build_stimuli(study=study)
    assert not study.items.filter(a=a, b=b).exists()
    assert report.test_items == 4


def test_a_dcr_test_crop_identical_to_the_reference_is_kept_and_reported() -> None:
    study = flat_study(Method.DCR)
    report = stimuli.build_stimuli(study=study)
    assert report.refused == []
    assert report.test_items == 4  # every condition still rated
    warned = {(note.a, note.b) for note in report.warnings if note.b == "reference"}
    # JPEG reproduces the flat grey exactly, WebP is off by a few levels.
    assert warned == {
        ("jpeg at 0.5 bpp (achieved 0.417)", "reference"),
        ("jpeg at 1 bpp (achieved 0.417)", "reference"),
    }


CEILINGS = {
    # a flat grey needs few bits: no setting reaches either target
    (
        "jpeg at 0.5 bpp (achieved 0.417)",
        "the codec's highest rate gives 0.417 bpp, under the target 0.5",
    ),
    (
        "jpeg at 1 bpp (achieved 0.417)",
        "the codec's highest rate gives 0.417 bpp, under the target 1",
    ),
    (
        "webp at 0.5 bpp (achieved 0.089)",
        "the codec's highest rate gives 0.089 bpp, under the target 0.5",
    ),
    (
        "webp at 1 bpp (achieved 0.089)",
        "the codec's highest rate gives 0.089 bpp, under the target 1",
    ),
}


def test_an_acr_study_refuses_nothing_and_warns_of_targets_out_of_reach() -> None:
    report = stimuli.build_stimuli(study=flat_study(Method.ACR))
    assert (report.refused, report.test_items) == ([], 4)
    assert {(note.a, note.reason) for note in report.warnings} == CEILINGS
    assert all(note.b == "its target" for note in report.warnings)


def test_a_2afc_gold_identical_to_the_original_is_refused() -> None:
    # JPEG at quality 5 reproduces a flat grey of 128 exactly; no condition spends fewer bits.
    study = flat_study(Method.AFC2, grey=128, codecs=["jpeg"], target_bpps=[0.5], gold_trials=1)
    report = stimuli.build_stimuli(study=study)
    assert report.gold_items == 0
    (note,) = report.refused
    assert note.a == "the original" and note.b.startswith("jpeg {")
    assert '"quality": 5.0' in note.b
    assert "no right answer" in note.reason


# --- the hidden reference and the gold are not the reference's file --------------------


def test_the_hidden_reference_has_the_originals_pixels_in_a_file_of_its_own() -> None:
    study = make_study(Method.DCR, hidden_reference=True)
    for original in study.stimuli.filter(role=Stimulus.Role.ORIGINAL):
        hidden = study.stimuli.get(study_image=original.study_image, role=Stimulus.Role.HIDDEN)
        assert np.array_equal(pixels(hidden), pixels(original))
        assert file_bytes(hidden) != file_bytes(original)
        assert hidden.png.name != original.png.name
        assert hidden.png_sha256 != original.png_sha256
        for stimulus in (original, hidden):
            assert png_chunks(file_bytes(stimulus))[0] == "IHDR"
            assert set(png_chunks(file_bytes(stimulus))) == {"IHDR", "IDAT", "IEND"}


def test_no_stimulus_file_is_byte_identical_to_its_originals_even_with_the_same_pixels() -> None:
    # On the flat image the JPEG conditions have exactly the original's pixels.
    study = flat_study(Method.AFC2, gold_trials=1)
    stimuli.build_stimuli(study=study)
    original = study.stimuli.get(role=Stimulus.Role.ORIGINAL)
    others = study.stimuli.exclude(pk=original.pk)
    assert {s.role for s in others} == {"hidden", "condition", "gold"}
    same_pixels = [s for s in others if np.array_equal(pixels(s), pixels(original))]
    assert len(same_pixels) >= 3  # the hidden reference and both JPEG conditions
    for stimulus in others:
        assert file_bytes(stimulus) != file_bytes(original)


def test_a_study_built_when_the_hidden_reference_shared_the_originals_file_is_fixed() -> None:
    study = make_study(Method.AFC2, gold_trials=1, state=Study.State.DRAFT)
    hidden = study.stimuli.filter(role=Stimulus.Role.HIDDEN)
    for h in hidden:  # how builds used to leave them
        study.stimuli.filter(study_image=h.study_image, role=Stimulus.Role.ORIGINAL).update(
            png=h.png.name, png_sha256=h.png_sha256
        )
    stimuli.build_stimuli(study=study)
    for h in hidden:
        original = study.stimuli.get(study_image=h.study_image, role=Stimulus.Role.ORIGINAL)
        assert file_bytes(original) != file_bytes(h)
        assert np.array_equal(pixels(original), pixels(h))


def test_a_reencoded_png_keeps_the_pixels_and_changes_the_bytes() -> None:
    crop = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    standard = encode_png(crop)
    other = stimuli.reencoded_png(crop, unlike=sha256_hex(standard))
    assert other != standard and np.array_equal(decode_png(other), crop)
    assert set(png_chunks(other)) == {"IHDR", "IDAT", "IEND"}


# --- the gold is unmistakable -------------------------------------------------------------


def test_a_new_study_asks_for_a_jpeg_quality_5_gold() -> None:
    study = make_study(Method.AFC2, build=False, gold_trials=1)
    assert Study._meta.get_field("gold_params").get_default() == {"quality": 5}
    Study.objects.filter(pk=study.pk).update(gold_params={})  # empty is not JPEG's q75
    study.refresh_from_db()
    gold = [job for job in stimuli.plan_generation(study=study) if job.fixed_params]
    assert {(job.codec, job.fixed_params["quality"]) for job in gold} == {("jpeg", 5)}


def test_the_2afc_gold_is_jpeg_quality_5_when_every_condition_spends_more_bits() -> None:
    study = make_study(Method.AFC2, gold_trials=1, target_bpps=[1.0, 2.0])
    for gold in study.items.filter(kind=Item.Kind.GOLD).select_related("b__reconstruction"):
        assert gold.b is not None and gold.b.role == Stimulus.Role.GOLD
        assert gold.b.reconstruction is not None
        assert gold.b.reconstruction.params["quality"] == 5


def test_the_2afc_gold_is_the_lowest_rate_condition_when_that_spends_fewer_bits() -> None:
    # JPEG at quality 5 spends about 0.53 bpp on these 96×64 images, WebP at 0.5 less.
    study = make_study(Method.AFC2, gold_trials=1)
    golds = study.items.filter(kind=Item.Kind.GOLD).select_related("b__reconstruction")
    assert golds.count() == 2
    for gold in golds:
        assert gold.b is not None and gold.b.role == Stimulus.Role.CONDITION
        conditions = study.stimuli.filter(
            study_image=gold.b.study_image, role=Stimulus.Role.CONDITION
        )
        lowest = min(c.reconstruction.achieved_bpp for c in conditions if c.reconstruction)
        jpeg_q5 = study.stimuli.get(study_image=gold.b.study_image, role=Stimulus.Role.GOLD)
        assert gold.b.reconstruction is not None and jpeg_q5.reconstruction is not None
        assert gold.b.reconstruction.achieved_bpp == lowest
        assert lowest < jpeg_q5.reconstruction.achieved_bpp
        assert gold.expected == Item.Expect.A and gold.a.role == Stimulus.Role.HIDDEN


def test_the_gold_overview_gives_each_images_gold_bpp_and_its_original() -> None:
    study = make_study(Method.AFC2, gold_trials=1)
    overview = stimuli.gold_overview(study=study)
    assert [row.image for row in overview.rows] == ["img0.png", "img1.png"]
    for row in overview.rows:
        assert row.original.role == Stimulus.Role.ORIGINAL
        assert row.original.study_image_id == row.gold.study_image_id
        assert row.made_by.startswith("the image's lowest-rate condition, ")
        assert row.bpp < 0.51
    assert overview.min_bpp is not None and overview.max_bpp is not None
    assert overview.min_bpp <= (overview.mean_bpp or 0) <= overview.max_bpp


# --- practice calibrates ACR and DCR ------------------------------------------------------


@pytest.mark.parametrize("method", [Method.ACR, Method.DCR])
def test_acr_and_dcr_studies_with_practice_get_three_practice_items_per_image(
    method: str,
) -> None:
    study = make_study(method, practice_trials=3)
    practice = study.items.filter(kind=Item.Kind.PRACTICE).select_related("a__reconstruction")
    assert practice.count() == 3 * 2
    for image in study.study_images.all():
        mine = {item.expected: item for item in practice if item.a.study_image_id == image.pk}
        assert set(mine) == {Item.Expect.HIGH, Item.Expect.LOW, Item.Expect.NONE}
        assert all(item.b_id is None for item in mine.values())
        assert mine[Item.Expect.HIGH].a.role == Stimulus.Role.HIDDEN
        low = mine[Item.Expect.LOW].a
        assert low.role == Stimulus.Role.GOLD and low.reconstruction is not None
        assert (low.reconstruction.codec, low.reconstruction.params["quality"]) == ("jpeg", 5)
        middle = mine[Item.Expect.NONE].a
        assert middle.role == Stimulus.Role.CONDITION and middle.reconstruction is not None
        rates = sorted(
            s.reconstruction.achieved_bpp
            for s in image.stimuli.filter(role=Stimulus.Role.CONDITION)
            if s.reconstruction
        )
        assert middle.reconstruction.achieved_bpp in rates[1:3]  # the median of four
    overview = stimuli.gold_overview(study=study)  # the admin's gold preview
    assert [row.gold.role for row in overview.rows] == [Stimulus.Role.GOLD] * 2


def test_practice_in_an_acr_study_plans_the_gold_job_and_without_practice_none() -> None:
    with_practice = make_study(Method.ACR, build=False, practice_trials=2)
    assert len(stimuli.plan_generation(study=with_practice)) == 2 * 2 * 2 + 2
    without = make_study(Method.DCR, build=False, gold_trials=2)
    assert len(stimuli.plan_generation(study=without)) == 2 * 2 * 2
    built = make_study(Method.DCR, gold_trials=2)
    assert not built.items.filter(kind=Item.Kind.PRACTICE).exists()


def test_a_raters_practice_shows_the_original_then_the_degraded_image_then_a_mid_rate_one() -> None:
    study = make_study(Method.ACR, practice_trials=3)
    session = rating_session(study)
    expected = []
    for _ in range(3):
        trial = upcoming(session=session).current
        assert trial is not None and trial.kind == Trial.Kind.PRACTICE
        expected.append(trial.item.expected)
        answer_current(session, score=3.0)
    assert expected == [Item.Expect.HIGH, Item.Expect.LOW, Item.Expect.NONE]


def test_2afc_practice_keeps_using_the_gold_items() -> None:
    study = make_study(Method.AFC2, practice_trials=2, gold_trials=1)
    assert not study.items.filter(kind=Item.Kind.PRACTICE).exists()
    assert study.items.filter(kind=Item.Kind.GOLD).count() == 2


def test_turning_practice_off_and_rebuilding_removes_the_practice_items() -> None:
    study = make_study(Method.ACR, practice_trials=3, state=Study.State.DRAFT)
    study.practice_trials = 0
    study.save(update_fields=["practice_trials"])
    report = stimuli.build_stimuli(study=study)
    assert report.practice_items == 0
