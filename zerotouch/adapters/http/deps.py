"""Request dependencies as ``Annotated`` aliases: the runtime and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zerotouch.domain.errors import Unauthenticated
from zerotouch.services.accounts import authenticate
from zerotouch.services.runtime import Principal, Runtime

_bearer = HTTPBearer(auto_error=False, description="An API key from `zerotouch keys create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("An API key is required: 'Authorization: Bearer <key>'.")
    return authenticate(rt, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
