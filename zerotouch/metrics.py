"""Prometheus metrics, one set per runtime: requests, claims, and plan state from the store."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from zerotouch.store.db import Database
from zerotouch.store.schema import commands, devices

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class StoreCollector(Collector):
    """Commands and devices by status, counted when Prometheus scrapes."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
        with self.db.read() as conn:
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


class Metrics:
    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        self.claims = Counter(
            "zerotouch_claims", "Device claims by outcome.", ["outcome"], registry=self.registry
        )
        self.http_requests = Counter(
            "zerotouch_http_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "zerotouch_http_request_duration_seconds",
            "HTTP request latency.",
            ["route"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.device_calls = Counter(
            "zerotouch_device_calls",
            "Device API calls by call (fetch, respond) and outcome (ok, empty or the code).",
            ["call", "outcome"],
            registry=self.registry,
        )
        self.ovms_answers = Counter(
            "zerotouch_ovms_answers",
            "OVMS AP-C answers by kind (ap_s, ap_x).",
            ["answer"],
            registry=self.registry,
        )
        self.certificates = Counter(
            "zerotouch_certificates_issued",
            "Certificates the account CAs issued for devices' CSRs.",
            registry=self.registry,
        )
        self.ocpi_requests = Counter(
            "zerotouch_ocpi_requests",
            "OCPI requests from partners, by peer (country-party) and HTTP status.",
            ["peer", "status"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(db))
        # The process's CPU, memory and file descriptors, and the Python it runs on.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
