"""Provisioning tags an account declares, with a description (nRF Cloud's provisioning tags).

A device carries any tags, declared or not; declaring one names it for the people who share
the account. Claiming a device with a tag applies the active rules of that tag (claims.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.values import Permission, check_tag
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, Page
from zerotouch.services.audit import audit_event
from zerotouch.services.requests import check_description
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import rules as store


@dataclass(frozen=True, slots=True)
class TagView:
    tag: str
    description: str
    created_at: dt.datetime


def _view(row: Any) -> TagView:
    return TagView(row.tag, row.description, row.created_at)


def create_tag(
    rt: Runtime, *, principal: Principal, tag: str, description: str | None = None
) -> TagView:
    principal.require(Permission.WRITE_DEVICES)
    try:
        name = check_tag(tag)
    except ValueError as exc:
        raise InvalidArgument.for_field("tag", str(exc)) from None
    text = check_description(description)
    now = rt.clock()
    with rt.db.write() as conn:
        store.add_tag(
            conn,
            {
                "id": str(uuid.uuid4()),
                "account_id": principal.account_id,
                "tag": name,
                "description": text,
                "created_at": now,
            },
        )
        audit_event(conn, principal, at=now, event=("tag.created", None, {"tag": name}))
    return TagView(name, text, now)


def list_tags(
    rt: Runtime,
    *,
    principal: Principal,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[TagView]:
    """The account's tags in the order they were declared, a page at a time."""
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        return store.tag_page(
            conn, account_id=principal.account_id, view=_view, limit=page_limit, token=page_token
        )
