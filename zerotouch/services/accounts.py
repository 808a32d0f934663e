"""Accounts and API keys. A key is shown once and stored as its hash."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa

from zerotouch.crypto.hashing import matches, new_api_key, secret_hash
from zerotouch.domain.errors import InvalidArgument, Unauthenticated
from zerotouch.domain.values import Role
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store.queries import record_event
from zerotouch.store.schema import accounts, api_keys

ACCOUNT_NAME_MAX = 64
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_SIZE = 10_000


def ensure_account(conn: sa.Connection, name: str, rt: Runtime) -> int:
    found = conn.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(accounts.insert().values(name=name, created_at=rt.clock()))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def create_api_key(rt: Runtime, *, role: str, account_name: str = "default") -> tuple[str, str]:
    """Create a key of ``role`` in the account (made if needed); return (key id, raw key)."""
    try:
        checked_role = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidArgument.for_field("role", f"must be one of {roles}") from None
    if not 1 <= len(account_name) <= ACCOUNT_NAME_MAX:
        raise InvalidArgument.for_field("account", f"must be 1-{ACCOUNT_NAME_MAX} characters")
    raw = new_api_key()
    key_id = str(uuid.uuid4())
    with rt.db.write() as conn:
        account_id = ensure_account(conn, account_name, rt)
        now = rt.clock()
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                account_id=account_id,
                role=checked_role.value,
                key_hash=secret_hash(raw),
                created_at=now,
            )
        )
        record_event(
            conn,
            account_id=account_id,
            actor="cli",
            at=now,
            event=("api_key.created", None, {"keyId": key_id, "role": checked_role.value}),
        )
    return key_id, raw


def authenticate(rt: Runtime, raw_key: str) -> Principal:
    """The principal an API key stands for; unknown keys raise Unauthenticated.

    Known keys are remembered for ``AUTH_CACHE_SECONDS`` per process: the lookup costs more
    than most calls it guards. Unknown keys are never remembered.
    """
    digest = secret_hash(raw_key)
    now = time.monotonic()
    cached = rt.auth_cache.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    principal = _lookup(rt, raw_key, digest)
    if len(rt.auth_cache) >= AUTH_CACHE_SIZE:
        rt.auth_cache.clear()
    rt.auth_cache[digest] = (now + AUTH_CACHE_SECONDS, principal)
    return principal


_BY_KEY_HASH = sa.select(
    api_keys.c.id, api_keys.c.account_id, api_keys.c.role, api_keys.c.key_hash
).where(api_keys.c.key_hash == sa.bindparam("hash"))


def _lookup(rt: Runtime, raw_key: str, digest: str) -> Principal:
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(
                api_keys.c.id, api_keys.c.account_id, api_keys.c.role, api_keys.c.key_hash
            ).where(api_keys.c.key_hash == digest)
        ).first()
    if row is None or not matches(row.key_hash, raw_key):
        raise Unauthenticated("The API key is not known.")
    return Principal(account_id=row.account_id, role=Role(row.role), key_id=row.id)
