"""OCPI: tokens (token A, callback tokens), partner platforms, and the ClientInfo a hub sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import ZerotouchError
from zerotouch.store.db import unique_violation_as
from zerotouch.store.schema import ocpi_client_infos, ocpi_peers, ocpi_tokens

# --- tokens ---------------------------------------------------------------------------------


def add_token(conn: sa.Connection, **row: Any) -> None:
    conn.execute(ocpi_tokens.insert().values(**row))


def token_by_hash(conn: sa.Connection, token_hash: str) -> Any:
    return conn.execute(
        sa.select(ocpi_tokens).where(ocpi_tokens.c.token_hash == token_hash)
    ).first()


def use_token(conn: sa.Connection, token_id: str, now: dt.datetime) -> bool:
    """Mark a token used; False when it was already (of two callers exactly one gets True)."""
    result = conn.execute(
        ocpi_tokens.update()
        .where(ocpi_tokens.c.id == token_id, ocpi_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)


def delete_token(conn: sa.Connection, token_id: str) -> None:
    conn.execute(ocpi_tokens.delete().where(ocpi_tokens.c.id == token_id))


# --- partners -------------------------------------------------------------------------------


def peer_by_incoming_hash(conn: sa.Connection, token_hash: str) -> Any:
    return conn.execute(
        sa.select(ocpi_peers).where(ocpi_peers.c.incoming_token_hash == token_hash)
    ).first()


def party(conn: sa.Connection, *, account_id: int, country_code: str, party_id: str) -> Any:
    """The account's partner of this party (id and status), or None."""
    return conn.execute(
        sa.select(ocpi_peers.c.id, ocpi_peers.c.status).where(
            ocpi_peers.c.account_id == account_id,
            ocpi_peers.c.country_code == country_code,
            ocpi_peers.c.party_id == party_id,
        )
    ).first()


def add_peer(conn: sa.Connection, row: dict[str, Any], *, taken: ZerotouchError) -> None:
    """Store a new partner; ``taken`` is raised when the account has that party already."""
    with unique_violation_as(taken):
        conn.execute(ocpi_peers.insert().values(**row))


def update_peer(conn: sa.Connection, peer_id: str, **values: Any) -> None:
    conn.execute(ocpi_peers.update().where(ocpi_peers.c.id == peer_id).values(**values))


def peer(conn: sa.Connection, peer_id: str, *, account_id: int | None = None) -> Any:
    """A partner by id (of this account only, if given), or None."""
    query = sa.select(ocpi_peers).where(ocpi_peers.c.id == peer_id)
    if account_id is not None:
        query = query.where(ocpi_peers.c.account_id == account_id)
    return conn.execute(query).first()


def peers_of(conn: sa.Connection, account_id: int) -> list[Any]:
    """The account's partners in the order they registered."""
    return list(
        conn.execute(
            sa.select(ocpi_peers)
            .where(ocpi_peers.c.account_id == account_id)
            .order_by(ocpi_peers.c.created_at, ocpi_peers.c.id)
        ).all()
    )


def peers_page(
    conn: sa.Connection, account_id: int, *, offset: int, limit: int
) -> tuple[list[Any], int]:
    """A slice of the account's partners in the order they registered, and how many there
    are."""
    query = sa.select(ocpi_peers).where(ocpi_peers.c.account_id == account_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(ocpi_peers.c.created_at, ocpi_peers.c.id).offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


def quiet_peers(
    conn: sa.Connection, statuses: Sequence[str], *, since: dt.datetime | None
) -> list[Any]:
    """Partners in one of ``statuses`` not heard from since ``since`` (None: all of them)."""
    query = sa.select(ocpi_peers).where(ocpi_peers.c.status.in_(list(statuses)))
    if since is not None:
        query = query.where(ocpi_peers.c.last_updated <= since)
    return list(conn.execute(query).all())


def set_status(
    conn: sa.Connection, peer_id: str, status: str, *, was: Sequence[str], now: dt.datetime
) -> None:
    """A partner's new status, if it is still in one of ``was``."""
    conn.execute(
        ocpi_peers.update()
        .where(ocpi_peers.c.id == peer_id, ocpi_peers.c.status.in_(list(was)))
        .values(status=status, last_updated=now)
    )


# --- ClientInfo of the parties behind a hub ---------------------------------------------------


def announced(conn: sa.Connection, account_id: int) -> list[Any]:
    """The ClientInfo hubs sent this account, each with its hub's OCPI ``version``."""
    return list(
        conn.execute(
            sa.select(ocpi_client_infos, ocpi_peers.c.version)
            .join(ocpi_peers, ocpi_peers.c.id == ocpi_client_infos.c.hub_id)
            .where(ocpi_client_infos.c.account_id == account_id)
            .order_by(ocpi_client_infos.c.country_code, ocpi_client_infos.c.party_id)
        ).all()
    )


def replace_client_info(
    conn: sa.Connection, *, account_id: int, country_code: str, party_id: str, **values: Any
) -> None:
    key = {"account_id": account_id, "country_code": country_code, "party_id": party_id}
    conn.execute(ocpi_client_infos.delete().filter_by(**key))
    conn.execute(ocpi_client_infos.insert().values(**key, **values))


def client_info(conn: sa.Connection, *, account_id: int, country_code: str, party_id: str) -> Any:
    return conn.execute(
        sa.select(ocpi_client_infos).filter_by(
            account_id=account_id, country_code=country_code, party_id=party_id
        )
    ).first()
