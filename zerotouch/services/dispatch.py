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
from zerotouch.store.queries import record_event
from zerotouch.store.schema import certificate_authorities, commands, device_keys, devices

MAX_LIMIT = 20
DEFAULT_LIMIT = 10
_OPEN = (CommandStatus.PENDING.value, CommandStatus.IN_PROGRESS.value)


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
        status = conn.execute(
            sa.select(devices.c.status).where(devices.c.id == caller.device_pk)
        ).scalar_one()
        if status in (DeviceStatus.ERROR.value, DeviceStatus.BLOCKED.value):
            return False
        position = _cursor(conn, caller, after)
        return bool(_next_batch(conn, caller.device_pk, position, 1))


def _cursor(conn: sa.Connection, caller: DeviceCaller, after: str | None) -> int:
    if after is None:
        return 0
    position = conn.execute(
        sa.select(commands.c.position).where(
            commands.c.id == after, commands.c.device_pk == caller.device_pk
        )
    ).scalar()
    if position is None:
        raise InvalidArgument.for_field("after", "is not a command of this device")
    return int(position)


def _next_batch(conn: sa.Connection, device_pk: int, position: int, limit: int) -> list[Any]:
    rows = conn.execute(
        sa.select(commands)
        .where(
            commands.c.device_pk == device_pk,
            commands.c.position > position,
            commands.c.status.in_(_OPEN),
        )
        .order_by(commands.c.position)
        .limit(limit)
    ).all()
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
    pending = [r.id for r in batch if r.status == CommandStatus.PENDING.value]
    for row in batch:
        event = CommandEvent.DISPATCH if row.id in pending else CommandEvent.REDISPATCH
        command_transition(CommandStatus(row.status), event)
    if pending:
        conn.execute(
            commands.update()
            .where(commands.c.id.in_(pending))
            .values(status=CommandStatus.IN_PROGRESS.value, updated_at=now)
        )
    was = DeviceStatus(device.status)
    status = device_transition(was, DeviceEvent.FETCH)
    if status is not was:
        conn.execute(
            devices.update()
            .where(devices.c.id == caller.device_pk)
            .values(status=status.value, updated_at=now)
        )
    record_event(
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
        ids = [r.id for r in responses]
        rows = {
            row.id: row
            for row in conn.execute(
                sa.select(commands).where(
                    commands.c.device_pk == caller.device_pk, commands.c.id.in_(ids)
                )
            )
        }
        outcome = _Outcome(DeviceStatus(device.status))
        for response in responses:
            row = rows.get(response.id)
            if row is None or row.status != CommandStatus.IN_PROGRESS.value:
                continue  # Not this device's, or answered already: ignored, not counted.
            outcome.accepted += 1
            if not _apply(rt, conn, caller, row, response, outcome, now):
                break
        _settle_device(conn, caller, device, outcome, now)
        for event in outcome.events:
            record_event(
                conn, account_id=caller.account_id, actor=caller.actor, at=now, event=event
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
            _accept_result(rt, conn, caller, row, response.result, now)
        except ResultRefused as exc:
            message = f"The result was refused: {exc}"
    if message is not None:
        _finish_command(conn, row, CommandEvent.FAIL, {"error": {"message": message}}, now)
        outcome.events.append(
            ("command.failed", caller.device_id, {"commandId": row.id, "message": message})
        )
        outcome.status = device_transition(outcome.status, DeviceEvent.FAIL)
        requeued = conn.execute(
            commands.update()
            .where(
                commands.c.device_pk == caller.device_pk,
                commands.c.status == CommandStatus.IN_PROGRESS.value,
            )
            .values(status=CommandStatus.PENDING.value, updated_at=now)
        ).rowcount
        if requeued:
            outcome.events.append(
                ("commands.requeued", caller.device_id, {"count": requeued, "after": row.id})
            )
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
    conn.execute(
        commands.update()
        .where(commands.c.id == row.id)
        .values(status=status.value, response=response, updated_at=now)
    )


def _settle_device(
    conn: sa.Connection, caller: DeviceCaller, device: Any, outcome: _Outcome, now: dt.datetime
) -> None:
    """Write the device's new status; with every command done and no ``finished``, AWAITING."""
    if outcome.status is DeviceStatus.PROVISIONING and not _open_commands(conn, caller.device_pk):
        outcome.status = device_transition(outcome.status, DeviceEvent.DRAIN)
    if outcome.status.value == device.status:
        return
    conn.execute(
        devices.update()
        .where(devices.c.id == caller.device_pk)
        .values(status=outcome.status.value, updated_at=now)
    )
    outcome.events.append(
        (
            f"device.{outcome.status.value.lower()}",
            caller.device_id,
            {"from": device.status, "to": outcome.status.value},
        )
    )


def _open_commands(conn: sa.Connection, device_pk: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                commands.c.device_pk == device_pk, commands.c.status.in_(_OPEN)
            )
        ).scalar_one()
    )


