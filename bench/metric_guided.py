"""Benchmark: what metric guidance saves, replayed on JPEG AIC-4's example dataset.

The dataset (jpeg-aic/JPEG-AIC-4-datasets on GitHub, ``JPEG-AIC_metric_scores.csv``) holds 300
compressed images (5 sources × 6 codecs × 10 levels) with their JND from JPEG AIC-3 triplet
responses and nine objective metrics (PSNR-Y, SSIM, MS-SSIM, IW-SSIM, VMAF-neg, SSIMULACRA2,
HDR-VDP-2/3 Q, CVVDP). A replay (``perceptlab.evaluation.stats.guided``) "measures" one
condition at a time — revealing its human JND — and predicts the rest from the metrics
calibrated on what was measured: guided (the conditions with the largest predictive variance
first: calibration uncertainty plus the metrics' disagreement) against random order. It prints
the RMS error of the study's scale (measured where measured, predicted elsewhere) against the
complete human scale per number measured, and the share of measurements the guidance needs to
reach random's error at each budget.

    git clone https://github.com/jpeg-aic/JPEG-AIC-4-datasets /path/aic4
    .venv/bin/python bench/metric_guided.py --data /path/aic4 [--seeds 10] [--batch 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perceptlab.evaluation.stats import guided  # noqa: E402

FILE = "JPEG-AIC_metric_scores.csv"
METRICS = (
    "PSNR-Y",
    "SSIM",
    "MS-SSIM",
    "IW-SSIM",
    "VMAF-neg",
    "SSIMULACRA2",
    "HDR-VDP-2 Q",
    "HDR-VDP-3 Q",
    "CVVDP",
)
STEPS = (10, 20, 30, 45, 60, 90, 120, 150, 200, 250)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help=f"folder holding {FILE}")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5, help="guided picks per refit")
    parser.add_argument("--seed-size", type=int, default=guided.DEFAULT_SEED_SIZE)
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated columns")
    args = parser.parse_args()
    path = args.data / FILE
    if not path.is_file():
        parser.error(f"{path} not found: clone jpeg-aic/JPEG-AIC-4-datasets and pass its folder")
    frame = pd.read_csv(path)
    names = [name.strip() for name in args.metrics.split(",") if name.strip()]
    missing = [name for name in [*names, "distortion"] if name not in frame.columns]
    if missing:
        parser.error(f"{path} lacks column(s) {missing}; it has {list(frame.columns)}")
    metrics = frame[names].to_numpy(dtype=np.float64)
    truth = frame["distortion"].to_numpy(dtype=np.float64)
    print(
        f"{len(truth)} conditions, {len(names)} metrics ({', '.join(names)}); human JND "
        f"{truth.min():.2f}–{truth.max():.2f}; {args.seeds} seeds, first {args.seed_size} "
        f"measured at random, guided picks {args.batch} per refit"
    )
    started = time.perf_counter()
    result = guided.replay(
        metrics,
        truth,
        steps=np.array(STEPS),
        seeds=args.seeds,
        seed_size=args.seed_size,
        batch=args.batch,
    )
    print(f"replay took {time.perf_counter() - started:.0f} s")
    print(
        f"metrics only (after the {args.seed_size} seed conditions): {result.metrics_only:.3f} JND"
    )
    print(f"{'measured':>9} {'guided':>8} {'random':>8}   guided needs for random's error")
    for step, mine, theirs in zip(result.measured, result.guided, result.random, strict=True):
        needed = result.needed(float(theirs))
        share = f"{needed} ({needed / step:.2f})" if needed is not None and step else "never"
        print(f"{step:>9} {mine:>8.3f} {theirs:>8.3f}   {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
