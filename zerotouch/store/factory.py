"""Factory records: what a re-import compares with; inserts and updates at the driver's speed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import AlreadyExists
from zerotouch.store import bulk
from zerotouch.store.db import unique_violation_as
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import devices
from zerotouch.store.sets import one_of


@dataclass(frozen=True, slots=True)
class ImportState:
    """What a re-import needs to know of a device imported before."""

    pk: int
    imported_by: int
    claimed: bool
    digest: str | None
    owner_token_sealed: str | None  # Only while unclaimed.


_STATES = FastStatement(
    sa.select(
        devices.c.device_id,
        devices.c.id,
        devices.c.imported_by,
        devices.c.account_id,
        devices.c.record_digest,
        devices.c.owner_token_sealed,
    ).where(one_of(devices.c.device_id, "ids"))
)


def import_states(conn: sa.Connection, device_ids: list[str]) -> dict[str, ImportState]:
    """The import state of those of ``device_ids`` that are imported already (one statement,
    the ids as one list parameter)."""
    return {
        r.device_id: ImportState(
            r.id,
            r.imported_by,
            r.account_id is not None,
            r.record_digest,
            r.owner_token_sealed if r.account_id is None else None,
        )
        for r in _STATES.run(conn, {"ids": device_ids})
    }


# The columns of an imported device, in the order each prepared row holds their values.
INSERT_COLUMNS = (
    "device_id",
    "account_id",
    "imported_by",
    "status",
    "blocked_from",
    "dev_eui",
    "join_eui",
    "profile_id",
    "vin",
    "imei",
    "serial",
    "mac",
    "public_key",
    "app_key_sealed",
    "iccid_sealed",
    "device_secret_sealed",
    "tkm_info",
    "factory_tags",
    "record_digest",
    "owner_token_hash",
    "owner_token_sealed",
    "claimed_at",
    "created_at",
    "updated_at",
)
# What a re-import with update=true replaces: all but the device's identity, owner and token.
UPDATED_COLUMNS = tuple(
    c
    for c in INSERT_COLUMNS
    if c
    not in {
        "device_id",
        "account_id",
        "imported_by",
        "status",
        "blocked_from",
        "owner_token_hash",
        "owner_token_sealed",
        "claimed_at",
        "created_at",
    }
)


def update_imported(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Replace the factory records of unclaimed devices (``pk``; ``old_digest`` as read, and
    the owner token columns where given); how many were claimed or changed meanwhile."""
    lost = 0
    for with_token in (False, True):
        group = [r for r in rows if ("owner_token_hash" in r) == with_token]
        if not group:
            continue
        token_columns = ("owner_token_hash", "owner_token_sealed") if with_token else ()
        names = UPDATED_COLUMNS + token_columns
        c = devices.c
        statement = (
            devices.update()
            .where(
                c.id == sa.bindparam("pk"),
                c.account_id.is_(None),
                c.record_digest.is_not_distinct_from(sa.bindparam("old_digest")),
            )
            .values({name: sa.bindparam(f"v_{name}") for name in names})
        )
        params = [
            {"pk": r["pk"], "old_digest": r["old_digest"]} | {f"v_{n}": r[n] for n in names}
            for r in group
        ]
        with unique_violation_as(AlreadyExists("An owner token is in use.")):
            result = conn.execute(statement, params)
        lost += len(group) - max(result.rowcount, 0)
    return lost


def converted(dialect: sa.Dialect, rows: Sequence[Sequence[Any]]) -> bulk.Converted:
    """New devices (values in INSERT_COLUMNS order) made ready for add_imported."""
    return bulk.converted(dialect, devices, INSERT_COLUMNS, rows)


def add_imported(conn: sa.Connection, rows: bulk.Converted) -> None:
    """Insert factory records at the driver's speed."""
    with unique_violation_as(AlreadyExists("A deviceId was imported concurrently.")):
        bulk.insert_converted(conn, rows)
