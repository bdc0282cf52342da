"""Imported reconstructions: a codec known only by its decoded images.

A researcher whose codec runs elsewhere brings its output as files: the decoded images and,
ideally, the bitstreams (bpp then *measured*, ``8 · bytes / (H · W)``), or else a table of
rates (bpp then *declared*). :func:`import_reconstructions` checks every file against the
image set, then stores all of them or none; ``manage.py import_reconstructions`` and the
admin's import form both call it.

Layout (the same for the images, the bitstreams and zip files)::

    DIR/<point>/<image>.<ext>      one folder per rate point, e.g. q1/kodim01.png

``<point>`` names the rate point (letters, digits, ``.``, ``_``, ``-``; e.g. ``q1``,
``lambda0.01``); ``<image>`` is the file name of a source image of the set without its
extension (``kodim01`` for ``kodim01.png``). A file directly in DIR, with no point folder,
belongs to the point given as ``point`` (``--point``), and is refused when none is given.
A zip whose files all sit in one top folder holding the point folders is read as that
folder. The bpp table is a CSV with the columns ``image, point, bpp``, one row per file.

Each decoded image must be a lossless file (PNG, TIFF, BMP, PPM) of exactly its source's
size holding 8-bit RGB as the codec decoded it: the project's intake
(:func:`perceptlab.lib.images.load_image`) decodes it, and any conversion it would make
(16-bit, greyscale, palette, EXIF rotation) is refused instead, since it would change what
raters see. Every problem is reported at once, one line per file, and nothing is stored.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from perceptlab.codecs.base import bits_per_pixel
from perceptlab.codecs.files import content_name, store_verified
from perceptlab.codecs.intake import limits_from_settings
from perceptlab.codecs.models import (
    BppSource,
    ImageSet,
    ImportedCodec,
    Reconstruction,
    SourceImage,
)
from perceptlab.codecs.registry import REGISTRY
from perceptlab.lib.images import ImageRejected, encode_png, load_image, sha256_hex

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
"""An imported codec's slug: what a SlugField holds, at most 50 characters."""
POINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")
LOSSLESS_FORMATS = ("PNG", "TIFF", "BMP", "PPM")
"""Pillow's names of the formats a decoded image may come in (no lossy re-encoding)."""
HARMLESS_NOTES = ("dropped a fully opaque alpha channel", "ignored the embedded ICC profile")
"""Intake notes that leave the decoded pixels as they were."""
MAX_FILES = 20_000
MAX_ZIP_BYTES = 4 * 1024**3
MAX_CSV_BYTES = 16 * 1024**2
UNVERSIONED = "unversioned (no version given at import)"
LAYOUT = "<point>/<image>.png, e.g. q1/kodim01.png"


class ImportRefused(Exception):
    """Nothing was imported; ``problems`` says why, one line per file or setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"nothing imported: {len(self.problems)} problem(s):\n" + "\n".join(self.problems)
        )


@dataclass(frozen=True)
class ImportFile:
    """One file as the researcher named it (``q1/kodim01.png``, relative, with ``/``): its
    size, and its bytes read only when :meth:`read` asks (from the folder, the zip or the
    upload, each time), so an import holds one file at a time, not the whole folder."""

    path: str
    size: int
    opener: Callable[[], bytes] = field(repr=False, compare=False)

    def read(self) -> bytes:
        return self.opener()

    @classmethod
    def of_bytes(cls, path: str, data: bytes) -> ImportFile:
        return cls(path, len(data), lambda: data)

    @classmethod
    def of_upload(cls, upload: Any) -> ImportFile:
        """An uploaded file (Django's, in memory or spooled to a temporary file)."""

        def read() -> bytes:
            upload.seek(0)
            return bytes(upload.read())

        return cls(str(upload.name), int(upload.size), read)


@dataclass(frozen=True)
class Rates:
    """Where the bpp comes from: bitstream files (measured) or a CSV table (declared)."""

    bitstreams: Sequence[ImportFile] | None = None
    csv_name: str = ""
    csv_data: bytes | None = None

    @property
    def source(self) -> BppSource:
        return BppSource.MEASURED if self.bitstreams is not None else BppSource.DECLARED


@dataclass(frozen=True)
class ImportResult:
    codec: ImportedCodec
    reconstructions: list[Reconstruction]
    replaced: int
    points: list[str] = field(default_factory=list)


# -- reading files: a folder, a zip, uploaded files --------------------------------------------


def files_from_directory(directory: Path) -> list[ImportFile]:
    """Every file under ``directory`` (hidden ones left out), paths relative to it."""
    if not directory.is_dir():
        raise ImportRefused([f"{directory}: not a folder; give the folder holding {LAYOUT}"])
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and not _hidden(p.parts))
    if len(paths) > MAX_FILES:
        raise ImportRefused([f"{directory}: {len(paths)} files, more than {MAX_FILES}"])
    return [
        ImportFile(p.relative_to(directory).as_posix(), p.stat().st_size, p.read_bytes)
        for p in paths
    ]


