"""The audit trail: an operator's events recorded, in the transaction of the change they record
(store/events.py), and read back a page at a time."""

from __future__ import annotations

import datetime as dt

from zerotouch.domain.values import Permission
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, EventView, Page
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import events as store
from zerotouch.store import paging
from zerotouch.store.db import Connection
from zerotouch.store.events import Event, record_event


def list_events(
    rt: Runtime,
    *,
    principal: Principal,
    device_id: str | None = None,
    after: int = 0,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[EventView]:
    principal.require(Permission.READ_DEVICES)
    limit = paging.check_limit(page_limit)
    start = max(after, paging.decode_token(page_token))
    with rt.db.read() as conn:
        rows, total, next_token = store.page(
            conn, account_id=principal.account_id, device_id=device_id, after=start, limit=limit
        )
    items = [EventView(r.id, r.at, r.actor, r.type, r.device_id, r.data) for r in rows]
    return Page(items, total, next_token)


def audit_event(conn: Connection, principal: Principal, *, at: dt.datetime, event: Event) -> None:
    """Record what an operator did (type, deviceId, data), in the transaction that did it."""
    record_event(conn, account_id=principal.account_id, actor=principal.actor, at=at, event=event)
