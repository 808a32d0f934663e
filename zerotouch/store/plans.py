"""Devices' plans: their commands, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import NotFound
from zerotouch.domain.lifecycle import CommandStatus
from zerotouch.store.schema import commands


def next_position(conn: sa.Connection, device_pk: int) -> tuple[int, int]:
    """(number of commands, next free position) of a device's plan."""
    count, top = conn.execute(
        sa.select(sa.func.count(), sa.func.max(commands.c.position)).where(
            commands.c.device_pk == device_pk
        )
    ).one()
    return int(count), int(top or 0) + 1


def add(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append commands (every column given) to plans."""
    if rows:
        conn.execute(commands.insert(), list(rows))


def of_device(conn: sa.Connection, device_pk: int) -> list[Any]:
    """The device's plan, by position."""
    return list(
        conn.execute(
            sa.select(commands)
            .where(commands.c.device_pk == device_pk)
            .order_by(commands.c.position)
        )
    )


def find(conn: sa.Connection, device_pk: int, command_id: str) -> Any:
    """A command of the device's plan; NotFound for any other."""
    row = conn.execute(
        sa.select(commands).where(commands.c.id == command_id, commands.c.device_pk == device_pk)
    ).first()
    if row is None:
        raise NotFound(f"No command {command_id!r} for this device.", code="command_not_found")
    return row


def delete(conn: sa.Connection, command_id: str) -> None:
    conn.execute(commands.delete().where(commands.c.id == command_id))


def update(conn: sa.Connection, command_id: str, **values: Any) -> None:
    conn.execute(commands.update().where(commands.c.id == command_id).values(**values))


def failed_count(conn: sa.Connection, device_pk: int) -> int:
    """How many commands of the device's plan are FAILED."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                commands.c.device_pk == device_pk,
                commands.c.status == CommandStatus.FAILED.value,
            )
        ).scalar_one()
    )
