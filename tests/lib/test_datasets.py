"""The dataset catalogue: where the datasets are found, verified fetching, the converters.

Nothing here touches the internet: downloads come from a ``http.server`` on 127.0.0.1 in a
thread, and the converters read small made-up files in the real upstream formats (the real
upstream files were checked to reproduce the reference copies byte for byte when the catalogue
was written; :func:`test_the_shared_reference_copies_match_the_catalogue` keeps the digests
honest on machines that hold those copies).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from perceptlab.lib import datasets
from perceptlab.lib.datasets import (
    CATALOGUE,
    ConversionError,
    DataFile,
    Dataset,
    DatasetUnavailable,
    HashMismatch,
    NotFetchable,
    Source,
    State,
    UnknownDataset,
    Unreachable,
    check_dataset,
    dataset_dir,
    dataset_path,
    fetch_dataset,
    read_python_assignments,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert(dataset: str, file: str, source: str | bytes) -> str:
    """The catalogue's own converter for ``dataset/file`` applied to ``source``."""
    converter = CATALOGUE[dataset].file(file).convert
    assert converter is not None
    raw = source.encode() if isinstance(source, str) else source
    return converter(raw).decode()


# -- made-up sources in the upstream formats --------------------------------------------------

# Netflix/sureal resource/dataset/NFLX_dataset_public_raw.py: paths built with `+`, the
# reference rated as a dis_video too, opinion scores as lists (raters by position).
NFLX_PY = """\
dataset_name = 'NFLX_public'
yuv_fmt = 'yuv420p'
ref_score = 5.0

ref_dir = '[path to dataset videos]/ref'
dis_dir = '[path to dataset videos]/dis'

ref_videos = [
 {'content_id': 0,
  'content_name': 'BigBuckBunny',
  'path': ref_dir + '/BigBuckBunny_25fps.yuv'}
]

dis_videos = [
 {'asset_id': 9,
  'content_id': 0,
  'os': [1.0,
         2.0],
  'path': dis_dir + '/BigBuckBunny_20_288_375.yuv'},
 {'asset_id': 0, 'content_id': 0, 'os': [5.0, 4.5], 'path': ref_dir + '/BigBuckBunny_25fps.yuv'}
]
"""

# resource/dataset/VQEGHD3_dataset_raw.py
VQEGHD3_PY = """\
dataset_name = 'VQEGHD3'
ref_videos = [{'content_id': 0,
  'content_name': 'vqeghd3_src01',
  'path': 'FILEPATH/vqeghd3_src01_hrc00_cut.avi'}]

dis_videos = [
 {'asset_id': 3, 'content_id': 0, 'os': [1.0, 3.0], 'path': 'FILEPATH/vqeghd3_src01_hrc16_cut.avi'}
]
"""

# resource/dataset/vqeg_frtv_p1_625_line_high_dataset.py: numpy imported, float content ids,
# opinion scores as a dict by rater, a missing rating as float('NaN').
FRTV_PY = """\
import numpy as np

dataset_name = 'vqeg_frtv_p1_625_line_high'

ref_videos = [{'content_id': 13, 'content_name': '13', 'path': '13'}]

dis_videos = [{'asset_id': 0,
  'content_id': 13.0,
  'os': {'201': 23.0,
         '202': float('NaN'),
         '503': -0.8000000000000007},
  'path': '13.0_1.0'}]
"""

# test/resource/quality_variation_2017_agh_tv_dataset.py: integer rater keys.
AGH_PY = """\
dataset_name = 'quality_variation_2017_agh_tv'

ref_videos = [{'content_id': 0,
  'content_name': '1400501_scene_000',
  'path': '1400501_scene_000_ref.mp4'}]

dis_videos = [{'asset_id': 0,
  'content_id': 0,
  'os': {103: 2, 12073: 1},
  'path': '1400501_scene_000_4000_100.mp4'},
 {'asset_id': 1, 'content_id': 0, 'os': {103: 5}, 'path': '1400501_scene_000_ref.mp4'}]
"""

