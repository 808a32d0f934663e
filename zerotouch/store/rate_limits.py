"""Fixed-window attempt counters shared by every node on the database."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from zerotouch.store.schema import rate_limits

WINDOW_S = 60  # Every counter of the table counts in windows of this many seconds.


def count(conn: sa.Connection, attempts: Mapping[str, int], window: int) -> dict[str, int]:
    """Add ``attempts`` (key -> how many) to the keys' counters of ``window``, in the caller's
    transaction; returns each key's count before them. A counter of an older window starts
    again at zero."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    before: dict[str, int] = {}
    for key, n in sorted(attempts.items()):  # In one order: two nodes never deadlock here.
        values = insert(rate_limits).values(key=key, window=window, count=n)
        statement = values.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "count": sa.case(
                    (rate_limits.c.window == values.excluded.window,
                     rate_limits.c.count + values.excluded.count),
                    else_=values.excluded.count,
                ),
                "window": values.excluded.window,
            },
        ).returning(rate_limits.c.count)  # fmt: skip
        before[key] = int(conn.execute(statement).scalar_one()) - n
    return before


def current(conn: sa.Connection, keys: list[str], window: int) -> dict[str, int]:
    """The keys' counts in ``window`` (0 for a key without one)."""
    if not keys:
        return {}
    found = conn.execute(
        sa.select(rate_limits.c.key, rate_limits.c.count).where(
            rate_limits.c.key.in_(sorted(set(keys))), rate_limits.c.window == window
        )
    )
    counts = dict.fromkeys(keys, 0)
    counts.update({str(key): int(n) for key, n in found})
    return counts


def forget_before(conn: sa.Connection, window: int) -> int:
    """Drop counters of windows before ``window``."""
    result = conn.execute(rate_limits.delete().where(rate_limits.c.window < window))
    return int(result.rowcount or 0)
