"""What every request passes before a route sees it: the operator's API key, checked before
a byte of the body is read; a cap on the body's size; and parameters free of characters no
database can store.

Pure ASGI middleware: each refuses with the same problem responses as the routes
(problems.py) and lets everything else through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerotouch.adapters.http import problems, tls
from zerotouch.domain.errors import InvalidArgument, Unauthenticated, ZerotouchError
from zerotouch.domain.values import UNSTORABLE, is_storable, unstorable_path
from zerotouch.services.batching import GroupCommit
from zerotouch.services.runtime import Principal

OPERATOR_PREFIX = "/v1/"


class OperatorAuth:
    """The operator API (``/v1``) needs a known, unexpired, unrevoked API key: checked here,
    before the route and before its body, so an unknown caller's upload is never read.
    The keys of requests that arrive together are looked up in one statement."""

    def __init__(self, app: ASGIApp, keys: GroupCommit[str, Principal]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(OPERATOR_PREFIX):
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization")
        scheme, _, key = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not key.strip():
                raise Unauthenticated("An API key is required: 'Authorization: Bearer <key>'.")
            principal = await self.keys(key.strip())
        except ZerotouchError as exc:  # 401, or 503 when the database did not answer.
            response = await problems.on_domain_error(Request(scope), exc)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class FactoryClientCert:
    """With a factory CA configured, manufacturing calls come over mutual TLS: a request under
    ``prefix`` whose connection presented no certificate the CA verified is refused (403)
    before its key or body is looked at. Other calls are unaffected."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(self.prefix)
            and tls.client_certificate(scope) is None
        ):
            response = problems.problem(
                403,
                "client_certificate_required",
                "Manufacturing calls need a client certificate from the factory CA "
                "(zerotouch certs factory).",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Request bodies are capped: a declared length beyond the cap is refused before anything
    is read, and a body that streams past it is cut off there (413 either way)."""

    def __init__(self, app: ASGIApp, limit: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        cut = False
        started = False

        async def limited() -> Message:
            nonlocal received, cut
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if cut:
                return  # What the app answers a cut-off body is replaced by the 413.
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not cut:
                raise
            # The app's reading ended at the cut (a client disconnect, as far as it knows).
        if cut and not started:
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Response:
    return problems.problem(
        413,
        "body_too_large",
        f"body: must be at most {limit} bytes",
        field_errors=[{"field": "body", "message": f"must be at most {limit} bytes"}],
    )


class CleanParameters:
    """Path and query parameters holding a NUL, a lone surrogate or bytes that are not UTF-8
    are refused by name (422): no database stores a NUL in text, and such a value could
    otherwise reach one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _unclean(scope)
            if field is not None:
                refusal = InvalidArgument.for_field(field, UNSTORABLE)
                response = await problems.on_domain_error(Request(scope), refusal)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unclean(scope: Scope) -> str | None:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    if not _clean_bytes(unquote_to_bytes(raw_path)):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if query:
        # Unquoted byte for byte (latin-1), then read as UTF-8 strictly.
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        for name, value in pairs:
            name_bytes = name.encode("latin-1")
            if not _clean_bytes(name_bytes):
                return "query"
            if not _clean_bytes(value.encode("latin-1")):
                return name_bytes.decode("utf-8")
    return None


def _clean_bytes(raw: bytes) -> bool:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return is_storable(text)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class Unexpected:
    """An error no handler took is logged once, with its traceback, and answered with a 500
    problem; it goes no further (the server would log it a second time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            response = await problems.on_unexpected(Request(scope), exc)
            if not started:
                await response(scope, receive, send)


class CheckedRequest(Request):
    """A request whose JSON body is read strictly: UTF-8, no NaN or Infinity, no nesting past
    MAX_NESTING, and no string that cannot be stored; each problem names the field."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body())
        return self._json


MAX_NESTING = 32  # Operator requests are shallow objects; deeper nesting is garbage or an attack.


def read_json(raw: bytes, *, check_text: bool = True) -> Any:
    """A JSON body as plain data; InvalidArgument naming the field for anything else.
    ``check_text``: refuse any string that cannot be stored (else the caller checks them)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument.for_field("body", f"is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument.for_field(
            "body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (RecursionError, ValueError) as exc:
        reason = (
            f"nests deeper than {MAX_NESTING} levels"
            if isinstance(exc, RecursionError)
            else str(exc)
        )
        raise InvalidArgument.for_field("body", reason) from None
    if _depth(value) > MAX_NESTING:
        raise InvalidArgument.for_field("body", f"nests deeper than {MAX_NESTING} levels")
    path = unstorable_path(value, "") if check_text else None
    if path is not None:
        raise InvalidArgument.for_field(path or "body", UNSTORABLE)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"is not valid JSON: {constant} is not a JSON number")


def _depth(value: Any) -> int:
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            level.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            level.extend((v, depth + 1) for v in item)
    return deepest


class CheckedRoute(APIRoute):
    """Operator routes read their JSON bodies with CheckedRequest; its refusals are the
    InvalidArgument they are (FastAPI would turn any error while reading into a bare 400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handle(CheckedRequest(request.scope, request.receive))
            except StarletteHTTPException as exc:
                if isinstance(exc.__cause__, InvalidArgument):
                    raise exc.__cause__ from None
                raise

        return checked