# resource/dataset/lukas_pc_dataset.py: os maps (subject, other asset_id) to a count.
LUKAS_PY = """\
# Dataset taken from: Krasula et al. (a comment, as in the real file)
dataset_name = 'Lukas_SPIE14'
ref_videos = [{'content_id': 0, 'content_name': 'Caps', 'path': 'Caps1.png'}]

dis_videos = [{'asset_id': 0,
  'content_id': 0,
  'os': {('David R.', 1): 1, ('Bouse', 1): 2},
  'path': 'Caps1.png'},
 {'asset_id': 1, 'content_id': 0, 'os': {('David R.', 0): 1}, 'path': 'Caps2.png'}]
"""

# mantiuk/pwcmp examples/ex3_tmo_cmp_data.csv and examples/lf_quality_pwcmps.csv
TMO_CSV = """\
observer,session_id,scene,condition_A,condition_B,is_A_selected,criterion
M01,1,window,tmo_camera,ferwerda96,1,perceptual
M01,1,exhibition,ronan12,irawan05,0,perceptual
M02,1,window,tmo_camera,ferwerda96,1,perceptual
"""
LIGHTFIELD_CSV = """\
trial,observer,session,scene,dist_type1,dist_level1,dist_type2,dist_level2,selected
1,obs_14,S,Car,DQ,1,DQ,4,1
3,obs_14,S,Car,NN,7,DQ,7,2
"""

# hific/hific.github.io raw/userstudy.json
HIFIC_JSON = """\
{
  "zz9" : {
    "-M8I0QbHJFRYSy3U-xPR" : {
      "base_url" : "https://storage.googleapis.com/hific/clic2020/visualize.html?imgs=",
      "crop" : [ 377, 184, 768, 768 ],
      "greater" : "ours_gan_med",
      "image" : "25bf4453f783b8649e24ecc4c8cf124c.png",
      "lesser" : "ours_lpips_low"
    }
  },
  "4waj" : {
    "-M8I0WXnhJVljvNyFy2z" : {
      "crop" : [ 1, 2, 768, 768 ],
      "greater" : "bpg_med_3_v2",
      "image" : "a.png",
      "lesser" : "ours_gan_med",
      "random_choice" : true
    }
  }
}
"""


# -- where the datasets are found -------------------------------------------------------------


def test_the_environment_variable_wins_over_the_shared_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {"PERCEPTLAB_DATASETS": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path)}
    root, origin = datasets.resolve_root(env=env, shared=shared)
    assert root == (tmp_path / "mine").resolve() and origin == "PERCEPTLAB_DATASETS"


