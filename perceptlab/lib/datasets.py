"""The public datasets PerceptLab's tests, benchmarks and demo read: catalogue, location, fetching.

Every file has a pinned public source and a SHA-256, so a machine with only the repository and
the internet can rebuild the exact bytes the tests were written against:

* ``kodak``: the 24 Kodak PhotoCD images (r0k.us, as copied into GitHub
  ``imazen/codec-corpus`` ``kodak/``);
* ``cid22``: the 250 CID22-512 reference images (Cloudinary CID22, GitHub
  ``imazen/codec-corpus`` ``CID22/CID22-512/``; CC BY-SA 4.0);
* ``sureal``: four absolute-rating studies, converted from Netflix/sureal's Python dataset files;
* ``pairwise``: 2AFC studies converted from mantiuk/pwcmp's examples, sureal's
  ``lukas_pc_dataset.py`` and the HiFiC user study (hific/hific.github.io ``raw/userstudy.json``);
* ``bdrate``: google-research ``mucped23/elo.csv``;
* ``aic3``: the JPEG AIC-3 triplet responses (jpeg-aic/dataset-JPEG-AI-SDR25) and the published
  JND scale of two of its sources (jpeg-aic/JPEG-AIC-4-datasets).

Where a file is a conversion (``DataFile.convert``), the converter reads the upstream file as
data (``ast`` for sureal's Python files, never ``exec``; ``json``; ``csv``; ``zipfile``) and its
output must hash to ``DataFile.sha256``, the digest of the reference copy in
``../shared/datasets``. Each converter was checked to reproduce that copy byte for byte from
the real upstream file at the pinned commit (for ``bdrate``, from its content: the upstream
bytes' line ends could not be seen, so only the result's digest is pinned).

Where the datasets live (:func:`resolve_root`): the folder named by ``PERCEPTLAB_DATASETS``;
else ``../shared/datasets`` beside the repository when it exists; else the cache folder
``$XDG_CACHE_HOME/perceptlab/datasets`` (``~/.cache/perceptlab/datasets``). Dataset ``NAME``
is the subfolder ``NAME/`` there. :func:`dataset_path` returns one file, fetching its dataset
on first use; ``manage.py fetch_dataset`` fetches, copies (``--from DIR``) or checks them.
Fetched and copied files are written to a temporary file beside their destination and
renamed into place only when their SHA-256 matches, so a failed fetch leaves nothing behind.

This module imports nothing from Django: it is used by scripts and benchmarks as well.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import http.client
import io
import json
import math
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import quote

from perceptlab.lib import dataset_sums
from perceptlab.lib.hashing import sha256_of

ENV_VAR = "PERCEPTLAB_DATASETS"
REPO = Path(__file__).resolve().parents[2]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
"""The reference copies beside the repository (on the project's own machines)."""
TIMEOUT = 60.0
"""Seconds a download may stall before it is given up."""
FETCH_COMMAND = "python manage.py fetch_dataset"
_GIVEN = "given by the caller"


Converter = Callable[[bytes], bytes]


# -- errors -----------------------------------------------------------------------------------


class DatasetError(Exception):
    """A dataset file that is unknown, missing, corrupt or cannot be had; the message says why
    and what to do."""


class UnknownDataset(DatasetError):
    """A dataset, or a file of a dataset, that is not in the catalogue."""


class DatasetUnavailable(DatasetError):
    """A file that is not in the datasets folder and could not be fetched there."""


class NotFetchable(DatasetError):
    """A dataset with no public source that can be downloaded without a person."""


class NotInSource(DatasetError):
    """``--from DIR`` holds neither the file nor its upstream source."""


class Unreachable(DatasetError):
    def __init__(self, url: str, reason: object) -> None:
        super().__init__(f"could not download {url}: {reason}")
        self.url = url


class HashMismatch(DatasetError):
    def __init__(self, what: str, origin: str, expected: str, got: str) -> None:
        super().__init__(
            f"{what} ({origin}) has SHA-256 {got}, expected {expected}; nothing was kept"
        )
        self.expected = expected
        self.got = got


class ConversionError(DatasetError):
    """An upstream file that is not in the format its converter reads."""


# -- catalogue types --------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One public upstream file."""

    url: str
    """Where it is downloaded from (pinned to a commit where the host allows it)."""
    path: str
    """Its path in the upstream repository or archive; ``fetch_dataset --from DIR`` looks for
    ``DIR/<path>`` and ``DIR/<base name>``."""
    sha256: str | None
    """SHA-256 of the bytes at ``url``, or None where it could not be determined here (the
    converted file's own digest still guards the result)."""

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as it lies in the dataset's folder."""

    name: str
    """Path inside the dataset folder (``/``-separated)."""
    sha256: str
    """SHA-256 of the file (the reference copy's bytes)."""
    source: Source
    convert: Converter | None = None
    """Turns the source's bytes into the file's; None: the file is the source, byte for byte."""


@dataclass(frozen=True)
class Dataset:
    """A named set of files that live together in ``<datasets folder>/<name>/``."""

    name: str
    description: str
    origin: str
    """Where the files come from, their licence and what to cite."""
    files: tuple[DataFile, ...]
    fetchable: bool = True
    """False where no public source can be downloaded unattended (a form, a login, or a
    conversion that could not be reproduced)."""
    unavailable: str = ""
    """Why not fetchable, and where a person gets the files."""
    by_name: Mapping[str, DataFile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(f"dataset {self.name!r} lists {', '.join(duplicates)} twice")
        if not self.fetchable and not self.unavailable:
            raise ValueError(f"dataset {self.name!r} is not fetchable but does not say why")
        object.__setattr__(self, "by_name", {f.name: f for f in self.files})

    def file(self, name: str) -> DataFile:
        """The catalogue entry of ``name``, or :class:`UnknownDataset` listing a few valid ones."""
        if name not in self.by_name:
            listed = ", ".join(list(self.by_name)[:5])
            more = f", … ({len(self.files)} files)" if len(self.files) > 5 else ""
            raise UnknownDataset(
                f"{name!r} is not a file of dataset {self.name!r}; its files: {listed}{more}"
            )
        return self.by_name[name]


def catalogue_of(*datasets: Dataset) -> dict[str, Dataset]:
    """A catalogue keyed by dataset name; raises on a name used twice."""
    catalogue: dict[str, Dataset] = {}
    for dataset in datasets:
        if dataset.name in catalogue:
            raise ValueError(f"dataset {dataset.name!r} is defined twice")
        catalogue[dataset.name] = dataset
    return catalogue


# -- where the datasets live ------------------------------------------------------------------


def resolve_root(
    *, env: Mapping[str, str] | None = None, shared: Path | None = None
) -> tuple[Path, str]:
    """The datasets folder and how it was chosen: ``PERCEPTLAB_DATASETS`` if set, else
    ``shared`` (``../shared/datasets`` beside the repository) if it is a folder, else the
    cache folder ``$XDG_CACHE_HOME/perceptlab/datasets`` or ``~/.cache/perceptlab/datasets``."""
    env = os.environ if env is None else env
    shared = SHARED_DATASETS if shared is None else shared
    configured = env.get(ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser().resolve(), ENV_VAR
    if shared.is_dir():
        return shared, "the shared folder beside the repository"
    cache = env.get("XDG_CACHE_HOME", "").strip()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = Path(cache) if cache and Path(cache).is_absolute() else home / ".cache"
    return base / "perceptlab" / "datasets", f"the cache folder ({ENV_VAR} is unset)"


def datasets_root(*, env: Mapping[str, str] | None = None, shared: Path | None = None) -> Path:
    """The folder holding the datasets (see :func:`resolve_root`)."""
    return resolve_root(env=env, shared=shared)[0]


def _catalogue(catalogue: Mapping[str, Dataset] | None) -> Mapping[str, Dataset]:
    return CATALOGUE if catalogue is None else catalogue


def get_dataset(name: str, *, catalogue: Mapping[str, Dataset] | None = None) -> Dataset:
    """The catalogue entry ``name``, or :class:`UnknownDataset` listing the valid names."""
    known = _catalogue(catalogue)
    if name not in known:
        raise UnknownDataset(f"unknown dataset {name!r}; datasets: {', '.join(known)}")
    return known[name]


def dataset_path(
    name: str,
    file: str,
    *,
    root: Path | None = None,
    catalogue: Mapping[str, Dataset] | None = None,
    fetch: bool = True,
    timeout: float = TIMEOUT,
) -> Path:
    """The path of ``file`` of dataset ``name`` in the datasets folder (``root``, default
    :func:`datasets_root`). A missing file's dataset is fetched first when ``fetch`` and the
    dataset is fetchable; otherwise, or when fetching fails, :class:`DatasetUnavailable` names
    the file, the folder searched and the command that fetches it. A file that is present is
    returned without hashing it (``fetch_dataset --check`` does that)."""
    dataset = get_dataset(name, catalogue=catalogue)
    dataset.file(file)
    root, origin = resolve_root() if root is None else (root, _GIVEN)
    path = root / name / file
    if not path.is_file():
        _fetch_missing(dataset, root, origin, missing=file, fetch=fetch, timeout=timeout)
    return path


def dataset_dir(
    name: str,
    *,
    root: Path | None = None,
    catalogue: Mapping[str, Dataset] | None = None,
    fetch: bool = True,
    timeout: float = TIMEOUT,
) -> Path:
    """The folder of dataset ``name`` with every file of it present, fetched first if any is
    missing (errors as :func:`dataset_path`)."""
    dataset = get_dataset(name, catalogue=catalogue)
    root, origin = resolve_root() if root is None else (root, _GIVEN)
    folder = root / name
    missing = [f.name for f in dataset.files if not (folder / f.name).is_file()]
    if missing:
        _fetch_missing(dataset, root, origin, missing=missing[0], fetch=fetch, timeout=timeout)
    return folder


def _fetch_missing(
    dataset: Dataset, root: Path, origin: str, *, missing: str, fetch: bool, timeout: float
) -> None:
    folder = root / dataset.name
    where = f"{folder} (the datasets folder: {origin})"
    command = f"{FETCH_COMMAND} {dataset.name}" + (f" --to {root}" if origin == _GIVEN else "")
    if not dataset.fetchable:
        raise DatasetUnavailable(
            f"{dataset.name}/{missing} is missing from {where}. {dataset.unavailable} "
            f"Then run `{command} --from DIR`, or set {ENV_VAR} to a folder that holds "
            f"{dataset.name}/."
        )
    hint = (
        f"run `{command}` on a machine with internet access (or `{command} --from DIR` with "
        f"a copy), or set {ENV_VAR} to a folder that holds {dataset.name}/"
    )
    if not fetch:
        raise DatasetUnavailable(f"{dataset.name}/{missing} is missing from {where}; {hint}")
    key = (folder, dataset.name)
    try:
        if key in _UNREACHABLE:
            raise _UNREACHABLE[key]
        fetch_dataset(dataset.name, root=root, catalogue={dataset.name: dataset}, timeout=timeout)
    except (DatasetError, OSError) as error:
        if isinstance(error, Unreachable):
            _UNREACHABLE[key] = error
        raise DatasetUnavailable(
            f"{dataset.name}/{missing} is missing from {where} and could not be fetched: "
            f"{error}. To get it, {hint}."
        ) from error


_UNREACHABLE: dict[tuple[Path, str], Unreachable] = {}
"""Downloads that failed in this process: not tried again for every file a test suite asks
for (an offline machine would otherwise wait out the timeout each time)."""


# -- checking ---------------------------------------------------------------------------------


class State(Enum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class FileCheck:
    file: DataFile
    path: Path
    state: State
    sha256: str | None
    """Digest of the file on disk (None when missing)."""

    def describe(self) -> str:
        line = f"{self.state.value:8} {self.file.name}"
        if self.state is State.MISMATCH:
            line += f" (has SHA-256 {self.sha256}, expected {self.file.sha256})"
        return line


def check_file(file: DataFile, folder: Path) -> FileCheck:
    path = folder / file.name
    if not path.is_file():
        return FileCheck(file, path, State.MISSING, None)
    digest = sha256_of(path)
    return FileCheck(file, path, State.OK if digest == file.sha256 else State.MISMATCH, digest)


def check_dataset(
    name: str, *, root: Path | None = None, catalogue: Mapping[str, Dataset] | None = None
) -> list[FileCheck]:
    """Each file of dataset ``name`` in ``root`` (default :func:`datasets_root`): ok, missing, or
    present with another SHA-256."""
    dataset = get_dataset(name, catalogue=catalogue)
    folder = (datasets_root() if root is None else root) / name
    return [check_file(f, folder) for f in dataset.files]


# -- fetching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_dataset` did with one dataset."""

    dataset: str
    folder: Path
    actions: tuple[tuple[str, str], ...]
    """(file name, "already present" | "downloaded from <url>" | "copied from <path>")."""

    def describe(self) -> str:
        counts = Counter(action.split(" from ")[0] for _, action in self.actions)
        parts = ", ".join(f"{n} {what}" for what, n in counts.items())
        files = f"{len(self.actions)} file{'' if len(self.actions) == 1 else 's'}"
        return f"{self.dataset}: {files} in {self.folder} ({parts})"


def fetch_dataset(
    name: str,
    *,
    root: Path | None = None,
    source_dir: Path | None = None,
    catalogue: Mapping[str, Dataset] | None = None,
    force: bool = False,
    timeout: float = TIMEOUT,
) -> Fetched:
    """Put every file of dataset ``name`` into ``<root>/<name>/``: copied or converted from the
    folder ``source_dir`` if given, else downloaded (and converted) from its source. A file
    already present with the right SHA-256 is kept unless ``force``; a corrupt one is replaced.

    Stops at the first file that cannot be had, keeping the verified files before it: raises
    :class:`NotFetchable`, :class:`NotInSource`, :class:`Unreachable`, :class:`HashMismatch`
    or :class:`ConversionError`.
    """
    dataset = get_dataset(name, catalogue=catalogue)
    folder = (datasets_root() if root is None else root) / name
    todo = [f for f in dataset.files if force or check_file(f, folder).state is not State.OK]
    if todo and source_dir is None and not dataset.fetchable:
        raise NotFetchable(
            f"dataset {name!r} cannot be downloaded: {dataset.unavailable} Then run "
            f"`{FETCH_COMMAND} {name} --from DIR` (DIR holding its files), or set {ENV_VAR} "
            f"to a folder that holds {name}/."
        )
    sources = _SourceReader(dataset, source_dir, timeout=timeout)
    actions = {f.name: "already present" for f in dataset.files}
    for file in todo:
        data, origin = sources.read(file)
        _store(data, file, folder, origin=origin)
        actions[file.name] = origin
    return Fetched(name, folder, tuple(actions.items()))


class _SourceReader:
    """The bytes of each file of one dataset, from ``source_dir`` or the network; a source used
    by several files (an archive, a study converted to trials and counts) is read once."""

    def __init__(self, dataset: Dataset, source_dir: Path | None, *, timeout: float) -> None:
        self.dataset = dataset
        self.source_dir = source_dir
        self.timeout = timeout
        uses = Counter(f.source.url for f in dataset.files)
        self.shared = {url for url, n in uses.items() if n > 1}
        self.cache: dict[str, bytes] = {}

    def read(self, file: DataFile) -> tuple[bytes, str]:
        """(the file's bytes, "downloaded from …" or "copied from …")."""
        if self.source_dir is not None:
            ready = self._local([Path(self.dataset.name, file.name), Path(file.name)])
            if ready is not None:
                return ready.read_bytes(), f"copied from {ready}"
        raw, origin = self._source(file)
        if file.convert is None:
            return raw, origin
        try:
            return file.convert(raw), origin
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # a malformed upstream file
            raise ConversionError(
                f"{file.name}: its source {file.source.name} ({origin}) is not in the format "
                f"the converter reads: {exc!r}"
            ) from exc

    def _source(self, file: DataFile) -> tuple[bytes, str]:
        source = file.source
        if self.source_dir is not None:
            local = self._local(
                [Path(source.path), Path(source.name), Path(self.dataset.name, source.name)]
            )
            if local is None:
                raise NotInSource(
                    f"neither {file.name} nor its source {source.name} is in "
                    f"{self.source_dir}; download the source from {source.url} and put it there"
                )
            raw, origin = local.read_bytes(), f"copied from {local}"
        elif source.url in self.cache:
            return self.cache[source.url], f"downloaded from {source.url}"
        else:
            origin = f"downloaded from {source.url}"
            raw = download(source.url, timeout=self.timeout)
        if source.sha256 is not None:
            got = hashlib.sha256(raw).hexdigest()
            if got != source.sha256:
                raise HashMismatch(f"source {source.name}", origin, source.sha256, got)
        if source.url in self.shared:
            self.cache[source.url] = raw
        return raw, origin

    def _local(self, candidates: Sequence[Path]) -> Path | None:
        assert self.source_dir is not None
        for candidate in candidates:
            if (self.source_dir / candidate).is_file():
                return self.source_dir / candidate
        return None


def download(url: str, *, timeout: float = TIMEOUT) -> bytes:
    """The bytes at ``url``, or :class:`Unreachable` (HTTP errors, no network, a timeout)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise Unreachable(url, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise Unreachable(url, getattr(exc, "reason", exc)) from exc


def _store(data: bytes, file: DataFile, folder: Path, *, origin: str) -> None:
    """Write ``data`` to a temporary file beside ``folder/file.name``, hash what was written
    and rename it into place only if the digest matches; delete it otherwise."""
    target = folder / file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        got = sha256_of(temp)
        if got != file.sha256:
            raise HashMismatch(file.name, origin, file.sha256, got)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


# -- reading upstream files safely ------------------------------------------------------------


def read_python_assignments(text: str, *, what: str = "dataset file") -> dict[str, object]:
    """The top-level ``NAME = value`` assignments of a sureal dataset file
    (``resource/dataset/*.py``), read with :mod:`ast` and never executed.

    A value may be a literal (as :func:`ast.literal_eval` reads), a name assigned earlier, a
    ``+`` of two such values (``ref_dir + '/BigBuckBunny_25fps.yuv'`` in
    ``NFLX_dataset_public_raw.py``) or ``float('NaN')`` (a missing rating in
    ``vqeg_frtv_p1_625_line_high_dataset.py``). Imports are skipped; anything else is refused.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ConversionError(f"{what} is not Python: line {exc.lineno}: {exc.msg}") from exc
    names: dict[str, object] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            continue  # `import numpy as np` heads some files; nothing uses it
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            names[statement.targets[0].id] = _value(statement.value, names, what=what)
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            raise ConversionError(
                f"{what} line {statement.lineno}: only NAME = value assignments are read"
            )
    return names


def _value(node: ast.expr, names: Mapping[str, object], *, what: str) -> object:
    def value(child: ast.expr) -> object:
        return _value(child, names, what=what)

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [value(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(value(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        keys = [k for k in node.keys if k is not None]  # None: a `**spread`, refused below
        if len(keys) == len(node.keys):
            return {value(k): value(v) for k, v in zip(keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = value(node.operand)
        if isinstance(operand, int | float):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = value(node.left), value(node.right)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.strip().lower() in {"nan", "inf", "-inf"}
    ):
        return float(node.args[0].value)
    raise ConversionError(
        f"{what} line {node.lineno}: {ast.unparse(node)[:60]!r} is not a literal value"
    )


def _text(source: bytes, *, what: str) -> str:
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{what} is not UTF-8 text: {exc}") from exc


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]], *, crlf: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _mapping(value: object, *, where: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise ConversionError(f"{where} is not a dict")
    return value


def _list(value: object, *, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ConversionError(f"{where} is not a list")
    return value


def _entries(names: Mapping[str, object], key: str) -> list[Mapping[object, object]]:
    """The dicts of the list ``key`` (``ref_videos``, ``dis_videos``) of a sureal dataset."""
    return [_mapping(e, where=f"an entry of {key}") for e in _list(names.get(key), where=key)]


# -- converters: absolute ratings (sureal) ----------------------------------------------------


class Video(NamedTuple):
    """One entry of a sureal dataset's ``dis_videos``, with its content's name."""

    path: str
    content: str
    is_reference: bool
    """True when its path is a reference video's path (sureal lists references in
    ``dis_videos`` too, to rate them)."""


Naming = Callable[[Video], tuple[str, str, str]]
"""(stimulus, content, condition) of a video."""

RATINGS_HEADER = ("rater", "stimulus", "content", "condition", "score")


def named_by_file(video: Video) -> tuple[str, str, str]:
    """Stimulus = file name without extension; condition = what follows ``<content>_`` in it,
    ``ref`` for a reference (NFLX public, AGH quality variation)."""
    stem = PurePosixPath(video.path).stem
    if video.is_reference:
        return stem, video.content, "ref"
    if not stem.startswith(video.content + "_"):
        raise ConversionError(f"{video.path}: its name does not start with {video.content}_")
    return stem, video.content, stem[len(video.content) + 1 :]


def named_vqeghd3(video: Video) -> tuple[str, str, str]:
    """``FILEPATH/vqeghd3_src01_hrc16_cut.avi`` → ``src01_hrc16``, condition ``hrc16``."""
    parts = PurePosixPath(video.path).stem.split("_")
    if len(parts) < 3 or not parts[1].startswith("src") or not parts[2].startswith("hrc"):
        raise ConversionError(f"{video.path} is not named vqeghd3_srcNN_hrcNN")
    return f"{parts[1]}_{parts[2]}", video.content, parts[2]


def named_vqeg_frtv(video: Video) -> tuple[str, str, str]:
    """``13.0_1.0`` (source 13, HRC 1) → ``src13_hrc01``, content ``src13``, condition
    ``hrc01``."""
    try:
        source, hrc = (int(float(part)) for part in video.path.split("_"))
    except ValueError:
        raise ConversionError(f"{video.path!r} is not <source>_<hrc>") from None
    return f"src{source:02d}_hrc{hrc:02d}", f"src{source:02d}", f"hrc{hrc:02d}"


def sureal_ratings(source: bytes, *, naming: Naming) -> bytes:
    """A sureal dataset file (``ref_videos``, ``dis_videos`` with opinion scores ``os``) as the
    long CSV ``rater,stimulus,content,condition,score``, one row per rating in the file's order.

    ``os`` as a list names the raters ``s01``, ``s02``… by position; as a dict, by its keys. A
    NaN score (a rating not given) has no row. Scores are written with ``format(x, "g")``.
    """
    names = read_python_assignments(_text(source, what="sureal dataset"))
    refs = _entries(names, "ref_videos")
    contents = {r["content_id"]: str(r["content_name"]) for r in refs}
    reference_paths = {r["path"] for r in refs}
    rows: list[tuple[str, str, str, str, str]] = []
    for video in _entries(names, "dis_videos"):
        if video.get("content_id") not in contents:
            raise ConversionError(
                f"{video.get('path')}: content_id {video.get('content_id')} has no ref video"
            )
        path = str(video["path"])
        stimulus, content, condition = naming(
            Video(path, contents[video["content_id"]], path in reference_paths)
        )
        for rater, score in _opinion_scores(video.get("os"), where=path):
            rows.append((rater, stimulus, content, condition, format(score, "g")))
    return _csv_bytes(RATINGS_HEADER, rows, crlf=False)


def _opinion_scores(scores: object, *, where: str) -> list[tuple[str, int | float]]:
    pairs: list[tuple[str, object]]
    if isinstance(scores, list):
        pairs = [(f"s{i:02d}", s) for i, s in enumerate(scores, start=1)]
    elif isinstance(scores, Mapping):
        pairs = [(str(k), s) for k, s in scores.items()]
    else:
        raise ConversionError(f"{where}: os is neither a list nor a dict")
    given: list[tuple[str, int | float]] = []
    for rater, score in pairs:
        if not isinstance(score, int | float) or isinstance(score, bool):
            raise ConversionError(f"{where}: the score of {rater} is {score!r}, not a number")
        if not (isinstance(score, float) and math.isnan(score)):
            given.append((rater, score))
    return given


def sureal_converter(naming: Naming) -> Converter:
    def convert(source: bytes) -> bytes:
        return sureal_ratings(source, naming=naming)

    return convert


# -- converters: pairwise comparisons ---------------------------------------------------------


class Trial(NamedTuple):
    number: str
    rater: str
    group: str
    a: str
    b: str
    winner: str

    @property
    def loser(self) -> str:
        return self.b if self.winner == self.a else self.a


TRIALS_HEADER = ("trial", "rater", "group", "stimulus_a", "stimulus_b", "winner", "loser")
COUNTS_HEADER = ("group", "winner", "loser", "count")
TrialReader = Callable[[bytes], list[Trial]]


def _dict_rows(source: bytes, columns: Sequence[str], *, what: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(_text(source, what=what))))
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise ConversionError(f"{what} has no rows or lacks columns {', '.join(missing)}")
    return rows


def pwcmp_tmo_trials(source: bytes) -> list[Trial]:
    """mantiuk/pwcmp ``examples/ex3_tmo_cmp_data.csv`` (``observer, session_id, scene,
    condition_A, condition_B, is_A_selected, criterion``; Eilertsen et al. 2013): one trial per
    row, numbered from 1, grouped by scene."""
    columns = ("observer", "scene", "condition_A", "condition_B", "is_A_selected")
    trials = []
    for i, row in enumerate(_dict_rows(source, columns, what="pwcmp TMO CSV"), start=1):
        a, b = row["condition_A"], row["condition_B"]
        winner = a if row["is_A_selected"] == "1" else b
        trials.append(Trial(str(i), row["observer"], row["scene"], a, b, winner))
    return trials


def pwcmp_lightfield_trials(source: bytes) -> list[Trial]:
    """mantiuk/pwcmp ``examples/lf_quality_pwcmps.csv`` (``trial, observer, session, scene,
    dist_type1, dist_level1, dist_type2, dist_level2, selected``; Adhikarla et al. 2017): items
    are ``<type>_<level>``, ``selected`` 1 or 2 picks the winner; trial numbers are the file's."""
    columns = ("trial", "observer", "scene", "dist_type1", "dist_level1", "dist_type2",
               "dist_level2", "selected")  # fmt: skip
    trials = []
    for row in _dict_rows(source, columns, what="pwcmp LF CSV"):
        a = f"{row['dist_type1']}_{row['dist_level1']}"
        b = f"{row['dist_type2']}_{row['dist_level2']}"
        if row["selected"] not in ("1", "2"):
            raise ConversionError(f"trial {row['trial']}: selected is {row['selected']!r}")
        winner = a if row["selected"] == "1" else b
        trials.append(Trial(row["trial"], row["observer"], row["scene"], a, b, winner))
    return trials


def sureal_paired_trials(source: bytes) -> list[Trial]:
    """sureal ``resource/dataset/lukas_pc_dataset.py`` (Krasula et al. 2017): each video's
    ``os`` maps ``(subject, other asset_id)`` to how often the subject preferred it over the
    other. One trial per preference, winner first (``stimulus_a`` = winner); raters renamed
    ``r01``… in sorted order of their names; grouped by content."""
    names = read_python_assignments(_text(source, what="sureal paired-comparison dataset"))
    refs = _entries(names, "ref_videos")
    contents = {r["content_id"]: str(r["content_name"]) for r in refs}
    videos = _entries(names, "dis_videos")
    stems = {v["asset_id"]: PurePosixPath(str(v["path"])).stem for v in videos}
    preferences: list[tuple[str, str, str, str, int]] = []
    for video in videos:
        winner, group = stems[video["asset_id"]], contents[video["content_id"]]
        for key, count in _mapping(video.get("os"), where=f"os of {winner}").items():
            if not (isinstance(key, tuple) and len(key) == 2 and key[1] in stems):
                raise ConversionError(f"{winner}: os key {key!r} is not (subject, asset_id)")
            if not isinstance(count, int) or not 0 <= count <= 10_000:
                raise ConversionError(f"{winner}: os count {count!r} is not a plausible count")
            preferences.append((str(key[0]), group, winner, stems[key[1]], count))
    pseudonyms = {n: f"r{i:02d}" for i, n in enumerate(sorted({p[0] for p in preferences}), 1)}
    trials: list[Trial] = []
    for rater, group, winner, loser, count in preferences:
        for _ in range(count):
            number = str(len(trials) + 1)
            trials.append(Trial(number, pseudonyms[rater], group, winner, loser, winner))
    return trials


def trials_csv(trials: Sequence[Trial]) -> bytes:
    """``trial,rater,group,stimulus_a,stimulus_b,winner,loser``, one row per trial."""
    rows = [(t.number, t.rater, t.group, t.a, t.b, t.winner, t.loser) for t in trials]
    return _csv_bytes(TRIALS_HEADER, rows, crlf=False)


def counts_csv(trials: Sequence[Trial]) -> bytes:
    """``group,winner,loser,count``: how often each item beat each other, sorted."""
    counts = Counter((t.group, t.winner, t.loser) for t in trials)
    return _csv_bytes(COUNTS_HEADER, [(*k, counts[k]) for k in sorted(counts)], crlf=False)


def as_trials(reader: TrialReader) -> Converter:
    def convert(source: bytes) -> bytes:
        return trials_csv(reader(source))

    return convert


def as_counts(reader: TrialReader) -> Converter:
    def convert(source: bytes) -> bytes:
        return counts_csv(reader(source))

    return convert


HIFIC_HEADER = (
    "rater", "record", "image", "crop_x", "crop_y", "crop_w", "crop_h", "greater", "lesser",
    "random_choice",
)  # fmt: skip


def hific_userstudy(source: bytes) -> bytes:
    """hific/hific.github.io ``raw/userstudy.json`` (Mentzer et al., NeurIPS 2020):
    ``{rater id: {record id: {image, crop: [x, y, w, h], greater, lesser[, random_choice]}}}``
    as one CSV row per record, raters renamed ``r01``… in sorted order of their ids, records in
    the file's order, ``random_choice`` 0/1; CRLF line ends (Python's csv default)."""
    try:
        study = json.loads(_text(source, what="HiFiC user study"))
    except json.JSONDecodeError as exc:
        raise ConversionError(f"HiFiC user study is not JSON: {exc}") from exc
    rows = []
    raters = _mapping(study, where="the user study")
    for number, rater in enumerate(sorted(raters, key=str), start=1):
        for record, answer in _mapping(raters[rater], where=f"rater {rater}").items():
            trial = _mapping(answer, where=f"record {record}")
            crop = _list(trial.get("crop"), where=f"crop of {record}")
            if len(crop) != 4 or any(k not in trial for k in ("image", "greater", "lesser")):
                raise ConversionError(f"record {record} lacks image, crop, greater or lesser")
            choice = int(bool(trial.get("random_choice", False)))
            row = (
                f"r{number:02d}",
                record,
                trial["image"],
                *crop,
                trial["greater"],
                trial["lesser"],
                choice,
            )
            rows.append(row)
    return _csv_bytes(HIFIC_HEADER, rows, crlf=True)


# -- converters: plain files ------------------------------------------------------------------


def lf_line_ends(source: bytes) -> bytes:
    """The file with CRLF line ends turned into LF (the bytes are otherwise kept)."""
    return source.replace(b"\r\n", b"\n")


def zip_member(member: str) -> Converter:
    """The bytes of ``member`` of a ZIP archive, unchanged."""

    def convert(source: bytes) -> bytes:
        try:
            with zipfile.ZipFile(io.BytesIO(source)) as archive:
                return archive.read(member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ConversionError(f"cannot read {member} from the archive: {exc}") from exc

    return convert


def csv_rows_where(column: str, values: Iterable[str]) -> Converter:
    """The header and the rows whose ``column`` is one of ``values``, each line kept as it is
    but ended with LF."""
    wanted = frozenset(values)

    def convert(source: bytes) -> bytes:
        lines = _text(source, what="CSV").splitlines()
        header = next(csv.reader(lines[:1]), [])
        if column not in header:
            raise ConversionError(f"the CSV has no column {column!r}; it has {header}")
        index = header.index(column)
        kept = [lines[0]] + [
            line for line, row in zip(lines[1:], csv.reader(lines[1:]), strict=True)
            if len(row) > index and row[index] in wanted
        ]  # fmt: skip
        return ("\n".join(kept) + "\n").encode("utf-8")

    return convert


# -- the catalogue ----------------------------------------------------------------------------


def github(repo: str, commit: str, path: str, sha256: str | None) -> Source:
    """A file of a public GitHub repository at a pinned commit."""
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path)}"
    return Source(url=url, path=path, sha256=sha256)


def _sums(text: str) -> list[tuple[str, str]]:
    """(name, digest) of each line of ``sha256sum`` output (names may contain spaces)."""
    return [(line[66:], line[:64]) for line in text.splitlines() if line.strip()]


CODEC_CORPUS = ("imazen/codec-corpus", "55decfe826d350815e3af3b5ac69b882fb2943d3")
SUREAL = ("Netflix/sureal", "526715c9d94ec02367e61ef980b94b8c886e4022")
PWCMP = ("mantiuk/pwcmp", "07876b296a22b8e5fc25bef320f8cb26dc752b11")
HIFIC = ("hific/hific.github.io", "6b93e7091506003ec938a3d621a283125e9a0ee0")
GOOGLE_RESEARCH = ("google-research/google-research", "193eb9d7b643ee5064cb37fd8e6e3ecde78737dc")
AIC3_SDR25 = ("jpeg-aic/dataset-JPEG-AI-SDR25", "d5c4d58531339bfb1bd5e3c22cbde69871c90ef4")
AIC4 = ("jpeg-aic/JPEG-AIC-4-datasets", "56723f70180637aa9916664c018cd82b955b6b4f")


def _kodak() -> Dataset:
    files = []
    for name, digest in _sums(dataset_sums.KODAK):
        number = int(name.removeprefix("kodim").removesuffix(".png"))
        source = github(*CODEC_CORPUS, f"kodak/{number}.png", digest)
        files.append(DataFile(name, digest, source))
    return Dataset(
        name="kodak",
        description="the 24 Kodak PhotoCD test images, kodim01.png … kodim24.png (768×512 RGB)",
        origin=(
            "r0k.us/graphics/kodak (Eastman Kodak, released for unrestricted use), as copied "
            "byte for byte into GitHub imazen/codec-corpus kodak/N.png at commit 55decfe"
        ),
        files=tuple(files),
    )


def _cid22() -> Dataset:
    folder = "CID22/CID22-512"
    files = [
        DataFile(name, digest, github(*CODEC_CORPUS, f"{folder}/{name}", digest))
        for name, digest in _sums(dataset_sums.CID22)
    ]
    licence = "bac1c8e5dbc34de03d2c1571005acdd4be93977c4a4a4723ace41d4f37d280d1"
    files.append(DataFile("LICENSE", licence, github(*CODEC_CORPUS, "CID22/LICENSE", licence)))
    return Dataset(
        name="cid22",
        description="CID22-512: 250 512×512 PNGs (training/ 209, validation/ 41) for training",
        origin=(
            "Cloudinary CID22 (github.com/Cloudinary/CID22), the 512×512 reference images as "
            "in GitHub imazen/codec-corpus CID22/CID22-512/ at commit 55decfe; CC BY-SA 4.0, "
            "credit 'CID22 by Cloudinary'"
        ),
        files=tuple(files),
    )


def _sureal() -> Dataset:
    studies = (
        (
            "NFLX_dataset_public_raw.csv",
            "b7ff2ca501b1ee8b5a11d8a532928710cfd72b3313478347b1e0b7fb60b9853f",
            "resource/dataset/NFLX_dataset_public_raw.py",
            "27d2f870308c75b56a43b7c98c0852a2d378b64788d6be58b9a74f622d5b268e",
            named_by_file,
        ),
        (
            "VQEGHD3_dataset_raw.csv",
            "9984e4a78632c4bd83423b2d728d47724133c7b8a22299fc11222c62fc3d7f3f",
            "resource/dataset/VQEGHD3_dataset_raw.py",
            "98702a34d87e00d43d031f3cfa43de957e5f28b022170ea7dc60239adaafafcd",
            named_vqeghd3,
        ),
        (
            "vqeg_frtv_p1_625_line_high.csv",
            "762a5f379bda632c1a4e6ebd61296cbf82f4439afa1987fb86845657f1f5ed5b",
            "resource/dataset/vqeg_frtv_p1_625_line_high_dataset.py",
            "13dc2488247d57a1bba36a678509037b6731fb003da2b0e0be9fc681ca294df9",
            named_vqeg_frtv,
        ),
        (
            "quality_variation_2017_agh_tv.csv",
            "b39c26ce6569c23682cb6cf6efbb6eb8c6e895de2c3eed0fe8494af31f29fbb5",
            "test/resource/quality_variation_2017_agh_tv_dataset.py",
            "f6fb89b55d7e3c5abcba505360ae3aeb29863327aa7dbe5da442b57abcd726f4",
            named_by_file,
        ),
    )
    files = tuple(
        DataFile(name, digest, github(*SUREAL, path, source), sureal_converter(naming))
        for name, digest, path, source, naming in studies
    )
    return Dataset(
        name="sureal",
        description="four absolute-rating studies as rater,stimulus,content,condition,score",
        origin=(
            "Netflix/sureal (Apache-2.0) at commit 526715c: the Python dataset files of the "
            "Netflix public dataset, VQEG HDTV phase I set 3, VQEG FR-TV phase I 625-line high "
            "and the AGH 2017 quality-variation study, converted by sureal_ratings()"
        ),
        files=files,
    )


def _pairwise() -> Dataset:
    tmo = github(
        *PWCMP,
        "examples/ex3_tmo_cmp_data.csv",
        "8fdd56efc71e5bbe85bc21c88089b9c9c4ee33c63c635eca25323db300260996",
    )
    lightfield = github(
        *PWCMP,
        "examples/lf_quality_pwcmps.csv",
        "e1685475088201f7d3f9fb2d4e56fb9eb0bef319a754a8e312f5fe86304ce6d6",
    )
    lukas = github(
        *SUREAL,
        "resource/dataset/lukas_pc_dataset.py",
        "e50cf52389c6cfd955128b9f7181bc3c73a1c36b12cfe2c17cce451431a701a0",
    )
    hific = github(
        *HIFIC,
        "raw/userstudy.json",
        "ba80aeb58b6ca2a25e6ffa2d25955fa9ce49071b88f88c6fdfda295ae789a5ad",
    )
    studies: tuple[tuple[str, Source, TrialReader, str, str], ...] = (
        (
            "pwcmp_tmo_video",
            tmo,
            pwcmp_tmo_trials,
            "1e710b89884209781769073e5668d212bfe6c1e9104397d117e650c1bf835691",
            "ccd41c7a35c168962162b842ad88342d6b2973d31aa5e68dc86323d64f39a342",
        ),
        (
            "pwcmp_lightfield_quality",
            lightfield,
            pwcmp_lightfield_trials,
            "616becaf869ac47c637d254724fe97d06dc5d2cb2dbb15a29db5caaabab8157e",
            "2d70c59ec33d46ef72040a91b12fbf1d5dde2b8dc708bedb8eccb0034c52deb7",
        ),
        (
            "sureal_lukas_sharpening",
            lukas,
            sureal_paired_trials,
            "93b4b8f4af7a5b3c60b779d86c2022ddd6bc41fc62e798c1ff6d88d2e902857f",
            "ca1ebcf4a6b75c6caec5a99aa3aab4f13c38f713dd307a1048d408ff1801e0b8",
        ),
    )
    files = [
        DataFile(
            "hific_userstudy.csv",
            "00080f4032eeb0af8e9c6aa690ba59e6667c5bd0d63ac29deeb3d83ddb21c9e0",
            hific,
            hific_userstudy,
        )
    ]
    for stem, source, reader, trials_digest, counts_digest in studies:
        files.append(DataFile(f"{stem}.csv", trials_digest, source, as_trials(reader)))
        files.append(DataFile(f"{stem}__counts.csv", counts_digest, source, as_counts(reader)))
    return Dataset(
        name="pairwise",
        description="2AFC studies as one row per trial (and __counts.csv per item pair)",
        origin=(
            "mantiuk/pwcmp examples (MIT; Eilertsen et al. 2013, Adhikarla et al. CVPR 2017), "
            "Netflix/sureal lukas_pc_dataset.py (Krasula et al. 2017) and hific/hific.github.io "
            "raw/userstudy.json (Mentzer et al., NeurIPS 2020), converted by the functions here"
        ),
        files=tuple(files),
    )


def _bdrate() -> Dataset:
    source = github(*GOOGLE_RESEARCH, "mucped23/elo.csv", None)
    digest = "858830aa5d5bc38487b800ad80aedaa7b8bb49ed5529f5492886ca1148529637"
    return Dataset(
        name="bdrate",
        description="mucped23_elo.csv: per-setting Elo and bpp of libjpeg-turbo, MozJPEG, jpegli",
        origin=(
            "google-research/google-research mucped23/elo.csv (Apache-2.0), a CLIC-methodology "
            "study on 49 CID22 images; line ends normalised to LF (the upstream digest could "
            "not be read here, so only the result's digest is pinned)"
        ),
        files=(DataFile("mucped23_elo.csv", digest, source, lf_line_ends),),
    )


def _aic3() -> Dataset:
    archive = github(
        *AIC3_SDR25,
        "JPEG_AI_SDR_subjective_data.zip",
        "cc3f469ef2ef775c4bc046d86bfd6d0f3ab0cb18ee10a5eb56cf1bec6ff80cc8",
    )
    members = {
        "BTC_JPEG_AI_responses": "dd3f7050c83553282bc34f0812a81a96cd14745d3492c39ae5b721f87a686365",
        "BTC_JPEG_AI_user_data": "14b76b239e26658ec23c2c73fbc99b5d329d6b78fe3d660123abce38c20d6b7b",
        "PTC_JPEG_AI_responses": "c86ad08ff8cbf87a6be7dc815a5fc63d22b1eb8d07c77273413d87353dc671a5",
        "PTC_JPEG_AI_user_data": "dbe904ff8899243c241d1d1a055fdb78b0a6969ab4a976ab1c5ca0b312367c9a",
    }
    files = []
    for part, digest in members.items():
        name = f"JPEG_AIC_SDR_{part}_2025.02.28_v1.csv"
        convert = zip_member(f"JPEG_AI_SDR_subjective_data/{name}")
        files.append(DataFile(name, digest, archive, convert))
    scale = github(
        *AIC4,
        "JPEG_AIC_reconstructed_jnd_scores.csv",
        "3f746bc6bc7f3a0fb3c7537ebc8b107f975014c26029333f5c9b4de4fffb59f9",
    )
    files.append(
        DataFile(
            "published_jnd_sources_2_6.csv",
            "b674529b95104c2575d87f1d70d84cc89270261980402ac68d9e00a21d2b9220",
            scale,
            csv_rows_where("img_num", ("2", "6")),
        )
    )
    return Dataset(
        name="aic3",
        description="JPEG AIC-3 boosted/plain triplet responses on JPEG AI, and a published scale",
        origin=(
            "jpeg-aic/dataset-JPEG-AI-SDR25 JPEG_AI_SDR_subjective_data.zip (CC BY 4.0; "
            "Jenadeleh et al. 2025, arXiv 2504.06301), the four CSVs unchanged; and "
            "jpeg-aic/JPEG-AIC-4-datasets JPEG_AIC_reconstructed_jnd_scores.csv, the rows of "
            "sources 2 and 6 with LF line ends"
        ),
        files=tuple(files),
    )


CATALOGUE: dict[str, Dataset] = catalogue_of(
    _kodak(), _sureal(), _pairwise(), _bdrate(), _aic3(), _cid22()
)
