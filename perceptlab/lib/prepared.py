"""Hot reads written as SQL once, read back into model instances.

Building a query through the ORM costs more CPU than running it: on the rater path a
select over four joined models took ~1.5 ms to construct and compile and as long again to
turn its rows into objects, where the database answered in a tenth of that. The few
queries run on every judgment are therefore written once as SQL over :class:`Columns`,
and their rows become ordinary model instances through the fields' own converters (the
ones the ORM applies: dates from SQLite text, JSON, UUIDs), so callers cannot tell them
from instances the ORM loaded.

    trial = columns(Trial, "t")
    sql = f"SELECT {trial.sql} FROM {trial.table} t WHERE t.session_id = %s"
    trials = [trial.build(row, connection=connection) for row in cursor.fetchall()]

On PostgreSQL these statements also go to the server with their parameters apart
(server-side binding) and are prepared there once per connection (:func:`cursor`):
Django's default sends each query with its parameters merged in, which PostgreSQL plans
afresh every time — on the rater path planning took longer than running (0.8 ms against
0.2 ms for an image's access check), and made PostgreSQL's share of a judgment 7 ms.

Writes on that path go the same way: :meth:`Columns.insert` stores a new instance with
one prepared INSERT (the values through the fields' own ``get_db_prep_save``), as
``save(force_insert=True)`` would, without its query construction. No model signals are
sent (the rater path's models have no receivers).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX, SQLiteCursorWrapper
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import JSONField, Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


# Connection OPTIONS key (read by Django's PostgreSQL backend and passed to psycopg): a
# statement run through cursor() is prepared at its first run; 0 prepares nothing.
PREPARE_OPTION = "prepare_threshold"


@contextmanager
def cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor for the hot statements of this module's callers: on PostgreSQL (psycopg 3,
    with ``prepare_threshold`` in the connection's OPTIONS) one that binds parameters on
    the server, so each statement is planned once per connection and then only run; on
    SQLite Django's cursor with each statement's placeholder rewrite done once per text
    (:class:`_QmarkCachedCursor`); elsewhere, or with preparation off (a
    transaction-pooling PgBouncer before 1.21), Django's own cursor. Either way Django
    wraps it: errors become ``django.db`` errors, and tests see (and count) its queries."""
    if connection.vendor == "sqlite":
        connection.validate_thread_sharing()
        connection.ensure_connection()
        with connection.wrap_database_errors:
            raw = connection.connection.cursor(factory=_QmarkCachedCursor)
        logged = connection.queries_logged
        wrapped = connection.make_debug_cursor(raw) if logged else connection.make_cursor(raw)
        with wrapped:
            yield wrapped
        return
    if connection.vendor != "postgresql" or not _prepares(connection):
        with connection.cursor() as plain:
            yield plain
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.validate_thread_sharing()
    connection.ensure_connection()
    binding: Any = ServerBindingCursor  # psycopg's Cursor (the stubs give Django's wrapper)
    with connection.wrap_database_errors:
        raw = binding(connection.connection)
    _c_timestamptz(raw)
    logged = connection.queries_logged
    wrapped = _PreparedDebugCursor(raw, connection) if logged else connection.make_cursor(raw)
    with wrapped:
        yield wrapped


class _PreparedDebugCursor(CursorDebugWrapper):
    """Logs a prepared statement as written (``%s`` and its parameters apart): psycopg
    keeps no merged text of a statement it runs prepared, which the backend's own
    logging reads."""

    @contextmanager
    def debug_sql(
        self,
        sql: str | None = None,
        params: Any = None,
        use_last_executed_query: bool = False,
        many: bool = False,
    ) -> Iterator[None]:
        with super().debug_sql(sql, params, use_last_executed_query=False, many=many):
            yield


class _QmarkCachedCursor(SQLiteCursorWrapper):
    """Django's SQLite cursor with each statement's ``%s`` → ``?`` rewrite done once per
    text; Django's runs a regular expression through a lazy proxy on every execution."""

    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is None:
            return _qmark(query)
        return str(super().convert_query(query, param_names=param_names))


