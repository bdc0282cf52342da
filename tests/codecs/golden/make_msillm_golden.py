"""Make the MS-ILLM golden files from the reference implementation, on seeded weights.

``tests/codecs/test_neural_msillm.py`` checks PerceptLab's MS-ILLM (``perceptlab/codecs/neural/
msillm_net.py``) against these files without the reference installed, so a release of
either cannot move the reference silently.

Reference: ``neuralcompression.models.HiFiCAutoencoder`` of facebookresearch/NeuralCompression
(Muckley et al., ICML 2023), as the torch hub entries build it (``neuralcompression.zoo``).
Its package's dependencies (fvcore, torchmetrics, lpips, …) clash with ours, so it is not
installed: the architecture modules are executed unmodified from a folder holding the
``neuralcompression`` package, with the package ``__init__`` files (which import those
dependencies for metrics and training) bypassed. Get such a folder with either of::

    .venv/bin/pip download neuralcompression==0.3.1 --no-deps -d /tmp/nc
    .venv/bin/pip install --no-deps --target /tmp/ncpkg /tmp/nc/neuralcompression-0.3.1-*.whl

or a checkout of the repository (its ``main`` also has the ``msillm_quality_vlo1``/``vlo2``
entries). Then, from the repository root::

    .venv/bin/python tests/codecs/golden/make_msillm_golden.py --reference /tmp/ncpkg \
        --note "neuralcompression 0.3.1 wheel"

The committed files were made from ``main`` at commit 3f12280 (``git archive``; it adds the
two ``vlo`` entries) with torch 2.14.1 and CompressAI 1.2.8; the 0.3.1 wheel, whose model
files are byte-identical, gives a byte-identical ``.npz``.

What it writes (CPU, one thread):

* ``msillm_reference.json`` — the reference's files used (SHA-256 each), the library
  versions, the hub entries found and the state dict (key, shape, dtype) that every one of
  them builds (the script checks they are all the same), the seed, the input and the
  smallest distance of any y − μ or z − m to a rounding boundary (so that the symbols can be
  compared exactly on another machine), and the SHA-256 of the entropy-coder tables that
  ``update(force=True)`` computed here.
* ``msillm_seeded.npz`` — for the reference model with the weights of ``tests/msillmkit.py``
  (:func:`seeded_state_dict`, seed :data:`SEED`) and tables from ``update(force=True)``, on a
  64×96 crop of Kodak kodim23 (rows 200–263, columns 300–395; stored as ``image``): ``y`` (the
  encoder's output on the reflect-padded 64×128 input), ``y_symbols`` = round(y − μ) and
  ``z_symbols`` = round(z − m) as the reference's entropy models quantise them, ``g`` (the
  generator's unclamped output on the decoded ŷ, padded size), ``x_hat`` (the reference's
  ``decompress``: cropped and clamped) and the reference's ``compress`` strings ``y_string``
  and ``z_string``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from msillmkit import GOLDEN_REFERENCE, GOLDEN_TENSORS, SEED, seeded_state_dict  # noqa: E402

REFERENCE_FILES = (
    "models/_hific_autoencoder.py",
    "models/_hific_encoder_decoder.py",
    "models/_hyperprior_autoencoder.py",
    "layers/_channel_norm.py",
    "functional/_pad_image.py",
    "zoo/_msillm.py",
    "zoo/_noganms.py",
)
CROP = (slice(200, 264), slice(300, 396))


def load_reference(root: Path) -> tuple[type, list[tuple[str, Any]]]:
    """``HiFiCAutoencoder`` and the hub entries ``(name, function)`` of the package in
    ``root``, importing only the modules the autoencoder needs."""
    package = root / "neuralcompression"

    def namespace(name: str, path: Path) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
        return module

    top = namespace("neuralcompression", package)
    outputs = importlib.import_module("neuralcompression._outputs")
    top.HyperpriorOutput = outputs.HyperpriorOutput  # type: ignore[attr-defined]
    top.HyperpriorCompressedOutput = outputs.HyperpriorCompressedOutput  # type: ignore[attr-defined]
    functional = namespace("neuralcompression.functional", package / "functional")
    pad = importlib.import_module("neuralcompression.functional._pad_image")
    functional.pad_image_to_factor = pad.pad_image_to_factor  # type: ignore[attr-defined]
    layers = namespace("neuralcompression.layers", package / "layers")
    norm = importlib.import_module("neuralcompression.layers._channel_norm")
    layers.ChannelNorm2D = norm.ChannelNorm2D  # type: ignore[attr-defined]
    models = namespace("neuralcompression.models", package / "models")
    autoencoder = importlib.import_module("neuralcompression.models._hific_autoencoder")
    models.HiFiCAutoencoder = autoencoder.HiFiCAutoencoder  # type: ignore[attr-defined]
    namespace("neuralcompression.zoo", package / "zoo")
    entries = []
    for module_name in ("_msillm", "_noganms"):
        zoo = importlib.import_module(f"neuralcompression.zoo.{module_name}")
        entries += [
            (name, getattr(zoo, name))
            for name in sorted(vars(zoo))
            if name.startswith(("msillm_quality_", "noganms_quality_"))
        ]
    return autoencoder.HiFiCAutoencoder, entries


def describe(state: dict[str, torch.Tensor]) -> list[list[Any]]:
    return [[key, list(value.shape), str(value.dtype)] for key, value in state.items()]


def boundary_margin(values: torch.Tensor) -> float:
    """The smallest distance of any value to a rounding boundary (k + ½)."""
    return float(((values - torch.floor(values)) - 0.5).abs().min())


def sha256_of_tables(net: Any) -> str:
    digest = hashlib.sha256()
    for module in (net.hyper_bottleneck, net.latent_bottleneck):
        for name in ("_quantized_cdf", "_offset", "_cdf_length"):
            digest.update(getattr(module, name).to(torch.int32).numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference", type=Path, required=True, help="folder holding neuralcompression/"
    )
    parser.add_argument(
        "--note", default="", help="where the reference folder came from (stored in the JSON)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    autoencoder, entries = load_reference(args.reference)
    if not entries:
        raise SystemExit(f"no msillm_quality_*/noganms_quality_* entries in {args.reference}")

    layouts = {}
    for name, build in entries:
        with torch.device("meta"):
            layouts[name] = describe(build(pretrained=False).state_dict())
    layout = layouts[entries[0][0]]
    differing = [name for name, found in layouts.items() if found != layout]
    if differing:
        raise SystemExit(f"hub entries with another state dict: {differing}")

    from perceptlab.lib.datasets import dataset_path

    with Image.open(dataset_path("kodak", "kodim23.png")) as source:
        image = np.ascontiguousarray(np.asarray(source.convert("RGB"))[CROP])

    model = autoencoder()
    model.load_state_dict(seeded_state_dict(model.state_dict(), SEED))
    model.eval()
    model.update(force=True)
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().div(255.0)
    with torch.no_grad():
        compressed = model.compress(x)
        x_hat = model.decompress(compressed)
        padded, _ = sys.modules["neuralcompression.functional"].pad_image_to_factor(x, 64)
        y = model.encoder(padded)
        z = model.hyper_analysis(y)
        medians = model.hyper_bottleneck._get_medians().reshape(1, -1, 1, 1)
        z_symbols = model.hyper_bottleneck.quantize(z, "symbols", medians)
        z_hat = model.hyper_bottleneck.dequantize(z_symbols, medians)
        means = model.hyper_synthesis_mean(z_hat)
        y_symbols = model.latent_bottleneck.quantize(y, "symbols", means)
        g = model.decoder(model.latent_bottleneck.dequantize(y_symbols, means))
        margin = min(boundary_margin(y - means), boundary_margin(z - medians))

    np.savez_compressed(
        GOLDEN_TENSORS,
        image=image,
        y=y.numpy(),
        y_symbols=y_symbols.numpy().astype(np.int32),
        z_symbols=z_symbols.numpy().astype(np.int32),
        g=g.numpy(),
        x_hat=x_hat.numpy(),
        y_string=np.frombuffer(compressed.latent_strings[0], dtype=np.uint8),
        z_string=np.frombuffer(compressed.hyper_latent_strings[0], dtype=np.uint8),
    )
    files = {
        path: hashlib.sha256((args.reference / "neuralcompression" / path).read_bytes()).hexdigest()
        for path in REFERENCE_FILES
    }
    record = {
        "reference": "facebookresearch/NeuralCompression neuralcompression.models.HiFiCAutoencoder",
        "reference_files_sha256": files,
        "libraries": {
            "torch": torch.__version__,
            "compressai": metadata.version("compressai"),
            "numpy": np.__version__,
        },
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "hub_entries": sorted(layouts),
        "state_dict": layout,
        "seed": SEED,
        "reference_source": args.note,
        "input": "Kodak kodim23.png rows 200-263, columns 300-395 (64x96), reflect-padded "
        "to 64x128 by the reference",
        "rounding_margin": margin,
        "tables_sha256": sha256_of_tables(model),
    }
    GOLDEN_REFERENCE.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {GOLDEN_TENSORS} and {GOLDEN_REFERENCE}; rounding margin {margin:.2e}")


if __name__ == "__main__":
    main()
