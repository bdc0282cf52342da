"""Benchmark: rater-level (cluster) bootstrap of the MOS, PerceptLab vs scipy.stats.bootstrap.

Builds a seeded synthetic ACR study of 100,000 ratings (200 raters × 500 stimuli, integer
scores 1–5 = round(quality + rater bias + rater-specific noise), clipped), then times:

1. PerceptLab's ``mos()`` — MOS, SD, normal and t intervals and the rater bootstrap with
   10,000 resamples — once with percentile and once with BCa intervals (goal ≤ 2 s each);
2. ``scipy.stats.bootstrap`` resampling the same raters (data = rater indices, a vectorised
   statistic that gathers each drawn rater's per-stimulus sums and counts, ``batch`` resamples
   at a time to bound memory) for the same statistic and the same intervals. By default scipy
   also runs 10,000 resamples; with ``--scipy-resamples N`` (for large studies) its time is
   scaled linearly to 10,000 and the output says so.

Each time is the best of ``--repeat`` runs (the machine is shared). It also checks that both
give the same replicates for the same seed.

    .venv/bin/python bench/bootstrap.py [--raters 200] [--stimuli 500] [--scipy-resamples N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
RESAMPLES = 10_000
SEED = 0
GOAL_SECONDS = 2.0


def synthetic_ratings(raters: int, stimuli: int, seed: int = 7) -> pd.DataFrame:
    """ACR 1–5: quality ~ U(1.2, 4.8), bias ~ N(0, 0.35), noise SD ~ U(0.3, 0.9) per rater."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(1.2, 4.8, stimuli)
    bias = rng.normal(0.0, 0.35, raters)
    noise = rng.uniform(0.3, 0.9, raters)
    raw = quality[None, :] + bias[:, None] + noise[:, None] * rng.normal(size=(raters, stimuli))
    scores = np.clip(np.rint(raw), 1, 5)
    return pd.DataFrame(
        {
            "rater": np.repeat([f"r{i:03}" for i in range(raters)], stimuli),
            "stimulus": np.tile([f"s{j:03}" for j in range(stimuli)], raters),
            "score": scores.ravel(),
        }
    )


def scipy_statistic(frame: pd.DataFrame) -> Callable[..., np.ndarray]:
    """Cluster MOS of every stimulus for resampled rater indices, vectorised for scipy."""
    sums = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="sum")
    counts = frame.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="count")
    s, n = sums.fillna(0).to_numpy(), counts.fillna(0).to_numpy()

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        drawn = np.asarray(indices, dtype=np.intp)
        return s[:, drawn].sum(axis=-1) / n[:, drawn].sum(axis=-1)  # (stimuli, *batch)

    return statistic


def best_of(repeat: int, run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Shortest wall time of ``repeat`` runs, and the last run's replicates."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        replicates = run()
        times.append(time.perf_counter() - started)
    return min(times), replicates


def time_ours(frame: pd.DataFrame, method: str, repeat: int) -> tuple[float, np.ndarray]:
    from perceptlab.evaluation.stats.mos import mos

    def run() -> np.ndarray:
        result = mos(frame, n_resamples=RESAMPLES, seed=SEED, bootstrap=method)  # type: ignore[arg-type]
        return result.replicates

    return best_of(repeat, run)


def time_scipy(
    frame: pd.DataFrame, method: str, resamples: int, batch: int, repeat: int
) -> tuple[float, np.ndarray]:
    statistic = scipy_statistic(frame)  # built once, outside the timing, like our input checks
    raters = np.arange(frame["rater"].nunique())

    def run() -> np.ndarray:
        result = stats.bootstrap(
            (raters,),
            statistic,
            n_resamples=resamples,
            batch=batch,
            method=method,
            vectorized=True,
            rng=np.random.default_rng(SEED),
        )
        return np.asarray(result.bootstrap_distribution)

    return best_of(repeat, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=200)
    parser.add_argument("--stimuli", type=int, default=500)
    parser.add_argument("--scipy-resamples", type=int, default=RESAMPLES)
    parser.add_argument("--batch", type=int, default=50, help="scipy resamples per batch")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best taken)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    frame = synthetic_ratings(args.raters, args.stimuli)
    print(
        f"data: {len(frame):,} ratings ({args.raters} raters × {args.stimuli} stimuli, ACR 1–5), "
        f"{RESAMPLES:,} rater resamples"
    )
    scale = RESAMPLES / args.scipy_resamples
    for method in ("percentile", "bca"):
        ours, replicates = time_ours(frame, method, args.repeat)
        theirs, distribution = time_scipy(
            frame, method, args.scipy_resamples, args.batch, args.repeat
        )
        same = np.array_equal(replicates[:, : args.scipy_resamples], distribution)
        scaled = theirs * scale
        note = "" if scale == 1 else f" ({args.scipy_resamples:,} resamples × {scale:g})"
        print(
            f"{method:10}  PerceptLab {ours:6.2f} s (goal ≤ {GOAL_SECONDS:.0f} s: "
            f"{'met' if ours <= GOAL_SECONDS else 'MISSED'})  scipy {scaled:7.2f} s{note}  "
            f"ratio ours/scipy {ours / scaled:.3f}  same replicates: {same}"
        )


if __name__ == "__main__":
    main()
