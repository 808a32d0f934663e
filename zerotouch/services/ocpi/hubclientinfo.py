"""HubClientInfo (OCPI 2.2.1, hubclientinfo module): a hub tells us the status of the parties
behind it (receiver interface); as a hub we list the parties connected to us (sender)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from zerotouch.domain.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from zerotouch.protocols import ocpi
from zerotouch.services.ocpi.partners import CONNECTED, OFFLINE, SUSPENDED, Caller
from zerotouch.services.runtime import Runtime
from zerotouch.store import ocpi as store

CLIENT_STATUSES = (CONNECTED, OFFLINE, "PLANNED", SUSPENDED)


def _registered(caller: Caller) -> Any:
    """The partner behind the token; a token A is good for versions, details and credentials
    only (401 anywhere else)."""
    if caller.peer is None:
        raise Unauthenticated("This token is for registering only.")
    return caller.peer


def _is_hub(peer: Any) -> bool:
    return any(r.get("role") == "HUB" for r in peer.roles)


def put_client_info(
    rt: Runtime, *, caller: Caller, country_code: str, party_id: str, body: Any
) -> dict[str, Any]:
    """A hub tells us the status of a party behind it (receiver interface)."""
    hub = _registered(caller)
    if not _is_hub(hub):
        raise PermissionDenied("Only a registered hub sends ClientInfo.")
    if not isinstance(body, dict):
        raise InvalidArgument.for_field("body", "must be a ClientInfo object")
    role, status = body.get("role"), body.get("status")
    if role not in ocpi.ROLES:
        raise InvalidArgument.for_field("role", f"must be one of {', '.join(ocpi.ROLES)}")
    if status not in CLIENT_STATUSES:
        raise InvalidArgument.for_field("status", f"must be one of {', '.join(CLIENT_STATUSES)}")
    if (body.get("country_code"), body.get("party_id")) not in (
        (None, None),
        (country_code, party_id),
    ):
        raise InvalidArgument.for_field("party_id", "differs from the URL")
    now = rt.clock()
    with rt.db.write() as conn:
        store.replace_client_info(
            conn,
            account_id=hub.account_id,
            country_code=country_code,
            party_id=party_id,
            hub_id=hub.id,
            role=role,
            status=status,
            last_updated=now,
        )
    return client_info(country_code, party_id, role, status, now)


def get_client_info(
    rt: Runtime, *, caller: Caller, country_code: str, party_id: str
) -> dict[str, Any]:
    _registered(caller)
    with rt.db.read() as conn:
        row = store.client_info(
            conn, account_id=caller.account_id, country_code=country_code, party_id=party_id
        )
    if row is None:
        raise NotFound(
            f"No ClientInfo for {country_code}/{party_id}.", code="client_info_not_found"
        )
    return client_info(row.country_code, row.party_id, row.role, row.status, row.last_updated)


def client_info(
    country: str, party: str, role: str, status: str, at: dt.datetime
) -> dict[str, Any]:
    return {
        "party_id": party,
        "country_code": country,
        "role": role,
        "status": status,
        "last_updated": ocpi.timestamp(at),
    }


def list_client_infos(
    rt: Runtime, *, caller: Caller, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """As a hub (sender interface): the parties connected to us, a page at a time."""
    _registered(caller)
    if rt.ocpi.role != "HUB":
        raise NotFound("This platform is not a hub.", code="not_a_hub")
    with rt.db.read() as conn:
        rows, total = store.peers_page(conn, caller.account_id, offset=offset, limit=limit)
    items = [
        client_info(r.country_code, r.party_id, r.role, r.status, r.last_updated) for r in rows
    ]
    return items, int(total)
