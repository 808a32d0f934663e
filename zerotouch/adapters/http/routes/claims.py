"""Claiming: one device by its owner token or label, a dry run, or a CSV of them at once.

Nordic's nRF Cloud clients post the same route: ``claimToken`` for the token, ``?dryrun=true``
to check a claim, and a bulk CSV body sent without a ``Content-Type`` (rows
``token[,"tag1,tag2"]``, no header). A body declared JSON is read as JSON; an undeclared one is
JSON when it holds an object, and CSV otherwise.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from typing import Any

import pydantic
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, ClaimsDep, read_body, reply
from zerotouch.adapters.http.guards import CheckedRoute, read_json
from zerotouch.domain.errors import FieldError, InvalidArgument
from zerotouch.domain.values import Permission
from zerotouch.domain.views import DeviceView
from zerotouch.protocols import qr_labels
from zerotouch.services import bulk_claims, claims
from zerotouch.services.batching import GroupCommit
from zerotouch.services.claims import ClaimRequest
from zerotouch.services.core import Core
from zerotouch.services.runtime import Principal

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/claimed-devices", tags=["devices"], route_class=CheckedRoute)

BULK_ROWS_MAX = 1_000  # Nordic's claim_devices sends at most this many rows a request.
CLAIM_PATH = "/v1/claimed-devices"
BULK_PATH = "/v1/claimed-devices/bulk"  # Any number of rows, claimed in the background.


class ClaimCheck(schemas.Public):
    """A dry run's answer: the claim would succeed."""

    device_id: str


class BulkClaimFailure(schemas.Public):
    row: int = Field(description="The row of the CSV, counted from 1.")
    code: str
    message: str
    errors: list[dict[str, str]] | None = None


class BulkClaimPublic(schemas.Public):
    claimed_ids: list[str]
    failed: list[BulkClaimFailure]


class BulkOpsPublic(schemas.Public):
    bulk_ops_request_id: str
    status: str = Field(description="PENDING, IN_PROGRESS or COMPLETED")
    total: int
    processed: int
    claimed_ids: list[str]
    failed: list[BulkClaimFailure]
    created_at: str | None
    completed_at: str | None

    @classmethod
    def of(cls, v: Any) -> BulkOpsPublic:
        return cls(
            bulk_ops_request_id=v.id,
            status=v.status,
            total=v.total,
            processed=v.processed,
            claimed_ids=v.claimed,
            failed=[BulkClaimFailure(**f) for f in v.failed],
            created_at=schemas.rfc3339(v.created_at),
            completed_at=schemas.rfc3339(v.completed_at),
        )


_CSV: dict[str, Any] = {
    "schema": {
        "type": "string",
        "description": 'Rows of `token[,"tag1,tag2"]`, no header: a bulk claim.',
    }
}
_CLAIM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ClaimCreate"}},
            "text/csv": _CSV,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "A photo or scan of the label: PNG or JPEG.",
                        },
                        "tags": {"type": "string", "description": "Comma-separated tags."},
                    },
                    "required": ["image"],
                }
            },
        },
    }
}
PHOTO_MAX_BYTES = 10 * 1024 * 1024
_CLAIM_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A bulk claim's outcome", "model": BulkClaimPublic},
    202: {"description": "A dry run: the claim would succeed", "model": ClaimCheck},
}


@router.post(
    "",
    status_code=201,
    response_model=schemas.DevicePublic,
    responses=_CLAIM_ANSWERS,
    openapi_extra=_CLAIM_BODY,
    summary="ClaimDevice",
)
async def claim_device(
    request: Request, caller: CallerDep, batch: ClaimsDep, dryrun: bool = False
) -> Response:
    """Claim one device (201), check a claim (``dryrun``: 202), or claim the rows of a CSV body
    (200, each row claimed or refused on its own), or claim the label in a photo or scan
    (``multipart/form-data``, field ``image``)."""
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared == "multipart/form-data":
        wanted = await _photo_claim(request, caller.principal)
        if dryrun:
            device_id = await asyncio.to_thread(claims.check_claim, caller.runtime, wanted)
            return reply(ClaimCheck(device_id=device_id), 202)
        return reply(schemas.DevicePublic.of(await batch(wanted)), 201)
    raw = await read_body(request)
    body = _json_object(raw, declared)
    if body is None:
        if dryrun:
            raise InvalidArgument.for_field("dryrun", "checks one claim, not a CSV of them")
        rows = _csv_rows(raw)
        return reply(await _claim_rows(caller.principal, rows, batch, _source(request)))
    wanted = _claim_request(caller.principal, body, _source(request))
    if dryrun:
        device_id = await asyncio.to_thread(claims.check_claim, caller.runtime, wanted)
        return reply(ClaimCheck(device_id=device_id), 202)
    view = await batch(wanted)
    return reply(schemas.DevicePublic.of(view), 201)


