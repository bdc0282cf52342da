"""Command-line codecs: any encoder/decoder pair of programs, declared in a TOML file.

Each ``[codecs.<slug>]`` table becomes a :class:`CommandLineSpec` and then a
:class:`CommandLineCodec` subclass registered under its slug (family ``"commandline"``), so
it is offered, rate-controlled, stored and reported like a built-in codec. The shipped file
:data:`SHIPPED_FILE` is always read; ``settings.PERCEPTLAB_CODECS_FILE`` (environment
variable of the same name) adds the user's own. The format, with one complete entry, is in
the README ("Command-line codecs")::

    [codecs.webp-cli]
    label = "WebP (cwebp)"
    encode = ["cwebp", "-quiet", "-q", "{param}", "{input}", "-o", "{output}"]
    decode = ["dwebp", "-quiet", "{input}", "-o", "{output}"]
    version = ["cwebp", "-version"]      # its first line of output is the codec version
    package = "webp"                      # the Debian package, named when a binary is missing
    dial = { name = "quality", type = "int", low = 0, high = 100, more_bits = "higher" }

Commands run without a shell, each in its own temporary directory (removed on success,
failure and timeout alike, the whole process group killed on timeout). The bitstream is the
encoder's output file, byte for byte, so bpp is measured as for every codec. With a raw
planar YUV format (which carries no size) the stored bitstream starts with an 8-byte header
(``b"PLC1"``, width and height as big-endian uint16) that counts in bpp, as for VVC.

A malformed entry, an unknown placeholder or a slug clash is not fatal at import: the entry
is left out and the problem is reported by the system check ``codecs.W030`` (naming the
file, the entry and the fix; a slug clash is ``codecs.W031``), see :func:`load_problems`.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import string
import struct
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from perceptlab.codecs.base import (
    Availability,
    Codec,
    CodecError,
    CodecUnavailable,
    Dial,
    Param,
    Params,
    ParamValue,
)
from perceptlab.codecs.external import probe_output, read_output, run_tool
from perceptlab.lib.ycbcr import (
    from_i420,
    pad_to_even,
    rgb_to_ycbcr709,
    to_i420_10bit,
    ycbcr709_to_rgb,
)

if TYPE_CHECKING:
    from perceptlab.codecs.registry import CodecEntry

SHIPPED_FILE = Path(__file__).with_name("commandline.toml")
FAMILY = "commandline"

IMAGE_FORMATS = ("png", "ppm")
RAW_FORMATS = ("yuv420p", "yuv444p", "yuv420p10le")
"""Planar BT.709 full-range YCbCr (:mod:`perceptlab.lib.ycbcr`), 8-bit or 10-bit LE."""
FORMATS = IMAGE_FORMATS + RAW_FORMATS
RESERVED = ("input", "output", "param", "width", "height")
"""Placeholders every template may use; no parameter may take these names."""

_ENTRY_KEYS = {
    "label": 'label = "My codec"',
    "description": 'description = "what it is, which library, which options"',
    "encode": 'encode = ["myenc", "-q", "{param}", "{input}", "{output}"]',
    "decode": 'decode = ["mydec", "{input}", "{output}"]',
    "version": 'version = ["myenc", "--version"]',
    "dial": 'dial = { name = "quality", type = "int", low = 0, high = 100, more_bits = "higher" }',
    "params": '[codecs.<slug>.params.effort] type = "int", default = 4, low = 0, high = 9',
    "input_format": f"input_format = one of {list(FORMATS)} (default png)",
    "output_format": f"output_format = one of {list(FORMATS)} (default png)",
    "extension": 'extension = "bin" (the bitstream file\'s extension)',
    "requires": 'requires = ["myenc", "mydec"] (binaries that must be on PATH)',
    "package": 'package = "the Debian package that provides the binaries"',
    "timeout": "timeout = 600 (seconds per command)",
}
_REQUIRED = ("label", "encode", "decode", "version", "dial")
_DIAL_KEYS = ("name", "type", "low", "high", "more_bits", "default", "log_scale")
_PARAM_KEYS = ("type", "default", "low", "high", "choices", "help")
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str}
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,49}")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SIZE_HEADER = struct.Struct(">4sHH")
_MAGIC = b"PLC1"
_VERSION_MAX_CHARS = 200  # Reconstruction.codec_version's max_length


# --- the spec -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandLineSpec:
    """One codec as declared in a TOML file (validated; see :func:`parse_entry`)."""

    slug: str
    label: str
    description: str
    source: Path
    """The TOML file that declares it."""
    encode: tuple[str, ...]
    decode: tuple[str, ...]
    version: tuple[str, ...]
    dial: Dial
    params: tuple[Param, ...]
    """The dial's parameter first, then the named ones."""
    input_format: str
    output_format: str
    extension: str
    requires: tuple[str, ...]
    """Binaries that must be on PATH: the declared ones plus both commands' programs."""
    package: str
    timeout: float | None
    """Seconds per command; None means ``settings.CODEC_TIMEOUT_SECONDS``."""

    @property
    def sized(self) -> bool:
        """A raw YUV format carries no size, so the bitstream gets the size header."""
        return self.input_format in RAW_FORMATS or self.output_format in RAW_FORMATS

    @property
    def even(self) -> bool:
        """4:2:0 needs even sides: the image is edge-padded before encoding, cropped after."""
        return "420" in self.input_format or "420" in self.output_format


