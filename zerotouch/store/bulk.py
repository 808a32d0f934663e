"""Bulk inserts at the driver's speed, for factory imports of thousands of rows.

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


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all carry the same keys, in the caller's transaction."""
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (conn.dialect.name, table.name, keys)
    if cache_key not in _CACHE:
        _CACHE[cache_key] = _compiled(conn.dialect, table, keys)
    sql, order, processors = _CACHE[cache_key]
    # Values shared by every row (timestamps, the importing account) are converted once.
    shared: dict[str, dict[Any, Any]] = {k: {} for k, p in processors.items() if p is not None}

    def convert(key: str, value: Any) -> Any:
        processor = processors[key]
        if processor is None or value is None:
            return value
        try:
            seen = shared[key]
            if value not in seen:
                seen[value] = processor(value)
            return seen[value]
        except TypeError:  # Unhashable (lists, dicts): convert each time.
            return processor(value)

    columns = order or keys
    if order is not None:
        params: list[Any] = [tuple(convert(k, row[k]) for k in columns) for row in rows]
    else:
        params = [{k: convert(k, row[k]) for k in columns} for row in rows]
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, params)
    except dbapi.Error as error:
        # Raised as SQLAlchemy would, so store/ translates it like any other statement's.
        raise sa.exc.DBAPIError.instance(sql, None, error, dbapi.Error) from error
    finally:
        cursor.close()
