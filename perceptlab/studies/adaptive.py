"""Adaptive sampling in a live study: each image's Thurstone scale from the answers so far,
the next pair by expected information gain with a share of exploration, and the stop at
the researcher's target width (``Study.sampling = "adaptive"``, 2AFC and triplets). In a
flicker study (JPEG AIC-2) each (image, codec) ladder has its own QUEST posterior of the
visually lossless threshold (:mod:`perceptlab.lib.psychometric`): the next trial is the
level nearest its posterior mean, the ladder with the widest posterior first, and a ladder
stops when its threshold's 95 % half-width (log2 bpp) reaches the target.

The statistics are :mod:`perceptlab.lib.adaptive` (pure functions, replayed on real data by
``bench/adaptive.py``). What the study adds is the state and the concurrency:

* **State in the database.** A test item of an adaptive study keeps its answers and the
  share of them for its ``a`` (:class:`ItemTally`: a "not sure" counts ½), added in the
  transaction that stores the judgment (:func:`count_answer`; a row apart from the item's
  slot counter, so that counting one answer and taking the next slot lock rows in one
  order and raters cannot deadlock each other). Any web
  process reads the same counts (one query per binding, :func:`item_counts`); an image's
  posterior is a pure function of its counts, so a process caches it under them
  (:func:`_scale`) and refits an image only when one of its counts moved.
* **Concurrency.** Slots taken but not answered yet (``assigned − answers``) are answers
  on their way. The information gain of a pair is divided by one plus them and the
  exploration share counts them as asked, so raters binding at the same moment spread
  over pairs instead of all getting the single most informative one.
* **Stopping.** An image whose conditions all have a 95 % half-width at most
  ``Study.target_width`` (JOD in 2AFC, JND in triplets; :func:`lib.adaptive.stopping`)
  offers no more pairs. When every image has stopped, raters' remaining test positions
  are left empty and their sessions end early; the dashboard shows each image's widest
  interval and the answers it is projected to need (:func:`study_progress`).

Which answers count: test trials of rater sessions (not previews, not repeats, not gold);
the planner does not screen raters (the report's exclusion policy comes later, on the
final data). The bias triplet of an image (the same condition on both sides) carries no
information about the scale: it is offered only through the exploration share.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import DEFAULT_DB_ALIAS, connections

from perceptlab.lib import adaptive, prepared, psychometric
from perceptlab.studies import catalog
from perceptlab.studies.models import Item, ItemTally, Judgment, Study, Trial

EXPLORE = adaptive.DEFAULT_EXPLORE


@dataclass(frozen=True)
class Counts:
    """One test item's counters as the database has them now."""

    assigned: int
    answers: int
    a_wins: float
    score_sum: float = 0.0  # ACR/DCR (metric guidance): the ratings' sum and sum of squares
    score_squares: float = 0.0

    @property
    def pending(self) -> int:
        """Slots taken whose answer has not arrived (yet, or ever: a stale slot)."""
        return max(self.assigned - self.answers, 0)


@dataclass(frozen=True)
class ImageScale:
    """One image's scale: its posterior over its conditions (stimulus ids), the stop."""

    posterior: adaptive.Posterior
    stop: adaptive.Stopping
    done: bool

    @property
    def widest(self) -> float:
        return float(self.stop.widths.max()) if len(self.stop.widths) else 0.0


def count_answer(*, trial: Trial, judgment: Judgment) -> None:
    """Add a stored test answer to its item's counters (inside the judgment's transaction):
    a pair's ``a`` share is 1 for ``a`` chosen, 0 for ``b``, ½ for "cannot decide" / "not
    sure"; a rating (ACR/DCR) adds its score and its square."""
    item = trial.item
    score = 0.0
    if judgment.score is not None:
        share, score = 0.0, float(judgment.score)
    elif judgment.chosen_id is None:
        share = 0.5
    else:
        share = 1.0 if judgment.chosen_id == item.a_id else 0.0
    with prepared.cursor(connections[DEFAULT_DB_ALIAS]) as cursor:
        cursor.execute(_count_sql(), [item.pk, share, score, score * score])


