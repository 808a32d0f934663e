"""A device's MQTT identity over its life: provisioned (its one-time client goes), revoked
(its certificate's CN on the broker's deny list, its live session kicked), and the sweep that
ends expired provision requests and deletes the broker clients of ended ones."""

from __future__ import annotations

import asyncio
from typing import Any

from zerotouch.domain.errors import NotFound
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.domain.values import Permission
from zerotouch.services import mqtt_provisioning as service
from zerotouch.services.audit import audit_event
from zerotouch.services.mqtt_provisioning import Broker
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as devices_store
from zerotouch.store import mqtt as store


async def provisioned(rt: Runtime, broker: Broker, device_pk: int) -> None:
    """The device reported ``finished``: its request succeeded, its one-time client goes."""
    row = await asyncio.to_thread(_active_of, rt, device_pk)
    if row is None:
        return
    ended = await asyncio.to_thread(service.end_request, rt, row.id, "SUCCEEDED", "system")
    if ended is not None:
        await service.remove_client(rt, broker, ended)


def _active_of(rt: Runtime, device_pk: int) -> Any:
    with rt.db.read() as conn:
        device = devices_store.by_pk(conn, device_pk)
        if device.status != DeviceStatus.PROVISIONED.value:
            return None
        return store.active_request(conn, device_pk)


async def revoke(
    rt: Runtime, broker: Broker | None, *, principal: Principal, device_id: str
) -> None:
    """The device's CN on the broker's deny list (its live session kicked), its identity
    refused by the worker, its active request cancelled."""
    principal.require(Permission.WRITE_DEVICES)
    live = service.need_broker(broker)
    identity, active = await asyncio.to_thread(_revoke, rt, principal, device_id)
    await live.deny(identity.client_id)
    if active is not None:
        row = await asyncio.to_thread(
            service.end_request, rt, active.id, "CANCELLED", principal.actor
        )
        if row is not None:
            await service.remove_client(rt, live, row)


def _revoke(rt: Runtime, principal: Principal, device_id: str) -> tuple[Any, Any]:
    now = rt.clock()
    with rt.db.write() as conn:
        device = devices_store.device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        identity = store.identity(conn, device.id)
        if identity is None:
            raise NotFound("The device has no MQTT identity.", code="mqtt_identity_not_found")
        store.revoke_identity(conn, device.id, now)
        audit_event(
            conn,
            principal,
            at=now,
            event=("mqtt.revoked", device_id, {"clientId": identity.client_id}),
        )
        return identity, store.active_request(conn, device.id)


async def sweep(rt: Runtime, broker: Broker) -> int:
    """Expired requests end (an audit event each) and every ended request's broker client is
    deleted; returns how many clients went."""
    rows = await asyncio.to_thread(_expired, rt)
    for row in rows:
        await asyncio.to_thread(service.end_request, rt, row.id, "EXPIRED", "system")
    pending = await asyncio.to_thread(_pending_on_broker, rt)
    for row in pending:
        await service.remove_client(rt, broker, row)
    return len(pending)


def _expired(rt: Runtime) -> list[Any]:
    now = rt.clock()
    with rt.db.read() as conn:
        return store.expired(conn, now)


def _pending_on_broker(rt: Runtime) -> list[Any]:
    with rt.db.read() as conn:
        return store.ended_on_broker(conn)
