"""Command-line codecs declared in TOML (perceptlab/codecs/commandline.py).

The fakes are tiny Python scripts put on PATH: ``fakeenc``/``fakedec`` quantise a PPM's
samples to a step and zlib them (a real, monotone rate dial), ``copy`` copies its input to
its output (so a bitstream is exactly the file the "encoder" wrote), and a few misbehave.
The shipped entries (cjxl, avifenc, cwebp) run for real on a Kodak crop; they skip, saying
which Debian package to install, only when the binary is absent (CI installs them through
scripts/browser.sh).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image
from support import kodak_path, psnr

from perceptlab.codecs import commandline
from perceptlab.codecs.admin import codec_choices_with_availability
from perceptlab.codecs.base import CodecError, CodecUnavailable, bits_per_pixel
from perceptlab.codecs.checks import check_commandline_codecs
from perceptlab.codecs.commandline import (
    SHIPPED_FILE,
    CommandLineCodec,
    SpecProblem,
    codec_class,
    collect,
    configured_files,
    load_commandline_codecs,
    read_file,
)
from perceptlab.codecs.models import Reconstruction
from perceptlab.codecs.ratecontrol import TOLERANCE, encode_at_bpp
from perceptlab.codecs.registry import REGISTRY, codec_choices, get_codec

if TYPE_CHECKING:
    from pytest_django.fixtures import SettingsWrapper

Entry = dict[str, Any]

# --- fakes ------------------------------------------------------------------------------------

_PPM = """\
import sys, zlib
def read_ppm(path):
    magic, size, maxval, pixels = open(path, "rb").read().split(b"\\n", 3)
    assert magic == b"P6" and maxval == b"255", (magic, maxval)
    return size, pixels
