"""OCPI Credentials: registering with partner platforms and letting them register with us.

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
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from zerotouch.crypto.hashing import secret_hash
from zerotouch.domain.errors import (
    FailedPrecondition,
    FieldError,
    InvalidArgument,
    NotFound,
    PeerFailed,
    PermissionDenied,
    Unauthenticated,
)
from zerotouch.domain.values import Permission
from zerotouch.domain.views import Page
from zerotouch.protocols import ocpi
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import paging
from zerotouch.store.queries import record_event, unique_violation_as
from zerotouch.store.schema import ocpi_client_infos, ocpi_peers, ocpi_tokens

log = logging.getLogger(__name__)

OUTGOING_PURPOSE = "ocpi_peers.outgoing_token"
NOTE_MAX = 256
CONNECTED, OFFLINE, SUSPENDED = "CONNECTED", "OFFLINE", "SUSPENDED"
REGISTER, CALLBACK = "register", "callback"  # ocpi_tokens.purpose
CALLBACK_LIFETIME = dt.timedelta(minutes=5)


class Transport(Protocol):
    """How the service reaches partners (adapters/ocpi): one HTTP request, its status and JSON."""

    async def request(
        self, method: str, url: str, *, token: str, version: str, body: Any = None
    ) -> tuple[int, Any]: ...


def new_token() -> str:
    """A credentials token: 43 characters of URL-safe base64 (256 random bits)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenA:
    id: str
    token: str
    versions_url: str


@dataclass(frozen=True, slots=True)
class PeerView:
    id: str
    country_code: str
    party_id: str
    role: str
    roles: list[dict[str, str]]
    business_name: str
    version: str
    direction: str
    status: str
    last_updated: dt.datetime


@dataclass(frozen=True, slots=True)
class Caller:
    """Who presented a token on the OCPI endpoints: a token A, or a registered partner."""

    token: str
    account_id: int
    token_a_id: str | None = None
    peer: Any = None
    # Our own token, given to a partner we are registering with, for its callback reads.
    callback: bool = False


def versions_url(rt: Runtime) -> str:
    return f"{rt.ocpi.public_url}/ocpi/versions"


def create_token_a(rt: Runtime, *, principal: Principal, body: Any) -> TokenA:
    principal.require(Permission.MANAGE_PLATFORM)
    body = body or {}
    note, expires = body.get("note"), body.get("expiresAt")
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise InvalidArgument.for_field("note", f"must be at most {NOTE_MAX} characters")
    expires_at = None
    if expires is not None:
        try:
            expires_at = dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument.for_field("expiresAt", "must be an RFC 3339 time") from None
        if expires_at.tzinfo is None:
            raise InvalidArgument.for_field("expiresAt", "must carry a time zone")
    token, token_id, now = new_token(), str(uuid.uuid4()), rt.clock()
    with rt.db.write() as conn:
        conn.execute(
            ocpi_tokens.insert().values(
                id=token_id,
                account_id=principal.account_id,
                token_hash=secret_hash(token),
                purpose=REGISTER,
                note=note,
                expires_at=expires_at,
                used_at=None,
                created_at=now,
            )
        )
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=now,
            event=("ocpi.token_created", None, {"tokenId": token_id}),
        )
    return TokenA(token_id, token, versions_url(rt))


def authenticate(rt: Runtime, token: str) -> Caller:
    """A partner by its incoming token, else an unused, unexpired token A; else 401."""
    digest = secret_hash(token)
    with rt.db.read() as conn:
        peer = conn.execute(
            sa.select(ocpi_peers).where(ocpi_peers.c.incoming_token_hash == digest)
        ).first()
        if peer is not None:
            return Caller(token, peer.account_id, peer=peer)
        row = conn.execute(sa.select(ocpi_tokens).where(ocpi_tokens.c.token_hash == digest)).first()
    if row is None or row.used_at is not None:
        raise Unauthenticated("The OCPI token is not known.")
    if row.expires_at is not None and row.expires_at <= rt.clock():
        raise Unauthenticated("The OCPI token has expired.")
    if row.purpose == CALLBACK:
        return Caller(token, row.account_id, callback=True)
    return Caller(token, row.account_id, token_a_id=row.id)


