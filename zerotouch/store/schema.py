"""The one schema, for SQLite and PostgreSQL alike. Alembic migrations must produce exactly this."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite hands back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# One row per master key version that sealed values may be under: a known text sealed with it,
# so a server whose keyring cannot open what the database holds refuses to start
# (crypto/envelope.py, services/keys.py).
master_keys = sa.Table(
    "master_keys",
    metadata,
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("check_sealed", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Attempts per key (an OVMS source address or apkey) in the current fixed window, shared by
# every node on the database.
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(96), primary_key=True),
    sa.Column("window", sa.BigInteger(), nullable=False),
    sa.Column("count", sa.Integer(), nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=False, unique=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("imported_by", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("blocked_from", sa.String(16), nullable=True),
    sa.Column("dev_eui", sa.String(16), nullable=True),
    sa.Column("join_eui", sa.String(16), nullable=True),
    sa.Column("profile_id", sa.String(8), nullable=True),
    sa.Column("vin", sa.String(17), nullable=True),
    sa.Column("imei", sa.String(15), nullable=True),
    sa.Column("serial", sa.String(128), nullable=True),
    sa.Column("mac", sa.String(12), nullable=True),
    sa.Column("public_key", sa.Text(), nullable=True),
    sa.Column("app_key_sealed", sa.Text(), nullable=True),
    sa.Column("iccid_sealed", sa.Text(), nullable=True),
    sa.Column("device_secret_sealed", sa.Text(), nullable=True),
    sa.Column("owner_token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("owner_token_sealed", sa.Text(), nullable=False),
    sa.Column("factory_tags", Json, nullable=False),
    # What the device was imported from (manufacturing.record_digest): a re-import of the same
    # record changes nothing. Secure-element devices bring their tkmInfo instead of an AppKey.
    sa.Column("record_digest", sa.String(64), nullable=True),
    sa.Column("tkm_info", sa.Text(), nullable=True),
    sa.Column("claimed_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(None, "account_id", "status", "id"),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "imported_by", "id"),
)

device_tags = sa.Table(
    "device_tags",
    metadata,
    sa.Column(
        "device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Index(None, "tag", "device_pk"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("description", sa.String(256), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("request", Json, nullable=False),
    sa.Column("secrets_sealed", sa.Text(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("response", Json, nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(None, "device_pk", "position"),
)

# Public keys a device proved it holds: each one a clientPrivateKeyGeneration returned. The
# factory's key stays on the device row. Device API tokens (ES256) may be signed by any of them.
device_keys = sa.Table(
    "device_keys",
    metadata,
    sa.Column(
        "device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.Text(), nullable=False),
    sa.Column("command_id", sa.String(36), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# The replay cache of device API tokens: a jti is accepted once while its token could still be
# valid. In the database, so it holds across every node on it.
device_token_ids = sa.Table(
    "device_token_ids",
    metadata,
    sa.Column(
        "device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("jti", sa.String(128), primary_key=True),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index(None, "expires_at"),
)

# A device's OVMS auto-provisioning record (protocols/ovms.py). The AP-S answer is computed once
# when the record is stored, as the reference server does; it decrypts to the record with what
# it carries itself, so it is sealed like the record and the car's shared secret.
ovms_records = sa.Table(
    "ovms_records",
    metadata,
    sa.Column(
        "device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("apkey", sa.String(64), nullable=False, unique=True),
    sa.Column("record_sealed", sa.Text(), nullable=False),
    sa.Column("secret_sealed", sa.Text(), nullable=False),
    sa.Column("answer_sealed", sa.Text(), nullable=False),
    sa.Column("from_parameters", sa.Boolean(), nullable=False),
    sa.Column("one_time", sa.Boolean(), nullable=False),
    sa.Column("deliveries", sa.Integer(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# OCPI: a token A made by an operator for one partner to register with (hashed, single use),
# and the partners registered either way. incoming_token: what they present to us (hashed);
# outgoing_token: what we present to them (sealed).
ocpi_tokens = sa.Table(
    "ocpi_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # "register": a token A for a partner; "callback": the token we give a partner while we
    # register with it, valid (for reads only) until the registration completes.
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("note", sa.String(256), nullable=True),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("used_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

ocpi_peers = sa.Table(
    "ocpi_peers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("version", sa.String(8), nullable=False),
    sa.Column("versions_url", sa.Text(), nullable=False),
    sa.Column("credentials_url", sa.Text(), nullable=False),
    sa.Column("country_code", sa.String(2), nullable=False),
    sa.Column("party_id", sa.String(3), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("business_name", sa.String(100), nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("incoming_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("outgoing_token_sealed", sa.Text(), nullable=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("last_updated", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("account_id", "country_code", "party_id"),
)

# HubClientInfo pushed to us by a hub: the status of each party behind it.
ocpi_client_infos = sa.Table(
    "ocpi_client_infos",
    metadata,
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("country_code", sa.String(2), primary_key=True),
    sa.Column("party_id", sa.String(3), primary_key=True),
    sa.Column("hub_id", sa.String(36), sa.ForeignKey("ocpi_peers.id"), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("last_updated", UtcDateTime(), nullable=False),
)

provisioning_rules = sa.Table(
    "provisioning_rules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.String(256), nullable=False),
    sa.Column("tags", Json, nullable=False),
    sa.Column("commands", Json, nullable=False),
    sa.Column("secrets_sealed", sa.Text(), nullable=True),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("account_id", "name"),
)

# Tags an account declared (nRF Cloud's provisioning tags): named, described, listed.
provisioning_tags = sa.Table(
    "provisioning_tags",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("tag", sa.String(64), nullable=False),
    sa.Column("description", sa.String(256), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("account_id", "tag"),
)

# Bulk claims answered at once and worked through in the background, a chunk at a time; the
# rows (owner tokens) are sealed. ``lease_until``: the node working on it, until then.
bulk_claims = sa.Table(
    "bulk_claims",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.String(36), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
    sa.Column("processed", sa.Integer(), nullable=False),
    sa.Column("claimed", Json, nullable=False),
    sa.Column("failed", Json, nullable=False),
    sa.Column("rows_sealed", sa.Text(), nullable=False),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("completed_at", UtcDateTime(), nullable=True),
)

certificate_authorities = sa.Table(
    "certificate_authorities",
    metadata,
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("certificate_pem", sa.Text(), nullable=False),
    sa.Column("private_key_sealed", sa.Text(), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Provisioning over MQTT (services/mqtt_provisioning.py). A device's MQTT identity: its client
# ID (the CN of its production certificate) and whether it is on the broker's deny list.
mqtt_identities = sa.Table(
    "mqtt_identities",
    metadata,
    sa.Column(
        "device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("client_id", sa.String(23), nullable=False, unique=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# One-time broker credentials for a device to provision with: the broker holds the password
# (shown once, never stored here); ``broker_done`` turns true once the broker client is gone.
mqtt_provision_requests = sa.Table(
    "mqtt_provision_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("device_pk", BigId, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    sa.Column("client_id", sa.String(23), nullable=False),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("activation_required", sa.Boolean(), nullable=False),
    sa.Column("proven_at", UtcDateTime(), nullable=True),
    sa.Column("broker_done", sa.Boolean(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    # A request made by a move: the account the device came from, its status there, and the
    # control message that told it (a refusal of that message takes the move back).
    sa.Column("moved_from", BigId, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("moved_status", sa.String(16), nullable=True),
    sa.Column("control_id", sa.String(36), nullable=True),
    sa.Index(None, "account_id", "device_pk"),
    sa.Index(None, "state", "expires_at"),
    sa.Index(None, "client_id", "state"),
)

# An account's side of MQTT: where its devices are sent (None: the instance's settings) and
# the key that signs its control messages (Ed25519; the private half sealed).
mqtt_accounts = sa.Table(
    "mqtt_accounts",
    metadata,
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("device_url", sa.String(512), nullable=True),
    sa.Column("production_url", sa.String(512), nullable=True),
    sa.Column("signing_key_sealed", sa.Text(), nullable=False),
    sa.Column("signing_public_key", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=True),
    sa.Column("data", Json, nullable=False),
    sa.Index(None, "account_id", "id"),
    sa.Index(None, "account_id", "device_id", "id"),
)

# Every column that holds a sealed secret, with the purpose it is sealed for (see
# crypto/envelope.py); master key rotation walks this list.
SEALED_COLUMNS: tuple[tuple[sa.Table, str, str], ...] = (
    (devices, "app_key_sealed", "devices.app_key"),
    (devices, "iccid_sealed", "devices.iccid"),
    (devices, "device_secret_sealed", "devices.device_secret"),
    (devices, "owner_token_sealed", "devices.owner_token"),
    (commands, "secrets_sealed", "commands.secrets"),
    (provisioning_rules, "secrets_sealed", "provisioning_rules.secrets"),
    (certificate_authorities, "private_key_sealed", "certificate_authorities.private_key"),
    (ovms_records, "record_sealed", "ovms_records.record"),
    (ovms_records, "secret_sealed", "ovms_records.secret"),
    (ovms_records, "answer_sealed", "ovms_records.answer"),
    (ocpi_peers, "outgoing_token_sealed", "ocpi_peers.outgoing_token"),
    (bulk_claims, "rows_sealed", "bulk_claims.rows"),
    (mqtt_accounts, "signing_key_sealed", "mqtt_accounts.signing_key"),
)
