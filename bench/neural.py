"""Benchmark: the neural codecs on Kodak, on the CPU, against JPEG and BPG at equal bpp.

For every neural codec with a checkpoint here (shipped or trained), and each Kodak image:

1. Time: wall time of one encode and one decode through the codec contract (container,
   padding and uint8 conversion included), the model already loaded (the first image is
   encoded once before timing). Goal for ``hific`` (HiFiC-small): ≤ 1.5 s encode, ≤ 2 s
   decode per image. Printed next to JPEG's encode/decode time of the same image in the same
   run (ratio = neural / JPEG), since absolute times on a shared machine are noisy.
2. Quality at equal rate: the neural bitstream's bpp, PSNR and MS-SSIM, then JPEG (and BPG
   when ``bpgenc`` is on PATH) rate-matched to the same number of bytes
   (:func:`perceptlab.codecs.ratecontrol.encode_at_bytes`) and their PSNR and MS-SSIM.

torch runs with one thread (``--threads``), as on a busy 2-core machine.

    .venv/bin/python bench/neural.py [--images DIR] [--limit N] [--codecs hific,gc] [--threads 1]

``--images`` defaults to the Kodak set (``manage.py fetch_dataset kodak``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchkit import ROOT, kodak_folder

NEURAL = ["hific", "hific-sparse", "gc", "tunable", "rdo-gllmm"]
GOALS = {"hific": (1.5, 2.0)}


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "perceptlab.settings")
    import django

    django.setup()


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, help="folder of kodim*.png (default: Kodak)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--codecs", default=",".join(NEURAL))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    setup_django()
    import torch
    from PIL import Image

    from perceptlab.codecs.base import bits_per_pixel
    from perceptlab.codecs.neural.cards import ms_ssim, psnr
    from perceptlab.codecs.ratecontrol import encode_at_bytes
    from perceptlab.codecs.registry import get_codec

    torch.set_num_threads(args.threads)
    files = sorted(kodak_folder(args.images).glob("kodim*.png"))[: args.limit]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    jpeg = get_codec("jpeg")
    bpg = get_codec("bpg")
    bpg_ok = bpg.availability()
    print(f"{len(images)} Kodak images, torch {torch.__version__}, {args.threads} thread(s)")
    if not bpg_ok.available:
        print(f"BPG: not measured ({bpg_ok.reason})")
    for slug in args.codecs.split(","):
        codec = get_codec(slug.strip())
        state = codec.availability()
        if not state.available:
            print(f"\n{slug}: not measured ({state.reason})")
            continue
        codec.encode(images[0], {})  # load the model before timing
        rows: dict[str, list[float]] = {k: [] for k in ("enc", "dec", "jenc", "jdec")}
        quality: dict[str, list[float]] = {}
        for image in images:
            height, width = image.shape[:2]
            data, enc = timed(codec.encode, image, {})
            decoded, dec = timed(codec.decode, data)
            rows["enc"].append(enc)
            rows["dec"].append(dec)
            quality.setdefault("bpp", []).append(bits_per_pixel(len(data), height, width))
            quality.setdefault("psnr", []).append(psnr(image, decoded))
            quality.setdefault("ms_ssim", []).append(ms_ssim(image, decoded))
            rivals = [("jpeg", jpeg)] + ([("bpg", bpg)] if bpg_ok.available else [])
            for name, rival in rivals:
                matched = encode_at_bytes(rival, image, len(data))
                rival_image, rival_dec = timed(rival.decode, matched.bitstream)
                if name == "jpeg":
                    _, jenc = timed(rival.encode, image, matched.params)
                    rows["jenc"].append(jenc)
                    rows["jdec"].append(rival_dec)
                quality.setdefault(f"{name}_bpp", []).append(matched.bpp)
                quality.setdefault(f"{name}_psnr", []).append(psnr(image, rival_image))
                quality.setdefault(f"{name}_ms_ssim", []).append(ms_ssim(image, rival_image))
        med = {k: statistics.median(v) for k, v in rows.items()}
        mean = {k: float(np.mean(v)) for k, v in quality.items()}
        print(f"\n{slug} ({codec.version()})")
        print(
            f"  encode {med['enc']:.3f} s, decode {med['dec']:.3f} s per image (median); "
            f"JPEG {med['jenc']:.4f} / {med['jdec']:.4f} s; ratio "
            f"{med['enc'] / med['jenc']:.0f}× / {med['dec'] / med['jdec']:.0f}×"
        )
        if slug in GOALS:
            goal_enc, goal_dec = GOALS[slug]
            met = med["enc"] <= goal_enc and med["dec"] <= goal_dec
            verdict = "met" if met else "NOT met"
            print(f"  goal ≤ {goal_enc} s encode, ≤ {goal_dec} s decode: {verdict}")
        print(
            f"  {slug}: {mean['bpp']:.4f} bpp, {mean['psnr']:.2f} dB, MS-SSIM {mean['ms_ssim']:.4f}"
        )
        for name in ("jpeg", "bpg"):
            if f"{name}_bpp" in mean:
                print(
                    f"  {name} at the same bytes: {mean[f'{name}_bpp']:.4f} bpp, "
                    f"{mean[f'{name}_psnr']:.2f} dB, MS-SSIM {mean[f'{name}_ms_ssim']:.4f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
