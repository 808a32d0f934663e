"""Factory import of personalization records, with owner tokens and QR labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zerotouch.domain.records import IDENTIFIER_FIELDS
from zerotouch.domain.values import Permission
from zerotouch.domain.views import (
    DEFAULT_PAGE_LIMIT,
    FactoryDevice,
    ImportedDevice,
    ImportResult,
    Page,
    RejectedRow,
)
from zerotouch.services import factory_import
from zerotouch.services.factory_import import label_for
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import devices as store
from zerotouch.store import paging

__all__ = [
    "identifiers_of",
    "import_devices",
    "label_for",
    "list_imported",
    "list_labels",
]


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
    rows, total, next_token = _imported(rt, principal, tag, claimed, page_limit, page_token)
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


def list_labels(
    rt: Runtime,
    *,
    principal: Principal,
    tag: str | None = None,
    page_limit: int = DEFAULT_PAGE_LIMIT,
    page_token: str | None = None,
) -> Page[ImportedDevice]:
    """The labels of the caller's account's unclaimed devices, in import order."""
    rows, total, next_token = _imported(rt, principal, tag, False, page_limit, page_token)
    labels = []
    for row in rows:
        token = rt.keyring.open_text(row.owner_token_sealed, "devices.owner_token")
        qr = label_for(row, token)
        labels.append(ImportedDevice(row.device_id, token, qr, serial=row.serial))
    return Page(labels, total, next_token)


def _imported(
    rt: Runtime,
    principal: Principal,
    tag: str | None,
    claimed: bool | None,
    page_limit: int,
    page_token: str | None,
) -> tuple[list[Any], int, str | None]:
    principal.require(Permission.IMPORT_DEVICES)
    limit = paging.check_limit(page_limit)
    after = paging.decode_token(page_token)
    with rt.db.read() as conn:
        return store.imported_page(
            conn,
            account_id=principal.account_id,
            tag=tag,
            claimed=claimed,
            after=after,
            limit=limit,
        )


class _Collected:
    def __init__(self) -> None:
        self.devices: list[ImportedDevice] = []
        self.rejected: list[RejectedRow] = []

    def device(self, row: int, device: ImportedDevice) -> None:
        self.devices.append(device)

    def rejected_row(self, row: RejectedRow) -> None:
        self.rejected.append(row)


def import_devices(
    rt: Runtime,
    *,
    principal: Principal,
    records: Sequence[Any],
    atomic: bool = False,
    update: bool = False,
) -> ImportResult:
    """Import a list of records in one batch; with ``atomic`` one bad row rejects all."""
    sink = _Collected()
    rows = enumerate(records, start=1)
    tally = factory_import.import_listed(
        rt, principal=principal, rows=rows, sink=sink, atomic=atomic, update=update
    )
    return ImportResult(tally.imported, sink.rejected, sink.devices, tally.unchanged, tally.updated)
