"""Make tests/evaluation/golden/iwssim.json: IW-SSIM of Kodak crops from a reference implementation.

The reference is the PyTorch port of the authors' MATLAB ``iwssim.m`` by X. Guo,
github.com/Jack-guo-xy/Python-IW-SSIM (BSD-3-Clause), file ``IW_SSIM_PyTorch.py`` at commit
f9de37cdb4c459fd188c611e377a87a54516d3cd (SHA-256 of the file pinned below). It builds its
Laplacian pyramids with pyrtools, the Python wrapper of matlabPyrTools' C code
(``corrDn``/``upConv``), the code ``iwssim.m`` calls through ``buildLpyr``. Nothing of it is
copied into PerceptLab or into this repository: it is fetched to /tmp, run once, and only the
numbers are kept. ``tests/evaluation/test_iwssim.py`` checks
:func:`perceptlab.evaluation.iwssim.iw_ssim` against them without importing torch or pyrtools.

How the file was made
---------------------
From the repository root, with Python 3.11, torch 2.14.1 (CPU), numpy 1.26.4, scipy 1.17.1,
Pillow 13.0.0 (libjpeg-turbo 3.2.0) and piq 0.8.0 (the JSON's ``versions``)::

    git clone https://github.com/Jack-guo-xy/Python-IW-SSIM /tmp/iwssim-ref
    git -C /tmp/iwssim-ref checkout f9de37cdb4c459fd188c611e377a87a54516d3cd
    .venv/bin/python -m pip install --no-deps --target /tmp/iwssim-ref/site pyrtools==1.1.1
    .venv/bin/python tests/evaluation/golden/make_iwssim_golden.py --reference /tmp/iwssim-ref

Running the reference as it stands on today's torch takes three changes, made here from the
outside and recorded in the JSON:

* ``torch.eig`` is gone (torch ≥ 2.0); it is given back for the one call the port makes, on the
  symmetric matrix C_U, through ``torch.linalg.eigh`` (eigenvalues as (real, 0) pairs, as
  ``torch.eig`` returned them).
* ``torch.set_default_dtype(torch.float64)`` and ``use_double=True``: the port collects the
  per-scale means with ``torch.tensor(list)``, which otherwise rounds them to float32 (that
  alone moves IW-SSIM by ~1e-9).
* The scale exponents are divided by their sum (1.0001), as ``iwssim.m`` does
  (``weight = weight/sum(weight)``) and the port does not.

Inputs: crops of Kodak images (:mod:`perceptlab.lib.datasets`, fetched if missing), compressed
with Pillow's JPEG encoder at the listed qualities and decoded back; the SHA-256 of each decoded
crop is stored, so a changed JPEG codec shows up as an input mismatch, not as a metric
difference. Two grey conversions: ``bt601`` (Y' = 0.299 R' + 0.587 G' + 0.114 B', not rounded:
what the ``iw_ssim`` metric computes on) and ``rgb2gray`` (the port's ``utils.rgb2gray``,
round(0.2989 R + 0.5870 G + 0.1140 B), which mimics MATLAB's ``rgb2gray`` on uint8 images).

For information the file also keeps ``piq.information_weighted_ssim`` (piq 0.8.0, float64, RGB
input with its own BT.601 luma) and the largest difference between PerceptLab's Laplacian bands
and pyrtools' ``LaplacianPyramid(height=5)``. The script refuses to write when PerceptLab is
further than ``TOLERANCE`` from the reference or its bands further than 1e-9 from pyrtools'.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import platform
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, features

from perceptlab.evaluation.iwssim import iw_ssim, laplacian_pyramid
from perceptlab.lib.datasets import dataset_path

OUT = Path(__file__).resolve().parent / "iwssim.json"
REFERENCE_FILE = "IW_SSIM_PyTorch.py"
REFERENCE_SHA256 = "fd947a282512c688253a6d356ebe60ec0606e54584f5bf0e992440e252bb9f86"
REFERENCE_COMMIT = "f9de37cdb4c459fd188c611e377a87a54516d3cd"
TOLERANCE = 1e-12
"""Absolute; the two agree to ~3e-15 here (float64 rounding in different orders)."""
MAX_PYRAMID_DIFFERENCE = 1e-9

CASES: list[dict[str, Any]] = [
    *(
        {"image": "kodim01", "box": [128, 192, 256, 384], "jpeg_quality": q}
        for q in (90, 70, 30, 10)
    ),
    *({"image": "kodim23", "box": [128, 192, 256, 384], "jpeg_quality": q} for q in (60, 20)),
    {"image": "kodim05", "box": [0, 3, 251, 377], "jpeg_quality": 40},  # odd sides
    {"image": "kodim23", "box": [0, 0, 512, 768], "jpeg_quality": 50},  # the whole image
]
"""box: [top, left, height, width] in pixels."""


def load_pair(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(reference crop, JPEG-decoded crop), (H, W, 3) uint8; test_iwssim.py does the same."""
    top, left, height, width = case["box"]
    with Image.open(dataset_path("kodak", f"{case['image']}.png")) as image:
        pixels = np.asarray(image.convert("RGB"))
    reference = np.ascontiguousarray(pixels[top : top + height, left : left + width])
    buffer = io.BytesIO()
    Image.fromarray(reference).save(buffer, format="JPEG", quality=case["jpeg_quality"])
    with Image.open(buffer) as decoded:
        return reference, np.asarray(decoded.convert("RGB"))


