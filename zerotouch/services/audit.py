"""Reading the audit trail. Events are written by each service in its own transaction."""

from __future__ import annotations

from zerotouch.domain.values import Permission
from zerotouch.domain.views import EventView, Page
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import paging
from zerotouch.store.schema import events


def list_events(
    rt: Runtime,
    *,
    principal: Principal,
    device_id: str | None = None,
    after: int = 0,
    page_limit: int = paging.DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[EventView]:
    principal.require(Permission.READ_DEVICES)
    limit = paging.check_limit(page_limit)
    start = max(after, paging.decode_token(page_token))
    where = [events.c.account_id == principal.account_id]
    if device_id is not None:
        where.append(events.c.device_id == device_id)
    with rt.db.read() as conn:
        rows, total, next_token = paging.keyset_page(conn, events, where, after=start, limit=limit)
    items = [EventView(r.id, r.at, r.actor, r.type, r.device_id, r.data) for r in rows]
    return Page(items, total, next_token)