def our_credentials(rt: Runtime, token: str) -> ocpi.Credentials:
    identity = rt.ocpi
    role = ocpi.Role(
        identity.role, identity.country_code, identity.party_id, identity.business_name
    )
    return ocpi.Credentials(token, versions_url(rt), (role,))


@dataclass(frozen=True, slots=True)
class _Found:
    version: ocpi.Version
    credentials_url: str


async def _discover(transport: Transport, url: str, token: str, *, version: str | None) -> _Found:
    """Read a partner's versions and version details; check its credentials endpoint."""
    attempts = [version] if version else [ocpi.V221, ocpi.V211]
    data: Any = None
    for encoding in attempts:
        status, body = await _call(transport, "GET", url, token=token, version=encoding)
        if status != 401:
            data = _data(status, body, "versions")
            break
    else:
        raise PeerFailed(
            "The partner refused our token on its versions endpoint.", code="ocpi_3001"
        )
    versions, tolerated = ocpi.parse_versions(data)
    for note in tolerated:
        log.info("ocpi: tolerated from %s: %s", url, note)
    chosen = (
        next((v for v in versions if v.version == version), None)
        if version
        else ocpi.highest_shared(versions)
    )
    if chosen is None:
        raise PeerFailed("The partner shares no OCPI version with us.", code="ocpi_3002")
    status, body = await _call(transport, "GET", chosen.url, token=token, version=chosen.version)
    endpoints = ocpi.parse_endpoints(_data(status, body, "version details"))
    credentials = ocpi.find_endpoint(endpoints, "credentials")
    if credentials is None:
        raise PeerFailed("The partner has no credentials endpoint.", code="ocpi_3003")
    return _Found(chosen, credentials.url)


async def _call(
    transport: Transport, method: str, url: str, *, token: str, version: str, body: Any = None
) -> tuple[int, Any]:
    try:
        return await transport.request(method, url, token=token, version=version, body=body)
    except (OSError, ValueError) as exc:
        raise PeerFailed(f"The partner could not be reached: {exc}", code="ocpi_3001") from None


def _data(status: int, body: Any, what: str) -> Any:
    try:
        envelope = ocpi.parse_envelope(body)
    except ocpi.OcpiError:
        raise PeerFailed(f"The partner's {what} answer is not OCPI.", code="ocpi_3001") from None
    if envelope.status_code != ocpi.SUCCESS or status >= 400:
        raise PeerFailed(
            f"The partner refused ({envelope.status_code}): {envelope.status_message}",
            code=f"ocpi_{envelope.status_code}",
        )
    return envelope.data


async def register_incoming(
    rt: Runtime, transport: Transport, *, caller: Caller, version: str, body: Any
) -> ocpi.Credentials:
    """A partner POSTs its credentials with a token A: check it out, then answer ours."""
    if caller.peer is not None:
        raise FailedPrecondition("Already registered: use PUT to update.", code="ocpi_registered")
    if caller.token_a_id is None:
        raise Unauthenticated("This token cannot register.")
    theirs = _credentials(body, version)
    found = await _discover(transport, theirs.url, theirs.token, version=version)
    incoming = new_token()
    now = rt.clock()

    def store() -> None:
        with rt.db.write() as conn:
            _use_token_a(rt, conn, caller, theirs, found, incoming, now)

    await asyncio.to_thread(store)
    return await asyncio.to_thread(our_credentials, rt, incoming)