def _accept_result(
    rt: Runtime,
    conn: sa.Connection,
    caller: DeviceCaller,
    row: Any,
    result: dict[str, Any],
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
            _issue_certificate(rt, conn, caller, row, csr, now)


def _register_key(
    conn: sa.Connection, caller: DeviceCaller, row: Any, result: dict[str, Any], now: dt.datetime
) -> None:
    try:
        public_key = pem.check_ec_p256_public_key(result.get("publicKey"))
    except ValueError as exc:
        raise ResultRefused(f"publicKey: {exc}") from None
    fingerprint = device_tokens.key_fingerprint(public_key)
    known = conn.execute(
        sa.select(device_keys.c.fingerprint).where(
            device_keys.c.device_pk == caller.device_pk, device_keys.c.fingerprint == fingerprint
        )
    ).first()
    if known is None:
        conn.execute(
            device_keys.insert().values(
                device_pk=caller.device_pk,
                fingerprint=fingerprint,
                public_key=public_key,
                command_id=row.id,
                created_at=now,
            )
        )


def _device_key_fingerprints(conn: sa.Connection, device_pk: int) -> set[str]:
    keys = set(
        conn.execute(
            sa.select(device_keys.c.fingerprint).where(device_keys.c.device_pk == device_pk)
        )
        .scalars()
        .all()
    )
    factory = conn.execute(
        sa.select(devices.c.public_key).where(devices.c.id == device_pk)
    ).scalar()
    if factory:
        keys.add(device_tokens.key_fingerprint(factory))
    return keys


def _issue_certificate(
    rt: Runtime, conn: sa.Connection, caller: DeviceCaller, row: Any, csr: str, now: dt.datetime
) -> None:
    """Sign the CSR with the account CA and queue the certificate right behind the CSR."""
    authority = conn.execute(
        sa.select(certificate_authorities).where(
            certificate_authorities.c.account_id == caller.account_id
        )
    ).first()
    if authority is None:
        raise ResultRefused("the account has no certificate authority to sign the CSR")
    try:
        public_key = pem.csr_public_key(csr)
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    if device_tokens.key_fingerprint(public_key) not in _device_key_fingerprints(
        conn, caller.device_pk
    ):
        raise ResultRefused("csr: its key is not a key this device registered")
    params = _params(row)
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, params["keyUsage"], strict=True)}
    try:
        certificate = ca.sign_csr(
            ca_certificate_pem=authority.certificate_pem,
            ca_private_key_pem=rt.keyring.open_text(authority.private_key_sealed, CA_KEY_PURPOSE),
            csr_pem=csr,
            subject=params["attributes"],
            key_usage=usage,
            validity=rt.certificate_validity,
            now=now,
        )
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    _queue_after(conn, caller, row, params["secTag"], certificate, now)


def _queue_after(
    conn: sa.Connection,
    caller: DeviceCaller,
    csr_row: Any,
    sec_tag: int,
    certificate: str,
    now: dt.datetime,
) -> None:
    count = conn.execute(
        sa.select(sa.func.count()).where(commands.c.device_pk == caller.device_pk)
    ).scalar_one()
    if count >= MAX_COMMANDS_PER_DEVICE:
        raise ResultRefused(
            f"the plan holds {MAX_COMMANDS_PER_DEVICE} commands: no room for the certificate"
        )
    conn.execute(
        commands.update()
        .where(commands.c.device_pk == caller.device_pk, commands.c.position > csr_row.position)
        .values(position=commands.c.position + 1)
    )
    command_id = str(uuid.uuid4())
    kind = CommandType.CLIENT_CERTIFICATE.value
    conn.execute(
        commands.insert().values(
            id=command_id,
            device_pk=caller.device_pk,
            position=csr_row.position + 1,
            description=f"Certificate issued by the account CA for command {csr_row.id}",
            type=kind,
            request={kind: {"secTag": sec_tag, "content": certificate}},
            secrets_sealed=None,
            status=CommandStatus.PENDING.value,
            response=None,
            created_at=now,
            updated_at=now,
        )
    )
    record_event(
        conn,
        account_id=caller.account_id,
        actor=caller.actor,
        at=now,
        event=(
            "certificate.issued",
            caller.device_id,
            {"csrCommandId": csr_row.id, "commandId": command_id},
        ),
    )
