"""Building the runtime from settings: the keyring (made on first start) and the database."""

from __future__ import annotations

import datetime as dt

from zerotouch.crypto.envelope import load_keyring
from zerotouch.services.runtime import OcpiIdentity, Runtime
from zerotouch.settings import Settings
from zerotouch.store.db import Database


def build_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keyring, path = load_keyring(settings.master_key, settings.data_dir)
    db = Database(settings.resolved_database_url(), pool_size=settings.db_pool_size)
    return Runtime(
        db=db,
        keyring=keyring,
        keyring_path=path,
        certificate_validity=dt.timedelta(days=settings.certificate_validity_days),
        ocpi=OcpiIdentity(
            public_url=settings.resolved_public_url(),
            country_code=settings.ocpi_country_code,
            party_id=settings.ocpi_party_id,
            role=settings.ocpi_role,
            business_name=settings.ocpi_business_name,
            accept_raw_tokens=settings.ocpi_accept_raw_tokens,
            ping_interval=settings.ocpi_ping_interval,
        ),
    )