def _use_token_a(
    rt: Runtime,
    conn: sa.Connection,
    caller: Caller,
    theirs: ocpi.Credentials,
    found: _Found,
    incoming: str,
    now: dt.datetime,
) -> None:
    """Token A is used up and the partner stored, in one transaction."""
    used = conn.execute(
        ocpi_tokens.update()
        .where(ocpi_tokens.c.id == caller.token_a_id, ocpi_tokens.c.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if not used:
        raise Unauthenticated("The OCPI token is not known.")  # Another registration won.
    peer_id = _store_peer(rt, conn, caller.account_id, theirs, found, "incoming", incoming, now)
    record_event(
        conn,
        account_id=caller.account_id,
        actor=f"ocpi:{theirs.identity.country_code}{theirs.identity.party_id}",
        at=now,
        event=("ocpi.registered", None, {"peerId": peer_id, "direction": "incoming"}),
    )


def _credentials(body: Any, version: str) -> ocpi.Credentials:
    try:
        return ocpi.parse_credentials(body, version)
    except ocpi.OcpiError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InvalidArgument(
            str(exc), errors=[FieldError(field, reason)], code="ocpi_2001"
        ) from None


def _store_peer(
    rt: Runtime,
    conn: sa.Connection,
    account_id: int,
    theirs: ocpi.Credentials,
    found: _Found,
    direction: str,
    incoming: str,
    now: dt.datetime,
) -> str:
    """Insert the partner, or bring a SUSPENDED one of the same party back under its id."""
    me = theirs.identity
    existing = conn.execute(
        sa.select(ocpi_peers.c.id, ocpi_peers.c.status).where(
            ocpi_peers.c.account_id == account_id,
            ocpi_peers.c.country_code == me.country_code,
            ocpi_peers.c.party_id == me.party_id,
        )
    ).first()
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
        conn.execute(ocpi_peers.update().where(ocpi_peers.c.id == existing.id).values(**values))
        return str(existing.id)
    peer_id = str(uuid.uuid4())
    with unique_violation_as(
        FailedPrecondition(
            f"{me.country_code}/{me.party_id} is registered already.", code="ocpi_registered"
        )
    ):
        conn.execute(
            ocpi_peers.insert().values(
                id=peer_id,
                account_id=account_id,
                country_code=me.country_code,
                party_id=me.party_id,
                created_at=now,
                **values,
            )
        )
    return peer_id


async def register_outgoing(
    rt: Runtime, transport: Transport, *, principal: Principal, body: Any
) -> PeerView:
    """Register with a partner: its versions URL and the token A it gave us."""
    principal.require(Permission.MANAGE_PLATFORM)
    if not isinstance(body, dict):
        raise InvalidArgument.for_field("body", "must be an object")
    url, token_a, wanted = body.get("versionsUrl"), body.get("tokenA"), body.get("version")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgument.for_field("versionsUrl", "must be an http(s) URL")
    if not isinstance(token_a, str) or not token_a:
        raise InvalidArgument.for_field("tokenA", "is required")
    if wanted is not None and wanted not in ocpi.SUPPORTED:
        raise InvalidArgument.for_field("version", f"must be one of {', '.join(ocpi.SUPPORTED)}")
    found = await _discover(transport, url, token_a, version=wanted)
    version = found.version.version
    incoming, theirs, callback_id = await _exchange(
        rt, transport, principal.account_id, "POST", found.credentials_url, token_a, version
    )
    now = rt.clock()

    def store() -> Any:
        with rt.db.write() as conn:
            conn.execute(ocpi_tokens.delete().where(ocpi_tokens.c.id == callback_id))
            peer_id = _store_peer(
                rt, conn, principal.account_id, theirs, found, "outgoing", incoming, now
            )
            record_event(
                conn,
                account_id=principal.account_id,
                actor=principal.actor,
                at=now,
                event=("ocpi.registered", None, {"peerId": peer_id, "direction": "outgoing"}),
            )
            return conn.execute(sa.select(ocpi_peers).where(ocpi_peers.c.id == peer_id)).one()

    return _view(await asyncio.to_thread(store))


async def _exchange(
    rt: Runtime,
    transport: Transport,
    account_id: int,
    method: str,
    url: str,
    token: str,
    version: str,
    *,
    same_party: Any = None,
) -> tuple[str, ocpi.Credentials, str]:
    """Send our credentials with a new incoming token (POST to register, PUT to rotate) and
    read theirs. The new token works for the partner's callback reads from the start; it is
    forgotten again when the exchange fails. Returns (incoming token, theirs, callback id)."""
    incoming = new_token()
    callback_id = await asyncio.to_thread(_callback_token, rt, account_id, incoming)
    try:
        status, answer = await _call(
            transport,
            method,
            url,
            token=token,
            version=version,
            body=ocpi.build_credentials(our_credentials(rt, incoming), version),
        )
        data = _data(status, answer, "credentials")
        try:
            theirs = ocpi.parse_credentials(data, version)
            if same_party is not None:
                _same_party(same_party, theirs)
        except (ocpi.OcpiError, InvalidArgument) as exc:
            raise PeerFailed(
                f"The partner's credentials are not valid: {exc}", code="ocpi_2001"
            ) from None
    except BaseException:
        await asyncio.to_thread(_drop_token, rt, callback_id)
        raise
    return incoming, theirs, callback_id


def _callback_token(rt: Runtime, account_id: int, token: str) -> str:
    token_id, now = str(uuid.uuid4()), rt.clock()
    with rt.db.write() as conn:
        conn.execute(
            ocpi_tokens.insert().values(
                id=token_id,
                account_id=account_id,
                token_hash=secret_hash(token),
                purpose=CALLBACK,
                note=None,
                expires_at=now + CALLBACK_LIFETIME,
                used_at=None,
                created_at=now,
            )
        )
    return token_id


def _drop_token(rt: Runtime, token_id: str) -> None:
    with rt.db.write() as conn:
        conn.execute(ocpi_tokens.delete().where(ocpi_tokens.c.id == token_id))


def list_peers(
    rt: Runtime,
    *,
    principal: Principal,
    page_limit: int = paging.DEFAULT_PAGE_LIMIT,
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
        rows = conn.execute(
            sa.select(ocpi_peers)
            .where(ocpi_peers.c.account_id == principal.account_id)
            .order_by(ocpi_peers.c.created_at, ocpi_peers.c.id)
        ).all()
        announced = conn.execute(
            sa.select(ocpi_client_infos, ocpi_peers.c.version)
            .join(ocpi_peers, ocpi_peers.c.id == ocpi_client_infos.c.hub_id)
            .where(ocpi_client_infos.c.account_id == principal.account_id)
            .order_by(ocpi_client_infos.c.country_code, ocpi_client_infos.c.party_id)
        ).all()
    views = [_view(r) for r in rows]
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


def _view(row: Any) -> PeerView:
    return PeerView(
        id=row.id,
        country_code=row.country_code,
        party_id=row.party_id,
        role=row.role,
        roles=row.roles,
        business_name=row.business_name,
        version=row.version,
        direction=row.direction,
        status=row.status,
        last_updated=row.last_updated,
    )


def _same_party(peer: Any, theirs: ocpi.Credentials) -> None:
    me = theirs.identity
    if (me.country_code, me.party_id) != (peer.country_code, peer.party_id):
        raise InvalidArgument(
            "country_code and party_id may not change after registration.",
            errors=[FieldError("credentials.roles[0]", "names another party")],
            code="ocpi_2001",
        )


def _update_tokens(
    conn: sa.Connection, rt: Runtime, peer_id: str, incoming: str, outgoing: str, now: dt.datetime
) -> None:
    conn.execute(
        ocpi_peers.update()
        .where(ocpi_peers.c.id == peer_id)
        .values(
            incoming_token_hash=secret_hash(incoming),
            outgoing_token_sealed=rt.keyring.seal(outgoing, OUTGOING_PURPOSE),
            status=CONNECTED,
            last_updated=now,
        )
    )


async def update_incoming(
    rt: Runtime, transport: Transport, *, caller: Caller, version: str, body: Any
) -> ocpi.Credentials:
    """A registered partner PUTs new credentials: check them out, then give it a new token."""
    peer = caller.peer
    if peer is None:
        raise FailedPrecondition("Not registered: POST first.", code="ocpi_not_registered")
    theirs = _credentials(body, version)
    _same_party(peer, theirs)
    found = await _discover(transport, theirs.url, theirs.token, version=version)
    incoming = new_token()
    now = rt.clock()

    def store() -> None:
        with rt.db.write() as conn:
            _update_tokens(conn, rt, peer.id, incoming, theirs.token, now)
            conn.execute(
                ocpi_peers.update()
                .where(ocpi_peers.c.id == peer.id)
                .values(version=found.version.version, credentials_url=found.credentials_url)
            )
            _peer_event(conn, peer, "ocpi.rotated", now, by="partner")

    await asyncio.to_thread(store)
    return await asyncio.to_thread(our_credentials, rt, incoming)


def unregister_incoming(rt: Runtime, *, caller: Caller) -> None:
    """A registered partner DELETEs its registration: its tokens die, it is SUSPENDED."""
    if caller.peer is None:
        raise FailedPrecondition("Not registered.", code="ocpi_not_registered")
    now = rt.clock()
    with rt.db.write() as conn:
        _suspend(conn, caller.peer.id, now)
        _peer_event(conn, caller.peer, "ocpi.unregistered", now, by="partner")


def _suspend(conn: sa.Connection, peer_id: str, now: dt.datetime) -> None:
    conn.execute(
        ocpi_peers.update()
        .where(ocpi_peers.c.id == peer_id)
        .values(
            incoming_token_hash=None,
            outgoing_token_sealed=None,
            status=SUSPENDED,
            last_updated=now,
        )
    )


def _peer_event(conn: sa.Connection, peer: Any, kind: str, now: dt.datetime, *, by: str) -> None:
    record_event(
        conn,
        account_id=peer.account_id,
        actor=f"ocpi:{peer.country_code}{peer.party_id}" if by == "partner" else by,
        at=now,
        event=(kind, None, {"peerId": peer.id}),
    )


def _peer(rt: Runtime, principal: Principal, peer_id: str) -> Any:
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(ocpi_peers).where(
                ocpi_peers.c.id == peer_id, ocpi_peers.c.account_id == principal.account_id
            )
        ).first()
    if row is None:
        raise NotFound(f"No OCPI peer {peer_id!r} in this account.", code="peer_not_found")
    return row


async def rotate(
    rt: Runtime, transport: Transport, *, principal: Principal, peer_id: str
) -> PeerView:
    """New tokens both ways, started from our side: PUT our credentials with a new token; the
    pair is stored only when the partner answered, and then the old ones stop working."""
    principal.require(Permission.MANAGE_PLATFORM)
    peer = await asyncio.to_thread(_peer, rt, principal, peer_id)
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
        same_party=peer,
    )
    now = rt.clock()

    def store() -> Any:
        with rt.db.write() as conn:
            conn.execute(ocpi_tokens.delete().where(ocpi_tokens.c.id == callback_id))
            _update_tokens(conn, rt, peer.id, incoming, theirs.token, now)
            _peer_event(conn, peer, "ocpi.rotated", now, by=principal.actor)
            return conn.execute(sa.select(ocpi_peers).where(ocpi_peers.c.id == peer.id)).one()

    return _view(await asyncio.to_thread(store))


async def unregister(
    rt: Runtime, transport: Transport, *, principal: Principal, peer_id: str
) -> None:
    """Unregister from our side: DELETE our registration on theirs (a failure is recorded and
    does not stop us), then the partner's tokens die here and it is SUSPENDED."""
    principal.require(Permission.MANAGE_PLATFORM)
    peer = await asyncio.to_thread(_peer, rt, principal, peer_id)
    if peer.status == SUSPENDED:
        return
    failure = None
    if peer.outgoing_token_sealed is not None:
        outgoing = rt.keyring.open_text(peer.outgoing_token_sealed, OUTGOING_PURPOSE)
        try:
            status, answer = await _call(
                transport, "DELETE", peer.credentials_url, token=outgoing, version=peer.version
            )
            _data(status, answer, "unregistration")
        except PeerFailed as exc:
            failure = exc.message
    now = rt.clock()

    def store() -> None:
        with rt.db.write() as conn:
            _suspend(conn, peer.id, now)
            record_event(
                conn,
                account_id=peer.account_id,
                actor=principal.actor,
                at=now,
                event=("ocpi.unregistered", None, {"peerId": peer.id, "partnerFailed": failure}),
            )

    await asyncio.to_thread(store)


async def check_peers(rt: Runtime, transport: Transport, *, force: bool = False) -> int:
    """The still-alive check: every partner silent for ``ping_interval`` seconds gets a GET of
    its versions endpoint; OFFLINE when that fails, CONNECTED when it answers (again).
    Returns how many partners were asked."""
    now = rt.clock()
    quiet_since = now - dt.timedelta(seconds=rt.ocpi.ping_interval)
    query = sa.select(ocpi_peers).where(ocpi_peers.c.status.in_([CONNECTED, OFFLINE]))
    if not force:
        query = query.where(ocpi_peers.c.last_updated <= quiet_since)

    def quiet() -> list[Any]:
        with rt.db.read() as conn:
            return list(conn.execute(query).all())

    peers = await asyncio.to_thread(quiet)
    for peer in peers:
        if peer.outgoing_token_sealed is None:
            continue
        token = rt.keyring.open_text(peer.outgoing_token_sealed, OUTGOING_PURPOSE)
        try:
            status, body = await _call(
                transport, "GET", peer.versions_url, token=token, version=peer.version
            )
            _data(status, body, "versions")
            alive = True
        except PeerFailed as exc:
            log.info("ocpi: %s%s did not answer: %s", peer.country_code, peer.party_id, exc.message)
            alive = False
        await asyncio.to_thread(_mark, rt, peer, CONNECTED if alive else OFFLINE)
    return len(peers)


def _mark(rt: Runtime, peer: Any, new: str) -> None:
    """A partner's status after the still-alive check."""
    with rt.db.write() as conn:
        conn.execute(
            ocpi_peers.update()
            .where(ocpi_peers.c.id == peer.id, ocpi_peers.c.status.in_([CONNECTED, OFFLINE]))
            .values(status=new, last_updated=rt.clock())
        )
        if new != peer.status:
            _peer_event(conn, peer, f"ocpi.{new.lower()}", rt.clock(), by="still-alive check")


# --- HubClientInfo (OCPI 2.2.1, hubclientinfo module) --------------------------------------------

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
    key = {"account_id": hub.account_id, "country_code": country_code, "party_id": party_id}
    now = rt.clock()
    with rt.db.write() as conn:
        conn.execute(ocpi_client_infos.delete().filter_by(**key))
        conn.execute(
            ocpi_client_infos.insert().values(
                **key, hub_id=hub.id, role=role, status=status, last_updated=now
            )
        )
    return client_info(country_code, party_id, role, status, now)


def get_client_info(
    rt: Runtime, *, caller: Caller, country_code: str, party_id: str
) -> dict[str, Any]:
    _registered(caller)
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(ocpi_client_infos).filter_by(
                account_id=caller.account_id, country_code=country_code, party_id=party_id
            )
        ).first()
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
        query = sa.select(ocpi_peers).where(ocpi_peers.c.account_id == caller.account_id)
        total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(
            query.order_by(ocpi_peers.c.created_at, ocpi_peers.c.id).offset(offset).limit(limit)
        ).all()
    items = [
        client_info(r.country_code, r.party_id, r.role, r.status, r.last_updated) for r in rows
    ]
    return items, int(total)
