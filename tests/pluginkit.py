"""The example codec plugin (examples/perceptlab-codec-example) made visible to a test the way
pip makes an installed package visible: a ``.dist-info`` folder (METADATA and entry_points.txt,
written from the example's own pyproject.toml) on ``sys.path`` next to its source."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from perceptlab.codecs.plugins import load_plugin_codecs
from perceptlab.codecs.registry import REGISTRY, get_codec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "perceptlab-codec-example"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
PACKAGE, VERSION = PROJECT["name"], PROJECT["version"]
SLUG = "example-dct"


def write_dist_info(site: Path) -> None:
    """What pip writes for the example: its metadata and its entry points."""
    info = site / f"{PACKAGE.replace('-', '_')}-{VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n"
        f"Summary: {PROJECT['description']}\n"
    )
    sections = [
        "\n".join([f"[{group}]", *(f"{name} = {value}" for name, value in points.items())])
        for group, points in PROJECT["entry-points"].items()
    ]
    (info / "entry_points.txt").write_text("\n\n".join(sections) + "\n")


@contextmanager
def restored_registry() -> Iterator[None]:
    """Whatever is registered inside is gone afterwards (and no codec instance outlives it)."""
    saved = dict(REGISTRY)
    get_codec.cache_clear()
    try:
        yield
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        get_codec.cache_clear()


def install_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The example visible as if pip-installed, and registered; returns its slug. Use inside
    :func:`restored_registry`."""
    write_dist_info(tmp_path / "site")
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert load_plugin_codecs() == []
    assert SLUG in REGISTRY
    return SLUG
