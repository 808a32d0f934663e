"""The OVMS AP listener: a thin asyncio shell around protocols/ovms.py.

Hardening the reference server lacks: the first line must come within FIRST_LINE_TIMEOUT_S; a
connection closes GRACE_S after its answer; a line past MAX_LINE closes it; AP-C attempts are
rate limited per source address and per apkey, across every node on the database (answered
with AP-X; services/ovms.py). Each connection is a small
asyncio.Protocol (no stream reader, no task), so idle connections cost little memory.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import cast

from zerotouch.domain.errors import ZerotouchError
from zerotouch.protocols import ovms
from zerotouch.services.core import Core

log = logging.getLogger(__name__)

FIRST_LINE_TIMEOUT_S = 30.0
GRACE_S = 2.0  # Time for a car to read its answer (and for a second AP-C to get AP-X).


class CarConnection(asyncio.Protocol):
    def __init__(self, frontend: OvmsFrontend) -> None:
        self.frontend = frontend
        self.conn = ovms.ServerConnection()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.timer: asyncio.TimerHandle | None = None
        self.asked = False
        self.unanswered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(FIRST_LINE_TIMEOUT_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            requests = self.conn.receive(data)
        except ovms.ProtocolError as exc:
            log.info("ovms: %s closed: %s", self.peer, exc)
            self.transport.close()
            return
        for request in requests:
            if not self.asked:
                self.asked = True
                if self.timer is not None:
                    self.timer.cancel()
                self.frontend.submit(self, request)
            elif self.conn.answered:
                # Only the first AP-C of a connection is looked up (the one-answer rule).
                self.transport.write(self.conn.respond(None))
            else:
                self.unanswered += 1  # Its AP-X follows the first answer, in order.

    def answer(self, answer: ovms.Answer | None) -> None:
        """Send the answer to the first AP-C (and AP-X to any sent since); close after the
        grace period."""
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self.conn.respond(answer))
        for _ in range(self.unanswered):
            self.transport.write(self.conn.respond(None))
        self.unanswered = 0
        self.timer = asyncio.get_running_loop().call_later(GRACE_S, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


class OvmsFrontend:
    """The listeners of one server process, around its core.

    AP-C requests that arrive together are answered together, with one database transaction
    (the deliveries' audit events are written before any answer goes out): under load a commit
    serves many cars (the core's ``ovms_answers``; services/batching.py). A group that fails is
    answered again car by car, so one car's failure is only its own AP-X.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.servers: list[asyncio.Server] = []

    def submit(self, car: CarConnection, request: ovms.Request) -> None:
        self.core.ovms_answers.submit(
            (request.apkey, car.peer), lambda answer: self._answer(car, answer)
        )

    def _answer(self, car: CarConnection, answer: ovms.Answer | Exception | None) -> None:
        given = _or_refusal(answer)
        metrics = self.core.runtime.metrics
        metrics.ovms_answers.labels(answer="ap_x" if given is None else "ap_s").inc()
        car.answer(given)

    async def listen(
        self, host: str, port: int, *, tls: ssl.SSLContext | None = None, shared: bool = False
    ) -> asyncio.Server:
        """Listen on ``host:port``; ``shared``: with the other workers of this server
        (SO_REUSEPORT; the server made sure no one else listens there)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: CarConnection(self), host, port, ssl=tls, reuse_port=shared, backlog=4096
        )
        self.servers.append(server)
        return server

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


def _or_refusal(answer: ovms.Answer | Exception | None) -> ovms.Answer | None:
    """A failed lookup is answered with AP-X (the car retries later)."""
    if not isinstance(answer, Exception):
        return answer
    if isinstance(answer, ZerotouchError):
        log.warning("ovms: a car got AP-X: %s", answer.message)
    else:
        log.error("ovms: a car got AP-X", exc_info=answer)
    return None
