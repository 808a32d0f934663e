"""Factory scale: a CSV of 1,000,000 records (DevEUI, JoinEUI, AppKey, serial) imported on
SQLite and PostgreSQL through `zerotouch import --account` (the database directly) and through
`zerotouch import --server` (streamed to `zerotouch serve`), with rows/s and each process's peak
anonymous memory (RssAnon: pages of a memory-mapped database file are not counted); in the same
run the baseline, the raw insert rate of the same rows without our processing (no validation,
sealing, hashing or labels: the CSV's cells inserted as they are, by store/bulk.py).

Then 10,000 labels made the way `zerotouch labels` makes them (every core, files written) in SVG,
PNG and PDF, against zxing-cpp's bare encode on every core in the same run: the code made and
drawn by zxing-cpp alone (`create_barcode` and `to_svg` / `to_image`), nothing around it.

Targets on this 2-core machine: 1,000,000 records in <= 30 s on SQLite and <= 60 s on
PostgreSQL, under 300 MB for each process; labels >= 1,000/s and >= 50% of the bare encode.
Nothing here gates CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import csv
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zxingcpp
from rich.console import Console
from rich.table import Table

from zerotouch import demo
from zerotouch.cli import labels as label_command
from zerotouch.protocols import qr_labels, tr005
from zerotouch.store import bulk
from zerotouch.store.db import Database
from zerotouch.store.schema import accounts, devices

sys.path.insert(0, str(Path(__file__).parent))
from common import database, server_env

console = Console(width=150)
BATCH = 5_000
SHM = "/dev/shm"  # noqa: S108  # Only a parent for mkdtemp, which makes its own directory.
LABELS_DIR = SHM if os.path.isdir(SHM) else None


@dataclass
class Run:
    what: str
    backend: str
    rows: int
    seconds: float
    peak_mb: dict[str, float]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write("devEui,joinEui,appKey,serial\n")
        for i in range(rows):
            f.write(f"{0x70B3D50000000000 + i:016X},70B3D57ED0000000,{i * 7919:032X},SN{i:08d}\n")


def _rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started, from any of its threads."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


class PeakMemory:
    """Polls the RssAnon of some processes, keeping each one's peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        self.peak["worker"] = 0
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], _rss_anon_kb(pid))
                for child in _children(pid):  # The import's worker processes, each on its own.
                    self.peak["worker"] = max(self.peak["worker"], _rss_anon_kb(child))
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def megabytes(self) -> dict[str, float]:
        return {name: kb / 1024 for name, kb in self.peak.items()}


