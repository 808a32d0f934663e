"""The Device API (API.md, Device API): devices fetch their commands and report results.

JSON by default; CBOR with ``Accept`` / ``Content-Type: application/cbor``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from zerotouch.adapters.http.deps import DeviceCallerDep, read_body
from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import device_messages as messages
from zerotouch.services import dispatch
from zerotouch.services import responses as responses_service
from zerotouch.services.runtime import Runtime
from zerotouch.services.wakeups import RECHECK_S

router = APIRouter(prefix="/device/v1", tags=["device"])

MAX_WAIT_S = 60  # API.md: long polls last at most a minute.
# Twenty results with a CSR or a public key each fit many times over.
MAX_RESPONSE_BODY_BYTES = 1024 * 1024


def _int_param(name: str, raw: str | None, *, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument.for_field(name, f"must be an integer {low}-{high}") from None
    if not low <= value <= high:
        raise InvalidArgument.for_field(name, f"must be an integer {low}-{high}")
    return value


def _reply(request: Request, body: object) -> Response:
    """JSON, or CBOR when the device asks for it."""
    cbor = messages.wants_cbor(request.headers.get("accept"))
    return Response(
        messages.encode(body, cbor=cbor), media_type=messages.CBOR if cbor else messages.JSON
    )


@router.get(
    "/commands",
    summary="FetchCommands",
    responses={204: {"description": "Nothing to do now."}},
)
async def fetch_commands(
    request: Request,
    device: DeviceCallerDep,
    after: str | None = None,
    limit: str | None = None,
    wait: str | None = None,
) -> Response:
    """The next commands after the cursor, marked IN_PROGRESS; ``wait`` holds the request (at
    most 60 s) until there is something to do."""
    rt: Runtime = request.app.state.runtime
    count = _int_param(
        "limit", limit, default=dispatch.DEFAULT_LIMIT, low=1, high=dispatch.MAX_LIMIT
    )
    seconds = _int_param("wait", wait, default=0, low=0, high=MAX_WAIT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    batch = dispatch.fetch_commands(rt, caller=device, after=after, limit=count)
    while not batch and loop.time() < deadline and not await request.is_disconnected():
        await rt.wakeups.wait(device.device_pk, min(RECHECK_S, deadline - loop.time()))
        if dispatch.has_commands(rt, caller=device, after=after):
            batch = dispatch.fetch_commands(rt, caller=device, after=after, limit=count)
    if not batch:
        return Response(status_code=204)
    return _reply(request, messages.commands_body(batch))


@router.post("/responses", summary="SubmitResponses")
async def submit_responses(request: Request, device: DeviceCallerDep) -> Response:
    """Results of commands this device holds IN_PROGRESS; others are ignored and not counted."""
    rt: Runtime = request.app.state.runtime
    raw = await read_body(request, MAX_RESPONSE_BODY_BYTES)
    parsed = messages.parse_responses(messages.decode(raw, request.headers.get("content-type")))
    accepted = responses_service.submit_responses(rt, caller=device, responses=parsed)
    return _reply(request, {"accepted": accepted})