"""
SCRIPTS = {
    # fakeenc INPUT.ppm OUTPUT STEP: samples quantised to STEP (mid-rise), then zlib level 9
    "fakeenc": _PPM
    + dedent("""\
        size, pixels = read_ppm(sys.argv[1])
        step = int(sys.argv[3])
        table = bytes(min(255, v // step * step + step // 2) for v in range(256))
        payload = size + b"\\n" + pixels.translate(table)
        open(sys.argv[2], "wb").write(b"FAKE" + zlib.compress(payload, 9))
        """),
    "fakedec": dedent("""\
        import sys, zlib
        data = open(sys.argv[1], "rb").read()
        assert data[:4] == b"FAKE", "not a fake bitstream"
        size, pixels = zlib.decompress(data[4:]).split(b"\\n", 1)
        open(sys.argv[2], "wb").write(b"P6\\n" + size + b"\\n255\\n" + pixels)
        """),
    # copy INPUT OUTPUT [anything]: records its arguments next to itself
    "copy": dedent("""\
        import json, pathlib, shutil, sys
        pathlib.Path(__file__ + ".args.json").write_text(json.dumps(sys.argv[1:]))
        shutil.copyfile(sys.argv[1], sys.argv[2])
        """),
    "failing": dedent("""\
        import sys
        sys.stderr.write("warming up\\nfake: cannot parse the input file\\n")
        sys.exit(3)
        """),
    "sleeping": "import time\ntime.sleep(30)\n",
    # a wrapper whose own child does the (endless) work, as shell wrappers do
    "wrapper": dedent("""\
        import pathlib, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        pathlib.Path(__file__ + ".child").write_text(str(child.pid))
        child.wait()
        """),
    "silent": "pass\n",
    "fakever": "print()\nprint('FakeCodec 1.2.3 (build 7)')\nprint('more lines')\n",
}


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake programs, first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, body in SCRIPTS.items():
        script = directory / name
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tempfile's directory, redirected so the tests can see what is left behind."""
    directory = tmp_path / "scratch"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def fake_entry(**changes: Any) -> Entry:
    """The fake quantiser codec's table, with ``changes`` applied (None deletes a key)."""
    entry: Entry = {
        "label": "Fake quantiser",
        "description": "test double",
        "encode": ["fakeenc", "{input}", "{output}", "{param}"],
        "decode": ["fakedec", "{input}", "{output}"],
        "version": ["fakever"],
        "input_format": "ppm",
        "output_format": "ppm",
        "extension": "fake",
        "dial": {"name": "step", "type": "int", "low": 1, "high": 128, "more_bits": "lower"},
    }
    for key, value in changes.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    return entry


def copy_entry(image_format: str = "ppm", **changes: Any) -> Entry:
    """A codec whose encoder and decoder copy the file: lossless up to the format."""
    commands = {
        "encode": ["copy", "{input}", "{output}", "{param}"],
        "decode": ["copy", "{input}", "{output}"],
    }
    return fake_entry(
        **{**commands, "input_format": image_format, "output_format": image_format, **changes}
    )


def to_toml(entries: dict[str, Entry]) -> str:
    """TOML for ``{slug: entry}`` (JSON strings, numbers and lists are valid TOML values)."""
    lines: list[str] = []

    def table(name: str, values: Entry) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if k not in nested)
        for key, value in nested.items():
            if key == "params":
                for param, spec in value.items():
                    table(f"{name}.params.{param}", spec)
            else:
                table(f"{name}.{key}", value)

    for slug, entry in entries.items():
        table(f"codecs.{slug}", entry)
    return "\n".join(lines) + "\n"


WriteToml = Callable[..., Path]


@pytest.fixture
def write_toml(tmp_path: Path) -> WriteToml:
    def _write(entries: dict[str, Entry], name: str = "codecs.toml") -> Path:
        path = tmp_path / name
        path.write_text(to_toml(entries))
        return path

    return _write


MakeCodec = Callable[[Entry], CommandLineCodec]


@pytest.fixture
def make_codec(write_toml: WriteToml, bin_dir: Path) -> MakeCodec:
    """The codec of one valid entry (slug ``fake-q``), as the registry would build it."""

    def _make(entry: Entry) -> CommandLineCodec:
        specs, problems = read_file(write_toml({"fake-q": entry}))
        assert problems == []
        return codec_class(specs[0])()

    return _make


def problems_of(write_toml: WriteToml, entry: Entry) -> list[SpecProblem]:
    specs, problems = read_file(write_toml({"fake-q": entry}))
    assert specs == []
    return problems


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def ppm_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PPM")
    return buffer.getvalue()


# --- the shipped file and the registry ------------------------------------------------------


def test_the_shipped_file_declares_three_valid_codecs() -> None:
    specs, problems = read_file(SHIPPED_FILE)
    assert problems == []
    assert [spec.slug for spec in specs] == ["jxl-cli", "avif-cli", "webp-cli"]
    packages = {spec.slug: spec.package for spec in specs}
    assert packages == {"jxl-cli": "libjxl-tools", "avif-cli": "libavif-bin", "webp-cli": "webp"}


def test_the_readmes_example_entry_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Command-line codecs", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.toml").write_text(example)
    [spec], problems = read_file(tmp_path / "example.toml")
    assert problems == [] and spec.slug == "jxl-cli" and spec.dial.log_scale


def test_the_shipped_codecs_are_registered_beside_the_built_ins() -> None:
    assert commandline.load_problems() == []
    for slug in ("jxl-cli", "avif-cli", "webp-cli"):
        assert REGISTRY[slug].family == "commandline"
        assert slug in dict(codec_choices())
        codec = get_codec(slug)
        assert isinstance(codec, CommandLineCodec) and codec.slug == slug
        assert codec.supports_rate_control and codec.dial is not None
        assert codec.params[0].name == codec.dial.name
    assert {"jpeg", "webp", "avif", "jxl"} <= set(REGISTRY)  # the built-ins keep their slugs


def test_the_module_resolves_only_registered_slugs() -> None:
    assert commandline.__getattr__("webp-cli") is type(get_codec("webp-cli"))
    with pytest.raises(AttributeError, match="no-such-codec"):
        commandline.__getattr__("no-such-codec")


