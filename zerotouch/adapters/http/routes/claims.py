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

from zerotouch.adapters.http import schemas
from zerotouch.adapters.http.deps import CallerDep, ClaimsDep, read_body, reply
from zerotouch.adapters.http.guards import CheckedRoute, read_json
from zerotouch.domain.errors import InvalidArgument, ZerotouchError
from zerotouch.domain.views import DeviceView
from zerotouch.services import claims
from zerotouch.services.batching import GroupCommit
from zerotouch.services.claims import ClaimRequest
from zerotouch.services.runtime import Principal

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/claimed-devices", tags=["devices"], route_class=CheckedRoute)

BULK_ROWS_MAX = 1_000  # Nordic's claim_devices sends at most this many rows a request.

_CLAIM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ClaimCreate"}},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": 'Rows of `token[,"tag1,tag2"]`, no header: a bulk claim.',
                }
            },
        },
    }
}
_CLAIM_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "A bulk claim's outcome", "model": schemas.BulkClaimPublic},
    202: {"description": "A dry run: the claim would succeed", "model": schemas.ClaimCheck},
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
    (200, each row claimed or refused on its own)."""
    raw = await read_body(request)
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = _json_object(raw, declared)
    if body is None:
        if dryrun:
            raise InvalidArgument.for_field("dryrun", "checks one claim, not a CSV of them")
        rows = _csv_rows(raw)
        return reply(await _claim_rows(caller.principal, rows, batch))
    wanted = _claim_request(caller.principal, body)
    if dryrun:
        device_id = await asyncio.to_thread(claims.check_claim, caller.runtime, wanted)
        return reply(schemas.ClaimCheck(device_id=device_id), 202)
    view = await batch(wanted)
    return reply(schemas.DevicePublic.of(view), 201)


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


def _claim_request(principal: Principal, body: dict[str, Any]) -> ClaimRequest:
    try:
        given = schemas.ClaimCreate.model_validate(body)
    except pydantic.ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    tags = list(given.tags)
    if given.claim_token is not None:
        tags = [t.strip() for tag in tags for t in tag.split(",") if t.strip()]
    return ClaimRequest(principal, given.owner_token, given.qr, tags, given.claim_token)


Row = tuple[str, list[str]] | InvalidArgument  # A token and its tags, or why not.


def _csv_rows(raw: bytes) -> list[tuple[int, Row]]:
    """Each row's number (from 1, as the file counts them) and its token and tags; a row that
    cannot be one is its own refusal. Blank rows are passed over."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field("body", f"is not UTF-8 (byte {exc.start})") from None
    rows: list[tuple[int, Row]] = []
    reader = csv.reader(io.StringIO(text))
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append((number, InvalidArgument.for_field("row", f"cannot be read: {exc}")))
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > 2:
            reason = f"has {len(cells)} cells: a token, and its tags in one cell"
            rows.append((number, InvalidArgument.for_field("row", reason)))
            continue
        tags = [t.strip() for t in cells[1].split(",") if t.strip()] if len(cells) == 2 else []
        rows.append((number, (cells[0].strip(), tags)))
        if len(rows) > BULK_ROWS_MAX:
            raise InvalidArgument.for_field("body", f"holds more than {BULK_ROWS_MAX} rows")
    if not rows:
        raise InvalidArgument.for_field("body", "holds no claim")
    return rows


async def _claim_rows(
    principal: Principal,
    rows: list[tuple[int, Row]],
    batch: GroupCommit[ClaimRequest, DeviceView],
) -> schemas.BulkClaimPublic:
    async def one(row: Row) -> DeviceView:
        if isinstance(row, InvalidArgument):
            raise row
        token, tags = row
        return await batch(ClaimRequest(principal, tags=tags, claim_token=token))

    outcomes = await asyncio.gather(*(one(row) for _, row in rows), return_exceptions=True)
    claimed, failed = [], []
    for (number, _), outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, DeviceView):
            claimed.append(outcome.device_id)
        elif isinstance(outcome, ZerotouchError):
            failed.append(_failure(number, outcome))
        elif isinstance(outcome, Exception):
            log.error("a bulk claim's row %d failed", number, exc_info=outcome)
            failed.append(
                schemas.BulkClaimFailure(
                    row=number, code="internal_error", message="The claim failed; try again."
                )
            )
        else:
            raise outcome
    return schemas.BulkClaimPublic(claimed_ids=claimed, failed=failed)


def _failure(number: int, error: ZerotouchError) -> schemas.BulkClaimFailure:
    errors = None
    if isinstance(error, InvalidArgument):
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
    return schemas.BulkClaimFailure(
        row=number, code=error.code, message=error.message, errors=errors
    )