@functools.cache
def _count_sql() -> str:
    """One upsert (PostgreSQL and SQLite ≥ 3.24): the item's first answer creates its row."""
    table = ItemTally._meta.db_table
    return (
        f"INSERT INTO {table} (item_id, answers, a_wins, score_sum, score_squares) "
        f"VALUES (%s, 1, %s, %s, %s) "
        f"ON CONFLICT (item_id) DO UPDATE SET answers = {table}.answers + 1, "
        f"a_wins = {table}.a_wins + excluded.a_wins, "
        f"score_sum = {table}.score_sum + excluded.score_sum, "
        f"score_squares = {table}.score_squares + excluded.score_squares"
    )


def counts_answers(study: Study, trial: Trial, *, preview: bool) -> bool:
    """Whether this trial's answer enters the adaptive scale."""
    return study.is_adaptive and trial.kind == Trial.Kind.TEST and not preview


def item_counts(study: Study) -> dict[int, Counts]:
    """Every test item of the study with its counters, in one prepared query."""
    db = connections[DEFAULT_DB_ALIAS]
    with prepared.cursor(db) as cursor:
        cursor.execute(_counts_sql(), [study.pk, Item.Kind.TEST])
        return {
            pk: Counts(assigned, answers, float(wins), float(total), float(squares))
            for pk, assigned, answers, wins, total, squares in cursor
        }


@functools.cache
def _counts_sql() -> str:
    items, tallies = Item._meta.db_table, ItemTally._meta.db_table
    return (
        f"SELECT i.id, i.assigned, COALESCE(t.answers, 0), COALESCE(t.a_wins, 0), "
        f"COALESCE(t.score_sum, 0), COALESCE(t.score_squares, 0) "
        f"FROM {items} i LEFT JOIN {tallies} t ON t.item_id = i.id "
        f"WHERE i.study_id = %s AND i.kind = %s"
    )


def image_scales(study: Study, counts: Mapping[int, Counts]) -> dict[int, ImageScale]:
    """Each image's scale from the counts (items from the process's catalog); an image's
    scale is refitted only when one of its counts moved (:func:`_scale`)."""
    items = catalog.items_of(study, counts)
    by_image: dict[int, list[tuple[int, int, float, int]]] = {}
    sources: dict[int, int] = {}
    for item in sorted(items.values(), key=lambda item: item.pk):
        if item.b_id is None or item.a_id == item.b_id:
            continue  # not a pair, or the bias triplet
        image = item.a.study_image_id
        found = counts[item.pk]
        by_image.setdefault(image, []).append((item.a_id, item.b_id, found.a_wins, found.answers))
        for side in (item.a, item.b):
            if side is not None and side.reconstruction_id is None:
                sources.setdefault(image, side.pk)
    anchored = study.is_triplet  # the source is level 0 of a triplet scale
    return {
        image: _scale(tuple(pairs), sources.get(image) if anchored else None, study.target_width)
        for image, pairs in by_image.items()
    }


@functools.lru_cache(maxsize=4096)
def _scale(
    pairs: tuple[tuple[int, int, float, int], ...], anchor: int | None, target: float
) -> ImageScale:
    """An image's Laplace posterior and stop, a pure function of its pairs' counts (a, b,
    a's wins, answers), so cached under them."""
    stimuli = sorted({pk for a, b, _, _ in pairs for pk in (a, b)})
    index = {pk: i for i, pk in enumerate(stimuli)}
    asked = [pair for pair in pairs if pair[3] > 0]
    posterior = adaptive.fit_counts(
        [str(pk) for pk in stimuli],
        np.array([index[a] for a, _, _, _ in asked], dtype=np.intp),
        np.array([index[b] for _, b, _, _ in asked], dtype=np.intp),
        np.array([wins for _, _, wins, _ in asked], dtype=np.float64),
        np.array([answers for _, _, _, answers in asked], dtype=np.float64),
        anchor=None if anchor is None else str(anchor),
    )
    answered = sum(answers for _, _, _, answers in pairs)
    stop = adaptive.stopping(posterior, target=target, answered=answered)
    return ImageScale(posterior, stop, stop.done)