@dataclass(frozen=True)
class SpecProblem:
    """Why an entry (or a whole file) was left out, and what to change."""

    file: Path
    entry: str
    message: str
    fix: str
    clash: bool = False
    """The entry is fine but its slug is taken (``codecs.W031`` rather than ``W030``)."""

    def __str__(self) -> str:
        where = f"[codecs.{self.entry}]" if self.entry else "the file"
        return f"{self.file}: {where}: {self.message}"


class SpecError(ValueError):
    """An entry is malformed; ``fix`` says what to write instead."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def parse_entry(slug: str, table: object, *, source: Path) -> CommandLineSpec:
    """Validate one ``[codecs.<slug>]`` table; raises :class:`SpecError` at the first fault."""
    if not _SLUG.fullmatch(slug):
        raise SpecError(
            f"slug {slug!r} is not a valid codec slug",
            "use lowercase letters, digits and '-' (at most 50), e.g. [codecs.my-codec]",
        )
    if not isinstance(table, dict):
        raise SpecError("is not a table", f"write it as a table: [codecs.{slug}]")
    unknown = sorted(set(table) - set(_ENTRY_KEYS))
    if unknown:
        raise SpecError(f"unknown key(s) {unknown}", f"valid keys: {sorted(_ENTRY_KEYS)}")
    for key in _REQUIRED:
        if key not in table:
            raise SpecError(f"missing key {key!r}", f"add {_ENTRY_KEYS[key]}")
    dial, dial_param = _parse_dial(table["dial"])
    named = _parse_params(table.get("params", {}), dial_name=dial.name)
    params = (dial_param, *named)
    input_format = _choice(table, "input_format", FORMATS, "png")
    output_format = _choice(table, "output_format", FORMATS, "png")
    sized = input_format in RAW_FORMATS or output_format in RAW_FORMATS
    encode = _parse_template(table["encode"], "encode", params, dial.name, size=True)
    decode = _parse_template(table["decode"], "decode", (), dial.name, size=sized)
    _check_uses(encode, decode, params, dial.name)
    version = _string_list(table["version"], "version")
    if any("{" in arg for arg in version):
        raise SpecError("version: placeholders are not allowed here", _ENTRY_KEYS["version"])
    declared = _string_list(table.get("requires", []), "requires", allow_empty=True)
    return CommandLineSpec(
        slug=slug,
        label=_text(table, "label"),
        description=_text(table, "description", default=""),
        source=source,
        encode=encode,
        decode=decode,
        version=version,
        dial=dial,
        params=params,
        input_format=input_format,
        output_format=output_format,
        extension=_extension(table),
        requires=tuple(dict.fromkeys((*declared, encode[0], decode[0]))),
        package=_text(table, "package", default=""),
        timeout=_timeout(table),
    )


def _parse_dial(raw: object) -> tuple[Dial, Param]:
    fix = f"add {_ENTRY_KEYS['dial']}"
    if not isinstance(raw, dict):
        raise SpecError("dial is not a table", fix)
    unknown = sorted(set(raw) - set(_DIAL_KEYS))
    missing = [key for key in ("name", "type", "low", "high", "more_bits") if key not in raw]
    if unknown or missing:
        raise SpecError(f"dial: unknown key(s) {unknown}, missing key(s) {missing}", fix)
    name = _param_name(raw["name"], "dial")
    kind = _kind(raw["type"], f"dial {name!r}", allowed=("int", "float"))
    low = _number(raw["low"], f"dial {name!r}: low")
    high = _number(raw["high"], f"dial {name!r}: high")
    if not low < high:
        raise SpecError(
            f"dial {name!r}: low ({low}) must be below high ({high})",
            "give the range as low < high and say which end gives more bits with "
            'more_bits = "higher" or "lower"',
        )
    if kind is int and not (float(low).is_integer() and float(high).is_integer()):
        raise SpecError(
            f"dial {name!r}: an int dial needs whole-number ends",
            'give whole numbers, or type = "float"',
        )
    if raw["more_bits"] not in ("higher", "lower"):
        raise SpecError(
            f"dial {name!r}: more_bits = {raw['more_bits']!r}",
            'more_bits = "higher" when higher values give more bits (quality), '
            '"lower" when they give fewer (quantiser, distance)',
        )
    log_scale = raw.get("log_scale", False)
    if not isinstance(log_scale, bool) or (log_scale and low <= 0):
        raise SpecError(
            f"dial {name!r}: log_scale needs true/false and low > 0", "log_scale = true"
        )
    middle = (low + high) / 2
    default = raw.get("default", round(middle) if kind is int else middle)
    increasing = raw["more_bits"] == "higher"
    help_text = f"rate dial: {raw['more_bits']} values give more bits"
    param = _make_param(name, kind, default, help_text, low=low, high=high, choices=())
    dial = Dial(name, low, high, integer=kind is int, increasing=increasing, log_scale=log_scale)
    return dial, param


def _parse_params(raw: object, *, dial_name: str) -> tuple[Param, ...]:
    if not isinstance(raw, dict):
        raise SpecError("params is not a table", f"write {_ENTRY_KEYS['params']}")
    params = []
    for name, spec in raw.items():
        _param_name(name, "params")
        where = f"param {name!r}"
        if name == dial_name:
            raise SpecError(f"{where} has the dial's name", "declare it once, as the dial")
        if not isinstance(spec, dict) or "type" not in spec or "default" not in spec:
            raise SpecError(f"{where} needs a type and a default", _ENTRY_KEYS["params"])
        unknown = sorted(set(spec) - set(_PARAM_KEYS))
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {unknown}", f"valid keys: {_PARAM_KEYS}")
        kind = _kind(spec["type"], where, allowed=tuple(_TYPES))
        low = _number(spec["low"], f"{where}: low") if "low" in spec else None
        high = _number(spec["high"], f"{where}: high") if "high" in spec else None
        choices = spec.get("choices", [])
        if not isinstance(choices, list):
            raise SpecError(f"{where}: choices is not a list", 'choices = ["444", "420"]')
        help_text = spec.get("help", "")
        if not isinstance(help_text, str):
            raise SpecError(f"{where}: help is not a string", 'help = "what it does"')
        params.append(
            _make_param(name, kind, spec["default"], help_text, low, high, tuple(choices))
        )
    return tuple(params)


def _make_param(
    name: str,
    kind: type,
    default: object,
    help_text: str,
    low: float | None,
    high: float | None,
    choices: tuple[object, ...],
) -> Param:
    """A :class:`Param` whose default and choices pass its own checks."""
    param = Param(name, kind, cast(ParamValue, default), help_text, low, high)
    try:
        coerced = tuple(param.coerce("spec", choice) for choice in choices)
        param = Param(name, kind, param.coerce("spec", default), help_text, low, high, coerced)
        param.coerce("spec", param.default)
    except CodecError as exc:
        raise SpecError(
            f"param {name!r}: {str(exc).removeprefix('spec: ')}",
            f"give a default (and choices) of type {kind.__name__} inside the range",
        ) from None
    return param


def _parse_template(
    raw: object, key: str, params: tuple[Param, ...], dial_name: str, *, size: bool
) -> tuple[str, ...]:
    args = _string_list(raw, key)
    allowed = ["input", "output"]
    if params:
        allowed += ["param", *(p.name for p in params)]
    if size:
        allowed += ["width", "height"]
    sample: dict[str, object] = {"input": "in", "output": "out", "width": 2, "height": 2}
    sample.update({p.name: p.default for p in params})
    sample["param"] = params[0].default if params else 0
    if "{" in args[0] or "}" in args[0]:
        raise SpecError(f"{key}: the program {args[0]!r} has a placeholder", "name the program")
    for arg in args:
        for name in _fields(arg, key):
            if name not in allowed:
                raise SpecError(
                    f"{key}: unknown placeholder {{{name}}} in {arg!r}",
                    f"use one of {', '.join('{' + a + '}' for a in allowed)}"
                    + _placeholder_hint(name, key, params, dial_name),
                )
        try:
            arg.format_map(sample)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SpecError(f"{key}: cannot fill {arg!r}: {exc}", "fix the format spec") from None
    return args


def _placeholder_hint(name: str, key: str, params: tuple[Param, ...], dial_name: str) -> str:
    if key == "decode" and name in ("param", dial_name):
        return "; the decoder gets only the bitstream, not the encoder's parameters"
    if name in ("width", "height"):
        return "; the size is only stored with a raw YUV format, which has no header of its own"
    return "; write {{ and }} for literal braces"


def _fields(arg: str, key: str) -> list[str]:
    try:
        return [field for _, field, _, _ in string.Formatter().parse(arg) if field is not None]
    except ValueError as exc:
        raise SpecError(
            f"{key}: {arg!r} is not a valid template ({exc})",
            "close every {placeholder}; write {{ and }} for literal braces",
        ) from None


def _check_uses(
    encode: tuple[str, ...], decode: tuple[str, ...], params: tuple[Param, ...], dial_name: str
) -> None:
    used_encode = {f for arg in encode for f in _fields(arg, "encode")}
    used_decode = {f for arg in decode for f in _fields(arg, "decode")}
    for key, used in (("encode", used_encode), ("decode", used_decode)):
        for name in ("input", "output"):
            if name not in used:
                raise SpecError(f"{key} never uses {{{name}}}", f"add {{{name}}} to {key}")
    if not used_encode & {"param", dial_name}:
        raise SpecError(
            f"encode never uses the dial {dial_name!r}",
            f"add {{param}} (or {{{dial_name}}}) to encode where the encoder takes it",
        )
    for param in params[1:]:
        if param.name not in used_encode:
            raise SpecError(
                f"param {param.name!r} is declared but encode never uses it",
                f"add {{{param.name}}} to encode, or remove the param",
            )


def _string_list(raw: object, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        raise SpecError(f"{key} is not a list of non-empty strings", f"write {_ENTRY_KEYS[key]}")
    if not raw and not allow_empty:
        raise SpecError(f"{key} is empty", f"write {_ENTRY_KEYS[key]}")
    return tuple(raw)


def _text(table: Mapping[str, object], key: str, *, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise SpecError(f"{key} is not a non-empty string", f"write {_ENTRY_KEYS[key]}")
    return value


def _choice(table: Mapping[str, object], key: str, valid: tuple[str, ...], default: str) -> str:
    value = table.get(key, default)
    if value not in valid:
        raise SpecError(f"{key} = {value!r} is not a supported format", f"use one of {list(valid)}")
    return cast(str, value)


def _extension(table: Mapping[str, object]) -> str:
    value = table.get("extension", "bin")
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]{1,10}", value):
        raise SpecError(f"extension = {value!r}", 'letters and digits only, e.g. extension = "jxl"')
    return value


def _timeout(table: Mapping[str, object]) -> float | None:
    if "timeout" not in table:
        return None
    value = _number(table["timeout"], "timeout")
    if value <= 0:
        raise SpecError(f"timeout = {value} is not positive", "timeout = 600 (seconds)")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{what} = {value!r} is not a number", "write a number, e.g. 0 or 1.5")
    return value


def _kind(value: object, where: str, *, allowed: tuple[str, ...]) -> type:
    if value not in allowed:
        raise SpecError(f"{where}: type = {value!r}", f"use one of {list(allowed)}")
    return _TYPES[cast(str, value)]


def _param_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in RESERVED:
        raise SpecError(
            f"{where}: {value!r} is not a usable parameter name",
            f"use lowercase letters, digits and '_', not one of {list(RESERVED)}",
        )
    return value


# --- files and the registry -----------------------------------------------------------------


def read_file(path: Path) -> tuple[list[CommandLineSpec], list[SpecProblem]]:
    """Every valid entry of one TOML file, and a problem for each entry that is not."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        return [], [SpecProblem(path, "", f"cannot be read: {exc.strerror}", _FILE_FIX)]
    except tomllib.TOMLDecodeError as exc:
        return [], [SpecProblem(path, "", f"is not valid TOML: {exc}", _FILE_FIX)]
    extra = sorted(set(document) - {"codecs"})
    entries = document.get("codecs", {})
    if extra or not isinstance(entries, dict):
        return [], [SpecProblem(path, "", f"unexpected top-level key(s) {extra}", _FILE_FIX)]
    specs, problems = [], []
    for slug, table in entries.items():
        try:
            specs.append(parse_entry(slug, table, source=path))
        except SpecError as exc:
            problems.append(SpecProblem(path, slug, exc.message, exc.fix))
    return specs, problems


