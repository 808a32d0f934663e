"""A real uvicorn server on a free loopback port, in a thread, for tests over real HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from zerotouch.adapters.http.app import create_app
from zerotouch.services.core import Core
from zerotouch.services.runtime import Runtime


def listening(core: Core) -> tuple[socket.socket, int, uvicorn.Server]:
    """A loopback socket on a free port, and a uvicorn server of the core's app for it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(core), log_level="warning", loop="asyncio", http="h11", lifespan="off"
    )
    return sock, sock.getsockname()[1], uvicorn.Server(config)


@contextlib.contextmanager
def live_server(rt: Runtime) -> Iterator[str]:
    core = Core(rt)
    sock, port, server = listening(core)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("The test server did not start.")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        core.close()
