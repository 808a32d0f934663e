"""Accounts and API keys. A key is shown once and stored as its hash.

Every call looks its key up again (no process keeps a key it has seen), so a key that is revoked
or expires is refused at once, on every node. Front-ends look up the keys of the calls that
arrive together in one statement (``load_principals``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto.hashing import matches, new_api_key, secret_hash
from zerotouch.domain.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from zerotouch.domain.values import Permission, Role
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, Page
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import accounts as store
from zerotouch.store.db import Connection
from zerotouch.store.events import record_event

ACCOUNT_NAME_MAX = 64
API_KEY_MAX = 256  # Ours are 46 characters; anything far longer is not one of them.
# Who may make or revoke a key of which role: never one above the caller's own.
_RANK = {Role.OWNER: 3, Role.ADMIN: 2, Role.EDITOR: 1, Role.VIEWER: 0, Role.MANUFACTURER: 0}
UNKNOWN_KEY = "The API key is not known, expired or revoked."


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    view: ApiKeyView
    key: str  # Shown once.


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidArgument.for_field("role", f"must be one of {roles}") from None


def _check_expiry(rt: Runtime, expires_at: dt.datetime | None) -> None:
    if expires_at is not None and expires_at <= rt.clock():
        raise InvalidArgument.for_field("expiresAt", "must be in the future")


def _insert_key(
    rt: Runtime,
    conn: Connection,
    *,
    account_id: int,
    role: Role,
    expires_at: dt.datetime | None,
    actor: str,
) -> NewApiKey:
    raw = new_api_key()
    key_id = str(uuid.uuid4())
    now = rt.clock()
    store.add_key(
        conn,
        id=key_id,
        account_id=account_id,
        role=role.value,
        key_hash=secret_hash(raw),
        created_at=now,
        expires_at=expires_at,
    )
    data: dict[str, object] = {"keyId": key_id, "role": role.value}
    if expires_at is not None:
        data["expiresAt"] = expires_at.isoformat()
    record_event(
        conn, account_id=account_id, actor=actor, at=now, event=("api_key.created", None, data)
    )
    return NewApiKey(ApiKeyView(key_id, role.value, now, expires_at, None), raw)


def create_api_key(
    rt: Runtime,
    *,
    role: str,
    account_name: str = "default",
    expires_at: dt.datetime | None = None,
) -> tuple[str, str]:
    """Create a key of ``role`` in the account (made if needed), as the command line does;
    returns (key id, raw key)."""
    checked = _role(role)
    if not 1 <= len(account_name) <= ACCOUNT_NAME_MAX:
        raise InvalidArgument.for_field("account", f"must be 1-{ACCOUNT_NAME_MAX} characters")
    _check_expiry(rt, expires_at)
    with rt.db.write() as conn:
        account_id = store.ensure(conn, account_name, rt.clock())
        made = _insert_key(
            rt, conn, account_id=account_id, role=checked, expires_at=expires_at, actor="cli"
        )
    return made.view.id, made.key


def issue_api_key(
    rt: Runtime, *, principal: Principal, role: str, expires_at: dt.datetime | None = None
) -> NewApiKey:
    """A new key in the caller's account, of a role no higher than the caller's own."""
    principal.require(Permission.MANAGE_PLATFORM)
    checked = _role(role)
    if _RANK[checked] > _RANK[principal.role]:
        raise PermissionDenied(f"The {principal.role.value} role may not make {role} keys.")
    _check_expiry(rt, expires_at)
    with rt.db.write() as conn:
        return _insert_key(
            rt,
            conn,
            account_id=principal.account_id,
            role=checked,
            expires_at=expires_at,
            actor=principal.actor,
        )


def _key_view(row: Any) -> ApiKeyView:
    return ApiKeyView(row.id, row.role, row.created_at, row.expires_at, row.revoked_at)


def list_api_keys(
    rt: Runtime,
    *,
    principal: Principal,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[ApiKeyView]:
    """The account's keys (never their secrets), in the order they were made."""
    principal.require(Permission.MANAGE_PLATFORM)
    with rt.db.read() as conn:
        return store.key_page(
            conn,
            account_id=principal.account_id,
            view=_key_view,
            limit=page_limit,
            token=page_token,
        )


