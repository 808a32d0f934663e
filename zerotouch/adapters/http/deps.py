"""Request dependencies as ``Annotated`` aliases, and how routes call services.

The caller's API key is checked before any route runs and before a byte of its body is read
(``OperatorAuth``, in guards.py). Service calls are synchronous and talk to the database, so
they run on the default thread pool: no database wait ever holds up the event loop and the
other requests on it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from zerotouch.domain.errors import Unauthenticated
from zerotouch.domain.views import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, DeviceView, Page
from zerotouch.services.batching import GroupCommit
from zerotouch.services.claims import ClaimRequest
from zerotouch.services.core import Core
from zerotouch.services.runtime import Principal, Runtime

T = TypeVar("T")
V = TypeVar("V")
P = TypeVar("P", bound=BaseModel)

# Declares the scheme in the OpenAPI document; the key itself is checked by OperatorAuth.
_bearer = HTTPBearer(auto_error=False, description="An API key from `zerotouch keys create`.")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The runtime and the principal whose API key OperatorAuth checked."""

    runtime: Runtime
    principal: Principal

    async def run(self, service: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a service call for this principal on the thread pool."""
        return await asyncio.to_thread(service, self.runtime, principal=self.principal, **kwargs)


async def get_caller(request: Request, _key: Annotated[Any, Depends(_bearer)]) -> Caller:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("An API key is required: 'Authorization: Bearer <key>'.")
    return Caller(request.app.state.runtime, principal)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_claims(request: Request) -> GroupCommit[ClaimRequest, DeviceView]:
    core: Core = request.app.state.core
    return core.claims


# Claims go through group commit (see services.claims.claim_devices).
ClaimsDep = Annotated[GroupCommit[ClaimRequest, DeviceView], Depends(get_claims)]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """Which page of a list the caller asked for (API.md, Lists)."""

    limit: int
    token: str | None


async def get_page_query(
    page_limit: Annotated[int, Query(alias="pageLimit", ge=1, le=MAX_PAGE_LIMIT)] = (
        DEFAULT_PAGE_LIMIT
    ),
    page_next_token: Annotated[str | None, Query(alias="pageNextToken", max_length=512)] = None,
) -> PageQuery:
    return PageQuery(page_limit, page_next_token)


PageDep = Annotated[PageQuery, Depends(get_page_query)]


def reply_page(page: Page[V], public: Callable[[V], P]) -> Response:
    """A page of views as the list body every list answers with."""
    body = {
        "items": [public(item).model_dump(mode="json", by_alias=True) for item in page.items],
        "total": page.total,
        "pageNextToken": page.next_token,
    }
    return Response(json.dumps(body), media_type="application/json")


def reply(body: BaseModel, status_code: int = 200) -> Response:
    """Serialize once: FastAPI would validate a returned model again before serializing it."""
    return Response(
        body.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


async def read_body(request: Request) -> bytes:
    """The whole body (its size is capped by BodyLimit, in guards.py)."""
    chunks = [chunk async for chunk in request.stream()]
    return b"".join(chunks)


def wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


async def csv_export(
    caller: Caller,
    service: Callable[..., Page[V]],
    header: Sequence[str],
    row: Callable[[V], list[Any]],
) -> Response:
    """Every page of a list service's answer as one CSV, streamed a page at a time. The first
    page is read before the answer starts, so a refusal is still an error answer."""
    first = await caller.run(service, page_limit=MAX_PAGE_LIMIT)

    def following(token: str) -> Page[V]:
        return service(
            caller.runtime, principal=caller.principal, page_limit=MAX_PAGE_LIMIT, page_token=token
        )

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        page = first
        while True:
            writer.writerows(row(item) for item in page.items)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if page.next_token is None:
                return
            page = following(page.next_token)

    return StreamingResponse(lines(), media_type="text/csv")
