"""Codec plugins: the example package found through its entry point, used end to end, and
every way a plugin can be broken reported by the system check without breaking the platform.

The example is made visible the way pip makes an installed package visible: a ``.dist-info``
folder (METADATA, entry_points.txt, written from the example's own pyproject.toml) on
``sys.path`` next to its source. One slow test installs it with pip for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.checks import WARNING
from django.core.management import call_command
from pluginkit import EXAMPLE, PACKAGE, PROJECT, VERSION, install_example, restored_registry
from support import psnr

from perceptlab.codecs import plugins
from perceptlab.codecs.base import CodecUnavailable
from perceptlab.codecs.checks import check_codec_plugins
from perceptlab.codecs.plugins import Plugin, PluginError, load_plugin_codecs
from perceptlab.codecs.ratecontrol import encode_at_bpp
from perceptlab.codecs.registry import REGISTRY, get_codec


@pytest.fixture
def registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards (and no codec instance outlives it)."""
    with restored_registry():
        yield


@pytest.fixture
def example(registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The example package visible as if pip-installed, and registered; returns its slug."""
    return install_example(tmp_path, monkeypatch)


@pytest.fixture
def fake_plugins(registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path for fake plugin modules; tests then fake :func:`plugins.discover`."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def discovering(monkeypatch: pytest.MonkeyPatch, *found: Plugin) -> None:
    monkeypatch.setattr(plugins, "discover", lambda: list(found))


def run_codecs_json() -> dict[str, dict[str, object]]:
    out = StringIO()
    call_command("codecs", "--json", stdout=out)
    return {row["slug"]: row for row in map(json.loads, out.getvalue().splitlines())}


# -- the example package, found through its entry point --------------------------------------


def test_the_example_is_registered_from_its_metadata_without_importing_it(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("perceptlab_codec_example", "perceptlab_codec_example.dct"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    load_plugin_codecs()
    assert "perceptlab_codec_example.dct" not in sys.modules
    entry = REGISTRY[example]
    assert (entry.family, entry.package, entry.package_version) == ("plugin", PACKAGE, VERSION)
    assert entry.target == "perceptlab_codec_example.dct:DctCodec"
    assert (entry.label, entry.description) == (example, PROJECT["description"])


def test_get_codec_loads_the_class_and_the_registry_takes_its_label(example: str) -> None:
    codec = get_codec(example)
    assert type(codec).__name__ == "DctCodec" and codec.slug == example
    assert REGISTRY[example].label == "Example DCT (plugin)"
    assert REGISTRY[example].package == PACKAGE  # the refreshed entry keeps its origin


@pytest.mark.django_db
def test_manage_py_codecs_lists_the_plugin_with_its_package_and_version(example: str) -> None:
    row = run_codecs_json()[example]
    assert row["available"] and row["family"] == "plugin" and row["rate_dial"] == "step"
    assert (row["package"], row["package_version"]) == (PACKAGE, VERSION)
    assert row["label"] == "Example DCT (plugin)" and f"package {VERSION}" in str(row["version"])
    assert run_codecs_json()["jpeg"]["package"] == "perceptlab"
    out = StringIO()
    call_command("codecs", stdout=out)
    [line] = [line for line in out.getvalue().splitlines() if line.startswith(example)]
    assert f"{PACKAGE} {VERSION}" in line and line.endswith("available")


def test_the_example_round_trips_a_kodak_crop(example: str, kodim23: np.ndarray) -> None:
    crop = kodim23[96:224, 192:320]
    codec = get_codec(example)
    decoded = codec.decode(codec.encode(crop, {"step": 8}))
    assert decoded.shape == crop.shape and psnr(crop, decoded) > 30


@pytest.mark.parametrize("target", [0.25, 1.0])
def test_rate_control_reaches_a_target_bpp_over_the_plugins_dial(
    example: str, kodim23: np.ndarray, target: float
) -> None:
    result = encode_at_bpp(get_codec(example), kodim23[96:224, 192:320], target)
    assert result.within_tolerance and 0.9 * target < result.bpp <= 1.03 * target
    assert 1 <= float(result.params["step"]) <= 512


@pytest.mark.django_db
def test_a_study_generates_its_stimuli_with_the_plugin(example: str) -> None:
    from studykit import make_study

    from perceptlab.studies.models import Stimulus

    study = make_study("acr", codecs=[example], target_bpps=[0.75, 1.5])
    conditions = Stimulus.objects.filter(study=study, role=Stimulus.Role.CONDITION)
    assert conditions.count() == 4
    for stimulus in conditions:
        reconstruction = stimulus.reconstruction
        assert reconstruction is not None and reconstruction.codec == example
        assert reconstruction.codec_version.startswith("example-dct format 1")


def test_the_check_is_silent_about_a_sound_plugin(example: str) -> None:
    assert check_codec_plugins() == []


# -- broken plugins: reported with the package and the fix, never breaking the platform ------


HALF_DONE = """
from perceptlab.codecs.base import Codec

class HalfCodec(Codec):
    slug = "half"

    def version(self) -> str:
        return "half 0"

    def _encode(self, image, params):
        return b"x"

class FussyCodec(HalfCodec):
    slug = "fussy"

    def __init__(self) -> None:
        raise RuntimeError("needs a GPU")

    def _decode(self, bitstream):
        raise NotImplementedError
"""


def test_the_check_names_each_failure_its_package_and_the_fix(
    fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_plugins / "half_done_plugin.py").write_text(textwrap.dedent(HALF_DONE))
    discovering(
        monkeypatch,
        Plugin("Bad Slug", "half_done_plugin:HalfCodec", "pkg-bad", "0.1"),
        Plugin("jpeg", "half_done_plugin:HalfCodec", "pkg-jpeg", "0.2"),
        Plugin("twin", "half_done_plugin:HalfCodec", "pkg-a", "1.0"),
        Plugin("twin", "half_done_plugin:HalfCodec", "pkg-b", "2.0"),
        Plugin("gone", "perceptlab_no_such_module:Codec", "pkg-gone", "0.3"),
        Plugin("param", "perceptlab.codecs.base:Param", "pkg-param", "0.4"),
        Plugin("half", "half_done_plugin:HalfCodec", "pkg-half", "0.5"),
        Plugin("fussy", "half_done_plugin:FussyCodec", "pkg-fussy", "0.6"),
        Plugin("not-jpeg", "perceptlab.codecs.classical:JpegCodec", "pkg-nj", "0.7"),
    )
    messages = check_codec_plugins()
    assert all(m.level == WARNING for m in messages)  # warnings: the site keeps running
    found = [(m.id, str(m.msg), str(m.hint)) for m in messages]
    assert [(check_id, msg.split(":")[0]) for check_id, msg, _ in found] == [
        ("codecs.W050", "codec plugin 'Bad Slug' from pkg-bad 0.1"),
        ("codecs.W051", "codec plugin 'jpeg' from pkg-jpeg 0.2"),
        ("codecs.W052", "codec plugin 'twin' from pkg-a 1.0"),
        ("codecs.W052", "codec plugin 'twin' from pkg-b 2.0"),
        ("codecs.W053", "codec plugin 'gone' from pkg-gone 0.3"),
        ("codecs.W054", "codec plugin 'param' from pkg-param 0.4"),
        ("codecs.W054", "codec plugin 'half' from pkg-half 0.5"),
        ("codecs.W054", "codec plugin 'fussy' from pkg-fussy 0.6"),
        ("codecs.W055", "codec plugin 'not-jpeg' from pkg-nj 0.7"),
    ]
    problems_and_fixes = [
        ("is not a codec slug", "rename the entry point"),
        ("taken by PerceptLab's classical codec 'JPEG 4:2:0'", "pip uninstall pkg-jpeg"),
        ("also claimed by pkg-b 2.0; neither is registered", "pip uninstall pkg-a or pkg-b"),
        ("also claimed by pkg-a 1.0; neither is registered", "pip uninstall pkg-a or pkg-b"),
        ("cannot be imported: ModuleNotFoundError", "pip install --force-reinstall pkg-gone==0.3"),
        ("is the class Param, not a subclass of perceptlab.codecs.base.Codec", "Codec subclass"),
        ("HalfCodec does not implement _decode", "define _decode in HalfCodec"),
        ("FussyCodec fails: RuntimeError: needs a GPU", "FussyCodec() must construct"),
        ("JpegCodec.slug is 'jpeg' but the entry point is 'not-jpeg'", "set slug = 'not-jpeg'"),
    ]
    for (_, msg, hint), (problem, fix) in zip(found, problems_and_fixes, strict=True):
        assert problem in msg and fix in hint, (msg, hint)


@pytest.mark.django_db
def test_a_broken_plugin_is_listed_as_unavailable_and_a_clash_is_not_registered(
    fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discovering(
        monkeypatch,
        Plugin("gone", "perceptlab_no_such_module:Codec", "pkg-gone", "0.3"),
        Plugin("jpeg", "perceptlab_no_such_module:Codec", "pkg-jpeg", "0.2"),
    )
    refused = load_plugin_codecs()
    assert [(error.slug, error.check_id) for error in refused] == [("jpeg", "codecs.W051")]
    assert REGISTRY["jpeg"].family == "classical"
    with pytest.raises(CodecUnavailable, match=r"pip install --force-reinstall pkg-gone==0\.3"):
        get_codec("gone")
    row = run_codecs_json()["gone"]
    assert not row["available"] and "ModuleNotFoundError" in str(row["reason"])
    assert (row["package"], row["package_version"]) == ("pkg-gone", "0.3")
    call_command("check", stdout=StringIO(), stderr=StringIO())  # warnings do not stop it


def test_plugin_error_is_a_codec_error_carrying_the_check_id_and_fix() -> None:
    plugin = Plugin("x", "m:C", "pkg-x", "1.0")
    error = PluginError(plugin, "codecs.W053", "it broke", "reinstall it")
    assert str(error) == "x: codec plugin from pkg-x 1.0: it broke; fix: reinstall it"
    assert isinstance(error, CodecUnavailable) and error.check_id == "codecs.W053"


# -- the example package as a user gets it -------------------------------------------------


@pytest.mark.slow
def test_pip_installs_the_example_and_its_entry_point_is_discovered(
    registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = shutil.copytree(EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
        check=True,
        capture_output=True,
    )
    monkeypatch.syspath_prepend(str(site))
    [found] = plugins.discover()
    assert found == Plugin(
        "example-dct", "perceptlab_codec_example.dct:DctCodec", PACKAGE, VERSION, found.summary
    )
    assert plugins.validated_codec(found).slug == "example-dct"


@pytest.mark.slow
def test_the_example_package_passes_its_own_tests() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=EXAMPLE,
    )
    assert result.returncode == 0, result.stdout[-3000:]
