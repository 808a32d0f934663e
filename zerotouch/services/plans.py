"""A device's provisioning plan: ordered commands, their lifecycle and write-only secrets."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from zerotouch.domain.commands import MAX_COMMANDS_PER_DEVICE, CommandType, split_secrets
from zerotouch.domain.errors import ResourceExhausted
from zerotouch.domain.lifecycle import (
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)
from zerotouch.domain.values import Permission
from zerotouch.domain.views import CommandView
from zerotouch.services.audit import audit_event
from zerotouch.services.requests import check_description, parse_request
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as device_store
from zerotouch.store import plans as store
from zerotouch.store.db import Connection
from zerotouch.store.devices import device_for_account
from zerotouch.store.plans import next_position

SECRETS_PURPOSE = "commands.secrets"


def command_view(row: Any) -> CommandView:
    return CommandView(
        id=row.id,
        description=row.description,
        request=row.request,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        response=row.response,
    )


def queue_commands(
    rt: Runtime,
    conn: Connection,
    *,
    device_pk: int,
    planned: Sequence[tuple[str, CommandType, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Append (description, type, params) to a device's plan; refuses past the per-device limit."""
    count, position = next_position(conn, device_pk)
    if count + len(planned) > MAX_COMMANDS_PER_DEVICE:
        raise ResourceExhausted(
            f"A device holds at most {MAX_COMMANDS_PER_DEVICE} commands; it has {count} and "
            f"{len(planned)} more were asked for.",
            code="command_limit_reached",
        )
    now = rt.clock()
    rows = []
    for offset, (description, command_type, params) in enumerate(planned):
        public, secrets = split_secrets(command_type, params)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "device_pk": device_pk,
                "position": position + offset,
                "description": description,
                "type": command_type.value,
                "request": {command_type.value: public},
                "secrets_sealed": rt.keyring.seal(json.dumps(secrets), SECRETS_PURPOSE)
                if secrets
                else None,
                "status": CommandStatus.PENDING.value,
                "response": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        store.add(conn, rows)
    return rows


def add_command(
    rt: Runtime,
    *,
    principal: Principal,
    device_id: str,
    description: str | None,
    request: Mapping[str, Any],
) -> CommandView:
    """Append a command (``{"<type>": {...}}``, checked here by its type) to the device's
    plan."""
    principal.require(Permission.WRITE_DEVICES)
    text = check_description(description)
    command_type, params = parse_request(request)
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        (row,) = queue_commands(
            rt, conn, device_pk=device.id, planned=[(text, command_type, params)]
        )
        audit_event(
            conn,
            principal,
            at=row["created_at"],
            event=("command.created", device_id, {"commandId": row["id"], "type": row["type"]}),
        )
    rt.wakeups.notify(device.id)
    return CommandView(
        id=row["id"],
        description=text,
        request=row["request"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        response=None,
    )


def list_commands(rt: Runtime, *, principal: Principal, device_id: str) -> list[CommandView]:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        device = device_for_account(conn, account_id=principal.account_id, device_id=device_id)
        return [command_view(r) for r in store.of_device(conn, device.id)]


def _command(conn: Connection, device_pk: int, command_id: str) -> Any:
    return store.find(conn, device_pk, command_id)


def get_command(
    rt: Runtime, *, principal: Principal, device_id: str, command_id: str
) -> CommandView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        device = device_for_account(conn, account_id=principal.account_id, device_id=device_id)
        return command_view(_command(conn, device.id, command_id))


def delete_command(rt: Runtime, *, principal: Principal, device_id: str, command_id: str) -> None:
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        row = _command(conn, device.id, command_id)
        command_transition(CommandStatus(row.status), CommandEvent.DELETE)
        store.delete(conn, command_id)
        audit_event(
            conn,
            principal,
            at=rt.clock(),
            event=("command.deleted", device_id, {"commandId": command_id}),
        )


def reset_command(
    rt: Runtime, *, principal: Principal, device_id: str, command_id: str
) -> CommandView:
    return _settle(rt, principal, device_id, command_id, CommandEvent.RESET)


def skip_command(
    rt: Runtime, *, principal: Principal, device_id: str, command_id: str
) -> CommandView:
    return _settle(rt, principal, device_id, command_id, CommandEvent.SKIP)


def _settle(
    rt: Runtime, principal: Principal, device_id: str, command_id: str, event: CommandEvent
) -> CommandView:
    """Reset or skip a command; a device held in ERROR by it goes back to PROVISIONING."""
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        row = _command(conn, device.id, command_id)
        was = CommandStatus(row.status)
        status = command_transition(was, event)
        now = rt.clock()
        store.update(conn, command_id, status=status.value, updated_at=now)
        audit_event(
            conn,
            principal,
            at=now,
            event=(
                f"command.{status.value.lower()}",
                device_id,
                {"commandId": command_id, "from": was.value},
            ),
        )
        if was is CommandStatus.FAILED:
            _resolve_error(conn, principal, device, now)
        view = command_view(_command(conn, device.id, command_id))
    rt.wakeups.notify(device.id)
    return view


def _resolve_error(conn: Connection, principal: Principal, device: Any, now: dt.datetime) -> None:
    """Lift ERROR once no command of the device is FAILED any more (also while BLOCKED)."""
    still_failed = store.failed_count(conn, device.id)
    status = DeviceStatus(device.status)
    blocked_in_error = (
        status is DeviceStatus.BLOCKED and device.blocked_from == DeviceStatus.ERROR.value
    )
    if still_failed or (status is not DeviceStatus.ERROR and not blocked_in_error):
        return
    new = device_transition(DeviceStatus.ERROR, DeviceEvent.RESOLVE)
    column = "blocked_from" if blocked_in_error else "status"
    device_store.update(conn, device.id, **{column: new.value, "updated_at": now})
    audit_event(
        conn,
        principal,
        at=now,
        event=("device.resumed", device.device_id, {"from": "ERROR", "to": new.value}),
    )