def test_the_shared_folder_beside_the_repo_comes_next(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {"PERCEPTLAB_DATASETS": "  ", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert datasets.datasets_root(env=env, shared=shared) == shared  # blank counts as unset


def test_without_either_it_is_the_cache_folder(tmp_path: Path) -> None:
    absent = tmp_path / "no-shared"
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}
    assert datasets.datasets_root(env=xdg, shared=absent) == tmp_path / "cache/perceptlab/datasets"
    home = {"HOME": str(tmp_path / "home")}
    expected = tmp_path / "home/.cache/perceptlab/datasets"
    assert datasets.datasets_root(env=home, shared=absent) == expected


def test_on_this_machine_the_tests_read_the_reference_copies() -> None:
    if os.environ.get("PERCEPTLAB_DATASETS") or not datasets.SHARED_DATASETS.is_dir():
        pytest.skip("PERCEPTLAB_DATASETS is set or there is no ../shared/datasets beside the repo")
    path = dataset_path("kodak", "kodim23.png")
    assert path == datasets.SHARED_DATASETS / "kodak" / "kodim23.png"


def test_unknown_datasets_and_files_are_named_with_the_valid_ones() -> None:
    with pytest.raises(UnknownDataset, match=r"unknown dataset 'kodac'; datasets: kodak, "):
        dataset_path("kodac", "kodim01.png")
    with pytest.raises(UnknownDataset, match=r"'kodim25.png' is not a file of dataset 'kodak'"):
        dataset_path("kodak", "kodim25.png")


# -- the catalogue ----------------------------------------------------------------------------


def test_the_catalogue_holds_every_dataset_the_tests_and_the_demo_read() -> None:
    counts = {name: len(dataset.files) for name, dataset in CATALOGUE.items()}
    assert counts == {"kodak": 24, "sureal": 4, "pairwise": 7, "bdrate": 1, "aic3": 5, "cid22": 251}
    assert "hific_userstudy.csv" in CATALOGUE["pairwise"].by_name
    assert CATALOGUE["kodak"].file("kodim01.png").source.path == "kodak/1.png"
    pinned = re.compile(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+")
    for dataset in CATALOGUE.values():
        assert dataset.fetchable and dataset.origin
        for file in dataset.files:
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256), file.name
            assert pinned.fullmatch(file.source.url), file.source.url
            assert file.source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", file.source.sha256)
            if file.convert is None:  # a copy: the source is the file
                assert file.source.sha256 == file.sha256


def test_a_name_used_twice_or_an_unexplained_unfetchable_dataset_is_refused() -> None:
    source = Source("http://127.0.0.1/x", "x", None)
    with pytest.raises(ValueError, match="lists a twice"):
        Dataset("d", "", "", (DataFile("a", "0" * 64, source), DataFile("a", "1" * 64, source)))
    with pytest.raises(ValueError, match="not fetchable but does not say why"):
        Dataset("d", "", "", (), fetchable=False)
    with pytest.raises(ValueError, match="defined twice"):
        datasets.catalogue_of(Dataset("d", "", "", ()), Dataset("d", "", "", ()))


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_the_shared_reference_copies_match_the_catalogue(name: str) -> None:
    if not datasets.SHARED_DATASETS.is_dir():
        pytest.skip("no ../shared/datasets beside the repo: fetching verifies each SHA-256")
    checks = check_dataset(name, root=datasets.SHARED_DATASETS)
    assert [c.describe() for c in checks if c.state is not State.OK] == []


# -- converters, on made-up files in the upstream formats -------------------------------------


def test_the_nflx_conversion_names_raters_by_position_and_references_ref() -> None:
    assert convert("sureal", "NFLX_dataset_public_raw.csv", NFLX_PY) == (
        "rater,stimulus,content,condition,score\n"
        "s01,BigBuckBunny_20_288_375,BigBuckBunny,20_288_375,1\n"
        "s02,BigBuckBunny_20_288_375,BigBuckBunny,20_288_375,2\n"
        "s01,BigBuckBunny_25fps,BigBuckBunny,ref,5\n"
        "s02,BigBuckBunny_25fps,BigBuckBunny,ref,4.5\n"
    )


def test_the_vqeghd3_conversion_keeps_source_and_hrc() -> None:
    assert convert("sureal", "VQEGHD3_dataset_raw.csv", VQEGHD3_PY).splitlines()[1:] == [
        "s01,src01_hrc16,vqeghd3_src01,hrc16,1",
        "s02,src01_hrc16,vqeghd3_src01,hrc16,3",
    ]


def test_the_frtv_conversion_drops_missing_ratings_and_rounds_like_g() -> None:
    assert convert("sureal", "vqeg_frtv_p1_625_line_high.csv", FRTV_PY).splitlines()[1:] == [
        "201,src13_hrc01,src13,hrc01,23",
        "503,src13_hrc01,src13,hrc01,-0.8",
    ]


def test_the_agh_conversion_keeps_integer_rater_ids_in_file_order() -> None:
    assert convert("sureal", "quality_variation_2017_agh_tv.csv", AGH_PY).splitlines()[1:] == [
        "103,1400501_scene_000_4000_100,1400501_scene_000,4000_100,2",
        "12073,1400501_scene_000_4000_100,1400501_scene_000,4000_100,1",
        "103,1400501_scene_000_ref,1400501_scene_000,ref,5",
    ]


def test_sureal_files_are_read_as_data_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    attacks = [
        f"x = __import__('pathlib').Path({str(marker)!r}).touch()",
        "x = open('/etc/passwd').read()",
        "x = np.nan",
        "x = [0] * 10**9",
        "def f():\n    pass",
        "x = float('1e308')",
        "x = {**y}",
        "x = undefined_name",
    ]
    for text in attacks:
        with pytest.raises(ConversionError, match="line 1"):
            read_python_assignments(text)
    assert not marker.exists()
    with pytest.raises(ConversionError, match="is not Python"):
        read_python_assignments("dis_videos = [")


def test_the_pwcmp_tmo_conversion_numbers_trials_and_counts_wins() -> None:
    assert convert("pairwise", "pwcmp_tmo_video.csv", TMO_CSV) == (
        "trial,rater,group,stimulus_a,stimulus_b,winner,loser\n"
        "1,M01,window,tmo_camera,ferwerda96,tmo_camera,ferwerda96\n"
        "2,M01,exhibition,ronan12,irawan05,irawan05,ronan12\n"
        "3,M02,window,tmo_camera,ferwerda96,tmo_camera,ferwerda96\n"
    )
    assert convert("pairwise", "pwcmp_tmo_video__counts.csv", TMO_CSV) == (
        "group,winner,loser,count\nexhibition,irawan05,ronan12,1\nwindow,tmo_camera,ferwerda96,2\n"
    )


def test_the_lightfield_conversion_keeps_the_files_trial_numbers() -> None:
    assert convert("pairwise", "pwcmp_lightfield_quality.csv", LIGHTFIELD_CSV).splitlines()[1:] == [
        "1,obs_14,Car,DQ_1,DQ_4,DQ_1,DQ_4",
        "3,obs_14,Car,NN_7,DQ_7,DQ_7,NN_7",
    ]
    with pytest.raises(ConversionError, match=r"lacks columns scene, .*, selected"):
        convert("pairwise", "pwcmp_lightfield_quality.csv", "trial,observer\n1,a\n")


def test_the_lukas_conversion_makes_one_trial_per_preference_winner_first() -> None:
    assert convert("pairwise", "sureal_lukas_sharpening.csv", LUKAS_PY).splitlines()[1:] == [
        "1,r02,Caps,Caps1,Caps2,Caps1,Caps2",  # r01 = Bouse, r02 = David R. (sorted names)
        "2,r01,Caps,Caps1,Caps2,Caps1,Caps2",
        "3,r01,Caps,Caps1,Caps2,Caps1,Caps2",
        "4,r02,Caps,Caps2,Caps1,Caps2,Caps1",
    ]
    assert convert("pairwise", "sureal_lukas_sharpening__counts.csv", LUKAS_PY).splitlines() == [
        "group,winner,loser,count",
        "Caps,Caps1,Caps2,3",
        "Caps,Caps2,Caps1,1",
    ]


def test_the_hific_conversion_pseudonymises_raters_in_sorted_order_with_crlf() -> None:
    assert convert("pairwise", "hific_userstudy.csv", HIFIC_JSON) == (
        "rater,record,image,crop_x,crop_y,crop_w,crop_h,greater,lesser,random_choice\r\n"
        "r01,-M8I0WXnhJVljvNyFy2z,a.png,1,2,768,768,bpg_med_3_v2,ours_gan_med,1\r\n"
        "r02,-M8I0QbHJFRYSy3U-xPR,25bf4453f783b8649e24ecc4c8cf124c.png,377,184,768,768,"
        "ours_gan_med,ours_lpips_low,0\r\n"
    )
    with pytest.raises(ConversionError, match="not JSON"):
        convert("pairwise", "hific_userstudy.csv", "{")


def test_the_aic3_files_come_out_of_the_zip_and_the_scale_keeps_two_sources() -> None:
    member = "JPEG_AI_SDR_subjective_data/JPEG_AIC_SDR_PTC_JPEG_AI_user_data_2025.02.28_v1.csv"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, "worker,age\r\n1,18-25\r\n")
    name = "JPEG_AIC_SDR_PTC_JPEG_AI_user_data_2025.02.28_v1.csv"
    assert convert("aic3", name, buffer.getvalue()) == "worker,age\r\n1,18-25\r\n"  # unchanged
    with pytest.raises(ConversionError, match=r"cannot read .*BTC"):
        convert("aic3", name.replace("PTC", "BTC"), buffer.getvalue())
    scale = "img_num,codec,distortion\r\n2,1,0.12\r\n3,1,0.2\r\n6,4,1.5\r\n"
    assert convert("aic3", "published_jnd_sources_2_6.csv", scale) == (
        "img_num,codec,distortion\n2,1,0.12\n6,4,1.5\n"
    )


