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

Writes on that path go the same way: :meth:`Columns.insert` stores a new instance with
one prepared INSERT (the values through the fields' own ``get_db_prep_save``), as
``save(force_insert=True)`` would, without its query construction. No model signals are
sent (the rater path's models have no receivers).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


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
        self, row: Sequence[Any], *, connection: BaseDatabaseWrapper, start: int = 0
    ) -> M | None:
        """The instance in ``row[start:start + width]``; None where its primary key is
        NULL (the missing side of a LEFT JOIN)."""
        values = list(row[start : start + self.width])
        if values[self.pk_index] is None:
            return None
        for index, converters, expression in self._converters_for(connection):
            value = values[index]
            for convert in converters:
                value = convert(value, expression, connection)
            values[index] = value
        return self.model.from_db(connection.alias, self.attnames, values)

    def _converters_for(
        self, connection: BaseDatabaseWrapper
    ) -> list[tuple[int, list[Converter], Any]]:
        """The backend's and the field's converters of each column, as the ORM's
        compiler collects them (``SQLCompiler.get_converters``); per backend."""
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                converters = [
                    *connection.ops.get_db_converters(column),
                    *column.get_db_converters(connection),
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
        with connection.cursor() as cursor:
            cursor.execute(self._insert_sql, values)
            if self.model._meta.auto_field is not None:
                obj.pk = cursor.fetchone()[0]
        obj._state.adding = False
        obj._state.db = connection.alias

    @functools.cached_property
    def _insert_sql(self) -> str:
        columns = ", ".join(f'"{field.column}"' for field in self._written)
        marks = ", ".join(["%s"] * len(self._written))
        pk = self.model._meta.pk.column
        returning = f' RETURNING "{pk}"' if self.model._meta.auto_field is not None else ""
        return f"INSERT INTO {self.table} ({columns}) VALUES ({marks}){returning}"
