"""The device reports what its commands did (API.md, Device API, POST responses).

Responses count only for commands IN_PROGRESS, so a device that reports twice (at-least-once
delivery) changes nothing the second time. A failure marks the command FAILED and the device
ERROR and puts the commands behind it back to PENDING. A key generation registers the device's
new public key; a CSR the account CA is to sign gets its certificate queued right behind it.
A report works on the plan, keys and CA read for it by its group of device calls, and stages
its changes there (services/device_calls.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto import ca, device_tokens, pem
from zerotouch.domain.commands import (
    KEY_GENERATIONS,
    KEY_USAGE_BITS,
    MAX_COMMANDS_PER_DEVICE,
    CommandType,
)
from zerotouch.domain.lifecycle import (
    CommandEvent,
    CommandStatus,
    DeviceEvent,
    DeviceStatus,
    command_transition,
    device_transition,
)
from zerotouch.protocols.device_messages import DeviceResponse
from zerotouch.services.device_calls import Call
from zerotouch.services.dispatch import IN_PROGRESS, PENDING, params_of
from zerotouch.services.requests import csr_subject
from zerotouch.services.runtime import Runtime


def needs_authority(responses: list[DeviceResponse]) -> bool:
    """Whether a report could need the account CA (a result carries a CSR)."""
    return any(r.result is not None and "csr" in r.result for r in responses)


class ResultRefused(Exception):
    """A device reported success with a result that cannot be accepted; the command fails."""


@dataclass
class _Report:
    """One POST of responses: the commands it can act on, and where the device stands."""

    rt: Runtime
    call: Call
    status: DeviceStatus
    in_progress: dict[str, Any]
    total: int
    pending: int
    known_keys: set[str]
    accepted: int = 0


def submit_responses(rt: Runtime, responses: list[DeviceResponse], call: Call) -> int:
    """Apply the device's results in order; returns how many were accepted."""
    plan = call.plan
    report = _Report(
        rt=rt,
        call=call,
        status=DeviceStatus(call.device.status),
        in_progress={row.id: row for row in plan if row.status == IN_PROGRESS},
        total=len(plan),
        pending=sum(row.status == PENDING for row in plan),
        known_keys=call.caller.keys | call.keys,
    )
    for response in responses:
        row = report.in_progress.pop(response.id, None)
        if row is None:
            continue  # Not this device's, or not IN_PROGRESS: ignored, not counted.
        report.accepted += 1
        if not _apply(report, row, response):
            break
    _settle_device(report, call.device.status)
    return report.accepted


def _apply(report: _Report, row: Any, response: DeviceResponse) -> bool:
    """Apply one response; False when the command failed (the rest of the batch is void)."""
    message, details = response.error, response.error_details or {}
    result = response.result
    if result is not None:
        try:
            result = _accept_result(report, row, result, key_generated=response.key_generated)
        except ResultRefused as exc:
            message = f"The result was refused: {exc}"
    call = report.call
    if message is not None:
        error = {**details, "message": message}
        _finish_command(report, row, CommandEvent.FAIL, {"error": error})
        call.event("command.failed", {"commandId": row.id, "message": message})
        report.status = device_transition(report.status, DeviceEvent.FAIL)
        # The rest of the batch goes back to PENDING, behind the failed command.
        for other in report.in_progress:
            call.change(other, status=PENDING)
        report.pending += len(report.in_progress)
        report.in_progress.clear()
        return False
    _finish_command(report, row, CommandEvent.SUCCEED, {row.type: result or {}})
    call.event("command.succeeded", {"commandId": row.id})
    if row.type == CommandType.FINISHED:
        report.status = device_transition(report.status, DeviceEvent.FINISH)
    return True


def _finish_command(report: _Report, row: Any, event: CommandEvent, response: Any) -> None:
    status = command_transition(CommandStatus(row.status), event)
    report.call.change(row.id, status=status.value, response=response)


