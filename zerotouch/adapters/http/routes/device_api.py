"""The Device API (API.md, Device API) over HTTP: a thin shell around the device gateway.

JSON by default; CBOR with ``Accept`` / ``Content-Type: application/cbor``. Everything between
the wire and the database (the token, the group of device calls, the long poll) is the
gateway's (services/device_gateway.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from zerotouch.adapters.http.deps import read_body
from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import device_messages as messages
from zerotouch.services.core import Core
from zerotouch.services.device_gateway import DeviceGateway, bounds_message

# Every call carries `Authorization: Bearer <JWT>` signed by the device (API.md, Device API).
router = APIRouter(prefix="/device/v1", tags=["device"])


def _int_param(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument.for_field(name, bounds_message(name)) from None


def _reply(request: Request, body: object) -> Response:
    """JSON, or CBOR when the device asks for it."""
    cbor = messages.wants_cbor(request.headers.get("accept"))
    return Response(
        messages.encode(body, cbor=cbor), media_type=messages.CBOR if cbor else messages.JSON
    )


def _gateway(request: Request) -> tuple[DeviceGateway, str | None]:
    """The gateway, and the device's token from ``Authorization: Bearer``.

    Routes read the request themselves rather than through FastAPI's dependency injection:
    devices call these two routes several times each, and resolving dependencies and parameters
    cost a tenth of the server's time per device (py-spy under bench/provision.py).
    """
    core: Core = request.app.state.core
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return core.devices, token.strip() if scheme.lower() == "bearer" else None


_FETCH_PARAMETERS = [
    {"name": "after", "in": "query", "schema": {"type": "string"}, "description": "cursor"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 20}},
    {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}},
]


@router.get(
    "/commands",
    summary="FetchCommands",
    responses={204: {"description": "Nothing to do now."}},
    openapi_extra={"parameters": _FETCH_PARAMETERS},
)
async def fetch_commands(request: Request) -> Response:
    """The next commands after the cursor, marked IN_PROGRESS; ``wait`` holds the request (at
    most 60 s) until there is something to do."""
    gateway, token = _gateway(request)
    device = await gateway.authenticate(token)  # A stranger learns nothing of the query.
    query = request.query_params
    batch = await gateway.fetch_commands(
        device,
        after=query.get("after"),
        limit=_int_param("limit", query.get("limit")),
        wait=_int_param("wait", query.get("wait")),
        gone=request.is_disconnected,
    )
    if not batch:
        return Response(status_code=204)
    return _reply(request, messages.commands_body(batch))


@router.post("/responses", summary="SubmitResponses")
async def submit_responses(request: Request) -> Response:
    """Results of commands this device holds IN_PROGRESS; others are ignored and not counted."""
    gateway, token = _gateway(request)
    device = await gateway.authenticate(token)  # Before a byte of the body is read.
    raw = await read_body(request)
    parsed = messages.parse_responses(messages.decode(raw, request.headers.get("content-type")))
    accepted = await gateway.submit_responses(device, parsed)
    return _reply(request, {"accepted": accepted})


def count_call(core: Core, method: str, outcome: str) -> None:
    """The Device API's calls in /metrics, by kind and outcome."""
    call = "fetch" if method == "GET" else "respond"
    core.runtime.metrics.device_calls.labels(call=call, outcome=outcome).inc()
