"""Online Elo over random orderings of the trials: the numeric engine behind ``online_elo``.

The model is the CLIC one (google-research ``mucped22/scripts/elo``, "the same ELO computation
used in CLIC"): ratings start at ``start``; a trial between a and b with score S ∈ {1, ½, 0}
(a preferred, undecided, b preferred) has expected score E = 1 / (1 + 10^((R_b − R_a)/scale))
and updates R_a ← R_a + K (S − E), R_b ← R_b − K (S − E). The result depends on the order of
the trials, so it is averaged over many uniformly random permutations of them.

Speed. All orderings advance one trial per step as numpy operations on one flat array of ratings
(item-major, one column per ordering), so the Python loop runs once per trial, not once per
trial and ordering. Choices, measured on the 2-core development VM for 10,000 orderings of the
5,218 HiFiC trials (see ``bench/elo.py``):

* ratings are kept in the unit u = (R − start)·ln 10 / (2·scale), where
  E = (1 + tanh(u_a − u_b)) / 2, so a step is one gather, ``tanh``, four arithmetic passes and
  one scatter (``exp``/``expit`` forms need more passes; scipy's ``expit`` is 6× slower than
  numpy's vectorised ``tanh``);
* the indices of a step's a- and b-ratings sit side by side in one array, so a step gathers and
  scatters once (``take(..., mode="clip")``: the default mode buffers ``out``); they are built
  for :data:`STEP_BLOCK` steps at a time, which keeps the transposition from "ordering × trial"
  to "trial × ordering" in cache (0.14 s instead of 0.5 s for all blocks);
* float32 ratings were not faster (the gathers dominate) and lose the exact match with a
  float64 loop;
* orderings are processed in chunks of :data:`ORDERING_CHUNK`, each with its own random stream
  (``SeedSequence.spawn``), so chunks can run on threads (numpy releases the GIL in these
  loops) and the numbers do not depend on the number of threads; larger chunks mean fewer
  Python-level steps (5,000: 0.73–0.87 s on 2 threads, 2,500: about 1.0 s).

Permutations are drawn with ``Generator.permuted`` on pointer-sized integers (Fisher–Yates,
exactly uniform): about 0.7 s of one core for 52 million entries, more than the Elo updates
(about 0.4–0.55 s). Sorting random keys (``argsort``: 2.8 s; packed 64-bit keys with
``sort``: 0.9–2 s) was slower.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from .common import StatsInputError

ORDERING_CHUNK = 5_000
"""Orderings per chunk: one random stream and one unit of work for a thread."""

CHUNK_BYTES = 256 * 2**20
"""Upper bound on one chunk's permutations (8 bytes per trial and ordering): long studies get
smaller chunks, so memory stays bounded (two threads: about twice this)."""

STEP_BLOCK = 32
"""Steps whose gather/scatter indices are built together (a cache-sized transposition)."""

Seed = int | tuple[int, ...]


def elo_orderings(n_trials: int, *, n_orderings: int, seed: Seed) -> NDArray[np.intp]:
    """The permutations :func:`shuffled_elo` uses for ``seed``: shape ``(n_orderings, n_trials)``.

    Row p lists the trial indices in the order ordering p processes them. Meant for checks and
    benchmarks; :func:`shuffled_elo` draws the same rows chunk by chunk without keeping them.
    """
    chunks = _chunk_seeds(n_orderings, n_trials, seed)
    return np.concatenate([_permutations(n_trials, count, ss) for count, ss in chunks])


def shuffled_elo(
    ia: NDArray[np.intp],
    ib: NDArray[np.intp],
    score: NDArray[np.float64],
    n_items: int,
    *,
    n_orderings: int,
    k: float,
    start: float,
    scale: float,
    seed: Seed,
    workers: int = 1,
) -> NDArray[np.float64]:
    """Final Elo ratings after each of ``n_orderings`` random orderings: ``(n_orderings, n_items)``.

    ``ia``/``ib``: item indices of the two sides of each trial; ``score``: S of side a.
    """
    if n_orderings < 1:
        raise StatsInputError(f"n_orderings must be at least 1, got {n_orderings}")
    a, b, bias = _oriented(ia, ib, score, k=k, scale=scale)
    half_kappa = k * math.log(10.0) / (4.0 * scale)

    def run(chunk: tuple[int, np.random.SeedSequence]) -> NDArray[np.float64]:
        order = _permutations(len(a), chunk[0], chunk[1])
        return _advance(a, b, bias, n_items, order, half_kappa)

    chunks = _chunk_seeds(n_orderings, len(a), seed)
    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
            parts = list(pool.map(run, chunks))
    else:
        parts = [run(chunk) for chunk in chunks]
    return start + np.concatenate(parts) * (2.0 * scale / math.log(10.0))


def file_order_elo(
    ia: NDArray[np.intp],
    ib: NDArray[np.intp],
    score: NDArray[np.float64],
    n_items: int,
    *,
    k: float,
    start: float,
    scale: float,
) -> NDArray[np.float64]:
    """One pass over the trials in the given order (the deterministic CLIC rating)."""
    ratings = [start] * n_items
    for a, b, s in zip(ia.tolist(), ib.tolist(), score.tolist(), strict=True):
        step = k * (s - 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / scale)))
        ratings[a] += step
        ratings[b] -= step
    return np.asarray(ratings, dtype=np.float64)


def _chunk_seeds(
    n_orderings: int, n_trials: int, seed: Seed
) -> list[tuple[int, np.random.SeedSequence]]:
    """(orderings, random stream) per chunk; the split depends only on the two counts."""
    size = max(1, min(ORDERING_CHUNK, CHUNK_BYTES // (8 * max(n_trials, 1))))
    n_chunks = -(-n_orderings // size)
    children = np.random.SeedSequence(seed).spawn(n_chunks)
    counts = [min(size, n_orderings - i * size) for i in range(n_chunks)]
    return list(zip(counts, children, strict=True))


def _permutations(n_trials: int, count: int, seed: np.random.SeedSequence) -> NDArray[np.intp]:
    # numpy shuffles pointer-sized integers fastest (measured 0.75 s vs 0.95 s for int32)
    base = np.broadcast_to(np.arange(n_trials, dtype=np.intp), (count, n_trials))
    return np.random.default_rng(seed).permuted(base, axis=1)


def _oriented(
    ia: NDArray[np.intp],
    ib: NDArray[np.intp],
    score: NDArray[np.float64],
    *,
    k: float,
    scale: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64] | float]:
    """Swap sides so that S ≥ ½ (Elo is symmetric, so this is exact) and precompute the bias.

    In u units one step is u_a += κ(S − ½) − (κ/2)·tanh(u_a − u_b) with κ = K ln 10 / (2 scale);
    the bias κ(S − ½) is returned as one number when every trial has the same S (no ties).
    """
    swap = score < 0.5
    a = np.where(swap, ib, ia).astype(np.intp)
    b = np.where(swap, ia, ib).astype(np.intp)
    s = np.where(swap, 1.0 - score, score)
    bias = (k * math.log(10.0) / (2.0 * scale)) * (s - 0.5)
    if s.size and np.all(s == s[0]):
        return a, b, float(bias[0])
    return a, b, bias


def _advance(
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    bias: NDArray[np.float64] | float,
    n_items: int,
    order: NDArray[np.intp],
    half_kappa: float,
) -> NDArray[np.float64]:
    """Run every ordering of one chunk to the end; ratings in u units, ``(count, n_items)``."""
    count, n_trials = order.shape
    u = np.zeros(n_items * count)
    pair = np.empty(2 * count)  # [a-side ratings | b-side ratings] of the current step
    ua, ub, da = pair[:count], pair[count:], np.empty(count)
    for first in range(0, n_trials, STEP_BLOCK):
        steps = np.ascontiguousarray(order[:, first : first + STEP_BLOCK].T)  # (block, count)
        index = _flat_indices(a, b, steps, count)
        # per-trial biases only with ties; otherwise one number, broadcast
        biases = (
            bias.take(steps) if isinstance(bias, np.ndarray) else np.full((len(steps), 1), bias)
        )
        for where, shift in zip(index, biases, strict=True):
            u.take(where, out=pair, mode="clip")  # mode "raise" would buffer `out`
            np.subtract(ua, ub, out=da)
            np.tanh(da, out=da)
            da *= -half_kappa
            da += shift
            ua += da
            ub -= da
            u[where] = pair
    return u.reshape(n_items, count).T.copy()


def _flat_indices(
    a: NDArray[np.intp], b: NDArray[np.intp], steps: NDArray[np.intp], count: int
) -> NDArray[np.intp]:
    """Positions in the item-major rating array: [a-side | b-side] for every step of a block."""
    columns = np.arange(count)
    index = np.empty((steps.shape[0], 2 * count), dtype=np.intp)
    np.add((a * count).take(steps), columns, out=index[:, :count])
    np.add((b * count).take(steps), columns, out=index[:, count:])
    return index