_FILE_FIX = "one table per codec: [codecs.<slug>] (see the README, 'Command-line codecs')"


def collect(
    files: Iterable[Path], registered: Mapping[str, str]
) -> tuple[dict[str, CommandLineSpec], list[SpecProblem]]:
    """Specs of ``files`` in order; a slug already in ``registered`` (slug → where it comes
    from) or in an earlier file is a problem naming both sources, and is left out."""
    specs: dict[str, CommandLineSpec] = {}
    problems: list[SpecProblem] = []
    for path in files:
        found, bad = read_file(path)
        problems += bad
        for spec in found:
            other = registered.get(spec.slug) or (
                f"{specs[spec.slug].source}" if spec.slug in specs else None
            )
            if other is None:
                specs[spec.slug] = spec
                continue
            problems.append(
                SpecProblem(
                    path,
                    spec.slug,
                    f"slug {spec.slug!r} is already taken by {other}",
                    f"rename the entry, e.g. [codecs.{spec.slug}-2]",
                    clash=True,
                )
            )
    return specs, problems


def configured_files() -> list[Path]:
    """The shipped file, then ``PERCEPTLAB_CODECS_FILE`` when set."""
    try:
        user = getattr(settings, "PERCEPTLAB_CODECS_FILE", None)
    except ImproperlyConfigured:  # imported outside Django
        user = os.environ.get("PERCEPTLAB_CODECS_FILE") or None
    return [SHIPPED_FILE, *([Path(user)] if user else [])]


