"""Pair plans for 2AFC and the choice of the next item for a session.

A planner does two things:

* ``pairs(study=..., conditions=...)``: which pairs of one image's conditions become
  2AFC items (called once, when the study's items are built);
* ``rank(session=..., candidates=..., assigned=...)``: the order in which a session should try the
  candidate items (called each time a test trial is bound). Assignment then reserves the
  first candidate whose slot it can take.

The static planners here rank least-served first with random tie-breaking. A study with
``sampling = "adaptive"`` gets :class:`Adaptive` around its pair planner: the same pairs,
ranked by expected information gain on each image's current Thurstone scale, and none of an
image that reached the target width (:mod:`perceptlab.studies.adaptive`); an adaptive ACR
or DCR study gets :class:`Guided`, metric guidance (:mod:`perceptlab.studies.guidance`);
assignment does not change.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from perceptlab.studies import adaptive, guidance

if TYPE_CHECKING:
    from perceptlab.studies.models import Item, Session, Stimulus, Study


class Planner:
    slug: ClassVar[str] = ""

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        raise NotImplementedError

    def rank(
        self, *, session: Session, candidates: Sequence[Item], assigned: Mapping[int, int]
    ) -> list[Item]:
        """Least-served first; ties in random order (so concurrent raters spread out).

        ``assigned`` holds each candidate's slots taken, as the database has them now
        (the candidates are a process's shared copies; their own ``assigned`` is stale).
        """
        by_id = {item.pk: item for item in candidates}
        return [by_id[pk] for pk in least_served({pk: assigned[pk] for pk in by_id})]


def least_served(assigned: Mapping[int, int]) -> Iterator[int]:
    """The ids of ``assigned`` (id → slots taken) least-served first, ties in random
    order; lazily: a caller that stops at the first id it can use shuffles only the
    least-served ids, and sorts nothing but the distinct counts."""
    buckets: dict[int, list[int]] = {}
    for pk, taken in assigned.items():
        buckets.setdefault(taken, []).append(pk)
    for taken in sorted(buckets):
        ids = buckets[taken]
        random.shuffle(ids)
        yield from ids


def _ordered(a: Stimulus, b: Stimulus) -> tuple[Stimulus, Stimulus]:
    return (a, b) if a.pk < b.pk else (b, a)


def _bpp(stimulus: Stimulus) -> float:
    assert stimulus.reconstruction is not None, "pairs are made of reconstructions"
    return stimulus.reconstruction.achieved_bpp


class AllPairs(Planner):
    """Every pair of the image's conditions: n(n−1)/2 items per image."""

    slug = "all"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        return [_ordered(a, b) for a, b in itertools.combinations(conditions, 2)]


class BandPairs(Planner):
    """Pairs whose achieved bpp differ by at most the factor ``study.pair_band``.

    Comparing 0.1 bpp against 1.0 bpp tells little; the HiFiC study compared codecs at
    similar rates.
    """

    slug = "band"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        pairs = itertools.combinations(conditions, 2)
        return [_ordered(a, b) for a, b in pairs if _within_band(study, a, b)]


class BudgetPairs(Planner):
    """A random sample of ``study.pair_budget`` pairs per image, seeded by the study."""

    slug = "budget"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        every = [_ordered(a, b) for a, b in itertools.combinations(conditions, 2)]
        return _budget(study, conditions, every)


def _budget(
    study: Study, conditions: Sequence[Stimulus], every: list[tuple[Stimulus, Stimulus]]
) -> list[tuple[Stimulus, Stimulus]]:
    """``study.pair_budget`` of the pairs, sampled with a seed of the study and the image."""
    every = sorted(every, key=lambda pair: (pair[0].pk, pair[1].pk))
    if len(every) <= study.pair_budget:
        return every
    image = conditions[0].study_image_id if conditions else 0
    rng = random.Random(f"{study.seed}:{image}")
    return sorted(rng.sample(every, study.pair_budget), key=lambda p: (p[0].pk, p[1].pk))


class TripletPairs(Planner):
    """Triplet studies (JPEG AIC-3): the two sides of each triplet, the pivot being the
    image's original.

    ``conditions`` hold the image's hidden original (level 0, the source shown as a side)
    and its reconstructions. The design follows the SDR25 test (Jenadeleh et al. 2025,
    arXiv:2504.06301):

    * **same-codec triplets**: all pairs of one codec's levels, the source included (SDR25
      BTC: all 55 pairs of 11 levels per source); each codec gets its own JND scale;
    * **cross-codec triplets**: the two codecs' conditions at the same target bpp, for every
      pair of codecs and every target, which tie the codecs' scales onto one scale.

    ``study.pair_plan`` narrows that set as for 2AFC: ``band`` keeps pairs whose bpp differ
    by at most ``pair_band`` (the source pairs only with each codec's highest-rate level);
    ``budget`` samples ``pair_budget`` pairs per image, seeded by the study.
    """

    slug = "triplet"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        sources = [c for c in conditions if c.reconstruction is None]
        coded = [c for c in conditions if c.reconstruction is not None]
        by_codec: dict[str, list[Stimulus]] = {}
        for stimulus in coded:
            assert stimulus.reconstruction is not None
            by_codec.setdefault(stimulus.reconstruction.codec, []).append(stimulus)
        band = study.pair_plan == "band"
        out: set[tuple[Stimulus, Stimulus]] = set()
        for levels in by_codec.values():
            paired = [max(levels, key=_bpp)] if band else levels
            out.update(_ordered(source, c) for source in sources for c in paired)
            for a, b in itertools.combinations(levels, 2):
                if not band or _within_band(study, a, b):
                    out.add(_ordered(a, b))
        for one, other in itertools.combinations(sorted(by_codec), 2):
            at = {s.target(): s for s in by_codec[other]}
            for mine in by_codec[one]:
                partner = at.get(mine.target())
                if partner is not None and (not band or _within_band(study, mine, partner)):
                    out.add(_ordered(mine, partner))
        if study.pair_plan == "budget":
            return _budget(study, conditions, list(out))
        return sorted(out, key=lambda pair: (pair[0].pk, pair[1].pk))


class FlickerPairs(Planner):
    """The flicker test (JPEG AIC-2): one item per condition, ``a`` the image's hidden original
    (shown still) and ``b`` the condition (alternating with the original). ``conditions``
    hold the hidden original (no reconstruction) and the reconstructions, as for triplets;
    the pair plan does not apply (each condition is a level of its codec's ladder)."""

    slug = "flicker"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        sources = [c for c in conditions if c.reconstruction is None]
        coded = sorted((c for c in conditions if c.reconstruction is not None), key=_bpp)
        return [(source, c) for source in sources for c in coded]


def _within_band(study: Study, a: Stimulus, b: Stimulus) -> bool:
    low, high = sorted((_bpp(a), _bpp(b)))
    return high <= low * study.pair_band


class SingleStimulus(Planner):
    """ACR and DCR: an item is one stimulus, there are no pairs."""

    slug = "single"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        return []


PLANNERS: dict[str, type[Planner]] = {}


def register(planner: type[Planner]) -> type[Planner]:
    if planner.slug in PLANNERS:
        raise ValueError(f"planner {planner.slug!r} is already registered")
    PLANNERS[planner.slug] = planner
    return planner


for _planner in (AllPairs, BandPairs, BudgetPairs, SingleStimulus):
    register(_planner)


class Adaptive(Planner):
    """Adaptive sampling over another planner's pairs (``Study.sampling``)."""

    slug = "adaptive"

    def __init__(self, pairs: Planner) -> None:
        self.inner = pairs

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        return self.inner.pairs(study=study, conditions=conditions)

    def rank(
        self, *, session: Session, candidates: Sequence[Item], assigned: Mapping[int, int]
    ) -> list[Item]:
        """The most informative pairs first (half the time the least asked); none of an
        image at its target width. ``assigned`` is read again with the answers."""
        return adaptive.rank(study=session.study, candidates=candidates)


class Guided(SingleStimulus):
    """Metric-guided ACR and DCR (``Study.sampling``): the stimulus whose score is least
    certain first (:mod:`perceptlab.studies.guidance`)."""

    slug = "guided"

    def rank(
        self, *, session: Session, candidates: Sequence[Item], assigned: Mapping[int, int]
    ) -> list[Item]:
        """Every stimulus to its minimum first, then the widest estimates (a share of them
        the least rated); none that stopped. ``assigned`` is read again with the ratings."""
        return guidance.rank(study=session.study, candidates=candidates)


def planner_for(study: Study) -> Planner:
    if not study.is_pairwise:
        return Guided() if study.is_guided else SingleStimulus()
    if study.pair_plan not in PLANNERS:
        raise ValueError(f"unknown pair plan {study.pair_plan!r}; valid: {sorted(PLANNERS)}")
    # a triplet design reads the plan itself (its pairs include the source and cross-codec ones)
    if study.is_flicker:
        pairs: Planner = FlickerPairs()
    elif study.is_triplet:
        pairs = TripletPairs()
    else:
        pairs = PLANNERS[study.pair_plan]()
    return Adaptive(pairs) if study.is_adaptive else pairs
