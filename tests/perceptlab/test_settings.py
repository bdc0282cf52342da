from __future__ import annotations

from pathlib import Path

import pytest
from django.core.checks import Error, Info
from django.core.exceptions import ImproperlyConfigured

from perceptlab.codecs.checks import check_codec_binaries, check_media_root, check_task_backend
from perceptlab.lib.env import database_from_url, envbool, envint, envlist, envpath


def test_env_helpers_return_defaults_for_unset_or_empty_values() -> None:
    assert envbool("X", True, env={}) is True
    assert envint("X", 3, env={"X": " "}) == 3
    assert envlist("X", ["a"], env={}) == ["a"]
    assert envpath("X", Path("/d"), env={}) == Path("/d")


def test_env_helpers_parse_and_reject_bad_values_naming_the_variable() -> None:
    assert envbool("DEBUG", False, env={"DEBUG": "yes"}) is True
    assert envint("N", 0, env={"N": "12"}) == 12
    assert envlist("H", [], env={"H": "a, b,,c"}) == ["a", "b", "c"]
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        envbool("DEBUG", False, env={"DEBUG": "maybe"})
    with pytest.raises(ImproperlyConfigured, match=r"N='1\.5' is not an integer"):
        envint("N", 0, env={"N": "1.5"})
    with pytest.raises(ImproperlyConfigured, match="N=0 is below the minimum 1"):
        envint("N", 5, min_value=1, env={"N": "0"})


def test_database_url_gives_sqlite_in_wal_mode_by_default(tmp_path: Path) -> None:
    db = database_from_url("sqlite:///var/x.sqlite3", base_dir=tmp_path)
    assert db["NAME"] == str(tmp_path / "var/x.sqlite3")
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert database_from_url("sqlite:////abs/x.db", base_dir=tmp_path)["NAME"] == "/abs/x.db"


def test_database_url_understands_postgres() -> None:
    db = database_from_url(
        "postgres://u:p%40ss@db.example:5433/perceptlab?sslmode=require", base_dir=Path("/")
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "u",
        "p@ss",
        "db.example",
        "5433",
        "perceptlab",
    )
    # The rater path's statements are prepared at their first run (prepared.cursor).
    assert db["OPTIONS"] == {"sslmode": "require", "prepare_threshold": 1}


def test_preparing_statements_can_be_turned_off_for_old_poolers() -> None:
    off = database_from_url("postgres://u@db/p?prepare_threshold=0", base_dir=Path("/"))
    assert off["OPTIONS"] == {"prepare_threshold": None}
    later = database_from_url("postgres://u@db/p?prepare_threshold=3", base_dir=Path("/"))
    assert later["OPTIONS"] == {"prepare_threshold": 3}
    with pytest.raises(ImproperlyConfigured, match="prepare_threshold must be a whole number"):
        database_from_url("postgres://u@db/p?prepare_threshold=yes", base_dir=Path("/"))


def test_database_url_rejects_unknown_schemes() -> None:
    with pytest.raises(ImproperlyConfigured, match="scheme 'mysql' is not supported"):
        database_from_url("mysql://x/y", base_dir=Path("/"))


def test_a_missing_explicit_binary_is_an_error_with_a_stable_id(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.CODEC_BINARIES = {"bpgenc": str(tmp_path / "bpgenc"), "vvencapp": "no-vvencapp"}
    messages = check_codec_binaries()
    [error] = [m for m in messages if isinstance(m, Error)]
    assert error.id == "codecs.E001" and "BPGENC" in (error.hint or "")
    [info] = [m for m in messages if isinstance(m, Info)]
    assert info.id == "codecs.I001" and "VVENCAPP" in (info.hint or "")


def test_an_unknown_task_backend_is_an_error(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TASKS_BACKEND_NAME = "celery"
    [error] = check_task_backend()
    assert error.id == "codecs.E010"


def test_an_unwritable_media_root_is_an_error(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings.MEDIA_ROOT = str(blocker / "media")
    [error] = check_media_root()
    assert error.id == "codecs.E020"
