"""Production serving: settings from the environment, gunicorn's configuration, the
deployment checks (README "Production")."""

from __future__ import annotations

import importlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from perceptlab.checks import check_secret_key, check_static_manifest
from perceptlab.lib.env import database_connections, database_from_url, envchoice, envheader

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = database_from_url("postgres://u@db/perceptlab", base_dir=ROOT)
SQLITE = database_from_url("sqlite:///x.sqlite3", base_dir=ROOT)


def production_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """README "Production"'s environment (a fresh secret key), files under ``var_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PERCEPTLAB_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="perceptlab.example.org",
        DJANGO_SECURE="1",
        DJANGO_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO=https",
        DJANGO_HSTS_PRELOAD="1",
        PERCEPTLAB_STATIC_MANIFEST="1",
        PERCEPTLAB_VAR_DIR=str(var_dir),
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def settings_under(env: dict[str, str], *names: str) -> Any:
    """The values of settings ``names`` that perceptlab/settings.py computes under ``env``."""
    code = (
        "import json, perceptlab.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}, default=str))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        return done.stderr.strip().splitlines()[-1]
    return json.loads(done.stdout)


# -- settings helpers ---------------------------------------------------------------------------


def test_envchoice_and_envheader_read_and_reject_naming_the_variable() -> None:
    assert envchoice("M", "", ["", "a"], env={}) == ""
    assert envchoice("M", "", ["", "a"], env={"M": "a"}) == "a"
    with pytest.raises(ImproperlyConfigured, match=r"M='b' is not one of \['', 'a'\]"):
        envchoice("M", "", ["", "a"], env={"M": "b"})
    assert envheader("H", env={}) is None
    assert envheader("H", env={"H": "HTTP_X_FORWARDED_PROTO=https"}) == (
        "HTTP_X_FORWARDED_PROTO",
        "https",
    )
    for bad in ("X-Forwarded-Proto=https", "HTTP_X_FORWARDED_PROTO", "HTTP_X=", "=https"):
        with pytest.raises(ImproperlyConfigured, match=r"H=.* is not HEADER=value"):
            envheader("H", env={"H": bad})


def test_postgres_keeps_health_checked_persistent_connections_by_default() -> None:
    db = database_connections(POSTGRES, env={})
    assert (db["CONN_MAX_AGE"], db["CONN_HEALTH_CHECKS"]) == (60, True)
    assert "pool" not in db["OPTIONS"]
    assert (
        database_connections(POSTGRES, env={"PERCEPTLAB_DB_CONN_MAX_AGE": "0"})["CONN_MAX_AGE"] == 0
    )


def test_sqlite_keeps_persistent_connections_too() -> None:
    assert database_connections(SQLITE, env={}) == {**SQLITE, "CONN_MAX_AGE": 60}
    no_reuse = {"PERCEPTLAB_DB_CONN_MAX_AGE": "0"}
    assert database_connections(SQLITE, env=no_reuse)["CONN_MAX_AGE"] == 0


def test_the_pool_replaces_persistent_connections() -> None:
    db = database_connections(POSTGRES, env={"PERCEPTLAB_DB_POOL_SIZE": "4"})
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 4, "timeout": 10}
    both = {"PERCEPTLAB_DB_POOL_SIZE": "4", "PERCEPTLAB_DB_CONN_MAX_AGE": "60"}
    with pytest.raises(ImproperlyConfigured, match="exclude each other"):
        database_connections(POSTGRES, env=both)
    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL"):
        database_connections(SQLITE, env={"PERCEPTLAB_DB_POOL_SIZE": "4"})
    with pytest.raises(
        ImproperlyConfigured, match="PERCEPTLAB_DB_POOL_SIZE=-1 is below the minimum 0"
    ):
        database_connections(POSTGRES, env={"PERCEPTLAB_DB_POOL_SIZE": "-1"})


def test_django_secure_turns_on_https_and_secure_cookies(tmp_path: Path) -> None:
    names = (
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert settings_under(production_env(tmp_path), *names) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }
    development = production_env(tmp_path, DJANGO_SECURE="", DJANGO_PROXY_SSL_HEADER="")
    assert settings_under(development, *names[:1], *names[4:]) == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    mturk = production_env(tmp_path, DJANGO_SECURE="", PERCEPTLAB_MTURK_FRAMES="1")
    assert settings_under(mturk, "CSRF_COOKIE_SAMESITE", "CSRF_COOKIE_SECURE") == {
        "CSRF_COOKIE_SAMESITE": "None",
        "CSRF_COOKIE_SECURE": True,
    }


def test_bad_production_values_stop_the_settings_naming_the_variable(tmp_path: Path) -> None:
    for name, value in (
        ("DJANGO_SECURE", "sure"),
        ("DJANGO_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
        ("DJANGO_HSTS_SECONDS", "-1"),
        ("PERCEPTLAB_SENDFILE", "nginx"),
        ("PERCEPTLAB_DB_POOL_SIZE", "many"),
    ):
        error = settings_under(production_env(tmp_path, **{name: value}), "SECURE")
        assert isinstance(error, str) and error.startswith("django.core.exceptions.Improperly")
        assert name in error


def test_uploads_are_bounded_and_large_files_go_to_disk(settings: Any) -> None:
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE < settings.IMAGE_MAX_BYTES
    assert "django.core.files.uploadhandler.TemporaryFileUploadHandler" in (
        settings.FILE_UPLOAD_HANDLERS
    )


# -- system checks ------------------------------------------------------------------------------


def test_the_development_secret_key_is_an_error_with_a_stable_id(settings: Any) -> None:
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    [error] = check_secret_key()
    assert error.id == "perceptlab.E001" and "DJANGO_SECRET_KEY" in error.msg
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    assert check_secret_key() == []


def test_hashed_static_files_need_collectstatic(settings: Any, tmp_path: Path) -> None:
    settings.STATIC_MANIFEST, settings.STATIC_ROOT = True, str(tmp_path)
    [error] = check_static_manifest()
    assert error.id == "perceptlab.E002"
    (tmp_path / "staticfiles.json").write_text("{}")
    assert check_static_manifest() == []


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_documented_environment(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    collected = manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    done = manage("check", "--deploy", env=env)
    assert done.returncode == 0, done.stderr
    # Only notes about optional codec binaries this machine may lack (codecs.I001).
    issues = [line for line in done.stdout.splitlines() if line.startswith("?:")]
    assert all("(codecs.I001)" in line for line in issues), done.stdout
    assert "WARNINGS" not in done.stdout and "ERRORS" not in done.stdout


@pytest.mark.slow
def test_check_deploy_refuses_the_development_key(tmp_path: Path) -> None:
    env = production_env(tmp_path, DJANGO_SECRET_KEY="", PERCEPTLAB_STATIC_MANIFEST="")
    done = manage("check", "--deploy", "--tag", "production", env=env)
    assert done.returncode == 1
    assert "perceptlab.E001" in done.stderr


# -- gunicorn -----------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_conf(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``load(**env)``: perceptlab/gunicorn_conf.py as gunicorn reads it under ``env``."""

    def load(**env: str) -> ModuleType:
        for name in (
            "PERCEPTLAB_WEB_WORKERS",
            "PERCEPTLAB_WEB_THREADS",
            "PERCEPTLAB_BIND",
            "PERCEPTLAB_HTTP_PARSER",
        ):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(importlib.import_module("perceptlab.gunicorn_conf"))

    yield load


