"""Migrations: from an empty database to head, and head matches the schema the code uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.conftest import BACKEND, fresh_pg_database
from zerotouch.store.db import Database
from zerotouch.store.schema import metadata


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
            assert version == "0001"
    finally:
        db.dispose()
