"""The ASGI application: routes, the one error mapping, metrics, and the runtime's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zerotouch import __version__
from zerotouch.adapters.http import problems
from zerotouch.adapters.http.metrics import RequestMetrics
from zerotouch.adapters.http.routes import devices, manufacturing, misc, provisioning, rules
from zerotouch.bootstrap import build_runtime
from zerotouch.domain.errors import ZerotouchError
from zerotouch.services.runtime import Runtime
from zerotouch.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; the runtime (engine, keyring) is made in the lifespan unless given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings or Settings())
        app.state.runtime = rt
        try:
            yield
        finally:
            if runtime is None:
                rt.db.dispose()

    app = FastAPI(
        title="zerotouch",
        version=__version__,
        description="Zero-touch provisioning: factory import, claims, provisioning plans.",
        lifespan=lifespan,
    )
    for router in (
        manufacturing.router,
        devices.router,
        provisioning.router,
        rules.router,
        misc.router,
    ):
        app.include_router(router)
    app.add_exception_handler(ZerotouchError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(StarletteHTTPException, problems.on_http_error)
    app.add_exception_handler(Exception, problems.on_unexpected)
    app.add_middleware(RequestMetrics, runtime=lambda: app.state.runtime)
    return app
