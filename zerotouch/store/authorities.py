"""Account certificate authorities: one per account, its key sealed by the caller."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from zerotouch.domain.errors import AlreadyExists
from zerotouch.store.db import unique_violation_as
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import certificate_authorities
from zerotouch.store.sets import one_of

_EXISTS = "This account has a certificate authority already."

# The CAs of the accounts whose devices call together (services/device_calls.py).
SIGNERS = FastStatement(
    sa.select(
        certificate_authorities.c.account_id,
        certificate_authorities.c.certificate_pem,
        certificate_authorities.c.private_key_sealed,
        certificate_authorities.c.fingerprint,
    ).where(one_of(certificate_authorities.c.account_id, "accounts"))
)


def find(conn: sa.Connection, account_id: int) -> Any:
    """The account's CA row, or None."""
    return conn.execute(
        sa.select(certificate_authorities).where(certificate_authorities.c.account_id == account_id)
    ).first()


def add(
    conn: sa.Connection,
    *,
    account_id: int,
    certificate_pem: str,
    private_key_sealed: str,
    fingerprint: str,
    now: dt.datetime,
) -> None:
    """Store the account's CA; AlreadyExists if it has one (also when another call won)."""
    if find(conn, account_id) is not None:
        raise AlreadyExists(_EXISTS)
    with unique_violation_as(AlreadyExists(_EXISTS)):
        conn.execute(
            certificate_authorities.insert().values(
                account_id=account_id,
                certificate_pem=certificate_pem,
                private_key_sealed=private_key_sealed,
                fingerprint=fingerprint,
                created_at=now,
            )
        )


def signers(conn: sa.Connection, account_ids: list[int]) -> list[Any]:
    """Certificate, sealed key and fingerprint of each of these accounts' CAs."""
    return SIGNERS.run(conn, {"accounts": account_ids})
