"""Provisioning over MQTT: provision requests (revocation, the sweep and moves are in
mqtt_identities.py and mqtt_moves.py).

A provision request gives a claimed device one-time broker credentials: the broker client is
made through Mosquitto's dynamic-security plugin (adapters/mqtt/dynsec.py), bound to the
device's client ID and allowed only its own topics, and deleted when the device is
PROVISIONED, when the request is cancelled and when it expires (the sweep, every few seconds).
The password is shown once and never stored; the request's states are audit events.

The broker is behind ``Broker``: the MQTT front-end implements it, and a server without one
refuses these calls (503).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

from zerotouch.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from zerotouch.domain.values import Permission
from zerotouch.protocols import mqtt_topics
from zerotouch.services.device_auth import DEVICE_SECRET_PURPOSE
from zerotouch.services.mqtt_accounts import endpoints, signer
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import accounts as accounts_store
from zerotouch.store import devices as devices_store
from zerotouch.store import mqtt as store
from zerotouch.store.db import Connection
from zerotouch.store.events import record_event

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = dt.timedelta(hours=24)
MAX_LIFETIME = dt.timedelta(days=30)
USERNAME_MAX = 128
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2}){16,64}$")
_RESERVED = ("zerotouch-", "zt-")


class Broker(Protocol):
    """What the services ask of the broker (adapters/mqtt)."""

    async def create_one_time(
        self, *, account: str, client_id: str, username: str, password: str
    ) -> None: ...

    async def delete_one_time(self, *, username: str, client_id: str) -> None: ...

    async def deny(self, common_name: str) -> None: ...

    async def publish(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ProvisionRequestView:
    id: str
    device_id: str
    state: str
    account_name: str
    client_id: str
    username: str
    broker_url: str | None
    activation_required: bool
    expires_at: dt.datetime
    created_at: dt.datetime
    ended_at: dt.datetime | None
    password: str | None = None  # Only in the answer that made the request.


def need_broker(broker: Broker | None) -> Broker:
    if broker is None:
        raise FailedPrecondition(
            "This server has no MQTT broker (set ZEROTOUCH_MQTT_URL).", code="mqtt_not_configured"
        )
    return broker


def default_client_id(device: Any) -> str:
    """The device's MAC without ':' (as ESF's default), else its id's letters and digits."""
    if device.mac:
        return str(device.mac).upper()
    return re.sub(r"[^0-9A-Za-z]", "", device.device_id)[:23]


def default_username(device: Any, client_id: str) -> str:
    """ESF's MAC-serial form: the MAC (else the client ID), ``-``, the serial (else
    ``provision``). Never a client ID, so never the CN of a production certificate: the broker
    kicks every session of a username whose client it deletes."""
    serial = device.serial or "provision"
    return f"{str(device.mac).upper() if device.mac else client_id}-{serial}"


def _check_username(username: str) -> None:
    if not 1 <= len(username) <= USERNAME_MAX or not username.isprintable():
        raise InvalidArgument.for_field(
            "username", f"must be 1-{USERNAME_MAX} printable characters"
        )
    if username.startswith(_RESERVED):
        raise InvalidArgument.for_field("username", "must not start with zerotouch- or zt-")
    if mqtt_topics.CLIENT_ID.match(username):
        # Letters and digits alone could be a device's client ID, its certificate's CN.
        raise InvalidArgument.for_field(
            "username", "must hold a character other than 0-9 a-z A-Z (as MAC-serial does)"
        )


def _view(row: Any, device_id: str, account: str, url: str | None) -> ProvisionRequestView:
    return ProvisionRequestView(
        id=row.id,
        device_id=device_id,
        state=row.state,
        account_name=account,
        client_id=row.client_id,
        username=row.username,
        broker_url=url,
        activation_required=row.activation_required,
        expires_at=row.expires_at,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )


@dataclass(frozen=True, slots=True)
class NewRequest:
    activation_key: str | None = None
    expires_at: dt.datetime | None = None
    client_id: str | None = None
    username: str | None = None


