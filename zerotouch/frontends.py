"""What ``zerotouch serve`` runs in each process: the HTTP app and, for as long as it runs, the
other front-ends the settings ask for (the OVMS listeners). Adapters do not import each other;
they meet here."""

from __future__ import annotations

import contextlib
import gc
import ssl
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zerotouch.adapters.http.app import create_app
from zerotouch.adapters.ovms.server import OvmsFrontend
from zerotouch.services.runtime import Runtime
from zerotouch.settings import Settings
from zerotouch.store import fast


@contextlib.asynccontextmanager
async def ovms_listeners(rt: Runtime, settings: Settings) -> AsyncIterator[None]:
    frontend = OvmsFrontend(rt, rate_limit=settings.ovms_rate_limit)
    try:
        shared = settings.workers > 1
        if settings.ovms_port:
            await frontend.listen(settings.host, settings.ovms_port, shared=shared)
        if settings.ovms_tls_port and settings.tls_cert and settings.tls_key:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
            await frontend.listen(settings.host, settings.ovms_tls_port, tls=context, shared=shared)
        yield
    finally:
        await frontend.close()


@contextlib.asynccontextmanager
async def serving(rt: Runtime, settings: Settings) -> AsyncIterator[None]:
    """What a serving process adds to the app: hot statements compiled before the first
    request, a collector that leaves the process's lasting objects alone, and the OVMS
    listeners."""
    fast.prepare(rt.db.engine.dialect)
    # What exists now (modules, compiled statements) lives as long as the process: the
    # collector need not walk it again. Its full collections otherwise stall every request in
    # flight (60-120 ms on a busy 2-core machine, measured under bench/claims.py).
    gc.collect()
    gc.freeze()
    async with ovms_listeners(rt, settings):
        yield


def create_served_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The app with its front-ends, as each ``zerotouch serve`` worker runs it."""
    return create_app(settings, runtime=runtime, frontends=serving)
