"""Factory import of personalization records, with owner tokens and QR labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zerotouch.crypto import pem
from zerotouch.crypto.hashing import new_owner_token, secret_hash
from zerotouch.domain.errors import AlreadyExists, FieldError, InvalidArgument
from zerotouch.domain.lifecycle import DeviceStatus
from zerotouch.domain.records import IDENTIFIER_FIELDS, FactoryRecord, parse_factory_record
from zerotouch.domain.values import Permission
from zerotouch.domain.views import (
    DEFAULT_PAGE_LIMIT,
    FactoryDevice,
    ImportedDevice,
    ImportResult,
    Page,
    RejectedRow,
)
from zerotouch.protocols import tr005
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as store
from zerotouch.store import paging

MAX_IMPORT_RECORDS = 10_000
_CONFLICT_RETRIES = 3


_IDENTIFIER_COLUMNS = dict(
    zip(IDENTIFIER_FIELDS, ("dev_eui", "join_eui", "vin", "imei", "serial", "mac"), strict=True)
)


def identifiers_of(row: Any) -> dict[str, str | None]:
    """A device row's identifiers, by their API names."""
    return {name: getattr(row, column) for name, column in _IDENTIFIER_COLUMNS.items()}


def list_imported(
    rt: Runtime,
    *,
    principal: Principal,
    tag: str | None = None,
    claimed: bool | None = None,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[FactoryDevice]:
    """The devices the caller's account imported, in import order, claimed or not."""
    principal.require(Permission.IMPORT_DEVICES)
    limit = paging.check_limit(page_limit)
    after = paging.decode_token(page_token)
    with rt.db.read() as conn:
        rows, total, next_token = store.imported_page(
            conn,
            account_id=principal.account_id,
            tag=tag,
            claimed=claimed,
            after=after,
            limit=limit,
        )
    items = [
        FactoryDevice(
            row.device_id,
            identifiers_of(row),
            list(row.factory_tags),
            row.account_id is not None,
            row.created_at,
        )
        for row in rows
    ]
    return Page(items, total, next_token)


def label_for(record: FactoryRecord | Any, owner_token: str) -> str:
    """The QR payload printed on the box: TR005 for LoRaWAN devices, else a zerotouch label."""
    if record.join_eui and record.dev_eui and record.profile_id:
        return tr005.encode_fields(
            record.join_eui, record.dev_eui, record.profile_id, owner_token=owner_token
        )
    return tr005.encode_label(tr005.ZerotouchLabel(owner_token, record.device_id))


def _validate(
    raw_records: Sequence[Any],
) -> tuple[list[tuple[int, FactoryRecord]], list[RejectedRow]]:
    accepted: list[tuple[int, FactoryRecord]] = []
    rejected: list[RejectedRow] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_records):
        path = f"devices[{index}]"
        device_id = raw.get("deviceId") if isinstance(raw, dict) else None
        name = device_id if isinstance(device_id, str) else None
        try:
            if isinstance(raw, InvalidArgument):  # A row the front-end could not even read.
                raise raw
            record = parse_factory_record(raw, path=path)
            if record.public_key is not None:
                try:
                    pem.check_ec_p256_public_key(record.public_key)
                except ValueError as exc:
                    raise InvalidArgument.for_field(f"{path}.publicKey", str(exc)) from None
        except InvalidArgument as exc:
            errors = exc.errors or (FieldError(path, exc.message),)
            rejected.append(RejectedRow(index + 1, name, exc.code, exc.message, errors))
            continue
        if record.device_id in seen:
            rejected.append(
                RejectedRow(
                    index + 1,
                    name,
                    "already_exists",
                    f"{path}.deviceId: appears earlier in this import",
                    (FieldError(f"{path}.deviceId", "appears earlier in this import"),),
                )
            )
            continue
        seen.add(record.device_id)
        accepted.append((index, record))
    return accepted, rejected


