"""Benchmark: the objective metrics, batched and built once, against naive per-image calls.

    .venv/bin/python bench/metrics.py [--images DIR] [--count 8] [--crop 256] [--threads 1]

What a study's "Compute metrics" does (:class:`perceptlab.evaluation.metrics.MetricSession`:
each metric built once, same-size pairs stacked into batches of 8, every representation —
float arrays, tensors, a program's run, SSIM's full-resolution scale that MS-SSIM shares — made
once per batch and shared; SSIM and MS-SSIM with separable windows, ``evaluation/ssim.py``)
is timed against the way a script usually does it: for every stimulus and every metric,
convert the two images to float32 tensors and call the library on that pair alone (piq's
functions; ``piq.DISTS()`` / ``piq.LPIPS()`` constructed per call where their weights are
here). Both run on the same
pairs (Kodak crops against JPEG at three qualities) in this process, one after the other,
twice, and the better time of each is kept; the values are checked to agree before any time
is printed. Printed: seconds per stimulus for each side and their ratio (issue 15's goal:
naive ÷ batched ≥ 2), for the piq metrics both sides can run, and the batched time of the
whole metric set for reference.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import ROOT, kodak_folder
from PIL import Image

sys.path.insert(0, str(ROOT))

Pair = tuple[np.ndarray, np.ndarray]
PIQ_FUNCTIONS = {"ssim": "ssim", "ms_ssim": "multi_scale_ssim", "haarpsi": "haarpsi"}
PIQ_NETWORKS = {"dists": "DISTS", "lpips": "LPIPS"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="default: Kodak")
    parser.add_argument("--count", type=int, default=8, help="source images")
    parser.add_argument("--crop", type=int, default=256, help="crop side in px (≥ 176)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    return parser.parse_args()


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def pairs_from(folder: Path, count: int, side: int) -> list[Pair]:
    files = sorted(folder.glob("*.png"))[:count]
    if not files:
        sys.exit(f"no PNG images in {folder}")
    pairs = []
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB"))
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        crop = np.ascontiguousarray(image[top : top + side, left : left + side])
        pairs += [(crop, jpeg(crop, quality)) for quality in (90, 50, 10)]
    return pairs


def weight_files(slug: str, directory: Path) -> dict[str, Path]:
    """The weight files a piq network loads (by URL base name), as the session resolves them."""
    from perceptlab.lib import weights as weightfiles

    names = [e.name for e in weightfiles.MANIFEST.values() if slug in e.metrics]
    return {n: s.path for n, s in weightfiles.resolve(names, directory).items()}


def naive(pairs: list[Pair], slugs: list[str], weights: Path) -> list[dict[str, float]]:
    """Per stimulus, per metric: convert both images and call piq on that pair alone."""
    import piq
    import torch

    from perceptlab.lib.networks import local_weights_only

    rows = []
    for reference, distorted in pairs:
        row = {}
        for slug in slugs:
            x = torch.from_numpy(distorted.astype("float32") / 255).permute(2, 0, 1)[None]
            y = torch.from_numpy(reference.astype("float32") / 255).permute(2, 0, 1)[None]
            if slug in PIQ_NETWORKS:
                with local_weights_only(weight_files(slug, weights)):
                    network = getattr(piq, PIQ_NETWORKS[slug])()
                with torch.inference_mode():
                    row[slug] = float(network(x, y))
            else:
                function = getattr(piq, PIQ_FUNCTIONS[slug])
                row[slug] = float(function(x, y, data_range=1.0))
        rows.append(row)
    return rows


def batched(pairs: list[Pair], slugs: list[str]) -> list[dict[str, float | None]]:
    from perceptlab.evaluation.metrics import MetricSession
    from perceptlab.lib.weights import configured_weights_dir

    session = MetricSession(slugs, weights_dir=configured_weights_dir())
    return [{s: v.value for s, v in row.items()} for row in session.compute(pairs)]


def best_of_two(run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(2):
        started = time.process_time()
        result = run()
        times.append(time.process_time() - started)
    return min(times), result


def main() -> int:
    args = parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "perceptlab.settings")
    import django

    django.setup()
    import torch

    from perceptlab.evaluation.metrics import METRICS, MetricSession
    from perceptlab.lib.weights import configured_weights_dir

    torch.set_num_threads(args.threads)
    pairs = pairs_from(kodak_folder(args.images), args.count, args.crop)
    probe = MetricSession(list(METRICS), weights_dir=configured_weights_dir())
    runnable = [s for s in [*PIQ_FUNCTIONS, *PIQ_NETWORKS] if s not in probe.unavailable]
    left_out = {s: r for s, r in probe.unavailable.items() if s in PIQ_NETWORKS}

    naive_s, naive_rows = best_of_two(lambda: naive(pairs, runnable, probe.weights_dir))
    ours_s, our_rows = best_of_two(lambda: batched(pairs, runnable))
    for mine, theirs in zip(our_rows, naive_rows, strict=True):
        for slug in runnable:
            if abs(float(mine[slug] or 0.0) - theirs[slug]) > 1e-4:
                sys.exit(f"{slug}: batched {mine[slug]} ≠ naive {theirs[slug]}: not comparable")
    whole = [s for s in METRICS if s not in probe.unavailable]
    whole_s, _ = best_of_two(lambda: batched(pairs, whole))

    n = len(pairs)
    print(f"{n} stimuli: {args.count} Kodak crops of {args.crop}×{args.crop} px × JPEG q90/50/10")
    print(f"torch threads {args.threads}; CPU time, better of two runs each")
    print(f"piq metrics on both sides: {', '.join(runnable)}")
    for slug, reason in left_out.items():
        print(f"  left out: {slug} ({reason})")
    print(f"naive, per image and metric: {1000 * naive_s / n:.1f} ms per stimulus")
    print(f"batched MetricSession:       {1000 * ours_s / n:.1f} ms per stimulus")
    print(f"naive ÷ batched: {naive_s / ours_s:.2f}  (goal ≥ 2)")
    print(
        f"the whole available set ({len(whole)}: {', '.join(whole)}), batched: "
        f"{1000 * whole_s / n:.1f} ms per stimulus"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
