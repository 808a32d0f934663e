"""Building the runtime from settings: the keyring (made on first start) and the database."""

from __future__ import annotations

import datetime as dt

from zerotouch.crypto.envelope import load_keyring
from zerotouch.services.runtime import Runtime
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
    )
