"""The devices a manufacturer imported, listed in import order

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_devices_imported_by_id", "devices", ["imported_by", "id"])


def downgrade() -> None:
    op.drop_index("ix_devices_imported_by_id", table_name="devices")