async def create_request(
    rt: Runtime, broker: Broker | None, *, principal: Principal, device_id: str, new: NewRequest
) -> ProvisionRequestView:
    """One-time credentials for a claimed device: stored first (of two calls racing for one
    device, one wins), then made on the broker; a broker that does not answer leaves the
    request ended (503)."""
    principal.require(Permission.WRITE_DEVICES)
    live = need_broker(broker)
    now = rt.clock()
    expires = new.expires_at or now + DEFAULT_LIFETIME
    if expires.tzinfo is None:
        raise InvalidArgument.for_field("expiresAt", "must carry a time zone")
    if not now < expires <= now + MAX_LIFETIME:
        raise InvalidArgument.for_field("expiresAt", "must be in the future, at most 30 days on")
    password = secrets.token_urlsafe(24)
    view = await asyncio.to_thread(
        _store_request,
        rt,
        device_id,
        new,
        account_id=principal.account_id,
        expires=expires,
        now=now,
        actor=principal.actor,
    )
    try:
        await live.create_one_time(
            account=view.account_name,
            client_id=view.client_id,
            username=view.username,
            password=password,
        )
    except Exception as exc:
        log.warning("the broker did not make the client of provision request %s: %s", view.id, exc)
        # The sweep deletes whatever of the username the broker may hold.
        await asyncio.to_thread(end_request, rt, view.id, "FAILED", principal.actor)
        raise Unavailable(
            "The MQTT broker did not take the credentials.", code="broker_unavailable"
        ) from None
    return dataclasses.replace(view, password=password)


def _store_request(
    rt: Runtime,
    device_id: str,
    new: NewRequest,
    *,
    account_id: int,
    expires: dt.datetime,
    now: dt.datetime,
    actor: str,
) -> ProvisionRequestView:
    with rt.db.write() as conn:
        device = devices_store.device_for_account(
            conn, account_id=account_id, device_id=device_id, lock=True
        )
        return add_request(rt, conn, device, new, account_id, expires, now, actor)


def add_request(
    rt: Runtime,
    conn: Connection,
    device: Any,
    new: NewRequest,
    account_id: int,
    expires: dt.datetime,
    now: dt.datetime,
    actor: str,
    moved: tuple[int, str, str] | None = None,
) -> ProvisionRequestView:
    """``moved``: the request of a move (the source account, the status the device had there,
    the id of the control message that tells it)."""
    found = store.request_context(conn, account_id, device.id)
    account = found.name
    if not mqtt_topics.is_level(account):
        raise InvalidArgument.for_field(
            "account", "its name is not a topic level (no / + # and no leading $)"
        )
    if new.activation_key is not None:
        _check_activation_key(rt, device, new.activation_key)
    if found.revoked_at is not None:
        raise FailedPrecondition("The device's MQTT identity is revoked.", code="device_revoked")
    client_id = found.client_id or new.client_id or default_client_id(device)
    if not mqtt_topics.CLIENT_ID.match(client_id):
        raise InvalidArgument.for_field("clientId", "must be 1-23 characters of 0-9 a-z A-Z")
    if found.client_id is not None and new.client_id not in (None, client_id):
        raise InvalidArgument.for_field("clientId", f"the device's client ID is {client_id}")
    username = new.username or default_username(device, client_id)
    _check_username(username)
    if found.active_id is not None:
        raise AlreadyExists(
            "The device has an active provision request; cancel it first.",
            code="provision_request_active",
        )
    if found.client_id is None:
        store.add_identity(conn, device.id, client_id, now)
    request_id = str(uuid.uuid4())
    row = {
        "id": request_id,
        "account_id": account_id,
        "device_pk": device.id,
        "client_id": client_id,
        "username": username,
        "state": store.ACTIVE,
        "activation_required": new.activation_key is not None,
        "proven_at": None,
        "broker_done": False,
        "expires_at": expires,
        "created_at": now,
        "ended_at": None,
        "moved_from": moved[0] if moved else None,
        "moved_status": moved[1] if moved else None,
        "control_id": moved[2] if moved else None,
    }
    store.add_request(conn, **row)
    if found.settings_id is None:
        signer(rt, conn, account_id)  # The account's control key, on its first request.
    device_url = found.device_url or rt.mqtt.device_url
    data = {
        "id": request_id,
        "clientId": client_id,
        "username": username,
        "expiresAt": expires.isoformat(),
    }
    record_event(
        conn,
        account_id=account_id,
        actor=actor,
        at=now,
        event=("mqtt.request.created", device.device_id, data),
    )
    return _view(SimpleNamespace(**row), device.device_id, account, device_url)


