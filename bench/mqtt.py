"""Provision N gateways over MQTT end to end against `zerotouch serve` and a Mosquitto of the
benchmark's own (dynamic security, mutual-TLS production listener), on SQLite and PostgreSQL:
each gets a provision request (the operator's call), connects with its one-time credentials,
runs the plan (key, CSR signed by the account CA for CN = its client ID, the CA to trust,
finished), connects on its production identity and reports success; its broker client is then
deleted.

In the same run, the ceiling: the broker's own rate for one dynamic-security create-and-delete
pair (the commands the worker sends per device: a role and a client made, then deleted), and
mutual-TLS connects/s to the production listener; and the broker's CPU per pair with 0, 1,000
and 10,000 clients present (the plugin rewrites its whole file on every change).
Target: >= 80% of the ceiling (the lower of the two rates). Nothing here gates CI; `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import uvloop
from rich.console import Console
from rich.table import Table

from zerotouch import demo, mqtt_demo
from zerotouch.adapters.mqtt import dynsec
from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.agent.mqtt_fleet import simulate
from zerotouch.agent.simulate import percentile
from zerotouch.crypto import ca
from zerotouch.protocols.mqtt_topics import Endpoint

sys.path.insert(0, str(Path(__file__).parent))
from common import database, server_env
from provision import _memory_dir, process_tree_cpu_s

TARGET_RATIO = 0.8
console = Console(width=150)


@dataclass
class Pairs:
    present: int
    rate: float
    broker_ms: float


def _fill(broker: Broker, present: int) -> None:
    """``present`` provisioning clients (each with its role) in the plugin's file."""
    config = json.loads(broker.dynsec_file.read_text())
    for n in range(present):
        client_id = f"F{n:07d}"
        config.setdefault("roles", []).append(
            {"rolename": dynsec.role_name(client_id), "acls": [
                {"acltype": a["acltype"], "topic": a["topic"], "allow": a["allow"],
                 "priority": a["priority"]} for a in dynsec.one_time_role("bench", client_id)]}
        )  # fmt: skip
        config["clients"].append(
            {"username": f"{client_id}-fill", "clientid": client_id,
             "roles": [{"rolename": dynsec.role_name(client_id)}]}
        )  # fmt: skip
    broker.dynsec_file.write_text(json.dumps(config))


async def _pairs(broker: Broker, count: int, concurrent: int) -> tuple[float, float]:
    async with dynsec.Dynsec.connect(broker.admin_url) as admin:
        slots = asyncio.Semaphore(concurrent)

        async def pair(n: int) -> None:
            async with slots:
                names = {"username": f"P{n:06d}-bench", "client_id": f"P{n:06d}"}
                await admin.create_one_time(account="bench", password="bench-pw", **names)
                await admin.delete_one_time(**names)

        assert broker.process is not None
        before, started = process_tree_cpu_s(broker.process.pid), time.perf_counter()
        await asyncio.gather(*(pair(n) for n in range(count)))
        elapsed = time.perf_counter() - started
        return count / elapsed, (process_tree_cpu_s(broker.process.pid) - before) / count * 1000


