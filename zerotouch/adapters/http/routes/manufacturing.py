"""Factory import and label re-printing."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, read_body, reply
from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.records import RECORD_FIELDS
from zerotouch.domain.values import Permission
from zerotouch.services import devices, manufacturing

router = APIRouter(prefix="/v1/manufacturing", tags=["manufacturing"])

MAX_BODY_BYTES = 32 * 1024 * 1024  # 10,000 records with PEM keys fit with room to spare.

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


def parse_csv(text: str) -> list[dict[str, Any]]:
    """CSV with a header row of record field names; tags are ';'-separated, empty cells unset."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in RECORD_FIELDS]
    if "deviceId" not in header or unknown:
        reason = f"unknown column {unknown[0]!r}" if unknown else "needs a deviceId column"
        raise InvalidArgument.for_field("header", reason)
    records: list[dict[str, Any]] = []
    for row in reader:
        record: dict[str, Any] = {}
        for key, value in row.items():
            if key is None or value is None or value == "":
                continue
            record[key] = [t for t in value.split(";") if t] if key == "tags" else value
        records.append(record)
    return records


def _parse_json(raw: bytes) -> list[Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.for_field("body", "is not valid JSON") from None
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
    # Who is asking is settled before a byte of a possibly large body is read.
    caller.principal().require(Permission.IMPORT_DEVICES)
    raw = await read_body(request, MAX_BODY_BYTES)
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
    result = await caller.run_in_thread(
        manufacturing.import_devices, records=records, atomic=atomic
    )
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


@router.get(
    "/devices/{device_id}/label", response_model=schemas.ImportedDevicePublic, summary="GetLabel"
)
async def get_label(device_id: str, caller: CallerDep) -> Response:
    """Re-print the owner token and QR payload of an unclaimed device this account imported."""
    label = caller.run(devices.reprint_label, device_id=device_id)
    return reply(
        schemas.ImportedDevicePublic(
            device_id=label.device_id, owner_token=label.owner_token, qr=label.qr
        )
    )
