"""Model cards: what a checkpoint was trained on and what it measures on Kodak.

:func:`measure` encodes each Kodak image through the registered codec (the same path a study
uses: container, padding, uint8), decodes it and records the real bpp (8·bytes/pixels,
header included), PSNR on RGB (peak 255, mean over pixels and channels) and MS-SSIM
(Wang, Simoncelli & Bovik 2003, five scales, Gaussian window 11, σ 1.5, the standard weights;
``pytorch_msssim`` on RGB in [0, 1], averaged over channels). :func:`write_card` stores the
numbers as ``<name>.card.json`` next to the checkpoint and renders ``<name>.md`` with the
training facts from the checkpoint (data, steps, loss terms, hardware). A test re-encodes
Kodak images with each shipped checkpoint and checks them against the card.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from perceptlab.codecs.base import bits_per_pixel
from perceptlab.codecs.neural import checkpoints
from perceptlab.codecs.registry import get_codec

CARD_SUFFIX = ".card.json"


@dataclass(frozen=True)
class ImageResult:
    image: str
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_seconds: float
    decode_seconds: float


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """10·log10(255² / MSE) over all pixels and channels (∞ for identical images)."""
    mse = float(np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    import torch
    from pytorch_msssim import ms_ssim as msssim

    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]

    return float(msssim(tensor(reference), tensor(decoded), data_range=1.0, win_size=11))


def kodak_images(folder: Path, limit: int | None = None) -> list[Path]:
    files = sorted(folder.glob("kodim*.png"))
    if not files:
        raise FileNotFoundError(f"no kodim*.png in {folder}")
    return files[:limit] if limit else files


def measure(slug: str, params: Mapping[str, object], images: Sequence[Path]) -> list[ImageResult]:
    """Encode and decode each image with codec ``slug`` and ``params``."""
    codec = get_codec(slug)
    results = []
    for path in images:
        with Image.open(path) as opened:
            pixels = np.asarray(opened.convert("RGB"))
        started = time.perf_counter()
        data = codec.encode(pixels, params)
        encoded = time.perf_counter()
        decoded = codec.decode(data)
        finished = time.perf_counter()
        height, width = pixels.shape[:2]
        results.append(
            ImageResult(
                image=path.name,
                bytes=len(data),
                bpp=bits_per_pixel(len(data), height, width),
                psnr=psnr(pixels, decoded),
                ms_ssim=ms_ssim(pixels, decoded),
                encode_seconds=encoded - started,
                decode_seconds=finished - encoded,
            )
        )
    return results


def summary(results: Sequence[ImageResult]) -> dict[str, float]:
    return {
        "images": len(results),
        "bpp": float(np.mean([r.bpp for r in results])),
        "psnr": float(np.mean([r.psnr for r in results])),
        "ms_ssim": float(np.mean([r.ms_ssim for r in results])),
        "encode_seconds": float(np.median([r.encode_seconds for r in results])),
        "decode_seconds": float(np.median([r.decode_seconds for r in results])),
    }


def card_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + CARD_SUFFIX)


def write_card(
    checkpoint_path: Path,
    slug: str,
    operating_points: Sequence[Mapping[str, object]],
    images: Sequence[Path],
    *,
    hardware: str = "",
) -> dict[str, Any]:
    """Measure each operating point on ``images`` and write the JSON and Markdown card."""
    checkpoint = checkpoints.load(checkpoint_path)
    points = []
    for params in operating_points:
        results = measure(slug, {"model": checkpoint.name, **params}, images)
        points.append(
            {
                "params": dict(params),
                "summary": summary(results),
                "images": [asdict(r) for r in results],
            }
        )
    card = {
        "name": checkpoint.name,
        "codec": slug,
        "family": checkpoint.family,
        "weights_sha256": checkpoint.sha256,
        "training": checkpoint.card,
        "config": checkpoint.config,
        "evaluation": {
            "dataset": f"Kodak ({len(images)} images, 768×512)",
            "hardware": hardware,
            "metrics": "bpp = 8·bytes/pixels of the container; PSNR on RGB; MS-SSIM "
            "(pytorch_msssim, window 11) on RGB",
            "operating_points": points,
        },
    }
    card_path(checkpoint_path).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    checkpoint_path.with_suffix(".md").write_text(markdown(card))
    return card


def markdown(card: Mapping[str, Any]) -> str:
    training = card["training"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Codec `{card['codec']}` (family `{card['family']}`), weights SHA-256 "
        f"`{card['weights_sha256']}`.",
        "",
        "## Training",
        "",
        f"- Data: {training.get('data', '?')}, random {training.get('crop')}² crops "
        f"(batch {training.get('batch')}), seed {training.get('seed')}",
        f"- Steps: {training.get('steps')} in {training.get('train_seconds')} s on "
        f"{training.get('hardware')}, Adam lr {training.get('lr')}, torch {training.get('torch')}",
        f"- Configuration: `{training.get('config_preset')}`; parameters: "
        f"{training.get('parameters', '?')}",
        "- Loss terms: " + "; ".join(training.get("loss_terms", [])),
    ]
    if training.get("perceptual_note"):
        lines.append(f"- Note: {training['perceptual_note']}")
    lines += [
        "",
        "This is a small model trained briefly on a CPU: it is undertrained, far from the "
        "paper's quality, and shipped so that the codec runs end to end.",
        "",
        f"## Kodak ({card['evaluation']['dataset']})",
        "",
        f"{card['evaluation']['metrics']}. Hardware: {card['evaluation']['hardware']}.",
        "",
        "| parameters | bpp | PSNR (dB) | MS-SSIM | encode (s, median) | decode (s, median) |",
        "|---|---|---|---|---|---|",
    ]
    for point in card["evaluation"]["operating_points"]:
        s = point["summary"]
        params = ", ".join(f"{k}={v}" for k, v in point["params"].items()) or "defaults"
        lines.append(
            f"| {params} | {s['bpp']:.4f} | {s['psnr']:.2f} | {s['ms_ssim']:.4f} | "
            f"{s['encode_seconds']:.2f} | {s['decode_seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"
