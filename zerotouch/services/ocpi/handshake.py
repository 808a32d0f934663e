"""The OCPI Credentials handshake, both ways, and what follows it: token rotation and
unregistration.

Incoming: an operator makes a token A; the partner POSTs its credentials with it; before we
answer we read its versions and version details with the token it gave us, check its credentials
endpoint, and answer with our credentials and a new token; token A is used up in the same
transaction, so of two registrations with one token A exactly one wins. Outgoing: the operator
gives us a partner's versions URL and token A and we run the same handshake the other way.
Tokens are named by direction: ``incoming_token`` (presented to us; stored hashed) and
``outgoing_token`` (presented by us; stored sealed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto.hashing import secret_hash
from zerotouch.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    PeerFailed,
    Unauthenticated,
)
from zerotouch.domain.values import Permission
from zerotouch.protocols import ocpi
from zerotouch.services.audit import audit_event
from zerotouch.services.ocpi.partners import (
    CONNECTED,
    OUTGOING_PURPOSE,
    SUSPENDED,
    Caller,
    Found,
    PeerView,
    Transport,
    call,
    credentials_of,
    discover,
    new_token,
    our_credentials,
    payload,
    peer_event,
    same_party,
    view,
)
from zerotouch.services.ocpi.peers import find_peer
from zerotouch.services.ocpi.token_a import callback_token, drop_token
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import ocpi as store
from zerotouch.store.db import Connection
from zerotouch.store.events import record_event


async def register_incoming(
    rt: Runtime, transport: Transport, *, caller: Caller, version: str, body: Any
) -> ocpi.Credentials:
    """A partner POSTs its credentials with a token A: check it out, then answer ours."""
    if caller.peer is not None:
        raise FailedPrecondition("Already registered: use PUT to update.", code="ocpi_registered")
    if caller.token_a_id is None:
        raise Unauthenticated("This token cannot register.")
    theirs = credentials_of(body, version)
    found = await discover(transport, theirs.url, theirs.token, version=version)
    incoming = new_token()
    now = rt.clock()

    def save() -> None:
        with rt.db.write() as conn:
            _use_token_a(rt, conn, caller, theirs, found, incoming, now)

    await asyncio.to_thread(save)
    return await asyncio.to_thread(our_credentials, rt, incoming)


def _use_token_a(
    rt: Runtime,
    conn: Connection,
    caller: Caller,
    theirs: ocpi.Credentials,
    found: Found,
    incoming: str,
    now: dt.datetime,
) -> None:
    """Token A is used up and the partner stored, in one transaction."""
    if caller.token_a_id is None or not store.use_token(conn, caller.token_a_id, now):
        raise Unauthenticated("The OCPI token is not known.")  # Another registration won.
    peer_id = store_peer(rt, conn, caller.account_id, theirs, found, "incoming", incoming, now)
    record_event(
        conn,
        account_id=caller.account_id,
        actor=f"ocpi:{theirs.identity.country_code}{theirs.identity.party_id}",
        at=now,
        event=("ocpi.registered", None, {"peerId": peer_id, "direction": "incoming"}),
    )


def store_peer(
    rt: Runtime,
    conn: Connection,
    account_id: int,
    theirs: ocpi.Credentials,
    found: Found,
    direction: str,
    incoming: str,
    now: dt.datetime,
) -> str:
    """Insert the partner, or bring a SUSPENDED one of the same party back under its id."""
    me = theirs.identity
    existing = store.party(
        conn, account_id=account_id, country_code=me.country_code, party_id=me.party_id
    )
    if existing is not None and existing.status != SUSPENDED:
        raise FailedPrecondition(
            f"{me.country_code}/{me.party_id} is registered already.", code="ocpi_registered"
        )
    values = {
        "direction": direction,
        "version": found.version.version,
        "versions_url": theirs.url,
        "credentials_url": found.credentials_url,
        "role": me.role,
        "business_name": me.business_name,
        "roles": [
            {
                "role": r.role,
                "countryCode": r.country_code,
                "partyId": r.party_id,
                "businessName": r.business_name,
            }
            for r in theirs.roles
        ],
        "incoming_token_hash": secret_hash(incoming),
        "outgoing_token_sealed": rt.keyring.seal(theirs.token, OUTGOING_PURPOSE),
        "status": CONNECTED,
        "last_updated": now,
    }
    if existing is not None:
        store.update_peer(conn, existing.id, **values)
        return str(existing.id)
    peer_id = str(uuid.uuid4())
    row = {
        "id": peer_id,
        "account_id": account_id,
        "country_code": me.country_code,
        "party_id": me.party_id,
        "created_at": now,
        **values,
    }
    taken = FailedPrecondition(
        f"{me.country_code}/{me.party_id} is registered already.", code="ocpi_registered"
    )
    store.add_peer(conn, row, taken=taken)
    return peer_id


@dataclass(frozen=True, slots=True)
class Partner:
    """A partner to register with: its versions URL, the token A it gave us, and the OCPI
    version to speak (None: the highest we share)."""

    versions_url: str
    token_a: str
    version: str | None = None

    def check(self) -> None:
        if not self.versions_url.startswith(("http://", "https://")):
            raise InvalidArgument.for_field("versionsUrl", "must be an http(s) URL")
        if not self.token_a:
            raise InvalidArgument.for_field("tokenA", "is required")
        if self.version is not None and self.version not in ocpi.SUPPORTED:
            raise InvalidArgument.for_field(
                "version", f"must be one of {', '.join(ocpi.SUPPORTED)}"
            )


async def register_outgoing(
    rt: Runtime, transport: Transport, *, principal: Principal, partner: Partner
) -> PeerView:
    """Register with a partner: its versions URL and the token A it gave us."""
    principal.require(Permission.MANAGE_PLATFORM)
    partner.check()
    token_a = partner.token_a
    found = await discover(transport, partner.versions_url, token_a, version=partner.version)
    version = found.version.version
    incoming, theirs, callback_id = await _exchange(
        rt, transport, principal.account_id, "POST", found.credentials_url, token_a, version
    )
    now = rt.clock()

    def save() -> Any:
        with rt.db.write() as conn:
            store.delete_token(conn, callback_id)
            peer_id = store_peer(
                rt, conn, principal.account_id, theirs, found, "outgoing", incoming, now
            )
            audit_event(
                conn,
                principal,
                at=now,
                event=("ocpi.registered", None, {"peerId": peer_id, "direction": "outgoing"}),
            )
            return store.peer(conn, peer_id)

    return view(await asyncio.to_thread(save))


async def _exchange(
    rt: Runtime,
    transport: Transport,
    account_id: int,
    method: str,
    url: str,
    token: str,
    version: str,
    *,
    party: Any = None,
) -> tuple[str, ocpi.Credentials, str]:
    """Send our credentials with a new incoming token (POST to register, PUT to rotate) and
    read theirs. The new token works for the partner's callback reads from the start; it is
    forgotten again when the exchange fails. Returns (incoming token, theirs, callback id)."""
    incoming = new_token()
    callback_id = await asyncio.to_thread(callback_token, rt, account_id, incoming)
    try:
        status, answer = await call(
            transport,
            method,
            url,
            token=token,
            version=version,
            body=ocpi.build_credentials(our_credentials(rt, incoming), version),
        )
        data = payload(status, answer, "credentials")
        try:
            theirs = ocpi.parse_credentials(data, version)
            if party is not None:
                same_party(party, theirs)
        except (ocpi.OcpiError, InvalidArgument) as exc:
            raise PeerFailed(
                f"The partner's credentials are not valid: {exc}", code="ocpi_2001"
            ) from None
    except BaseException:
        await asyncio.to_thread(drop_token, rt, callback_id)
        raise
    return incoming, theirs, callback_id


def update_tokens(
    conn: Connection, rt: Runtime, peer_id: str, incoming: str, outgoing: str, now: dt.datetime
) -> None:
    store.update_peer(
        conn,
        peer_id,
        incoming_token_hash=secret_hash(incoming),
        outgoing_token_sealed=rt.keyring.seal(outgoing, OUTGOING_PURPOSE),
        status=CONNECTED,
        last_updated=now,
    )


async def update_incoming(
    rt: Runtime, transport: Transport, *, caller: Caller, version: str, body: Any
) -> ocpi.Credentials:
    """A registered partner PUTs new credentials: check them out, then give it a new token."""
    peer = caller.peer
    if peer is None:
        raise FailedPrecondition("Not registered: POST first.", code="ocpi_not_registered")
    theirs = credentials_of(body, version)
    same_party(peer, theirs)
    found = await discover(transport, theirs.url, theirs.token, version=version)
    incoming = new_token()
    now = rt.clock()

    def save() -> None:
        with rt.db.write() as conn:
            update_tokens(conn, rt, peer.id, incoming, theirs.token, now)
            store.update_peer(
                conn,
                peer.id,
                version=found.version.version,
                credentials_url=found.credentials_url,
            )
            peer_event(conn, peer, "ocpi.rotated", now, by="partner")

    await asyncio.to_thread(save)
    return await asyncio.to_thread(our_credentials, rt, incoming)


def unregister_incoming(rt: Runtime, *, caller: Caller) -> None:
    """A registered partner DELETEs its registration: its tokens die, it is SUSPENDED."""
    if caller.peer is None:
        raise FailedPrecondition("Not registered.", code="ocpi_not_registered")
    now = rt.clock()
    with rt.db.write() as conn:
        suspend(conn, caller.peer.id, now)
        peer_event(conn, caller.peer, "ocpi.unregistered", now, by="partner")


def suspend(conn: Connection, peer_id: str, now: dt.datetime) -> None:
    store.update_peer(
        conn,
        peer_id,
        incoming_token_hash=None,
        outgoing_token_sealed=None,
        status=SUSPENDED,
        last_updated=now,
    )


async def rotate(
    rt: Runtime, transport: Transport, *, principal: Principal, peer_id: str
) -> PeerView:
    """New tokens both ways, started from our side: PUT our credentials with a new token; the
    pair is stored only when the partner answered, and then the old ones stop working."""
    principal.require(Permission.MANAGE_PLATFORM)
    peer = await asyncio.to_thread(find_peer, rt, principal, peer_id)
    if peer.status == SUSPENDED or peer.outgoing_token_sealed is None:
        raise FailedPrecondition("The peer is not registered.", code="peer_not_registered")
    outgoing = rt.keyring.open_text(peer.outgoing_token_sealed, OUTGOING_PURPOSE)
    incoming, theirs, callback_id = await _exchange(
        rt,
        transport,
        principal.account_id,
        "PUT",
        peer.credentials_url,
        outgoing,
        peer.version,
        party=peer,
    )
    now = rt.clock()

    def save() -> Any:
        with rt.db.write() as conn:
            store.delete_token(conn, callback_id)
            update_tokens(conn, rt, peer.id, incoming, theirs.token, now)
            peer_event(conn, peer, "ocpi.rotated", now, by=principal.actor)
            return store.peer(conn, peer.id)

    return view(await asyncio.to_thread(save))


async def unregister(
    rt: Runtime, transport: Transport, *, principal: Principal, peer_id: str
) -> None:
    """Unregister from our side: DELETE our registration on theirs (a failure is recorded and
    does not stop us), then the partner's tokens die here and it is SUSPENDED."""
    principal.require(Permission.MANAGE_PLATFORM)
    peer = await asyncio.to_thread(find_peer, rt, principal, peer_id)
    if peer.status == SUSPENDED:
        return
    failure = None
    if peer.outgoing_token_sealed is not None:
        outgoing = rt.keyring.open_text(peer.outgoing_token_sealed, OUTGOING_PURPOSE)
        try:
            status, answer = await call(
                transport, "DELETE", peer.credentials_url, token=outgoing, version=peer.version
            )
            payload(status, answer, "unregistration")
        except PeerFailed as exc:
            failure = exc.message
    now = rt.clock()

    def save() -> None:
        with rt.db.write() as conn:
            suspend(conn, peer.id, now)
            record_event(
                conn,
                account_id=peer.account_id,
                actor=principal.actor,
                at=now,
                event=("ocpi.unregistered", None, {"peerId": peer.id, "partnerFailed": failure}),
            )

    await asyncio.to_thread(save)
