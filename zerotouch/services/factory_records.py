"""A batch of factory rows checked and prepared for the database, with no database at hand:
validated, given the digest of their content, an owner token, sealed secrets and a label.

This is the CPU-bound half of an import (services/factory_import.py does the other, against
the database), so that it can run in worker processes: :func:`check_batch` takes and returns
plain values only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import secrets
from typing import Any, NamedTuple

from zerotouch.crypto import pem
from zerotouch.crypto.envelope import Keyring
from zerotouch.crypto.hashing import new_owner_token, owner_token_digest
from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.domain.records import FactoryRecord, parse_factory_record
from zerotouch.domain.values import OwnerToken
from zerotouch.domain.views import ImportedDevice, RejectedRow
from zerotouch.protocols import tr005
from zerotouch.store.factory import INSERT_COLUMNS

COLUMN = {name: i for i, name in enumerate(INSERT_COLUMNS)}
LABEL_COLUMNS = ("deviceId", "ownerToken", "qr", "appKey", "serial")
_RECORD_VALUES = operator.attrgetter(*(f.name for f in dataclasses.fields(FactoryRecord)))
_QR_FIELDS = (("joinEui", "join_eui"), ("devEui", "dev_eui"), ("profileId", "profile_id"))


class Prepared(NamedTuple):
    """A valid row, ready to insert as a new device (an update takes its values too). A
    tuple: a million of them cross from worker processes, and a tuple pickles fastest."""

    row: int  # Row number, from 1.
    digest: str
    token_given: bool  # The row brought its owner token (a label printed already).
    values: tuple[Any, ...]  # In INSERT_COLUMNS order.
    owner_token: str
    qr: str
    app_key: str | None  # Generated at import: shown once, in the import's answer.

    @property
    def device_id(self) -> str:
        value: str = self.values[0]
        return value

    @property
    def label(self) -> ImportedDevice:
        serial = self.values[COLUMN["serial"]]
        return ImportedDevice(self.device_id, self.owner_token, self.qr, self.app_key, serial)


def label_for(record: FactoryRecord | Any, owner_token: str) -> str:
    """The QR payload printed on the box: TR005 for LoRaWAN devices, else a zerotouch label."""
    if record.join_eui and record.dev_eui and record.profile_id:
        return tr005.encode_fields(
            record.join_eui,
            record.dev_eui,
            record.profile_id,
            owner_token=owner_token,
            serial_number=record.serial,
        )
    return tr005.encode_label(tr005.ZerotouchLabel(owner_token, record.device_id))


def label_of(values: tuple[Any, ...], owner_token: str) -> ImportedDevice:
    """The label of a prepared row's device, for ``owner_token``."""
    record = _Values(values)
    return ImportedDevice(
        record.device_id, owner_token, label_for(record, owner_token), serial=record.serial
    )


class _Values:
    """A prepared row's values under the names label_for reads."""

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.device_id, self.serial = values[COLUMN["device_id"]], values[COLUMN["serial"]]
        self.join_eui, self.dev_eui = values[COLUMN["join_eui"]], values[COLUMN["dev_eui"]]
        self.profile_id = values[COLUMN["profile_id"]]


def label_row(device: ImportedDevice) -> list[str]:
    """A device's line of the labels CSV (LABEL_COLUMNS) an import answers with."""
    extra = [device.app_key or "", device.serial or ""]
    return [device.device_id, device.owner_token, device.qr, *extra]


def record_digest(record: FactoryRecord, token: str | None) -> str:
    """What identifies a record's content (the same record gives the same digest)."""
    text = repr((_RECORD_VALUES(record), token))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_batch(
    keyring: Keyring, account_id: int, now: Any, batch: list[tuple[int, Any]]
) -> tuple[list[Prepared], list[RejectedRow]]:
    """Validate numbered raw rows and prepare the valid ones as new devices of ``account_id``
    (a row repeating an earlier row's deviceId is rejected)."""
    prepared: list[Prepared] = []
    rejected: list[RejectedRow] = []
    seen: set[str] = set()
    for index, raw in batch:
        path = f"devices[{index - 1}]"
        device_id = raw.get("deviceId") if isinstance(raw, dict) else None
        name = device_id if isinstance(device_id, str) else None
        try:
            if isinstance(raw, InvalidArgument):  # A row the reader could not even read.
                raise raw
            record, token = _parse(raw, path)
        except InvalidArgument as exc:
            errors = exc.errors or (FieldError(path, exc.message),)
            rejected.append(RejectedRow(index, name, exc.code, exc.message, errors))
            continue
        if record.device_id in seen:
            reason = "appears earlier in this import"
            rejected.append(row_error(index, record.device_id, "already_exists", reason))
            continue
        seen.add(record.device_id)
        prepared.append(_prepare(keyring, account_id, now, index, record, token))
    return prepared, rejected


