"""Benchmark: the adaptive planner against random pairs, replaying real human responses.

    .venv/bin/python bench/adaptive.py [--seeds 20] [--budget 990] [--source 2] [--explore 0.3]
        [--html adaptive.html]

Two replays, each drawing real answers without replacement as the oracle:

* **SDR25 triplets** (JPEG AIC-3's JPEG AI test, the ``aic3`` dataset): one source, JPEG AI's
  11 levels (0 = the source, held at 0), the 55 same-codec BTC questions, reliable batches only
  (``stats.triplets.filter_reliable_batches``); a requested pair gets one of the real answers
  to that triplet question (left / right / not sure).
* **HiFiC user study** (Mentzer et al. 2020, the ``pairwise`` dataset): 9 methods, 36 pairs,
  5,218 2AFC trials by 20 raters (2 trials that showed one method on both sides are left out);
  a requested pair gets one of its real trials ("could not decide" trials count ½).

``--simulate`` adds, for each, answers drawn from Case V at its full-data scale (the model
holding exactly). For each, the reference is the scale fitted on every response (the same
Thurstone model, σ = 1.4826, weak N(0, 3²) prior; 2AFC scales centred, a triplet scale
anchored at the source).
Three samplers ask ``--budget`` questions, ``--seeds`` times each: random pairs, the planner
(expected information gain with ``--explore`` of the questions spent on the least-compared
pairs; ``perceptlab.lib.adaptive``), and information gain alone (ASAP-like: no
exploration). Printed per sampler, every 10 % of the budget: the RMS error against the
reference over the items (mean over seeds) and the mean 95 % half-width the sampler's own
posterior claims (2AFC: of the centred values); then the ratio the issue asks for: the
budget at which the planner's mean error first reaches random's error at the full budget,
over the full budget (goal ≤ 0.5; inf when it never does), and beside it the best any
design can do: the share of random's trials the locally A-optimal allocation over the same
pairs needs at the full-data scale (``lib.adaptive.optimal_allocation``), a bound no planner
beats in expectation. ``--html`` writes the curves
(plotly). Last, the time to choose the next pair at 50 and 200 conditions per image.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from perceptlab.lib import adaptive  # noqa: E402
from perceptlab.lib.datasets import dataset_path  # noqa: E402

SAMPLERS = ("random", "planner", "gain only")


@dataclass(frozen=True)
class Replay:
    name: str
    items: tuple[str, ...]
    anchor: str | None
    pools: dict[tuple[int, int], np.ndarray]  # (i < j) → outcomes for i, shuffled per seed
    reference: np.ndarray


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=990)
    parser.add_argument("--source", default="2", help="SDR25 source image (2, 6, 7, 9, 10)")
    parser.add_argument("--explore", type=float, default=adaptive.DEFAULT_EXPLORE)
    parser.add_argument("--html", type=Path, default=None)
    parser.add_argument(
        "--replay", choices=("both", "sdr25", "hific"), default="both", help="which replay(s)"
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="also answer from each replay's Case V fit (the model holding exactly)",
    )
    return parser.parse_args()


def _replay(name: str, frame: pd.DataFrame, items: list[str], anchor: str | None) -> Replay:
    index = {item: i for i, item in enumerate(items)}
    i = frame["a"].map(index).to_numpy()
    j = frame["b"].map(index).to_numpy()
    outcome = frame["outcome"].to_numpy(dtype=np.float64)
    low, high = np.minimum(i, j), np.maximum(i, j)
    for_low = np.where(i < j, outcome, 1.0 - outcome)
    pools = {
        (int(lo), int(hi)): for_low[(low == lo) & (high == hi)]
        for lo, hi in sorted(set(zip(low.tolist(), high.tolist(), strict=True)))
    }
    reference = adaptive.fit_posterior(frame, items, anchor=anchor).mean
    if anchor is None:
        reference = reference - reference.mean()
    return Replay(name, tuple(items), anchor, pools, reference)


def sdr25(source: str) -> Replay:
    from perceptlab.evaluation.stats import triplets
    from perceptlab.evaluation.stats.triplet_io import read_triplet_files

    frame = read_triplet_files(
        [dataset_path("aic3", "JPEG_AIC_SDR_BTC_JPEG_AI_responses_2025.02.28_v1.csv")]
    )
    frame = triplets.filter_reliable_batches(frame).kept
    same = frame.loc[
        (frame["source"] == source)
        & (frame["role"] == "scale")
        & ((frame["codec_left"] == "6") | (frame["level_left"] == 0))
        & ((frame["codec_right"] == "6") | (frame["level_right"] == 0))
    ]
    comparisons = pd.DataFrame(
        {
            "a": _side(same["level_left"]),
            "b": _side(same["level_right"]),
            "outcome": same["response"].map({"left": 1.0, "not sure": 0.5, "right": 0.0}),
        }
    )
    items = ["source", *[f"L{level}" for level in range(1, 11)]]
    return _replay(f"SDR25 BTC, source {source}, JPEG AI levels 0–10", comparisons, items, "source")


def _side(level: pd.Series) -> np.ndarray:
    """A triplet side as an item: the source (level 0, which SDR25 labels codec 0), or JPEG
    AI's level ℓ as ``Lℓ``."""
    return np.where(level == 0, "source", "L" + level.astype(str))