def _zerotouch(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "zerotouch", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def raw_insert(url: str, env: dict[str, str], source: Path) -> Run:
    """The same rows, as they are, by store/bulk.py: the floor under our processing."""
    subprocess.run(
        [sys.executable, "-m", "zerotouch", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )
    db = Database(url)
    now = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    with db.write() as conn:
        account = conn.execute(accounts.insert().values(name="raw", created_at=now))
        account_id = account.inserted_primary_key[0]  # type: ignore[index]
    count = 0
    with source.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        batch: list[dict[str, object]] = []
        for dev_eui, join_eui, app_key, serial in reader:
            batch.append(
                {
                    "device_id": dev_eui, "account_id": None, "imported_by": account_id,
                    "status": "UNCLAIMED", "blocked_from": None, "dev_eui": dev_eui,
                    "join_eui": join_eui, "profile_id": None, "vin": None, "imei": None,
                    "serial": serial, "mac": None, "public_key": None, "app_key_sealed": app_key,
                    "iccid_sealed": None, "device_secret_sealed": None, "tkm_info": None,
                    "factory_tags": (), "record_digest": None, "updated_at": now,
                    "owner_token_hash": dev_eui, "owner_token_sealed": dev_eui,
                    "claimed_at": None, "created_at": now,
                }
            )  # fmt: skip
            if len(batch) == BATCH:
                with db.write() as conn:
                    bulk.insert_many(conn, devices, batch)
                count += len(batch)
                batch = []
        if batch:
            with db.write() as conn:
                bulk.insert_many(conn, devices, batch)
            count += len(batch)
    seconds = time.perf_counter() - start
    db.dispose()
    return Run("raw insert (baseline)", "", count, seconds, {})


def _finish(process: subprocess.Popen[bytes], what: str) -> None:
    _out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed ({process.returncode}): {err.decode()[-500:]}")


def cli_import(env: dict[str, str], source: Path, rows: int) -> Run:
    start = time.perf_counter()
    process = _zerotouch(env, "import", str(source), "--account", "bench", "--json")
    with PeakMemory({"import": process.pid}) as peak:
        _finish(process, "zerotouch import --account")
    return Run(
        "zerotouch import --account", "", rows, time.perf_counter() - start, peak.megabytes()
    )


def api_import(env: dict[str, str], source: Path, rows: int) -> Run:
    keys = demo.create_keys(env)
    with demo.server(env) as (base, server):
        client_env = {**env, "ZEROTOUCH_API_KEY": keys.manufacturer}
        start = time.perf_counter()
        process = _zerotouch(client_env, "import", str(source), "--server", base, "--json")
        with PeakMemory({"import": process.pid, "serve": server.pid}) as peak:
            _finish(process, "zerotouch import --server")
        seconds = time.perf_counter() - start
    return Run("zerotouch import --server", "", rows, seconds, peak.megabytes())


def imports(backend: str, source: Path, rows: int, work: Path) -> list[Run]:
    runs = []
    for measure in (raw_insert, cli_import, api_import):
        with tempfile.TemporaryDirectory(dir=work) as tmp, database(backend, Path(tmp)) as url:
            env = server_env(Path(tmp), url)
            if measure is raw_insert:
                run = raw_insert(url, env, source)
            else:
                run = measure(env, source, rows)  # type: ignore[operator]
            run.backend = backend
            runs.append(run)
            console.print(f"  {backend:10} {run.what:28} {run.rate:>10,.0f} rows/s")
    return runs


def _payloads(count: int) -> Iterator[tuple[str, str, str | None]]:
    for i in range(count):
        token = f"{i * 104729:032X}"
        qr = tr005.encode_fields(
            "70B3D57ED0000000", f"{0x70B3D50000000000 + i:016X}", "00010001",
            owner_token=token, serial_number=f"SN{i:08d}",
        )  # fmt: skip
        yield f"dev-{i:06d}", qr, f"SN{i:08d}"


def _bare(fmt: str, payloads: list[str]) -> int:
    for payload in payloads:
        code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
        if fmt == "svg":
            code.to_svg()
        else:
            code.to_image(scale=qr_labels.PNG_SCALE if fmt == "png" else 1)
    return len(payloads)


def labels(count: int) -> list[tuple[str, float, float]]:
    workers = os.cpu_count() or 1
    made = list(_payloads(count))
    results = []
    for fmt in ("svg", "png", "pdf"):
        chunks = [[p[1] for p in made[i : i + 500]] for i in range(0, count, 500)]
        with futures.ProcessPoolExecutor(workers) as pool:
            list(pool.map(_bare, [fmt], [chunks[0][:50]]))  # Workers started and warm.
            start = time.perf_counter()
            assert sum(pool.map(_bare, [fmt] * len(chunks), chunks)) == count
            bare = count / (time.perf_counter() - start)
        # Files go to memory: this machine's disk makes 1,500-3,500 small files a second, which
        # would measure the disk instead of the labels.
        with tempfile.TemporaryDirectory(dir=LABELS_DIR) as out:
            size = label_command.PER_FILE if fmt == "pdf" else label_command.CHUNK
            start = time.perf_counter()
            assert label_command.render(iter(made), Path(out), fmt, size, workers) == count
            ours = count / (time.perf_counter() - start)
        results.append((fmt, ours, bare))
        console.print(f"  labels {fmt}: {ours:,.0f}/s, bare encode {bare:,.0f}/s")
    return results


def report(runs: list[Run], made: list[tuple[str, float, float]], rows: int) -> None:
    table = Table(title=f"Factory import of {rows:,} records")
    for column in ("backend", "path", "rows/s", "seconds", "vs raw insert", "peak RssAnon"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for backend in dict.fromkeys(r.backend for r in runs):
        mine = [r for r in runs if r.backend == backend]
        raw = mine[0]
        for run in mine:
            memory = ", ".join(f"{k} {v:,.0f} MB" for k, v in run.peak_mb.items()) or "-"
            table.add_row(
                backend, run.what, f"{run.rate:,.0f}", f"{run.seconds:.1f}",
                f"{run.rate / raw.rate:.2f}", memory,
            )  # fmt: skip
    console.print(table)
    labels_table = Table(title="Labels, every core")
    for column in ("format", "labels/s", "bare encode/s", "ratio"):
        labels_table.add_column(column, justify="right")
    for fmt, ours, bare in made:
        labels_table.add_row(fmt, f"{ours:,.0f}", f"{bare:,.0f}", f"{ours / bare:.2f}")
    console.print(labels_table)
    console.print(
        "Targets: 1,000,000 records <= 30 s on SQLite, <= 60 s on PostgreSQL, < 300 MB each; "
        "labels >= 1,000/s and >= 0.50 of bare encode."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(__file__).parent / ".work",
        help="where the CSV and the SQLite databases go (on this machine /tmp is a slower "
        "disk than the project's: 57,000 against 81,000 raw inserts a second)",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        source = Path(tmp) / "factory.csv"
        write_csv(source, args.rows)
        runs = [
            run
            for backend in args.backends.split(",")
            for run in imports(backend, source, args.rows, args.dir)
        ]
    made = labels(args.labels)
    report(runs, made, args.rows)


if __name__ == "__main__":
    main()
