"""OCPI registration: token A and the registered partners

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ocpi_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=256), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ocpi_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpi_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_ocpi_tokens_token_hash")),
    )
    op.create_table(
        "ocpi_peers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("version", sa.String(length=8), nullable=False),
        sa.Column("versions_url", sa.Text(), nullable=False),
        sa.Column("credentials_url", sa.Text(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("business_name", sa.String(length=100), nullable=False),
        sa.Column("roles", Json, nullable=False),
        sa.Column("incoming_token_hash", sa.String(length=64), nullable=True),
        sa.Column("outgoing_token_sealed", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ocpi_peers_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocpi_peers")),
        sa.UniqueConstraint(
            "account_id",
            "country_code",
            "party_id",
            name=op.f("uq_ocpi_peers_account_id_country_code_party_id"),
        ),
        sa.UniqueConstraint("incoming_token_hash", name=op.f("uq_ocpi_peers_incoming_token_hash")),
    )


    op.create_table(
        "ocpi_client_infos",
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("hub_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ocpi_client_infos_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["hub_id"], ["ocpi_peers.id"], name=op.f("fk_ocpi_client_infos_hub_id_ocpi_peers")
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "country_code", "party_id", name=op.f("pk_ocpi_client_infos")
        ),
    )


def downgrade() -> None:
    op.drop_table("ocpi_client_infos")
    op.drop_table("ocpi_peers")
    op.drop_table("ocpi_tokens")