def grey(pixels: np.ndarray, conversion: str) -> np.ndarray:
    """(H, W) float64 grey levels in [0, 255]."""
    rgb = pixels.astype(np.float64)
    if conversion == "bt601":
        return np.asarray(rgb @ np.array([0.299, 0.587, 0.114]))
    weights = np.array([0.2989, 0.5870, 0.1140])  # the port's utils.rgb2gray
    return np.asarray(np.round(rgb @ weights))


def load_reference(folder: Path) -> tuple[Any, ModuleType]:
    """The port's IW_SSIM (float64, normalised exponents) and pyrtools, from ``folder``."""
    source = folder / REFERENCE_FILE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != REFERENCE_SHA256:
        sys.exit(
            f"{source} has SHA-256 {digest}, expected {REFERENCE_SHA256} "
            f"(commit {REFERENCE_COMMIT}); check out that commit"
        )
    sys.path[:0] = [str(folder / "site"), str(folder)]
    import pyrtools
    import torch

    def eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, ...]:
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], dim=1), vectors

    torch.eig = eig  # type: ignore[attr-defined]
    torch.set_default_dtype(torch.float64)
    from IW_SSIM_PyTorch import IW_SSIM

    model = IW_SSIM(use_double=True)
    return model, pyrtools


def reference_value(model: Any, reference: np.ndarray, distorted: np.ndarray) -> float:
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    model.weight = [w / sum(weights) for w in weights]  # test() turns it into a tensor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # F.upsample is deprecated
        return float(model.test(reference, distorted))


def piq_value(reference: np.ndarray, distorted: np.ndarray) -> float:
    import piq
    import torch

    x, y = (torch.tensor(p).permute(2, 0, 1)[None].double() for p in (distorted, reference))
    return float(piq.information_weighted_ssim(x, y, data_range=255))


def pyramid_difference(pyrtools: ModuleType, image: np.ndarray) -> float:
    theirs = pyrtools.pyramids.LaplacianPyramid(image, height=5).pyr_coeffs
    ours = laplacian_pyramid(image, 5)
    return max(float(np.abs(theirs[(k, 0)] - band).max()) for k, band in enumerate(ours))


def make_case(case: dict[str, Any], model: Any, pyrtools: ModuleType) -> dict[str, Any]:
    reference, distorted = load_pair(case)
    entry = dict(case, distorted_sha256=hashlib.sha256(distorted.tobytes()).hexdigest())
    pyramid = 0.0
    for conversion in ("bt601", "rgb2gray"):
        r, d = grey(reference, conversion), grey(distorted, conversion)
        expected = reference_value(model, r, d)
        ours = float(iw_ssim(r[None], d[None], data_range=255.0)[0])
        if abs(ours - expected) > TOLERANCE:
            sys.exit(f"{case}: PerceptLab {ours!r} vs reference {expected!r} ({conversion})")
        entry[f"reference_{conversion}"] = expected
        entry[f"perceptlab_{conversion}"] = ours
        pyramid = max(pyramid, *(pyramid_difference(pyrtools, x) for x in (r, d)))
    if pyramid > MAX_PYRAMID_DIFFERENCE:
        sys.exit(f"{case}: Laplacian bands differ from pyrtools' by {pyramid:g}")
    entry["piq_bt601"] = piq_value(reference, distorted)
    entry["max_band_difference_vs_pyrtools"] = pyramid
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="checkout of Jack-guo-xy/Python-IW-SSIM with pyrtools installed in its site/",
    )
    args = parser.parse_args()
    model, pyrtools = load_reference(args.reference)
    versions = {
        name: importlib.metadata.version(name) for name in ("torch", "numpy", "scipy", "piq")
    }
    versions.update(
        python=platform.python_version(),
        pyrtools=pyrtools.__version__,
        pillow=importlib.metadata.version("pillow"),
        libjpeg_turbo=str(features.version("libjpeg_turbo")),
    )
    golden = {
        "about": "IW-SSIM golden numbers made by tests/evaluation/golden/make_iwssim_golden.py "
        "(see its docstring); checked by tests/evaluation/test_iwssim.py. Do not edit by hand.",
        "reference": {
            "repository": "https://github.com/Jack-guo-xy/Python-IW-SSIM",
            "commit": REFERENCE_COMMIT,
            "file": REFERENCE_FILE,
            "file_sha256": REFERENCE_SHA256,
            "changes": [
                "torch.eig(C_U) provided through torch.linalg.eigh (removed in torch 2)",
                "torch default dtype float64, IW_SSIM(use_double=True)",
                "scale exponents divided by their sum, as iwssim.m does",
            ],
            "call": "IW_SSIM().test(reference_grey, distorted_grey), grey levels in [0, 255]",
        },
        "versions": versions,
        "tolerance": {"atol": TOLERANCE},
        "greys": {
            "bt601": "0.299 R + 0.587 G + 0.114 B of the 8-bit values, not rounded",
            "rgb2gray": "round(0.2989 R + 0.5870 G + 0.1140 B), the port's utils.rgb2gray",
        },
        "cases": [make_case(case, model, pyrtools) for case in CASES],
    }
    OUT.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
