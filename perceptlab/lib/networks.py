"""Pretrained networks loaded from the weights folder only: nothing is ever downloaded.

The learned metrics (:mod:`perceptlab.evaluation.metrics`) and the codecs' training losses
(:mod:`perceptlab.codecs.neural.losses`) both load piq's DISTS and LPIPS; the weight files come
from :mod:`perceptlab.lib.weights` (manifest, SHA-256 check, fetch) and are read through
:func:`local_weights_only`, so a network is never built with random or downloaded weights.
torch is imported inside functions only.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from perceptlab.lib import weights as weightfiles

if TYPE_CHECKING:
    import torch

NEURAL_EXTRA = "needs the 'neural' extra (torch, torchvision, piq)"


def import_piq() -> ModuleType:
    """piq (with torch), or :class:`~perceptlab.lib.weights.WeightsUnavailable` saying which
    extra to install."""
    try:
        import piq
        import torch  # noqa: F401
    except ImportError as exc:
        raise weightfiles.WeightsUnavailable(f"{NEURAL_EXTRA}: {exc}") from exc
    return piq


def load_network(
    slug: str,
    weights_dir: Path,
    *,
    device: str = "cpu",
    manifest: Mapping[str, weightfiles.WeightFile] = weightfiles.MANIFEST,
) -> torch.nn.Module:
    """piq's ``DISTS`` or ``LPIPS`` network (``slug`` "dists"/"lpips") from local weights only,
    as a differentiable module for training losses: ``net(x_hat, x)`` with inputs in [0, 1].

    Raises :class:`perceptlab.lib.weights.WeightsUnavailable` with the
    "weights missing: <file>, put it in <dir>" message when the files are absent — a loss is
    never computed with a random backbone.
    """
    classes = {"dists": "DISTS", "lpips": "LPIPS"}
    if slug not in classes:
        raise ValueError(f"no trainable network metric {slug!r}; choose {sorted(classes)}")
    names = [e.name for e in manifest.values() if slug in e.metrics]
    files = weightfiles.resolve(names, Path(weights_dir), manifest=manifest)
    piq = import_piq()
    with local_weights_only({n: state.path for n, state in files.items()}):
        network = getattr(piq, classes[slug])(reduction="mean")
    network = network.to(device).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network  # type: ignore[no-any-return]


_HUB_LOCK = threading.Lock()


@contextmanager
def local_weights_only(files: Mapping[str, Path]) -> Iterator[None]:
    """While the block runs, weight loaders read ``files`` (keyed by URL base name) and nothing
    can be downloaded.

    piq 0.8 loads its own weights with ``torch.hub.load_state_dict_from_url`` and builds VGG16
    with ``torchvision.models.vgg16(pretrained=True)``, which loads through
    ``torchvision.models._api.load_state_dict_from_url``; both names are rebound to a local
    reader (``torch.load(..., weights_only=True)``), and torch.hub's downloader to a function
    that raises, so a loader this misses still cannot reach the network. These are
    process-global names, hence the lock; another thread calling ``torch.hub`` in the same
    moment would meet the local reader too.
    """
    import torch
    import torchvision.models._api as torchvision_api

    def load_local(
        url: str,
        model_dir: str | None = None,
        map_location: Any = None,
        progress: bool = True,
        check_hash: bool = False,
        file_name: str | None = None,
        weights_only: bool = False,
    ) -> Any:
        name = file_name or PurePosixPath(urlparse(url).path).name
        if name not in files:
            raise weightfiles.WeightsUnavailable(
                f"piq asked for {name} ({url}), which is not among this metric's weight files "
                f"({', '.join(files) or 'none'}); update the weights manifest"
            )
        return torch.load(files[name], map_location="cpu", weights_only=True)

    def refuse(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise weightfiles.WeightsUnavailable(f"refused to download {url}; {weightfiles.FETCH_HINT}")

    swaps: list[tuple[Any, str, Any]] = [
        (torch.hub, "load_state_dict_from_url", load_local),
        (torchvision_api, "load_state_dict_from_url", load_local),
        (torch.hub, "download_url_to_file", refuse),
    ]
    with _HUB_LOCK, warnings.catch_warnings():
        # torchvision deprecates vgg16(pretrained=True), which piq calls.
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in swaps]
        try:
            for owner, attr, replacement in swaps:
                setattr(owner, attr, replacement)
            yield
        finally:
            for owner, attr, original in saved:
                setattr(owner, attr, original)