def list_account_keys(
    rt: Runtime, *, account_name: str | None = None
) -> list[tuple[str, ApiKeyView]]:
    """Every key, or an account's, with its account's name (for the command line)."""
    with rt.db.read() as conn:
        return [(row.name, _key_view(row)) for row in store.keys_with_accounts(conn, account_name)]


def revoke_api_key(rt: Runtime, *, key_id: str, principal: Principal | None = None) -> ApiKeyView:
    """Revoke a key: refused from the next call on, on every node. ``principal``: a caller
    who may revoke keys of its own account only (None: the command line)."""
    if principal is not None:
        principal.require(Permission.MANAGE_PLATFORM)
    with rt.db.write() as conn:
        account_id = principal.account_id if principal is not None else None
        row = store.find_key(conn, key_id, account_id=account_id, lock=True)
        if row is None:
            raise NotFound(f"No API key {key_id!r}.", code="api_key_not_found")
        if principal is not None and _RANK[Role(row.role)] > _RANK[principal.role]:
            raise PermissionDenied(
                f"The {principal.role.value} role may not revoke {row.role} keys."
            )
        now = rt.clock()
        if row.revoked_at is None:
            store.revoke_key(conn, key_id, now)
            record_event(
                conn,
                account_id=row.account_id,
                actor=principal.actor if principal is not None else "cli",
                at=now,
                event=("api_key.revoked", None, {"keyId": key_id, "role": row.role}),
            )
        return _key_view(store.find_key(conn, key_id))


def load_principals(rt: Runtime, raw_keys: Sequence[str]) -> list[Principal | Exception]:
    """The principal each presented key stands for, looked up in one statement; a key that is
    unknown, expired or revoked gets Unauthenticated."""
    digests = [secret_hash(raw) if _plausible(raw) else None for raw in raw_keys]
    wanted = sorted({d for d in digests if d is not None})
    found = {}
    if wanted:
        # One round trip: the statement and its COMMIT go out together on PostgreSQL.
        with rt.db.read_batched() as conn:
            reading = store.send_keys_by_hash(conn, wanted)
        found = {row.key_hash: row for row in reading.rows()}
    now = rt.clock()
    results: list[Principal | Exception] = []
    for raw, digest in zip(raw_keys, digests, strict=True):
        row = found.get(digest) if digest is not None else None
        if (
            row is None
            or not matches(row.key_hash, raw)
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
        ):
            results.append(Unauthenticated(UNKNOWN_KEY))
        else:
            results.append(Principal(account_id=row.account_id, role=Role(row.role), key_id=row.id))
    return results


def _plausible(raw: str) -> bool:
    return 0 < len(raw) <= API_KEY_MAX and raw.isascii() and raw.isprintable()


def authenticate(rt: Runtime, raw_key: str) -> Principal:
    """The principal an API key stands for; unknown, expired or revoked keys raise
    Unauthenticated."""
    result = load_principals(rt, [raw_key])[0]
    if isinstance(result, Exception):
        raise result
    return result


def local_principal(rt: Runtime, *, account_name: str, role: str = "manufacturer") -> Principal:
    """The command line acting in an account (made if there is none) directly on the database,
    with the rights of ``role``; its audit events name the actor ``cli``."""
    checked = _role(role)
    if not 1 <= len(account_name) <= ACCOUNT_NAME_MAX:
        raise InvalidArgument.for_field("account", f"must be 1-{ACCOUNT_NAME_MAX} characters")
    with rt.db.write() as conn:
        account_id = store.ensure(conn, account_name, rt.clock())
    return Principal(account_id, checked, "cli", local=True)
