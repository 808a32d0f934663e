"""The ASGI application: routes, the one error mapping, metrics, and the runtime's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from zerotouch import __version__
from zerotouch.adapters.group_commit import GroupCommit
from zerotouch.adapters.http import contract, guards, problems
from zerotouch.adapters.http.metrics import RequestMetrics
from zerotouch.adapters.http.peers import HttpTransport
from zerotouch.adapters.http.routes import (
    api_keys,
    device_api,
    devices,
    manufacturing,
    misc,
    ocpi,
    ocpi_operator,
    ovms,
    provisioning,
    rules,
)
from zerotouch.bootstrap import build_runtime
from zerotouch.domain.errors import ZerotouchError
from zerotouch.domain.values import ROLE_PERMISSIONS, Permission
from zerotouch.services import devices as devices_service
from zerotouch.services import ocpi as ocpi_service
from zerotouch.services import ovms as ovms_service
from zerotouch.services.accounts import load_principals
from zerotouch.services.device_auth import load_credentials, purge_token_ids
from zerotouch.services.device_calls import run_device_calls
from zerotouch.services.runtime import Runtime
from zerotouch.settings import Settings

log = logging.getLogger(__name__)


HOUSEKEEPING_INTERVAL_S = 60
# While calls arrive together, a group could wait this long for more; the calls that arrive
# in one turn of the event loop make groups enough (measured under bench/claims.py).
GROUP_WINDOW_S = 0.0


async def _housekeeping(rt: Runtime) -> None:
    """Periodic work: the replay cache forgets tokens that have expired, the OVMS rate limit
    its ended windows; OCPI partners silent for the ping interval get a still-alive check."""
    while True:
        await asyncio.sleep(min(HOUSEKEEPING_INTERVAL_S, rt.ocpi.ping_interval))
        try:
            await asyncio.to_thread(purge_token_ids, rt)
            await asyncio.to_thread(ovms_service.forget_rate_windows, rt)
            await ocpi_service.check_peers(rt, HttpTransport())
        except Exception:
            log.exception("housekeeping failed; it runs again in %s s", HOUSEKEEPING_INTERVAL_S)


Frontends = Callable[[Runtime, Settings], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    frontends: Frontends | None = None,
) -> FastAPI:
    """Build the app; the runtime (engine, keyring) is made in the lifespan unless given.
    ``frontends`` runs other listeners (such as OVMS) for as long as the app runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or Settings()
        rt = runtime or build_runtime(config)
        app.state.runtime = rt
        app.state.claims = GroupCommit(
            functools.partial(devices_service.claim_devices, rt), window_s=GROUP_WINDOW_S
        )
        app.state.device_calls = GroupCommit(
            functools.partial(run_device_calls, rt), window_s=GROUP_WINDOW_S
        )
        app.state.device_credentials = GroupCommit(
            functools.partial(load_credentials, rt), window_s=GROUP_WINDOW_S
        )
        app.state.api_keys = GroupCommit(
            functools.partial(load_principals, rt), window_s=GROUP_WINDOW_S
        )
        app.state.body_limits = config
        housekeeping = asyncio.create_task(_housekeeping(rt))
        try:
            async with frontends(rt, config) if frontends else contextlib.nullcontext():
                yield
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            for batcher in (app.state.claims, app.state.device_calls):
                batcher.close()
            app.state.device_credentials.close()
            app.state.api_keys.close()
            if runtime is None:
                rt.db.dispose()

    # The OpenAPI pages' scripts and styles come with the installation (no CDN: they work
    # offline).
    app = FastAPIOffline(
        title="zerotouch",
        version=__version__,
        description="Zero-touch provisioning: factory import, claims, provisioning plans.",
        lifespan=lifespan,
    )
    app.openapi = lambda: contract.document(app)  # type: ignore[method-assign]
    # Routes match in this order; the Device API, called most, comes first.
    for router in (
        device_api.router,
        manufacturing.router,
        devices.router,
        provisioning.router,
        rules.router,
        ovms.router,
        ocpi_operator.router,
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
    app.add_middleware(device_api.DirectRoutes)
    app.add_middleware(guards.CleanParameters)
    app.add_middleware(guards.BodyLimit, limit=lambda scope: _body_limit(app, scope))
    app.add_middleware(guards.OperatorAuth, keys=lambda: app.state.api_keys)
    app.add_middleware(guards.Unexpected)
    app.add_middleware(RequestMetrics, runtime=lambda: app.state.runtime)
    return app


def _body_limit(app: FastAPI, scope: Scope) -> int:
    """Bytes a request's body may hold: factory imports are large, OCPI objects small."""
    settings: Settings = app.state.body_limits
    path: str = scope["path"]
    principal = scope.get("state", {}).get("principal")
    if (
        path == manufacturing.IMPORT_PATH
        and scope["method"] == "POST"
        and principal is not None
        and Permission.IMPORT_DEVICES in ROLE_PERMISSIONS[principal.role]
    ):
        return settings.max_import_bytes
    if path.startswith(ocpi.PREFIX):
        return min(ocpi.MAX_BODY_BYTES, settings.max_body_bytes)
    return settings.max_body_bytes
