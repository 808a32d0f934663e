"""Request dependencies as ``Annotated`` aliases, and how routes call services.

Service calls are synchronous. Short ones (a claim, a read, a plan change: well under a
millisecond of database work) run right on the event loop through ``Caller.run``: a trip to the
thread pool costs more than the call itself (measured with bench/loadgen.py at 50 clients:
/healthz 665/s through the pool, 1,705/s inline). Calls that can run long, such as an import of
thousands of records, go through ``Caller.run_in_thread`` so they do not hold up other requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from zerotouch.adapters.group_commit import GroupCommit
from zerotouch.domain.errors import InvalidArgument, Unauthenticated
from zerotouch.domain.views import DeviceView
from zerotouch.services.accounts import authenticate
from zerotouch.services.devices import ClaimRequest
from zerotouch.services.runtime import Principal, Runtime

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="An API key from `zerotouch keys create`.")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The runtime and the presented API key; authenticated when the call runs."""

    runtime: Runtime
    api_key: str | None

    def principal(self) -> Principal:
        if self.api_key is None:
            raise Unauthenticated("An API key is required: 'Authorization: Bearer <key>'.")
        return authenticate(self.runtime, self.api_key)

    def run(self, service: Callable[..., T], /, **kwargs: Any) -> T:
        """Authenticate and run a short service call on the event loop."""
        return service(self.runtime, principal=self.principal(), **kwargs)

    async def run_in_thread(self, service: Callable[..., T], /, **kwargs: Any) -> T:
        """Authenticate and run a long service call in the thread pool."""
        return await run_in_threadpool(self.run, service, **kwargs)


async def get_caller(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return Caller(runtime, None)
    return Caller(runtime, credentials.credentials)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_claims(request: Request) -> GroupCommit[ClaimRequest, DeviceView]:
    claims: GroupCommit[ClaimRequest, DeviceView] = request.app.state.claims
    return claims


# Claims go through group commit (see services.devices.claim_devices).
ClaimsDep = Annotated[GroupCommit[ClaimRequest, DeviceView], Depends(get_claims)]


def reply(body: BaseModel, status_code: int = 200) -> Response:
    """Serialize once: FastAPI would validate a returned model again before serializing it."""
    return Response(
        body.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it grows past ``limit`` bytes (never buffered beyond)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidArgument.for_field("body", f"must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
