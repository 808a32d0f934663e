"""The device fetches its plan: the next commands after its cursor, marked IN_PROGRESS.

API.md, Device API. Commands after the cursor go out in order, at most ``limit``, and a CSR the
account CA is to sign ends its batch (its certificate comes in the next one). A device that
fetches again after a crash gets its IN_PROGRESS commands again. A fetch works on the plan read
for it by its group of device calls, and stages its changes there (services/device_calls.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from zerotouch.domain.commands import CommandType
from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.lifecycle import (
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)
from zerotouch.protocols.device_messages import CommandOut, Fitted
from zerotouch.services.device_auth import DeviceCaller
from zerotouch.services.device_calls import OPEN, Call
from zerotouch.services.plans import SECRETS_PURPOSE
from zerotouch.services.requests import csr_subject
from zerotouch.services.runtime import Runtime
from zerotouch.store import device_calls as store

MAX_LIMIT = 20
DEFAULT_LIMIT = 10
PENDING, IN_PROGRESS = CommandStatus.PENDING.value, CommandStatus.IN_PROGRESS.value


class Fit(Protocol):
    """A front-end's choice of how many of the next commands go out at once (the buffers of
    the device it serves), and why the first can never go, if it cannot."""

    def __call__(self, commands: Sequence[CommandOut]) -> Fitted: ...


def fetch_commands(
    rt: Runtime, after: str | None, limit: int, call: Call, fit: Fit | None = None
) -> list[CommandOut]:
    """The next commands after ``after``, marked IN_PROGRESS; empty when there is nothing to do
    (also while the device is in ERROR). With ``fit``, only as many as fit the device; a
    command that never can fails instead (the device goes to ERROR). Runs in its group of
    device calls (services/device_calls.py), on the plan read for it."""
    start = 0
    if after is not None:
        cursor = next((row for row in call.plan if row.id == after), None)
        if cursor is None:
            raise InvalidArgument.for_field("after", "is not a command of this device")
        start = cursor.position
    upcoming = [row for row in call.plan if row.position > start and row.status in OPEN][:limit]
    batch = _cut(upcoming)
    if call.device.status == DeviceStatus.ERROR.value:
        batch = []
    out = [_command_out(rt, row, call.caller.device_id) for row in batch]
    if fit is not None and out:
        fitted = fit(out)
        if fitted.refused is not None:
            _refuse(call, batch[0], fitted.refused)
            return []
        batch, out = batch[: fitted.count], out[: fitted.count]
    if batch:
        _dispatch(call, batch)
    return out


def has_commands(rt: Runtime, *, caller: DeviceCaller, after: str | None) -> bool:
    """Whether a fetch would find work now (a read only: long polls ask this while waiting)."""
    with rt.db.read() as conn:
        status = store.status_of(conn, caller.device_pk)
        if status in (DeviceStatus.ERROR.value, DeviceStatus.BLOCKED.value):
            return False
        return store.has_open_after(conn, caller.device_pk, after)


def params_of(row: Any) -> dict[str, Any]:
    params: dict[str, Any] = row.request[row.type]
    return params


def _cut(rows: list[Any]) -> list[Any]:
    for index, row in enumerate(rows):
        # The certificate the CA signs comes in the next batch, right behind its CSR.
        if row.type == CommandType.CERTIFICATE_SIGNING_REQUEST and params_of(row).get("sign"):
            return rows[: index + 1]
    return rows


def _dispatch(call: Call, batch: list[Any]) -> None:
    for row in batch:
        event = CommandEvent.DISPATCH if row.status == PENDING else CommandEvent.REDISPATCH
        dispatched = command_transition(CommandStatus(row.status), event)
        if dispatched.value != row.status:
            call.change(row.id, status=dispatched.value)
    was = DeviceStatus(call.device.status)
    status = device_transition(was, DeviceEvent.FETCH)
    if status is not was:
        call.move_device(status)
    call.event(
        "commands.dispatched",
        {"commandIds": [r.id for r in batch], "from": was.value, "to": status.value},
    )


def _refuse(call: Call, row: Any, reason: str) -> None:
    """The command can never go to this device: it fails there, as if the device had failed
    it, and the commands it holds go back to PENDING behind it."""
    dispatch = CommandEvent.DISPATCH if row.status == PENDING else CommandEvent.REDISPATCH
    failed = command_transition(
        command_transition(CommandStatus(row.status), dispatch), CommandEvent.FAIL
    )
    call.change(row.id, status=failed.value, response={"error": {"message": reason}})
    for other in call.plan:
        if other.status == IN_PROGRESS and other.id != row.id:
            call.change(other.id, status=PENDING)
    call.event("command.failed", {"commandId": row.id, "message": reason})
    was = DeviceStatus(call.device.status)
    status = device_transition(device_transition(was, DeviceEvent.FETCH), DeviceEvent.FAIL)
    call.move_device(status)
    call.event(f"device.{status.value.lower()}", {"from": was.value, "to": status.value})


def _command_out(rt: Runtime, row: Any, device_id: str) -> CommandOut:
    params = dict(params_of(row))
    if row.type == CommandType.CERTIFICATE_SIGNING_REQUEST:
        params["attributes"] = csr_subject(params["attributes"], device_id)
    if row.secrets_sealed:
        params.update(json.loads(rt.keyring.open(row.secrets_sealed, SECRETS_PURPOSE)))
    return CommandOut(row.id, row.type, params)
