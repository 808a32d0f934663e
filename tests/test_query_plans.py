"""Device calls look their rows up by index on a fleet just imported, before the database has
any statistics of its tables: a plan chosen without them must not read a whole table per call."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import BACKEND, fresh_pg_database
from zerotouch.store import device_calls
from zerotouch.store import devices as device_store
from zerotouch.store.db import Database
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import accounts, commands, device_keys, devices

DEVICES = 3_000
COMMANDS_PER_DEVICE = 6


@contextlib.contextmanager
def _fleet(tmp_path: Path) -> Iterator[Database]:
    """A fresh database holding a claimed fleet with its plans and keys, never analyzed."""
    with contextlib.ExitStack() as stack:
        if BACKEND == "postgresql":
            url = stack.enter_context(fresh_pg_database())
        else:
            url = f"sqlite:///{tmp_path / 'plans.db'}"
        db = Database(url)
        stack.callback(db.dispose)
        db.upgrade()
        now = dt.datetime.now(dt.UTC)
        with db.write() as conn:
            if BACKEND == "postgresql":
                for table in (devices, commands, device_keys):
                    conn.exec_driver_sql(
                        f"ALTER TABLE {table.name} SET (autovacuum_enabled = false)"
                    )
            conn.execute(accounts.insert(), {"id": 1, "name": "acme", "created_at": now})
            conn.execute(
                devices.insert(),
                [
                    {
                        "id": pk,
                        "device_id": f"dev-{pk}",
                        "account_id": 1,
                        "imported_by": 1,
                        "status": "PROVISIONING",
                        "owner_token_hash": f"{pk:064x}",
                        "owner_token_sealed": "-",
                        "factory_tags": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for pk in range(1, DEVICES + 1)
                ],
            )
            conn.execute(
                commands.insert(),
                [
                    {
                        "id": f"{pk}-{position}",
                        "device_pk": pk,
                        "position": position,
                        "description": "",
                        "type": "config",
                        "request": {"config": {}},
                        "status": "PENDING",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for pk in range(1, DEVICES + 1)
                    for position in range(COMMANDS_PER_DEVICE)
                ],
            )
            conn.execute(
                device_keys.insert(),
                [
                    {
                        "device_pk": pk,
                        "fingerprint": f"{pk:064x}",
                        "public_key": "-",
                        "created_at": now,
                    }
                    for pk in range(1, DEVICES + 1)
                ],
            )
        yield db


def _plan(db: Database, statement: FastStatement, params: dict[str, Any]) -> str:
    with db.read() as conn:
        plan = statement.plan(conn.dialect)
        prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        rows = conn.exec_driver_sql(prefix + plan.sql, statement._args(plan, params)).all()
    return "\n".join(str(row[-1]) for row in rows)


def _full_scans(plan: str, *tables: str) -> list[str]:
    marks = ("SCAN {}" if BACKEND == "sqlite" else "Seq Scan on {}",)
    return [
        line
        for line in plan.splitlines()
        for table in tables
        for mark in marks
        if line.strip().removeprefix("->").strip().startswith(mark.format(table))
    ]


def test_device_calls_read_their_devices_plans_by_index(tmp_path: Path) -> None:
    with _fleet(tmp_path) as db:
        plan = _plan(db, device_calls._READ, {"pks": list(range(100, 108))})
    assert not _full_scans(plan, "commands", "device_keys", "devices"), plan


def test_credentials_are_read_by_index(tmp_path: Path) -> None:
    with _fleet(tmp_path) as db:
        ids = [f"dev-{pk}" for pk in range(100, 108)]
        plan = _plan(db, device_store._DEVICES, {"device_ids": ids})
    assert not _full_scans(plan, "devices", "device_keys"), plan
