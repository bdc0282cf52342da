"""What the benchmark scripts share (imported as ``benchkit``: bench/ is the script's folder)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kodak_folder(images: Path | None) -> Path:
    """``--images``, else the Kodak set of :mod:`perceptlab.lib.datasets` (fetched on first
    use); a dataset that cannot be had ends the benchmark with the reason."""
    if images is not None:
        return images
    sys.path.insert(0, str(ROOT))
    from perceptlab.lib.datasets import DatasetError, dataset_dir

    try:
        return dataset_dir("kodak")
    except DatasetError as error:
        sys.exit(str(error))
