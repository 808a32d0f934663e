"""Provisioning over MQTT: devices' MQTT identities, provision requests, accounts' brokers and
control-message keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["device_pk"], ["devices.id"], name=op.f(f"fk_{table}_device_pk_devices"), ondelete="CASCADE"
    )


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=op.f(f"fk_{table}_account_id_accounts")
    )


def upgrade() -> None:
    op.create_table(
        "mqtt_identities",
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("client_id", sa.String(length=23), nullable=False),
        sa.Column("revoked_at", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        _device_fk("mqtt_identities"),
        sa.PrimaryKeyConstraint("device_pk", name=op.f("pk_mqtt_identities")),
        sa.UniqueConstraint("client_id", name=op.f("uq_mqtt_identities_client_id")),
    )
    op.create_table(
        "mqtt_provision_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("client_id", sa.String(length=23), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("activation_required", sa.Boolean(), nullable=False),
        sa.Column("proven_at", When, nullable=True),
        sa.Column("broker_done", sa.Boolean(), nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("ended_at", When, nullable=True),
        sa.Column("moved_from", BigId, nullable=True),
        sa.Column("moved_status", sa.String(length=16), nullable=True),
        sa.Column("control_id", sa.String(length=36), nullable=True),
        _account_fk("mqtt_provision_requests"),
        sa.ForeignKeyConstraint(
            ["moved_from"],
            ["accounts.id"],
            name=op.f("fk_mqtt_provision_requests_moved_from_accounts"),
        ),
        _device_fk("mqtt_provision_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mqtt_provision_requests")),
    )
    for columns in (["account_id", "device_pk"], ["state", "expires_at"], ["client_id", "state"]):
        name = "ix_mqtt_provision_requests_" + "_".join(columns)
        op.create_index(op.f(name), "mqtt_provision_requests", columns)
    op.create_table(
        "mqtt_accounts",
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("device_url", sa.String(length=512), nullable=True),
        sa.Column("production_url", sa.String(length=512), nullable=True),
        sa.Column("signing_key_sealed", sa.Text(), nullable=False),
        sa.Column("signing_public_key", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        _account_fk("mqtt_accounts"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_mqtt_accounts")),
    )


def downgrade() -> None:
    op.drop_table("mqtt_accounts")
    op.drop_table("mqtt_provision_requests")
    op.drop_table("mqtt_identities")