def _settle_device(report: _Report, was: str) -> None:
    """Move the device to its new status; with every command done and no ``finished``,
    AWAITING."""
    still_open = report.pending + len(report.in_progress)
    if report.status is DeviceStatus.PROVISIONING and not still_open:
        report.status = device_transition(report.status, DeviceEvent.DRAIN)
    if report.status.value == was:
        return
    report.call.move_device(report.status)
    report.call.event(
        f"device.{report.status.value.lower()}", {"from": was, "to": report.status.value}
    )


def _accept_result(
    report: _Report, row: Any, result: dict[str, Any], *, key_generated: bool
) -> dict[str, Any]:
    """Check a successful result by command type and act on it; the result as nRF Cloud
    reports it (a CSR in the modem's ``%KEYGEN`` form, with its PEM beside it). Raise
    ResultRefused."""
    if row.type in KEY_GENERATIONS:
        _register_key(report, row, result.get("publicKey"))
    elif row.type == CommandType.CERTIFICATE_SIGNING_REQUEST:
        try:
            forms = pem.csr_forms(result.get("csr"))
            request = ca.checked_csr(forms.csr)
        except ValueError as exc:
            raise ResultRefused(f"csr: {exc}") from None
        if key_generated:
            # The modem's %KEYGEN made the key with the CSR: the command generated it.
            _register_key(report, row, request.public_key_pem)
        if params_of(row).get("sign"):
            _issue_certificate(report, row, request)
        return {**result, "csr": forms.keygen, "pem": forms.pem}
    return result


def _register_key(report: _Report, row: Any, key: object) -> None:
    try:
        public_key = pem.check_ec_p256_public_key(key)
    except ValueError as exc:
        raise ResultRefused(f"publicKey: {exc}") from None
    fingerprint = device_tokens.key_fingerprint(public_key)
    if fingerprint not in report.call.keys:
        report.call.add_key(fingerprint, public_key, row.id)
    report.known_keys.add(fingerprint)


def _issue_certificate(report: _Report, row: Any, request: ca.Csr) -> None:
    """Sign the CSR with the account CA and queue the certificate right behind the CSR."""
    authority = report.call.authority
    if authority is None:
        raise ResultRefused("the account has no certificate authority to sign the CSR")
    if device_tokens.key_fingerprint(request.public_key_pem) not in report.known_keys:
        raise ResultRefused("csr: its key is not a key this device registered")
    if report.total >= MAX_COMMANDS_PER_DEVICE:
        raise ResultRefused(
            f"the plan holds {MAX_COMMANDS_PER_DEVICE} commands: no room for the certificate"
        )
    params = params_of(row)
    subject = csr_subject(params["attributes"], report.call.caller.device_id)
    wanted = report.call.caller.common_name
    if wanted is not None and ca.common_name_of(subject) != wanted:
        raise ResultRefused(f"csr: an MQTT device's certificate is issued for CN={wanted} only")
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, params["keyUsage"], strict=True)}
    try:
        certificate = ca.sign_csr(
            ca_certificate_pem=authority.certificate_pem,
            ca_private_key_pem=authority.private_key_pem,
            csr=request,
            subject=subject,
            key_usage=usage,
            validity=report.rt.certificate_validity,
            now=report.call.now,
        )
    except ValueError as exc:
        raise ResultRefused(f"csr: {exc}") from None
    _queue_after(report, row, params["secTag"], certificate)


def _queue_after(report: _Report, csr_row: Any, sec_tag: int, certificate: str) -> None:
    call = report.call
    position = call.position(csr_row)
    call.shift_after(position)
    command_id = str(uuid.uuid4())
    kind = CommandType.CLIENT_CERTIFICATE.value
    call.add_command(
        {
            "id": command_id,
            "device_pk": call.caller.device_pk,
            "position": position + 1,
            "description": f"Certificate issued by the account CA for command {csr_row.id}",
            "type": kind,
            "request": {kind: {"secTag": sec_tag, "content": certificate}},
            "secrets_sealed": None,
            "status": PENDING,
            "response": None,
            "created_at": call.now,
            "updated_at": call.now,
        }
    )
    report.total += 1
    report.pending += 1
    call.event("certificate.issued", {"csrCommandId": csr_row.id, "commandId": command_id})
