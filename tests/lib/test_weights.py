from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from perceptlab.lib import weights
from perceptlab.lib.weights import (
    MANIFEST,
    HashMismatch,
    NotInSource,
    State,
    Unreachable,
    WeightFile,
    WeightsError,
    WeightsUnavailable,
    fetch,
    file_state,
    resolve,
    select,
)

PAYLOAD = b"not really a network, but the right bytes\n" * 1000


def entry(url: str = "https://example.invalid/fake.pt", sha256: str | None = None) -> WeightFile:
    """A test-only manifest entry for fake.pt, pinned to PAYLOAD's digest by default."""
    return WeightFile(
        name="fake.pt",
        url=url,
        sha256=hashlib.sha256(PAYLOAD).hexdigest() if sha256 is None else sha256,
        sha256_source="computed by the test",
        metrics=("fake",),
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "usb-stick"
    folder.mkdir()
    (folder / "fake.pt").write_bytes(PAYLOAD)
    return folder


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def test_fetch_from_a_folder_copies_and_verifies_the_file(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "weights"
    outcome = fetch(entry(), dest, source=source)
    assert (dest / "fake.pt").read_bytes() == PAYLOAD
    assert outcome.state.state is State.VERIFIED
    assert outcome.action == f"copied from {source}"
    assert leftovers(dest) == ["fake.pt"]


def test_a_copy_with_the_wrong_hash_is_refused_and_nothing_is_left(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "weights"
    wrong = "0" * 64
    with pytest.raises(HashMismatch) as caught:
        fetch(entry(sha256=wrong), dest, source=source)
    got = hashlib.sha256(PAYLOAD).hexdigest()
    assert str(caught.value) == (
        f"fake.pt from {source / 'fake.pt'} has SHA-256 {got}, expected {wrong}; nothing was kept"
    )
    assert leftovers(dest) == []


def test_a_file_missing_from_the_source_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotInSource, match=r"fake.pt is not in .*empty; download it from https://"):
        fetch(entry(), tmp_path / "weights", source=tmp_path / "empty")


def test_download_from_a_local_server_is_verified_and_renamed_into_place(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, served = server
    (served / "fake.pt").write_bytes(PAYLOAD)
    dest = tmp_path / "weights"
    outcome = fetch(entry(f"{base}/fake.pt"), dest)
    assert outcome.action == f"downloaded from {base}/fake.pt"
    assert outcome.state.state is State.VERIFIED
    assert leftovers(dest) == ["fake.pt"]
    assert (dest / "fake.pt").read_bytes() == PAYLOAD


def test_a_download_with_the_wrong_hash_leaves_nothing_behind(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, served = server
    (served / "fake.pt").write_bytes(PAYLOAD[:-1])  # truncated upstream
    dest = tmp_path / "weights"
    with pytest.raises(HashMismatch, match=f"fake.pt from {base}/fake.pt has SHA-256"):
        fetch(entry(f"{base}/fake.pt"), dest)
    assert leftovers(dest) == []


def test_a_missing_url_or_unreachable_host_says_to_copy_the_file_with_from(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    with pytest.raises(Unreachable) as caught:
        fetch(entry(f"{base}/absent.pt"), tmp_path / "weights")
    assert str(caught.value) == (
        f"could not reach {base}/absent.pt: HTTP 404 File not found; "
        "copy the file from a machine with internet and run fetch_weights --from DIR"
    )
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/fake.pt"
    with pytest.raises(Unreachable, match=f"could not reach {closed}: .*refused"):
        fetch(entry(closed), tmp_path / "weights")
    assert leftovers(tmp_path / "weights") == []


def test_a_usable_copy_is_kept_unless_forced_and_a_corrupt_one_is_replaced(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "weights"
    fetch(entry(), dest, source=source)
    assert fetch(entry(), dest, source=source).action == "already present"
    assert fetch(entry(), dest, source=source, force=True).action == f"copied from {source}"
    (dest / "fake.pt").write_bytes(b"bit rot")
    assert file_state(entry(), dest).state is State.MISMATCH
    assert fetch(entry(), dest, source=source).action == f"copied from {source}"
    assert (dest / "fake.pt").read_bytes() == PAYLOAD


def test_a_file_without_a_published_hash_is_accepted_but_reported_unverified(
    source: Path, tmp_path: Path
) -> None:
    unpinned = WeightFile("fake.pt", "https://example.invalid/fake.pt", None, "none", ("fake",))
    outcome = fetch(unpinned, tmp_path / "w", source=source)
    assert outcome.state.state is State.UNPINNED and outcome.state.state.usable
    assert outcome.describe() == (
        "fake.pt: present, unverified (no published SHA-256) (needed by fake); "
        f"SHA-256 of this copy {hashlib.sha256(PAYLOAD).hexdigest()} [copied from {source}]"
    )


def test_resolve_names_the_missing_files_and_where_they_go(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable) as caught:
        resolve(["vgg16-397923af.pth", "dists_weights.pt"], tmp_path)
    assert str(caught.value) == (
        f"weights missing: vgg16-397923af.pth, dists_weights.pt, put them in {tmp_path} "
        "(or run `manage.py fetch_weights`)"
    )
    with pytest.raises(WeightsUnavailable, match=r"weights nope\.pt are not in the manifest"):
        resolve(["nope.pt"], tmp_path)


def test_select_takes_file_names_or_metric_slugs() -> None:
    # Without --only, every file but those under a licence of their own (MS-ILLM, CC-BY-NC)
    assert [e.name for e in select([])] == [n for n, e in MANIFEST.items() if not e.licence]
    restricted = [e.name for e in select(["msillm"])]
    assert len(restricted) == 6 and not set(restricted) & {e.name for e in select([])}
    assert all("CC-BY-NC" in MANIFEST[n].licence for n in restricted)
    assert [e.name for e in select(["lpips"])] == ["vgg16-397923af.pth", "lpips_weights.pt"]
    assert [e.name for e in select(["dists_weights.pt", "dists"])] == [
        "dists_weights.pt",
        "vgg16-397923af.pth",
    ]
    with pytest.raises(WeightsError, match="unknown weight file or metric 'vgg19'; files: vgg16"):
        select(["vgg19"])


def test_every_pinned_digest_is_a_full_sha256_and_vgg_matches_its_file_name() -> None:
    vgg = MANIFEST["vgg16-397923af.pth"]
    assert vgg.sha256 is not None and len(vgg.sha256) == 64
    assert vgg.sha256.startswith("397923af")  # torchvision's <name>-<sha256[:8]> convention
    for item in MANIFEST.values():
        assert item.url.endswith("/" + item.name) and item.sha256_source


@pytest.mark.needs_torch
def test_the_manifest_urls_are_the_ones_piq_and_torchvision_would_download() -> None:
    import piq
    from torchvision.models import VGG16_Weights

    assert MANIFEST["dists_weights.pt"].url == piq.DISTS._weights_url
    assert MANIFEST["lpips_weights.pt"].url == piq.LPIPS._weights_url
    assert MANIFEST["vgg16-397923af.pth"].url == VGG16_Weights.IMAGENET1K_V1.url


# --- manage.py fetch_weights -------------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("fetch_weights", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def weights_dir(settings: Any, tmp_path: Path) -> Path:
    settings.PERCEPTLAB_WEIGHTS_DIR = tmp_path / "weights"
    return tmp_path / "weights"


def test_check_lists_every_file_as_missing_and_fails(weights_dir: Path) -> None:
    out = StringIO()
    with pytest.raises(CommandError, match=r"37 weight file\(s\) missing or corrupt: vgg16"):
        call_command("fetch_weights", "--check", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        f"weights directory: {weights_dir}",
        "vgg16-397923af.pth: missing (needed by dists, lpips)",
        "dists_weights.pt: missing (needed by dists)",
        "lpips_weights.pt: missing (needed by lpips)",
    ]
    # then CompressAI's zoo files, one per quality level of the three learned baselines, and
    # the twelve MS-ILLM files (six GAN, six No-GAN)
    assert len(lines) == 4 + 8 + 8 + 6 + 12
    assert (
        "bmshj2018-hyperprior-1-7eb97409.pth.tar: missing (needed by bmshj2018-hyperprior)" in lines
    )


def test_check_reports_corrupt_and_unverified_copies(weights_dir: Path) -> None:
    weights_dir.mkdir()
    (weights_dir / "vgg16-397923af.pth").write_bytes(b"truncated")
    (weights_dir / "dists_weights.pt").write_bytes(b"whatever piq published")
    out = StringIO()
    # vgg16 corrupt, lpips, the 22 CompressAI zoo files and the 12 MS-ILLM files missing
    with pytest.raises(CommandError, match=r"36 weight file\(s\) missing or corrupt: vgg16"):
        call_command("fetch_weights", "--check", stdout=out)
    lines = out.getvalue().splitlines()
    bad = hashlib.sha256(b"truncated").hexdigest()
    assert lines[1] == (
        "vgg16-397923af.pth: CORRUPT (SHA-256 mismatch) (needed by dists, lpips); "
        f"has {bad}, expected {MANIFEST['vgg16-397923af.pth'].sha256}"
    )
    assert lines[2].startswith("dists_weights.pt: present, unverified (no published SHA-256)")


def test_fetch_weights_from_a_folder_copies_what_it_finds_and_names_what_it_does_not(
    weights_dir: Path, tmp_path: Path
) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "lpips_weights.pt").write_bytes(b"lpips linear layers")
    with pytest.raises(CommandError, match=r"1 of 2 weight file\(s\) were not fetched"):
        run("--from", str(stick), "--only", "lpips")
    assert (weights_dir / "lpips_weights.pt").read_bytes() == b"lpips linear layers"
    assert not (weights_dir / "vgg16-397923af.pth").exists()
    out, err = run("--from", str(stick), "--only", "lpips_weights.pt")
    assert "lpips_weights.pt: present, unverified" in out and "[already present]" in out
    assert err == ""


def test_fetch_weights_reports_the_missing_file_on_stderr(
    weights_dir: Path, tmp_path: Path
) -> None:
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("fetch_weights", "--from", str(tmp_path), "--only", "dists", stderr=err)
    assert f"vgg16-397923af.pth: vgg16-397923af.pth is not in {tmp_path}" in err.getvalue()
    assert f"dists_weights.pt: dists_weights.pt is not in {tmp_path}" in err.getvalue()


def test_fetch_weights_rejects_an_unknown_name(weights_dir: Path) -> None:
    with pytest.raises(CommandError, match="unknown weight file or metric 'alexnet'"):
        run("--only", "alexnet")


def test_fetch_weights_dest_overrides_the_setting(weights_dir: Path, tmp_path: Path) -> None:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("fetch_weights", "--check", "--dest", str(tmp_path / "elsewhere"), stdout=out)
    assert out.getvalue().startswith(f"weights directory: {tmp_path / 'elsewhere'}\n")


def test_configured_weights_dir_defaults_to_var_weights(settings: Any) -> None:
    if hasattr(settings, "PERCEPTLAB_WEIGHTS_DIR"):
        del settings.PERCEPTLAB_WEIGHTS_DIR
    assert weights.configured_weights_dir() == settings.VAR_DIR / "weights"
