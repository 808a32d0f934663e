"""The device's side of its plan: fetch the next commands, report their results.

API.md, Device API. Commands after the cursor go out in order, at most ``limit``, and a CSR the
account CA is to sign ends its batch. A failure marks the command FAILED and the device ERROR and
puts the commands behind it back to PENDING. Responses count only for commands IN_PROGRESS, so a
device that reports twice (at-least-once delivery) changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from zerotouch.crypto import ca, device_tokens, pem
from zerotouch.domain.commands import KEY_USAGE_BITS, MAX_COMMANDS_PER_DEVICE, CommandType
from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.lifecycle import (
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)
from zerotouch.protocols.device_messages import CommandOut, DeviceResponse
from zerotouch.services.authority import KEY_PURPOSE as CA_KEY_PURPOSE
from zerotouch.services.device_auth import DeviceCaller, begin_device_call
from zerotouch.services.plans import SECRETS_PURPOSE
from zerotouch.services.runtime import Runtime
from zerotouch.store.fast import FastStatement
from zerotouch.store.queries import record_events, send_event
from zerotouch.store.schema import certificate_authorities, commands, device_keys, devices

MAX_LIMIT = 20
DEFAULT_LIMIT = 10
_PENDING, _IN_PROGRESS = CommandStatus.PENDING.value, CommandStatus.IN_PROGRESS.value
_OPEN = (_PENDING, _IN_PROGRESS)
_OPEN_LITERALS = [sa.literal(_PENDING), sa.literal(_IN_PROGRESS)]

# Devices call these many times a second: built once (see store/fast.py).
_b = sa.bindparam
_POSITION = FastStatement(
    sa.select(commands.c.position).where(
        commands.c.id == _b("id"), commands.c.device_pk == _b("device_pk")
    )
)
_NEXT = FastStatement(
    sa.select(commands)
    .where(
        commands.c.device_pk == _b("device_pk"),
        commands.c.position > _b("position"),
        commands.c.status.in_(_OPEN_LITERALS),
    )
    .order_by(commands.c.position)
    .limit(_b("limit"))
)
_MARK_DISPATCHED = FastStatement(
    commands.update()
    .where(
        commands.c.device_pk == _b("device_pk"),
        commands.c.status == _PENDING,
        commands.c.position.between(_b("first"), _b("last")),
    )
    .values(status=_IN_PROGRESS, updated_at=_b("now"))
)
_SET_DEVICE_STATUS = FastStatement(
    devices.update()
    .where(devices.c.id == _b("device_pk"))
    .values(status=_b("status"), updated_at=_b("now"))
)
_DEVICE_STATUS = FastStatement(sa.select(devices.c.status).where(devices.c.id == _b("device_pk")))
_IN_PROGRESS_COMMANDS = FastStatement(
    sa.select(commands).where(
        commands.c.device_pk == _b("device_pk"), commands.c.status == _IN_PROGRESS
    )
)
_FINISH = FastStatement(
    commands.update()
    .where(commands.c.id == _b("id"))
    .values(status=_b("status"), response=_b("response"), updated_at=_b("now"))
)
_REQUEUE = FastStatement(
    commands.update()
    .where(commands.c.device_pk == _b("device_pk"), commands.c.status == _IN_PROGRESS)
    .values(status=_PENDING, updated_at=_b("now"))
)
_OPEN_COUNT = FastStatement(
    sa.select(sa.func.count().label("n")).where(
        commands.c.device_pk == _b("device_pk"), commands.c.status.in_(_OPEN_LITERALS)
    )
)
_ALL_COUNT = FastStatement(
    sa.select(sa.func.count().label("n")).where(commands.c.device_pk == _b("device_pk"))
)
_KEY_KNOWN = FastStatement(
    sa.select(device_keys.c.fingerprint).where(
        device_keys.c.device_pk == _b("device_pk"), device_keys.c.fingerprint == _b("fingerprint")
    )
)
_INSERT_KEY = FastStatement(
    device_keys.insert().values(
        {
            **{name: _b(name) for name in ("device_pk", "fingerprint", "public_key", "command_id")},
            "created_at": _b("now"),
        }
    )
)
_AUTHORITY = FastStatement(
    sa.select(
        certificate_authorities.c.certificate_pem, certificate_authorities.c.private_key_sealed
    ).where(certificate_authorities.c.account_id == _b("account_id"))
)
_SHIFT = FastStatement(
    commands.update()
    .where(commands.c.device_pk == _b("device_pk"), commands.c.position > _b("position"))
    .values(position=commands.c.position + 1)
)
_INSERT_COMMAND = FastStatement(commands.insert().values({c.name: _b(c.name) for c in commands.c}))


class ResultRefused(Exception):
    """A device reported success with a result that cannot be accepted; the command fails."""


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument.for_field("limit", f"must be 1-{MAX_LIMIT}")
    return limit


def fetch_commands(
    rt: Runtime, *, caller: DeviceCaller, after: str | None, limit: int
) -> list[CommandOut]:
    """The next commands after ``after``, marked IN_PROGRESS; empty when there is nothing to do
    (also while the device is in ERROR)."""
    check_limit(limit)
    with rt.db.write() as conn:
        device = begin_device_call(conn, caller)
        batch: list[Any] = []
        if device.status != DeviceStatus.ERROR.value:
            batch = _next_batch(conn, caller.device_pk, _cursor(conn, caller, after), limit)
        if batch:
            _dispatch(rt, conn, caller, device, batch)
    caller.consumed = True
    return [_command_out(rt, row) for row in batch]


def has_commands(rt: Runtime, *, caller: DeviceCaller, after: str | None) -> bool:
    """Whether a fetch would find work now (a read only: long polls ask this while waiting)."""
    with rt.db.read() as conn:
        (row,) = _DEVICE_STATUS.run(conn, {"device_pk": caller.device_pk})
        if row.status in (DeviceStatus.ERROR.value, DeviceStatus.BLOCKED.value):
            return False
        position = _cursor(conn, caller, after)
        return bool(_next_batch(conn, caller.device_pk, position, 1))


def _cursor(conn: sa.Connection, caller: DeviceCaller, after: str | None) -> int:
    if after is None:
        return 0
    found = _POSITION.run(conn, {"id": after, "device_pk": caller.device_pk})
    if not found:
        raise InvalidArgument.for_field("after", "is not a command of this device")
    return int(found[0].position)


def _next_batch(conn: sa.Connection, device_pk: int, position: int, limit: int) -> list[Any]:
    rows = _NEXT.run(conn, {"device_pk": device_pk, "position": position, "limit": limit})
    for index, row in enumerate(rows):
        # The certificate the CA signs comes in the next batch, right behind its CSR.
        if row.type == CommandType.CERTIFICATE_SIGNING_REQUEST and _params(row).get("sign"):
            return list(rows[: index + 1])
    return list(rows)


def _params(row: Any) -> dict[str, Any]:
    params: dict[str, Any] = row.request[row.type]
    return params


def _dispatch(
    rt: Runtime, conn: sa.Connection, caller: DeviceCaller, device: Any, batch: list[Any]
) -> None:
    now = rt.clock()
    for row in batch:
        pending = row.status == _PENDING
        command_transition(
            CommandStatus(row.status), CommandEvent.DISPATCH if pending else CommandEvent.REDISPATCH
        )
    # The batch is every open command between its first and last: one UPDATE marks them all.
    _MARK_DISPATCHED.run(
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
        _SET_DEVICE_STATUS.run(
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
    params = dict(_params(row))
    if row.secrets_sealed:
        params.update(json.loads(rt.keyring.open(row.secrets_sealed, SECRETS_PURPOSE)))
    return CommandOut(row.id, row.type, params)


@dataclass
class _Outcome:
    """What one POST of responses did to the device."""

    status: DeviceStatus
    accepted: int = 0
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


def submit_responses(rt: Runtime, *, caller: DeviceCaller, responses: list[DeviceResponse]) -> int:
    """Apply the device's results in order; returns how many were accepted."""
    with rt.db.write() as conn:
        device = begin_device_call(conn, caller)
        now = rt.clock()
        rows = {
            row.id: row for row in _IN_PROGRESS_COMMANDS.run(conn, {"device_pk": caller.device_pk})
        }
        outcome = _Outcome(DeviceStatus(device.status))
        for response in responses:
            row = rows.pop(response.id, None)
            if row is None:
                continue  # Not this device's, or not IN_PROGRESS: ignored, not counted.
            outcome.accepted += 1
            if not _apply(rt, conn, caller, row, response, outcome, now):
                break
        _settle_device(conn, caller, device, outcome, now)
        record_events(
            conn, account_id=caller.account_id, actor=caller.actor, at=now, events=outcome.events
        )
    caller.consumed = True
    return outcome.accepted


