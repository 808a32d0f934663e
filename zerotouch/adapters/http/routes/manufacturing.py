"""Factory import and label re-printing."""

from __future__ import annotations

import csv
import functools
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import (
    CallerDep,
    PageDep,
    csv_export,
    read_body,
    reply,
    reply_page,
    wants_csv,
)
from zerotouch.adapters.http.guards import CheckedRoute, read_json
from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.records import IDENTIFIER_FIELDS, RECORD_FIELDS
from zerotouch.domain.values import Permission
from zerotouch.domain.views import FactoryDevice
from zerotouch.services import devices, manufacturing

IMPORT_PATH = "/v1/manufacturing/devices"
router = APIRouter(prefix="/v1/manufacturing", tags=["manufacturing"], route_class=CheckedRoute)

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"devices": {"type": "array", "items": {"type": "object"}}},
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


# The longest cell a record holds is a PEM public key (4,096 characters); longer ones are
# reported by their field, as any other bad value, instead of stopping the reader.
CSV_CELL_MAX = 1024 * 1024


def parse_csv(text: str) -> list[dict[str, Any] | InvalidArgument]:
    """CSV with a header row of record field names; tags are ';'-separated, empty cells unset.

    A row the reader cannot take (a NUL, an unclosed quote) or one with more cells than the
    header is its own rejected row; the other rows go on.
    """
    csv.field_size_limit(CSV_CELL_MAX)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise InvalidArgument.for_field("header", f"cannot be read: {exc}") from None
    unknown = [name for name in header if name not in RECORD_FIELDS]
    repeated = [name for index, name in enumerate(header) if name in header[:index]]
    if "deviceId" not in header or unknown or repeated:
        if unknown:
            reason = f"unknown column {unknown[0]!r}"
        elif repeated:
            reason = f"column {repeated[0]!r} appears more than once"
        else:
            reason = "needs a deviceId column"
        raise InvalidArgument.for_field("header", reason)
    records: list[dict[str, Any] | InvalidArgument] = []
    while True:
        path = f"devices[{len(records)}]"
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append(InvalidArgument.for_field(path, f"cannot be read as CSV: {exc}"))
            continue
        if len(cells) > len(header):
            reason = f"has {len(cells)} cells; the header names {len(header)} columns"
            records.append(InvalidArgument.for_field(path, reason))
            continue
        record: dict[str, Any] = {}
        for key, value in zip(header, cells, strict=False):
            if value != "":
                record[key] = [t for t in value.split(";") if t] if key == "tags" else value
        records.append(record)
    return records


def _parse_json(raw: bytes) -> list[Any]:
    # Strings are checked record by record (a bad row is rejected alone).
    body = read_json(raw, check_text=False)
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
        raise InvalidArgument.for_field("devices", "must be a list of records")
    return list(body["devices"])


@router.post(
    "/devices",
    response_model=schemas.ImportPublic,
    openapi_extra=_IMPORT_BODY,
    summary="ImportDevices",
)
async def import_devices(request: Request, caller: CallerDep, atomic: bool = False) -> Response:
    # Who is asking was settled before a byte of the body was read (guards.OperatorAuth).
    caller.principal.require(Permission.IMPORT_DEVICES)
    raw = await read_body(request)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type == "text/csv":
        try:
            records = parse_csv(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise InvalidArgument(
                "body: is not UTF-8", errors=[FieldError("body", "is not UTF-8")]
            ) from None
    elif content_type in ("application/json", ""):
        records = _parse_json(raw)
    else:
        raise InvalidArgument.for_field("Content-Type", "must be application/json or text/csv")
    result = await caller.run(manufacturing.import_devices, records=records, atomic=atomic)
    if "text/csv" in request.headers.get("accept", ""):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["deviceId", "ownerToken", "qr"])
        writer.writerows((d.device_id, d.owner_token, d.qr) for d in result.devices)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={
                "X-Imported-Count": str(result.imported),
                "X-Rejected-Count": str(len(result.rejected)),
            },
        )
    # Built by hand: thousands of rows, and a pydantic model per row would cost more than the
    # rest of the answer. The shape is ImportPublic's.
    body = {
        "imported": result.imported,
        "rejected": [
            {"row": r.row, "deviceId": r.device_id, "code": r.code, "message": r.message}
            for r in result.rejected
        ],
        "devices": [
            {"deviceId": d.device_id, "ownerToken": d.owner_token, "qr": d.qr}
            for d in result.devices
        ],
    }
    return Response(json.dumps(body), media_type="application/json")


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
