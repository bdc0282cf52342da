"""Adaptive sampling in live studies: the counters kept with each answer, the choice of the
next pair, raters spread over pairs, the stop at the target width, the dashboard."""

from __future__ import annotations

import random

import numpy as np
import pytest
from django.db.models import F
from scipy.special import ndtr
from studykit import answer_current, make_study, race, rate_until_full, rating_session

from perceptlab.lib import adaptive as core
from perceptlab.studies import adaptive, sessions
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.dashboard import study_dashboard
from perceptlab.studies.models import Item, ItemTally, Judgment, Session, Stimulus, Study, Trial
from perceptlab.studies.planners import Adaptive, planner_for

pytestmark = pytest.mark.django_db


def _adaptive(method: str = "2afc", *, images: int = 1, **fields: object) -> Study:
    fields.setdefault("judgments_per_item", 200)
    fields.setdefault("trials_per_session", 12)
    return make_study(method, images=images, sampling="adaptive", **fields)


def _truth(stimulus: Stimulus) -> float:
    """A simulated observer's scale: quality rises with the bit rate, the source on top
    (2AFC: preference in JOD; triplet: distance from the source in JND, the source 0)."""
    r = stimulus.reconstruction
    quality = 4.0 if r is None else 2.0 * float(np.log2(r.achieved_bpp / 0.25))
    return quality


def _simulated_choice(trial: Trial, rng: random.Random, *, triplet: bool) -> str:
    """The side a Thurstone observer (σ = 1.4826) picks: 2AFC the better one, triplet the
    one that differs more from the source."""
    shown_a, shown_b = trial.shown_as()
    assert shown_b is not None
    a, b = _truth(shown_a), _truth(shown_b)
    if triplet:
        a, b = 4.0 - a, 4.0 - b  # distance from the source
    return "a" if rng.random() < ndtr((a - b) / core.SIGMA) else "b"


def test_adaptive_pairwise_studies_rank_by_information_gain() -> None:
    assert isinstance(planner_for(_adaptive()), Adaptive)
    assert isinstance(planner_for(_adaptive("triplet")), Adaptive)
    assert not isinstance(planner_for(make_study("2afc", images=1)), Adaptive)


def test_each_test_answer_is_counted_on_its_item_with_the_judgment() -> None:
    study = _adaptive(allow_undecided=True)
    session = rating_session(study)
    trial = upcoming(session=session).current
    assert trial is not None
    recorded = answer_current(session, choice="a")  # the side shown as A
    assert recorded is not None
    item = Item.objects.get(pk=trial.item_id)
    shown_a = trial.shown_as()[0]
    assert _tally(item) == (1, 1.0 if shown_a.pk == item.a_id else 0.0)
    trial = upcoming(session=session).current
    assert trial is not None
    answer_current(session, choice=Judgment.Choice.UNDECIDED)
    assert _tally(Item.objects.get(pk=trial.item_id)) == (1, 0.5)  # "cannot decide" counts ½

    # a balanced study and a researcher's preview keep no counts
    balanced = make_study("2afc", images=1)
    answer_current(rating_session(balanced))
    assert not ItemTally.objects.filter(item__study=balanced).exists()
    preview = rating_session(study, platform=Session.Platform.PREVIEW)
    before = sum(ItemTally.objects.filter(item__study=study).values_list("answers", flat=True))
    answer_current(preview)
    after = sum(ItemTally.objects.filter(item__study=study).values_list("answers", flat=True))
    assert after == before


def test_the_planner_asks_the_pair_it_knows_least_about() -> None:
    study = _adaptive(target_width=0.2)
    items = list(study.items.filter(kind=Item.Kind.TEST).order_by("pk"))
    assert len(items) == 6  # 4 conditions of one image, all pairs
    # every pair but the last answered 20 times, evenly: the last is the least known
    for item in items[:-1]:
        Item.objects.filter(pk=item.pk).update(assigned=20)
        ItemTally.objects.create(item=item, answers=20, a_wins=10.0)
    ranked = adaptive.rank(study=study, candidates=items, rng=random.Random(1), explore=0.0)
    assert ranked[0].pk == items[-1].pk
    # …and the same answer from the pure core on the same counts
    scale = adaptive.image_scales(study, adaptive.item_counts(study))
    (image,) = scale.values()
    index = image.posterior.index()
    pairs = np.array([[index[str(i.a_id)], index[str(i.b_id)]] for i in items], dtype=np.intp)
    assert int(np.argmax(core.information_gain(image.posterior, pairs))) == len(items) - 1
    # exploring picks the least asked too
    explored = adaptive.rank(study=study, candidates=items, rng=random.Random(2), explore=1.0)
    assert explored[0].pk == items[-1].pk