def dynsec_pairs(present: int, count: int) -> Pairs:
    root = Path(tempfile.mkdtemp(prefix="zt-bench-dynsec-", dir=_memory_dir()))
    try:
        broker = Broker(root / "broker")
        broker.prepare()
        _fill(broker, present)
        with broker:
            rate, broker_ms = uvloop.run(_pairs(broker, count, concurrent=20))
        return Pairs(present, rate, broker_ms)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _mtls(broker: Broker, authority: ca.CaMaterial, count: int, concurrent: int) -> float:
    endpoint = Endpoint.parse(broker.production_url(0))
    folder = broker.directory / "clients"
    folder.mkdir()
    contexts = []
    for n in range(concurrent):
        issued = ca.issue_client_certificate(authority, f"M{n:06d}")
        cert, key = folder / f"{n}.pem", folder / f"{n}.key"
        cert.write_text(issued.certificate_pem)
        key.write_text(issued.private_key_pem)
        context = ssl.create_default_context(cadata=authority.certificate_pem)
        context.load_cert_chain(cert, key)
        contexts.append(context)

    async def connects(n: int, times: int) -> None:
        for _ in range(times):
            client = aiomqtt.Client(
                endpoint.host, endpoint.port, identifier=f"M{n:06d}",
                protocol=aiomqtt.ProtocolVersion.V5, tls_context=contexts[n],
            )  # fmt: skip
            async with client:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(connects(n, count // concurrent) for n in range(concurrent)))
    return count // concurrent * concurrent / (time.perf_counter() - started)


def mtls_connects(count: int) -> float:
    root = Path(tempfile.mkdtemp(prefix="zt-bench-mtls-", dir=_memory_dir()))
    try:
        authority = ca.generate_ca("bench CA")
        with Broker(root / "broker", [authority]) as broker:
            return uvloop.run(_mtls(broker, authority, count, concurrent=20))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Run:
    backend: str
    devices: int
    rate: float
    p50_s: float
    p99_s: float
    broker_ms: float
    server_ms: float
    agents_ms: float
    failures: int


def end_to_end(backend: str, devices: int, workers: int) -> Run:
    root = Path(tempfile.mkdtemp(prefix=f"zt-bench-mqtt-{backend}-", dir=_memory_dir()))
    try:
        with database(backend, root) as url:
            env = server_env(root, url)
            keys = demo.create_keys(env)
            with mqtt_demo.stack(root, env, workers=workers) as (base, broker, material, server):
                console.print(f"[{backend}] importing and claiming {devices:,} gateways ...")
                ids = mqtt_demo.prepare(base, keys, material, devices)
                console.print(f"[{backend}] provisioning them over MQTT ...")
                assert broker.process is not None
                broker_before = process_tree_cpu_s(broker.process.pid)
                server_before = process_tree_cpu_s(server.pid)
                agents_before = time.process_time()
                started = time.perf_counter()

                async def go() -> object:
                    async with mqtt_demo.requester(base, keys) as ask:
                        return await simulate(ids, ask, root / "keystores")

                outcome = uvloop.run(go())
                elapsed = time.perf_counter() - started
                broker_cpu = process_tree_cpu_s(broker.process.pid) - broker_before
                server_cpu = process_tree_cpu_s(server.pid) - server_before
                agents_cpu = time.process_time() - agents_before
                counts = demo.status_counts(base, keys)
        seconds = list(outcome.seconds.values())  # type: ignore[attr-defined]
        if counts.get("PROVISIONED") != len(seconds):
            raise RuntimeError(f"the server disagrees: {counts}")
        return Run(
            backend,
            devices,
            len(seconds) / elapsed,
            percentile(seconds, 50),
            percentile(seconds, 99),
            broker_cpu / devices * 1000,
            server_cpu / devices * 1000,
            agents_cpu / devices * 1000,
            devices - len(seconds),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=1, help="zerotouch serve --workers")
    args = parser.parse_args()
    console.print("ceiling: dynamic-security pairs and mutual-TLS connects, broker alone ...")
    pairs = [dynsec_pairs(0, 1000), dynsec_pairs(1_000, 300), dynsec_pairs(10_000, 40)]
    connects = mtls_connects(2_000)
    ceiling = min(pairs[0].rate, connects)
    runs = [end_to_end(b, args.devices, args.workers) for b in args.backends.split(",")]

    table = Table(title=f"provisioning over MQTT (target >= {TARGET_RATIO:.0%} of the ceiling)")
    for column in ("backend", "devices", "devices/s", "ratio to ceiling", "p50 s", "p99 s",
                   "broker CPU ms/device", "server CPU ms/device", "agents' CPU ms/device",
                   "not provisioned", "met"):  # fmt: skip
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in runs:
        ratio = r.rate / ceiling
        met = "yes" if ratio >= TARGET_RATIO and not r.failures else "NO"
        table.add_row(r.backend, f"{r.devices:,}", f"{r.rate:,.1f}", f"{ratio:.2f}",
                      f"{r.p50_s:.2f}", f"{r.p99_s:.2f}", f"{r.broker_ms:.2f}",
                      f"{r.server_ms:.2f}", f"{r.agents_ms:.2f}", str(r.failures), met)  # fmt: skip
    console.print(table)
    broker = Table(title="the broker alone (same run)")
    for column in ("measure", "clients present", "per second", "broker CPU ms each"):
        broker.add_column(column, justify="left" if column == "measure" else "right")
    for p in pairs:
        broker.add_row("dynamic-security create-and-delete pair", f"{p.present:,}",
                       f"{p.rate:,.1f}", f"{p.broker_ms:.2f}")  # fmt: skip
    broker.add_row("mutual-TLS connect to the production listener", "-", f"{connects:,.1f}", "-")
    console.print(broker)
    console.print(f"ceiling: {ceiling:,.1f}/s, the lower of pairs at 0 clients and mTLS connects.")


if __name__ == "__main__":
    sys.exit(main())