def test_a_malformed_source_is_a_conversion_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "study.py").write_text("ref_videos = [{'content_id': 0}]\ndis_videos = []\n")
    source = Source("http://127.0.0.1:9/study.py", "resource/dataset/study.py", None)
    converter = datasets.sureal_converter(datasets.named_by_file)
    demo = Dataset("demo", "", "", (DataFile("ratings.csv", "0" * 64, source, converter),))
    with pytest.raises(ConversionError, match=r"ratings.csv: its source study.py \(copied from"):
        fetch_dataset("demo", root=tmp_path / "root", source_dir=tmp_path, catalogue={"demo": demo})
    assert leftovers(tmp_path / "root") == []


def test_the_bdrate_file_gets_lf_line_ends() -> None:
    text = "method,elo\r\njpegli-q55-yuv444,1616.2178\r\n"
    assert (
        convert("bdrate", "mucped23_elo.csv", text) == "method,elo\njpegli-q55-yuv444,1616.2178\n"
    )


# -- fetching, against a local server ---------------------------------------------------------


@dataclass
class Server:
    url: str
    folder: Path
    requests: list[str]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A plain HTTP server on 127.0.0.1 serving ``folder``, in a thread."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", folder, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


PHOTO = bytes(range(256)) * 8


def made_up(
    url: str, *, fetchable: bool = True, photo_sha: str | None = None
) -> dict[str, Dataset]:
    """A catalogue of one dataset ``demo``: a file copied as it is, and a trials/counts pair
    converted from one pwcmp source (read once)."""
    tmo = Source(f"{url}/examples/ex3_tmo_cmp_data.csv", "examples/ex3_tmo_cmp_data.csv", None)
    reader = datasets.pwcmp_tmo_trials
    trials = datasets.trials_csv(reader(TMO_CSV.encode()))
    counts = datasets.counts_csv(reader(TMO_CSV.encode()))
    files = (
        DataFile(
            "photos/photo.bin",
            photo_sha or sha(PHOTO),
            Source(f"{url}/photo.bin", "photo.bin", sha(PHOTO)),
        ),
        DataFile("tmo.csv", sha(trials), tmo, datasets.as_trials(reader)),
        DataFile("tmo__counts.csv", sha(counts), tmo, datasets.as_counts(reader)),
    )
    unavailable = "" if fetchable else "The owners hand it out through a form at example.org."
    demo = Dataset("demo", "a made-up dataset", "tests", files, fetchable, unavailable)
    return {"demo": demo}


