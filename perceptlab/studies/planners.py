"""Pair plans for 2AFC and the choice of the next item for a session.

A planner does two things:

* ``pairs(study=..., conditions=...)``: which pairs of one image's conditions become
  2AFC items (called once, when the study's items are built);
* ``rank(session=..., candidates=..., assigned=...)``: the order in which a session should try the
  candidate items (called each time a test trial is bound). Assignment then reserves the
  first candidate whose slot it can take.

The static planners here rank least-served first with random tie-breaking. An adaptive
planner (a later issue) overrides ``rank`` — e.g. most informative pair for the current
Bradley–Terry fit — and registers under its own slug; assignment does not change.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

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
        shuffled = list(candidates)
        random.shuffle(shuffled)
        return sorted(shuffled, key=lambda item: assigned[item.pk])


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
        out = []
        for a, b in itertools.combinations(conditions, 2):
            low, high = sorted((_bpp(a), _bpp(b)))
            if high <= low * study.pair_band:
                out.append(_ordered(a, b))
        return out


class BudgetPairs(Planner):
    """A random sample of ``study.pair_budget`` pairs per image, seeded by the study."""

    slug = "budget"

    def pairs(
        self, *, study: Study, conditions: Sequence[Stimulus]
    ) -> list[tuple[Stimulus, Stimulus]]:
        every = [_ordered(a, b) for a, b in itertools.combinations(conditions, 2)]
        every.sort(key=lambda pair: (pair[0].pk, pair[1].pk))
        if len(every) <= study.pair_budget:
            return every
        image = conditions[0].study_image_id if conditions else 0
        rng = random.Random(f"{study.seed}:{image}")
        return sorted(rng.sample(every, study.pair_budget), key=lambda p: (p[0].pk, p[1].pk))


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


def planner_for(study: Study) -> Planner:
    if not study.is_pairwise:
        return SingleStimulus()
    try:
        return PLANNERS[study.pair_plan]()
    except KeyError:
        raise ValueError(
            f"unknown pair plan {study.pair_plan!r}; valid: {sorted(PLANNERS)}"
        ) from None
