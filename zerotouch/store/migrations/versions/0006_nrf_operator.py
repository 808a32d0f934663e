"""Provisioning tags an account declares (nRF Cloud's /v1/provisioning/tags), bulk claims

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provisioning_tags",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_provisioning_tags_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_tags")),
        sa.UniqueConstraint(
            "account_id", "tag", name=op.f("uq_provisioning_tags_account_id_tag")
        ),
    )


    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.create_table(
        "bulk_claims",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "account_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("claimed", json, nullable=False),
        sa.Column("failed", json, nullable=False),
        sa.Column("rows_sealed", sa.Text(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_bulk_claims_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_claims")),
    )


def downgrade() -> None:
    op.drop_table("bulk_claims")
    op.drop_table("provisioning_tags")