def rank(
    *,
    study: Study,
    candidates: Sequence[Item],
    rng: random.Random | None = None,
    explore: float | None = None,
) -> list[Item]:
    """The candidates in the order a session should try them: those of images that have
    not reached the target width; first, with probability ``explore``, the least asked
    (answers and pending slots), else the highest information gain per pending slot + 1;
    the rest in the same order. Candidates of stopped images are left out."""
    # Drawn from the process's generator, so that a test's random.seed() fixes a run.
    rng = rng or random.Random(random.getrandbits(64))
    explore = EXPLORE if explore is None else explore
    counts = item_counts(study)
    if study.is_flicker:
        return _rank_ladders(study, candidates, counts, rng, explore)
    scales = image_scales(study, counts)
    live = [c for c in candidates if c.pk in counts and not _stopped(c, scales)]

    def by_gain() -> Callable[[Item], tuple[float, ...]]:
        gain = _gains(live, scales, counts)
        return lambda item: (-gain[item.pk],)

    return sampling_order(live, counts, rng, explore, by_gain)


def sampling_order(
    live: Sequence[Item],
    counts: Mapping[int, Counts],
    rng: random.Random,
    explore: float,
    priority: Callable[[], Callable[[Item], tuple[float, ...]]],
) -> list[Item]:
    """With probability ``explore`` the least asked first (answers and pending slots), else
    by ``priority()``'s key, then the least asked; ties in random order."""
    asked = {c.pk: counts[c.pk].answers + counts[c.pk].pending for c in live}
    jitter = {c.pk: rng.random() for c in live}
    if not live or rng.random() < explore:
        return sorted(live, key=lambda c: (asked[c.pk], jitter[c.pk]))
    key = priority()
    return sorted(live, key=lambda c: (*key(c), asked[c.pk], jitter[c.pk]))


def stopped(study: Study) -> bool:
    """Every image of an adaptive study has reached its target width (no pair left to ask)."""
    counts = item_counts(study)
    if study.is_flicker:
        ladders = ladder_states(study, counts)
        return bool(ladders) and all(ladder.done for ladder in ladders.values())
    scales = image_scales(study, counts)
    return bool(scales) and all(scale.done for scale in scales.values())


# -- the flicker test: QUEST on each (image, codec)'s ladder ---------------------------------


@dataclass(frozen=True)
class LadderState:
    """One (image, codec)'s ladder in a flicker study: its items by rate, the posterior of its
    visually lossless threshold (log2 bpp), and whether it reached the target width."""

    items: tuple[int, ...]  # test items, by rate
    posterior: psychometric.Posterior
    answered: int
    done: bool
    next_item: int  # the item at the level nearest the posterior mean threshold
    levels: tuple[float, ...] = ()  # the items' log2 bpp (achieved), by rate


def ladder_states(study: Study, counts: Mapping[int, Counts]) -> dict[tuple[int, str], LadderState]:
    """Each (image, codec) ladder of a flicker study from the counters: an answer is correct
    when it names the test image's side (``b``), so correct = answers − a's wins."""
    items = catalog.items_of(study, counts)
    ladders: dict[tuple[int, str], list[Item]] = {}
    for item in items.values():
        test = item.b
        if test is None or test.reconstruction is None:
            continue
        ladders.setdefault((item.a.study_image_id, test.reconstruction.codec), []).append(item)
    states = {}
    for key, members in ladders.items():
        members.sort(key=lambda item: (_rate(item), item.pk))
        rows = tuple(
            (
                round(float(np.log2(_rate(item))), 9),
                counts[item.pk].answers - counts[item.pk].a_wins,
                counts[item.pk].answers,
            )
            for item in members
        )
        states[key] = _ladder(tuple(item.pk for item in members), rows, study.target_width)
    return states


def _rate(item: Item) -> float:
    assert item.b is not None and item.b.reconstruction is not None
    return float(item.b.reconstruction.achieved_bpp)


@functools.lru_cache(maxsize=4096)
def _ladder(
    items: tuple[int, ...], rows: tuple[tuple[float, float, int], ...], target: float
) -> LadderState:
    """QUEST's posterior of one ladder, cached under its counts."""
    x = np.array([row[0] for row in rows])
    post = psychometric.posterior(
        x, np.array([row[1] for row in rows]), np.array([row[2] for row in rows])
    )
    answered = sum(row[2] for row in rows)
    done = post.half_width() <= target
    return LadderState(items, post, answered, done, items[post.nearest(x)], tuple(x.tolist()))


