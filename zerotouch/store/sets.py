"""Parameters that carry many values, for statements that serve a whole group of calls.

A group of device calls (services/device_calls.py) reads the rows of every device in it, and
writes every change they made, one statement per kind: the number of statements, and so of
trips through the driver and the server's parser, stays the same however many calls the group
holds, and each statement is one prepared plan whatever the group's size.

- ``one_of(column, name)``: ``column`` is one of the list given as parameter ``name``;
  ``column = ANY(CAST(:name AS type[]))`` on PostgreSQL, ``column IN (SELECT value FROM
  json_each(:name))`` on SQLite.
- ``Rows(name, columns)``: the list of dicts given as parameter ``name``, used as a table (in
  ``UPDATE ... FROM``); ``jsonb_to_recordset`` on PostgreSQL, ``json_each`` on SQLite. A key
  a row leaves out reads as NULL.
- ``InsertRows(table, columns)``: ``INSERT ... SELECT`` from such rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, TableClause

from zerotouch.store.fast import FastStatement


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


class _JsonRows(sa.TypeDecorator[list[dict[str, Any]]]):
    """Rows sent as JSON text, each value first converted as its column's type converts it
    (so SQLite gets its own text form of a datetime, PostgreSQL an ISO 8601 one)."""

    impl = sa.Text()
    cache_ok = True

    def __init__(self, columns: tuple[sa.ColumnClause[Any], ...]) -> None:
        super().__init__()
        self.columns = columns
        self._processors: dict[str, dict[str, Callable[[Any], Any]]] = {}

    def _of(self, dialect: sa.Dialect) -> dict[str, Callable[[Any], Any]]:
        processors = self._processors.get(dialect.name)
        if processors is None:
            processors = {}
            for column in self.columns:
                if isinstance(column.type, sa.JSON):
                    continue  # Goes into the JSON text as it is.
                processor = column.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[column.name] = processor
            self._processors[dialect.name] = processors
        return processors

    def process_bind_param(
        self, value: list[dict[str, Any]] | None, dialect: sa.Dialect
    ) -> str | None:
        if value is None:
            return None
        processors = self._of(dialect)
        if processors:
            value = [
                {
                    key: processors[key](item) if key in processors and item is not None else item
                    for key, item in row.items()
                }
                for row in value
            ]
        # orjson writes an aware datetime in ISO 8601, as PostgreSQL reads it; and it turns the
        # rows of a group into text in a tenth of the time of the standard library, which
        # stays for what orjson refuses (an integer beyond 64 bits).
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            return json.dumps(value, separators=(",", ":"), default=_iso)


class _List(sa.TypeDecorator[list[Any]]):
    """A list of values: an array on PostgreSQL, JSON text on SQLite."""

    impl = sa.Text()
    cache_ok = True

    def __init__(self, item: sa.types.TypeEngine[Any]) -> None:
        super().__init__()
        self.item = item

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: list[Any] | None, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(value).decode()


class OneOf(ColumnElement[Any]):
    # Its column and parameter are not part of SQLAlchemy's cache key: no compiled-statement
    # cache may serve one ``one_of`` for another (store/fast.py compiles each statement itself).
    inherit_cache = False
    # Not Boolean: SQLite, which has no boolean type, would be given ``(...) = 1`` to compare,
    # and that hides the IN from its planner.
    type = sa.types.NULLTYPE

    def __init__(self, column: sa.ColumnElement[Any], name: str, *, hint: bool = False) -> None:
        self.column = column
        self.param = sa.bindparam(name, type_=_List(column.type))
        self.hint = hint


def one_of(column: sa.ColumnElement[Any], name: str) -> OneOf:
    return OneOf(column, name)


def lookup_hint(column: sa.ColumnElement[Any], name: str) -> OneOf:
    """The keys of a join once more, as a list, so that PostgreSQL's planner finds the rows by
    index whatever it guesses: of a ``Rows`` parameter's size in ``UPDATE ... FROM`` (it
    guesses 100 rows, and scans a small table whole), or, without statistics, of how many rows
    a join matches. On SQLite it is nothing: its planner already drives the join from the
    rows, and would instead scan them once per row found by the list."""
    return OneOf(column, name, hint=True)


@compiles(OneOf, "postgresql")
def _one_of_postgresql(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    item = element.column.type.compile(dialect=compiler.dialect)
    column, param = compiler.process(element.column, **kw), compiler.process(element.param, **kw)
    return f"{column} = ANY(CAST({param} AS {item}[]))"


@compiles(OneOf)
def _one_of_sqlite(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    if element.hint:
        return "1"
    column, param = compiler.process(element.column, **kw), compiler.process(element.param, **kw)
    # Column and parameter names come from the schema, never from input.
    return f"{column} IN (SELECT value FROM json_each({param}))"  # noqa: S608


class Rows(TableClause):
    """Rows given as one parameter (a list of dicts), usable as a table named ``name``."""

    inherit_cache = False

    def __init__(self, name: str, *columns: sa.ColumnClause[Any]) -> None:
        super().__init__(name, *columns)
        self.param = sa.bindparam(name, type_=_JsonRows(tuple(columns)))


@compiles(Rows, "postgresql")
def _rows_postgresql(element: Rows, compiler: SQLCompiler, **kw: Any) -> str:
    if not kw.get("asfrom"):
        return str(compiler.preparer.quote(element.name))
    columns = ", ".join(
        f"{compiler.preparer.quote(c.name)} {c.type.compile(dialect=compiler.dialect)}"
        for c in element.columns
    )
    param = compiler.process(element.param, **kw)
    return f"jsonb_to_recordset(CAST({param} AS JSONB)) AS {element.name}({columns})"


@compiles(Rows)
def _rows_sqlite(element: Rows, compiler: SQLCompiler, **kw: Any) -> str:
    if not kw.get("asfrom"):
        return str(compiler.preparer.quote(element.name))
    # ``->`` keeps a JSON value as JSON text (as a JSON column stores it); json_extract gives
    # SQL values for the others.
    columns = ", ".join(
        ("value -> " if isinstance(c.type, sa.JSON) else "json_extract(value, ")
        + f"'$.{c.name}'"
        + ("" if isinstance(c.type, sa.JSON) else ")")
        + f" AS {compiler.preparer.quote(c.name)}"
        for c in element.columns
    )
    param = compiler.process(element.param, **kw)
    return f"(SELECT {columns} FROM json_each({param})) AS {element.name}"  # noqa: S608


class InsertRows:
    """An INSERT of any number of rows as one statement with one parameter (``Rows``): one
    prepared statement on PostgreSQL whatever the count, where a multi-row VALUES is a new
    statement (parsed by the driver and planned by the server) for every count."""

    def __init__(self, table: sa.Table, columns: Sequence[str]) -> None:
        self.name = f"{table.name}_rows"
        rows = Rows(self.name, *(sa.column(name, table.c[name].type) for name in columns))
        self.statement = FastStatement(
            table.insert().from_select(list(columns), sa.select(*rows.c))
        )

    def send(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (each with every column), in order, without waiting for the server
        inside ``Database.batch``."""
        if rows:
            self.statement.send(conn, {self.name: list(rows)})
