"""A zerotouch node with its MQTT worker, against a Mosquitto the test started, in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.live import listening
from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.adapters.mqtt.worker import MqttFrontend
from zerotouch.services.core import Core
from zerotouch.services.runtime import MqttEndpoints, Runtime


@dataclass
class Node:
    url: str
    core: Core
    frontend: MqttFrontend
    loop: asyncio.AbstractEventLoop

    def call(self, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)


def with_endpoints(rt: Runtime, broker: Broker) -> Runtime:
    rt.mqtt = MqttEndpoints(broker.device_url, broker.production_url(0))
    return rt


@contextlib.contextmanager
def node(rt: Runtime, broker: Broker) -> Iterator[Node]:
    """An HTTP server and an MQTT worker on one event loop, as `zerotouch serve` runs them."""
    core = Core(rt)
    sock, port, server = listening(core)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        frontend = MqttFrontend(core, broker.admin_url)
        core.broker = frontend
        holder["frontend"], holder["loop"] = frontend, asyncio.get_running_loop()
        frontend.start()
        await asyncio.wait_for(frontend.connected.wait(), 10)
        ready.set()
        try:
            await server.serve(sockets=[sock])
        finally:
            await frontend.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the node's MQTT worker did not connect")
    while not server.started:
        threading.Event().wait(0.01)
    try:
        yield Node(f"http://127.0.0.1:{port}", core, holder["frontend"], holder["loop"])
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        core.close()
