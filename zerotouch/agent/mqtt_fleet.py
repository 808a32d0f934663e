"""Many simulated gateways provisioning over MQTT in one process (the demo, bench/mqtt.py), and
one real one (``zerotouch agent --transport mqtt``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from zerotouch.agent import runner
from zerotouch.agent.client import DeviceApiError
from zerotouch.agent.gateway import Gateway
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.settings import AgentSettings
from zerotouch.agent.simulate import Simulation

CONCURRENT = 50  # Gateways provisioning at once: each holds two connections on the way.


def gateway_settings(answer: dict[str, Any], keystore: Path, **extra: Any) -> AgentSettings:
    """The settings a provision request's answer gives a gateway (ESF names)."""
    return AgentSettings.model_validate(
        {
            "transport": "mqtt",
            "broker-url": answer["brokerUrl"],
            "account-name": answer["accountName"],
            "username": answer["username"],
            "password": answer["password"],
            "client-id": answer["clientId"],
            "device-id": answer["deviceId"],
            "keystore": str(keystore),
            **extra,
        }
    )


async def simulate(
    devices: list[str],
    ask: Callable[[str], Awaitable[dict[str, Any]]],
    root: Path,
    *,
    base: dict[str, Any] | None = None,
    listener: Callable[[str], None] | None = None,
    concurrent: int = CONCURRENT,
) -> Simulation:
    """Provision each device as a gateway: ``ask`` makes its provision request (as an operator
    does just before the device is switched on: one-time clients exist on the broker only
    while their devices provision) and the gateway provisions with the answer. Each closes its
    production connection once PROVISIONED (a real one stays)."""
    result = Simulation(keystores=root)
    slots = asyncio.Semaphore(concurrent)
    gateways: list[Gateway] = []

    async def one(device_id: str) -> None:
        async with slots:
            started = time.perf_counter()
            answer = await ask(device_id)
            settings = gateway_settings(answer, root / device_id, **(base or {}))
            gateway = Gateway(settings, Keystore(settings.keystore, durable=False), None)
            gateways.append(gateway)
            try:
                report = await gateway.provision()
            except DeviceApiError as exc:
                result.errors[device_id] = str(exc)
                return
            if report.outcome is runner.Outcome.PROVISIONED:
                result.seconds[device_id] = time.perf_counter() - started
            if gateway.api is not None and gateway.api.production is not None:
                await gateway.api.production.close()
        if listener is not None:
            listener(device_id)

    await asyncio.gather(*(one(device_id) for device_id in devices))
    result.requests = sum(g.api.attempts for g in gateways if g.api is not None)
    return result


async def run_gateway(
    settings: AgentSettings, settings_path: Path, listener: runner.Listener
) -> runner.Report:
    """Provision (or, provisioned already, connect again on the production identity), then
    stay connected for control messages until SIGINT or SIGTERM."""
    gateway = Gateway(settings, Keystore(settings.keystore), settings_path, listener=listener)
    report = runner.Report(runner.Outcome.DISABLED)
    if settings.provisioned:
        await gateway.resume()
    elif settings.enabled:
        report = await gateway.provision()
    else:
        return report
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.stay(stop)
    finally:
        if gateway.api is not None and gateway.api.production is not None:
            with contextlib.suppress(Exception):
                await gateway.api.production.close()
    return report
