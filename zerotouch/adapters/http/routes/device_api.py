"""The Device API (API.md, Device API): devices fetch their commands and report results.

JSON by default; CBOR with ``Accept`` / ``Content-Type: application/cbor``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from zerotouch.adapters.group_commit import GroupCommit
from zerotouch.adapters.http import problems
from zerotouch.adapters.http.deps import read_body
from zerotouch.domain.errors import InvalidArgument, ZerotouchError
from zerotouch.protocols import device_messages as messages
from zerotouch.services import dispatch
from zerotouch.services import responses as responses_service
from zerotouch.services.device_auth import DeviceCaller, DeviceCredentials, authenticate_device
from zerotouch.services.device_calls import DeviceWork
from zerotouch.services.runtime import Runtime
from zerotouch.services.wakeups import RECHECK_S

# Every call carries `Authorization: Bearer <JWT>` signed by the device (API.md, Device API).
router = APIRouter(prefix="/device/v1", tags=["device"])

MAX_WAIT_S = 60  # API.md: long polls last at most a minute.


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


def _calls(request: Request) -> GroupCommit[DeviceWork[Any], Any]:
    """Device calls that arrive together share a transaction (services/device_calls.py)."""
    calls: GroupCommit[DeviceWork[Any], Any] = request.app.state.device_calls
    return calls


async def _device(request: Request) -> DeviceCaller:
    """The device whose JWT verified, before anything else of the request is looked at.

    Read here rather than through FastAPI's dependency injection: devices call these two routes
    several times each, and resolving dependencies and parameters cost a tenth of the server's
    time per device (py-spy under bench/provision.py). The credentials of devices this process
    has not seen yet are read for all of those that call together, in one round trip.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    credentials: GroupCommit[str, DeviceCredentials] = request.app.state.device_credentials
    return await authenticate_device(
        request.app.state.runtime,
        token.strip() if scheme.lower() == "bearer" else None,
        credentials,
    )


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
    device = await _device(request)
    rt: Runtime = request.app.state.runtime
    query = request.query_params
    after, limit, wait = query.get("after"), query.get("limit"), query.get("wait")
    count = _int_param(
        "limit", limit, default=dispatch.DEFAULT_LIMIT, low=1, high=dispatch.MAX_LIMIT
    )
    seconds = _int_param("wait", wait, default=0, low=0, high=MAX_WAIT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    calls = _calls(request)
    fetch = DeviceWork(device, functools.partial(dispatch.fetch_commands, rt, after, count))
    batch = await calls(fetch)
    while not batch and loop.time() < deadline and not await request.is_disconnected():
        await rt.wakeups.wait(device.device_pk, min(RECHECK_S, deadline - loop.time()))
        if await asyncio.to_thread(dispatch.has_commands, rt, caller=device, after=after):
            batch = await calls(fetch)
    if not batch:
        return Response(status_code=204)
    return _reply(request, messages.commands_body(batch))


@router.post("/responses", summary="SubmitResponses")
async def submit_responses(request: Request) -> Response:
    """Results of commands this device holds IN_PROGRESS; others are ignored and not counted."""
    device = await _device(request)
    rt: Runtime = request.app.state.runtime
    raw = await read_body(request)
    parsed = messages.parse_responses(messages.decode(raw, request.headers.get("content-type")))
    submit = functools.partial(responses_service.submit_responses, rt, parsed)
    work = DeviceWork(device, submit, authority=responses_service.needs_authority(parsed))
    accepted = await _calls(request)(work)
    return _reply(request, {"accepted": accepted})


class DirectRoutes:
    """ASGI middleware that hands the Device API's two routes straight to their endpoints.

    Devices call them several times each, thousands at a time; the framework's layers between
    the server and an endpoint (exception middleware, exit stack, routing, the route's handler)
    cost a seventh of the server's CPU per device (py-spy under bench/provision.py), and these
    endpoints use none of them: they read the request themselves. Errors become the same
    problem responses as anywhere else. Other methods and paths go on to the application,
    where the same routes are declared (and documented).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = {
            (method, route.path): route
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            route = self.routes.get((scope["method"], path))
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # As routing would set it (the metrics' label).
        request = Request(scope, receive, send)
        response: Response
        try:
            response = await route.endpoint(request)
            outcome = "empty" if response.status_code == 204 else "ok"
        except ZerotouchError as exc:
            response = await problems.on_domain_error(request, exc)
            outcome = exc.code
        except Exception as exc:
            response = await problems.on_unexpected(request, exc)
            outcome = "internal_error"
        call = "fetch" if scope["method"] == "GET" else "respond"
        runtime: Runtime = request.app.state.runtime
        runtime.metrics.device_calls.labels(call=call, outcome=outcome).inc()
        await response(scope, receive, send)
