"""Keyset pagination tokens: opaque to clients, the last row's id underneath."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from zerotouch.domain.errors import InvalidArgument
from zerotouch.domain.views import MAX_ID, MAX_PAGE_LIMIT, Page

T = TypeVar("T")


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"i{last_id}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith("i") and text[1:].isdigit() and int(text[1:]) <= MAX_ID:
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


def _encode_position(at: dt.datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"t{at.isoformat()}|{key}".encode()).decode().rstrip("=")


def _decode_position(token: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        at, bar, key = text[1:].partition("|")
        if text.startswith("t") and bar:
            return dt.datetime.fromisoformat(at), key
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument.for_field("pageNextToken", "is not a token from an earlier page")


def created_page(
    conn: sa.Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    view: Callable[[Any], T],
    limit: int,
    token: str | None,
) -> Page[T]:
    """One page of ``table`` rows in the order they were made (``created_at``, then the text
    ``id``), after the position ``token`` names."""
    check_limit(limit)
    created, key = table.c.created_at, table.c.id
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
    after: list[sa.ColumnElement[bool]] = []
    if token:
        at, last = _decode_position(token)
        after.append(sa.or_(created > at, sa.and_(created == at, key > last)))
    rows = conn.execute(
        sa.select(table).where(*where, *after).order_by(created, key).limit(limit + 1)
    ).all()
    last_row = rows[limit - 1] if len(rows) > limit else None
    next_token = _encode_position(last_row.created_at, last_row.id) if last_row else None
    return Page([view(row) for row in rows[:limit]], int(total), next_token)


def slice_page(items: Sequence[T], *, limit: int, token: str | None) -> Page[T]:
    """A page of a short list assembled in memory; the token is the next item's place."""
    check_limit(limit)
    start = 0
    if token:
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            if not (text.startswith("o") and text[1:].isdigit()):
                raise ValueError(text)
            start = int(text[1:])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidArgument.for_field(
                "pageNextToken", "is not a token from an earlier page"
            ) from None
    end = start + limit
    following = base64.urlsafe_b64encode(f"o{end}".encode()).decode().rstrip("=")
    return Page(list(items[start:end]), len(items), following if end < len(items) else None)


def account_page(
    conn: sa.Connection,
    table: sa.Table,
    account_id: int,
    *,
    view: Callable[[Any], T],
    limit: int,
    token: str | None,
) -> Page[T]:
    """One page of an account's rows of ``table``, in the order they were made."""
    return created_page(
        conn, table, [table.c.account_id == account_id], view=view, limit=limit, token=token
    )
