"""The OCPI endpoints partners call (OCPI 2.2.1 and 2.1.1): versions, version details and
credentials. Answers are OCPI envelopes; X-Request-ID and X-Correlation-ID are echoed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from zerotouch.adapters.http.deps import read_body
from zerotouch.adapters.http.guards import read_json
from zerotouch.adapters.http.peers import HttpTransport
from zerotouch.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PeerFailed,
    PermissionDenied,
    Unauthenticated,
    ZerotouchError,
)
from zerotouch.protocols import ocpi
from zerotouch.services import ocpi as ocpi_service
from zerotouch.services.runtime import Runtime

log = logging.getLogger(__name__)
PREFIX = "/ocpi/"
router = APIRouter(prefix="/ocpi", tags=["ocpi"])
MAX_BODY_BYTES = 64 * 1024  # A credentials object is a few hundred bytes.


def _reply(request: Request, data: Any, *, status: int = 200, code: int = ocpi.SUCCESS,
           message: str = "Success") -> JSONResponse:  # fmt: skip
    rt: Runtime = request.app.state.runtime
    request_id = request.headers.get("x-request-id")
    if request_id is None:
        log.info("ocpi: a request from %s came without X-Request-ID", _client(request))
        request_id = str(uuid.uuid4())
    headers = {
        "X-Request-ID": request_id,
        "X-Correlation-ID": request.headers.get("x-correlation-id") or request_id,
    }
    body = ocpi.envelope(data, now=rt.clock(), status_code=code, message=message)
    peer = getattr(request.state, "ocpi_peer", "unknown")
    rt.metrics.ocpi_requests.labels(peer=peer, status=str(status)).inc()
    return JSONResponse(body, status_code=status, headers=headers)


def _client(request: Request) -> str:
    return request.client.host if request.client else "an unknown address"


def _known(request: Request, caller: ocpi_service.Caller) -> ocpi_service.Caller:
    """The caller, remembered for the request's metrics (by peer)."""
    peer = caller.peer
    request.state.ocpi_peer = (
        f"{peer.country_code}-{peer.party_id}" if peer is not None else "registering"
    )
    return caller


def _refusal(request: Request, error: ZerotouchError) -> JSONResponse:
    if isinstance(error, Unauthenticated):
        return _reply(request, None, status=401, code=ocpi.CLIENT_ERROR, message=error.message)
    if isinstance(error, FailedPrecondition):
        return _reply(request, None, status=405, code=ocpi.CLIENT_ERROR, message=error.message)
    if isinstance(error, PeerFailed):
        number = error.code.removeprefix("ocpi_")
        code = int(number) if number.isdigit() else ocpi.UNUSABLE_API
        return _reply(request, None, status=400, code=code, message=error.message)
    if isinstance(error, InvalidArgument):
        return _reply(
            request, None, status=400, code=ocpi.INVALID_PARAMETERS, message=error.message
        )
    if isinstance(error, PermissionDenied):
        return _reply(request, None, status=403, code=ocpi.CLIENT_ERROR, message=error.message)
    if isinstance(error, NotFound):
        return _reply(request, None, status=404, code=ocpi.UNKNOWN_OBJECT, message=error.message)
    raise error


def _caller(request: Request, version: str | None) -> ocpi_service.Caller:
    """The token in the Authorization header: on the versions endpoint base64 or raw, on a
    version's endpoints as that version writes it (raw on 2.2.1 when the setting allows)."""
    rt: Runtime = request.app.state.runtime
    header = request.headers.get("authorization")
    if version is None:
        candidates = []
        for each in (ocpi.V221, ocpi.V211):
            try:
                candidates.append(ocpi.token_from_header(header, each, accept_raw=True).token)
            except ocpi.OcpiError:
                continue
        for token in dict.fromkeys(candidates):
            try:
                return _known(request, ocpi_service.authenticate(rt, token))
            except Unauthenticated:
                continue
        raise Unauthenticated("No known OCPI token.")
    try:
        presented = ocpi.token_from_header(header, version, accept_raw=rt.ocpi.accept_raw_tokens)
    except ocpi.OcpiError as exc:
        raise Unauthenticated(str(exc)) from None
    for note in presented.tolerated:
        log.info("ocpi: tolerated from %s: %s", _client(request), note)
    return _known(request, ocpi_service.authenticate(rt, presented.token))


async def _caller_of(request: Request, version: str | None) -> ocpi_service.Caller:
    """``_caller`` on the thread pool: finding the token's owner reads the database."""
    return await asyncio.to_thread(_caller, request, version)


def _version(raw: str) -> str:
    if raw not in ocpi.SUPPORTED:
        raise InvalidArgument.for_field("version", "is not a version we speak")
    return raw


@router.get("/versions", summary="GetOcpiVersions")
async def get_versions(request: Request) -> JSONResponse:
    try:
        await _caller_of(request, None)
    except ZerotouchError as exc:
        return _refusal(request, exc)
    base = request.app.state.runtime.ocpi.public_url
    data = [{"version": v, "url": f"{base}/ocpi/{v}"} for v in ocpi.SUPPORTED]
    return _reply(request, data)


