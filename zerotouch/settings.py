"""Settings from the environment (``ZEROTOUCH_*``) and command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from zerotouch.store.db import sqlite_url


class ConfigurationError(Exception):
    """A setting, file or the database is not usable as configured: one line that names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZEROTOUCH_", extra="ignore")

    data_dir: Path = Field(default=Path("zerotouch-data"))
    database_url: str | None = None
    master_key: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = Field(default=20, ge=1)
    # Request bodies: at most this many bytes (413 beyond), and more for factory imports.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_import_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # OVMS auto-provisioning listeners, on the ports OVMS v2 uses (0 turns one off); the TLS
    # one runs when a certificate is configured. AP-C attempts per minute per source address
    # and per apkey (0: no limit).
    ovms_port: int = Field(default=6867, ge=0, le=65535)
    ovms_tls_port: int = Field(default=6870, ge=0, le=65535)
    ovms_rate_limit: int = Field(default=30, ge=0)
    # Failed claims a minute per account and per client address before 429 (0: no limit).
    claim_failure_limit: int = Field(default=20, ge=0)
    # Logs: the level, and text or one JSON object a line.
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = "text"
    # Processes of one `serve` (set by it for its workers): they share their ports.
    workers: int = Field(default=1, ge=1)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Manufacturing calls only over mutual TLS, with a client certificate from this CA.
    manufacturing_client_ca: Path | None = None
    # OCPI: where partners reach us, and who we are (API.md, OCPI).
    public_url: str | None = None
    ocpi_country_code: str = Field(default="NL", pattern=r"^[A-Z]{2}$")
    ocpi_party_id: str = Field(default="ZTP", pattern=r"^[A-Z0-9]{3}$")
    ocpi_role: str = "OTHER"
    ocpi_business_name: str = "zerotouch"
    ocpi_accept_raw_tokens: bool = False
    ocpi_ping_interval: int = Field(default=300, ge=1)

    # Provisioning over MQTT (README): the worker's connection as the broker's dynamic-security
    # admin, what devices are told for provisioning and for production, and the CA file that
    # verifies an mqtts:// broker.
    mqtt_url: str | None = Field(default=None, pattern=r"^mqtts?://", repr=False)
    mqtt_device_url: str | None = Field(default=None, pattern=r"^mqtts?://[^\s@]+$")
    mqtt_production_url: str | None = Field(default=None, pattern=r"^mqtts://[^\s@]+$")
    mqtt_ca_file: Path | None = None

    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    # Validity of the certificates the account CA issues for devices' CSRs.
    certificate_validity_days: int = Field(default=365, ge=1, le=3650)

    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)
