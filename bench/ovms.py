"""OVMS auto-provisioning handshakes against `zerotouch serve`: connect, AP-C, AP-S, close, at
concurrency 1, 100 and 1,000, with p50/p99 latency, connections refused or reset, and the
server's memory per idle connection (10,000 of them). The same is measured in the same run
against a bare asyncio server that answers each line with the line (the ceiling).
Targets on a 2-core machine: >= 5,000 handshakes/s at concurrency 100; nothing refused or reset
at 1,000; under 10 KiB of memory per idle connection. Nothing here gates CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from rich.console import Console
from rich.table import Table

from zerotouch import demo
from zerotouch.protocols import ovms

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port

ICCID = "89852000263265419999"
PARAMS = ["NOPHONE", "modpass1", "K", "IP", "127.0.0.1", "internet", "-", "-", "DEMOCAR1"]
console = Console(width=150)

ECHO_SERVER = textwrap.dedent(
    """
    import asyncio, sys, uvloop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
        def data_received(self, data):
            self.transport.write(data)
            self.transport.close()

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", int(sys.argv[1]), backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())
    """
)


@dataclass
class Level:
    concurrency: int
    rate: float
    p50_ms: float
    p99_ms: float
    failures: int
    answers: dict[str, int] = field(default_factory=dict)


def vin(i: int) -> str:
    return f"WVWZZZ{i:011d}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_kib(pid: int) -> int:
    total = rss_kib(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"\nPPid:\t{pid}\n" in (entry / "status").read_text():
                    total += rss_kib(int(entry.name))
            except OSError:
                continue
    return total


async def _handshake(port: int, apkey: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ovms.request_line(apkey))
    line = await reader.readline()
    writer.close()
    return time.perf_counter() - started, line


async def _level(port: int, concurrency: int, total: int, cars: int) -> Level:
    latencies: list[float] = []
    answers: dict[str, int] = {}
    failures = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            try:
                seconds, line = await _handshake(port, vin(i % cars))
            except OSError:
                failures += 1
                continue
            latencies.append(seconds)
            kind = line[:4].decode(errors="replace") or "none"
            answers[kind] = answers.get(kind, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    return Level(
        concurrency,
        len(latencies) / elapsed,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        failures,
        answers,
    )


async def _idle(port: int, pid: int, count: int) -> float:
    """KiB of the server's memory per idle connection (connected, nothing sent)."""
    before = tree_rss_kib(pid)
    writers = []
    for start in range(0, count, 500):
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(start, start + 500))
        )
        writers += [w for _, w in batch]
    await asyncio.sleep(1.0)
    after = tree_rss_kib(pid)
    for writer in writers:
        writer.close()
    return (after - before) / count


def measure(port: int, pid: int, args: argparse.Namespace) -> tuple[list[Level], float]:
    async def run() -> tuple[list[Level], float]:
        levels = []
        for concurrency, total in (
            (1, args.serial),
            (100, args.handshakes),
            (1000, args.handshakes),
        ):
            levels.append(await _level(port, concurrency, total, args.cars))
        return levels, await _idle(port, pid, args.idle)

    return uvloop.run(run())


@contextmanager
def echo_server() -> Iterator[tuple[int, int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def prepare(base: str, keys: demo.Keys, cars: int) -> None:
    owner = {"Authorization": f"Bearer {keys.owner}"}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    with httpx.Client(base_url=base, timeout=120) as http:
        records = [{"deviceId": f"car-{i}", "vin": vin(i), "iccid": ICCID} for i in range(cars)]
        answer = http.post("/v1/manufacturing/devices", json={"devices": records}, headers=factory)
        for device in answer.json()["devices"]:
            http.post(
                "/v1/claimed-devices", json={"ownerToken": device["ownerToken"]}, headers=owner
            )
        for i in range(cars):
            res = http.put(
                f"/v1/claimed-devices/car-{i}/ovms", json={"parameters": PARAMS}, headers=owner
            )
            res.raise_for_status()


def report(ours: tuple[list[Level], float], echo: tuple[list[Level], float], workers: int) -> None:
    table = Table(title="zerotouch OVMS handshakes (connect, AP-C, AP-S, close)")
    for column in ("server", "concurrency", "handshakes/s", "ratio to echo", "p50 ms", "p99 ms",
                   "refused/reset", "answers", "target", "met"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("server", "answers") else "right")
    for name, (levels, _), baseline in (
        (f"zerotouch serve ({workers} worker(s))", ours, echo[0]),
        ("bare asyncio echo", echo, echo[0]),
    ):
        for level, base in zip(levels, baseline, strict=True):
            target, met = "", ""
            if name.startswith("zerotouch") and level.concurrency == 100:
                target, met = ">= 5,000/s", "yes" if level.rate >= 5000 else "NO"
            if name.startswith("zerotouch") and level.concurrency == 1000:
                target, met = "0 refused/reset", "yes" if level.failures == 0 else "NO"
            table.add_row(
                name,
                f"{level.concurrency:,}",
                f"{level.rate:,.0f}",
                f"{level.rate / base.rate:.2f}" if base.rate else "",
                f"{level.p50_ms:.2f}",
                f"{level.p99_ms:.2f}",
                str(level.failures),
                " ".join(f"{k}:{v}" for k, v in sorted(level.answers.items())),
                target,
                met,
            )
    console.print(table)
    per_conn, echo_conn = ours[1], echo[1]
    verdict = "yes" if per_conn < 10 else "NO"
    console.print(
        f"memory per idle connection: zerotouch {per_conn:.2f} KiB (target < 10 KiB: {verdict}), "
        f"bare asyncio {echo_conn:.2f} KiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cars", type=int, default=1_000)
    parser.add_argument("--serial", type=int, default=2_000, help="handshakes at concurrency 1")
    parser.add_argument("--handshakes", type=int, default=20_000, help="at 100 and at 1,000")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="zt-bench-ovms-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTOUCH_")}
        env["ZEROTOUCH_DATA_DIR"] = str(root / "data")
        env["ZEROTOUCH_OVMS_RATE_LIMIT"] = "0"  # One address sends everything here.
        keys = demo.create_keys(env)
        port = free_port()
        with demo.server(env, workers=args.workers, ovms_port=port) as (base, process):
            console.print(f"preparing {args.cars:,} cars ...")
            prepare(base, keys, args.cars)
            console.print("handshakes against zerotouch serve ...")
            ours = measure(port, process.pid, args)
        with echo_server() as (echo_port, echo_pid):
            console.print("handshakes against a bare asyncio server ...")
            echo = measure(echo_port, echo_pid, args)
        report(ours, echo, args.workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
