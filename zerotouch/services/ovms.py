"""OVMS auto-provisioning: the operator's record for a car, and answering the car's AP-C.

A record is the module's parameters (#0, #1, ...) or a record text in another platform's
format. The apkey defaults to the device's VIN and the shared secret to its ICCID, both from
the factory record. The AP-S answer (token, digest, encrypted record) is computed once when the
record is stored, as the reference server does. A one-time record is delivered once (the device
becomes PROVISIONED) and answers AP-X after; others record each delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from zerotouch.domain.errors import (
    FieldError,
    IllegalTransition,
    InvalidArgument,
)
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.records import VIN_RE
from zerotouch.domain.values import Permission
from zerotouch.protocols import ovms
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import ovms as store
from zerotouch.store import rate_limits
from zerotouch.store.db import Connection
from zerotouch.store.devices import device_for_account
from zerotouch.store.events import record_event

log = logging.getLogger(__name__)

RECORD_PURPOSE = "ovms_records.record"
SECRET_PURPOSE = "ovms_records.secret"  # noqa: S105 - a sealing purpose, not a secret
ANSWER_PURPOSE = "ovms_records.answer"
ICCID_PURPOSE = "devices.iccid"
RECORD_MAX = 4096  # The module's parameter block; the reference firmware keeps less.
PARAMETERS_MAX = 64
SECRET_MAX = 128


@dataclass(frozen=True, slots=True)
class OvmsView:
    device_id: str
    apkey: str
    parameters: list[str] | None
    record: str | None
    one_time: bool
    deliveries: int
    delivered_at: Any
    updated_at: Any


@dataclass(frozen=True, slots=True)
class RecordInput:
    """A car's record as the operator gives it: the module's ``parameters`` or a ``record``
    text (exactly one), and the apkey and shared secret when not the VIN and ICCID."""

    parameters: list[str] | None = None
    record: str | None = None
    apkey: str | None = None
    secret: str | None = None
    one_time: bool = False

    def text(self) -> tuple[str, bool]:
        """The record's text, and whether it was made from parameters."""
        if (self.parameters is None) == (self.record is None):
            raise InvalidArgument.for_field(
                "parameters", "give exactly one of parameters and record"
            )
        for name, value, limit in (
            ("apkey", self.apkey, ovms.APKEY_MAX),
            ("secret", self.secret, SECRET_MAX),
        ):
            if value is not None and (not 1 <= len(value) <= limit or " " in value):
                raise InvalidArgument.for_field(
                    name, f"must be 1-{limit} characters without spaces"
                )
        if self.parameters is not None:
            if len(self.parameters) > PARAMETERS_MAX:
                raise InvalidArgument.for_field("parameters", f"must hold at most {PARAMETERS_MAX}")
            try:
                text = ovms.record_of(self.parameters)
            except ValueError as exc:
                raise InvalidArgument.for_field("parameters", str(exc)) from None
        else:
            text = self.record or ""
            if "\r" in text or "\n" in text:
                raise InvalidArgument.for_field("record", "must be one line of text")
        if len(text.encode()) > RECORD_MAX:
            raise InvalidArgument.for_field("record", f"must be at most {RECORD_MAX} bytes")
        return text, self.parameters is not None


def put_record(
    rt: Runtime, *, principal: Principal, device_id: str, given: RecordInput
) -> OvmsView:
    """Store (or replace) the device's record and the AP-S answer made from it."""
    principal.require(Permission.WRITE_DEVICES)
    text, from_parameters = given.text()
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        apkey = given.apkey or device.vin
        if not apkey:
            raise InvalidArgument.for_field("apkey", "is required: the device has no vin")
        # A VIN names one car: only that car's own record may answer to it. The refusal is
        # the same whoever has that VIN, or whether anyone does.
        if VIN_RE.fullmatch(apkey) and apkey != device.vin:
            raise InvalidArgument(
                "apkey: a VIN-shaped apkey must be the device's own vin",
                code="apkey_not_allowed",
                errors=[FieldError("apkey", "a VIN-shaped apkey must be the device's own vin")],
            )
        secret = given.secret or (
            rt.keyring.open_text(device.iccid_sealed, ICCID_PURPOSE)
            if device.iccid_sealed
            else None
        )
        if not secret:
            raise InvalidArgument.for_field("secret", "is required: the device has no iccid")
        answer = ovms.seal_record(text, secret)
        now = rt.clock()
        store.replace(
            conn,
            device.id,
            apkey=apkey,
            record_sealed=rt.keyring.seal(text, RECORD_PURPOSE),
            secret_sealed=rt.keyring.seal(secret, SECRET_PURPOSE),
            answer_sealed=rt.keyring.seal(answer.line(), ANSWER_PURPOSE),
            from_parameters=from_parameters,
            one_time=given.one_time,
            deliveries=0,
            delivered_at=None,
            created_at=now,
            updated_at=now,
        )
        audit_event(
            conn,
            principal,
            at=now,
            event=(
                "ovms.record_set",
                device_id,
                {"apkey": apkey, "oneTime": given.one_time},
            ),
        )
        return _view(rt, device_id, _row(conn, device.id))


