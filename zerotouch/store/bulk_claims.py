"""Bulk claims worked through in the background: the job, its lease and its progress."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from zerotouch.store.schema import bulk_claims

DONE = "COMPLETED"


def add(conn: sa.Connection, **row: Any) -> None:
    conn.execute(bulk_claims.insert().values(**row))


def find(conn: sa.Connection, job_id: str, *, account_id: int) -> Any:
    """The account's job, or None."""
    return conn.execute(
        sa.select(bulk_claims).where(
            bulk_claims.c.id == job_id, bulk_claims.c.account_id == account_id
        )
    ).first()


def take(conn: sa.Connection, *, now: dt.datetime, until: dt.datetime) -> Any:
    """Lease the oldest job nobody works on (its lease ended or it has none); None if there is
    none. Of nodes racing for one job exactly one gets it."""
    free = sa.or_(bulk_claims.c.lease_until.is_(None), bulk_claims.c.lease_until < now)
    candidates = conn.execute(
        sa.select(bulk_claims.c.id)
        .where(bulk_claims.c.status != DONE, free)
        .order_by(bulk_claims.c.created_at, bulk_claims.c.id)
        .limit(5)
    ).scalars()
    for job_id in list(candidates):
        taken = conn.execute(
            bulk_claims.update()
            .where(bulk_claims.c.id == job_id, bulk_claims.c.status != DONE, free)
            .values(lease_until=until, status="IN_PROGRESS", updated_at=now)
        )
        if taken.rowcount:
            return conn.execute(sa.select(bulk_claims).where(bulk_claims.c.id == job_id)).one()
    return None


def progress(conn: sa.Connection, job_id: str, **values: Any) -> None:
    conn.execute(bulk_claims.update().where(bulk_claims.c.id == job_id).values(**values))