_SPECS: dict[str, CommandLineSpec] = {}
_PROBLEMS: list[SpecProblem] = []


def load_commandline_codecs(registry: dict[str, CodecEntry]) -> None:
    """Register the configured files' codecs in ``registry`` (called once, by the registry)."""
    from perceptlab.codecs.registry import CodecEntry

    registered = {
        slug: f"the {entry.family} codec {entry.target}" for slug, entry in registry.items()
    }
    specs, problems = collect(configured_files(), registered)
    for spec in specs.values():
        target = f"{__name__}:{spec.slug}"  # resolved by this module's __getattr__
        registry[spec.slug] = CodecEntry(spec.slug, spec.label, FAMILY, target, spec.description)
    _SPECS.update(specs)
    _PROBLEMS[:] = problems


def load_problems() -> list[SpecProblem]:
    """What :func:`load_commandline_codecs` left out, and why (for the system check)."""
    import perceptlab.codecs.registry  # noqa: F401  (importing the registry reads the files)

    return list(_PROBLEMS)


def spec_for(slug: str) -> CommandLineSpec | None:
    """The registered spec of a command-line codec (None for any other slug)."""
    return _SPECS.get(slug)


def __getattr__(name: str) -> type[CommandLineCodec]:
    """``registry.get_codec`` imports ``perceptlab.codecs.commandline:<slug>``."""
    spec = _SPECS.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return codec_class(spec)


