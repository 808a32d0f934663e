"""The audit trail. Every event is written by one statement (``send_events``: INSERT ... SELECT
from its rows as one parameter), in the transaction of the change it records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from zerotouch.store import paging
from zerotouch.store.schema import events
from zerotouch.store.sets import InsertRows

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
    send_events(conn, [event_row(account_id, actor, at, event)])


_EVENTS = InsertRows(events, ("account_id", "at", "actor", "type", "device_id", "data"))


def send_events(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write audit events of several callers (rows from ``event_row``) as one statement."""
    _EVENTS.send(conn, rows)


def page(
    conn: sa.Connection, *, account_id: int, device_id: str | None, after: int, limit: int
) -> tuple[list[Any], int, str | None]:
    """A page of an account's events (of one device, if given), oldest first after ``after``."""
    where = [events.c.account_id == account_id]
    if device_id is not None:
        where.append(events.c.device_id == device_id)
    return paging.keyset_page(conn, events, where, after=after, limit=limit)
