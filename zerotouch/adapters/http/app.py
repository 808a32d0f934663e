"""The ASGI application: routes, the one error mapping, the guards and the request metrics.

It only builds routes around the core it is given (services/core.py): the serving root
(zerotouch/serving) makes the core, runs the housekeeping and starts this app and the other
front-ends as peers.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from zerotouch import __version__
from zerotouch.adapters.http import contract, guards, problems
from zerotouch.adapters.http.direct import DirectRoutes
from zerotouch.adapters.http.metrics import RequestMetrics
from zerotouch.adapters.http.routes import (
    api_keys,
    claims,
    device_api,
    devices,
    imports,
    manufacturing,
    misc,
    mqtt,
    nrf_device,
    ocpi,
    ocpi_operator,
    ovms,
    provisioning,
    rules,
    tags,
)
from zerotouch.domain.errors import ZerotouchError
from zerotouch.domain.values import ROLE_PERMISSIONS, Permission
from zerotouch.services.core import Core
from zerotouch.settings import Settings


def create_app(core: Core, settings: Settings | None = None) -> FastAPI:
    """The HTTP front-end of ``core``; ``settings`` give the body limits (the defaults if
    none)."""
    # The OpenAPI pages' scripts and styles come with the installation (no CDN: they work
    # offline).
    app = FastAPIOffline(
        title="zerotouch",
        version=__version__,
        description="Zero-touch provisioning: factory import, claims, provisioning plans.",
    )
    app.state.core = core
    app.state.runtime = core.runtime
    app.state.body_limits = settings or Settings()
    app.openapi = lambda: contract.document(app)  # type: ignore[method-assign]
    # Routes match in this order; the Device API, called most, comes first.
    for router in (
        device_api.router,
        nrf_device.router,
        imports.router,
        manufacturing.router,
        claims.router,
        claims.status_router,
        devices.router,
        provisioning.router,
        rules.router,
        tags.router,
        ovms.router,
        ocpi_operator.router,
        mqtt.router,
        api_keys.router,
        ocpi.router,
        misc.router,
    ):
        app.include_router(router)
    app.add_exception_handler(ZerotouchError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(StarletteHTTPException, problems.on_http_error)
    # The last middleware added is the outermost: the metrics count every request, the API
    # key is checked before the body's size, and both before anything reads the body.
    app.add_middleware(DirectRoutes, router=device_api.router, count=device_api.count_call)
    app.add_middleware(guards.CleanParameters)
    app.add_middleware(guards.BodyLimit, limit=lambda scope: _body_limit(app, scope))
    app.add_middleware(guards.OperatorAuth, keys=core.api_keys)
    if app.state.body_limits.manufacturing_client_ca is not None:
        app.add_middleware(guards.FactoryClientCert, prefix=MANUFACTURING_PREFIX)
    # nRF91 devices call paths under /v1 with their own tokens, and take only the statuses
    # their firmware handles: served before the operator's key and the body guards.
    app.add_middleware(
        DirectRoutes,
        router=nrf_device.router,
        count=device_api.count_call,
        on_error=nrf_device.on_error,
    )
    app.add_middleware(guards.Unexpected)
    app.add_middleware(RequestMetrics, runtime=core.runtime)
    return app


_LARGE_BODIES = {
    imports.IMPORT_PATH: Permission.IMPORT_DEVICES,
    claims.BULK_PATH: Permission.WRITE_DEVICES,
}


MANUFACTURING_PREFIX = "/v1/manufacturing/"


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


def _body_limit(app: FastAPI, scope: Scope) -> int:
    """Bytes a request's body may hold: factory imports and bulk claims are large (for those
    who may make them), OCPI objects small."""
    settings: Settings = app.state.body_limits
    path: str = scope["path"]
    principal = scope.get("state", {}).get("principal")
    large = _LARGE_BODIES.get(path)
    if (
        large is not None
        and scope["method"] == "POST"
        and principal is not None
        and large in ROLE_PERMISSIONS[principal.role]
    ):
        if path == imports.IMPORT_PATH and _content_type(scope) in imports.STREAMED:
            return sys.maxsize  # Read as it streams, a batch at a time: no cap needed.
        return settings.max_import_bytes
    if (
        path == claims.CLAIM_PATH
        and scope["method"] == "POST"
        and _content_type(scope) == "multipart/form-data"
    ):
        return max(claims.PHOTO_MAX_BYTES + 64 * 1024, settings.max_body_bytes)  # A photo.
    if path.startswith(ocpi.PREFIX):
        return min(ocpi.MAX_BODY_BYTES, settings.max_body_bytes)
    return settings.max_body_bytes
