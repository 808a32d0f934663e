"""Prometheus metrics of the HTTP front-end: requests by route, and plan state from the store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import commands, devices


class StoreCollector(Collector):
    """Commands and devices by status, counted when Prometheus scrapes."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self.runtime = runtime

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("zerotouch_commands", "Provisioning commands by status.")
        yield GaugeMetricFamily("zerotouch_devices", "Devices by status.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        command_gauge = GaugeMetricFamily(
            "zerotouch_commands", "Provisioning commands by status.", labels=["status"]
        )
        device_gauge = GaugeMetricFamily(
            "zerotouch_devices", "Devices by status.", labels=["status"]
        )
        rt = self.runtime()
        if rt is None:
            return
        with rt.db.read() as conn:
            for status, count in conn.execute(
                sa.select(commands.c.status, sa.func.count()).group_by(commands.c.status)
            ):
                command_gauge.add_metric([status], count)
            for status, count in conn.execute(
                sa.select(devices.c.status, sa.func.count()).group_by(devices.c.status)
            ):
                device_gauge.add_metric([status], count)
        yield command_gauge
        yield device_gauge


class RequestMetrics:
    """Pure ASGI middleware (no per-request task or buffering) counting requests by route."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "zerotouch_http_requests_total",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "zerotouch_http_request_duration_seconds",
            "HTTP request latency.",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )

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
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - start)