@cache
def codec_class(spec: CommandLineSpec) -> type[CommandLineCodec]:
    """The :class:`CommandLineCodec` subclass of one spec."""
    attributes = {
        "spec": spec,
        "slug": spec.slug,
        "params": spec.params,
        "dial": spec.dial,
        "file_extension": spec.extension,
        "label": spec.label,
        "description": spec.description,
        "__doc__": f"{spec.label}: {spec.description} (declared in {spec.source})",
    }
    return type(f"CommandLineCodec[{spec.slug}]", (CommandLineCodec,), attributes)


# --- the codec ------------------------------------------------------------------------------


class CommandLineCodec(Codec):
    """Runs :attr:`spec`'s encode and decode commands on files in a temporary directory."""

    spec: ClassVar[CommandLineSpec]

    def availability(self) -> Availability:
        for name in self.spec.requires:
            if shutil.which(name) is None:
                return Availability(False, missing_binary_reason(self.spec, name))
        return Availability(True)

    def version(self) -> str:
        if not self.availability().available:
            return "unavailable"
        args = self.spec.version
        resolved = shutil.which(args[0])
        if resolved is None:
            return "unknown"
        return _first_line((resolved, *args[1:])) or "unknown"

    def _encode(self, image: np.ndarray, params: Params) -> bytes:
        height, width = image.shape[:2]
        frame = pad_to_even(image) if self.spec.even else image
        values = self._values(frame.shape[1], frame.shape[0], params)
        with tempfile.TemporaryDirectory(prefix=f"perceptlab-{self.slug}-") as tmp:
            work = Path(tmp)
            source = work / f"in.{_suffix(self.spec.input_format)}"
            target = work / f"out.{self.spec.extension}"
            write_frame(source, frame, self.spec.input_format)
            self._run(
                self.spec.encode, values | {"input": str(source), "output": str(target)}, work
            )
            data = read_output(self.slug, target, self.spec.encode[0])
        if self.spec.sized:
            if max(height, width) > 0xFFFF:
                raise CodecError(self.slug, f"{width}x{height}: the size header holds up to 65535")
            return _SIZE_HEADER.pack(_MAGIC, width, height) + data
        return data

    def _decode(self, bitstream: bytes) -> np.ndarray:
        size, stream = self._split_header(bitstream)
        values: dict[str, object] = {}
        if size is not None:
            frame_width, frame_height = (s + s % 2 for s in size) if self.spec.even else size
            values = {"width": frame_width, "height": frame_height}
        with tempfile.TemporaryDirectory(prefix=f"perceptlab-{self.slug}-") as tmp:
            work = Path(tmp)
            source = work / f"in.{self.spec.extension}"
            target = work / f"out.{_suffix(self.spec.output_format)}"
            source.write_bytes(stream)
            self._run(
                self.spec.decode, values | {"input": str(source), "output": str(target)}, work
            )
            data = read_output(self.slug, target, self.spec.decode[0])
        try:
            image = read_frame(
                data, self.spec.output_format, values.get("width"), values.get("height")
            )
        except ValueError as exc:
            raise CodecError(self.slug, f"the decoder's output is unreadable: {exc}") from exc
        if size is not None:
            image = np.ascontiguousarray(image[: size[1], : size[0]])
        return image

    def _values(self, width: int, height: int, params: Params) -> dict[str, object]:
        values: dict[str, object] = dict(params)
        values.update(param=params[self.spec.dial.name], width=width, height=height)
        return values

    def _split_header(self, bitstream: bytes) -> tuple[tuple[int, int] | None, bytes]:
        if not self.spec.sized:
            return None, bitstream
        if len(bitstream) <= _SIZE_HEADER.size or not bitstream.startswith(_MAGIC):
            raise CodecError(
                self.slug, f"not a {self.slug} bitstream: expected the {_MAGIC!r} size header"
            )
        _, width, height = _SIZE_HEADER.unpack_from(bitstream)
        if width == 0 or height == 0:
            raise CodecError(self.slug, f"the size header gives an empty size {width}x{height}")
        return (width, height), bitstream[_SIZE_HEADER.size :]

    def _run(self, template: tuple[str, ...], values: Mapping[str, object], cwd: Path) -> None:
        args = [arg.format_map(values) for arg in template]
        resolved = shutil.which(args[0])
        if resolved is None:
            raise CodecUnavailable(self.slug, missing_binary_reason(self.spec, args[0]))
        timeout = self.spec.timeout or float(settings.CODEC_TIMEOUT_SECONDS)
        run_tool(self.slug, [resolved, *args[1:]], cwd=cwd, timeout=timeout)


