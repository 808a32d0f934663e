"""A lean HTTP/1.1 load generator: one keep-alive connection per client, uvloop, and the
httptools C parser for responses, so the measuring side costs far less CPU than the server.

httpx, good as it is for the service's own calls, spends about 2 ms of CPU per request here,
which would make the load generator the thing being measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httptools
import uvloop


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def json_request(method: str, path: str, body: object, token: str | None = None) -> Request:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Request(method, path, json.dumps(body).encode(), headers)


@dataclass
class Outcome:
    rate: float
    latencies: list[float]
    statuses: dict[int, int]
    bodies: list[bytes]

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


class _Response:
    def __init__(self) -> None:
        self.done = False
        self.body = bytearray()

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.done = True


async def _client(
    host: str, port: int, queue: Iterable[Request], outcome: Outcome, keep_bodies: bool
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in queue:
            started = time.perf_counter()
            writer.write(request.encode(host))
            response = _Response()
            parser = httptools.HttpResponseParser(response)
            while not response.done:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                parser.feed_data(data)
            outcome.latencies.append(time.perf_counter() - started)
            status = parser.get_status_code()
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            if keep_bodies:
                outcome.bodies.append(bytes(response.body))
    finally:
        writer.close()


def run(
    base: str, requests: Sequence[Request], concurrency: int, *, keep_bodies: bool = False
) -> Outcome:
    """Send every request once, over `concurrency` connections, and time each."""
    host, port = base.removeprefix("http://").split(":")
    outcome = Outcome(0.0, [], {}, [])
    queue = iter(requests)

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(
            *(_client(host, int(port), queue, outcome, keep_bodies) for _ in range(concurrency))
        )
        return time.perf_counter() - started

    outcome.rate = len(requests) / uvloop.run(main())
    return outcome
