"""Request metrics of the HTTP front-end."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerotouch.services.runtime import Runtime


class RequestMetrics:
    """Pure ASGI middleware (no per-request task or buffering) counting requests by route."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        # Labelled children looked up once: labels() takes a lock and builds a key each time.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], route, status)
            children = self._children.get(key)
            if children is None:
                metrics = self.runtime.metrics
                children = self._children[key] = (
                    metrics.http_requests.labels(scope["method"], route, str(status)),
                    metrics.http_latency.labels(route),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