def test_raters_binding_at_once_spread_over_pairs() -> None:
    """Slots taken but not answered count as answers on their way: twelve raters arriving
    together (nobody has answered) are not all given the most informative pair."""
    study = _adaptive(trials_per_session=1)
    sessions = [rating_session(study) for _ in range(12)]
    first = [upcoming(session=s).current for s in sessions]
    assert all(t is not None for t in first)
    counts = {t.item_id for t in first if t is not None}
    assert len(counts) == 6  # every pair handed out
    held = sorted(Item.objects.filter(study=study, kind="test").values_list("assigned", flat=True))
    assert held == [2] * 6


@pytest.mark.parametrize(("method", "target"), [("2afc", 0.6), ("triplet", 1.0)])
def test_an_adaptive_study_stops_at_its_target_width(method: str, target: float) -> None:
    """Raters answering as a Thurstone observer: every image's 95 % half-widths reach the
    target, then no more test trials go out and a new rater is told the study is full."""
    triplet = method == "triplet"
    study = _adaptive(method, target_width=target, **({"triplet_mode": "ptc"} if triplet else {}))
    rng = random.Random(7)

    def choose(trial: Trial) -> str:
        if trial.item.a_id == trial.item.b_id:  # the bias triplet: no right side
            return rng.choice("ab")
        return _simulated_choice(trial, rng, triplet=triplet)

    rate_until_full(study, choose, most=40)
    progress = adaptive.study_progress(study)
    assert progress.done and progress.projected_left == 0
    assert all(image.widest <= target for image in progress.images)
    answered = Judgment.objects.filter(trial__session__study=study).count()
    assert progress.images[0].answered == answered - _bias_answers(study)
    # the last session stopped short of its 12 trials, and the next rater gets none
    last = Session.objects.filter(study=study).latest("pk")
    assert last.state == Session.State.COMPLETED
    newcomer = rating_session(study)
    assert newcomer.state == Session.State.SCREENED_OUT
    assert newcomer.screened_reason == sessions.STUDY_AT_TARGET
    dashboard = study_dashboard(study=study)
    assert dashboard.adaptive is not None and dashboard.adaptive.done


def _bias_answers(study: Study) -> int:
    return Judgment.objects.filter(
        trial__session__study=study, trial__item__a=F("trial__item__b")
    ).count()


@pytest.mark.django_db(transaction=True)
def test_raters_racing_on_an_adaptive_study_keep_its_counts_exact() -> None:
    """Eight raters answering at once (threads, each its own connection; on PostgreSQL with
    DATABASE_URL): every answer is counted once on its item, in the judgment's transaction,
    and no rater sees a pair twice."""
    study = _adaptive(images=2, trials_per_session=6)
    sessions = race(study, raters=8, trials_each=6)
    for item in study.items.filter(kind=Item.Kind.TEST):
        judgments = Judgment.objects.filter(trial__item=item, trial__kind=Trial.Kind.TEST)
        answers, a_wins = _tally(item)
        assert answers == judgments.count()
        wins = sum(
            0.5 if j.chosen_id is None else float(j.chosen_id == item.a_id) for j in judgments
        )
        assert a_wins == pytest.approx(wins)
    for session in sessions:
        mine = list(session.trials.filter(kind=Trial.Kind.TEST).values_list("item_id", flat=True))
        assert len(mine) == len(set(mine))


def _tally(item: Item) -> tuple[int, float]:
    """The item's adaptive counters as stored: (answers, a's share); (0, 0) before any."""
    tally = ItemTally.objects.filter(item=item).first()
    return (tally.answers, tally.a_wins) if tally is not None else (0, 0.0)
