"""OVMS records: the AP-S answer of each car, sealed, by apkey."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import AlreadyExists, NotFound
from zerotouch.store.db import unique_violation_as
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import devices, ovms_records


def find(conn: sa.Connection, device_pk: int) -> Any:
    """The device's record; NotFound if it has none."""
    row = conn.execute(sa.select(ovms_records).where(ovms_records.c.device_pk == device_pk)).first()
    if row is None:
        raise NotFound("The device has no OVMS record.", code="ovms_record_not_found")
    return row


def delete(conn: sa.Connection, device_pk: int) -> None:
    conn.execute(ovms_records.delete().where(ovms_records.c.device_pk == device_pk))


def replace(conn: sa.Connection, device_pk: int, **row: Any) -> None:
    """The device's record, in place of any it had; AlreadyExists if another has the apkey."""
    delete(conn, device_pk)
    with unique_violation_as(
        AlreadyExists("The apkey is in use: choose another.", code="apkey_taken")
    ):
        conn.execute(ovms_records.insert().values(device_pk=device_pk, **row))


# Cars ask many times a second: statements built once (see store/fast.py).
_b = sa.bindparam
_LOOKUP = FastStatement(
    sa.select(
        ovms_records.c.device_pk,
        ovms_records.c.answer_sealed,
        ovms_records.c.one_time,
        devices.c.device_id,
        devices.c.account_id,
        devices.c.status,
    )
    .join(devices, devices.c.id == ovms_records.c.device_pk)
    .where(ovms_records.c.apkey == _b("apkey"))
)
_DELIVERED = FastStatement(
    ovms_records.update()
    .where(ovms_records.c.device_pk == _b("device_pk"))
    .values(
        delivered_at=_b("now"), deliveries=ovms_records.c.deliveries + _b("n"), updated_at=_b("now")
    )
)
_TAKE_ONCE = FastStatement(
    ovms_records.update()
    .where(ovms_records.c.device_pk == _b("device_pk"), ovms_records.c.delivered_at.is_(None))
    .values(delivered_at=_b("now"))
    .returning(ovms_records.c.device_pk)
)
_SET_STATUS = FastStatement(
    devices.update()
    .where(devices.c.id == _b("device_pk"))
    .values(status=_b("status"), updated_at=_b("now"))
)


def lookup(conn: sa.Connection, apkey: str) -> Any:
    """The record answering to ``apkey``, with its device's id, account and status; or None."""
    found = _LOOKUP.run(conn, {"apkey": apkey})
    return found[0] if found else None


def delivered(conn: sa.Connection, device_pk: int, n: int, now: dt.datetime) -> None:
    """Count ``n`` deliveries of the device's record."""
    _DELIVERED.run(conn, {"device_pk": device_pk, "n": n, "now": now})


def take_once(conn: sa.Connection, device_pk: int, now: dt.datetime) -> bool:
    """Mark a one-time record delivered; False when it was already (of racing cars exactly
    one gets True)."""
    return bool(_TAKE_ONCE.run(conn, {"device_pk": device_pk, "now": now}))


def set_device_status(conn: sa.Connection, device_pk: int, status: str, now: dt.datetime) -> None:
    _SET_STATUS.run(conn, {"device_pk": device_pk, "status": status, "now": now})