def _apply(
    rt: Runtime,
    conn: sa.Connection,
    caller: DeviceCaller,
    row: Any,
    response: DeviceResponse,
    outcome: _Outcome,
    now: dt.datetime,
) -> bool:
    """Apply one response; False when the command failed (the rest of the batch is void)."""
    message = response.error
    if response.result is not None:
        try:
            _accept_result(rt, conn, caller, row, response.result, outcome, now)
        except ResultRefused as exc:
            message = f"The result was refused: {exc}"
    if message is not None:
        _finish_command(conn, row, CommandEvent.FAIL, {"error": {"message": message}}, now)
        outcome.events.append(
            ("command.failed", caller.device_id, {"commandId": row.id, "message": message})
        )
        outcome.status = device_transition(outcome.status, DeviceEvent.FAIL)
        _REQUEUE.run(conn, {"device_pk": caller.device_pk, "now": now})
        return False
    _finish_command(conn, row, CommandEvent.SUCCEED, response.result, now)
    outcome.events.append(("command.succeeded", caller.device_id, {"commandId": row.id}))
    if row.type == CommandType.FINISHED:
        outcome.status = device_transition(outcome.status, DeviceEvent.FINISH)
    return True


def _finish_command(
    conn: sa.Connection, row: Any, event: CommandEvent, response: Any, now: dt.datetime
) -> None:
    status = command_transition(CommandStatus(row.status), event)
    _FINISH.run(conn, {"id": row.id, "status": status.value, "response": response, "now": now})