def files_from_zip(archive_file: bytes | IO[bytes], *, name: str) -> list[ImportFile]:
    """The files of a zip (folders, hidden files and macOS ``__MACOSX`` left out); a single
    top folder holding the point folders is stripped. ``archive_file``: the zip's bytes, or
    a file open for reading (an upload spooled to disk is read in place); each file is
    unpacked when it is read, the zip kept open until the last of them is gone."""
    source = io.BytesIO(archive_file) if isinstance(archive_file, bytes) else archive_file
    try:
        source.seek(0)
        archive = zipfile.ZipFile(source)
        infos = [i for i in archive.infolist() if not i.is_dir() and not _hidden(i.filename)]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportRefused([f"{name}: not a readable zip file ({exc}); upload a .zip"]) from exc
    limit = limits_from_settings().max_bytes
    if len(infos) > MAX_FILES or sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
        raise ImportRefused(
            [f"{name}: over {MAX_FILES} files or {MAX_ZIP_BYTES:,} bytes unpacked; split it"]
        )
    too_big = [i.filename for i in infos if i.file_size > limit]
    if too_big:
        raise ImportRefused([f"{name}: {n} is over {limit:,} bytes unpacked" for n in too_big])
    files = [ImportFile(i.filename, i.file_size, _unpacker(archive, i, name)) for i in infos]
    return _strip_top_folder(files)


