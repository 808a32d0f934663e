"""OCPI tokens a partner presents to us: token A, made by an operator for a partner to register
with; a callback token, ours for a partner's reads while we register with it; and the incoming
token of a registered partner. Each is stored as its hash."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from zerotouch.crypto.hashing import secret_hash
from zerotouch.domain.errors import InvalidArgument, Unauthenticated
from zerotouch.domain.values import Permission
from zerotouch.services.audit import audit_event
from zerotouch.services.ocpi.partners import (
    CALLBACK,
    CALLBACK_LIFETIME,
    NOTE_MAX,
    REGISTER,
    Caller,
    new_token,
    versions_url,
)
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import ocpi as store


@dataclass(frozen=True, slots=True)
class TokenA:
    id: str
    token: str
    versions_url: str


def create_token_a(
    rt: Runtime,
    *,
    principal: Principal,
    note: str | None = None,
    expires_at: dt.datetime | None = None,
) -> TokenA:
    """A token A for a partner to register with (shown once); ``expires_at`` must carry a time
    zone."""
    principal.require(Permission.MANAGE_PLATFORM)
    if note is not None and len(note) > NOTE_MAX:
        raise InvalidArgument.for_field("note", f"must be at most {NOTE_MAX} characters")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidArgument.for_field("expiresAt", "must carry a time zone")
    token, token_id, now = new_token(), str(uuid.uuid4()), rt.clock()
    with rt.db.write() as conn:
        store.add_token(
            conn,
            id=token_id,
            account_id=principal.account_id,
            token_hash=secret_hash(token),
            purpose=REGISTER,
            note=note,
            expires_at=expires_at,
            used_at=None,
            created_at=now,
        )
        audit_event(
            conn, principal, at=now, event=("ocpi.token_created", None, {"tokenId": token_id})
        )
    return TokenA(token_id, token, versions_url(rt))


def authenticate(rt: Runtime, token: str) -> Caller:
    """A partner by its incoming token, else an unused, unexpired token A; else 401."""
    digest = secret_hash(token)
    with rt.db.read() as conn:
        peer = store.peer_by_incoming_hash(conn, digest)
        if peer is not None:
            return Caller(token, peer.account_id, peer=peer)
        row = store.token_by_hash(conn, digest)
    if row is None or row.used_at is not None:
        raise Unauthenticated("The OCPI token is not known.")
    if row.expires_at is not None and row.expires_at <= rt.clock():
        raise Unauthenticated("The OCPI token has expired.")
    if row.purpose == CALLBACK:
        return Caller(token, row.account_id, callback=True)
    return Caller(token, row.account_id, token_a_id=row.id)


def callback_token(rt: Runtime, account_id: int, token: str) -> str:
    """Let ``token`` read our endpoints for a while: a partner's callbacks during a handshake."""
    token_id, now = str(uuid.uuid4()), rt.clock()
    with rt.db.write() as conn:
        store.add_token(
            conn,
            id=token_id,
            account_id=account_id,
            token_hash=secret_hash(token),
            purpose=CALLBACK,
            note=None,
            expires_at=now + CALLBACK_LIFETIME,
            used_at=None,
            created_at=now,
        )
    return token_id


def drop_token(rt: Runtime, token_id: str) -> None:
    with rt.db.write() as conn:
        store.delete_token(conn, token_id)
