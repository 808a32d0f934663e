"""The statements of a group of device calls (services/device_calls.py): one read for every
device of the group, and one statement per kind of change, whatever the group's size."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa

from zerotouch.domain.lifecycle import CommandStatus
from zerotouch.store.events import send_events
from zerotouch.store.fast import FastStatement, Pending
from zerotouch.store.schema import (
    BigId,
    Json,
    certificate_authorities,
    commands,
    device_keys,
    device_token_ids,
    devices,
)
from zerotouch.store.sets import InsertRows, Rows, lookup_hint, one_of

# What a device call can hand out or act on.
OPEN = (CommandStatus.PENDING.value, CommandStatus.IN_PROGRESS.value)

_RECORD_JTIS = InsertRows(device_token_ids, ("device_pk", "jti", "expires_at"))
# One read for every device of the group: the device row, locked (in one order, by id, so
# groups in other processes cannot deadlock with this one), the fingerprints of its keys, its
# account CA's fingerprint, and its whole plan (at most 20 commands), with the parameters only
# of the commands still open: they are all a call can hand out or act on.
_SPACE = cast(str, sa.literal_column("' '"))
_locked = (
    sa.select(
        devices.c.id.label("device_pk"),
        devices.c.account_id,
        devices.c.status.label("device_status"),
        devices.c.blocked_from,
        # The separator written into the SQL: given as a str, it would be a parameter that
        # SQLAlchemy fills in only at execution, which store/fast.py does not do.
        sa.select(sa.func.aggregate_strings(device_keys.c.fingerprint, _SPACE))
        .where(device_keys.c.device_pk == devices.c.id)
        .scalar_subquery()
        .label("keys"),
        sa.select(certificate_authorities.c.fingerprint)
        .where(certificate_authorities.c.account_id == devices.c.account_id)
        .scalar_subquery()
        .label("authority"),
    )
    .where(one_of(devices.c.id, "pks"))
    .order_by(devices.c.id)
    .with_for_update()
    .subquery("locked")
)
_is_open = commands.c.status.in_([sa.literal(s) for s in OPEN])
_READ = FastStatement(
    sa.select(
        *_locked.c,
        commands.c.id,
        commands.c.position,
        commands.c.type,
        sa.case((_is_open, commands.c.request), else_=sa.null()).label("request"),
        sa.case((_is_open, commands.c.secrets_sealed), else_=sa.null()).label("secrets_sealed"),
        commands.c.status,
    )
    .select_from(
        _locked.outerjoin(
            commands,
            sa.and_(
                commands.c.device_pk == _locked.c.device_pk,
                # Without statistics (a table just filled, not analyzed yet) PostgreSQL guesses
                # that each device has a two-hundredth of all commands, and scans the whole
                # table for every group: the list lets it look the plans up by index instead.
                lookup_hint(commands.c.device_pk, "pks"),
            ),
        )
    )
    .order_by(_locked.c.device_pk, commands.c.position)
)

# What a change leaves out (None) stays as it was.
_changed = Rows(
    "changed",
    sa.column("id", commands.c.id.type),
    sa.column("status", commands.c.status.type),
    sa.column("response", Json),
    sa.column("position", sa.Integer()),
)
_CHANGE_COMMANDS = FastStatement(
    commands.update()
    .where(commands.c.id == _changed.c.id, lookup_hint(commands.c.id, "ids"))
    .values(
        status=sa.func.coalesce(_changed.c.status, commands.c.status),
        response=sa.func.coalesce(_changed.c.response, commands.c.response),
        position=sa.func.coalesce(_changed.c.position, commands.c.position),
        updated_at=sa.bindparam("now"),
    )
)
_moved = Rows("moved", sa.column("id", BigId), sa.column("status", devices.c.status.type))
_MOVE_DEVICES = FastStatement(
    devices.update()
    .where(devices.c.id == _moved.c.id, lookup_hint(devices.c.id, "ids"))
    .values(status=_moved.c.status, updated_at=sa.bindparam("now"))
)
_NEW_COMMANDS = InsertRows(commands, [c.name for c in commands.c])
_NEW_KEYS = InsertRows(
    device_keys, ("device_pk", "fingerprint", "public_key", "command_id", "created_at")
)


def send_reads(conn: sa.Connection, device_pks: list[int], jtis: list[dict[str, Any]]) -> Pending:
    """Read for every call of a group and record its new jtis: two statements, sent together.

    The read locks the devices first: a jti's row takes a share lock on its device (its
    foreign key), and taken before the row lock it would let two nodes serving one device
    deadlock. Locks are taken in one order: devices by id, then the jtis.
    """
    reading = _READ.send(conn, {"pks": device_pks})
    _RECORD_JTIS.send(conn, jtis)
    return reading


def send_changes(
    conn: sa.Connection,
    *,
    changed: list[dict[str, Any]],
    moved: list[dict[str, Any]],
    new_commands: list[dict[str, Any]],
    new_keys: list[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    now: dt.datetime,
) -> None:
    """What the calls of a group staged, one statement per kind."""
    if changed:
        ids = [row["id"] for row in changed]
        _CHANGE_COMMANDS.send(conn, {"changed": changed, "ids": ids, "now": now})
    if moved:
        ids = [row["id"] for row in moved]
        _MOVE_DEVICES.send(conn, {"moved": moved, "ids": ids, "now": now})
    _NEW_COMMANDS.send(conn, new_commands)
    _NEW_KEYS.send(conn, new_keys)
    send_events(conn, events)


# A long poll asks these while it waits (see has_commands): built once (see store/fast.py).
_b = sa.bindparam
_cursor = commands.alias("cursor")
# Whether an open command follows the cursor (none: from the start).
_NEXT = FastStatement(
    sa.select(commands.c.id)
    .where(
        commands.c.device_pk == _b("device_pk"),
        commands.c.position
        > sa.case(
            (_b("after", type_=sa.String) == sa.null(), 0),
            else_=sa.select(_cursor.c.position)
            .where(_cursor.c.id == _b("after"), _cursor.c.device_pk == _b("device_pk"))
            .scalar_subquery(),
        ),
        commands.c.status.in_([sa.literal(status) for status in OPEN]),
    )
    .limit(1)
)
_DEVICE_STATUS = FastStatement(sa.select(devices.c.status).where(devices.c.id == _b("device_pk")))


def status_of(conn: sa.Connection, device_pk: int) -> str:
    (row,) = _DEVICE_STATUS.run(conn, {"device_pk": device_pk})
    return str(row.status)


def has_open_after(conn: sa.Connection, device_pk: int, after: str | None) -> bool:
    """Whether an open command of the device follows the cursor (none: from the start)."""
    return bool(_NEXT.run(conn, {"device_pk": device_pk, "after": after}))
