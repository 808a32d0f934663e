"""Bulk inserts at the driver's speed, for factory imports of thousands of rows.

SQLite gets one executemany of plain tuples, PostgreSQL a COPY stream.

SQLAlchemy's executemany spends more time per row turning values into driver parameters than
SQLite spends storing the row (measured: about 35 us against 20 us per device row). Here the
statement is compiled once per table and column set, each column's bind processor (the same
conversion SQLAlchemy would apply) runs once per distinct value, and the driver gets plain
tuples or dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

Processor = Callable[[Any], Any] | None


def _compiled(
    dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...] | None, dict[str, Processor]]:
    compiled = table.insert().compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    processors: dict[str, Processor] = {
        key: table.c[key].type._cached_bind_processor(dialect) for key in keys
    }
    return compiled.string, order, processors


_CACHE: dict[tuple[str, str, tuple[str, ...]], Any] = {}
_MISSING = object()


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all carry the same keys, in the caller's transaction."""
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (conn.dialect.name, table.name, keys)
    if cache_key not in _CACHE:
        _CACHE[cache_key] = _compiled(conn.dialect, table, keys)
    sql, order, processors = _CACHE[cache_key]
    columns = order or keys
    converted = [(i, key, processors[key]) for i, key in enumerate(columns) if processors[key]]
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
        elif order is not None:
            cursor.executemany(sql, [tuple(values) for values in params])
        else:
            cursor.executemany(sql, [dict(zip(columns, v, strict=True)) for v in params])
    except dbapi.Error as error:
        # Raised as SQLAlchemy would, so store/ translates it like any other statement's.
        raise sa.exc.DBAPIError.instance(sql, None, error, dbapi.Error) from error
    finally:
        cursor.close()