def missing_binary_reason(spec: CommandLineSpec, name: str) -> str:
    """Why the codec cannot run: the binary, where to get it, which file declared it."""
    install = (
        f"install the Debian package {spec.package} (apt-get install {spec.package})"
        if spec.package
        else "install it"
    )
    return f"binary {name!r} not found on PATH; {install} or put it on PATH ({spec.source})"


def _first_line(args: tuple[str, ...]) -> str:
    """First non-empty line the version command prints (stdout, then stderr; cached by
    :func:`~perceptlab.codecs.external.probe_output`)."""
    output = probe_output(args) or ""
    line = next((line.strip() for line in output.splitlines() if line.strip()), "")
    return line[:_VERSION_MAX_CHARS]


# --- frames on disk -------------------------------------------------------------------------


def _suffix(image_format: str) -> str:
    return "yuv" if image_format in RAW_FORMATS else image_format


def write_frame(path: Path, image: np.ndarray, image_format: str) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG, PPM (P6) or planar BT.709 YCbCr."""
    if image_format in IMAGE_FORMATS:
        Image.fromarray(image, "RGB").save(path, format=image_format.upper(), compress_level=1)
    elif image_format == "yuv420p10le":
        path.write_bytes(to_i420_10bit(image))
    else:
        path.write_bytes(_planar_8bit(image, subsample=image_format == "yuv420p"))


def read_frame(
    data: bytes, image_format: str, width: object = None, height: object = None
) -> np.ndarray:
    """Inverse of :func:`write_frame`; raw formats need the frame's size. ValueError if bad."""
    if image_format in IMAGE_FORMATS:
        try:
            with Image.open(io.BytesIO(data), formats=[image_format.upper()]) as decoded:
                return np.asarray(decoded.convert("RGB"))
        except (OSError, SyntaxError) as exc:
            raise ValueError(f"not a {image_format.upper()} file ({exc})") from exc
    if not isinstance(width, int) or not isinstance(height, int):
        raise ValueError(f"a {image_format} frame needs its size")
    if image_format != "yuv444p":
        return from_i420(data, width, height)
    if len(data) != 3 * width * height:
        raise ValueError(f"{len(data)} bytes is not a {width}x{height} yuv444p frame")
    planes = np.frombuffer(data, dtype=np.uint8).reshape(3, height, width)
    return ycbcr709_to_rgb(np.moveaxis(planes, 0, -1).astype(np.float64) / 255.0)


def _planar_8bit(image: np.ndarray, *, subsample: bool) -> bytes:
    """Planar 8-bit BT.709 full-range Y, Cb, Cr; chroma as 2x2 means when ``subsample``
    (the sampling of :func:`perceptlab.lib.ycbcr.to_i420_10bit`)."""
    ycbcr = rgb_to_ycbcr709(image)
    luma, chroma = ycbcr[..., 0], ycbcr[..., 1:]
    if subsample:
        height, width = luma.shape
        chroma = chroma.reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    planes = [luma, chroma[..., 0], chroma[..., 1]]
    return b"".join(
        np.rint(np.clip(plane, 0.0, 1.0) * 255).astype(np.uint8).tobytes() for plane in planes
    )


def commandline_details(slug: str) -> dict[str, Any]:
    """What ``manage.py codecs`` adds for a command-line codec: its TOML file and binaries."""
    spec = _SPECS.get(slug)
    if spec is None:
        return {}
    return {"source": str(spec.source), "requires": list(spec.requires)}
