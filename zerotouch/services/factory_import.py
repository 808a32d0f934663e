"""Factory import of personalization records, a batch at a time, for inputs of any size.

Rows come in numbered (from 1 after a header); each batch is validated, compared with what is
stored (by the digest of the record each device was imported from), prepared (owner tokens,
sealed secrets, labels) and written in one transaction. A re-run is idempotent: a row already
imported with the same content is unchanged; a changed row of an unclaimed device is updated
only when asked; a claimed device is never touched. An import stopped at any point leaves only
whole batches, and running it again goes on from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from zerotouch.crypto import pem
from zerotouch.crypto.hashing import new_owner_token, secret_hash
from zerotouch.domain.errors import AlreadyExists, FieldError, InvalidArgument
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.domain.records import FactoryRecord, parse_factory_record
from zerotouch.domain.values import OwnerToken, Permission
from zerotouch.domain.views import ImportedDevice, ImportTally, RejectedRow
from zerotouch.protocols import tr005
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import factory as store

BATCH_ROWS = 5_000
_RECORD_VALUES = operator.attrgetter(*(f.name for f in dataclasses.fields(FactoryRecord)))
_CONFLICT_RETRIES = 3
_QR_FIELDS = (("joinEui", "join_eui"), ("devEui", "dev_eui"), ("profileId", "profile_id"))


class ImportSink(Protocol):
    """Where an import's outcome goes, row by row, once each batch is committed."""

    def device(self, row: int, device: ImportedDevice) -> None: ...

    def rejected_row(self, row: RejectedRow) -> None: ...


@dataclass(slots=True)
class _Row:
    index: int  # Row number, from 1.
    record: FactoryRecord
    token: str | None  # An owner token the row brings (a label printed already), else None.
    digest: str
    state: store.ImportState | None = None
    insert: dict[str, Any] = field(default_factory=dict)
    label: ImportedDevice | None = None


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


LABEL_COLUMNS = ("deviceId", "ownerToken", "qr", "appKey", "serial")


def label_row(device: ImportedDevice) -> list[str]:
    """A device's line of the labels CSV (LABEL_COLUMNS) an import answers with."""
    extra = [device.app_key or "", device.serial or ""]
    return [device.device_id, device.owner_token, device.qr, *extra]