def hific() -> Replay:
    raw = pd.read_csv(dataset_path("pairwise", "hific_userstudy.csv"))
    raw = raw.loc[raw["greater"] != raw["lesser"]]  # 2 trials showed one method twice
    comparisons = pd.DataFrame(
        {
            "a": raw["greater"].astype(str),
            "b": raw["lesser"].astype(str),
            "outcome": np.where(raw["random_choice"] == 1, 0.5, 1.0),
        }
    )
    items = sorted(set(comparisons["a"]) | set(comparisons["b"]))
    return _replay("HiFiC user study, 9 methods", comparisons, items, None)


def simulated(replay: Replay, per_pair: int = 2000) -> Replay:
    """The same items and design with answers drawn from Case V at ``replay``'s full-data
    scale (no "not sure"): where the model holds exactly, what adaptivity can gain."""
    rng = np.random.default_rng(12345)
    scale = replay.reference
    pools = {
        (i, j): (
            rng.random(per_pair) < adaptive.ndtr((scale[i] - scale[j]) / adaptive.SIGMA)
        ).astype(np.float64)
        for i, j in replay.pools
    }
    return Replay(
        f"{replay.name}, simulated from its Case V fit", replay.items, replay.anchor, pools, scale
    )


def run(replay: Replay, sampler: str, budget: int, seed: int, explore: float) -> np.ndarray:
    """(checkpoints, 2): RMS error and mean 95 % half-width at every 10 % of ``budget``."""
    rng = np.random.default_rng(seed)
    pools = {pair: rng.permutation(outcomes) for pair, outcomes in replay.pools.items()}
    used = {pair: 0 for pair in pools}
    pairs = np.array(sorted(pools), dtype=np.intp)
    asked_a: list[int] = []
    asked_b: list[int] = []
    outcomes: list[float] = []
    checkpoints = {round(budget * k / 10) for k in range(1, 11)}
    out = []
    posterior = adaptive.fit_posterior(
        _frame([], [], [], replay), replay.items, anchor=replay.anchor
    )
    for step in range(1, budget + 1):
        left = np.array([used[tuple(p)] < len(pools[tuple(p)]) for p in pairs])
        candidates = pairs[left]
        compared = np.array([used[tuple(p)] for p in candidates], dtype=np.float64)
        if sampler == "random":
            row = int(rng.integers(len(candidates)))
        else:
            share = explore if sampler == "planner" else 0.0
            row = adaptive.choose(posterior, candidates, compared, rng, explore=share)
        pair = tuple(int(x) for x in candidates[row])
        outcomes.append(float(pools[pair][used[pair]]))
        used[pair] += 1
        asked_a.append(pair[0])
        asked_b.append(pair[1])
        if sampler != "random" or step in checkpoints:
            frame = _frame(asked_a, asked_b, outcomes, replay)
            posterior = adaptive.fit_posterior(
                frame, replay.items, anchor=replay.anchor, start=posterior.mean
            )
        if step in checkpoints:
            estimate = posterior.mean - (posterior.mean.mean() if replay.anchor is None else 0.0)
            free = np.array([item != replay.anchor for item in replay.items])
            error = float(np.sqrt(np.mean((estimate - replay.reference)[free] ** 2)))
            cov = posterior.cov
            if replay.anchor is None:  # a 2AFC scale is relative: the spread of centred values
                centre = np.eye(len(replay.items)) - 1.0 / len(replay.items)
                cov = centre @ cov @ centre.T
            width = float(np.mean(1.96 * np.sqrt(np.clip(np.diag(cov), 0, None))[free]))
            out.append((error, width))
    return np.array(out)


def _frame(a: list[int], b: list[int], outcomes: list[float], replay: Replay) -> pd.DataFrame:
    items = np.array(replay.items, dtype=object)
    return pd.DataFrame(
        {
            "a": items[np.array(a, dtype=np.intp)],
            "b": items[np.array(b, dtype=np.intp)],
            "outcome": outcomes,
        }
    )


def _optimal_share(replay: Replay) -> adaptive.Allocation:
    """The locally A-optimal design over the replay's pairs at its full-data scale
    (``lib.adaptive.optimal_allocation``): a bound on any planner's share of random's trials
    (asymptotic, variance only: what learning the scale as it goes can at best approach)."""
    pairs = np.array(sorted(replay.pools), dtype=np.intp)
    anchor = replay.items.index(replay.anchor) if replay.anchor is not None else None
    return adaptive.optimal_allocation(np.asarray(replay.reference), pairs, anchor=anchor)


