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

import sqlalchemy as sa

from zerotouch.domain.errors import (
    AlreadyExists,
    FieldError,
    IllegalTransition,
    InvalidArgument,
    NotFound,
)
from zerotouch.domain.lifecycle import DeviceEvent, DeviceStatus, device_transition
from zerotouch.domain.records import VIN_RE
from zerotouch.domain.values import Permission
from zerotouch.protocols import ovms
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import rate_limits
from zerotouch.store.fast import FastStatement
from zerotouch.store.queries import device_for_account, record_event, unique_violation_as
from zerotouch.store.schema import devices, ovms_records

log = logging.getLogger(__name__)

RECORD_PURPOSE = "ovms_records.record"
SECRET_PURPOSE = "ovms_records.secret"  # noqa: S105 - a sealing purpose, not a secret
ANSWER_PURPOSE = "ovms_records.answer"
ICCID_PURPOSE = "devices.iccid"
RECORD_MAX = 4096  # The module's parameter block; the reference firmware keeps less.
PARAMETERS_MAX = 64
SECRET_MAX = 128
_FIELDS = ("parameters", "record", "apkey", "secret", "oneTime")


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


def _record(body: dict[str, Any]) -> tuple[str, bool]:
    if ("parameters" in body) == ("record" in body):
        raise InvalidArgument.for_field("parameters", "give exactly one of parameters and record")
    if "parameters" in body:
        params = body["parameters"]
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise InvalidArgument.for_field("parameters", "must be a list of strings")
        if len(params) > PARAMETERS_MAX:
            raise InvalidArgument.for_field("parameters", f"must hold at most {PARAMETERS_MAX}")
        try:
            text = ovms.record_of(params)
        except ValueError as exc:
            raise InvalidArgument.for_field("parameters", str(exc)) from None
        from_parameters = True
    else:
        text = body["record"]
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise InvalidArgument.for_field("record", "must be one line of text")
        from_parameters = False
    if len(text.encode()) > RECORD_MAX:
        raise InvalidArgument.for_field("record", f"must be at most {RECORD_MAX} bytes")
    return text, from_parameters


def _check_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgument.for_field("body", "must be an object")
    unknown = [k for k in body if k not in _FIELDS]
    if unknown:
        raise InvalidArgument(
            f"{unknown[0]}: is not a known field",
            errors=[FieldError(k, "is not a known field") for k in unknown],
        )
    for name, limit in (("apkey", ovms.APKEY_MAX), ("secret", SECRET_MAX)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, str) or not 1 <= len(value) <= limit or " " in value
        ):
            raise InvalidArgument.for_field(name, f"must be 1-{limit} characters without spaces")
    if not isinstance(body.get("oneTime", False), bool):
        raise InvalidArgument.for_field("oneTime", "must be true or false")
    return body


def put_record(rt: Runtime, *, principal: Principal, device_id: str, body: Any) -> OvmsView:
    """Store (or replace) the device's record and the AP-S answer made from it."""
    principal.require(Permission.WRITE_DEVICES)
    fields = _check_body(body)
    text, from_parameters = _record(fields)
    with rt.db.write() as conn:
        device = device_for_account(
            conn, account_id=principal.account_id, device_id=device_id, lock=True
        )
        apkey = fields.get("apkey") or device.vin
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
        secret = fields.get("secret") or (
            rt.keyring.open_text(device.iccid_sealed, ICCID_PURPOSE)
            if device.iccid_sealed
            else None
        )
        if not secret:
            raise InvalidArgument.for_field("secret", "is required: the device has no iccid")
        answer = ovms.seal_record(text, secret)
        now = rt.clock()
        conn.execute(ovms_records.delete().where(ovms_records.c.device_pk == device.id))
        with unique_violation_as(
            AlreadyExists("The apkey is in use: choose another.", code="apkey_taken")
        ):
            conn.execute(
                ovms_records.insert().values(
                    device_pk=device.id,
                    apkey=apkey,
                    record_sealed=rt.keyring.seal(text, RECORD_PURPOSE),
                    secret_sealed=rt.keyring.seal(secret, SECRET_PURPOSE),
                    answer_sealed=rt.keyring.seal(answer.line(), ANSWER_PURPOSE),
                    from_parameters=from_parameters,
                    one_time=fields.get("oneTime", False),
                    deliveries=0,
                    delivered_at=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=now,
            event=(
                "ovms.record_set",
                device_id,
                {"apkey": apkey, "oneTime": fields.get("oneTime", False)},
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
        conn.execute(ovms_records.delete().where(ovms_records.c.device_pk == device.id))
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=rt.clock(),
            event=("ovms.record_deleted", device_id, {}),
        )


def _row(conn: sa.Connection, device_pk: int) -> Any:
    row = conn.execute(sa.select(ovms_records).where(ovms_records.c.device_pk == device_pk)).first()
    if row is None:
        raise NotFound("The device has no OVMS record.", code="ovms_record_not_found")
    return row


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


# Cars ask many times a second: statements built once (see store/fast.py).
_b = sa.bindparam
_LOOKUP = FastStatement(
    sa.select(
        ovms_records.c.device_pk,
        ovms_records.c.answer_sealed,
        ovms_records.c.one_time,
        devices.c.device_id,
        devices.c.account_id,
        devices.c.status,
    )
    .join(devices, devices.c.id == ovms_records.c.device_pk)
    .where(ovms_records.c.apkey == _b("apkey"))
)
_DELIVERED = FastStatement(
    ovms_records.update()
    .where(ovms_records.c.device_pk == _b("device_pk"))
    .values(
        delivered_at=_b("now"), deliveries=ovms_records.c.deliveries + _b("n"), updated_at=_b("now")
    )
)
_TAKE_ONCE = FastStatement(
    ovms_records.update()
    .where(ovms_records.c.device_pk == _b("device_pk"), ovms_records.c.delivered_at.is_(None))
    .values(delivered_at=_b("now"))
    .returning(ovms_records.c.device_pk)
)
_SET_STATUS = FastStatement(
    devices.update()
    .where(devices.c.id == _b("device_pk"))
    .values(status=_b("status"), updated_at=_b("now"))
)


RATE_WINDOW_S = 60


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
            found = _LOOKUP.run(conn, {"apkey": apkey})
            if found:
                rows[apkey] = found[0]
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
            _DELIVERED.run(conn, {"device_pk": device_pk, "n": n, "now": now})
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
    rt: Runtime, conn: sa.Connection, requests: list[tuple[str, str]], limit: int
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


def _take_once(conn: sa.Connection, row: Any, now: Any) -> bool:
    """Claim a one-time record's only delivery; of racing cars exactly one gets it."""
    if not _TAKE_ONCE.run(conn, {"device_pk": row.device_pk, "now": now}):
        return False
    try:
        status = device_transition(DeviceStatus(row.status), DeviceEvent.DELIVER)
    except IllegalTransition:
        return True  # In ERROR: delivered, the status stays.
    _SET_STATUS.run(conn, {"device_pk": row.device_pk, "status": status.value, "now": now})
    return True
