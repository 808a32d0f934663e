"""Migrations: from an empty database to head, and head matches the schema the code uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tests.conftest import BACKEND, fresh_pg_database
from zerotouch.crypto.hashing import owner_token_matches, secret_hash
from zerotouch.store.db import Database, alembic_config
from zerotouch.store.schema import metadata

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture
def empty_url(tmp_path: object) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    with fresh_pg_database() as url:
        yield url


def test_upgrade_from_empty_to_head(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        with db.read() as conn:
            assert sa.inspect(conn).get_table_names() == []
        db.upgrade()
        db.upgrade()  # A second run is a no-op.
        with db.engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            assert {t.name for t in metadata.sorted_tables} <= names
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == [], diff
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            assert version == HEAD
    finally:
        db.dispose()


def test_processes_starting_together_migrate_once(empty_url: str) -> None:
    """Two servers (or `serve` and `keys create`) starting on a fresh database at once."""
    import threading

    barrier = threading.Barrier(3)
    errors: list[BaseException] = []
    dbs = [Database(empty_url) for _ in range(3)]

    def start(db: Database) -> None:
        barrier.wait()
        try:
            db.upgrade()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with dbs[0].read() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in version] == [HEAD]
    finally:
        for db in dbs:
            db.dispose()


def test_owner_tokens_imported_before_0008_still_claim(empty_url: str) -> None:
    """0008 shortens stored owner token digests to the first 128 bits of their SHA-256."""
    db = Database(empty_url)
    token = "AB" * 16
    try:
        with db.engine.begin() as conn:
            cfg = alembic_config(empty_url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
            now = dt.datetime.now(dt.UTC).isoformat()
            conn.execute(
                sa.text("INSERT INTO accounts (name, created_at) VALUES ('a', :n)"), {"n": now}
            )
            conn.execute(
                sa.text(
                    "INSERT INTO devices (device_id, imported_by, status, owner_token_hash, "
                    "owner_token_sealed, factory_tags, created_at, updated_at) VALUES "
                    "('old', 1, 'UNCLAIMED', :h, 'x', '[]', :n, :n)"
                ),
                {"h": secret_hash(token), "n": now},
            )
        db.upgrade()
        with db.read() as conn:
            stored = conn.execute(sa.text("SELECT owner_token_hash FROM devices")).scalar_one()
        assert len(stored) == 32 and owner_token_matches(stored, token)
    finally:
        db.dispose()