def ratio(planner: np.ndarray, random: np.ndarray, budget: int) -> float:
    """Budget share at which the planner's mean error first reaches random's at the full
    budget (linear between checkpoints); inf when it never does."""
    target = random[-1]
    steps = np.array([budget * k / 10 for k in range(1, 11)])
    below = np.flatnonzero(planner <= target)
    if not len(below):
        return math.inf
    k = below[0]
    if k == 0:
        return steps[0] / budget
    x0, x1, y0, y1 = steps[k - 1], steps[k], planner[k - 1], planner[k]
    return float((x0 + (y0 - target) / (y0 - y1) * (x1 - x0)) / budget)


def main() -> int:
    args = parse_args()
    figures = []
    chosen = {"both": ("sdr25", "hific"), "sdr25": ("sdr25",), "hific": ("hific",)}[args.replay]
    replays = [sdr25(args.source) if name == "sdr25" else hific() for name in chosen]
    if args.simulate:
        replays += [simulated(replay) for replay in replays]
    for replay in replays:
        started = time.process_time()
        results = {
            sampler: np.stack(
                [
                    run(replay, sampler, args.budget, seed, args.explore)
                    for seed in range(args.seeds)
                ]
            )
            for sampler in SAMPLERS
        }
        print(
            f"\n{replay.name}: {sum(len(p) for p in replay.pools.values()):,} responses, "
            f"{len(replay.pools)} pairs; {args.seeds} seeds, budget {args.budget}, "
            f"planner exploration {args.explore:g}"
        )
        header = "trials  " + "  ".join(f"{s:>22}" for s in SAMPLERS)
        print(header + "\n        " + "  ".join(f"{'RMS error  ±95% width':>22}" for _ in SAMPLERS))
        for k in range(10):
            cells = [
                f"{results[s][:, k, 0].mean():10.3f}  {results[s][:, k, 1].mean():10.3f}"
                for s in SAMPLERS
            ]
            print(
                f"{round(args.budget * (k + 1) / 10):6d}  " + "  ".join(f"{c:>22}" for c in cells)
            )
        mean = {s: results[s][:, :, 0].mean(axis=0) for s in SAMPLERS}
        share = ratio(mean["planner"], mean["random"], args.budget)
        gain_share = ratio(mean["gain only"], mean["random"], args.budget)
        print(
            f"trials to match random's error at {args.budget} ÷ {args.budget}: "
            f"planner {share:.2f}, gain only {gain_share:.2f}  (goal ≤ 0.5)"
        )
        bound = _optimal_share(replay)
        print(
            f"the best any design can do: the A-optimal allocation at the full-data scale needs "
            f"{bound.share:.2f} of random's trials for its error (Kiefer's check "
            f"{bound.equivalence:.4f}, {int((bound.weights > 1e-3).sum())} of "
            f"{len(bound.weights)} pairs used)"
        )
        print(f"({time.process_time() - started:.0f} s CPU)")
        figures.append((replay, mean))
    if args.html:
        _html(figures, args)
    _timing()
    return 0


def _timing() -> None:
    """Time to choose the next pair (posterior fitted from scratch, information gain over every
    pair, choice) at 50 and 200 conditions per image, 10 comparisons per condition so far:
    median of 20 (goals: ≤ 20 ms and ≤ 50 ms)."""
    print()
    for size, goal in ((50, 20), (200, 50)):
        rng = np.random.default_rng(size)
        items = [f"c{i}" for i in range(size)]
        truth = np.sort(rng.uniform(0, 6, size))
        a, b = rng.integers(size, size=(2, 10 * size))
        keep = a != b
        p = adaptive.ndtr((truth[a[keep]] - truth[b[keep]]) / adaptive.SIGMA)
        comparisons = pd.DataFrame(
            {
                "a": np.array(items)[a[keep]],
                "b": np.array(items)[b[keep]],
                "outcome": (rng.random(keep.sum()) < p).astype(float),
            }
        )
        upper = np.triu_indices(size, 1)
        candidates = np.stack(upper, axis=1).astype(np.intp)
        compared = np.zeros(len(candidates))
        times = []
        for _ in range(20):
            started = time.perf_counter()
            posterior = adaptive.fit_posterior(comparisons, items)
            adaptive.choose(posterior, candidates, compared, rng, explore=0.0)
            times.append(time.perf_counter() - started)
        median = 1000 * float(np.median(times))
        print(
            f"next-pair choice, {size} conditions, {len(candidates):,} candidate pairs, "
            f"{len(comparisons):,} comparisons so far: {median:.1f} ms (goal ≤ {goal} ms)"
        )


def _html(figures: list[tuple[Replay, dict[str, np.ndarray]]], args: argparse.Namespace) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(figures), subplot_titles=[r.name for r, _ in figures])
    steps = [round(args.budget * k / 10) for k in range(1, 11)]
    for column, (_, mean) in enumerate(figures, 1):
        for sampler, values in mean.items():
            figure.add_trace(
                go.Scatter(x=steps, y=values, name=sampler, showlegend=column == 1),
                row=1,
                col=column,
            )
    figure.update_yaxes(title_text="RMS error against the full-data scale")
    figure.update_xaxes(title_text="trials")
    figure.write_html(args.html, include_plotlyjs=True)
    print(f"curves: {args.html}")


if __name__ == "__main__":
    raise SystemExit(main())
