"""RFC 9457 problem details: every error kind maps to an HTTP status here, and only here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zerotouch.domain import errors

log = logging.getLogger("zerotouch.http")

STATUS_BY_KIND: dict[type[errors.ZerotouchError], int] = {
    errors.InvalidArgument: 422,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.FailedPrecondition: 409,
    errors.ResourceExhausted: 409,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
    errors.PeerFailed: 502,
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    502: "Bad Gateway",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_for(error: errors.ZerotouchError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 500


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field_errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:zerotouch:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        # nRF Cloud's clients read the reason from ``message``: the same text as ``detail``.
        "message": detail,
    }
    if field_errors is not None:
        body["errors"] = field_errors
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ZerotouchError)
    status = status_for(exc)
    field_errors = None
    if isinstance(exc, errors.InvalidArgument):
        field_errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(status, exc.code, exc.message, field_errors=field_errors, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [
        {"field": _field_path(tuple(e["loc"])), "message": str(e["msg"])}
        for e in jsonable_encoder(exc.errors())
    ]
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items)
    return problem(422, "validation_failed", detail, field_errors=items)


async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("Request failed unexpectedly", exc_info=exc)
    return problem(500, "internal_error", "The server failed to handle the request.")