def test_the_user_file_comes_from_the_setting(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.PERCEPTLAB_CODECS_FILE = None
    assert configured_files() == [SHIPPED_FILE]
    settings.PERCEPTLAB_CODECS_FILE = str(tmp_path / "mine.toml")
    assert configured_files() == [SHIPPED_FILE, tmp_path / "mine.toml"]


def test_loading_registers_the_user_file_and_refuses_clashes_naming_both_sources(
    settings: SettingsWrapper, write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commandline, "_SPECS", {})
    monkeypatch.setattr(commandline, "_PROBLEMS", [])
    user = write_toml({"mine": fake_entry(), "webp": fake_entry(), "jxl-cli": fake_entry()})
    settings.PERCEPTLAB_CODECS_FILE = str(user)
    registry = {slug: e for slug, e in REGISTRY.items() if e.family != "commandline"}
    load_commandline_codecs(registry)
    assert (
        registry["mine"].family == "commandline" and registry["jxl-cli"].label == "JPEG XL (cjxl)"
    )
    assert commandline.spec_for("mine") is not None
    clashes = {p.entry: p for p in commandline.load_problems()}
    assert set(clashes) == {"webp", "jxl-cli"} and all(p.clash for p in clashes.values())
    assert str(clashes["webp"]) == (
        f"{user}: [codecs.webp]: slug 'webp' is already taken by the classical codec "
        "perceptlab.codecs.classical:WebpCodec"
    )
    assert f"already taken by {SHIPPED_FILE}" in str(clashes["jxl-cli"])


def test_a_clash_between_two_user_files_names_both(write_toml: WriteToml) -> None:
    first = write_toml({"mine": fake_entry()}, "first.toml")
    second = write_toml({"mine": fake_entry(label="Other")}, "second.toml")
    specs, problems = collect([first, second], {})
    assert specs["mine"].source == first
    assert [str(p) for p in problems] == [
        f"{second}: [codecs.mine]: slug 'mine' is already taken by {first}"
    ]
    assert problems[0].fix == "rename the entry, e.g. [codecs.mine-2]"


# --- validation -----------------------------------------------------------------------------

DIAL = {"name": "step", "type": "int", "low": 1, "high": 128, "more_bits": "lower"}
MALFORMED = [
    (fake_entry(label=None), "missing key 'label'", 'add label = "My codec"'),
    (fake_entry(timout=5), "unknown key(s) ['timout']", "valid keys:"),
    (
        fake_entry(encode=["fakeenc", "{input}", "{output}", "--q={qualty}"]),
        "encode: unknown placeholder {qualty} in '--q={qualty}'",
        "use one of {input}, {output}, {param}, {step}, {width}, {height}",
    ),
    (
        fake_entry(decode=["fakedec", "{input}", "{output}", "{param}"]),
        "decode: unknown placeholder {param}",
        "the decoder gets only the bitstream",
    ),
    (
        fake_entry(encode=["fakeenc", "{input", "{output}", "{param}"]),
        "encode: '{input' is not a valid template",
        "close every {placeholder}",
    ),
    (
        fake_entry(encode=["fakeenc", "{input}", "{param}"]),
        "encode never uses {output}",
        "add {output} to encode",
    ),
    (
        fake_entry(encode=["fakeenc", "{input}", "{output}"]),
        "encode never uses the dial 'step'",
        "add {param} (or {step})",
    ),
    (
        fake_entry(dial={**DIAL, "low": 10, "high": 1}),
        "dial 'step': low (10) must be below high (1)",
        'more_bits = "higher" or "lower"',
    ),
    (
        fake_entry(dial={**DIAL, "low": 0.5}),
        "dial 'step': an int dial needs whole-number ends",
        'type = "float"',
    ),
    (
        fake_entry(dial={**DIAL, "more_bits": "up"}),
        "dial 'step': more_bits = 'up'",
        'more_bits = "higher" when higher values give more bits',
    ),
    (
        fake_entry(dial={**DIAL, "default": 500}),
        "param 'step': parameter step=500 is outside [1, 128]",
        "inside the range",
    ),
    (
        fake_entry(input_format="jpeg"),
        "input_format = 'jpeg' is not a supported format",
        "['png', 'ppm', 'yuv420p', 'yuv444p', 'yuv420p10le']",
    ),
    (
        fake_entry(params={"effort": {"type": "int", "default": 3}}),
        "param 'effort' is declared but encode never uses it",
        "add {effort} to encode",
    ),
    (fake_entry(version=[]), "version is empty", 'version = ["myenc", "--version"]'),
]


@pytest.mark.parametrize(("entry", "message", "fix"), MALFORMED)
def test_a_malformed_entry_is_left_out_with_its_file_entry_and_fix(
    write_toml: WriteToml, entry: Entry, message: str, fix: str
) -> None:
    [problem] = problems_of(write_toml, entry)
    assert str(problem).startswith(f"{problem.file}: [codecs.fake-q]: ")
    assert message in problem.message and fix in problem.fix
    assert not problem.clash


def test_a_file_that_is_not_toml_is_one_problem_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[codecs.x]\nlabel = "unterminated\n')
    specs, [problem] = read_file(path)
    assert specs == [] and problem.entry == ""
    assert str(problem).startswith(f"{path}: the file: is not valid TOML") and "line 2" in str(
        problem
    )


def test_a_missing_user_file_is_a_problem(tmp_path: Path) -> None:
    specs, [problem] = read_file(tmp_path / "nope.toml")
    assert specs == [] and "cannot be read: No such file or directory" in problem.message


def test_one_bad_entry_does_not_hide_the_good_ones(write_toml: WriteToml) -> None:
    specs, problems = read_file(write_toml({"good": fake_entry(), "bad": fake_entry(dial=3)}))
    assert [s.slug for s in specs] == ["good"]
    assert [(p.entry, p.message) for p in problems] == [("bad", "dial is not a table")]


def test_the_system_check_reports_each_problem_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = SpecProblem(tmp_path / "c.toml", "x", "missing key 'label'", 'add label = "My codec"')
    clash = SpecProblem(tmp_path / "c.toml", "webp", "slug 'webp' is already taken", "rename")
    monkeypatch.setattr(commandline, "_PROBLEMS", [bad, replace_clash(clash)])
    errors = check_commandline_codecs()
    assert [(e.id, e.msg, e.hint) for e in errors] == [
        ("codecs.W030", f"{tmp_path / 'c.toml'}: [codecs.x]: missing key 'label'", bad.fix),
        ("codecs.W031", str(clash), "rename"),
    ]


def replace_clash(problem: SpecProblem) -> SpecProblem:
    return SpecProblem(problem.file, problem.entry, problem.message, problem.fix, clash=True)


# --- running commands -----------------------------------------------------------------------


def test_the_bitstream_is_the_encoders_output_file_byte_for_byte(make_codec: MakeCodec) -> None:
    codec, image = make_codec(copy_entry("ppm")), gradient()
    bitstream = codec.encode(image, {"step": 7})
    assert bitstream == ppm_bytes(image)  # what `copy` wrote as {output}
    assert np.array_equal(codec.decode(bitstream), image)


@pytest.mark.parametrize("image_format", ["png", "ppm", "yuv444p", "yuv420p", "yuv420p10le"])
def test_each_format_round_trips_an_odd_sized_image(
    make_codec: MakeCodec, image_format: str
) -> None:
    codec, image = make_codec(copy_entry(image_format)), gradient(33, 47)
    bitstream = codec.encode(image, {})
    decoded = codec.decode(bitstream)
    assert decoded.shape == image.shape
    if image_format in ("png", "ppm"):
        assert np.array_equal(decoded, image)
        return
    assert bitstream[:8] == b"PLC1" + (47).to_bytes(2, "big") + (33).to_bytes(2, "big")
    samples = {"yuv444p": 3 * 33 * 47, "yuv420p": 34 * 48 * 3 // 2, "yuv420p10le": 34 * 48 * 3}
    assert len(bitstream) == 8 + samples[image_format]  # the size header counts in bpp
    assert psnr(image, decoded) > 38  # BT.709 full-range YCbCr and chroma sampling only


def test_placeholders_are_filled_with_params_paths_and_size(
    make_codec: MakeCodec, bin_dir: Path
) -> None:
    entry = copy_entry(
        "yuv420p",
        encode=["copy", "{input}", "{output}", "--q={param}", "-e", "{effort}", "{width}x{height}"],
        decode=["copy", "{input}", "{output}", "-s", "{width}x{height}"],
        params={"effort": {"type": "int", "default": 4, "low": 0, "high": 9}},
    )
    codec = make_codec(entry)
    bitstream = codec.encode(gradient(33, 47), {"step": 12, "effort": 9})
    args = json.loads((bin_dir / "copy.args.json").read_text())
    assert args[2:] == ["--q=12", "-e", "9", "48x34"]  # 4:2:0 frames are padded to even
    assert Path(args[0]).name == "in.yuv" and Path(args[1]).name == "out.fake"
    codec.decode(bitstream)
    args = json.loads((bin_dir / "copy.args.json").read_text())
    assert args[2:] == ["-s", "48x34"] and Path(args[0]).name == "in.fake"
    with pytest.raises(CodecError, match=r"effort=10 is outside \[0, 9\]"):
        codec.encode(gradient(), {"effort": 10})


def test_the_version_is_the_first_line_of_the_version_command(make_codec: MakeCodec) -> None:
    assert make_codec(fake_entry()).version() == "FakeCodec 1.2.3 (build 7)"


def test_a_failing_command_raises_with_its_stderr_tail_and_leaves_no_files(
    make_codec: MakeCodec, scratch: Path
) -> None:
    codec = make_codec(fake_entry(encode=["failing", "{input}", "{output}", "{param}"]))
    with pytest.raises(CodecError, match="failing exited with status 3: ") as raised:
        codec.encode(gradient(), {})
    assert str(raised.value).endswith("warming up | fake: cannot parse the input file")
    assert list(scratch.iterdir()) == []


def test_a_command_that_writes_nothing_is_an_error(make_codec: MakeCodec, scratch: Path) -> None:
    codec = make_codec(fake_entry(decode=["silent", "{input}", "{output}"]))
    with pytest.raises(CodecError, match=r"silent exited normally but wrote no out\.ppm"):
        codec.decode(b"FAKE-not-really")
    assert list(scratch.iterdir()) == []


def test_a_command_past_its_timeout_is_killed_and_leaves_no_files(
    make_codec: MakeCodec, scratch: Path
) -> None:
    entry = fake_entry(encode=["sleeping", "{input}", "{output}", "{param}"], timeout=0.5)
    codec = make_codec(entry)
    started = time.monotonic()
    with pytest.raises(CodecError, match=r"sleeping timed out after 0.5 s"):
        codec.encode(gradient(), {})
    assert time.monotonic() - started < 10
    assert list(scratch.iterdir()) == []


def test_a_timeout_kills_the_commands_children_too(make_codec: MakeCodec, bin_dir: Path) -> None:
    entry = fake_entry(encode=["wrapper", "{input}", "{output}", "{param}"], timeout=1)
    with pytest.raises(CodecError, match="wrapper timed out after 1 s"):
        make_codec(entry).encode(gradient(), {})
    pid = int((bin_dir / "wrapper.child").read_text())
    for _ in range(50):  # SIGKILL is delivered asynchronously
        if not _running(pid):
            break
        time.sleep(0.02)
    assert not _running(pid)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_missing_binary_makes_the_codec_unavailable_but_registered(
    write_toml: WriteToml, bin_dir: Path
) -> None:
    entry = fake_entry(
        encode=["perceptlab-no-such-enc", "{input}", "{output}", "{param}"], package="libfoo-bin"
    )
    path = write_toml({"fake-q": entry})
    specs, problems = collect([path], {})
    assert problems == [] and "fake-q" in specs  # registered all the same
    codec = codec_class(specs["fake-q"])()
    state = codec.availability()
    assert not state.available
    assert state.reason == (
        "binary 'perceptlab-no-such-enc' not found on PATH; install the Debian package "
        f"libfoo-bin (apt-get install libfoo-bin) or put it on PATH ({path})"
    )
    assert codec.version() == "unavailable"
    with pytest.raises(CodecUnavailable, match="perceptlab-no-such-enc"):
        codec.encode(gradient(), {})


def test_rate_control_turns_the_dial_to_the_target(make_codec: MakeCodec) -> None:
    codec, image = make_codec(fake_entry()), gradient(64, 96)
    coarse, fine = (len(codec.encode(image, {"step": s})) for s in (64, 4))
    target = bits_per_pixel((coarse + fine) // 2, 64, 96)
    result = encode_at_bpp(codec, image, target)
    assert result.within_tolerance and result.bpp <= target * (1 + TOLERANCE)
    assert result.bpp == bits_per_pixel(len(result.bitstream), 64, 96)
    assert isinstance(result.params["step"], int) and 4 < result.params["step"] < 64
    assert psnr(image, codec.decode(result.bitstream)) > 20


# --- manage.py codecs -----------------------------------------------------------------------


@pytest.mark.django_db  # manage.py codecs also lists the imported codecs, from the database
def test_the_codecs_command_lists_them_with_their_file_and_version() -> None:
    out = io.StringIO()
    call_command("codecs", "--json", stdout=out)
    rows = {row["slug"]: row for row in map(json.loads, out.getvalue().splitlines())}
    row = rows["webp-cli"]
    assert row["family"] == "commandline" and row["source"] == str(SHIPPED_FILE)
    assert row["requires"] == ["cwebp", "dwebp"] and row["rate_dial"] == "quality"
    assert row["version"] == ("1.2.4" if shutil.which("cwebp") else "unavailable")
    text = io.StringIO()
    call_command("codecs", stdout=text)
    [line] = [line for line in text.getvalue().splitlines() if line.startswith("jxl-cli ")]
    assert str(SHIPPED_FILE) in line


def test_the_admin_offers_them_saying_why_one_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # none of the tools on PATH
    labels = dict(codec_choices_with_availability())
    assert labels["jxl-cli"] == (
        "JPEG XL (cjxl) — unavailable: binary 'cjxl' not found on PATH; install the Debian "
        f"package libjxl-tools (apt-get install libjxl-tools) or put it on PATH ({SHIPPED_FILE})"
    )


# --- the shipped entries, for real ----------------------------------------------------------

REAL = [
    # slug, binaries, Debian package, a middle setting of the dial
    ("jxl-cli", ("cjxl", "djxl"), "libjxl-tools", {"distance": 2.0}),
    ("avif-cli", ("avifenc", "avifdec"), "libavif-bin", {"qp": 32}),
    ("webp-cli", ("cwebp", "dwebp"), "webp", {"quality": 50}),
]


def require(binaries: tuple[str, ...], package: str) -> None:
    __tracebackhide__ = True  # report the skip at the test, not here
    for binary in binaries:
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} not found on PATH; install the Debian package {package}")


@pytest.mark.needs_binary
@pytest.mark.parametrize(("slug", "binaries", "package", "params"), REAL)
def test_a_shipped_codec_round_trips_a_kodak_crop(
    kodim23: np.ndarray,
    slug: str,
    binaries: tuple[str, ...],
    package: str,
    params: dict[str, object],
) -> None:
    require(binaries, package)
    codec, image = get_codec(slug), kodim23[128:384, 256:512]
    bitstream = codec.encode(image, params)
    bpp = bits_per_pixel(len(bitstream), 256, 256)
    assert 0.1 < bpp < 2.0
    decoded = codec.decode(bitstream)
    assert decoded.shape == image.shape and psnr(image, decoded) > 25
    assert codec.version() not in ("unknown", "unavailable")


@pytest.mark.needs_binary
def test_rate_control_reaches_a_target_over_cjxls_continuous_distance(
    kodim23: np.ndarray,
) -> None:
    require(("cjxl", "djxl"), "libjxl-tools")
    codec, image = get_codec("jxl-cli"), kodim23[128:384, 256:512]
    result = encode_at_bpp(codec, image, 0.5)
    assert result.within_tolerance and abs(result.bpp - 0.5) < 0.5 * TOLERANCE
    assert 0.1 <= float(result.params["distance"]) <= 25


@pytest.mark.needs_binary
@pytest.mark.django_db
def test_generate_stores_a_rate_controlled_stimulus_from_a_command_line_codec(
    tmp_path: Path,
) -> None:
    require(("cwebp", "dwebp"), "webp")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(kodak_path("kodim23"), folder / "kodim23.png")
    call_command("import_images", str(folder), "--set", "k", stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        *("generate", "--set", "k", "--codecs", "webp-cli", "--bpp", "0.5", "--json"), stdout=out
    )
    [row] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["codec"] == "webp-cli" and row["codec_version"] == "1.2.4"
    assert abs(row["achieved_bpp"] / 0.5 - 1) <= TOLERANCE
    assert row["achieved_bpp"] == 8 * row["bytes"] / (768 * 512)
    stored = Reconstruction.objects.get(codec="webp-cli")
    assert stored.bitstream.name.endswith(".webp")
