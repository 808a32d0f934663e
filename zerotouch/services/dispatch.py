"""The device fetches its plan: the next commands after its cursor, marked IN_PROGRESS.

API.md, Device API. Commands after the cursor go out in order, at most ``limit``, and a CSR the
account CA is to sign ends its batch (its certificate comes in the next one). A device that
fetches again after a crash gets its IN_PROGRESS commands again. A fetch's reads (with the jti and
the device lock) go out together, then its writes; fetches that arrive together share one
transaction (see run_device_calls).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

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
from zerotouch.protocols.device_messages import CommandOut
from zerotouch.services.device_auth import DeviceCaller, device_call
from zerotouch.services.plans import SECRETS_PURPOSE
from zerotouch.services.runtime import Runtime
from zerotouch.store.fast import FastStatement
from zerotouch.store.queries import send_event
from zerotouch.store.schema import commands, devices

MAX_LIMIT = 20
DEFAULT_LIMIT = 10
PENDING, IN_PROGRESS = CommandStatus.PENDING.value, CommandStatus.IN_PROGRESS.value
OPEN_STATUSES = [sa.literal(PENDING), sa.literal(IN_PROGRESS)]

# Devices call these many times a second: built once (see store/fast.py).
_b = sa.bindparam
_cursor = commands.alias("cursor")
# What a device call needs of a command (the rest, such as its times, costs conversions).
COMMAND_COLUMNS = (
    commands.c.id,
    commands.c.position,
    commands.c.type,
    commands.c.request,
    commands.c.secrets_sealed,
    commands.c.status,
)
_POSITION = FastStatement(
    sa.select(commands.c.position).where(
        commands.c.id == _b("after"), commands.c.device_pk == _b("device_pk")
    )
)
# Open commands after the cursor. No cursor (NULL) means from the start; an unknown one
# finds nothing, and only then is the cursor looked up (to answer 422 rather than 204).
_NEXT = FastStatement(
    sa.select(*COMMAND_COLUMNS)
    .where(
        commands.c.device_pk == _b("device_pk"),
        commands.c.position
        > sa.case(
            (_b("after", type_=sa.String) == sa.null(), 0),
            else_=sa.select(_cursor.c.position)
            .where(_cursor.c.id == _b("after"), _cursor.c.device_pk == _b("device_pk"))
            .scalar_subquery(),
        ),
        commands.c.status.in_(OPEN_STATUSES),
    )
    .order_by(commands.c.position)
    .limit(_b("limit"))
)
_MARK_DISPATCHED = FastStatement(
    commands.update()
    .where(
        commands.c.device_pk == _b("device_pk"),
        commands.c.status == PENDING,
        commands.c.position.between(_b("first"), _b("last")),
    )
    .values(status=IN_PROGRESS, updated_at=_b("now"))
)
SET_DEVICE_STATUS = FastStatement(
    devices.update()
    .where(devices.c.id == _b("device_pk"))
    .values(status=_b("status"), updated_at=_b("now"))
)
_DEVICE_STATUS = FastStatement(sa.select(devices.c.status).where(devices.c.id == _b("device_pk")))


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument.for_field("limit", f"must be 1-{MAX_LIMIT}")
    return limit


def fetch_commands(
    rt: Runtime, caller: DeviceCaller, after: str | None, limit: int, conn: sa.Connection
) -> list[CommandOut]:
    """The next commands after ``after``, marked IN_PROGRESS; empty when there is nothing to do
    (also while the device is in ERROR). Runs in a device call's write transaction (see
    run_device_calls)."""
    check_limit(limit)
    params = {"device_pk": caller.device_pk, "after": after, "limit": limit}
    with device_call(conn, caller) as hold:
        upcoming = _NEXT.send(conn, params)
        device = hold.row()
        rows = upcoming.rows()
    if not rows and after is not None and not _POSITION.run(conn, params):
        raise InvalidArgument.for_field("after", "is not a command of this device")
    batch = _cut(rows)
    if device.status == DeviceStatus.ERROR.value:
        batch = []
    if batch:
        _dispatch(rt, conn, caller, device, batch)
    return [_command_out(rt, row) for row in batch]


def has_commands(rt: Runtime, *, caller: DeviceCaller, after: str | None) -> bool:
    """Whether a fetch would find work now (a read only: long polls ask this while waiting)."""
    with rt.db.read() as conn:
        (row,) = _DEVICE_STATUS.run(conn, {"device_pk": caller.device_pk})
        if row.status in (DeviceStatus.ERROR.value, DeviceStatus.BLOCKED.value):
            return False
        return bool(_NEXT.run(conn, {"device_pk": caller.device_pk, "after": after, "limit": 1}))


def params_of(row: Any) -> dict[str, Any]:
    params: dict[str, Any] = row.request[row.type]
    return params


def _cut(rows: list[Any]) -> list[Any]:
    for index, row in enumerate(rows):
        # The certificate the CA signs comes in the next batch, right behind its CSR.
        if row.type == CommandType.CERTIFICATE_SIGNING_REQUEST and params_of(row).get("sign"):
            return rows[: index + 1]
    return rows


def _dispatch(
    rt: Runtime, conn: sa.Connection, caller: DeviceCaller, device: Any, batch: list[Any]
) -> None:
    now = rt.clock()
    for row in batch:
        event = CommandEvent.DISPATCH if row.status == PENDING else CommandEvent.REDISPATCH
        command_transition(CommandStatus(row.status), event)
    # The batch is every open command between its first and last: one UPDATE marks them all.
    _MARK_DISPATCHED.send(
        conn,
        {
            "device_pk": caller.device_pk,
            "first": batch[0].position,
            "last": batch[-1].position,
            "now": now,
        },
    )
    was = DeviceStatus(device.status)
    status = device_transition(was, DeviceEvent.FETCH)
    if status is not was:
        SET_DEVICE_STATUS.send(
            conn, {"device_pk": caller.device_pk, "status": status.value, "now": now}
        )
    send_event(
        conn,
        account_id=caller.account_id,
        actor=caller.actor,
        at=now,
        event=(
            "commands.dispatched",
            caller.device_id,
            {"commandIds": [r.id for r in batch], "from": was.value, "to": status.value},
        ),
    )


def _command_out(rt: Runtime, row: Any) -> CommandOut:
    params = dict(params_of(row))
    if row.secrets_sealed:
        params.update(json.loads(rt.keyring.open(row.secrets_sealed, SECRETS_PURPOSE)))
    return CommandOut(row.id, row.type, params)