def import_devices(
    rt: Runtime, *, principal: Principal, records: Sequence[Any], atomic: bool = False
) -> ImportResult:
    """Import valid records, report invalid ones; with ``atomic`` one bad row rejects all."""
    principal.require(Permission.IMPORT_DEVICES)
    if len(records) > MAX_IMPORT_RECORDS:
        raise InvalidArgument.for_field(
            "devices", f"must hold at most {MAX_IMPORT_RECORDS} records"
        )
    accepted, invalid = _validate(records)
    if atomic and invalid:
        _refuse(invalid, len(records))
    # Tokens, sealing and labels cost CPU: done before the write transaction, so the database's
    # write lock is held only for the inserts.
    prepared = _prepare(rt, principal, accepted)
    for attempt in range(_CONFLICT_RETRIES):
        try:
            return _write(rt, principal, prepared, invalid, atomic, len(records))
        except AlreadyExists:
            # Another import took one of these deviceIds between our check and our insert;
            # the next attempt sees it and reports that row.
            if attempt == _CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _refuse(rejected: list[RejectedRow], total: int) -> None:
    raise InvalidArgument(
        f"{len(rejected)} of {total} records were invalid; nothing was imported.",
        errors=[e for r in sorted(rejected, key=lambda r: r.row) for e in r.errors],
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    record: FactoryRecord
    row: dict[str, Any]
    label: ImportedDevice


def _prepare(
    rt: Runtime, principal: Principal, accepted: list[tuple[int, FactoryRecord]]
) -> list[_Prepared]:
    keyring = rt.keyring
    now = rt.clock()
    prepared = []
    for index, r in accepted:
        token = new_owner_token()
        row = {
            "device_id": r.device_id,
            "account_id": None,
            "imported_by": principal.account_id,
            "status": DeviceStatus.UNCLAIMED.value,
            "blocked_from": None,
            "dev_eui": r.dev_eui,
            "join_eui": r.join_eui,
            "profile_id": r.profile_id,
            "vin": r.vin,
            "imei": r.imei,
            "serial": r.serial,
            "mac": r.mac,
            "public_key": r.public_key,
            "app_key_sealed": r.app_key and keyring.seal(r.app_key, "devices.app_key"),
            "iccid_sealed": r.iccid and keyring.seal(r.iccid, "devices.iccid"),
            "device_secret_sealed": r.device_secret
            and keyring.seal(r.device_secret, "devices.device_secret"),
            "owner_token_hash": secret_hash(token),
            "owner_token_sealed": keyring.seal(token, "devices.owner_token"),
            "factory_tags": r.tags,
            "claimed_at": None,
            "created_at": now,
            "updated_at": now,
        }
        label = ImportedDevice(r.device_id, token, label_for(r, token))
        prepared.append(_Prepared(index, r, row, label))
    return prepared


def _write(
    rt: Runtime,
    principal: Principal,
    prepared: list[_Prepared],
    invalid: list[RejectedRow],
    atomic: bool,
    total: int,
) -> ImportResult:
    with rt.db.write() as conn:
        taken = store.imported_already(conn, [p.record.device_id for p in prepared])
        rejected = list(invalid)
        fresh: list[_Prepared] = []
        for p in prepared:
            if p.record.device_id in taken:
                field = f"devices[{p.index}].deviceId"
                reason = f"device {p.record.device_id!r} was imported before"
                rejected.append(
                    RejectedRow(
                        p.index + 1,
                        p.record.device_id,
                        "already_exists",
                        f"{field}: {reason}",
                        (FieldError(field, reason),),
                    )
                )
            else:
                fresh.append(p)
        rejected.sort(key=lambda r: r.row)
        if atomic and rejected:
            _refuse(rejected, total)
        if fresh:
            store.add_imported(conn, [p.row for p in fresh])
            # One event per import: who imported which devices. Per-device rows would double
            # the write cost of an import for no more information.
            audit_event(
                conn,
                principal,
                at=fresh[0].row["created_at"],
                event=(
                    "devices.imported",
                    None,
                    {"count": len(fresh), "deviceIds": [p.record.device_id for p in fresh]},
                ),
            )
    return ImportResult(imported=len(fresh), rejected=rejected, devices=[p.label for p in fresh])
