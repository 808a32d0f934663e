"""The manufacturer's list of what it imported, and its labels: re-printed, as images, in bulk."""

from __future__ import annotations

import asyncio
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
from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.records import IDENTIFIER_FIELDS
from zerotouch.domain.views import FactoryDevice
from zerotouch.protocols import qr_labels
from zerotouch.services import devices, manufacturing
from zerotouch.services.factory_import import LABEL_COLUMNS, label_row

router = APIRouter(prefix="/v1/manufacturing", tags=["manufacturing"], route_class=CheckedRoute)

LIVE_FORMATS = (qr_labels.Format.SVG, qr_labels.Format.PNG, qr_labels.Format.TEXT)
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


@router.get("/devices/{device_id}/label", response_model=schemas.LabelPublic, summary="GetLabel")
async def get_label(device_id: str, caller: CallerDep) -> Response:
    """Re-print the owner token and QR payload of an unclaimed device this account imported."""
    label = await caller.run(devices.reprint_label, device_id=device_id)
    return reply(schemas.LabelPublic.of(label))


_QR_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {qr_labels.MEDIA_TYPES[f]: {} for f in LIVE_FORMATS}}
}


@router.get(
    "/devices/{device_id}/qr",
    response_class=Response,
    responses=_QR_ANSWERS,
    summary="GetLabelImage",
)
async def get_label_image(
    device_id: str, caller: CallerDep, format: qr_labels.Format = qr_labels.Format.SVG
) -> Response:
    """The label of an unclaimed device this account imported, for the line's printer: its
    QR code with the deviceId and serial under it (``svg``, ``png``), or its payload (``text``)."""
    if format not in LIVE_FORMATS:
        raise InvalidArgument.for_field("format", "must be svg, png or text")
    found = await caller.run(devices.reprint_label, device_id=device_id)
    label = qr_labels.Label(found.device_id, found.qr, found.serial)
    body = await asyncio.to_thread(qr_labels.render, label, format)
    return Response(body, media_type=qr_labels.MEDIA_TYPES[format])


@router.get(
    "/labels",
    response_model=schemas.Page[schemas.LabelPublic],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="ListLabels",
)
async def list_labels(
    request: Request,
    caller: CallerDep,
    page: PageDep,
    tag: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The labels (owner token and QR payload) of this account's unclaimed devices, in import
    order, for printing a batch; ``Accept: text/csv``: all of them, as the import's labels CSV."""
    service = functools.partial(manufacturing.list_labels, tag=tag)
    if wants_csv(request):
        return await csv_export(caller, service, LABEL_COLUMNS, label_row)
    found = await caller.run(service, page_limit=page.limit, page_token=page.token)
    return reply_page(found, schemas.LabelPublic.of)
