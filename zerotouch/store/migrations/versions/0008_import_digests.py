"""Factory imports re-run idempotently: each device keeps the digest of the record it was
imported from; devices with a secure element keep their tkmInfo; owner token digests are the
first 128 bits of their SHA-256 (crypto/hashing.py)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("record_digest", sa.String(64), nullable=True))
    op.add_column("devices", sa.Column("tkm_info", sa.Text(), nullable=True))
    op.execute("UPDATE devices SET owner_token_hash = substr(owner_token_hash, 1, 32)")


def downgrade() -> None:
    # The digests stay short: the whole SHA-256 of a token cannot be had back from them.
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("tkm_info")
        batch.drop_column("record_digest")
