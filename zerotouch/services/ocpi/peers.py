"""The account's OCPI partners: listed (with the parties a hub announced), and the still-alive
check of those that have been quiet."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from zerotouch.domain.errors import NotFound, PeerFailed
from zerotouch.domain.values import Permission
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, Page
from zerotouch.services.ocpi.partners import (
    CONNECTED,
    OFFLINE,
    OUTGOING_PURPOSE,
    PeerView,
    Transport,
    call,
    payload,
    peer_event,
    view,
)
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import ocpi as store
from zerotouch.store import paging

log = logging.getLogger(__name__)


def list_peers(
    rt: Runtime,
    *,
    principal: Principal,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[PeerView]:
    """Our partners, then the parties a hub announced to us (direction ``hub``), a page at a
    time."""
    return paging.slice_page(
        _all_peers(rt, principal=principal), limit=page_limit, token=page_token
    )


def _all_peers(rt: Runtime, *, principal: Principal) -> list[PeerView]:
    principal.require(Permission.MANAGE_PLATFORM)
    with rt.db.read() as conn:
        rows = store.peers_of(conn, principal.account_id)
        announced = store.announced(conn, principal.account_id)
    views = [view(r) for r in rows]
    for info in announced:
        views.append(
            PeerView(
                id=f"{info.hub_id}/{info.country_code}/{info.party_id}",
                country_code=info.country_code,
                party_id=info.party_id,
                role=info.role,
                roles=[],
                business_name="",
                version=info.version,
                direction="hub",
                status=info.status,
                last_updated=info.last_updated,
            )
        )
    return views


def find_peer(rt: Runtime, principal: Principal, peer_id: str) -> Any:
    """One of the account's partners; NotFound for any other."""
    with rt.db.read() as conn:
        row = store.peer(conn, peer_id, account_id=principal.account_id)
    if row is None:
        raise NotFound(f"No OCPI peer {peer_id!r} in this account.", code="peer_not_found")
    return row


async def check_peers(rt: Runtime, transport: Transport, *, force: bool = False) -> int:
    """The still-alive check: every partner silent for ``ping_interval`` seconds gets a GET of
    its versions endpoint; OFFLINE when that fails, CONNECTED when it answers (again).
    Returns how many partners were asked."""
    now = rt.clock()
    quiet_since = now - dt.timedelta(seconds=rt.ocpi.ping_interval)
    since = None if force else quiet_since

    def quiet() -> list[Any]:
        with rt.db.read() as conn:
            return store.quiet_peers(conn, (CONNECTED, OFFLINE), since=since)

    peers = await asyncio.to_thread(quiet)
    for peer in peers:
        if peer.outgoing_token_sealed is None:
            continue
        token = rt.keyring.open_text(peer.outgoing_token_sealed, OUTGOING_PURPOSE)
        try:
            status, body = await call(
                transport, "GET", peer.versions_url, token=token, version=peer.version
            )
            payload(status, body, "versions")
            alive = True
        except PeerFailed as exc:
            log.info("ocpi: %s%s did not answer: %s", peer.country_code, peer.party_id, exc.message)
            alive = False
        await asyncio.to_thread(_mark, rt, peer, CONNECTED if alive else OFFLINE)
    return len(peers)


def _mark(rt: Runtime, peer: Any, new: str) -> None:
    """A partner's status after the still-alive check."""
    with rt.db.write() as conn:
        store.set_status(conn, peer.id, new, was=(CONNECTED, OFFLINE), now=rt.clock())
        if new != peer.status:
            peer_event(conn, peer, f"ocpi.{new.lower()}", rt.clock(), by="still-alive check")
