"""Test harness: the whole suite runs on SQLite or on PostgreSQL (ZEROTOUCH_TEST_DATABASE).

PostgreSQL runs get a fresh database, created here and dropped at the end. When the server is
unreachable the run fails under CI and is skipped elsewhere.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from zerotouch.adapters.http.app import create_app
from zerotouch.crypto.envelope import Keyring
from zerotouch.services.core import Core
from zerotouch.services.runtime import Runtime
from zerotouch.store.db import Database
from zerotouch.store.schema import metadata

BACKEND = os.environ.get("ZEROTOUCH_TEST_DATABASE", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "ZEROTOUCH_TEST_PG_ADMIN_URL", "postgresql+psycopg://127.0.0.1:5432/postgres"
)
ROLES = ("owner", "admin", "editor", "viewer", "manufacturer")


def _pg_admin() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def pytest_sessionstart(session: pytest.Session) -> None:
    if BACKEND != "postgresql":
        return
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.exit(f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}", returncode=1)
        pytest.exit(
            f"PostgreSQL is unreachable at {PG_ADMIN_URL}; its run is skipped.", returncode=0
        )


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'zerotouch.db'}"
        return
    with fresh_pg_database() as url:
        yield url


class fresh_pg_database:
    """A new, empty PostgreSQL database, dropped on exit."""

    def __enter__(self) -> str:
        self.name = f"zt_test_{os.getpid()}_{secrets.token_hex(4)}"
        self.admin = _pg_admin()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        return str(sa.make_url(PG_ADMIN_URL).set(database=self.name).render_as_string(False))

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def migrated_db(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def db(migrated_db: Database) -> Database:
    with migrated_db.write() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return migrated_db


@pytest.fixture
def rt(db: Database) -> Runtime:
    return Runtime(db=db, keyring=Keyring.generate())


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    core = Core(rt)
    try:
        with TestClient(create_app(core)) as test_client:
            yield test_client
    finally:
        core.close()


class Api:
    """A test client with one API key per role in account 'acme' and an owner in 'rival'."""

    def __init__(self, client: TestClient, rt: Runtime) -> None:
        from zerotouch.services.accounts import create_api_key

        self.client = client
        self.keys = {role: create_api_key(rt, role=role, account_name="acme")[1] for role in ROLES}
        self.keys["rival"] = create_api_key(rt, role="owner", account_name="rival")[1]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def call(self, method: str, path: str, role: str = "owner", **kw: Any) -> Any:
        return self.client.request(
            method, path, headers={**self.headers(role), **kw.pop("headers", {})}, **kw
        )

    def import_devices(self, *records: dict[str, Any], role: str = "manufacturer") -> Any:
        res = self.call("POST", "/v1/manufacturing/devices", role, json={"devices": list(records)})
        assert res.status_code == 200, res.text
        return res.json()

    def claimed(
        self, device_id: str = "dev-1", role: str = "owner", **fields: Any
    ) -> dict[str, Any]:
        """Import one device and claim it; returns the claimed Device."""
        token = self.import_devices({"deviceId": device_id, **fields})["devices"][0]["ownerToken"]
        res = self.call("POST", "/v1/claimed-devices", role, json={"ownerToken": token})
        assert res.status_code == 201, res.text
        body: dict[str, Any] = res.json()
        return body


@pytest.fixture
def api(client: TestClient, rt: Runtime) -> Api:
    return Api(client, rt)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a `zerotouch` command run as a user runs it: no inherited
    ZEROTOUCH_* settings, a data directory of its own, and the database of this run."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTOUCH_")}
    base["ZEROTOUCH_DATA_DIR"] = str(tmp_path / "data")
    if BACKEND == "postgresql":
        with fresh_pg_database() as url:
            yield {**base, "ZEROTOUCH_DATABASE_URL": url}
        return
    yield base