def row_error(index: int, name: str | None, code: str, reason: str) -> RejectedRow:
    field_name = f"devices[{index - 1}].deviceId"
    return RejectedRow(
        index, name, code, f"{field_name}: {reason}", (FieldError(field_name, reason),)
    )


def _parse(raw: Any, path: str) -> tuple[FactoryRecord, str | None]:
    token = None
    if isinstance(raw, dict):
        if raw.get("qr") is not None:
            raw, token = _with_qr(dict(raw), raw["qr"], path)
        elif raw.get("deviceId") is None and isinstance(raw.get("devEui"), str):
            raw = {**raw, "deviceId": raw["devEui"]}  # A LoRaWAN file names devices by DevEUI.
    record = parse_factory_record(raw, path=path)
    if record.public_key is not None:
        try:
            pem.check_ec_p256_public_key(record.public_key)
        except ValueError as exc:
            raise InvalidArgument.for_field(f"{path}.publicKey", str(exc)) from None
    return record, token


def _with_qr(raw: dict[str, Any], qr: Any, path: str) -> tuple[dict[str, Any], str | None]:
    """A row's TR005 payload in place of (or agreeing with) its EUI columns."""
    del raw["qr"]
    try:
        if not isinstance(qr, str):
            raise tr005.QrError("must be a string")
        payload = tr005.decode(qr)
    except tr005.QrError as exc:
        raise InvalidArgument.for_field(f"{path}.qr", str(exc)) from None
    if not isinstance(payload, tr005.Tr005Payload):
        raise InvalidArgument.for_field(f"{path}.qr", "must be a TR005 'LW:D0' payload")
    for name, attr in _QR_FIELDS:
        given = raw.get(name)
        value = getattr(payload, attr)
        if given is not None and (not isinstance(given, str) or given.upper() != value):
            raise InvalidArgument.for_field(f"{path}.{name}", "differs from the qr payload")
        raw[name] = value
    if payload.serial_number is not None:
        if raw.get("serial") not in (None, payload.serial_number):
            raise InvalidArgument.for_field(f"{path}.serial", "differs from the qr payload")
        raw["serial"] = payload.serial_number
    raw.setdefault("deviceId", payload.dev_eui)
    token = None
    if payload.owner_token is not None:
        try:
            token = OwnerToken(payload.owner_token).value
        except ValueError as exc:
            raise InvalidArgument.for_field(f"{path}.qr", f"owner token {exc}") from None
    return raw, token


def _prepare(
    keyring: Keyring,
    account_id: int,
    now: Any,
    index: int,
    rec: FactoryRecord,
    given: str | None,
) -> Prepared:
    app_key = secrets.token_hex(16).upper() if rec.generate_app_key else rec.app_key
    token = given or new_owner_token()
    digest = record_digest(rec, given)
    values = (
        rec.device_id,
        None,
        account_id,
        DeviceStatus.UNCLAIMED.value,
        None,
        rec.dev_eui,
        rec.join_eui,
        rec.profile_id,
        rec.vin,
        rec.imei,
        rec.serial,
        rec.mac,
        rec.public_key,
        app_key and keyring.seal(app_key, "devices.app_key"),
        rec.iccid and keyring.seal(rec.iccid, "devices.iccid"),
        rec.device_secret and keyring.seal(rec.device_secret, "devices.device_secret"),
        rec.tkm_info,
        tuple(rec.tags),  # Hashable: store/bulk.py converts it once.
        digest,
        owner_token_digest(token),
        keyring.seal(token, "devices.owner_token"),
        None,
        now,
        now,
    )
    generated = app_key if rec.generate_app_key else None
    return Prepared(
        index, digest, given is not None, values, token, label_for(rec, token), generated
    )
