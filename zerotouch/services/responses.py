"""The device reports what its commands did (API.md, Device API, POST responses).

Responses count only for commands IN_PROGRESS, so a device that reports twice (at-least-once
delivery) changes nothing the second time. A failure marks the command FAILED and the device
ERROR and puts the commands behind it back to PENDING. A key generation registers the device's
new public key; a CSR the account CA is to sign gets its certificate queued right behind it.
Every read a report could need goes out first (with the jti and the device lock), then every
write; reports that arrive together share one transaction (see run_device_calls).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from zerotouch.crypto import ca, device_tokens, pem
from zerotouch.domain.commands import KEY_USAGE_BITS, MAX_COMMANDS_PER_DEVICE, CommandType
from zerotouch.domain.lifecycle import (
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)
from zerotouch.protocols.device_messages import DeviceResponse
from zerotouch.services.authority import KEY_PURPOSE as CA_KEY_PURPOSE
from zerotouch.services.device_auth import DeviceCaller, device_call
from zerotouch.services.dispatch import (
    COMMAND_COLUMNS,
    IN_PROGRESS,
    PENDING,
    SET_DEVICE_STATUS,
    params_of,
)
from zerotouch.services.runtime import Runtime
from zerotouch.store.fast import FastStatement
from zerotouch.store.queries import Event, record_events
from zerotouch.store.schema import certificate_authorities, commands, device_keys

_b = sa.bindparam
# The device's whole plan (at most 20 commands): the ones IN_PROGRESS, and the counts.
_PLAN = FastStatement(sa.select(*COMMAND_COLUMNS).where(commands.c.device_pk == _b("device_pk")))
_KEYS = FastStatement(
    sa.select(device_keys.c.fingerprint).where(device_keys.c.device_pk == _b("device_pk"))
)
_AUTHORITY = FastStatement(
    sa.select(
        certificate_authorities.c.certificate_pem, certificate_authorities.c.private_key_sealed
    ).where(certificate_authorities.c.account_id == _b("account_id"))
)
_FINISH = FastStatement(
    commands.update()
    .where(commands.c.id == _b("id"))
    .values(status=_b("status"), response=_b("response"), updated_at=_b("now"))
)
_REQUEUE = FastStatement(
    commands.update()
    .where(commands.c.device_pk == _b("device_pk"), commands.c.status == IN_PROGRESS)
    .values(status=PENDING, updated_at=_b("now"))
)
_INSERT_KEY = FastStatement(
    device_keys.insert().values(
        {
            **{name: _b(name) for name in ("device_pk", "fingerprint", "public_key", "command_id")},
            "created_at": _b("now"),
        }
    )
)
_SHIFT = FastStatement(
    commands.update()
    .where(commands.c.device_pk == _b("device_pk"), commands.c.position > _b("position"))
    .values(position=commands.c.position + 1)
)
_INSERT_COMMAND = FastStatement(commands.insert().values({c.name: _b(c.name) for c in commands.c}))


class ResultRefused(Exception):
    """A device reported success with a result that cannot be accepted; the command fails."""


@dataclass
class _Report:
    """One POST of responses: what the reads found, and what the responses did."""

    rt: Runtime
    conn: sa.Connection
    caller: DeviceCaller
    now: dt.datetime
    status: DeviceStatus
    in_progress: dict[str, Any]
    total: int
    pending: int
    keys: set[str]
    authority: Any
    accepted: int = 0
    events: list[Event] = field(default_factory=list)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, self.caller.device_id, data))


def submit_responses(
    rt: Runtime, caller: DeviceCaller, responses: list[DeviceResponse], conn: sa.Connection
) -> int:
    """Apply the device's results in order; returns how many were accepted. Runs in a device
    call's write transaction (see run_device_calls)."""
    pk = {"device_pk": caller.device_pk}
    with device_call(conn, caller) as hold:
        plan, keys = _PLAN.send(conn, pk), _KEYS.send(conn, pk)
        # The CA is read only when a CSR could need signing.
        authority = (
            _AUTHORITY.send(conn, {"account_id": caller.account_id})
            if any(r.result is not None and "csr" in r.result for r in responses)
            else None
        )
        device = hold.row()
        commands_now = plan.rows()
        fingerprints = {k.fingerprint for k in keys.rows()}
        authorities = authority.rows() if authority is not None else []
    report = _Report(
        rt=rt,
        conn=conn,
        caller=caller,
        now=rt.clock(),
        status=DeviceStatus(device.status),
        in_progress={row.id: row for row in commands_now if row.status == IN_PROGRESS},
        total=len(commands_now),
        pending=sum(row.status == PENDING for row in commands_now),
        keys=caller.keys | fingerprints,
        authority=authorities[0] if authorities else None,
    )
    for response in responses:
        row = report.in_progress.pop(response.id, None)
        if row is None:
            continue  # Not this device's, or not IN_PROGRESS: ignored, not counted.
        report.accepted += 1
        if not _apply(report, row, response):
            break
    _settle_device(report, device.status)
    record_events(
        conn,
        account_id=caller.account_id,
        actor=caller.actor,
        at=report.now,
        events=report.events,
    )
    return report.accepted


