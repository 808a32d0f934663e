"""Keyset pagination tokens: opaque to clients, the last row's id underneath."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import InvalidArgument

MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"i{last_id}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith("i") and text[1:].isdigit():
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument.for_field("pageNextToken", "is not a token from an earlier page")


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidArgument.for_field("pageLimit", f"must be between 1 and {MAX_PAGE_LIMIT}")
    return limit


def keyset_page(
    conn: sa.Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    after: int,
    limit: int,
) -> tuple[list[sa.Row[Any]], int, str | None]:
    """One page of ``table`` rows in id order after ``after``: (rows, total, next token)."""
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(table).where(*where, table.c.id > after).order_by(table.c.id).limit(limit + 1)
    ).all()
    next_token = encode_token(rows[limit - 1].id) if len(rows) > limit else None
    return list(rows[:limit]), int(total), next_token
