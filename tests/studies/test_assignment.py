from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from studykit import answer_current, complete, make_study, race, rating_session

from perceptlab.studies.assignment import (
    make_schedule,
    progress,
    release_stale,
    release_unanswered,
    upcoming,
)
from perceptlab.studies.models import Item, Judgment, Session, Trial
from perceptlab.studies.sessions import start_rating

pytestmark = pytest.mark.django_db


def test_the_schedule_puts_practice_first_and_every_repeat_after_a_test_trial() -> None:
    study = make_study(
        "acr", practice_trials=2, gold_trials=2, repeat_trials=3, trials_per_session=5
    )
    for seed in range(50):
        schedule = make_schedule(study=study, rng=random.Random(seed))
        assert schedule[:2] == ["practice", "practice"]
        assert Counter(schedule[2:]) == {"test": 5, "gold": 2, "repeat": 3}
        main = schedule[2:]
        for index, kind in enumerate(main):
            if kind == "repeat":
                assert main[:index].count("test") > main[:index].count("repeat")


def test_the_schedule_is_capped_by_the_items_the_study_holds() -> None:
    study = make_study("acr", trials_per_session=100, gold_trials=10)
    schedule = make_schedule(study=study)
    assert schedule.count("test") == study.items.filter(kind=Item.Kind.TEST).count() == 8
    assert schedule.count("gold") == 2


def test_items_are_bound_only_for_the_current_and_the_next_trial() -> None:
    study = make_study("2afc", trials_per_session=6)
    session = rating_session(study)
    coming = upcoming(session=session)
    assert coming.current is not None and coming.next is not None
    assert (coming.current.position, coming.next.position) == (0, 1)
    assert session.trials.count() == 2
    assert upcoming(session=session) == coming  # asking again binds nothing new
    assert session.trials.count() == 2


def test_a_rater_never_gets_the_same_item_twice_except_as_a_planned_repeat() -> None:
    study = make_study("2afc", trials_per_session=12, repeat_trials=2, judgments_per_item=3)
    session = rating_session(study)
    complete(session)
    tests = list(session.trials.filter(kind=Trial.Kind.TEST).values_list("item_id", flat=True))
    assert len(tests) == len(set(tests)) == 12
    repeats = session.trials.filter(kind=Trial.Kind.REPEAT)
    assert repeats.count() == 2
    assert all(r.item_id in tests for r in repeats)


def test_least_served_items_go_first_so_judgments_stay_balanced() -> None:
    study = make_study("acr", trials_per_session=3, judgments_per_item=4)  # 8 items
    for _ in range(5):
        complete(rating_session(study))
        counts = list(study.items.filter(kind=Item.Kind.TEST).values_list("assigned", flat=True))
        assert max(counts) - min(counts) <= 1
    judged = Counter(
        Trial.objects.filter(
            session__study=study, kind=Trial.Kind.TEST, judgment__isnull=False
        ).values_list("item_id", flat=True)
    )
    assert sum(judged.values()) == 15 and max(judged.values()) - min(judged.values()) <= 1


def test_no_item_passes_its_target_and_late_raters_find_the_study_full() -> None:
    study = make_study("acr", trials_per_session=5, judgments_per_item=2)  # 16 slots
    sessions = [rating_session(study) for _ in range(5)]
    for session in sessions:
        complete(session)
    assigned = list(study.items.filter(kind=Item.Kind.TEST).values_list("assigned", flat=True))
    assert assigned == [2] * 8
    answered = [progress(session=s)[0] for s in sessions]
    assert sum(answered) == 16 and all(n <= 5 for n in answered)
    for session, count in zip(sessions, answered, strict=True):
        # whoever ran out of items before answering a test trial is not paid for nothing
        done = Session.State.COMPLETED if count else Session.State.SCREENED_OUT
        assert session.state == done
    assert answered == [5, 5, 5, 1, 0]
    late = rating_session(study)
    assert late.state == Session.State.SCREENED_OUT  # nothing left for a late rater
    assert late.screened_reason.startswith("study full")
    assert late.schedule == [] and not late.trials.exists()  # screened out before practice


