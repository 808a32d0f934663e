"""Devices: claims, the owner's hold, tags, and what verifies a device's tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from zerotouch.domain.errors import NotFound
from zerotouch.store import paging
from zerotouch.store.fast import FastStatement, Pending
from zerotouch.store.schema import (
    commands,
    device_keys,
    device_tags,
    device_token_ids,
    devices,
    ovms_records,
)
from zerotouch.store.sets import InsertRows, one_of

# Claims are the hot path: their statements are built once (building one costs more than
# running it).
_BY_TOKEN_HASH = FastStatement(
    sa.select(devices.c.device_id, devices.c.dev_eui, devices.c.join_eui).where(
        devices.c.owner_token_hash == sa.bindparam("hash")
    )
)
_TAGS = InsertRows(device_tags, ("device_pk", "tag"))


def _claim_statement(*label: sa.ColumnElement[bool]) -> FastStatement:
    """The conditional UPDATE that claims a device: of racing claims exactly one matches. What
    a QR label names must match the device too."""
    return FastStatement(
        devices.update()
        .where(
            devices.c.owner_token_hash == sa.bindparam("hash"),
            devices.c.account_id.is_(None),
            *label,
        )
        .values(
            account_id=sa.bindparam("account"),
            status=sa.bindparam("status"),
            claimed_at=sa.bindparam("now"),
            updated_at=sa.bindparam("now"),
        )
        .returning(*devices.c)
    )


_CLAIM = _claim_statement()
_CLAIM_TR005 = _claim_statement(
    devices.c.dev_eui == sa.bindparam("dev_eui"), devices.c.join_eui == sa.bindparam("join_eui")
)
_CLAIM_LABELLED = _claim_statement(devices.c.device_id == sa.bindparam("device_id"))
_CLAIMS = {"plain": _CLAIM, "tr005": _CLAIM_TR005, "labelled": _CLAIM_LABELLED}


def send_claim(conn: sa.Connection, kind: str, params: dict[str, Any]) -> Pending:
    """Claim the device whose owner token hashes to ``hash`` for ``account`` if nobody has
    (``kind`` "tr005": and it has these EUIs; "labelled": and this deviceId); its row, as
    claimed, once the rows are read."""
    return _CLAIMS[kind].send(conn, params)


def send_owner_lookup(conn: sa.Connection, token_hash: str) -> Pending:
    """deviceId and EUIs of the device an owner token belongs to, claimed or not."""
    return _BY_TOKEN_HASH.send(conn, {"hash": token_hash})


def owner_lookup(conn: sa.Connection, token_hash: str) -> Any:
    """The device an owner token belongs to (deviceId, EUIs, the token's hash, its account),
    claimed or not; None if there is none."""
    return conn.execute(
        sa.select(
            devices.c.device_id,
            devices.c.dev_eui,
            devices.c.join_eui,
            devices.c.owner_token_hash,
            devices.c.account_id,
            devices.c.claimed_at,
        ).where(devices.c.owner_token_hash == token_hash)
    ).first()


def add_tags(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Index tags of claimed devices (``device_pk``, ``tag`` rows), as one statement."""
    _TAGS.send(conn, rows)


def device_for_account(
    conn: sa.Connection, *, account_id: int, device_id: str, lock: bool = False
) -> sa.Row[Any]:
    """A claimed device of this account; any other device is reported as not found."""
    query = sa.select(devices).where(
        devices.c.device_id == device_id, devices.c.account_id == account_id
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"No device {device_id!r} in this account.", code="device_not_found")
    return row


def by_pk(conn: sa.Connection, device_pk: int) -> Any:
    """A device row by its key (it exists: a caller holds its key from a row of its own)."""
    return conn.execute(sa.select(devices).where(devices.c.id == device_pk)).one()


def tags_of(conn: sa.Connection, device_pks: Sequence[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {pk: [] for pk in device_pks}
    if device_pks:
        rows = conn.execute(
            sa.select(device_tags.c.device_pk, device_tags.c.tag)
            .where(device_tags.c.device_pk.in_(device_pks))
            .order_by(device_tags.c.tag)
        )
        for pk, tag in rows:
            result[pk].append(tag)
    return result


def command_counts(conn: sa.Connection, device_pks: Sequence[int]) -> dict[int, dict[str, int]]:
    result = {pk: {"total": 0, "pending": 0, "succeeded": 0, "failed": 0} for pk in device_pks}
    if device_pks:
        rows = conn.execute(
            sa.select(commands.c.device_pk, commands.c.status, sa.func.count())
            .where(commands.c.device_pk.in_(device_pks))
            .group_by(commands.c.device_pk, commands.c.status)
        )
        for pk, status, count in rows:
            counts = result[pk]
            counts["total"] += count
            key = status.lower()
            if key in counts:
                counts[key] += count
    return result


def page(
    conn: sa.Connection,
    *,
    account_id: int,
    status: str | None,
    tag: str | None,
    after: int,
    limit: int,
) -> tuple[list[Any], int, str | None]:
    """A page of an account's devices, in claim order after ``after``."""
    where = [devices.c.account_id == account_id]
    if status is not None:
        where.append(devices.c.status == status)
    if tag is not None:
        where.append(
            devices.c.id.in_(sa.select(device_tags.c.device_pk).where(device_tags.c.tag == tag))
        )
    return paging.keyset_page(conn, devices, where, after=after, limit=limit)


def imported_page(
    conn: sa.Connection,
    *,
    account_id: int,
    tag: str | None,
    claimed: bool | None,
    after: int,
    limit: int,
) -> tuple[list[Any], int, str | None]:
    """A page of the devices an account imported, in import order after ``after``; ``tag``
    matches the tags given at import."""
    where: list[sa.ColumnElement[bool]] = [devices.c.imported_by == account_id]
    if claimed is not None:
        owned = devices.c.account_id
        where.append(owned.is_not(None) if claimed else owned.is_(None))
    if tag is not None:
        where.append(_has_factory_tag(conn, tag))
    return paging.keyset_page(conn, devices, where, after=after, limit=limit)


def _has_factory_tag(conn: sa.Connection, tag: str) -> sa.ColumnElement[bool]:
    if conn.dialect.name == "postgresql":
        return sa.cast(devices.c.factory_tags, postgresql.JSONB).contains([tag])
    each = sa.func.json_each(devices.c.factory_tags).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))


def drop_plan(conn: sa.Connection, device_pk: int) -> int:
    """Delete every command of the device; returns how many there were."""
    return int(conn.execute(commands.delete().where(commands.c.device_pk == device_pk)).rowcount)


def update(conn: sa.Connection, device_pk: int, **values: Any) -> None:
    conn.execute(devices.update().where(devices.c.id == device_pk).values(**values))


def release(conn: sa.Connection, device_pk: int) -> None:
    """What an unclaimed device leaves behind goes: its owner's tags and OVMS record."""
    conn.execute(device_tags.delete().where(device_tags.c.device_pk == device_pk))
    conn.execute(ovms_records.delete().where(ovms_records.c.device_pk == device_pk))


def unclaimed_import(conn: sa.Connection, *, account_id: int, device_id: str) -> Any:
    """A device this account imported that nobody has claimed, or None."""
    return conn.execute(
        sa.select(devices).where(
            devices.c.device_id == device_id,
            devices.c.imported_by == account_id,
            devices.c.account_id.is_(None),
        )
    ).first()


# Every device's first call in a process reads this, for all devices that call together: each
# device with the public keys it generated, looked up by index for each device (a join would
# let PostgreSQL, without statistics on a table just filled, scan every key for every group).
KEY_SEPARATOR = ";"  # Never in a PEM text.
_DEVICES = FastStatement(
    sa.select(
        devices.c.id,
        devices.c.device_id,
        devices.c.account_id,
        devices.c.status,
        devices.c.public_key,
        devices.c.device_secret_sealed,
        sa.select(
            sa.func.aggregate_strings(
                device_keys.c.public_key,
                # Written into the SQL (see _SPACE in store/device_calls.py).
                cast(str, sa.literal_column(f"'{KEY_SEPARATOR}'")),
            )
        )
        .where(device_keys.c.device_pk == devices.c.id)
        .scalar_subquery()
        .label("keys"),
    ).where(one_of(devices.c.device_id, "device_ids"))
)


def send_credentials(conn: sa.Connection, device_ids: list[str]) -> Pending:
    """Each device of ``device_ids`` with its public keys (KEY_SEPARATOR between them) and
    sealed secret, once the rows are read."""
    return _DEVICES.send(conn, {"device_ids": device_ids})


def forget_token_ids(conn: sa.Connection, *, before: dt.datetime) -> int:
    """Forget the jtis of tokens that expired before ``before``; returns how many."""
    result = conn.execute(device_token_ids.delete().where(device_token_ids.c.expires_at < before))
    return int(result.rowcount or 0)