def _unpacker(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
    def unpack() -> bytes:
        try:
            return archive.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
            raise ImportRefused([f"{name}: cannot unpack {info.filename} ({exc})"]) from exc

    return unpack


def _hidden(parts: str | Sequence[str]) -> bool:
    names = PurePosixPath(parts).parts if isinstance(parts, str) else parts
    return any(part.startswith(".") or part == "__MACOSX" for part in names)


def _strip_top_folder(files: list[ImportFile]) -> list[ImportFile]:
    parts = [PurePosixPath(f.path).parts for f in files]
    tops = {p[0] for p in parts if len(p) > 1}
    if len(tops) != 1 or any(len(p) < 2 for p in parts) or all(len(p) < 3 for p in parts):
        return files
    return [
        ImportFile("/".join(p[1:]), f.size, f.opener) for f, p in zip(files, parts, strict=True)
    ]


# -- layout: (point, image) of each file -------------------------------------------------------


def stem(name: str) -> str:
    """A file name without its extension (``kodim01.png`` → ``kodim01``)."""
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def _layout(
    files: Iterable[ImportFile], *, point: str, what: str, problems: list[str]
) -> dict[tuple[str, str], ImportFile]:
    """(point, file stem) → file, by :data:`LAYOUT`; problems appended, never raised."""
    found: dict[tuple[str, str], ImportFile] = {}
    for file in files:
        parts = PurePosixPath(file.path).parts
        if len(parts) > 2:
            problems.append(f"{file.path}: nested too deep; {what} go in {LAYOUT}")
            continue
        if len(parts) == 1 and not point:
            problems.append(
                f"{file.path}: not in a rate-point folder; put it in {LAYOUT}, or name the "
                "point of loose files (--point, or the form's point field)"
            )
            continue
        key = (parts[0] if len(parts) == 2 else point, stem(parts[-1]))
        if not POINT.fullmatch(key[0]):
            problems.append(
                f"{file.path}: rate point {key[0]!r} is not a valid name (letters, digits, "
                "'.', '_', '-', at most 50 characters); rename the folder"
            )
        elif key in found:
            problems.append(
                f"{file.path}: a second file for image {key[1]!r} at point {key[0]!r} "
                f"(also {found[key].path}); keep one"
            )
        else:
            found[key] = file
    return found


def _sources_by_stem(image_set: ImageSet) -> dict[str, list[SourceImage]]:
    by_stem: dict[str, list[SourceImage]] = {}
    for source in image_set.images.all():
        by_stem.setdefault(stem(source.name), []).append(source)
    return by_stem


def _match_source(
    key: tuple[str, str],
    path: str,
    by_stem: Mapping[str, list[SourceImage]],
    image_set: ImageSet,
    problems: list[str],
) -> SourceImage | None:
    matches = by_stem.get(key[1], [])
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(s.name for s in matches)
        problems.append(f"{path}: {key[1]!r} matches {names} in set {image_set.name!r}; rename")
        return None
    known = ", ".join(sorted(by_stem)[:12]) + (", …" if len(by_stem) > 12 else "")
    problems.append(
        f"{path}: no image named {key[1]!r} in set {image_set.name!r} (its images: "
        f"{known or 'none'}); name each file after its source image"
    )
    return None


# -- checks of one decoded image ---------------------------------------------------------------


def decoded_png(file: ImportFile, source: SourceImage) -> bytes:
    """The decoded image as the platform's lossless PNG, or :class:`ImageRejected` naming
    the file, what is wrong and how to fix it."""
    loaded = load_image(file.read(), name=file.path, limits=limits_from_settings())
    if loaded.source_format not in LOSSLESS_FORMATS:
        raise ImageRejected(
            file.path,
            f"is a {loaded.source_format} file; a decoded image must be stored losslessly "
            f"({', '.join(LOSSLESS_FORMATS)}): save the codec's output as PNG",
        )
    changed = [n for n in loaded.notes if not n.startswith(HARMLESS_NOTES)]
    if changed:
        raise ImageRejected(
            file.path,
            f"is not stored as 8-bit RGB; importing it would change it: {'; '.join(changed)}. "
            "Save the codec's decoded output as an 8-bit RGB PNG, exactly as decoded",
        )
    if (loaded.width, loaded.height) != (source.width, source.height):
        raise ImageRejected(
            file.path,
            f"is {loaded.width}x{loaded.height} pixels, but its source {source.name} is "
            f"{source.width}x{source.height}; a reconstruction must have its source's exact "
            "size (no crop, padding or rotation)",
        )
    return encode_png(loaded.pixels)


# -- rates: bitstreams (measured) or a CSV table (declared) ------------------------------------


@dataclass(frozen=True)
class _Rate:
    bpp: float
    bitstream: ImportFile | None = None
    declared_in: str = ""


def _measured(
    images: Mapping[tuple[str, str], ImportFile],
    sizes: Mapping[tuple[str, str], SourceImage],
    bitstreams: Sequence[ImportFile],
    *,
    point: str,
    problems: list[str],
) -> dict[tuple[str, str], _Rate]:
    found = _layout(bitstreams, point=point, what="bitstreams", problems=problems)
    rates = {}
    for key, source in sizes.items():  # the files matched to a source image
        bitstream = found.get(key)
        if bitstream is None:
            problems.append(
                f"{images[key].path}: no bitstream {key[0]}/{key[1]}.* in the bitstreams; add "
                "it (same layout as the images), or give the bpp in a CSV instead"
            )
        elif not bitstream.size:
            problems.append(f"{bitstream.path}: the bitstream is empty (0 bytes)")
        else:
            bpp = bits_per_pixel(bitstream.size, source.height, source.width)
            rates[key] = _Rate(bpp, bitstream=bitstream)
    for key in sorted(set(found) - set(images)):
        problems.append(
            f"{found[key].path}: a bitstream with no decoded image {key[0]}/{key[1]}.png; "
            "add the image or remove the bitstream"
        )
    return rates


def _declared(
    images: Mapping[tuple[str, str], ImportFile],
    sources: Mapping[tuple[str, str], SourceImage],
    rates: Rates,
    problems: list[str],
) -> dict[tuple[str, str], _Rate]:
    """The CSV's bpp per (point, image); its ``image`` column holds a source's file name
    (``kodim01.png``) or the name without extension (``kodim01``)."""
    name = rates.csv_name or "the bpp CSV"
    stems = {source.name: key[1] for key, source in sources.items()}
    found: dict[tuple[str, str], _Rate] = {}
    rows = _csv_rows(name, rates.csv_data or b"", problems)
    if rows is None:  # no table to read: one problem said so, not one per file
        return found
    for line, image, point, bpp in rows:
        where, key = f"{name} line {line}", (point, stems.get(image, image))
        if key not in images:
            problems.append(
                f"{where}: no decoded image {point}/{key[1]}.png for image {image!r} at "
                f"point {point!r}; add the file or remove the row"
            )
        elif key in found:
            problems.append(f"{where}: a second row for image {image!r} at point {point!r}")
        else:
            found[key] = _Rate(bpp, declared_in=name)
    for key in sorted(set(sources) - set(found)):
        problems.append(
            f"{images[key].path}: no row in {name} for image {key[1]!r} at point {key[0]!r}; "
            f"add the row '{key[1]},{key[0]},<bpp>'"
        )
    return found


def _csv_rows(
    name: str, data: bytes, problems: list[str]
) -> list[tuple[int, str, str, float]] | None:
    """(line, image, point, bpp) of each valid row, problems appended; None when the file
    is no table of rates at all."""
    if len(data) > MAX_CSV_BYTES:
        problems.append(f"{name}: over {MAX_CSV_BYTES:,} bytes; is it the bpp table?")
        return None
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        header = [h.strip().lower() for h in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{name}: not a UTF-8 CSV file ({exc}); columns: image, point, bpp")
        return None
    missing = [c for c in ("image", "point", "bpp") if c not in header]
    if missing:
        problems.append(
            f"{name}: missing column(s) {', '.join(missing)}; the first line must name the "
            f"columns image, point, bpp (it has: {', '.join(header) or 'nothing'})"
        )
        return None
    rows = []
    try:
        for raw in reader:
            row = {str(k).strip().lower(): str(v or "").strip() for k, v in raw.items() if k}
            bpp = _positive(row["bpp"])
            if bpp is None:
                problems.append(
                    f"{name} line {reader.line_num}: bpp {row['bpp']!r} is not a positive number"
                )
                continue
            rows.append((reader.line_num, row["image"], row["point"], bpp))
    except csv.Error as exc:
        problems.append(f"{name} line {reader.line_num}: {exc}")
    return rows


def _positive(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


# -- the import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    source: SourceImage
    point: str
    file: ImportFile
    png: tuple[str, str] | None  # the decoded image, stored: (name, SHA-256); None: refused
    rate: _Rate


def hidden_slugs() -> list[str]:
    """Imported codecs whose slug a registered codec (built-in, plugin or TOML entry) took
    after they were imported: studies naming that slug get the registered codec."""
    from perceptlab.codecs.models import ImportedCodec
    from perceptlab.codecs.registry import REGISTRY

    found = ImportedCodec.objects.filter(slug__in=list(REGISTRY)).values_list("slug", flat=True)
    return sorted(found)


def hidden_problem(slug: str) -> tuple[str, str]:
    """(what is wrong, the fix) for an imported codec hidden by a registered one."""
    return (
        f"imported codec {slug!r} is hidden: a registered codec (plugin or TOML entry) now "
        f"has that slug, and studies that name {slug!r} use the registered codec",
        "rename the plugin's or TOML entry's slug, or import the reconstructions again "
        "under another --codec name",
    )


def check_slug(slug: str) -> list[str]:
    """Problems with ``slug`` as an imported codec's name (empty when fine)."""
    if not SLUG.fullmatch(slug):
        return [
            f"codec name {slug!r} is not a slug: lowercase letters, digits, '_' and '-', at "
            "most 50 characters (e.g. my-gan)"
        ]
    if slug in REGISTRY:
        family = REGISTRY[slug].family
        return [f"codec name {slug!r} is taken by a registered {family} codec; choose another"]
    return []


def import_reconstructions(
    *,
    image_set: ImageSet,
    codec: str,
    files: Sequence[ImportFile],
    rates: Rates,
    point: str = "",
    version: str = "",
    label: str = "",
    replace: bool = False,
) -> ImportResult:
    """Check every file, then store all of them as ``codec``'s reconstructions, or none.

    Raises :class:`ImportRefused` with one line per problem (the module docstring gives the
    rules). Re-importing a point the codec already has in this image set is refused unless
    ``replace``, which deletes that point's reconstructions first (refused in turn while a
    built study shows them).
    """
    problems = check_slug(codec) + [
        f"{what} is {len(text)} characters long; at most 200, please"
        for what, text in (("the version", version), ("the label", label))
        if len(text) > 200
    ]
    created: list[str] = []  # files this import wrote: deleted again unless it succeeds
    try:
        planned = _plan(image_set, files, rates, point=point, problems=problems, created=created)
        if not problems and not planned:
            problems.append(f"no decoded images found; expected {LAYOUT}")
        points = sorted({p.point for p in planned})
        known = ImportedCodec.objects.filter(slug=codec).first()
        if known is not None and not replace:
            problems.extend(_already_there(known, image_set, points))
        if problems:
            raise ImportRefused(problems)
        rows = [_stored_row(p, rates.source, version or UNVERSIONED, created) for p in planned]
        return _save(image_set, codec, label, rows, points, replace=replace)
    except BaseException:
        for name in created:  # nothing half-stored: the files this import wrote go again
            default_storage.delete(name)
        raise


def _plan(
    image_set: ImageSet,
    files: Sequence[ImportFile],
    rates: Rates,
    *,
    point: str,
    problems: list[str],
    created: list[str],
) -> list[_Planned]:
    """Each decoded image matched, checked and (while nothing is wrong yet) stored as its
    lossless PNG at once, so no more than one image is held; ``created`` names what was
    written, for the caller to delete if the import is refused after all."""
    images = _layout(files, point=point, what="decoded images", problems=problems)
    by_stem = _sources_by_stem(image_set)
    sources: dict[tuple[str, str], SourceImage] = {}
    for key, file in images.items():
        source = _match_source(key, file.path, by_stem, image_set, problems)
        if source is not None:
            sources[key] = source
    if rates.bitstreams is not None:
        found = _measured(images, sources, rates.bitstreams, point=point, problems=problems)
    else:
        found = _declared(images, sources, rates, problems)
    planned = []
    for key, source in sources.items():
        try:
            png = decoded_png(images[key], source)
        except ImageRejected as exc:
            problems.append(str(exc))
            continue
        if key in found:
            stored = None
            if not problems:  # once refused, the rest are only checked
                stored = _store(png, folder="reconstructions", extension="png", created=created)
            planned.append(_Planned(source, key[0], images[key], stored, found[key]))
    return planned


def _store(data: bytes, *, folder: str, extension: str, created: list[str]) -> tuple[str, str]:
    """Store content-addressed; names this import wrote (not there before) go in ``created``."""
    new = not default_storage.exists(content_name(folder, sha256_hex(data), extension))
    name, digest = store_verified(data, folder=folder, extension=extension)
    if new:
        created.append(name)
    return name, digest


def _extension(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix if re.fullmatch(r"[a-z0-9]{1,10}", suffix) else "bin"


def _stored_row(
    planned: _Planned, bpp_source: BppSource, version: str, created: list[str]
) -> Reconstruction:
    source, rate = planned.source, planned.rate
    assert planned.png is not None  # stored by _plan whenever nothing was refused
    png_name, png_sha = planned.png
    record: dict[str, object] = {
        "mode": "imported",
        "point": planned.point,
        "file": planned.file.path,
    }
    bitstream_name, bitstream_sha, num_bytes = "", "", None
    if rate.bitstream is not None:
        data = rate.bitstream.read()
        bitstream_name, bitstream_sha = _store(
            data, folder="bitstreams", extension=_extension(rate.bitstream.path), created=created
        )
        num_bytes = len(data)
        record["bitstream"] = rate.bitstream.path
    else:
        record["declared_in"] = rate.declared_in
    return Reconstruction(
        source=source,
        codec="",  # set with the codec in _save
        codec_version=version,
        params={"point": planned.point},
        target_bpp=None,
        achieved_bpp=rate.bpp,
        bpp_source=bpp_source,
        num_bytes=num_bytes,
        width=source.width,
        height=source.height,
        bitstream=bitstream_name,
        bitstream_sha256=bitstream_sha,
        png=png_name,
        png_sha256=png_sha,
        encode_seconds=None,
        decode_seconds=None,
        rate_control=record,
    )


def existing_points(
    codec: ImportedCodec, image_set: ImageSet, points: Iterable[str]
) -> dict[str, int]:
    """Reconstructions ``codec`` already has in ``image_set`` at each of ``points``."""
    rows = Reconstruction.objects.filter(
        imported=codec, source__image_set=image_set, params__point__in=list(points)
    )
    counts: dict[str, int] = {}
    for row in rows.only("params"):
        counts[row.point] = counts.get(row.point, 0) + 1
    return counts


def _save(
    image_set: ImageSet,
    slug: str,
    label: str,
    rows: list[Reconstruction],
    points: list[str],
    *,
    replace: bool,
) -> ImportResult:
    try:
        with transaction.atomic():
            codec, _ = ImportedCodec.objects.get_or_create(slug=slug, defaults={"label": label})
            codec = ImportedCodec.objects.select_for_update().get(pk=codec.pk)
            if label and codec.label != label:
                codec.label = label
                codec.save(update_fields=["label"])
            replaced = _replace(codec, image_set, points, replace=replace)
            for row in rows:
                row.codec, row.imported = slug, codec
            made = Reconstruction.objects.bulk_create(rows)
    except IntegrityError as exc:
        raise ImportRefused(
            [f"{slug}: the database refused the import ({exc}); try again"]
        ) from exc
    return ImportResult(codec=codec, reconstructions=made, replaced=replaced, points=points)


def _already_there(codec: ImportedCodec, image_set: ImageSet, points: list[str]) -> list[str]:
    there = existing_points(codec, image_set, points)
    if not there:
        return []
    listed = ", ".join(f"{p} ({n} image(s))" for p, n in sorted(there.items()))
    return [
        f"{codec.slug} already has point(s) {listed} in set {image_set.name!r}; pass "
        "--replace (the form's 'replace' box) to replace them, or name the new points "
        "differently"
    ]


def _replace(codec: ImportedCodec, image_set: ImageSet, points: list[str], *, replace: bool) -> int:
    """Delete the points' reconstructions (``replace``), or refuse if there are any."""
    if not replace:
        problems = _already_there(codec, image_set, points)  # again, now under the lock
        if problems:
            raise ImportRefused(problems)
        return 0
    there = existing_points(codec, image_set, points)
    if not there:
        return 0
    listed = ", ".join(f"{p} ({n} image(s))" for p, n in sorted(there.items()))
    old = Reconstruction.objects.filter(
        imported=codec, source__image_set=image_set, params__point__in=list(there)
    )
    try:
        count, _ = old.delete()
    except ProtectedError as exc:
        shown = sorted({str(obj) for obj in exc.protected_objects})
        raise ImportRefused(
            [
                f"cannot replace {codec.slug} point(s) {listed}: {len(shown)} stimuli of built "
                f"studies show them (e.g. {shown[0]}); import the new version under other "
                "point names or another codec name"
            ]
        ) from exc
    return int(count)


# -- what an imported codec holds (manage.py codecs, the admin) --------------------------------


@dataclass(frozen=True)
class Holdings:
    """An imported codec's reconstructions, summed up."""

    points: list[str]
    images: int
    reconstructions: int
    versions: list[str]
    bpp_sources: list[str]
    sets: list[str]

    def describe(self) -> str:
        rates = " and ".join(self.bpp_sources) or "none"
        return (
            f"{len(self.points)} point(s) ({', '.join(self.points) or 'none'}) of "
            f"{self.images} image(s), bpp {rates}"
        )


def holdings(codec: ImportedCodec) -> Holdings:
    rows = list(
        codec.reconstructions.values_list(
            "params", "source_id", "codec_version", "bpp_source", "source__image_set__name"
        )
    )
    return Holdings(
        points=sorted({str((params or {}).get("point", "")) for params, *_ in rows}),
        images=len({row[1] for row in rows}),
        reconstructions=len(rows),
        versions=sorted({row[2] for row in rows}),
        bpp_sources=sorted({row[3] for row in rows}),
        sets=sorted({row[4] for row in rows}),
    )
