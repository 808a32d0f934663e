"""Many simulated devices in one process, for load tests and demos.

Each runs the real agent (settings, keystore, executor, client) with its own identity and
keystore folder; they share one HTTP connection pool.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerotouch.agent import runner
from zerotouch.agent.client import DeviceApi, DeviceApiError, http_session
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.settings import AgentSettings, SettingsError

# Devices in the field hold a connection each; simulated ones share a pool. 256 keeps enough
# calls in flight for the server to serve many with each commit (at 64, bench/provision.py ran
# about a tenth slower and the server spent a fifth more CPU per device); one per device costs
# the simulator more in connections than it saves.
DEFAULT_CONNECTIONS = 256


@dataclass(frozen=True, slots=True)
class Identity:
    device_id: str
    device_secret: str | None
    # An nRF91 modem's identity key (PEM): it signs the modem's JWTs.
    jwt_key: str | None = None


@dataclass
class Simulation:
    """Seconds from start to PROVISIONED per device, and what stopped the others."""

    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    keystores: Path | None = None


def read_identities(path: Path, count: int | None = None) -> list[Identity]:
    """``deviceId,deviceSecret`` rows (a header row first), as the factory import takes them;
    for nRF91 modems, ``deviceId,jwtKey`` (the modem's identity key, PEM)."""
    with path.open(newline="") as source:
        rows = list(csv.DictReader(source))
    try:
        identities = [
            Identity(r["deviceId"], r.get("deviceSecret") or None, r.get("jwtKey") or None)
            for r in rows
        ]
    except KeyError:
        raise SettingsError(f"{path}: every row needs a deviceId") from None
    if count is not None:
        if count > len(identities):
            raise SettingsError(f"{path} holds {len(identities)} devices, {count} were asked for")
        identities = identities[:count]
    return identities


def _mac(device_id: str) -> str:
    # A locally administered unicast MAC (02:...) derived from the device id.
    return "02" + hashlib.sha256(device_id.encode()).hexdigest()[:10].upper()


def settings_for(identity: Identity, base: Mapping[str, Any], root: Path) -> AgentSettings:
    mac = _mac(identity.device_id)
    values = {
        **base,
        "device-id": identity.device_id,
        "activation-key": identity.device_secret,
        "keystore": str(root / identity.device_id),
        "client-id": mac,
        "username": f"{mac}-{identity.device_id}",
        "serial-number": identity.device_id,
    }
    return AgentSettings.model_validate(values)


async def simulate(
    identities: list[Identity],
    base: Mapping[str, Any],
    root: Path,
    *,
    connections: int = DEFAULT_CONNECTIONS,
    deadline_s: float = 600.0,
    listener: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> Simulation:
    """Run every device until PROVISIONED, a permanent error, or the deadline."""
    result = Simulation(keystores=root)
    if not identities:
        return result
    configs = [settings_for(i, base, root) for i in identities]
    started = time.perf_counter()
    apis: list[DeviceApi] = []
    async with http_session(configs[0], connections=connections) as http:

        async def one(config: AgentSettings) -> None:
            api = DeviceApi(config, http)
            apis.append(api)
            keystore = Keystore(config.keystore, durable=False)

            def relay(event: str, data: dict[str, Any]) -> None:
                if listener is not None:
                    listener(config.device_id, event, data)

            try:
                report = await runner.run(
                    config,
                    api,
                    keystore,
                    settings_path=config.keystore / "agent.toml",
                    listener=relay,
                )
            except DeviceApiError as exc:
                result.errors[config.device_id] = str(exc)
                relay("error", {"message": str(exc)})
                return
            if report.outcome is runner.Outcome.PROVISIONED:
                result.seconds[config.device_id] = time.perf_counter() - started

        await run_all({c.device_id: one(c) for c in configs}, result, deadline_s)
    result.requests = sum(api.attempts for api in apis)
    return result


async def run_all(
    devices: Mapping[str, Coroutine[Any, Any, None]], result: Simulation, deadline_s: float
) -> None:
    """Run each device's coroutine (by deviceId) at once; those not done by the deadline are
    cancelled and say so in ``result.errors``. An unexpected error of one is raised."""
    tasks = {device_id: asyncio.create_task(work) for device_id, work in devices.items()}
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks.values(), timeout=deadline_s)
    for task in pending:
        task.cancel()
    for device_id, task in tasks.items():
        if task in pending:
            result.errors[device_id] = f"not provisioned within {deadline_s:.0f} s"
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; 0 for none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]
