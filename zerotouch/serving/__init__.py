"""The serving root: what one ``zerotouch serve`` process runs.

It owns the core (the runtime and its batchers, services/core.py) and the housekeeping, and
starts the front-ends as peers around it: the HTTP app (adapters/http), the OVMS listeners
(adapters/ovms) and the MQTT worker (adapters/mqtt). Adapters never import each other, or
this; they meet here. Several processes on the same ports are started by
``processes.serve_workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from zerotouch.adapters.http.app import create_app
from zerotouch.adapters.http.peers import HttpTransport
from zerotouch.adapters.mqtt.worker import MqttFrontend
from zerotouch.adapters.ovms.server import OvmsFrontend
from zerotouch.bootstrap import build_runtime
from zerotouch.services import ocpi as ocpi_service
from zerotouch.services import ovms as ovms_service
from zerotouch.services.core import Core
from zerotouch.services.device_auth import purge_token_ids
from zerotouch.services.runtime import Runtime
from zerotouch.settings import Settings
from zerotouch.store import fast

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 60


async def housekeeping(core: Core) -> None:
    """Periodic work: the replay cache forgets tokens that have expired, the OVMS rate limit
    its ended windows; OCPI partners silent for the ping interval get a still-alive check; bulk
    claims that a stopped node left unfinished are taken up."""
    rt = core.runtime
    while True:
        await asyncio.sleep(min(HOUSEKEEPING_INTERVAL_S, rt.ocpi.ping_interval))
        try:
            core.bulk.kick()
            await asyncio.to_thread(purge_token_ids, rt)
            await asyncio.to_thread(ovms_service.forget_rate_windows, rt)
            await ocpi_service.check_peers(rt, HttpTransport())
        except Exception:
            log.exception("housekeeping failed; it runs again in %s s", HOUSEKEEPING_INTERVAL_S)


@contextlib.asynccontextmanager
async def ovms_listeners(core: Core, settings: Settings) -> AsyncIterator[OvmsFrontend]:
    """The OVMS listeners the settings ask for, for as long as the block runs."""
    frontend = OvmsFrontend(core)
    try:
        shared = settings.workers > 1
        if settings.ovms_port:
            await frontend.listen(settings.host, settings.ovms_port, shared=shared)
        if settings.ovms_tls_port and settings.tls_cert and settings.tls_key:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
            await frontend.listen(settings.host, settings.ovms_tls_port, tls=context, shared=shared)
        yield frontend
    finally:
        await frontend.close()


@contextlib.asynccontextmanager
async def mqtt_worker(core: Core, settings: Settings) -> AsyncIterator[None]:
    """The MQTT worker, when the settings name a broker, for as long as the block runs."""
    if settings.mqtt_url is None:
        yield
        return
    ca_file = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
    frontend = MqttFrontend(core, settings.mqtt_url, ca_file=ca_file)
    core.broker = frontend
    frontend.start()
    try:
        yield
    finally:
        core.broker = None
        await frontend.close()


@contextlib.asynccontextmanager
async def running(core: Core, settings: Settings) -> AsyncIterator[None]:
    """The core's housekeeping and the non-HTTP front-ends, for as long as the block runs."""
    chores = asyncio.create_task(housekeeping(core))
    core.bulk.kick()  # Bulk claims this node (or another) left unfinished.
    try:
        async with ovms_listeners(core, settings), mqtt_worker(core, settings):
            yield
    finally:
        chores.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chores


def _settle() -> None:
    """Hot statements compiled before the first request, and a collector that leaves the
    process's lasting objects alone."""
    # What exists now (modules, compiled statements) lives as long as the process: the
    # collector need not walk it again. Its full collections otherwise stall every request in
    # flight (60-120 ms on a busy 2-core machine, measured under bench/claims.py).
    gc.collect()
    gc.freeze()


class HttpServer(uvicorn.Server):
    """uvicorn's server, for which SIGINT and SIGTERM only mean: stop serving.

    uvicorn raises the signal again once its server has stopped, which would end the process
    before the other front-ends and the housekeeping are closed; here the serving root closes
    them, and the process then ends normally.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def serve(
    core: Core,
    settings: Settings,
    http: uvicorn.Server,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM: the core's housekeeping, OVMS and HTTP side by side.
    HTTP stops first (the requests in flight finish), then the others."""
    async with running(core, settings):
        _settle()
        await http.serve(sockets=sockets)
    log.info("zerotouch stopped: HTTP, OVMS and housekeeping closed")


def run(
    settings: Settings,
    runtime: Runtime | None = None,
    options: dict[str, Any] | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """One serving process; its runtime is built from ``settings`` unless given. ``options``
    go to uvicorn (its event loop, HTTP parser, TLS, logging)."""
    rt = runtime or build_runtime(settings)
    core = Core(rt, ovms_rate_limit=settings.ovms_rate_limit)
    try:
        fast.prepare(rt.db.engine.dialect)
        config = uvicorn.Config(
            create_app(core, settings),
            host=settings.host,
            port=settings.port,
            lifespan="off",
            **(options or {}),
        )
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(serve(core, settings, HttpServer(config), sockets))
    finally:
        core.close()
        if runtime is None:
            rt.db.dispose()
