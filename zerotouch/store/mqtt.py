"""Provisioning over MQTT: identities, provision requests, accounts' broker settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from zerotouch.domain.errors import AlreadyExists, NotFound
from zerotouch.store.db import unique_violation_as
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import (
    accounts,
    devices,
    mqtt_accounts,
    mqtt_identities,
    mqtt_provision_requests,
)

ACTIVE = "ACTIVE"
requests = mqtt_provision_requests


def identity(conn: sa.Connection, device_pk: int) -> Any:
    return conn.execute(
        sa.select(mqtt_identities).where(mqtt_identities.c.device_pk == device_pk)
    ).first()


def add_identity(conn: sa.Connection, device_pk: int, client_id: str, now: dt.datetime) -> None:
    taken = AlreadyExists(
        f"The client ID {client_id!r} belongs to another device.", code="client_id_taken"
    )
    with unique_violation_as(taken):
        conn.execute(
            mqtt_identities.insert().values(
                device_pk=device_pk, client_id=client_id, created_at=now
            )
        )


def revoke_identity(conn: sa.Connection, device_pk: int, now: dt.datetime) -> None:
    conn.execute(
        mqtt_identities.update()
        .where(mqtt_identities.c.device_pk == device_pk)
        .values(revoked_at=now)
    )


def add_request(conn: sa.Connection, **row: Any) -> None:
    conn.execute(requests.insert().values(**row))


def request_by_id(conn: sa.Connection, request_id: str) -> Any:
    return conn.execute(sa.select(requests).where(requests.c.id == request_id)).one()


def active_request(conn: sa.Connection, device_pk: int) -> Any:
    return conn.execute(
        sa.select(requests).where(requests.c.device_pk == device_pk, requests.c.state == ACTIVE)
    ).first()


def request_of(conn: sa.Connection, account_id: int, device_pk: int, request_id: str) -> Any:
    row = conn.execute(
        sa.select(requests).where(
            requests.c.id == request_id,
            requests.c.account_id == account_id,
            requests.c.device_pk == device_pk,
        )
    ).first()
    if row is None:
        raise NotFound(f"No provision request {request_id!r}.", code="provision_request_not_found")
    return row


def requests_of(conn: sa.Connection, account_id: int, device_pk: int) -> list[Any]:
    return list(
        conn.execute(
            sa.select(requests)
            .where(requests.c.account_id == account_id, requests.c.device_pk == device_pk)
            .order_by(requests.c.created_at.desc(), requests.c.id)
        )
    )


def end_request(conn: sa.Connection, request_id: str, state: str, now: dt.datetime) -> bool:
    """ACTIVE -> ``state``; False when it had ended already (another call ended it)."""
    done = conn.execute(
        requests.update()
        .where(requests.c.id == request_id, requests.c.state == ACTIVE)
        .values(state=state, ended_at=now)
    )
    return done.rowcount == 1


def expired(conn: sa.Connection, now: dt.datetime) -> list[Any]:
    """Active requests whose time is up."""
    return list(
        conn.execute(
            sa.select(requests).where(requests.c.state == ACTIVE, requests.c.expires_at <= now)
        )
    )


def ended_on_broker(conn: sa.Connection) -> list[Any]:
    """Ended requests whose broker client may still exist."""
    return list(
        conn.execute(
            sa.select(requests).where(
                requests.c.state != ACTIVE, requests.c.broker_done == sa.false()
            )
        )
    )


def broker_done(conn: sa.Connection, request_id: str) -> None:
    conn.execute(requests.update().where(requests.c.id == request_id).values(broker_done=True))


def moved_request(conn: sa.Connection, client_id: str, control_id: str) -> Any:
    """The active request of the move that control message ``control_id`` announced to the
    device with this client ID."""
    return conn.execute(
        sa.select(requests)
        .join(mqtt_identities, mqtt_identities.c.device_pk == requests.c.device_pk)
        .where(
            mqtt_identities.c.client_id == client_id,
            requests.c.control_id == control_id,
            requests.c.state == ACTIVE,
        )
    ).first()


def prove(conn: sa.Connection, request_id: str, now: dt.datetime) -> None:
    conn.execute(requests.update().where(requests.c.id == request_id).values(proven_at=now))


# What the worker needs of the device behind a request topic: the account by name, the
# identity by client ID, the device still in that account, and its request, if one is active.
# Every request over MQTT runs it: on the driver's cursor (store/fast.py).
_CALLER = FastStatement(
    sa.select(
        devices.c.id.label("device_pk"),
        devices.c.device_id,
        devices.c.status,
        accounts.c.id.label("account_id"),
        mqtt_identities.c.revoked_at,
        requests.c.id.label("request_id"),
        requests.c.activation_required,
        requests.c.proven_at,
        requests.c.expires_at,
    )
    .select_from(
        mqtt_identities.join(devices, devices.c.id == mqtt_identities.c.device_pk)
        .join(accounts, accounts.c.id == devices.c.account_id)
        .outerjoin(
            requests,
            sa.and_(requests.c.device_pk == devices.c.id, requests.c.state == ACTIVE),
        )
    )
    .where(
        mqtt_identities.c.client_id == sa.bindparam("client_id"),
        accounts.c.name == sa.bindparam("account"),
    )
)


def caller(conn: sa.Connection, account: str, client_id: str) -> Any:
    found = _CALLER.run(conn, {"account": account, "client_id": client_id})
    return found[0] if found else None


def request_context(conn: sa.Connection, account_id: int, device_pk: int) -> Any:
    """In one statement, what a new provision request checks: the account's name, the device's
    identity (client ID, revoked), whether a request is active, the account's settings."""
    active = (
        sa.select(requests.c.id)
        .where(requests.c.device_pk == device_pk, requests.c.state == ACTIVE)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        sa.select(
            accounts.c.name,
            mqtt_identities.c.client_id,
            mqtt_identities.c.revoked_at,
            active.label("active_id"),
            mqtt_accounts.c.device_url,
            mqtt_accounts.c.account_id.label("settings_id"),
        )
        .select_from(accounts)
        .outerjoin(mqtt_identities, mqtt_identities.c.device_pk == device_pk)
        .outerjoin(mqtt_accounts, mqtt_accounts.c.account_id == accounts.c.id)
        .where(accounts.c.id == account_id)
    )
    return conn.execute(query).one()


def account_settings(conn: sa.Connection, account_id: int) -> Any:
    return conn.execute(
        sa.select(mqtt_accounts).where(mqtt_accounts.c.account_id == account_id)
    ).first()


def add_account_settings(conn: sa.Connection, **row: Any) -> None:
    """The account's settings row, unless another call made it first (its key then stands)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        insert(mqtt_accounts).values(**row).on_conflict_do_nothing(index_elements=["account_id"])
    )


def set_endpoints(
    conn: sa.Connection, account_id: int, device_url: str | None, production_url: str | None
) -> None:
    conn.execute(
        mqtt_accounts.update()
        .where(mqtt_accounts.c.account_id == account_id)
        .values(device_url=device_url, production_url=production_url)
    )
