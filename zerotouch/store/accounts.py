"""Accounts and their API keys (stored as hashes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from zerotouch.domain.views import Page
from zerotouch.store import paging
from zerotouch.store.fast import FastStatement, Pending
from zerotouch.store.schema import accounts, api_keys
from zerotouch.store.sets import one_of

V = TypeVar("V")

_BY_KEY_HASHES = FastStatement(
    sa.select(
        api_keys.c.id,
        api_keys.c.account_id,
        api_keys.c.role,
        api_keys.c.key_hash,
        api_keys.c.expires_at,
        api_keys.c.revoked_at,
    ).where(one_of(api_keys.c.key_hash, "hashes"))
)


def ensure(conn: sa.Connection, name: str, now: dt.datetime) -> int:
    """The id of the account named ``name``, made if there is none."""
    found = conn.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(accounts.insert().values(name=name, created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def by_name(conn: sa.Connection, name: str) -> Any:
    """The account named ``name``, or None."""
    return conn.execute(sa.select(accounts).where(accounts.c.name == name)).first()


def name_of(conn: sa.Connection, account_id: int) -> str:
    name: str = conn.execute(
        sa.select(accounts.c.name).where(accounts.c.id == account_id)
    ).scalar_one()
    return name


def add_key(conn: sa.Connection, **row: Any) -> None:
    conn.execute(api_keys.insert().values(**row))


def key_page(
    conn: sa.Connection, *, account_id: int, view: Callable[[Any], V], limit: int, token: str | None
) -> Page[V]:
    """The account's keys in the order they were made, a page at a time."""
    return paging.account_page(conn, api_keys, account_id, view=view, limit=limit, token=token)


def keys_with_accounts(conn: sa.Connection, account_name: str | None) -> list[Any]:
    """Every key (or an account's) with its account's ``name``, by account, oldest first."""
    query = (
        sa.select(accounts.c.name, api_keys)
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .order_by(accounts.c.name, api_keys.c.created_at, api_keys.c.id)
    )
    if account_name is not None:
        query = query.where(accounts.c.name == account_name)
    return list(conn.execute(query))


def find_key(
    conn: sa.Connection, key_id: str, *, account_id: int | None = None, lock: bool = False
) -> Any:
    """A key by id (of this account only, if given), or None."""
    query = sa.select(api_keys).where(api_keys.c.id == key_id)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def revoke_key(conn: sa.Connection, key_id: str, now: dt.datetime) -> None:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))


def send_keys_by_hash(conn: sa.Connection, hashes: list[str]) -> Pending:
    """The keys whose hashes are in ``hashes``, once the rows are read."""
    return _BY_KEY_HASHES.send(conn, {"hashes": hashes})
