"""Codec checkpoints: the inference weights of one trained neural codec plus its model card.

A checkpoint is one ``torch.save`` file (loaded with ``weights_only=True``) holding::

    {"format": FORMAT, "family": "hific", "name": "hific-small", "version": "1",
     "config": {...architecture...}, "state_dict": {...}, "card": {...}}

Large floating-point tensors (convolution weights, ≥ 4096 values) are stored as float16 to
keep shipped files small and loaded as float32; small ones (biases, norms, the entropy
models' parameters and scale tables) stay float32, and integer tensors (CompressAI's
quantised CDF tables) are stored exactly, so every machine codes with the same tables
(recomputing them could differ in the last bit and break decoding across machines). The
SHA-256 of the file goes into every bitstream's header, and a decoder refuses bytes made
with other weights.

Where they are found: the folder named by ``PERCEPTLAB_NEURAL_DIR`` (checkpoints trained
here), then the shipped ones beside this module (``checkpoints/``). The shipped ones have a
model card ``<name>.md`` next to them (see :mod:`.cards`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

FORMAT = "perceptlab-neural-checkpoint/1"
SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"
SUFFIX = ".pt"
HALF_MIN_VALUES = 4096


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not of the expected kind."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    family: str
    name: str
    version: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    card: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


def user_dir() -> Path | None:
    """``PERCEPTLAB_NEURAL_DIR`` from Django settings, or the environment outside Django."""
    try:
        from django.conf import settings

        if settings.configured:
            return Path(settings.PERCEPTLAB_NEURAL_DIR)
    except ImportError:  # pragma: no cover - Django is a core dependency
        pass
    value = os.environ.get("PERCEPTLAB_NEURAL_DIR")
    return Path(value) if value else None


def search_dirs() -> list[Path]:
    folders = [SHIPPED_DIR]
    custom = user_dir()
    if custom is not None:
        folders.insert(0, custom)
    return folders


def find(name: str) -> Path | None:
    """The file of checkpoint ``name`` (user folder first), or ``None``."""
    for folder in search_dirs():
        candidate = folder / f"{name}{SUFFIX}"
        if candidate.is_file():
            return candidate
    return None


def require(name: str) -> Path:
    path = find(name)
    if path is None:
        where = " or ".join(str(folder) for folder in search_dirs())
        raise CheckpointError(
            f"weights missing: {name}{SUFFIX}, put it in {where} "
            f"(train it with manage.py train_codec or copy a trained checkpoint there)"
        )
    return path


def available(family: str) -> list[str]:
    """Names of the checkpoints of ``family`` found in the search folders (by file name)."""
    names: set[str] = set()
    for folder in search_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob(f"{family}*{SUFFIX}"))
    return sorted(names)


def sha256_file(path: Path) -> str:
    """The file's SHA-256 (cached per path, size and mtime, as for the metric weights)."""
    from perceptlab.lib.weights import sha256_of

    return sha256_of(path)


def save(
    path: Path,
    *,
    family: str,
    name: str,
    version: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    card: Mapping[str, Any] | None = None,
    half: bool = True,
) -> str:
    """Write a checkpoint atomically; returns its SHA-256."""
    import torch

    tensors = {}
    for key, value in state_dict.items():
        value = value.detach().to("cpu").contiguous()
        if half and value.is_floating_point() and value.numel() >= HALF_MIN_VALUES:
            value = value.half()
        tensors[key] = value
    payload = {
        "format": FORMAT,
        "family": family,
        "name": name,
        "version": version,
        "config": _plain(config),
        "state_dict": tensors,
        "card": _plain(card or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return sha256_file(path)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """JSON types only (what ``torch.load(weights_only=True)`` accepts); others become text."""
    return dict(json.loads(json.dumps(dict(mapping), default=str)))


def load(path: Path, *, family: str | None = None) -> Checkpoint:
    """Read a checkpoint (float tensors back to float32); checks format and family."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"weights missing: {path.name}, put it in {path.parent}") from None
    except Exception as error:  # pickle, zip and torch errors all mean "not readable"
        raise CheckpointError(f"{path} is not a readable checkpoint ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a PerceptLab codec checkpoint ({FORMAT})")
    if family is not None and payload["family"] != family:
        raise CheckpointError(f"{path} holds a {payload['family']} model, not {family}")
    state = {
        key: value.float() if value.is_floating_point() else value
        for key, value in payload["state_dict"].items()
    }
    return Checkpoint(
        path=path,
        family=str(payload["family"]),
        name=str(payload["name"]),
        version=str(payload["version"]),
        config=dict(payload["config"]),
        state_dict=state,
        card=dict(payload.get("card") or {}),
        sha256=sha256_file(path),
    )
