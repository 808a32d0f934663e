"""Moving an MQTT device to another account, as ESF re-provisions a gateway.

The owner or an admin of the device's account names the target account. The device leaves the
source (its plan dropped, the target's rules applied by its tags) and gets a provision request
in the target; a control message signed by the source account's key tells it the target's
broker, its one-time credentials and the target account's CA, so that it checks the target
broker's certificate against that CA before it moves, and refuses a target it cannot trust. It
keeps its old production identity until the new one has connected.

The broker client is made before the move is stored, and deleted again if storing fails:
nothing is half-applied. The control message goes out once the move is stored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto import control_messages
from zerotouch.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.values import Permission
from zerotouch.protocols import mqtt_topics
from zerotouch.services import mqtt_provisioning as requests
from zerotouch.services import rules
from zerotouch.services.audit import audit_event
from zerotouch.services.devices import apply_rules
from zerotouch.services.mqtt_accounts import endpoints, signer
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import accounts as accounts_store
from zerotouch.store import authorities
from zerotouch.store import devices as devices_store
from zerotouch.store import mqtt as store
from zerotouch.store.db import Connection
from zerotouch.store.events import record_event

log = logging.getLogger(__name__)

CONTROL = "reprovision"


@dataclass(frozen=True, slots=True)
class Move:
    """What a move was checked to be: who, from where, to where, with which credentials."""

    device_id: str
    client_id: str
    username: str
    source: str
    target: str
    target_id: int


@dataclass(frozen=True, slots=True)
class Moved:
    device_id: str
    target_account: str
    provision_request_id: str
    control_sent: bool


async def move_device(
    rt: Runtime,
    broker: requests.Broker | None,
    *,
    principal: Principal,
    device_id: str,
    target_account: str,
) -> Moved:
    principal.require(Permission.MANAGE_PLATFORM)
    with_broker = requests.need_broker(broker)
    move = await asyncio.to_thread(_checked, rt, principal, device_id, target_account)
    password = secrets.token_urlsafe(24)
    await with_broker.create_one_time(
        account=move.target, client_id=move.client_id, username=move.username, password=password
    )
    try:
        request_id, topic, payload = await asyncio.to_thread(_store, rt, principal, move, password)
    except BaseException:
        await with_broker.delete_one_time(username=move.username, client_id=move.client_id)
        raise
    try:
        await with_broker.publish(topic, payload)
        sent = True
    except Exception as exc:
        log.warning("the move of %s: the control message did not go out: %s", device_id, exc)
        sent = False
    return Moved(device_id, move.target, request_id, sent)


def _checked(rt: Runtime, principal: Principal, device_id: str, target: str) -> Move:
    with rt.db.read() as conn:
        return _check(conn, principal, device_id, target)


def _check(conn: Connection, principal: Principal, device_id: str, target: str) -> Move:
    device = devices_store.device_for_account(
        conn, account_id=principal.account_id, device_id=device_id
    )
    identity = store.identity(conn, device.id)
    if identity is None:
        raise FailedPrecondition(
            "The device has no MQTT identity: it provisions over MQTT first.",
            code="mqtt_identity_not_found",
        )
    if identity.revoked_at is not None:
        raise FailedPrecondition("The device's MQTT identity is revoked.", code="device_revoked")
    account = accounts_store.by_name(conn, target)
    if account is None:
        raise NotFound(f"No account {target!r}.", code="account_not_found")
    if account.id == principal.account_id:
        raise InvalidArgument.for_field("targetAccount", "is the device's account already")
    if not mqtt_topics.is_level(target):
        raise InvalidArgument.for_field("targetAccount", "its name is not a topic level")
    if authorities.find(conn, account.id) is None:
        raise FailedPrecondition(
            "The target account has no certificate authority: its brokers have no trust anchor.",
            code="certificate_authority_not_found",
        )
    active = store.active_request(conn, device.id)
    username = active.username if active else requests.default_username(device, identity.client_id)
    source = accounts_store.name_of(conn, principal.account_id)
    return Move(device_id, identity.client_id, username, source, target, account.id)


def _store(rt: Runtime, principal: Principal, move: Move, password: str) -> tuple[str, str, bytes]:
    now = rt.clock()
    control_id = str(uuid.uuid4())
    with rt.db.write() as conn:
        if _check(conn, principal, move.device_id, move.target) != move:
            raise FailedPrecondition("The device changed while it was moved; try again.")
        device = devices_store.device_for_account(
            conn, account_id=principal.account_id, device_id=move.device_id, lock=True
        )
        active = store.active_request(conn, device.id)
        if active is not None:
            store.end_request(conn, active.id, "CANCELLED", now)
            store.broker_done(conn, active.id)  # Replaced by the target's client.
        status = device_transition(
            DeviceStatus(device.status),
            DeviceEvent.REPROVISION,
            previous=DeviceStatus(device.blocked_from) if device.blocked_from else None,
        )
        dropped = devices_store.drop_plan(conn, device.id)
        devices_store.update(
            conn, device.id, account_id=move.target_id, status=status.value, updated_at=now
        )
        moved = {"from": move.source, "to": move.target, "droppedCommands": dropped}
        audit_event(conn, principal, at=now, event=("device.moved", move.device_id, moved))
        arrival = Principal(move.target_id, principal.role, principal.key_id, principal.local)
        audit_event(conn, arrival, at=now, event=("device.moved_in", move.device_id, moved))
        tags = devices_store.tags_of(conn, [device.id])[device.id]
        apply_rules(
            rt, conn, arrival, device, rules.matching_rules(conn, move.target_id, tags), now
        )
        view = requests.add_request(
            rt,
            conn,
            device,
            requests.NewRequest(client_id=move.client_id, username=move.username),
            move.target_id,
            now + requests.DEFAULT_LIFETIME,
            now,
            principal.actor,
            moved=(principal.account_id, device.status, control_id),
        )
        target_ca = authorities.find(conn, move.target_id).certificate_pem
        device_url, _ = endpoints(rt, conn, move.target_id)
        private, _ = signer(rt, conn, principal.account_id)
    topic = mqtt_topics.control_topic(move.source, move.client_id, CONTROL)
    body: dict[str, Any] = {
        "targetAccount": move.target,
        "brokerUrl": device_url,
        "username": move.username,
        "password": password,
        "clientId": move.client_id,
        "ca": target_ca,
    }
    payload = control_messages.sign(
        private, topic, body, now=now.timestamp(), request_id=control_id
    )
    rt.wakeups.notify(device.id)
    return view.id, topic, payload


async def refused(
    rt: Runtime, broker: requests.Broker, *, account: str, client_id: str, answer: dict[str, Any]
) -> None:
    """The device's answer to a move's control message (on ``<account>/<client-id>/PROV-V1/
    REPLY/<control-id>``): a refusal takes the move back, the device in its old account with
    its old status, the new account's request cancelled and its broker client deleted."""
    if answer.get("ok") is not False or not isinstance(answer.get("requestId"), str):
        return
    row = await asyncio.to_thread(_take_back, rt, account, client_id, answer)
    if row is not None:
        await requests.remove_client(rt, broker, row)


def _take_back(rt: Runtime, account: str, client_id: str, answer: dict[str, Any]) -> Any:
    now = rt.clock()
    with rt.db.write() as conn:
        row = store.moved_request(conn, client_id, answer["requestId"])
        if row is None or row.moved_from is None:
            return None
        if accounts_store.name_of(conn, row.moved_from) != account:
            return None  # Only the account the device came from hears its refusal.
        if not store.end_request(conn, row.id, "CANCELLED", now):
            return None
        devices_store.drop_plan(conn, row.device_pk)
        devices_store.update(
            conn, row.device_pk, account_id=row.moved_from, status=row.moved_status, updated_at=now
        )
        device_id = devices_store.by_pk(conn, row.device_pk).device_id
        reason = {"code": str(answer.get("code"))[:64], "detail": str(answer.get("detail"))[:512]}
        for account_id in (row.account_id, row.moved_from):
            record_event(
                conn,
                account_id=account_id,
                actor=f"device:{device_id}",
                at=now,
                event=("device.move_refused", device_id, {"requestId": row.id, **reason}),
            )
        return row
