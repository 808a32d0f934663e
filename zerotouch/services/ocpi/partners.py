"""What the OCPI flows share: our identity to partners, the handshake's discovery of a
partner's endpoints, who called us, and how a partner is shown."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from zerotouch.domain.errors import FieldError, InvalidArgument, PeerFailed
from zerotouch.protocols import ocpi
from zerotouch.services.runtime import Runtime
from zerotouch.store.db import Connection
from zerotouch.store.events import record_event

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


def our_credentials(rt: Runtime, token: str) -> ocpi.Credentials:
    identity = rt.ocpi
    role = ocpi.Role(
        identity.role, identity.country_code, identity.party_id, identity.business_name
    )
    return ocpi.Credentials(token, versions_url(rt), (role,))


@dataclass(frozen=True, slots=True)
class Found:
    version: ocpi.Version
    credentials_url: str


async def discover(transport: Transport, url: str, token: str, *, version: str | None) -> Found:
    """Read a partner's versions and version details; check its credentials endpoint."""
    attempts = [version] if version else [ocpi.V221, ocpi.V211]
    data: Any = None
    for encoding in attempts:
        status, body = await call(transport, "GET", url, token=token, version=encoding)
        if status != 401:
            data = payload(status, body, "versions")
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
    status, body = await call(transport, "GET", chosen.url, token=token, version=chosen.version)
    endpoints = ocpi.parse_endpoints(payload(status, body, "version details"))
    credentials = ocpi.find_endpoint(endpoints, "credentials")
    if credentials is None:
        raise PeerFailed("The partner has no credentials endpoint.", code="ocpi_3003")
    return Found(chosen, credentials.url)


async def call(
    transport: Transport, method: str, url: str, *, token: str, version: str, body: Any = None
) -> tuple[int, Any]:
    try:
        return await transport.request(method, url, token=token, version=version, body=body)
    except (OSError, ValueError) as exc:
        raise PeerFailed(f"The partner could not be reached: {exc}", code="ocpi_3001") from None


def payload(status: int, body: Any, what: str) -> Any:
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


def credentials_of(body: Any, version: str) -> ocpi.Credentials:
    try:
        return ocpi.parse_credentials(body, version)
    except ocpi.OcpiError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InvalidArgument(
            str(exc), errors=[FieldError(field, reason)], code="ocpi_2001"
        ) from None


def view(row: Any) -> PeerView:
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


def same_party(peer: Any, theirs: ocpi.Credentials) -> None:
    me = theirs.identity
    if (me.country_code, me.party_id) != (peer.country_code, peer.party_id):
        raise InvalidArgument(
            "country_code and party_id may not change after registration.",
            errors=[FieldError("credentials.roles[0]", "names another party")],
            code="ocpi_2001",
        )


def peer_event(conn: Connection, peer: Any, kind: str, now: dt.datetime, *, by: str) -> None:
    record_event(
        conn,
        account_id=peer.account_id,
        actor=f"ocpi:{peer.country_code}{peer.party_id}" if by == "partner" else by,
        at=now,
        event=(kind, None, {"peerId": peer.id}),
    )
