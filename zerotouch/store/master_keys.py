"""Which master key versions the database's sealed values may be under, with a check value
for each (crypto/envelope.py): what lets a server refuse a keyring that cannot open them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

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