def _check_activation_key(rt: Runtime, device: Any, given: str) -> None:
    if not _HEX.match(given):
        raise InvalidArgument.for_field(
            "activationKey", "must be the device secret: 32-128 hex digits"
        )
    if not device.device_secret_sealed:
        raise InvalidArgument.for_field("activationKey", "the device has no factory secret")
    secret = rt.keyring.open_text(device.device_secret_sealed, DEVICE_SECRET_PURPOSE)
    if not hmac.compare_digest(bytes.fromhex(secret), bytes.fromhex(given)):
        raise InvalidArgument.for_field("activationKey", "is not the device's factory secret")


def end_request(rt: Runtime, request_id: str, state: str, actor: str) -> Any:
    """End an ACTIVE request (an audit event); the row, or None when it had ended already."""
    now = rt.clock()
    with rt.db.write() as conn:
        if not store.end_request(conn, request_id, state, now):
            return None
        row = store.request_by_id(conn, request_id)
        device_id = devices_store.by_pk(conn, row.device_pk).device_id
        record_event(
            conn,
            account_id=row.account_id,
            actor=actor,
            at=now,
            event=(f"mqtt.request.{state.lower()}", device_id, {"id": request_id}),
        )
        return row


async def remove_client(rt: Runtime, broker: Broker, row: Any) -> None:
    """The request's broker client gone; the sweep tries again if the broker fails now. While
    a newer request of the device is active, its client has replaced this one's (they share
    the username), and it stays."""
    if await asyncio.to_thread(_superseded, rt, row):
        await asyncio.to_thread(_broker_done, rt, row.id)
        return
    try:
        await broker.delete_one_time(username=row.username, client_id=row.client_id)
    except Exception as exc:
        log.warning("provision request %s: the broker client stays for now: %s", row.id, exc)
        return
    await asyncio.to_thread(_broker_done, rt, row.id)


def _superseded(rt: Runtime, row: Any) -> bool:
    with rt.db.read() as conn:
        active = store.active_request(conn, row.device_pk)
    return active is not None and active.id != row.id


def _broker_done(rt: Runtime, request_id: str) -> None:
    with rt.db.write() as conn:
        store.broker_done(conn, request_id)


def list_requests(
    rt: Runtime, *, principal: Principal, device_id: str
) -> list[ProvisionRequestView]:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        device = devices_store.device_for_account(
            conn, account_id=principal.account_id, device_id=device_id
        )
        account = accounts_store.name_of(conn, principal.account_id)
        url, _ = endpoints(rt, conn, principal.account_id)
        return [
            _view(row, device_id, account, url)
            for row in store.requests_of(conn, principal.account_id, device.id)
        ]


def get_request(
    rt: Runtime, *, principal: Principal, device_id: str, request_id: str
) -> ProvisionRequestView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        device = devices_store.device_for_account(
            conn, account_id=principal.account_id, device_id=device_id
        )
        row = store.request_of(conn, principal.account_id, device.id, request_id)
        url, _ = endpoints(rt, conn, principal.account_id)
        return _view(row, device_id, accounts_store.name_of(conn, principal.account_id), url)


async def cancel_request(
    rt: Runtime, broker: Broker | None, *, principal: Principal, device_id: str, request_id: str
) -> ProvisionRequestView:
    principal.require(Permission.WRITE_DEVICES)
    await asyncio.to_thread(
        get_request, rt, principal=principal, device_id=device_id, request_id=request_id
    )
    live = need_broker(broker)
    row = await asyncio.to_thread(end_request, rt, request_id, "CANCELLED", principal.actor)
    if row is None:
        raise FailedPrecondition(
            "The provision request has ended already.", code="provision_request_ended"
        )
    await remove_client(rt, live, row)
    return await asyncio.to_thread(
        get_request, rt, principal=principal, device_id=device_id, request_id=request_id
    )
