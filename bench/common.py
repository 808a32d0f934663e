"""What the benchmarks share: a database per run and a free loopback port."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from zerotouch.demo import free_port

__all__ = ["database", "free_port", "server_env"]


def server_env(root: Path, url: str) -> dict[str, str]:
    """The environment a benchmark's `zerotouch serve` runs in: no inherited settings, its own
    data directory, the run's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTOUCH_")}
    env["ZEROTOUCH_DATA_DIR"] = str(root / "data")
    env["ZEROTOUCH_DATABASE_URL"] = url
    return env


PG_ADMIN_URL = os.environ.get(
    "ZEROTOUCH_TEST_PG_ADMIN_URL", "postgresql+psycopg://127.0.0.1:5432/postgres"
)


@contextmanager
def database(backend: str, data_dir: Path) -> Iterator[str]:
    """The URL of an empty database: SQLite in ``data_dir``, or a PostgreSQL database made for
    this run and dropped after it."""
    if backend == "sqlite":
        yield f"sqlite:///{data_dir / 'zerotouch.db'}"
        return
    name = f"zt_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
