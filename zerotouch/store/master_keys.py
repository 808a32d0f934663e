"""Which master key versions the database's sealed values may be under, with a check value
for each (crypto/envelope.py): what lets a server refuse a keyring that cannot open them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from zerotouch.store.schema import SEALED_COLUMNS, master_keys


def registered(conn: sa.Connection) -> dict[int, str]:
    """Version -> check value, for every version the database knows."""
    rows = conn.execute(sa.select(master_keys.c.version, master_keys.c.check_sealed))
    return {int(version): str(check) for version, check in rows}


def register(conn: sa.Connection, version: int, check: str, now: dt.datetime) -> None:
    """Record a version unless it is recorded already (the first process to do so wins)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(master_keys)
        .values(version=version, check_sealed=check, created_at=now)
        .on_conflict_do_nothing(index_elements=["version"])
    )


def retire(conn: sa.Connection, versions: Iterable[int]) -> None:
    conn.execute(master_keys.delete().where(master_keys.c.version.in_(list(versions))))


def sealed_samples(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """One sealed value of each sealed column that holds any: (where, purpose, value)."""
    found = []
    for table, column, purpose in SEALED_COLUMNS:
        col = table.c[column]
        value = conn.execute(sa.select(col).where(col.is_not(None)).limit(1)).scalar()
        if value is not None:
            found.append((f"{table.name}.{column}", purpose, str(value)))
    return found


BATCH = 1_000  # Sealed values rewritten per statement.


def _column(where: str) -> tuple[sa.Table, str]:
    for table, column, _ in SEALED_COLUMNS:
        if f"{table.name}.{column}" == where:
            return table, column
    raise KeyError(where)


def sealed_values(conn: sa.Connection) -> Iterator[tuple[str, str, list[tuple[Any, str]]]]:
    """Every sealed column ("table.column"), its sealing purpose, and its (key, value) pairs."""
    for table, column, purpose in SEALED_COLUMNS:
        col = table.c[column]
        pk = next(iter(table.primary_key.columns))
        rows = conn.execute(sa.select(pk, col).where(col.is_not(None))).all()
        yield f"{table.name}.{column}", purpose, [(key, value) for key, value in rows]


def write_sealed(conn: sa.Connection, where: str, updates: list[tuple[Any, str]]) -> None:
    """Store new sealed values of one column ("table.column") by row key."""
    table, column = _column(where)
    pk = next(iter(table.primary_key.columns))
    params = [{"_pk": key, "_value": value} for key, value in updates]
    for start in range(0, len(params), BATCH):
        conn.execute(
            table.update()
            .where(pk == sa.bindparam("_pk"))
            .values({column: sa.bindparam("_value")}),
            params[start : start + BATCH],
        )