def serve_sources(server: Server) -> None:
    (server.folder / "photo.bin").write_bytes(PHOTO)
    (server.folder / "examples").mkdir()
    (server.folder / "examples/ex3_tmo_cmp_data.csv").write_text(TMO_CSV)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_it_downloads_converts_and_verifies_each_file(server: Server, tmp_path: Path) -> None:
    serve_sources(server)
    catalogue = made_up(server.url)
    fetched = fetch_dataset("demo", root=tmp_path / "root", catalogue=catalogue)
    folder = tmp_path / "root/demo"
    assert (folder / "photos/photo.bin").read_bytes() == PHOTO
    assert (folder / "tmo.csv").read_text().startswith("trial,rater,group,")
    assert sorted(server.requests) == ["/examples/ex3_tmo_cmp_data.csv", "/photo.bin"]  # once each
    assert fetched.describe() == f"demo: 3 files in {folder} (3 downloaded)"
    again = fetch_dataset("demo", root=tmp_path / "root", catalogue=catalogue)
    assert again.describe() == f"demo: 3 files in {folder} (3 already present)"
    assert len(server.requests) == 2


def test_a_download_with_other_bytes_is_refused_and_leaves_nothing(
    server: Server, tmp_path: Path
) -> None:
    serve_sources(server)
    catalogue = made_up(server.url, photo_sha="0" * 64)
    with pytest.raises(HashMismatch) as caught:
        fetch_dataset("demo", root=tmp_path / "root", catalogue=catalogue)
    message = str(caught.value)
    assert message.startswith(f"photos/photo.bin (downloaded from {server.url}/photo.bin)")
    assert f"has SHA-256 {sha(PHOTO)}, expected {'0' * 64}; nothing was kept" in message
    assert leftovers(tmp_path / "root") == []  # no file, no temporary file


