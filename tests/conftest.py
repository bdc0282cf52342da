from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import kodak_path


@pytest.fixture(autouse=True)
def _isolated_media_and_inline_tasks(settings, tmp_path: Path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every test writes files under its own tmp dir and runs tasks inline."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    yield


@pytest.fixture(scope="session")
def kodim01() -> np.ndarray:
    return np.asarray(Image.open(kodak_path("kodim01")).convert("RGB"))


@pytest.fixture(scope="session")
def kodim23() -> np.ndarray:
    return np.asarray(Image.open(kodak_path("kodim23")).convert("RGB"))
