"""Helpers shared by test modules (imported as ``support``; conftest files are not modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KODAK = SHARED / "datasets" / "kodak"


def kodak_path(name: str) -> Path:
    path = KODAK / f"{name}.png"
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need ../shared/datasets/kodak beside the repo")
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
