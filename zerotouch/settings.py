"""Settings from the environment (``ZEROTOUCH_*``) and command-line flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from zerotouch.store.db import sqlite_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZEROTOUCH_", extra="ignore")

    data_dir: Path = Field(default=Path("zerotouch-data"))
    database_url: str | None = None
    master_key: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 20
    # OVMS auto-provisioning listeners, on the ports OVMS v2 uses (0 turns one off); the TLS
    # one runs when a certificate is configured. AP-C attempts per minute per source address
    # and per apkey (0: no limit).
    ovms_port: int = Field(default=6867, ge=0, le=65535)
    ovms_tls_port: int = Field(default=6870, ge=0, le=65535)
    ovms_rate_limit: int = Field(default=30, ge=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Validity of the certificates the account CA issues for devices' CSRs.
    certificate_validity_days: int = Field(default=365, ge=1, le=3650)

    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)