def test_gunicorn_runs_cores_plus_one_threaded_workers_by_default(gunicorn_conf: Any) -> None:
    conf = gunicorn_conf()
    assert conf.worker_class == "gthread"
    assert conf.workers == conf.cores() + 1 and conf.threads == 4
    assert conf.bind == ["127.0.0.1:8000"]
    assert conf.preload_app and conf.max_requests and conf.max_requests_jitter
    assert conf.graceful_timeout < conf.timeout
    assert (conf.limit_request_line, conf.limit_request_fields) == (4094, 100)
    assert conf.http_parser == "auto"  # gunicorn's C parser where gunicorn_h1c is installed


def test_gunicorn_reads_its_numbers_from_the_environment(gunicorn_conf: Any) -> None:
    conf = gunicorn_conf(
        PERCEPTLAB_WEB_WORKERS="9", PERCEPTLAB_WEB_THREADS="2", PERCEPTLAB_BIND="0.0.0.0:80"
    )
    assert (conf.workers, conf.threads, conf.bind) == (9, 2, ["0.0.0.0:80"])
    with pytest.raises(ImproperlyConfigured, match="PERCEPTLAB_WEB_WORKERS='two'"):
        gunicorn_conf(PERCEPTLAB_WEB_WORKERS="two")
    assert gunicorn_conf(PERCEPTLAB_HTTP_PARSER="python").http_parser == "python"
    with pytest.raises(ImproperlyConfigured, match="PERCEPTLAB_HTTP_PARSER='c'"):
        gunicorn_conf(PERCEPTLAB_HTTP_PARSER="c")


def test_gunicorn_freezes_what_the_master_holds_before_each_fork(gunicorn_conf: Any) -> None:
    """The workers' garbage collections leave the preloaded application alone: everything
    the collector tracks when the master forks is frozen."""
    import gc

    tracked = len(gc.get_objects())
    try:
        gunicorn_conf().pre_fork(server=None, worker=None)
        assert gc.get_freeze_count() >= 0.9 * tracked > 10_000
        assert gc.collect(2) >= 0  # still collects what is made after the fork
    finally:
        gc.unfreeze()


def test_gunicorn_workers_hand_the_gil_over_every_millisecond(gunicorn_conf: Any) -> None:
    import sys

    before = sys.getswitchinterval()
    try:
        gunicorn_conf().post_fork(server=None, worker=None)
        assert sys.getswitchinterval() == pytest.approx(0.001)
        gunicorn_conf(PERCEPTLAB_GIL_SWITCH_US="250").post_fork(server=None, worker=None)
        assert sys.getswitchinterval() == pytest.approx(0.00025)
        with pytest.raises(ImproperlyConfigured, match="PERCEPTLAB_GIL_SWITCH_US"):
            gunicorn_conf(PERCEPTLAB_GIL_SWITCH_US="0").post_fork(server=None, worker=None)
    finally:
        sys.setswitchinterval(before)


def test_gunicorn_refuses_to_start_with_the_development_key(
    gunicorn_conf: Any, settings: Any
) -> None:
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    with pytest.raises(SystemExit, match=r"perceptlab\.E001"):
        gunicorn_conf().on_starting(server=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_serves_with_this_configuration_and_stops_gracefully(tmp_path: Path) -> None:
    port = free_port()
    env = production_env(
        tmp_path,
        DJANGO_SECURE="",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        PERCEPTLAB_STATIC_MANIFEST="",
        PERCEPTLAB_BIND=f"127.0.0.1:{port}",
        PERCEPTLAB_WEB_WORKERS="1",
        PERCEPTLAB_WEB_THREADS="2",
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [str(gunicorn), "-c", "python:perceptlab.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/static/studies/rater.css"
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("gunicorn did not answer")
    finally:
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=60)
    assert server.returncode == 0, log
    assert "Using worker: gthread" in log and "Shutting down: Master" in log