def _apply(report: _Report, row: Any, response: DeviceResponse) -> bool:
    """Apply one response; False when the command failed (the rest of the batch is void)."""
    message = response.error
    if response.result is not None:
        try:
            _accept_result(report, row, response.result)
        except ResultRefused as exc:
            message = f"The result was refused: {exc}"
    if message is not None:
        _finish_command(report, row, CommandEvent.FAIL, {"error": {"message": message}})
        report.event("command.failed", {"commandId": row.id, "message": message})
        report.status = device_transition(report.status, DeviceEvent.FAIL)
        _REQUEUE.send(report.conn, {"device_pk": report.caller.device_pk, "now": report.now})
        return False
    _finish_command(report, row, CommandEvent.SUCCEED, response.result)
    report.event("command.succeeded", {"commandId": row.id})
    if row.type == CommandType.FINISHED:
        report.status = device_transition(report.status, DeviceEvent.FINISH)
    return True


def _finish_command(report: _Report, row: Any, event: CommandEvent, response: Any) -> None:
    status = command_transition(CommandStatus(row.status), event)
    _FINISH.send(
        report.conn, {"id": row.id, "status": status.value, "response": response, "now": report.now}
    )


def _settle_device(report: _Report, was: str) -> None:
    """Write the device's new status; with every command done and no ``finished``, AWAITING."""
    still_open = report.pending + len(report.in_progress)
    if report.status is DeviceStatus.PROVISIONING and not still_open:
        report.status = device_transition(report.status, DeviceEvent.DRAIN)
    if report.status.value == was:
        return
    SET_DEVICE_STATUS.send(
        report.conn,
        {"device_pk": report.caller.device_pk, "status": report.status.value, "now": report.now},
    )
    report.event(f"device.{report.status.value.lower()}", {"from": was, "to": report.status.value})


def _accept_result(report: _Report, row: Any, result: dict[str, Any]) -> None:
    """Check a successful result by command type and act on it; raise ResultRefused."""
    if row.type == CommandType.CLIENT_PRIVATE_KEY_GENERATION:
        _register_key(report, row, result)
    elif row.type == CommandType.CERTIFICATE_SIGNING_REQUEST:
        csr = result.get("csr")
        if not isinstance(csr, str):
            raise ResultRefused("csr: must be a PEM certificate signing request")
        if params_of(row).get("sign"):
            _issue_certificate(report, row, csr)


def _register_key(report: _Report, row: Any, result: dict[str, Any]) -> None:
    try:
        public_key = pem.check_ec_p256_public_key(result.get("publicKey"))
    except ValueError as exc:
        raise ResultRefused(f"publicKey: {exc}") from None
    fingerprint = device_tokens.key_fingerprint(public_key)
    if fingerprint not in report.keys:
        _INSERT_KEY.send(
            report.conn,
            {
                "device_pk": report.caller.device_pk,
                "fingerprint": fingerprint,
                "public_key": public_key,
                "command_id": row.id,
                "now": report.now,
            },
        )
        report.keys.add(fingerprint)
    report.caller.keys.add(fingerprint)


def _issue_certificate(report: _Report, row: Any, csr: str) -> None:
    """Sign the CSR with the account CA and queue the certificate right behind the CSR."""
    if report.authority is None:
        raise ResultRefused("the account has no certificate authority to sign the CSR")
    try:
        request = ca.load_csr(csr)
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    if device_tokens.key_fingerprint(request.public_key_pem) not in report.keys:
        raise ResultRefused("csr: its key is not a key this device registered")
    if report.total >= MAX_COMMANDS_PER_DEVICE:
        raise ResultRefused(
            f"the plan holds {MAX_COMMANDS_PER_DEVICE} commands: no room for the certificate"
        )
    params = params_of(row)
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, params["keyUsage"], strict=True)}
    try:
        certificate = ca.sign_csr(
            ca_certificate_pem=report.authority.certificate_pem,
            ca_private_key_pem=report.rt.keyring.open_text(
                report.authority.private_key_sealed, CA_KEY_PURPOSE
            ),
            csr=request,
            subject=params["attributes"],
            key_usage=usage,
            validity=report.rt.certificate_validity,
            now=report.now,
        )
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    _queue_after(report, row, params["secTag"], certificate)


def _queue_after(report: _Report, csr_row: Any, sec_tag: int, certificate: str) -> None:
    device_pk = report.caller.device_pk
    _SHIFT.send(report.conn, {"device_pk": device_pk, "position": csr_row.position})
    command_id = str(uuid.uuid4())
    kind = CommandType.CLIENT_CERTIFICATE.value
    _INSERT_COMMAND.send(
        report.conn,
        {
            "id": command_id,
            "device_pk": device_pk,
            "position": csr_row.position + 1,
            "description": f"Certificate issued by the account CA for command {csr_row.id}",
            "type": kind,
            "request": {kind: {"secTag": sec_tag, "content": certificate}},
            "secrets_sealed": None,
            "status": PENDING,
            "response": None,
            "created_at": report.now,
            "updated_at": report.now,
        },
    )
    report.total += 1
    report.pending += 1
    report.event("certificate.issued", {"csrCommandId": csr_row.id, "commandId": command_id})
