"""The nRF91 ``nrf_provisioning`` protocol over HTTP (Nordic's sdk-nrf, unmodified firmware):
a thin shell around the device gateway, as the Device API is.

``GET /v1/provisioning/commands`` answers the next plan commands as the modem's records
(protocols/nrf_at.py, CBOR per Nordic's CDDL: protocols/nrf_provisioning.py), as many as fit
the buffers the device announces; ``POST /v1/provisioning/response`` takes its answers. The
device signs each call with the modem's own JWT. Only the status codes the firmware handles
are answered: 200, 204, 400, 401, 403 and 500 (it backs off on 500).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from zerotouch.adapters.http import problems
from zerotouch.domain.errors import (
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    ZerotouchError,
)
from zerotouch.protocols import nrf_at, nrf_provisioning
from zerotouch.protocols.device_messages import CBOR
from zerotouch.services import dispatch
from zerotouch.services.core import Core
from zerotouch.services.device_gateway import DeviceGateway

PREFIX = "/v1/provisioning"
router = APIRouter(prefix=PREFIX, tags=["nRF91 devices"])
# A responses message is encoded into the device's transmit buffer (txMaxSize, 2 KiB by
# default); this leaves room for any build.
BODY_MAX = 16_384
SIZE_RANGE = (256, 65_536)
LIMIT_RANGE = (1, 255)
VERSION_MAX = 64


def _gateway(request: Request) -> tuple[DeviceGateway, str | None]:
    core: Core = request.app.state.core
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return core.devices, token.strip() if scheme.lower() == "bearer" else None


def _size(request: Request, name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    low, high = bounds
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidArgument.for_field(name, f"must be an integer {low}-{high}")
    return int(raw)


def _cursor(request: Request) -> str | None:
    """The plan command the device's ``after`` (the record it ran last) belongs to; none (an
    empty ``after``, as after a reboot): from the start of what is still open."""
    after = request.query_params.get("after", "")
    for name in ("mver", "cver"):  # Opaque text (the modem's and the library's versions).
        if len(request.query_params.get(name, "")) > VERSION_MAX:
            raise InvalidArgument.for_field(name, f"must be at most {VERSION_MAX} characters")
    if not after:
        return None
    if len(after.encode()) > nrf_provisioning.CORRELATION_ID_MAX or not after.isprintable():
        raise InvalidArgument.for_field("after", "is not a correlation id")
    return nrf_at.command_of(after)[0]


_FETCH_PARAMETERS = [
    {"name": "after", "in": "query", "schema": {"type": "string", "maxLength": 45}},
    {"name": "rxMaxSize", "in": "query", "schema": {"type": "integer", "minimum": 256}},
    {"name": "txMaxSize", "in": "query", "schema": {"type": "integer", "minimum": 256}},
    {"name": "mver", "in": "query", "schema": {"type": "string", "maxLength": VERSION_MAX}},
    {"name": "cver", "in": "query", "schema": {"type": "string", "maxLength": VERSION_MAX}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 255}},
]
_CBOR_BODY = {"content": {CBOR: {"schema": {"type": "string", "format": "binary"}}}}
_ANSWERS: dict[int | str, dict[str, object]] = {
    400: {"description": "Bad request."},
    401: {"description": "No valid device token."},
    403: {"description": "The device is blocked."},
    500: {"description": "Try again later."},
}


@router.get(
    "/commands",
    summary="nRF91 FetchCommands",
    responses={
        200: {"description": "Records, CBOR.", **_CBOR_BODY},
        204: {"description": "Nothing to do now."},
        **_ANSWERS,
    },
    openapi_extra={"parameters": _FETCH_PARAMETERS},
)
async def fetch_commands(request: Request) -> Response:
    """The next plan commands as the modem's records, as many as fit the device's buffers."""
    gateway, token = _gateway(request)
    device = await gateway.authenticate(token)  # A stranger learns nothing of the query.
    buffers = nrf_at.Buffers(
        rx=_size(request, "rxMaxSize", nrf_at.DEFAULT_RX, SIZE_RANGE),
        tx=_size(request, "txMaxSize", nrf_at.DEFAULT_TX, SIZE_RANGE),
        limit=_size(request, "limit", nrf_at.DEFAULT_LIMIT, LIMIT_RANGE),
    )
    fitter = nrf_at.Fitter(buffers)
    batch = await gateway.fetch_commands(
        device,
        after=_cursor(request),
        limit=min(buffers.limit, dispatch.MAX_LIMIT),
        fit=fitter,
    )
    if not batch:
        return Response(status_code=204)
    return Response(fitter.message(), media_type=CBOR)


@router.post(
    "/response",
    summary="nRF91 SubmitResponses",
    description="The body: the modem's responses message (CBOR, Nordic's CDDL).",
    responses={200: {"description": "Recorded."}, **_ANSWERS},
)
async def submit_responses(request: Request) -> Response:
    """The modem's answers to the records it ran; answers 200 (the only status the firmware
    takes for success)."""
    gateway, token = _gateway(request)
    device = await gateway.authenticate(token)  # Before a byte of the body is read.
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != CBOR:
        raise InvalidArgument.for_field("Content-Type", f"must be {CBOR}")
    raw = await _body(request)
    try:
        answers = nrf_provisioning.decode_responses(raw)
    except nrf_provisioning.NrfMessageError as exc:
        raise InvalidArgument.for_field("body", str(exc)) from None
    await gateway.submit_responses(device, nrf_at.results(answers))
    return Response(status_code=200)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    too_large = InvalidArgument.for_field("body", f"must be at most {BODY_MAX} bytes")
    if declared.isdigit() and int(declared) > BODY_MAX:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_MAX:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# The firmware handles these statuses only; anything else it takes for a failure it does not
# back off from, so every other error is a 500 ("try again later").
_STATUS = {InvalidArgument: 400, Unauthenticated: 401, PermissionDenied: 403}


async def on_error(_request: Request, exc: ZerotouchError) -> Response:
    status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 500)
    if status == 500:
        return problems.problem(500, "unavailable", "Try again later.")
    return problems.problem(status, exc.code, exc.message)