@functools.lru_cache(maxsize=256)
def _qmark(query: str) -> str:
    return str(FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%"))


TIMESTAMPTZ_OID = 1184


def _c_timestamptz(raw: Any) -> None:
    """Give ``raw`` (a psycopg cursor) psycopg's own C loader for ``timestamptz``.

    Django registers a Python loader on each connection (``BaseTzLoader``: psycopg's
    Python parser, then ``replace(tzinfo=…)`` with Django's zone), five times slower per
    value than psycopg's C one (6.1 against 1.1 µs, 2,000 values), and the rater path
    reads ~80 timestamps per judgment. When Django's zone is UTC and so is the session's
    (Django sets it on every connection), the C loader gives the same values with the same
    ``datetime.timezone.utc``; otherwise, or without psycopg's C module, Django's stays.
    ``tests/lib/test_prepared.py`` holds the two to the same datetimes."""
    from psycopg import _cmodule, pq

    c_module = getattr(_cmodule, "_psycopg", None)
    conn = raw.connection
    django_loader = conn.adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
    if (
        c_module is None
        or getattr(django_loader, "timezone", None) is not datetime.UTC
        or conn.pgconn.parameter_status(b"TimeZone") != b"UTC"
    ):
        return
    raw.adapters.register_loader(TIMESTAMPTZ_OID, c_module.TimestamptzLoader)


def _prepares(connection: BaseDatabaseWrapper) -> bool:
    threshold = connection.settings_dict.get("OPTIONS", {}).get(PREPARE_OPTION)
    return threshold is not None and int(threshold) > 0 and _is_psycopg3()


@functools.cache
def _is_psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


@functools.cache
def columns(model: type[M], alias: str) -> Columns[M]:
    """The one :class:`Columns` of ``model`` under ``alias`` (its converters are looked up
    once per process)."""
    return Columns(model, alias)


class Columns(Generic[M]):
    """Every concrete column of ``model`` under the table alias ``alias``, in the order
    ``Model.from_db`` takes them; a row may hold several models' columns side by side
    (``start`` says where this model's begin)."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = tuple(model._meta.concrete_fields)
        self.width = len(self.fields)
        self.attnames = [field.attname for field in self.fields]
        self.pk_index = self.attnames.index(model._meta.pk.attname)
        self._converters: dict[str, list[tuple[int, list[Converter], Any]]] = {}
        # Every column but an auto-incremented key is written on INSERT.
        self._written = tuple(f for f in self.fields if f is not model._meta.auto_field)

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def sql(self) -> str:
        """``alias.column, …`` for a SELECT list (quoted for any backend)."""
        return ", ".join(f'{self.alias}."{field.column}"' for field in self.fields)

    def build(
        self,
        row: Sequence[Any],
        *,
        connection: BaseDatabaseWrapper,
        start: int = 0,
        defer: frozenset[str] = frozenset(),
    ) -> M | None:
        """The instance in ``row[start:start + width]``; None where its primary key is
        NULL (the missing side of a LEFT JOIN). The fields named in ``defer`` (attnames)
        are neither converted nor set: the instance holds them deferred, as after
        ``QuerySet.defer()`` (read from the database if ever asked for)."""
        values = list(row[start : start + self.width])
        if values[self.pk_index] is None:
            return None
        for index, converters, expression in self._converters_for(connection):
            if defer and self.attnames[index] in defer:
                continue
            value = values[index]
            for convert in converters:
                value = convert(value, expression, connection)
            values[index] = value
        return self._instance(values, connection.alias, defer)

    def _instance(self, values: list[Any], alias: str, defer: frozenset[str] = frozenset()) -> M:
        """What ``Model.from_db`` makes of a full row, without ``Model.__init__``: a model
        with ``pre_init``/``post_init`` receivers (an ImageField's dimensions, a generic
        relation) goes through ``from_db`` as it would in the ORM. ``__init__`` spends
        ~10 µs per instance on keyword handling, descriptors and those signals; the rater
        path builds two instances per trial of a session on every request."""
        model = self.model
        fields = dict(zip(self.attnames, values, strict=True))
        for name in defer:
            del fields[name]
        if self._has_init_receivers:
            return model.from_db(alias, list(fields), list(fields.values()))
        obj = model.__new__(model)
        obj.__dict__.update(fields)
        state = ModelState()
        state.adding = False
        state.db = alias
        # What ModelState's descriptor makes at the first related object cached on the
        # instance (every trial of a snapshot gets its session and item cached).
        state.fields_cache = {}
        obj._state = state
        return obj

    def _converters_for(
        self, connection: BaseDatabaseWrapper
    ) -> list[tuple[int, list[Converter], Any]]:
        """The backend's and the field's converters of each column, as the ORM's
        compiler collects them (``SQLCompiler.get_converters``), with the two that run on
        every row of the rater path swapped for :func:`fast_converter`'s equivalents; per
        backend."""
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                converters = [
                    fast_converter(convert, field, connection)
                    for convert in (
                        *connection.ops.get_db_converters(column),
                        *column.get_db_converters(connection),
                    )
                ]
                if converters:
                    found.append((index, converters, column))
            self._converters[connection.vendor] = found
        return found

    def insert(self, obj: M, *, connection: BaseDatabaseWrapper) -> None:
        """INSERT ``obj`` (a new instance of the model) and give it its primary key; an
        IntegrityError (a unique constraint) propagates as from ``save``."""
        if not connection.features.can_return_columns_from_insert:
            obj.save(force_insert=True, using=connection.alias)  # no INSERT … RETURNING
            return
        values = [
            field.get_db_prep_save(field.pre_save(obj, True), connection) for field in self._written
        ]
        with cursor(connection) as insert:
            insert.execute(self._insert_sql, values)
            if self.model._meta.auto_field is not None:
                obj.pk = insert.fetchone()[0]
        obj._state.adding = False
        obj._state.db = connection.alias

    @functools.cached_property
    def _has_init_receivers(self) -> bool:
        """Looked up at the first row read (receivers connect when the apps load)."""
        return pre_init.has_listeners(self.model) or post_init.has_listeners(self.model)

    @functools.cached_property
    def _insert_sql(self) -> str:
        columns = ", ".join(f'"{field.column}"' for field in self._written)
        marks = ", ".join(["%s"] * len(self._written))
        pk = self.model._meta.pk.column
        returning = f' RETURNING "{pk}"' if self.model._meta.auto_field is not None else ""
        return f"INSERT INTO {self.table} ({columns}) VALUES ({marks}){returning}"


def fast_converter(convert: Converter, field: Any, connection: BaseDatabaseWrapper) -> Converter:
    """``convert``, or a converter that gives the same values with less work per value:

    * SQLite's datetime text with time zones on (``DatabaseOperations.
      convert_datetimefield_value``: ``parse_datetime``, whose first try is
      ``datetime.fromisoformat``, then ``make_aware`` in the connection's zone, reading
      ``settings.USE_TZ`` through the settings proxy for every value) parsed by
      ``fromisoformat`` and given the zone directly; text ``fromisoformat`` refuses goes
      to Django's converter;
    * a ``JSONField`` without a decoder (``JSONField.from_db_value``): ``json.loads``,
      with the empty list and object (most stored flags) made without parsing.

    ``tests/lib/test_prepared.py`` holds both to Django's converters."""
    ops: Any = connection.ops  # the backend's own DatabaseOperations
    if (
        connection.vendor == "sqlite"
        and settings.USE_TZ
        and getattr(convert, "__func__", None) is type(ops).convert_datetimefield_value
    ):
        zone = connection.timezone
        return functools.partial(_sqlite_datetime, zone=zone, fallback=convert)
    if (
        isinstance(field, JSONField)
        and field.decoder is None
        and getattr(convert, "__func__", None) is JSONField.from_db_value
    ):
        return functools.partial(_json_value, fallback=convert)
    return convert


def _sqlite_datetime(
    value: Any, expression: Any, connection: BaseDatabaseWrapper, *, zone: Any, fallback: Converter
) -> Any:
    if value is None or isinstance(value, datetime.datetime):
        return fallback(value, expression, connection)
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return fallback(value, expression, connection)
    if parsed.tzinfo is not None and parsed.utcoffset() is not None:
        return parsed
    return parsed.replace(tzinfo=zone)


_EMPTY: dict[str, Callable[[], Any]] = {"[]": list, "{}": dict}


def _json_value(
    value: Any, expression: Any, connection: BaseDatabaseWrapper, *, fallback: Converter
) -> Any:
    if not isinstance(value, str):
        return fallback(value, expression, connection)
    empty = _EMPTY.get(value)
    if empty is not None:
        return empty()
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
