"""The manufacturer's list of what it imported, and label re-printing."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import (
    CallerDep,
    PageDep,
    csv_export,
    reply,
    reply_page,
    wants_csv,
)
from zerotouch.adapters.http.guards import CheckedRoute
from zerotouch.domain.records import IDENTIFIER_FIELDS
from zerotouch.domain.views import FactoryDevice
from zerotouch.services import devices, manufacturing

router = APIRouter(prefix="/v1/manufacturing", tags=["manufacturing"], route_class=CheckedRoute)

FACTORY_CSV = ("deviceId", *IDENTIFIER_FIELDS, "tags", "claimed", "importedAt")


@router.get(
    "/devices",
    response_model=schemas.Page[schemas.FactoryDevicePublic],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="ListImportedDevices",
)
async def list_imported(
    request: Request,
    caller: CallerDep,
    page: PageDep,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    claimed: bool | None = None,
) -> Response:
    """The devices this account imported, in import order (``Accept: text/csv``: all of them,
    as CSV); who claimed them and their plans are not shown."""
    service = functools.partial(manufacturing.list_imported, tag=tag, claimed=claimed)
    if wants_csv(request):
        return await csv_export(caller, service, FACTORY_CSV, _factory_row)
    found = await caller.run(service, page_limit=page.limit, page_token=page.token)
    return reply_page(found, schemas.FactoryDevicePublic.of)


def _factory_row(device: FactoryDevice) -> list[Any]:
    identifiers = [device.identifiers[name] or "" for name in IDENTIFIER_FIELDS]
    return [
        device.device_id,
        *identifiers,
        ";".join(device.tags),
        "true" if device.claimed else "false",
        schemas.rfc3339(device.imported_at),
    ]


@router.get(
    "/devices/{device_id}/label", response_model=schemas.ImportedDevicePublic, summary="GetLabel"
)
async def get_label(device_id: str, caller: CallerDep) -> Response:
    """Re-print the owner token and QR payload of an unclaimed device this account imported."""
    label = await caller.run(devices.reprint_label, device_id=device_id)
    return reply(
        schemas.ImportedDevicePublic(
            device_id=label.device_id, owner_token=label.owner_token, qr=label.qr
        )
    )
