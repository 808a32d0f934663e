"""Provision N devices end to end with the demo's plan (key generation, CSR signed by the
account CA, server certificate, config, finished) against `zerotouch serve`, on SQLite and on
PostgreSQL, with the simulated devices in this process: agents on the Device API (/device/v1),
and simulated nRF91 modems on Nordic's nrf_provisioning protocol (/v1/provisioning, the
buffers of Nordic's sample: rxMaxSize 2048, 20 records), the same plan in the same run.

Each backend runs several rounds (alternating, each on a new database: the machine's speed
drifts) and its median round is reported. Prints devices/s, p50/p99 time to PROVISIONED, the
server's CPU time per device, and, measured in the same run, the rate at which `cryptography`
alone turns a CSR into a signed certificate on one core (the ceiling: the server signs one
certificate per device).
Target on a 2-core machine, server and simulated devices together: >= 300 devices/s on the
Device API; the nRF protocol >= 80% of the Device API's rate on the same backend.
Nothing here gates CI; run it with `make bench`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop
from rich.console import Console
from rich.table import Table

from zerotouch import demo
from zerotouch.agent import nrf_device
from zerotouch.agent.simulate import percentile, simulate
from zerotouch.crypto import ca, device_side
from zerotouch.domain.commands import KEY_USAGE_BITS
from zerotouch.protocols.nrf_at import Buffers

sys.path.insert(0, str(Path(__file__).parent))
from common import database, server_env

TARGET = 300
NRF_TARGET_RATIO = 0.8
NRF_BUFFERS = Buffers(rx=2048, tx=2048, limit=20)  # Nordic's sample (prj.conf).
# The nRF row shares a pool of connections, as the Device API's simulated agents do (the same
# footing: two codecs of one core); the firmware's own way, a connection per request
# ("Connection: close"), is measured beside it, without a target.
NRF_PER_REQUEST = "nrf-close"
PROTOCOLS = {
    demo.DEVICE_API: "/device/v1",
    demo.NRF: "nRF /v1/provisioning",
    NRF_PER_REQUEST: "nRF, a connection per request",
}
console = Console(width=150)


@dataclass
class Result:
    backend: str
    protocol: str
    workers: int
    devices: int
    rate: float
    p50_s: float
    p99_s: float
    server_cpu_ms: float
    client_cpu_ms: float
    failures: int


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (the server's workers)."""
    total = 0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"\nPPid:\t{pid}\n" in (entry / "status").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_backend(backend: str, devices: int, workers: int, protocol: str) -> Result:
    root = Path(tempfile.mkdtemp(prefix=f"zt-bench-provision-{backend}-"))
    # The simulated devices' keystores stand for the flash of thousands of devices: in memory
    # where the machine has a RAM disk. On the disk, creating their ~12,000 small files goes
    # through one shared ext4 journal, next to PostgreSQL's fsyncs, and costs more CPU than
    # the server spends (the same writes: 3.9 ms of CPU per device on ext4, 0.6 on tmpfs).
    keystores = Path(tempfile.mkdtemp(prefix="zt-bench-keystores-", dir=_memory_dir()))
    try:
        with database(backend, root) as url:
            env = server_env(root, url)
            keys = demo.create_keys(env)
            with demo.server(env, workers=workers) as (base, process):
                console.print(f"[{backend}] importing and claiming {devices:,} devices ...")
                nrf = protocol in (demo.NRF, NRF_PER_REQUEST)
                fleet = demo.NRF if nrf else demo.DEVICE_API
                identities = demo.prepare_fleet(base, keys, devices, protocol=fleet)
                console.print(
                    f"[{backend}] provisioning over {PROTOCOLS[protocol]} "
                    f"with {workers} server worker(s) ..."
                )
                server_before = process_tree_cpu_s(process.pid)
                client_before = time.process_time()
                started = time.perf_counter()
                if nrf:
                    keep_alive = protocol == demo.NRF
                    outcome = uvloop.run(
                        nrf_device.simulate(identities, base, NRF_BUFFERS, keep_alive=keep_alive)
                    )
                else:
                    outcome = uvloop.run(simulate(identities, {"server-url": base}, keystores))
                elapsed = time.perf_counter() - started
                server_cpu = process_tree_cpu_s(process.pid) - server_before
                client_cpu = time.process_time() - client_before
                counts = demo.status_counts(base, keys)
        seconds = list(outcome.seconds.values())
        if counts.get("PROVISIONED") != len(seconds):
            raise RuntimeError(f"the server disagrees: {counts}")
        return Result(
            backend,
            protocol,
            workers,
            devices,
            len(seconds) / elapsed,
            percentile(seconds, 50),
            percentile(seconds, 99),
            server_cpu / devices * 1000,
            client_cpu / devices * 1000,
            devices - len(seconds),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(keystores, ignore_errors=True)


def _memory_dir() -> str | None:
    shm = Path("/dev/shm")  # noqa: S108 - only a parent for mkdtemp (own name, mode 0700)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def signing_ceiling(seconds: float = 2.0) -> float:
    """CSRs turned into certificates per second by `cryptography` on one core: parse and
    verify the CSR, build and sign the certificate (as the server does per device)."""
    authority = ca.generate_ca("bench CA")
    pair = device_side.generate_key_pair()
    usage = {name: bit == "1" for name, bit in zip(KEY_USAGE_BITS, "101010000", strict=True)}
    csr_pem = device_side.build_csr(pair.private_key_pem, "O=bench,CN=device", usage)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        ca.sign_csr(
            ca_certificate_pem=authority.certificate_pem,
            ca_private_key_pem=authority.private_key_pem,
            csr=ca.load_csr(csr_pem),
            subject="O=bench,CN=device",
            key_usage=usage,
            validity=dt.timedelta(days=365),
        )
        count += 1
    return count / (time.perf_counter() - started)


def report(rounds: dict[tuple[str, str], list[Result]], ceiling: float) -> None:
    """One row per backend and protocol: its median round by rate (and that round's times and
    CPU), the spread of its rounds, the nRF protocol's rate against the Device API's on the
    same backend, and whether the median meets its target."""
    table = Table(
        title=f"zerotouch provisioning benchmark (target >= {TARGET} devices/s on /device/v1; "
        f"nRF >= {NRF_TARGET_RATIO:.0%} of it)"
    )
    for column in (
        "backend",
        "protocol",
        "workers",
        "devices",
        "rounds",
        "devices/s (median)",
        "min-max",
        "ratio to ceiling",
        "ratio to /device/v1",
        "p50 s",
        "p99 s",
        "server CPU ms/device",
        "devices' CPU ms/device",
        "not provisioned",
        "met",
    ):
        table.add_column(column, justify="left" if column in ("backend", "protocol") else "right")
    medians = {key: _median(results) for key, results in rounds.items()}
    for (backend, protocol), results in rounds.items():
        ordered = sorted(results, key=lambda r: r.rate)
        r = medians[(backend, protocol)]
        failures = sum(each.failures for each in results)
        baseline = medians.get((backend, demo.DEVICE_API))
        ratio = r.rate / baseline.rate if baseline is not None and baseline.rate else None
        if protocol == demo.NRF:
            met = "yes" if ratio is not None and ratio >= NRF_TARGET_RATIO else "NO"
        elif protocol == demo.DEVICE_API:
            met = "yes" if r.rate >= TARGET else "NO"
        else:
            met = "-"
        table.add_row(
            backend,
            PROTOCOLS[protocol],
            str(r.workers),
            f"{r.devices:,}",
            str(len(results)),
            f"{r.rate:,.1f}",
            f"{ordered[0].rate:,.0f}-{ordered[-1].rate:,.0f}",
            f"{r.rate / ceiling:.3f}",
            f"{ratio:.2f}" if ratio is not None else "-",
            f"{r.p50_s:.2f}",
            f"{r.p99_s:.2f}",
            f"{r.server_cpu_ms:.2f}",
            f"{r.client_cpu_ms:.2f}",
            str(failures),
            met if not failures else "NO",
        )
    console.print(table)
    where = "in memory (/dev/shm)" if _memory_dir() else "on disk"
    console.print(f"simulated agents' keystores: {where}; nRF modems' credentials: in memory")
    console.print(
        f"ceiling: `cryptography` signs {ceiling:,.0f} CSRs/s on one core "
        "(parse, verify, build, sign), measured in this run."
    )


def _median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workers",
        default="sqlite=2,postgresql=2",
        help="zerotouch serve --workers per backend",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs per backend, each on a new database; the median is reported",
    )
    parser.add_argument(
        "--protocols",
        default=f"{demo.DEVICE_API},{demo.NRF},{NRF_PER_REQUEST}",
        help="device (the Device API), nrf (simulated nRF91 modems, pooled connections), "
        "nrf-close (a connection per request, as the firmware)",
    )
    args = parser.parse_args()
    workers = dict(item.split("=") for item in args.workers.split(","))
    ceiling = signing_ceiling()
    rounds: dict[tuple[str, str], list[Result]] = {
        (b, p): [] for b in args.backends.split(",") for p in args.protocols.split(",")
    }
    # Rounds alternate between backends and protocols, so a slower spell of the machine falls
    # on all of them.
    for _ in range(args.rounds):
        for (backend, protocol), results in rounds.items():
            count = int(workers.get(backend, "1"))
            results.append(run_backend(backend, args.devices, count, protocol))
    report(rounds, ceiling)


if __name__ == "__main__":
    sys.exit(main())
