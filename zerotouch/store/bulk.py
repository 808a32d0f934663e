"""Bulk inserts at the driver's speed, for factory imports of thousands of rows.

SQLite gets one executemany of plain tuples, PostgreSQL a COPY stream.

SQLAlchemy's executemany spends more time per row turning values into driver parameters than
SQLite spends storing the row (measured: about 35 us against 20 us per device row). Here the
statement is compiled once per table and column set (by store/fast.py), each column's bind
processor (the same conversion SQLAlchemy would apply) runs once per distinct value, and the
driver gets plain tuples or dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from zerotouch.store.fast import FastStatement, translated

_STATEMENTS: dict[tuple[str, tuple[str, ...]], FastStatement] = {}
_MISSING = object()


def _statement(table: sa.Table, keys: tuple[str, ...]) -> FastStatement:
    """The INSERT of these columns, compiled by store/fast.py like every hot statement."""
    key = (table.name, keys)
    statement = _STATEMENTS.get(key)
    if statement is None:
        values = {k: sa.bindparam(k, type_=table.c[k].type) for k in keys}
        statement = _STATEMENTS[key] = FastStatement(table.insert().values(values))
    return statement


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all carry the same keys, in the caller's transaction."""
    if not rows:
        return
    plan = _statement(table, tuple(rows[0])).plan(conn.dialect)
    sql, columns = plan.sql, plan.names
    converted = [
        (i, key, p) for i, (key, p) in enumerate(zip(columns, plan.bind, strict=True)) if p
    ]
    # Values shared by every row (timestamps, the importing account) are converted once.
    seen: dict[tuple[str, Any], Any] = {}
    params: list[Any] = []
    for row in rows:
        values = [row[key] for key in columns]
        for i, key, processor in converted:
            value = values[i]
            if value is None:
                continue
            try:
                cached = seen.get((key, value), _MISSING)
            except TypeError:  # Unhashable (a list of tags): converted each time.
                values[i] = processor(value)
                continue
            if cached is _MISSING:
                cached = seen[key, value] = processor(value)
            values[i] = cached
        params.append(values)
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            # COPY: one stream instead of a statement per row (psycopg adapts each value).
            names = ", ".join(f'"{key}"' for key in columns)
            with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                for values in params:
                    copy.write_row(values)
        elif plan.positional:
            cursor.executemany(sql, [tuple(values) for values in params])
        else:
            cursor.executemany(sql, [dict(zip(columns, v, strict=True)) for v in params])
    except dbapi.Error as error:
        raise translated(sql, error, dbapi.Error) from error
    finally:
        cursor.close()
