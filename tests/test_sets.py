"""Parameters that carry many values (store/sets.py), on the database of this run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotouch.store.db import Database
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import Json, events
from zerotouch.store.sets import InsertRows, Rows, one_of

# PostgreSQL keeps no NUL character in text or JSON; the rest of Unicode goes.
text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
)
# Integers beyond 64 bits too: orjson refuses them, and the rows must still go in exactly.
integers = st.integers(-(2**63), 2**63 - 1) | st.integers(2**64, 2**80)
json_values = st.recursive(
    st.none() | st.booleans() | integers | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
moments = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
event_rows = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.none(),
            "at": moments,
            "actor": text,
            "type": text,
            "device_id": st.none() | text,
            "data": st.dictionaries(text, json_values, max_size=4),
        }
    ),
    max_size=12,
)

_INSERT = InsertRows(events, ("account_id", "at", "actor", "type", "device_id", "data"))
_CHOSEN = FastStatement(
    sa.select(events.c.id).where(one_of(events.c.id, "ids")).order_by(events.c.id)
)
_changed = Rows(
    "changed",
    sa.column("id", sa.Integer()),
    sa.column("type", sa.String(64)),
    sa.column("data", Json),
)
_CHANGE = FastStatement(
    events.update()
    .where(events.c.id == _changed.c.id)
    .values(
        type=sa.func.coalesce(_changed.c.type, events.c.type),
        data=sa.func.coalesce(_changed.c.data, events.c.data),
    )
)
_ALL = sa.select(events).order_by(events.c.id)


def _stored(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(_ALL)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=event_rows, data=st.data())
def test_rows_go_in_and_come_back_as_they_were(
    db: Database, rows: list[dict[str, Any]], data: Any
) -> None:
    with db.write() as conn:
        conn.execute(events.delete())
    with db.write_batched() as conn:
        _INSERT.send(conn, rows)
    stored = _stored(db)
    assert [{k: v for k, v in row.items() if k != "id"} for row in stored] == rows
    ids = [row["id"] for row in stored]
    assert ids == sorted(ids)  # In the order given.
    # Stored as SQLAlchemy stores them (SQLite compares times as text: the form matters).
    with db.write() as conn:
        if rows:
            conn.execute(events.insert(), rows)
        raw = [
            str(at) for at in conn.execute(sa.text("SELECT at FROM events ORDER BY id")).scalars()
        ]
        conn.execute(events.delete().where(events.c.id.notin_(ids) if ids else sa.true()))
    assert raw[: len(rows)] == raw[len(rows) :]

    chosen = data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]))
    with db.read() as conn:
        found = [row.id for row in _CHOSEN.run(conn, {"ids": chosen})]
    assert found == sorted(chosen)

    # Each change sets what it names and leaves the rest as it was.
    changes = [
        {
            "id": i,
            **data.draw(
                st.fixed_dictionaries(
                    {},
                    optional={"type": text, "data": st.dictionaries(text, json_values, max_size=2)},
                )
            ),
        }
        for i in chosen
    ]
    with db.write_batched() as conn:
        if changes:
            _CHANGE.send(conn, {"changed": changes})
    expected = {row["id"]: row for row in stored}
    for change in changes:
        expected[change["id"]] = {**expected[change["id"]], **change}
    assert _stored(db) == [expected[i] for i in ids]