def test_a_source_with_other_bytes_is_refused_before_conversion(
    server: Server, tmp_path: Path
) -> None:
    serve_sources(server)
    (server.folder / "photo.bin").write_bytes(b"tampered")
    with pytest.raises(
        HashMismatch,
        match=r"source photo.bin \(downloaded from http://127\.0\.0\.1:\d+/photo\.bin\) has",
    ):
        fetch_dataset("demo", root=tmp_path / "root", catalogue=made_up(server.url))
    assert leftovers(tmp_path / "root") == []


def test_an_http_error_is_a_clear_unreachable(server: Server, tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match=r"could not download .*/photo\.bin: HTTP 404"):
        fetch_dataset("demo", root=tmp_path / "root", catalogue=made_up(server.url))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_dataset_path_fetches_on_first_use_into_the_cache(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_sources(server)
    monkeypatch.delenv("PERCEPTLAB_DATASETS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "SHARED_DATASETS", tmp_path / "no-shared")
    path = dataset_path("demo", "tmo.csv", catalogue=made_up(server.url))
    assert path == tmp_path / "cache/perceptlab/datasets/demo/tmo.csv"
    assert path.is_file() and (path.parent / "photos/photo.bin").is_file()  # the whole dataset


def test_an_offline_machine_gets_the_file_the_folder_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERCEPTLAB_DATASETS", str(tmp_path / "data"))
    catalogue = made_up(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(DatasetUnavailable) as caught:
        dataset_dir("demo", catalogue=catalogue, timeout=5)
    message = str(caught.value)
    assert message.startswith(f"demo/photos/photo.bin is missing from {tmp_path / 'data/demo'}")
    assert "(the datasets folder: PERCEPTLAB_DATASETS)" in message
    assert "could not download http://127.0.0.1:" in message
    assert "`python manage.py fetch_dataset demo`" in message and "--from DIR" in message
    assert leftovers(tmp_path / "data") == []
    with pytest.raises(DatasetUnavailable, match="could not download"):  # not tried again
        dataset_path("demo", "tmo.csv", catalogue=catalogue, timeout=5)


def test_an_unfetchable_dataset_says_why_and_how_to_point_at_a_folder(tmp_path: Path) -> None:
    catalogue = made_up("http://127.0.0.1:9", fetchable=False)
    with pytest.raises(DatasetUnavailable) as caught:
        dataset_path("demo", "tmo.csv", root=tmp_path, catalogue=catalogue)
    message = str(caught.value)
    assert "through a form at example.org" in message
    assert f"`python manage.py fetch_dataset demo --to {tmp_path} --from DIR`" in message
    assert "or set PERCEPTLAB_DATASETS to a folder that holds demo/" in message
    with pytest.raises(NotFetchable, match="cannot be downloaded: The owners hand it out"):
        fetch_dataset("demo", root=tmp_path, catalogue=catalogue)


# -- manage.py fetch_dataset ------------------------------------------------------------------


def command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("fetch_dataset", *args, stdout=out, stderr=err)
    except CommandError as error:
        raise CommandError(f"{error}\nstdout: {out.getvalue()}\nstderr: {err.getvalue()}") from None
    return out.getvalue(), err.getvalue()


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A folder with the upstream sources as a user would copy them (one under its upstream
    path, one by its bare name)."""
    folder = tmp_path / "sources"
    (folder / "examples").mkdir(parents=True)
    (folder / "examples/ex3_tmo_cmp_data.csv").write_text(TMO_CSV)
    (folder / "photo.bin").write_bytes(PHOTO)
    return folder


def test_from_dir_converts_offline_and_check_reports_each_file(
    sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "CATALOGUE", made_up(f"http://127.0.0.1:{closed_port()}"))
    root = tmp_path / "root"
    out, _ = command("demo", "--from", str(sources), "--to", str(root))
    assert out == f"demo: 3 files in {root / 'demo'} (3 copied)\n"
    out, _ = command("--all", "--check", "--to", str(root))
    assert out.splitlines() == [
        f"datasets folder: {root}",
        "demo: ok       photos/photo.bin",
        "demo: ok       tmo.csv",
        "demo: ok       tmo__counts.csv",
    ]
    command("demo", "--from", str(root), "--to", str(tmp_path / "copy"))  # ready files copy too
    assert [c.state for c in check_dataset("demo", root=tmp_path / "copy")] == [State.OK] * 3

    (root / "demo/tmo.csv").write_text("changed")
    (root / "demo/tmo__counts.csv").unlink()
    with pytest.raises(CommandError, match=r"2 file\(s\) missing or mismatched") as caught:
        command("demo", "--check", "--to", str(root))
    assert f"demo: mismatch tmo.csv (has SHA-256 {sha(b'changed')}, expected" in str(caught.value)
    assert "demo: missing  tmo__counts.csv" in str(caught.value)
    with pytest.raises(
        CommandError, match=re.escape(f"tmo.csv (copied from {root}/demo/tmo.csv) has SHA")
    ):
        command("demo", "--from", str(root), "--to", str(tmp_path / "bad"))
    assert leftovers(tmp_path / "bad") == ["photo.bin"]  # the verified file before it stays
    out, _ = command("demo", "--from", str(sources), "--to", str(root))  # repaired
    assert out == f"demo: 3 files in {root / 'demo'} (1 already present, 2 copied)\n"


def test_the_command_fails_cleanly_without_a_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "CATALOGUE", made_up(f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(CommandError, match=r"1 of 1 dataset\(s\) not fetched: demo") as caught:
        command("demo", "--to", str(tmp_path / "root"))
    assert "stderr: demo: could not download http://127.0.0.1:" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_the_command_prints_an_unfetchable_datasets_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "CATALOGUE", made_up("http://127.0.0.1:9", fetchable=False))
    with pytest.raises(CommandError) as caught:
        command("demo", "--to", str(tmp_path / "root"))
    assert "through a form at example.org" in str(caught.value)
    assert "fetch_dataset demo --from DIR" in str(caught.value)


def test_the_command_names_the_datasets_when_none_or_a_wrong_one_is_given() -> None:
    with pytest.raises(CommandError, match=r"name one or more datasets, or pass --all; .*kodak"):
        command()
    with pytest.raises(
        CommandError, match=r"unknown dataset\(s\) kodac; datasets: kodak, sureal, "
    ):
        command("kodac")
