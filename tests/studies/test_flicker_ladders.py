"""Flicker ladders extended on demand (studies.ladders): where an image and codec's threshold
lies between two far-apart rates, rate control makes a new rate there, the build turns it
into an item, and QUEST asks it."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from scipy.stats import norm
from studykit import answer_current, make_study, rating_session

from perceptlab.codecs.models import GenerationJob
from perceptlab.evaluation.reports import standalone_html
from perceptlab.evaluation.study_analysis import analyse_study, config_for, report_data
from perceptlab.lib import psychometric as pm
from perceptlab.studies import adaptive, ladders
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.models import Item, Study, Trial
from perceptlab.studies.sessions import has_room

pytestmark = pytest.mark.django_db

TRUTH = math.log2(0.7)  # the observers' threshold for jpeg: between the ladder's 0.25 and 2.0


def _sparse(**fields: object) -> Study:
    fields.setdefault("target_width", 0.3)
    fields.setdefault("trials_per_session", 6)
    return make_study(
        "flicker",
        images=1,
        codecs=["jpeg"],
        target_bpps=[0.25, 2.0],
        sampling="adaptive",
        judgments_per_item=400,
        **fields,
    )


def _observer(rng: random.Random) -> Callable[[Trial], str]:
    def choose(trial: Trial) -> str:
        test = trial.item.b
        assert test is not None and test.reconstruction is not None
        x = math.log2(test.reconstruction.achieved_bpp)
        p = pm.GUESS + (1 - pm.GUESS - pm.LAPSE) * norm.cdf((TRUTH - x) / 0.5)
        shown_a, _ = trial.shown_as()
        test_side = "a" if shown_a.pk == test.pk else "b"
        return test_side if rng.random() < p else ("b" if test_side == "a" else "a")

    return choose


def _rate(study: Study, raters: int, rng: random.Random) -> None:
    choose = _observer(rng)
    for _ in range(raters):
        if not has_room(study=study):
            return
        session = rating_session(study)
        while (trial := upcoming(session=session).current) is not None:
            answer_current(session, choice=choose(trial))


def _ladder(study: Study) -> adaptive.LadderState:
    (state,) = adaptive.ladder_states(study, adaptive.item_counts(study)).values()
    return state


@pytest.mark.parametrize("hooked", [True, False])
def test_a_threshold_between_two_far_rates_gets_a_new_rate_there(
    hooked: bool, settings: pytest.FixtureRequest
) -> None:
    """The new rate's job is built into the study as soon as it finishes (the generation
    hook, in the worker that ran it), or by the next maintenance pass without the hook."""
    if not hooked:
        settings.GENERATION_DONE_HOOKS = []  # type: ignore[attr-defined]
    study = _sparse()
    rng = random.Random(1)
    # Raters answer until the posterior sits between the two levels (the truth does, 1.5
    # log2 bpp from each; a few dozen coin flips at the top level can still pull it there).
    for _ in range(10):
        _rate(study, 2, rng)
        before = _ladder(study)
        mean = before.posterior.mean
        if min(abs(level - mean) for level in before.levels) > ladders.GAP:
            break
    assert len(before.levels) == 2 and not before.done
    assert min(abs(level - mean) for level in before.levels) > ladders.GAP
    first = ladders.extend_study(study)
    (image, codec, bpp) = first.requested[0]
    assert (codec, bpp) == ("jpeg", float(f"{2**mean:.3g}")) and not first.built
    assert image == study.study_images.get().source.name
    study.refresh_from_db()
    (key,) = study.ladder_levels
    assert study.ladder_levels[key] == [bpp] and key.endswith(":jpeg")
    job = GenerationJob.objects.get(codec="jpeg", target_bpp=bpp)
    assert job.state == GenerationJob.State.DONE  # the test backend runs it at once
    added_item = Item.objects.filter(
        study=study, kind=Item.Kind.TEST, b__reconstruction=job.reconstruction
    )
    if hooked:  # built when its job finished (the test backend runs it inside the request)
        assert added_item.exists()
        assert not ladders.extend_study(study).built  # nothing left for the pass
    else:
        assert not added_item.exists()
        # the ladder waits for its rate: no second request before the build
        assert not ladders._request(study, study.study_images.get(), "jpeg", 1.1)
        # the next pass builds it into an item, which QUEST asks next
        assert ladders.extend_study(study).built
    added = added_item.get()
    after = _ladder(study)
    assert len(after.levels) == 3 and added.pk in after.items
    assert after.next_item == added.pk
    assert job.reconstruction is not None
    assert abs(job.reconstruction.achieved_bpp / bpp - 1) < 0.1  # rate control hit it


def test_the_generation_hook_builds_only_added_rates_of_live_adaptive_studies() -> None:
    """A job that is no added rate (a designed level, another study's) builds nothing."""
    study = _sparse()
    _rate(study, 5, random.Random(1))
    designed = GenerationJob.objects.get(codec="jpeg", target_bpp=2.0)
    assert ladders.job_done(designed.pk) == 0
    assert ladders.job_done(10**9) == 0  # no such job
    assert ladders._request(study, study.study_images.get(), "jpeg", 0.7)  # job: hook builds
    job = GenerationJob.objects.get(codec="jpeg", target_bpp=0.7)
    assert Item.objects.filter(study=study, b__reconstruction=job.reconstruction).exists()
    assert ladders.job_done(job.pk) == 0  # built already: nothing to do
    Study.objects.filter(pk=study.pk).update(state=Study.State.CLOSED)
    assert ladders.job_done(job.pk) == 0


def test_an_imported_codecs_ladder_is_not_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    """An imported codec is known only by the files imported for it: no job can encode it."""
    study = _sparse()
    _rate(study, 5, random.Random(1))
    monkeypatch.setattr(ladders, "imported_codecs", lambda study: ["jpeg"])
    assert ladders.extend_study(study).requested == []
    study.refresh_from_db()
    assert study.ladder_levels == {}


def test_no_new_rate_near_a_level_beyond_reach_or_past_the_most() -> None:
    study = _sparse()
    study_image = study.study_images.get()
    key = f"{study_image.pk}:jpeg"
    # past the most rates per ladder
    Study.objects.filter(pk=study.pk).update(ladder_levels={key: [0.4, 0.5, 0.6, 0.8]})
    study.refresh_from_db()
    assert not ladders._request(study, study_image, "jpeg", 0.7)
    assert not GenerationJob.objects.filter(target_bpp=0.7).exists()
    # nothing answered yet: the prior's mean says nothing about the image
    fresh = _sparse()
    assert ladders.extend_study(fresh).requested == []
    # a balanced flicker study and a draft are left alone by the worker's pass
    balanced = make_study("flicker", images=1, codecs=["jpeg"], target_bpps=[0.25, 2.0])
    _rate(balanced, 2, random.Random(2))
    draft = _sparse(state=Study.State.DRAFT)
    assert ladders.extend_ladders() >= 0
    for other in (balanced, draft):
        other.refresh_from_db()
        assert other.ladder_levels == {}


def test_an_adaptive_flicker_study_with_a_sparse_ladder_finds_the_threshold_at_new_rates() -> None:
    """Raters answer, the worker's pass extends the ladder between raters, until the study
    reaches its target width: an added rate sits near the threshold and the added rates took
    a good share of the answers, the threshold is found within its interval, and the report
    reads it."""
    study = _sparse(target_width=0.35)
    rng = random.Random(3)
    for _ in range(80):
        if not has_room(study=study):
            break
        _rate(study, 1, rng)
        ladders.extend_ladders()
    assert not has_room(study=study), "the study never reached its target width"
    study.refresh_from_db()
    (added,) = study.ladder_levels.values()
    assert 1 <= len(added) <= ladders.MOST_ADDED
    assert any(abs(math.log2(b) - TRUTH) < 0.5 for b in added)
    state = _ladder(study)
    assert state.done and abs(state.posterior.mean - TRUTH) < 2 * state.posterior.half_width()
    counts = adaptive.item_counts(study)
    designed = {
        item.pk
        for item in Item.objects.filter(study=study, kind=Item.Kind.TEST).select_related(
            "b__reconstruction"
        )
        if item.b is not None
        and item.b.reconstruction is not None
        and item.b.reconstruction.target_bpp in (0.25, 2.0)
    }
    on_added = sum(c.answers for pk, c in counts.items() if pk not in designed)
    # 0.48–0.61 of the answers went to the added rates in five runs
    assert on_added >= 0.4 * sum(c.answers for c in counts.values())
    _, analysis = analyse_study(study, config_for(study))
    html = standalone_html(report_data(study, analysis))
    assert "Visually lossless thresholds" in html
