"""The prepared reads' faster converters give exactly what Django's converters give."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.db.models import JSONField

from perceptlab.lib.prepared import columns, fast_converter
from perceptlab.studies.models import Judgment, Trial

DATETIMES = [
    None,
    "2026-12-03 14:18:29",
    "2026-12-03 14:18:29.123456",
    "2026-12-03T14:18:29.5",
    "2026-12-03 14:18:29+01:00",
    "2026-12-03 14:18:29.000001-05:30",
    "2026-12-03",  # a date alone: fromisoformat reads midnight, as parse_datetime does
    "2026-12-03 14:18",
    datetime.datetime(2026, 12, 3, 14, 18, 29),
    datetime.datetime(2026, 12, 3, 14, 18, 29, tzinfo=datetime.UTC),
]
JSONS: list[Any] = [None, "[]", "{}", '["too_fast"]', '{"dpr": 1.5, "w": 1920}', "3", '"a"', "null"]
JSONS += ["not json", 3, 2.5, [1], {"a": 1}]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime.datetime):
        return (
            isinstance(b, datetime.datetime)
            and a == b
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset()
        )
    return type(a) is type(b) and a == b


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's datetime text")
def test_sqlite_datetimes_convert_as_djangos_converter() -> None:
    field = Trial._meta.get_field("assigned")
    column = field.get_col("t")
    (django_convert,) = connection.ops.get_db_converters(column)
    fast = fast_converter(django_convert, field, connection)
    assert fast is not django_convert  # swapped
    for value in DATETIMES:
        assert _same(fast(value, column, connection), django_convert(value, column, connection)), (
            value
        )
    for bad in ("2026-13-45 99:99", "yesterday"):
        with pytest.raises(Exception) as expected:
            django_convert(bad, column, connection)
        with pytest.raises(expected.type):
            fast(bad, column, connection)


def test_json_converts_as_djangos_converter() -> None:
    field = Judgment._meta.get_field("flags")
    assert isinstance(field, JSONField)
    column = field.get_col("j")
    django_convert = field.from_db_value
    fast = fast_converter(django_convert, field, connection)
    assert fast is not django_convert
    for value in JSONS:
        try:
            expected = django_convert(value, column, connection)
        except TypeError as exc:  # Django's from_db_value on a non-string
            with pytest.raises(type(exc)):
                fast(value, column, connection)
            continue
        assert _same(fast(value, column, connection), expected), value
    first, second = fast("[]", column, connection), fast("[]", column, connection)
    assert first == [] and first is not second  # a fresh list each time (callers append)


def test_other_converters_are_djangos_own() -> None:
    """Only the two swapped converters differ from the ORM's (a UUID, a boolean, a date
    go through Django's)."""
    judgment = columns(Judgment, "j")
    swapped_types = {"JSONField"} | ({"DateTimeField"} if connection.vendor == "sqlite" else set())
    for index, converters, column in judgment._converters_for(connection):
        field = judgment.fields[index]
        originals = [
            *connection.ops.get_db_converters(column),
            *column.get_db_converters(connection),
        ]
        assert len(converters) == len(originals), field.name
        for convert, original in zip(converters, originals, strict=True):
            # the same function (bound, perhaps, to another thread's connection's ops)
            same = getattr(convert, "__func__", convert) is getattr(original, "__func__", original)
            assert same is (field.get_internal_type() not in swapped_types), field.name


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's placeholder rewrite")
def test_the_sqlite_cursor_rewrites_placeholders_as_djangos() -> None:
    """The hot statements' cursor gives SQLite the text Django's would, logged and counted
    as Django's queries are, and runs it."""
    from django.db.backends.sqlite3.base import SQLiteCursorWrapper
    from django.test.utils import CaptureQueriesContext

    from perceptlab.lib import prepared

    texts = ["SELECT %s, '%%s', 100 %% 7", "SELECT %s || '%%'", "SELECT 1"]
    plain = connection.connection.cursor(factory=SQLiteCursorWrapper)
    with CaptureQueriesContext(connection) as seen:
        for text in texts:
            params = [5] if "%s," in text or "||" in text else []
            with prepared.cursor(connection) as cursor:
                cursor.execute(text, params)
                ours = cursor.fetchone()
            assert ours == tuple(plain.execute(text, params).fetchone()), text
            assert prepared._qmark(text) == plain.convert_query(text)
    assert seen.captured_queries[0]["sql"].startswith("SELECT 5")
    assert len(seen.captured_queries) == len(texts)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's timestamptz loader")
def test_postgresql_timestamps_read_as_djangos_loader_reads_them() -> None:
    """The hot statements' cursor reads timestamptz with psycopg's C loader; every value,
    and its tzinfo object, equals what Django's own loader gives."""
    from psycopg import pq

    from perceptlab.lib import prepared

    texts = [
        "2026-12-03 14:18:29.123456+00",
        "2026-03-29 01:30:00+02",
        "1999-12-31 23:59:59.999999-05:30",
        "2000-02-29 00:00:00+14",
        "1970-01-01 00:00:00+00",
        "0001-01-01 00:00:00+00",
    ]
    sql = "SELECT " + ", ".join(["%s::timestamptz"] * len(texts)) + ", NULL::timestamptz"
    with connection.cursor() as django_cursor:
        django_cursor.execute(sql, texts)
        theirs = django_cursor.fetchone()
    with prepared.cursor(connection) as ours_cursor:
        ours_cursor.execute(sql, texts)
        ours = ours_cursor.fetchone()
        loader = ours_cursor.cursor.adapters.get_loader(prepared.TIMESTAMPTZ_OID, pq.Format.TEXT)
    assert loader.__module__.startswith("psycopg_binary") or loader.__module__.startswith(
        "psycopg_c"
    )
    assert ours == theirs and ours[-1] is None
    assert all(
        a.tzinfo is b.tzinfo is datetime.UTC for a, b in zip(ours[:-1], theirs[:-1], strict=True)
    )
