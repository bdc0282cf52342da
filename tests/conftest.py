from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KODAK = SHARED / "datasets" / "kodak"


@pytest.fixture(autouse=True)
def _isolated_media_and_inline_tasks(settings, tmp_path: Path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every test writes files under its own tmp dir and runs tasks inline."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    yield


def kodak_path(name: str) -> Path:
    path = KODAK / f"{name}.png"
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need ../shared/datasets/kodak beside the repo")
    return path


@pytest.fixture(scope="session")
def kodim01() -> np.ndarray:
    return np.asarray(Image.open(kodak_path("kodim01")).convert("RGB"))


@pytest.fixture(scope="session")
def kodim23() -> np.ndarray:
    return np.asarray(Image.open(kodak_path("kodim23")).convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