async def _photo_claim(request: Request, principal: Principal) -> ClaimRequest:
    """The claim of the one QR code in an uploaded picture (field ``image``)."""
    principal.require(Permission.WRITE_DEVICES)  # Before a byte of the picture is parsed.
    try:
        form = await request.form(max_files=1, max_fields=2, max_part_size=PHOTO_MAX_BYTES)
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "message", None) or getattr(exc, "detail", "")
        raise InvalidArgument.for_field("body", f"is not a form we can read: {detail}") from None
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise InvalidArgument.for_field("image", "is required: a PNG or JPEG file")
        picture = await image.read()
        tags_field = form.get("tags")
        tags = [t.strip() for t in str(tags_field or "").split(",") if t.strip()]
    finally:
        await form.close()
    try:
        found = await asyncio.to_thread(qr_labels.read, picture)
    except qr_labels.ImageError as exc:
        raise InvalidArgument.for_field("image", str(exc)) from None
    if not found:
        raise InvalidArgument.for_field("image", "holds no QR code we can read")
    if len(found) > 1:
        raise InvalidArgument(
            f"image: holds {len(found)} QR codes; photograph one label at a time",
            code="several_qr_codes",
            errors=[FieldError("image", f"holds {len(found)} QR codes")],
        )
    return ClaimRequest(principal, None, None, tags, found[0], source=_source(request))


def _json_object(raw: bytes, declared: str) -> dict[str, Any] | None:
    """The JSON object of the body, or None when the body is a CSV."""
    if declared == "text/csv":
        return None
    if declared == "application/json" or declared.endswith("+json"):
        body = read_json(raw)
    else:
        try:
            body = read_json(raw)
        except InvalidArgument:
            return None
    if isinstance(body, dict):
        return body
    if declared == "application/json" or isinstance(body, list):
        raise InvalidArgument.for_field("body", "must be a claim object")
    return None  # A CSV of one quoted token is a JSON string too, and "123..." a number.


def _source(request: Request) -> str | None:
    """The client's address (failed claims are limited by it)."""
    return request.client.host if request.client is not None else None


def _claim_request(
    principal: Principal, body: dict[str, Any], source: str | None = None
) -> ClaimRequest:
    try:
        given = schemas.ClaimCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    tags = list(given.tags)
    if given.claim_token is not None:
        tags = [t.strip() for tag in tags for t in tag.split(",") if t.strip()]
    return ClaimRequest(
        principal, given.owner_token, given.qr, tags, given.claim_token, source=source
    )


def _csv_rows(raw: bytes, limit: int | None = BULK_ROWS_MAX) -> list[bulk_claims.BulkRow]:
    """Each row with its number (from 1, as the file counts them), token and tags; a row that
    cannot be one carries its refusal. Blank rows are passed over."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field("body", f"is not UTF-8 (byte {exc.start})") from None
    rows: list[bulk_claims.BulkRow] = []
    reader = csv.reader(io.StringIO(text))
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            refusal = InvalidArgument.for_field("row", f"cannot be read: {exc}")
            rows.append(bulk_claims.BulkRow(number, refusal=refusal))
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > 2:
            reason = f"has {len(cells)} cells: a token, and its tags in one cell"
            rows.append(
                bulk_claims.BulkRow(number, refusal=InvalidArgument.for_field("row", reason))
            )
            continue
        tags = [t.strip() for t in cells[1].split(",") if t.strip()] if len(cells) == 2 else []
        rows.append(bulk_claims.BulkRow(number, cells[0].strip(), tags))
        if limit is not None and len(rows) > limit:
            raise InvalidArgument.for_field(
                "body", f"holds more than {limit} rows: post it to {BULK_PATH}"
            )
    if not rows:
        raise InvalidArgument.for_field("body", "holds no claim")
    return rows


def _internal_error(row: int, error: Exception) -> dict[str, Any]:
    log.error("a bulk claim's row %d failed", row, exc_info=error)
    return {"row": row, "code": "internal_error", "message": "The claim failed; try again."}


async def _claim_rows(
    principal: Principal,
    rows: list[bulk_claims.BulkRow],
    batch: GroupCommit[ClaimRequest, DeviceView],
    source: str | None,
) -> BulkClaimPublic:
    claimed, failed = await bulk_claims.claim_rows(
        principal, rows, batch, source=source, unexpected=_internal_error
    )
    return BulkClaimPublic(claimed_ids=claimed, failed=[BulkClaimFailure(**f) for f in failed])


@router.post(
    "/bulk",
    status_code=202,
    response_model=BulkOpsPublic,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": _CSV}}},
    summary="BulkClaimDevices",
)
async def bulk_claim(request: Request, caller: CallerDep) -> Response:
    """Claim the rows of a CSV of any size in the background; the answer names the status
    resource (``GET /v1/bulk-ops-requests/{id}``) that reports progress and each failed row."""
    caller.principal.require(Permission.WRITE_DEVICES)
    raw = await read_body(request)
    job = await caller.run(bulk_claims.submit, rows=_csv_rows(raw, limit=None))
    core: Core = request.app.state.core
    core.bulk.kick()
    response = reply(BulkOpsPublic.of(job), 202)
    response.headers["Location"] = f"/v1/bulk-ops-requests/{job.id}"
    return response


status_router = APIRouter(prefix="/v1/bulk-ops-requests", tags=["devices"])


@status_router.get(
    "/{bulk_ops_request_id}", response_model=BulkOpsPublic, summary="GetBulkOpsRequest"
)
async def bulk_status(bulk_ops_request_id: str, caller: CallerDep) -> Response:
    job = await caller.run(bulk_claims.get, job_id=bulk_ops_request_id)
    return reply(BulkOpsPublic.of(job))
