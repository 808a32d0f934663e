"""device API: registered device keys and the token replay cache

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "device_keys",
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("command_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.id"],
            name=op.f("fk_device_keys_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_pk", "fingerprint", name=op.f("pk_device_keys")),
    )
    op.create_table(
        "device_token_ids",
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.id"],
            name=op.f("fk_device_token_ids_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_pk", "jti", name=op.f("pk_device_token_ids")),
    )
    op.create_index(
        op.f("ix_device_token_ids_expires_at"), "device_token_ids", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_device_token_ids_expires_at"), table_name="device_token_ids")
    op.drop_table("device_token_ids")
    op.drop_table("device_keys")
