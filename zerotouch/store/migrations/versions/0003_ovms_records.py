"""OVMS auto-provisioning records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ovms_records",
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("apkey", sa.String(length=64), nullable=False),
        sa.Column("record_sealed", sa.Text(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("answer_sealed", sa.Text(), nullable=False),
        sa.Column("from_parameters", sa.Boolean(), nullable=False),
        sa.Column("one_time", sa.Boolean(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.id"],
            name=op.f("fk_ovms_records_device_pk_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_pk", name=op.f("pk_ovms_records")),
        sa.UniqueConstraint("apkey", name=op.f("uq_ovms_records_apkey")),
    )


def downgrade() -> None:
    op.drop_table("ovms_records")