def _rank_ladders(
    study: Study,
    candidates: Sequence[Item],
    counts: Mapping[int, Counts],
    rng: random.Random,
    explore: float,
) -> list[Item]:
    """Flicker: each open ladder's QUEST level first, the ladders with the widest posterior
    (per pending answer + 1) first; with probability ``explore`` the least asked candidate
    of an open ladder leads instead. Candidates of ladders at their target are left out."""
    states = ladder_states(study, counts)
    ladder_of = {pk: key for key, state in states.items() for pk in state.items}
    live = [c for c in candidates if c.pk in ladder_of and not states[ladder_of[c.pk]].done]

    def by_width() -> Callable[[Item], tuple[float, ...]]:
        pending = {
            key: sum(counts[pk].pending for pk in state.items) for key, state in states.items()
        }

        def urgency(item: Item) -> tuple[float, ...]:
            key = ladder_of[item.pk]
            state = states[key]
            width = state.posterior.half_width() / (1 + pending[key])
            return (-width, 0.0 if item.pk == state.next_item else 1.0)

        return urgency

    return sampling_order(live, counts, rng, explore, by_width)


def _stopped(item: Item, scales: Mapping[int, ImageScale]) -> bool:
    scale = scales.get(item.a.study_image_id)
    return scale is not None and scale.done


def _gains(
    live: Sequence[Item], scales: Mapping[int, ImageScale], counts: Mapping[int, Counts]
) -> dict[int, float]:
    """BALD's information (bits) of one answer to each candidate, divided by one plus its
    pending answers; 0 for a pair that carries none (the bias triplet)."""
    gains = {item.pk: 0.0 for item in live}
    by_image: dict[int, list[Item]] = {}
    for item in live:
        if item.b_id is not None and item.a_id != item.b_id:
            by_image.setdefault(item.a.study_image_id, []).append(item)
    for image_id, items in by_image.items():
        posterior = scales[image_id].posterior
        index = posterior.index()
        pairs = np.array([[index[str(i.a_id)], index[str(i.b_id)]] for i in items], dtype=np.intp)
        for item, gain in zip(items, adaptive.information_gain(posterior, pairs), strict=True):
            gains[item.pk] = float(gain) / (1 + counts[item.pk].pending)
    return gains


@dataclass(frozen=True)
class Progress:
    """An adaptive study's state for the dashboard."""

    target: float
    unit: str
    images: list[ImageProgress]

    @property
    def done(self) -> bool:
        return all(image.done for image in self.images)

    @property
    def projected_left(self) -> int:
        return sum(image.projected_left for image in self.images)


@dataclass(frozen=True)
class ImageProgress:
    image: str
    answered: int
    widest: float
    projected_left: int
    done: bool


def study_progress(study: Study) -> Progress:
    """Each image's widest 95 % half-width against the target and the answers still needed
    (1/√n projection), from the counters as they are now."""
    counts = item_counts(study)
    if study.is_flicker:
        return _ladder_progress(study, counts)
    scales = image_scales(study, counts)
    names = dict(study.study_images.values_list("pk", "source__name")) if scales else {}
    images = [
        ImageProgress(
            image=str(names.get(image_id, image_id)),
            answered=scale.stop.answered,
            widest=scale.widest,
            projected_left=scale.stop.projected_left,
            done=scale.done,
        )
        for image_id, scale in sorted(scales.items())
    ]
    return Progress(study.target_width, "JND" if study.is_triplet else "JOD", images)


def _ladder_progress(study: Study, counts: Mapping[int, Counts]) -> Progress:
    """Flicker: each (image, codec)'s threshold half-width (log2 bpp) against the target."""
    states = ladder_states(study, counts)
    names = dict(study.study_images.values_list("pk", "source__name")) if states else {}
    rows = []
    for (image_id, codec), state in sorted(states.items()):
        width = state.posterior.half_width()
        left = (
            0
            if state.done or not state.answered
            else math.ceil(state.answered * ((width / study.target_width) ** 2 - 1.0))
        )
        rows.append(
            ImageProgress(
                image=f"{names.get(image_id, image_id)} · {codec}",
                answered=state.answered,
                widest=width,
                projected_left=left,
                done=state.done,
            )
        )
    return Progress(study.target_width, "log2 bpp", rows)
