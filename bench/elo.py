"""Benchmark: online Elo over 10,000 random orderings of the HiFiC user study (5,218 trials).

Times, on ``pairwise/hific_userstudy.csv`` of :mod:`perceptlab.lib.datasets` (or ``--data``;
undecided trials = ½):

1. PerceptLab's ``online_elo`` (all orderings advance one trial per step as numpy operations,
   chunks of orderings on threads), 10,000 orderings, with the default thread count and with one
   thread, plus where the time goes (drawing the permutations vs the Elo updates);
2. a plain Python loop (a dict of ratings, a for-loop over the trials) doing the same
   computation on the first ``--loop-orderings`` orderings (default 100), timed and scaled
   linearly to 10,000 (the output says so).

Each PerceptLab time is the best of ``--repeat`` runs (the machine is shared). It checks that
both give the same ratings on the shared orderings, then prints the times, the ratio and the
goals (≤ 1 s, ≥ 50× the loop).

    .venv/bin/python bench/elo.py [--repeat 3] [--loop-orderings 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from perceptlab.evaluation.stats.pairwise import TrialGroup

ROOT = Path(__file__).resolve().parents[1]
ORDERINGS = 10_000
SEED = 0
K, START, SCALE = 30.0, 2000.0, 400.0
GOAL_SECONDS = 1.0
GOAL_RATIO = 50.0


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def python_loop(
    trials: list[tuple[str, str, float]], orders: list[list[int]], items: list[str]
) -> list[dict[str, float]]:
    """The textbook implementation: one dict of ratings per ordering, one update per trial."""
    finals = []
    for order in orders:
        ratings = dict.fromkeys(items, START)
        for t in order:
            a, b, s = trials[t]
            expected = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / SCALE))
            ratings[a] += K * (s - expected)
            ratings[b] -= K * (s - expected)
        finals.append(ratings)
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="default: the HiFiC user study")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop-orderings", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from perceptlab.evaluation.stats.pairwise import online_elo, trial_groups
    from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv
    from perceptlab.lib.datasets import DatasetError, dataset_path

    try:
        data = args.data or dataset_path("pairwise", "hific_userstudy.csv")
    except DatasetError as error:
        sys.exit(str(error))
    frame = read_pairwise_csv(data, undecided="half")
    (group,), _ = trial_groups(frame)
    print(
        f"{data.name}: {len(group.ia)} trials, {len(group.items)} items, "
        f"{int((group.score == 0.5).sum())} undecided (0.5); {ORDERINGS} orderings, "
        f"K={K:g}, start {START:g}, scale {SCALE:g}; {os.cpu_count()} CPUs"
    )

    threads = os.cpu_count() or 1
    ours = best_of(args.repeat, lambda: online_elo(frame, n_orderings=ORDERINGS, seed=SEED))
    ours_1 = best_of(
        args.repeat, lambda: online_elo(frame, n_orderings=ORDERINGS, seed=SEED, workers=1)
    )
    print(f"online_elo, {threads} threads (default): {ours:.3f} s")
    print(f"online_elo, 1 thread:                  {ours_1:.3f} s")
    breakdown(group, args.repeat)

    loop, diff = against_loop(group, args.loop_orderings)
    print(
        f"plain Python loop: {args.loop_orderings} orderings timed, scaled linearly to "
        f"{ORDERINGS}: {loop:.1f} s"
    )
    print(
        f"same {args.loop_orderings} orderings, max |PerceptLab − loop| = {diff:.2e} Elo "
        f"({'OK' if diff < 1e-6 else 'MISMATCH'})"
    )

    ratio = loop / ours
    print(
        f"\nratio loop / online_elo: {ratio:.0f}× (goal ≥ {GOAL_RATIO:.0f}×: "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'})"
    )
    print(
        f"online_elo time: {ours:.3f} s (goal ≤ {GOAL_SECONDS:.0f} s: "
        f"{'met' if ours <= GOAL_SECONDS else 'NOT met'})"
    )


def against_loop(group: TrialGroup, shared: int) -> tuple[float, float]:
    """Loop time scaled to 10,000 orderings, and its largest difference from PerceptLab's
    ratings on the first ``shared`` of the orderings ``online_elo`` uses."""
    from perceptlab.evaluation.stats import elo

    items = [str(i) for i in group.items]
    full = elo.shuffled_elo(
        group.ia, group.ib, group.score, len(items),
        n_orderings=ORDERINGS, k=K, start=START, scale=SCALE, seed=(SEED, 0),
    )  # fmt: skip
    orders = elo.elo_orderings(len(group.ia), n_orderings=shared, seed=(SEED, 0)).tolist()
    trials = [
        (items[a], items[b], s) for a, b, s in zip(group.ia, group.ib, group.score, strict=True)
    ]
    began = time.perf_counter()
    finals = python_loop(trials, orders, items)
    loop = (time.perf_counter() - began) * ORDERINGS / shared
    reference = np.array([[f[i] for i in items] for f in finals])
    return loop, float(np.max(np.abs(full[:shared] - reference)))


def breakdown(group: TrialGroup, repeat: int) -> None:
    """Single-thread split: drawing the permutations vs running the Elo updates."""
    from perceptlab.evaluation.stats import elo as engine

    a, b, bias = engine._oriented(group.ia, group.ib, group.score, k=K, scale=SCALE)
    chunks = engine._chunk_seeds(ORDERINGS, len(a), (SEED, 0))
    half_kappa = K * np.log(10.0) / (4.0 * SCALE)
    draw = best_of(repeat, lambda: [engine._permutations(len(a), c, s) for c, s in chunks])
    orders = [engine._permutations(len(a), c, s) for c, s in chunks]
    n_items = len(group.items)
    update = best_of(
        repeat, lambda: [engine._advance(a, b, bias, n_items, o, half_kappa) for o in orders]
    )
    print(f"  of which (1 thread): permutations {draw:.3f} s, Elo updates {update:.3f} s")


if __name__ == "__main__":
    main()