def record_digest(record: FactoryRecord, token: str | None) -> str:
    """What identifies a record's content (the same record gives the same digest)."""
    text = repr((_RECORD_VALUES(record), token))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def batches(rows: Iterable[tuple[int, Any]], size: int = BATCH_ROWS) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_rows(
    rt: Runtime,
    *,
    principal: Principal,
    rows: Iterable[tuple[int, Any]],
    sink: ImportSink,
    update: bool = False,
    atomic: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> ImportTally:
    """Import numbered raw rows (a dict, or the InvalidArgument of a row that could not be read)
    batch by batch; with ``atomic`` (one batch only) any rejected row rejects them all."""
    principal.require(Permission.IMPORT_DEVICES)
    tally = ImportTally()
    for batch in batches(rows, batch_rows):
        _import_batch(rt, principal, batch, sink, tally, update=update, atomic=atomic)
    return tally


def _import_batch(
    rt: Runtime,
    principal: Principal,
    batch: list[tuple[int, Any]],
    sink: ImportSink,
    tally: ImportTally,
    *,
    update: bool,
    atomic: bool,
) -> None:
    valid, rejected = _validate(batch)
    if atomic and rejected:
        _refuse(rejected, len(batch))
    for attempt in range(_CONFLICT_RETRIES):
        with rt.db.read() as conn:
            states = store.import_states(conn, [r.record.device_id for r in valid])
        for r in valid:
            r.state = states.get(r.record.device_id)
        fresh, changed, unchanged, refused = _classify(principal, valid, update)
        if atomic and refused:
            _refuse(sorted([*rejected, *refused], key=lambda r: r.row), len(batch))
        # Tokens, sealing and labels cost CPU: done before the write transaction, so the
        # database's write lock is held only for the writes.
        _prepare(rt, principal, fresh, changed)
        try:
            _write(rt, principal, fresh, changed)
        except AlreadyExists:
            # Another import took one of these deviceIds between our read and our insert; the
            # next attempt sees it and reports that row.
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            continue
        break
    for r in unchanged:
        assert r.state is not None
        if r.state.owner_token_sealed is not None:  # Unclaimed: its label, as printed.
            token = rt.keyring.open_text(r.state.owner_token_sealed, "devices.owner_token")
            qr = label_for(r.record, token)
            r.label = ImportedDevice(r.record.device_id, token, qr, serial=r.record.serial)
    outcome = sorted([*rejected, *refused], key=lambda r: r.row)
    for rej in outcome:
        sink.rejected_row(rej)
    for r in sorted([*fresh, *unchanged], key=lambda r: r.index):
        if r.label is not None:
            sink.device(r.index, r.label)
    tally.imported += len(fresh)
    tally.updated += len(changed)
    tally.unchanged += len(unchanged)
    tally.rejected += len(outcome)


def _validate(batch: list[tuple[int, Any]]) -> tuple[list[_Row], list[RejectedRow]]:
    valid: list[_Row] = []
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
            name = record.device_id
        except InvalidArgument as exc:
            errors = exc.errors or (FieldError(path, exc.message),)
            rejected.append(RejectedRow(index, name, exc.code, exc.message, errors))
            continue
        if record.device_id in seen:
            rejected.append(_row_error(index, name, "already_exists", path, "appears earlier"))
            continue
        seen.add(record.device_id)
        valid.append(_Row(index, record, token, record_digest(record, token)))
    return valid, rejected


def _row_error(index: int, name: str | None, code: str, path: str, reason: str) -> RejectedRow:
    field_name = f"{path}.deviceId"
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


def _classify(
    principal: Principal, rows: list[_Row], update: bool
) -> tuple[list[_Row], list[_Row], list[_Row], list[RejectedRow]]:
    fresh: list[_Row] = []
    changed: list[_Row] = []
    unchanged: list[_Row] = []
    refused: list[RejectedRow] = []
    for r in rows:
        state, path, name = r.state, f"devices[{r.index - 1}]", r.record.device_id
        if state is None:
            fresh.append(r)
        elif state.imported_by != principal.account_id:
            reason = f"device {name!r} was imported before"
            refused.append(_row_error(r.index, name, "already_exists", path, reason))
        elif state.digest == r.digest:
            unchanged.append(r)
        elif state.claimed:
            reason = f"device {name!r} is claimed; its record is not changed"
            refused.append(_row_error(r.index, name, "already_claimed", path, reason))
        elif update:
            changed.append(r)
        else:
            reason = "differs from the record it was imported with; update=true changes it"
            refused.append(_row_error(r.index, name, "record_changed", path, reason))
    return fresh, changed, unchanged, refused


def _prepare(rt: Runtime, principal: Principal, fresh: list[_Row], changed: list[_Row]) -> None:
    keyring = rt.keyring
    now = rt.clock()
    for r in [*fresh, *changed]:
        rec = r.record
        app_key = secrets.token_hex(16).upper() if rec.generate_app_key else rec.app_key
        values: dict[str, Any] = {
            "dev_eui": rec.dev_eui,
            "join_eui": rec.join_eui,
            "profile_id": rec.profile_id,
            "vin": rec.vin,
            "imei": rec.imei,
            "serial": rec.serial,
            "mac": rec.mac,
            "public_key": rec.public_key,
            "app_key_sealed": app_key and keyring.seal(app_key, "devices.app_key"),
            "iccid_sealed": rec.iccid and keyring.seal(rec.iccid, "devices.iccid"),
            "device_secret_sealed": rec.device_secret
            and keyring.seal(rec.device_secret, "devices.device_secret"),
            "tkm_info": rec.tkm_info,
            "factory_tags": tuple(rec.tags),  # Hashable: store/bulk.py converts it once.
            "record_digest": r.digest,
            "updated_at": now,
        }
        if r.state is not None:  # An update: the owner token stays unless the row brings one.
            values["pk"] = r.state.pk
            values["old_digest"] = r.state.digest
            if r.token is not None:
                values["owner_token_hash"] = secret_hash(r.token)
                values["owner_token_sealed"] = keyring.seal(r.token, "devices.owner_token")
            r.insert = values
            continue
        token = r.token or new_owner_token()
        r.insert = {
            "device_id": rec.device_id,
            "account_id": None,
            "imported_by": principal.account_id,
            "status": DeviceStatus.UNCLAIMED.value,
            "blocked_from": None,
            **values,
            "owner_token_hash": secret_hash(token),
            "owner_token_sealed": keyring.seal(token, "devices.owner_token"),
            "claimed_at": None,
            "created_at": now,
        }
        generated = app_key if rec.generate_app_key else None
        r.label = ImportedDevice(rec.device_id, token, label_for(rec, token), generated, rec.serial)


def _write(rt: Runtime, principal: Principal, fresh: list[_Row], changed: list[_Row]) -> None:
    if not fresh and not changed:
        return
    with rt.db.write() as conn:
        now = (fresh or changed)[0].insert["updated_at"]
        if fresh:
            store.add_imported(conn, [r.insert for r in fresh])
            # One event per batch: who imported which devices. Per-device rows would double
            # the write cost of an import for no more information.
            ids = [r.record.device_id for r in fresh]
            event = ("devices.imported", None, {"count": len(ids), "deviceIds": ids})
            audit_event(conn, principal, at=now, event=event)
        if changed:
            lost = store.update_imported(conn, [r.insert for r in changed])
            if lost:  # Claimed, or re-imported, since it was read: the next attempt sees it.
                raise AlreadyExists("A device changed while it was being updated.")
            ids = [r.record.device_id for r in changed]
            event = ("devices.updated", None, {"count": len(ids), "deviceIds": ids})
            audit_event(conn, principal, at=now, event=event)


def _refuse(rejected: list[RejectedRow], total: int) -> None:
    raise InvalidArgument(
        f"{len(rejected)} of {total} records were invalid; nothing was imported.",
        errors=[e for r in sorted(rejected, key=lambda r: r.row) for e in r.errors],
    )
