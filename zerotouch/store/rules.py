"""Provisioning rules of an account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from zerotouch.domain.errors import AlreadyExists, NotFound
from zerotouch.domain.views import Page
from zerotouch.store import paging
from zerotouch.store.db import unique_violation_as
from zerotouch.store.fast import FastStatement, Pending
from zerotouch.store.schema import provisioning_rules, provisioning_tags

V = TypeVar("V")

# Run on every claim: built once. The account's active rules, oldest first.
_ACTIVE = FastStatement(
    sa.select(provisioning_rules)
    .where(provisioning_rules.c.account_id == sa.bindparam("account"), provisioning_rules.c.active)
    .order_by(provisioning_rules.c.created_at, provisioning_rules.c.id)
)


def send_active(conn: sa.Connection, account_id: int) -> Pending:
    """The account's active rules, oldest first, once the rows are read."""
    return _ACTIVE.send(conn, {"account": account_id})


def active(conn: sa.Connection, account_id: int) -> list[Any]:
    return send_active(conn, account_id).rows()


def _taken(name: Any) -> AlreadyExists:
    return AlreadyExists(f"A rule named {name!r} exists already.")


def add(conn: sa.Connection, row: dict[str, Any]) -> None:
    with unique_violation_as(_taken(row["name"])):
        conn.execute(provisioning_rules.insert().values(**row))


def find(conn: sa.Connection, *, account_id: int, rule_id: str, lock: bool = False) -> Any:
    """The account's rule (locked for the transaction with ``lock``); NotFound for any other."""
    query = sa.select(provisioning_rules).where(
        provisioning_rules.c.id == rule_id, provisioning_rules.c.account_id == account_id
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"No rule {rule_id!r} in this account.", code="rule_not_found")
    return row


def update(conn: sa.Connection, rule_id: str, **values: Any) -> None:
    with unique_violation_as(_taken(values.get("name"))):
        conn.execute(
            provisioning_rules.update().where(provisioning_rules.c.id == rule_id).values(**values)
        )


def delete(conn: sa.Connection, rule_id: str) -> None:
    conn.execute(provisioning_rules.delete().where(provisioning_rules.c.id == rule_id))


def page(
    conn: sa.Connection,
    *,
    account_id: int,
    view: Callable[[Any], V],
    limit: int,
    token: str | None,
) -> Page[V]:
    """The account's rules in the order they were made, a page at a time."""
    return paging.account_page(
        conn, provisioning_rules, account_id, view=view, limit=limit, token=token
    )


# --- provisioning tags -----------------------------------------------------------------------


def add_tag(conn: sa.Connection, row: dict[str, Any]) -> None:
    with unique_violation_as(
        AlreadyExists(f"The tag {row['tag']!r} exists already.", code="tag_exists")
    ):
        conn.execute(provisioning_tags.insert().values(**row))


def tag_page(
    conn: sa.Connection, *, account_id: int, view: Callable[[Any], V], limit: int, token: str | None
) -> Page[V]:
    """The account's tags in the order they were declared, a page at a time."""
    return paging.account_page(
        conn, provisioning_tags, account_id, view=view, limit=limit, token=token
    )
