"""Request dependencies as ``Annotated`` aliases, and how routes call services.

The caller's API key is checked before any route runs and before a byte of its body is read
(``OperatorAuth``, in guards.py). Service calls are synchronous and talk to the database, so
they run on the default thread pool: no database wait ever holds up the event loop and the
other requests on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from zerotouch.adapters.group_commit import GroupCommit
from zerotouch.domain.errors import Unauthenticated
from zerotouch.domain.views import DeviceView
from zerotouch.services.devices import ClaimRequest
from zerotouch.services.runtime import Principal, Runtime

T = TypeVar("T")

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
    claims: GroupCommit[ClaimRequest, DeviceView] = request.app.state.claims
    return claims


# Claims go through group commit (see services.devices.claim_devices).
ClaimsDep = Annotated[GroupCommit[ClaimRequest, DeviceView], Depends(get_claims)]


def reply(body: BaseModel, status_code: int = 200) -> Response:
    """Serialize once: FastAPI would validate a returned model again before serializing it."""
    return Response(
        body.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


async def read_body(request: Request) -> bytes:
    """The whole body (its size is capped by BodyLimit, in guards.py)."""
    chunks = [chunk async for chunk in request.stream()]
    return b"".join(chunks)
