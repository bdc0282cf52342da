"""Strict readers for settings that come from the environment.

Each helper returns the default when the variable is unset or empty and raises
``ImproperlyConfigured`` naming the variable and the bad value otherwise, so a typo
never turns silently into a default.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def envstr(name: str, default: str, *, env: Mapping[str, str] | None = None) -> str:
    value = _raw(name, env)
    return default if value is None else value


def envbool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, env)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {sorted(_TRUE | _FALSE)}"
    )


def envint(
    name: str,
    default: int,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, env)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if min_value is not None and number < min_value:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {min_value}")
    if max_value is not None and number > max_value:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {max_value}")
    return number


def envpath(name: str, default: Path, *, env: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, env)
    return default if value is None else Path(value).expanduser().resolve()


def envlist(name: str, default: list[str], *, env: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, env)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str, *, base_dir: Path) -> dict[str, Any]:
    """Translate a DATABASE_URL into a Django ``DATABASES['default']`` entry.

    Supported: ``sqlite:///relative/or/absolute.sqlite3`` (``sqlite:////abs/path``) and
    ``postgres://user:password@host:port/name?option=value`` (``postgresql://`` too).
    SQLite runs in WAL mode with a busy timeout so the web process and one worker can
    write at the same time.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        raw_path = unquote(parts.path)
        if raw_path in ("", "/"):
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file")
        # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path"
        path = Path(raw_path[1:])
        if not path.is_absolute():
            path = base_dir / path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            # Tests get a file too (not Django's shared in-memory default), so threads
            # in tests lock the way the web process and worker do; one per test run.
            "TEST": {
                "NAME": str(Path(tempfile.gettempdir()) / f"perceptlab-test-{os.getpid()}.db")
            },
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"
                ),
            },
        }
    if scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database")
        options: dict[str, Any] = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        options["prepare_threshold"] = _prepare_threshold(url, options)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {scheme!r} is not supported; use sqlite:/// or postgres://"
    )


def _prepare_threshold(url: str, options: dict[str, Any]) -> int | None:
    """The rater path's hot statements are prepared on the server at their first run
    (``perceptlab.lib.prepared.cursor``); ``?prepare_threshold=0`` in the URL turns that
    off, for a transaction-pooling PgBouncer older than 1.21. Django's own queries are
    never prepared (they bind on the client)."""
    raw = options.get("prepare_threshold", "1")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r}: prepare_threshold must be a whole number, not {raw!r}"
        ) from None
    return value if value > 0 else None


def envchoice(
    name: str, default: str, choices: Iterable[str], *, env: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, env)
    if value is None:
        return default
    valid = sorted(choices)
    if value not in valid:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {valid}")
    return value


_META_HEADER = re.compile(r"HTTP_[A-Z0-9_]+")


def envheader(name: str, *, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """``HTTP_X_FORWARDED_PROTO=https`` → ``("HTTP_X_FORWARDED_PROTO", "https")``: a request
    header as ``request.META`` names it and the value that means HTTPS (Django's
    ``SECURE_PROXY_SSL_HEADER``); None when unset."""
    value = _raw(name, env)
    if value is None:
        return None
    header, sep, expected = (part.strip() for part in value.partition("="))
    if not sep or not expected or not _META_HEADER.fullmatch(header):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not HEADER=value with the header as request.META names it, "
            "e.g. HTTP_X_FORWARDED_PROTO=https"
        )
    return header, expected


def database_connections(
    database: dict[str, Any], *, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Connection reuse for a ``database`` entry, from the environment.

    Either persistent connections — each web thread keeps its own for
    ``PERCEPTLAB_DB_CONN_MAX_AGE`` seconds (default 60; 0 closes it after every request),
    health-checked before reuse on PostgreSQL — or, with ``PERCEPTLAB_DB_POOL_SIZE`` > 0,
    psycopg 3's pool: each process holds at most that many connections, shared by its
    threads, and a request waits up to ``PERCEPTLAB_DB_POOL_TIMEOUT`` seconds for one.
    Django refuses both at once, so asking for both is an error.

    SQLite keeps persistent connections too: opening one (the file, the WAL pragmas,
    Django's SQL functions) costs about 1 ms of CPU, more than a judgment's queries. A
    pool is refused for SQLite.
    """
    pool_size = envint("PERCEPTLAB_DB_POOL_SIZE", 0, min_value=0, max_value=1000, env=env)
    max_age = envint("PERCEPTLAB_DB_CONN_MAX_AGE", 60, min_value=0, env=env)
    if database["ENGINE"] != "django.db.backends.postgresql":
        if pool_size:
            raise ImproperlyConfigured("PERCEPTLAB_DB_POOL_SIZE needs PostgreSQL (DATABASE_URL)")
        return {**database, "CONN_MAX_AGE": max_age}
    if pool_size and _raw("PERCEPTLAB_DB_CONN_MAX_AGE", env) is not None and max_age:
        raise ImproperlyConfigured(
            f"PERCEPTLAB_DB_CONN_MAX_AGE={max_age} and PERCEPTLAB_DB_POOL_SIZE={pool_size}: "
            "persistent connections and the pool exclude each other; set one of them"
        )
    if not pool_size:
        return {**database, "CONN_MAX_AGE": max_age, "CONN_HEALTH_CHECKS": True}
    timeout = envint("PERCEPTLAB_DB_POOL_TIMEOUT", 10, min_value=1, env=env)
    pool = {"min_size": min(2, pool_size), "max_size": pool_size, "timeout": timeout}
    options = {**database.get("OPTIONS", {}), "pool": pool}
    return {**database, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "OPTIONS": options}
