"""Helpers shared by test modules (imported as ``support``; conftest files are not modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perceptlab.lib import datasets


def data(name: str, file: str) -> Path:
    """``file`` of the catalogued dataset ``name`` (:mod:`perceptlab.lib.datasets`: the folder
    ``PERCEPTLAB_DATASETS``, else ``../shared/datasets`` beside the repo, else the cache),
    fetched on first use; the test fails with the reason when it cannot be had."""
    try:
        return datasets.dataset_path(name, file)
    except datasets.DatasetError as error:
        reason = str(error)
    pytest.fail(reason, pytrace=False)  # outside `except`: the reason alone, no chain


def data_dir(name: str, *more: str) -> Path:
    """The datasets folder, with every file of the datasets ``name, *more`` in it (fetched
    first if missing); paths below it read ``<name>/<file>``."""
    try:
        folders = [datasets.dataset_dir(each) for each in (name, *more)]  # each one checked
        return folders[0].parent
    except datasets.DatasetError as error:
        reason = str(error)
    pytest.fail(reason, pytrace=False)


def kodak_path(name: str) -> Path:
    """``kodimNN.png`` of the Kodak set, e.g. ``kodak_path("kodim23")``."""
    return data("kodak", f"{name}.png")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