def test_a_preview_session_takes_no_slot() -> None:
    study = make_study("acr", judgments_per_item=1)
    preview = rating_session(study, platform=Session.Platform.PREVIEW)
    complete(preview)
    assert preview.trials.filter(kind=Trial.Kind.TEST).count() == 8
    assert set(study.items.values_list("assigned", flat=True)) == {0}


def test_slots_of_an_idle_session_are_given_back_and_it_resumes_with_new_items() -> None:
    study = make_study(
        "acr", trials_per_session=4, judgments_per_item=1, session_timeout_minutes=30
    )
    idle = rating_session(study)
    answer_current(idle)
    # the trial on screen and the preloaded next one
    assert idle.trials.filter(holds_slot=True, judgment__isnull=True).count() == 2
    long_ago = timezone.now() - timedelta(minutes=31)
    Session.objects.filter(pk=idle.pk).update(last_seen=long_ago)
    assert release_stale(study=study) == 0  # it answered a minute ago: not idle
    Judgment.objects.filter(trial__session=idle).update(created=long_ago)
    assert release_stale(study=study) == 2
    assert sum(study.items.values_list("assigned", flat=True)) == 1
    idle.refresh_from_db()
    complete(idle)  # the rater came back: positions are rebound
    assert progress(session=idle) == (4, 4)


def test_a_busy_session_keeps_its_slots() -> None:
    study = make_study("acr", judgments_per_item=1)
    session = rating_session(study)
    upcoming(session=session)
    assert release_stale(study=study) == 0


def test_a_screened_out_session_gives_back_what_it_has_not_answered() -> None:
    study = make_study("acr", judgments_per_item=1)
    session = rating_session(study)
    answer_current(session)
    upcoming(session=session)
    assert release_unanswered(session=session) == 2
    assert sum(study.items.values_list("assigned", flat=True)) == 1


def test_starting_to_rate_twice_keeps_the_first_schedule() -> None:
    study = make_study("acr", trials_per_session=4)
    session = rating_session(study)
    schedule = list(session.schedule)
    start_rating(session=session)
    assert session.schedule == schedule


@pytest.mark.django_db(transaction=True)
def test_concurrent_raters_never_take_a_slot_beyond_the_target() -> None:
    study = make_study("2afc", images=3, trials_per_session=18, judgments_per_item=2)
    items = study.items.filter(kind=Item.Kind.TEST).count()  # 18 pairs, 36 slots
    sessions = race(study, raters=4, trials_each=18)
    assigned = list(study.items.values_list("assigned", flat=True))
    assert max(assigned) <= 2 and sum(assigned) == 2 * items
    per_item = Counter(
        Trial.objects.filter(session__study=study, kind=Trial.Kind.TEST).values_list(
            "item_id", flat=True
        )
    )
    assert max(per_item.values()) <= 2 and sum(per_item.values()) == 2 * items
    for session in sessions:
        mine = list(session.trials.filter(kind=Trial.Kind.TEST).values_list("item_id", flat=True))
        assert len(mine) == len(set(mine))


def test_least_served_orders_by_slots_taken_with_ties_uniformly_at_random(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from itertools import islice

    from perceptlab.studies.planners import least_served

    assigned = {10: 2, 11: 0, 12: 1, 13: 0, 14: 0, 15: 2}
    random.seed(7)
    orders = [list(least_served(assigned)) for _ in range(3000)]
    for order in orders:
        assert sorted(order) == sorted(assigned)
        assert [assigned[pk] for pk in order] == sorted(assigned.values())
    firsts = Counter(order[0] for order in orders)
    assert set(firsts) == {11, 13, 14}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in firsts.values()), firsts
    # lazy: taking the first id shuffles only the least-served bucket
    shuffled: list[int] = []
    real_shuffle = random.shuffle

    def counting(ids: list[int]) -> None:
        shuffled.append(len(ids))
        real_shuffle(ids)

    monkeypatch.setattr(random, "shuffle", counting)
    assert next(islice(least_served(assigned), 1)) in {11, 13, 14}
    assert shuffled == [3]
    assert list(least_served({})) == []
