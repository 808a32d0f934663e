"""Queries shared by several services. Database errors become domain errors here."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from zerotouch.domain.errors import NotFound, ZerotouchError
from zerotouch.store.db import is_unique_violation
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import commands, device_tags, devices, events
from zerotouch.store.sets import InsertRows


@contextlib.contextmanager
def unique_violation_as(error: ZerotouchError) -> Iterator[None]:
    """Turn a unique-constraint violation inside the block into ``error``."""
    try:
        yield
    except exc.IntegrityError as raised:
        if is_unique_violation(raised):
            raise error from raised
        raise


_INSERT_EVENT = FastStatement(
    events.insert().values(
        {
            name: sa.bindparam(name)
            for name in ("account_id", "at", "actor", "type", "device_id", "data")
        }
    )
)


Event = tuple[str, str | None, dict[str, Any]]  # (type, deviceId, data)


def event_row(account_id: int | None, actor: str, at: dt.datetime, event: Event) -> dict[str, Any]:
    kind, device_id, data = event
    return {
        "account_id": account_id,
        "at": at,
        "actor": actor,
        "type": kind,
        "device_id": device_id,
        "data": data,
    }


def record_event(
    conn: sa.Connection, *, account_id: int | None, actor: str, at: dt.datetime, event: Event
) -> None:
    """Write one audit event (type, deviceId, data) in the caller's transaction."""
    _INSERT_EVENT.run(conn, event_row(account_id, actor, at, event))


_EVENTS = InsertRows(events, ("account_id", "at", "actor", "type", "device_id", "data"))


def record_events(
    conn: sa.Connection,
    *,
    account_id: int | None,
    actor: str,
    at: dt.datetime,
    events: Sequence[Event],
) -> None:
    """Write several audit events of one call in the caller's transaction, in order, as one
    statement (on PostgreSQL each statement costs a trip to the server)."""
    send_events(conn, [event_row(account_id, actor, at, event) for event in events])


def send_events(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write audit events of several callers (rows from ``event_row``) as one statement."""
    _EVENTS.send(conn, rows)


def device_for_account(
    conn: sa.Connection, *, account_id: int, device_id: str, lock: bool = False
) -> sa.Row[Any]:
    """A claimed device of this account; any other device is reported as not found."""
    query = sa.select(devices).where(
        devices.c.device_id == device_id, devices.c.account_id == account_id
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"No device {device_id!r} in this account.", code="device_not_found")
    return row


def tags_of(conn: sa.Connection, device_pks: Sequence[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {pk: [] for pk in device_pks}
    if device_pks:
        rows = conn.execute(
            sa.select(device_tags.c.device_pk, device_tags.c.tag)
            .where(device_tags.c.device_pk.in_(device_pks))
            .order_by(device_tags.c.tag)
        )
        for pk, tag in rows:
            result[pk].append(tag)
    return result


def command_counts(conn: sa.Connection, device_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    result = {pk: {"total": 0, "pending": 0, "succeeded": 0, "failed": 0} for pk in device_pks}
    if device_pks:
        rows = conn.execute(
            sa.select(commands.c.device_pk, commands.c.status, sa.func.count())
            .where(commands.c.device_pk.in_(device_pks))
            .group_by(commands.c.device_pk, commands.c.status)
        )
        for pk, status, count in rows:
            counts = result[pk]
            counts["total"] += count
            key = status.lower()
            if key in counts:
                counts[key] += count
    return result


def next_position(conn: sa.Connection, device_pk: int) -> tuple[int, int]:
    """(number of commands, next free position) of a device's plan."""
    count, top = conn.execute(
        sa.select(sa.func.count(), sa.func.max(commands.c.position)).where(
            commands.c.device_pk == device_pk
        )
    ).one()
    return int(count), int(top or 0) + 1