@router.get("/{version}", summary="GetOcpiVersionDetails")
async def get_version_details(version: str, request: Request) -> JSONResponse:
    try:
        version = _version(version)
        await _caller_of(request, version)
    except ZerotouchError as exc:
        return _refusal(request, exc)
    url = f"{request.app.state.runtime.ocpi.public_url}/ocpi/{version}/credentials"
    if version == ocpi.V211:
        endpoints = [{"identifier": "credentials", "url": url}]
    else:
        base = f"{request.app.state.runtime.ocpi.public_url}/ocpi{HUBCLIENTINFO}"
        endpoints = [
            {"identifier": "credentials", "role": role, "url": url}
            for role in ("SENDER", "RECEIVER")
        ]
        endpoints.append({"identifier": "hubclientinfo", "role": "RECEIVER", "url": base})
        if request.app.state.runtime.ocpi.role == "HUB":
            endpoints.append({"identifier": "hubclientinfo", "role": "SENDER", "url": base})
    return _reply(request, {"version": version, "endpoints": endpoints})


@router.get("/{version}/credentials", summary="GetOcpiCredentials")
async def get_credentials(version: str, request: Request) -> JSONResponse:
    """Our credentials, with the token the caller presented (a token A or its own)."""
    rt: Runtime = request.app.state.runtime
    try:
        version = _version(version)
        caller = await _caller_of(request, version)
    except ZerotouchError as exc:
        return _refusal(request, exc)
    ours = await asyncio.to_thread(ocpi_service.our_credentials, rt, caller.token)
    return _reply(request, ocpi.build_credentials(ours, version))


@router.post("/{version}/credentials", summary="RegisterOcpiPartner")
async def post_credentials(version: str, request: Request) -> JSONResponse:
    """A partner registers with a token A; it gets our credentials and a new token."""
    return await _exchange(request, version, ocpi_service.register_incoming)


async def _exchange(request: Request, version: str, handle: Any) -> JSONResponse:
    """POST or PUT of a partner's credentials: checked out by ``handle``, answered with ours."""
    rt: Runtime = request.app.state.runtime
    try:
        version = _version(version)
        caller = await _caller_of(request, version)
        body = await _credentials_body(request)
        ours = await handle(rt, HttpTransport(), caller=caller, version=version, body=body)
    except ZerotouchError as exc:
        return _refusal(request, exc)
    return _reply(request, ocpi.build_credentials(ours, version))


async def _credentials_body(request: Request) -> Any:
    return read_json(await read_body(request))


@router.put("/{version}/credentials", summary="UpdateOcpiCredentials")
async def put_credentials(version: str, request: Request) -> JSONResponse:
    """A registered partner gives us new credentials; it gets a new token from us."""
    return await _exchange(request, version, ocpi_service.update_incoming)


@router.delete("/{version}/credentials", summary="UnregisterOcpiPartner")
async def delete_credentials(version: str, request: Request) -> JSONResponse:
    """A registered partner ends its registration; its tokens die here."""
    rt: Runtime = request.app.state.runtime
    try:
        version = _version(version)
        caller = await _caller_of(request, version)
        await asyncio.to_thread(ocpi_service.unregister_incoming, rt, caller=caller)
    except ZerotouchError as exc:
        return _refusal(request, exc)
    return _reply(request, None)


HUBCLIENTINFO = "/2.2.1/hubclientinfo"
PAGE_LIMIT_MAX = 100


@router.put(HUBCLIENTINFO + "/{country_code}/{party_id}", summary="PutOcpiClientInfo")
async def put_client_info(country_code: str, party_id: str, request: Request) -> JSONResponse:
    """A hub tells us the status of a party behind it."""
    rt: Runtime = request.app.state.runtime
    try:
        caller = await _caller_of(request, ocpi.V221)
        body = await _credentials_body(request)
        info = await asyncio.to_thread(
            ocpi_service.put_client_info,
            rt,
            caller=caller,
            country_code=country_code,
            party_id=party_id,
            body=body,
        )
    except ZerotouchError as exc:
        return _refusal(request, exc)
    return _reply(request, info)


@router.get(HUBCLIENTINFO + "/{country_code}/{party_id}", summary="GetOcpiClientInfo")
async def get_client_info(country_code: str, party_id: str, request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    try:
        caller = await _caller_of(request, ocpi.V221)
        info = await asyncio.to_thread(
            ocpi_service.get_client_info,
            rt,
            caller=caller,
            country_code=country_code,
            party_id=party_id,
        )
    except ZerotouchError as exc:
        return _refusal(request, exc)
    return _reply(request, info)


@router.get(HUBCLIENTINFO, summary="ListOcpiClientInfo")
async def list_client_info(request: Request) -> JSONResponse:
    """As a hub: every party connected to us, paginated (offset, limit; Link, X-Total-Count)."""
    rt: Runtime = request.app.state.runtime
    try:
        caller = await _caller_of(request, ocpi.V221)
        offset = _int(request, "offset", 0, 0, 10**9)
        limit = _int(request, "limit", PAGE_LIMIT_MAX, 1, PAGE_LIMIT_MAX)
        items, total = await asyncio.to_thread(
            ocpi_service.list_client_infos, rt, caller=caller, offset=offset, limit=limit
        )
    except ZerotouchError as exc:
        return _refusal(request, exc)
    response = _reply(request, items)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Limit"] = str(limit)
    if offset + limit < total:
        url = f"{rt.ocpi.public_url}/ocpi{HUBCLIENTINFO}?offset={offset + limit}&limit={limit}"
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidArgument.for_field(name, f"must be an integer {low}-{high}")
    return int(raw)