def get_record(rt: Runtime, *, principal: Principal, device_id: str) -> OvmsView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        device = device_for_account(conn, account_id=principal.account_id, device_id=device_id)
        return _view(rt, device_id, _row(conn, device.id))


def delete_record(rt: Runtime, *, principal: Principal, device_id: str) -> None:
    principal.require(Permission.WRITE_DEVICES)
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        _row(conn, device.id)
        store.delete(conn, device.id)
        audit_event(conn, principal, at=rt.clock(), event=("ovms.record_deleted", device_id, {}))


def _row(conn: Connection, device_pk: int) -> Any:
    return store.find(conn, device_pk)


def _view(rt: Runtime, device_id: str, row: Any) -> OvmsView:
    text = rt.keyring.open_text(row.record_sealed, RECORD_PURPOSE)
    return OvmsView(
        device_id=device_id,
        apkey=row.apkey,
        parameters=ovms.parameters_of(text) if row.from_parameters else None,
        record=None if row.from_parameters else text,
        one_time=row.one_time,
        deliveries=row.deliveries,
        delivered_at=row.delivered_at,
        updated_at=row.updated_at,
    )


RATE_WINDOW_S = rate_limits.WINDOW_S


def answer_requests(
    rt: Runtime, requests: list[tuple[str, str]], *, rate_limit: int = 0
) -> list[ovms.Answer | None]:
    """Answers to cars' AP-C, (apkey, source address) each, in one transaction: the AP-S
    answer with the record, or None for AP-X (no record, a blocked device, a one-time record
    delivered already, or more than ``rate_limit`` attempts this minute from the address or
    for the apkey, counted across every node). Every delivery is an audit event, written
    before any answer goes out."""
    if not requests:
        return []
    with rt.db.write() as conn:
        allowed = _within_limit(rt, conn, requests, rate_limit)
        rows: dict[str, Any] = {}
        for apkey in {apkey for (apkey, _), ok in zip(requests, allowed, strict=True) if ok}:
            found = store.lookup(conn, apkey)
            if found is not None:
                rows[apkey] = found
        now = rt.clock()
        deliveries: list[ovms.Answer | None] = []
        counts: dict[int, int] = {}
        events: list[tuple[int, str, str, str, bool]] = []
        for (apkey, source), ok in zip(requests, allowed, strict=True):
            row = rows.get(apkey) if ok else None
            if row is None or row.status == DeviceStatus.BLOCKED.value or row.account_id is None:
                deliveries.append(None)
                continue
            if row.one_time and not _take_once(conn, row, now):
                deliveries.append(None)
                continue
            counts[row.device_pk] = counts.get(row.device_pk, 0) + 1
            events.append((row.account_id, row.device_id, apkey, source, row.one_time))
            line = rt.keyring.open(row.answer_sealed, ANSWER_PURPOSE)
            deliveries.append(ovms.parse_answer(line.rstrip(b"\r\n")))
        for device_pk, n in counts.items():
            store.delivered(conn, device_pk, n, now)
        for account_id, device_id, apkey, source, one_time in events:
            record_event(
                conn,
                account_id=account_id,
                actor=f"ovms:{source}",
                at=now,
                event=("ovms.delivered", device_id, {"apkey": apkey, "oneTime": one_time}),
            )
    return deliveries


def _within_limit(
    rt: Runtime, conn: Connection, requests: list[tuple[str, str]], limit: int
) -> list[bool]:
    """Which requests are within the limit per source address and per apkey (0: all)."""
    if limit <= 0:
        return [True] * len(requests)
    keys = [("ip:" + source, "apkey:" + apkey) for apkey, source in requests]
    attempts: dict[str, int] = {}
    for pair in keys:
        for key in pair:
            attempts[key] = attempts.get(key, 0) + 1
    window = int(rt.clock().timestamp() // RATE_WINDOW_S)
    used = rate_limits.count(conn, attempts, window)
    allowed = []
    for address, apkey in keys:
        ok = used[address] < limit and used[apkey] < limit
        used[address] += 1
        used[apkey] += 1
        if not ok:
            log.info("ovms: %s rate limited for %s", address[3:], apkey[6:])
        allowed.append(ok)
    return allowed


def forget_rate_windows(rt: Runtime) -> int:
    """Drop attempt counters of windows that have ended."""
    with rt.db.write() as conn:
        return rate_limits.forget_before(conn, int(rt.clock().timestamp() // RATE_WINDOW_S))


def _take_once(conn: Connection, row: Any, now: Any) -> bool:
    """Claim a one-time record's only delivery; of racing cars exactly one gets it."""
    if not store.take_once(conn, row.device_pk, now):
        return False
    try:
        status = device_transition(DeviceStatus(row.status), DeviceEvent.DELIVER)
    except IllegalTransition:
        return True  # In ERROR: delivered, the status stays.
    store.set_device_status(conn, row.device_pk, status.value, now)
    return True
