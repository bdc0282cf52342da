"""Pretrained weight files for the learned metrics: manifest, verification and fetching.

DISTS and LPIPS (through piq) need torchvision's ImageNet VGG16 plus a small file of their own.
piq would fetch all three through ``torch.hub`` on first use; PerceptLab never lets it (the
workers may be offline, and a silent download is an unrecorded input). Instead the files live in
one weights directory, are fetched on purpose by ``manage.py fetch_weights`` (download, or copy
from a folder carried over from a machine with internet), and are checked against their SHA-256
before a metric may use them. :mod:`perceptlab.evaluation.metrics` loads them from there.

Every function here takes the directory as an argument; :func:`configured_weights_dir` is the one
place that reads it from Django's settings. Downloads and copies stream into a temporary file
beside the destination while hashing, and only a file whose digest matches is renamed into place
(``os.replace``, atomic on one file system), so an interrupted or corrupt fetch leaves nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from perceptlab.lib.hashing import CHUNK, sha256_of

FETCH_HINT = "run `manage.py fetch_weights`"


@dataclass(frozen=True)
class WeightFile:
    """One pretrained weight file the metrics may need."""

    name: str
    """File name in the weights directory; also the URL's base name, which piq asks for."""
    url: str
    """Where the upstream project publishes it."""
    sha256: str | None
    """Full SHA-256 hex digest, or None where no published digest could be found (see
    ``sha256_source``); such a file is accepted but reported as unverified."""
    sha256_source: str
    """Where the digest was seen, or why there is none."""
    metrics: tuple[str, ...]
    """Slugs of the metrics (perceptlab.evaluation.metrics.METRICS) or codecs (the CompressAI
    baselines) that need this file; ``fetch_weights --only <slug>`` selects them."""
    licence: str = ""
    """The terms the file is released under, where they restrict its use (e.g. MS-ILLM's
    CC-BY-NC 4.0); shown with the file by ``fetch_weights`` and ``fetch_weights --check``."""


MANIFEST: dict[str, WeightFile] = {
    entry.name: entry
    for entry in (
        WeightFile(
            name="vgg16-397923af.pth",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            # torchvision names its files <name>-<first 8 hex digits of the SHA-256>; the full
            # digest below begins with those 8 digits.
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            sha256_source=(
                "Git LFS details of huggingface.co/Keiser41/mangaaa, "
                "model/vgg16-397923af.pth (553 MB), matching the digest pinned in several "
                "public projects' download scripts"
            ),
            metrics=("dists", "lpips"),
        ),
        WeightFile(
            name="dists_weights.pt",
            url="https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt",
            sha256=None,
            sha256_source=(
                "no published SHA-256 found for piq's release asset; "
                "pin it here from a trusted download"
            ),
            metrics=("dists",),
        ),
        WeightFile(
            name="lpips_weights.pt",
            url=(
                "https://github.com/photosynthesis-team/photosynthesis.metrics/"
                "releases/download/v0.4.0/lpips_weights.pt"
            ),
            sha256=None,
            sha256_source=(
                "no published SHA-256 found for piq's release asset; "
                "pin it here from a trusted download"
            ),
            metrics=("lpips",),
        ),
    )
}


def register_files(entries: Sequence[WeightFile]) -> None:
    """Add weight files a higher layer needs (the codecs app adds the CompressAI zoo's
    files at start-up) to :data:`MANIFEST`; a name already there with other contents is an
    error."""
    for entry in entries:
        known = MANIFEST.get(entry.name)
        if known is not None and known != entry:
            raise ValueError(f"weight file {entry.name} is registered twice, differently")
        MANIFEST[entry.name] = entry


class WeightsError(Exception):
    """A weight file that is missing, corrupt or cannot be fetched; the message says what to do."""


class WeightsUnavailable(WeightsError):
    """A metric's weight file is missing from the weights directory or fails its SHA-256 check."""


class HashMismatch(WeightsError):
    def __init__(self, name: str, origin: str, expected: str, got: str) -> None:
        super().__init__(
            f"{name} from {origin} has SHA-256 {got}, expected {expected}; nothing was kept"
        )
        self.expected = expected
        self.got = got


class Unreachable(WeightsError):
    def __init__(self, url: str, reason: object) -> None:
        super().__init__(
            f"could not reach {url}: {reason}; copy the file from a machine with internet "
            "and run fetch_weights --from DIR"
        )
        self.url = url


class NotInSource(WeightsError):
    pass


class State(Enum):
    VERIFIED = "verified"
    UNPINNED = "present, unverified (no published SHA-256)"
    MISMATCH = "CORRUPT (SHA-256 mismatch)"
    MISSING = "missing"

    @property
    def usable(self) -> bool:
        return self in (State.VERIFIED, State.UNPINNED)


@dataclass(frozen=True)
class FileState:
    """What one manifest file looks like in a weights directory."""

    entry: WeightFile
    path: Path
    state: State
    sha256: str | None
    """Digest of the file on disk (None when missing)."""

    def describe(self) -> str:
        line = f"{self.entry.name}: {self.state.value} (needed by {', '.join(self.entry.metrics)})"
        if self.state is State.MISMATCH:
            line += f"; has {self.sha256}, expected {self.entry.sha256}"
        elif self.state is State.UNPINNED:
            line += f"; SHA-256 of this copy {self.sha256}"
        if self.entry.licence:
            line += f"; licence: {self.entry.licence}"
        return line


def configured_weights_dir() -> Path:
    """The weights directory from Django settings (``PERCEPTLAB_WEIGHTS_DIR``, else
    ``VAR_DIR / "weights"``); outside Django (a training run on a GPU machine) the
    ``PERCEPTLAB_WEIGHTS_DIR`` environment variable, else ``var/weights``."""
    from django.conf import settings

    if not settings.configured:
        return Path(os.environ.get("PERCEPTLAB_WEIGHTS_DIR", "var/weights"))
    return Path(getattr(settings, "PERCEPTLAB_WEIGHTS_DIR", settings.VAR_DIR / "weights"))


