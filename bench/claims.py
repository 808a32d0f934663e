"""Import 100,000 devices through the API in batches of 1,000, then claim 10,000 of them with 50
concurrent clients, against `zerotouch serve` on SQLite and on PostgreSQL.

Prints import rows/s, claims/s and claim latency p50/p99, each next to a baseline measured in the
same run on the same server and database:
  - import: the same rows written straight into the database with one executemany per batch
    (what the storage alone can take; the service adds validation, sealing, tokens, events, HTTP);
  - claims: `GET /healthz` (one database round trip) with the same clients and concurrency
    (what the HTTP stack and the load generator can do at all).
Targets on a 2-core machine: import >= 20,000 rows/s; claims >= 1,000/s with p99 <= 50 ms.
Nothing here gates CI; run it with `make bench`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from zerotouch import demo

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
from common import database

console = Console()


@dataclass
class Result:
    backend: str
    import_rows_s: float
    import_baseline_rows_s: float
    claims_s: float
    claim_p50_ms: float
    claim_p99_ms: float
    health_s: float
    health_p99_ms: float
    failures: int


def records(start: int, count: int, run: str) -> list[dict[str, object]]:
    return [
        {
            "deviceId": f"{run}-{i:07d}",
            "devEui": f"{i:016X}",
            "joinEui": "70B3D57ED0000000",
            "profileId": "AABB1122",
            "appKey": secrets.token_hex(16).upper(),
            "serial": f"SN{i}",
            "tags": ["bench"],
        }
        for i in range(start, start + count)
    ]


def import_all(
    base: str, key: str, total: int, batch: int, uploaders: int
) -> tuple[float, list[str]]:
    run = secrets.token_hex(3)
    requests = [
        loadgen.json_request(
            "POST", "/v1/manufacturing/devices", {"devices": records(i, batch, run)}, key
        )
        for i in range(0, total, batch)
    ]
    outcome = loadgen.run(base, requests, uploaders, keep_bodies=True)
    if outcome.statuses != {200: len(requests)}:
        raise RuntimeError(f"import failed: {outcome.statuses} {outcome.bodies[0][:300]!r}")
    tokens: list[str] = []
    for body in outcome.bodies:
        answer = json.loads(body)
        if answer["rejected"]:
            raise RuntimeError(f"rows rejected: {answer['rejected'][:3]}")
        tokens += [d["ownerToken"] for d in answer["devices"]]
    return total / (len(requests) / outcome.rate), tokens


def raw_insert_baseline(backend: str, total: int, batch: int) -> float:
    """The same number of device rows, written with one SQLAlchemy executemany per batch into a
    database of its own with the same schema (so the measured server's tables stay as they are).
    """
    from zerotouch.store.db import Database
    from zerotouch.store.schema import accounts, devices

    scratch = Path(tempfile.mkdtemp(prefix=f"zt-bench-raw-{backend}-"))
    try:
        with database(backend, scratch) as url:
            db = Database(url)
            db.upgrade()
            try:
                return _raw_insert(db, accounts, devices, total, batch)
            finally:
                db.dispose()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _raw_insert(db: Any, accounts: sa.Table, devices: sa.Table, total: int, batch: int) -> float:
    now = dt.datetime.now(dt.UTC)
    with db.write() as conn:
        conn.execute(accounts.insert().values(name="raw", created_at=now))
        account = conn.execute(sa.select(accounts.c.id)).scalar_one()
    prefix = f"raw-{secrets.token_hex(3)}"
    batches = [
        [
            {
                "device_id": f"{prefix}-{i:07d}",
                "account_id": None,
                "imported_by": account,
                "status": "UNCLAIMED",
                "dev_eui": f"{i:016X}",
                "join_eui": "70B3D57ED0000000",
                "profile_id": "AABB1122",
                "serial": f"SN{i}",
                "app_key_sealed": "v1." + "A" * 60,
                "owner_token_hash": secrets.token_hex(32),
                "owner_token_sealed": "v1." + "A" * 60,
                "factory_tags": ["bench"],
                "created_at": now,
                "updated_at": now,
            }
            for i in range(start, start + batch)
        ]
        for start in range(0, total, batch)
    ]
    started = time.perf_counter()
    for rows in batches:
        with db.write() as conn:
            conn.execute(devices.insert(), rows)
    return total / (time.perf_counter() - started)


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    data_dir = Path(tempfile.mkdtemp(prefix=f"zt-bench-{backend}-"))
    try:
        with database(backend, data_dir) as url:
            env = {**os.environ, "ZEROTOUCH_DATA_DIR": str(data_dir), "ZEROTOUCH_DATABASE_URL": url}
            env.pop("ZEROTOUCH_MASTER_KEY", None)
            keys = demo.create_keys(env)  # Migrates the database too.
            factory, owner = keys.manufacturer, keys.owner
            with demo.server(env, workers=args.workers) as (base, _process):
                console.print(
                    f"[{backend}] importing {args.devices:,} devices "
                    f"({args.uploaders} uploaders) ..."
                )
                import_rate, tokens = import_all(
                    base, factory, args.devices, args.batch, args.uploaders
                )
                console.print(
                    f"[{backend}] claiming {args.claims:,} with {args.concurrency} clients"
                )
                health = loadgen.run(
                    base, [loadgen.Request("GET", "/healthz")] * args.claims, args.concurrency
                )
                chosen = tokens[:: max(1, len(tokens) // args.claims)][: args.claims]
                claims = loadgen.run(
                    base,
                    [
                        loadgen.json_request(
                            "POST", "/v1/claimed-devices", {"ownerToken": t}, owner
                        )
                        for t in chosen
                    ],
                    args.concurrency,
                )
        baseline_rate = raw_insert_baseline(backend, args.devices, args.batch)
        return Result(
            backend,
            import_rate,
            baseline_rate,
            claims.rate,
            claims.percentile_ms(50),
            claims.percentile_ms(99),
            health.rate,
            health.percentile_ms(99),
            len(chosen) - claims.count(201),
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(results: list[Result]) -> None:
    table = Table(title="zerotouch claims benchmark (targets for a 2-core machine)")
    for col in ("backend", "metric", "value", "baseline", "ratio", "target", "met"):
        table.add_column(col, justify="right" if col not in ("backend", "metric") else "left")
    for r in results:
        rows = [
            (
                "import rows/s",
                r.import_rows_s,
                r.import_baseline_rows_s,
                ">= 20,000",
                r.import_rows_s >= 20_000,
            ),
            ("claims/s", r.claims_s, r.health_s, ">= 1,000", r.claims_s >= 1_000),
            ("claim p50 ms", r.claim_p50_ms, None, "", True),
            ("claim p99 ms", r.claim_p99_ms, r.health_p99_ms, "<= 50", r.claim_p99_ms <= 50),
            ("failed claims", r.failures, None, "0", r.failures == 0),
        ]
        for metric, value, base, target, met in rows:
            ratio = f"{value / base:.2f}" if base else ""
            table.add_row(
                r.backend,
                metric,
                f"{value:,.1f}",
                f"{base:,.1f}" if base else "",
                ratio,
                target,
                "yes" if met else "NO",
            )
    console.print(table)
    console.print(
        "baselines: import = raw executemany of the same rows; claims/s and p99 = "
        "GET /healthz with the same clients and concurrency."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="zerotouch serve --workers")
    parser.add_argument("--uploaders", type=int, default=4, help="concurrent import batches")
    args = parser.parse_args()
    report([run_backend(b, args) for b in args.backends.split(",")])


if __name__ == "__main__":
    main()