def _settle_device(
    conn: sa.Connection, caller: DeviceCaller, device: Any, outcome: _Outcome, now: dt.datetime
) -> None:
    """Write the device's new status; with every command done and no ``finished``, AWAITING."""
    if outcome.status is DeviceStatus.PROVISIONING and not _open_commands(conn, caller.device_pk):
        outcome.status = device_transition(outcome.status, DeviceEvent.DRAIN)
    if outcome.status.value == device.status:
        return
    _SET_DEVICE_STATUS.run(
        conn, {"device_pk": caller.device_pk, "status": outcome.status.value, "now": now}
    )
    outcome.events.append(
        (
            f"device.{outcome.status.value.lower()}",
            caller.device_id,
            {"from": device.status, "to": outcome.status.value},
        )
    )


def _open_commands(conn: sa.Connection, device_pk: int) -> int:
    (row,) = _OPEN_COUNT.run(conn, {"device_pk": device_pk})
    return int(row.n)


def _accept_result(
    rt: Runtime,
    conn: sa.Connection,
    caller: DeviceCaller,
    row: Any,
    result: dict[str, Any],
    outcome: _Outcome,
    now: dt.datetime,
) -> None:
    """Check a successful result by command type and act on it; raise ResultRefused."""
    if row.type == CommandType.CLIENT_PRIVATE_KEY_GENERATION:
        _register_key(conn, caller, row, result, now)
    elif row.type == CommandType.CERTIFICATE_SIGNING_REQUEST:
        csr = result.get("csr")
        if not isinstance(csr, str):
            raise ResultRefused("csr: must be a PEM certificate signing request")
        if _params(row).get("sign"):
            _issue_certificate(rt, conn, caller, row, csr, outcome, now)


def _register_key(
    conn: sa.Connection, caller: DeviceCaller, row: Any, result: dict[str, Any], now: dt.datetime
) -> None:
    try:
        public_key = pem.check_ec_p256_public_key(result.get("publicKey"))
    except ValueError as exc:
        raise ResultRefused(f"publicKey: {exc}") from None
    fingerprint = device_tokens.key_fingerprint(public_key)
    params = {"device_pk": caller.device_pk, "fingerprint": fingerprint}
    if not _KEY_KNOWN.run(conn, params):
        _INSERT_KEY.run(
            conn, {**params, "public_key": public_key, "command_id": row.id, "now": now}
        )
    caller.keys.add(fingerprint)


def _issue_certificate(
    rt: Runtime,
    conn: sa.Connection,
    caller: DeviceCaller,
    row: Any,
    csr: str,
    outcome: _Outcome,
    now: dt.datetime,
) -> None:
    """Sign the CSR with the account CA and queue the certificate right behind the CSR."""
    found = _AUTHORITY.run(conn, {"account_id": caller.account_id})
    if not found:
        raise ResultRefused("the account has no certificate authority to sign the CSR")
    authority = found[0]
    try:
        request = ca.load_csr(csr)
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    if device_tokens.key_fingerprint(request.public_key_pem) not in caller.keys:
        raise ResultRefused("csr: its key is not a key this device registered")
    params = _params(row)
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, params["keyUsage"], strict=True)}
    try:
        certificate = ca.sign_csr(
            ca_certificate_pem=authority.certificate_pem,
            ca_private_key_pem=rt.keyring.open_text(authority.private_key_sealed, CA_KEY_PURPOSE),
            csr=request,
            subject=params["attributes"],
            key_usage=usage,
            validity=rt.certificate_validity,
            now=now,
        )
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    _queue_after(conn, caller, row, params["secTag"], certificate, outcome, now)


def _queue_after(
    conn: sa.Connection,
    caller: DeviceCaller,
    csr_row: Any,
    sec_tag: int,
    certificate: str,
    outcome: _Outcome,
    now: dt.datetime,
) -> None:
    (count,) = _ALL_COUNT.run(conn, {"device_pk": caller.device_pk})
    if count.n >= MAX_COMMANDS_PER_DEVICE:
        raise ResultRefused(
            f"the plan holds {MAX_COMMANDS_PER_DEVICE} commands: no room for the certificate"
        )
    _SHIFT.run(conn, {"device_pk": caller.device_pk, "position": csr_row.position})
    command_id = str(uuid.uuid4())
    kind = CommandType.CLIENT_CERTIFICATE.value
    _INSERT_COMMAND.run(
        conn,
        {
            "id": command_id,
            "device_pk": caller.device_pk,
            "position": csr_row.position + 1,
            "description": f"Certificate issued by the account CA for command {csr_row.id}",
            "type": kind,
            "request": {kind: {"secTag": sec_tag, "content": certificate}},
            "secrets_sealed": None,
            "status": _PENDING,
            "response": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    outcome.events.append(
        (
            "certificate.issued",
            caller.device_id,
            {"csrCommandId": csr_row.id, "commandId": command_id},
        )
    )