def file_state(entry: WeightFile, directory: Path) -> FileState:
    """Whether ``entry`` is present in ``directory`` and matches its pinned digest."""
    path = Path(directory) / entry.name
    if not path.is_file():
        return FileState(entry, path, State.MISSING, None)
    digest = sha256_of(path)
    if entry.sha256 is None:
        return FileState(entry, path, State.UNPINNED, digest)
    state = State.VERIFIED if digest == entry.sha256 else State.MISMATCH
    return FileState(entry, path, state, digest)


def file_states(
    directory: Path, *, manifest: Mapping[str, WeightFile] = MANIFEST
) -> list[FileState]:
    return [file_state(entry, directory) for entry in manifest.values()]


def missing_message(names: Sequence[str], directory: Path) -> str:
    """The reason a metric is unavailable when its weight files are absent."""
    it = "it" if len(names) == 1 else "them"
    return f"weights missing: {', '.join(names)}, put {it} in {directory} (or {FETCH_HINT})"


def resolve(
    names: Sequence[str], directory: Path, *, manifest: Mapping[str, WeightFile] = MANIFEST
) -> dict[str, FileState]:
    """The usable files ``names`` in ``directory``, or :class:`WeightsUnavailable` saying why not.

    A file without a published digest (``sha256 is None``) is usable; its ``FileState.sha256``
    is what the caller should record with its results.
    """
    unknown = [name for name in names if name not in manifest]
    if unknown:
        raise WeightsUnavailable(
            f"weights {', '.join(unknown)} are not in the manifest; known: {', '.join(manifest)}"
        )
    states = {name: file_state(manifest[name], directory) for name in names}
    missing = [name for name, s in states.items() if s.state is State.MISSING]
    if missing:
        raise WeightsUnavailable(missing_message(missing, directory))
    for s in states.values():
        if s.state is State.MISMATCH:
            raise WeightsUnavailable(
                f"weights corrupt: {s.path} has SHA-256 {s.sha256}, expected {s.entry.sha256}; "
                f"delete it and {FETCH_HINT}"
            )
    return states


def select(
    only: Sequence[str], *, manifest: Mapping[str, WeightFile] = MANIFEST
) -> list[WeightFile]:
    """Manifest entries named by file name or by the slug of a metric that needs them; when
    ``only`` is empty, every entry without a licence of its own (files under a restrictive
    licence, such as MS-ILLM's CC-BY-NC weights, are fetched only when named)."""
    if not only:
        return [entry for entry in manifest.values() if not entry.licence]
    chosen: dict[str, WeightFile] = {}
    for name in only:
        matches = [e for e in manifest.values() if name in (e.name, *e.metrics)]
        if not matches:
            metrics = sorted({m for e in manifest.values() for m in e.metrics})
            raise WeightsError(
                f"unknown weight file or metric {name!r}; files: {', '.join(manifest)}; "
                f"metrics: {', '.join(metrics)}"
            )
        chosen.update((e.name, e) for e in matches)
    return list(chosen.values())


def licensed_groups(manifest: Mapping[str, WeightFile] = MANIFEST) -> dict[str, str]:
    """Slug → licence of the files that :func:`select` leaves out unless named."""
    return {slug: e.licence for e in manifest.values() if e.licence for slug in e.metrics}


@dataclass(frozen=True)
class FetchOutcome:
    state: FileState
    action: str
    """"downloaded from <url>", "copied from <dir>" or "already present"."""

    def describe(self) -> str:
        return f"{self.state.describe()} [{self.action}]"


def fetch(
    entry: WeightFile,
    directory: Path,
    *,
    source: Path | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> FetchOutcome:
    """Put ``entry`` into ``directory``: copied from the folder ``source`` if given, else
    downloaded from ``entry.url``; verified against ``entry.sha256`` before it is kept.

    A usable file already present is kept unless ``force``; a corrupt one is replaced.
    Raises :class:`Unreachable`, :class:`HashMismatch` or :class:`NotInSource`.
    """
    directory = Path(directory)
    current = file_state(entry, directory)
    if current.state.usable and not force:
        return FetchOutcome(current, "already present")
    directory.mkdir(parents=True, exist_ok=True)
    if source is not None:
        origin = Path(source) / entry.name
        if not origin.is_file():
            raise NotInSource(
                f"{entry.name} is not in {source}; download it from {entry.url} on a machine "
                "with internet and put it there under that exact name"
            )
        with open(origin, "rb") as stream:
            _store(stream, entry, directory, origin=str(origin))
        return FetchOutcome(file_state(entry, directory), f"copied from {source}")
    _download(entry, directory, timeout=timeout)
    return FetchOutcome(file_state(entry, directory), f"downloaded from {entry.url}")


def _download(entry: WeightFile, directory: Path, *, timeout: float) -> None:
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout) as response:
            _store(response, entry, directory, origin=entry.url)
    except urllib.error.HTTPError as exc:
        raise Unreachable(entry.url, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise Unreachable(entry.url, getattr(exc, "reason", exc)) from exc


def _store(stream: BinaryIO, entry: WeightFile, directory: Path, *, origin: str) -> None:
    """Stream into a temporary file in ``directory`` while hashing; rename it into place only
    if the digest matches, and delete it otherwise."""
    handle, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{entry.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if entry.sha256 is not None and got != entry.sha256:
            raise HashMismatch(entry.name, origin, entry.sha256, got)
        os.replace(temp, directory / entry.name)
    finally:
        temp.unlink(missing_ok=True)
