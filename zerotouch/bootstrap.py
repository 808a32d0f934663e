"""Building the runtime from settings: the database (migrated), the keyring lock, and the master
keyring, made on first start and checked against what the database holds on every start.

Whatever is wrong here is the operator's to fix, so it is raised as one ConfigurationError
line that names the setting or file.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from zerotouch.crypto.envelope import KEYRING_FILE, KeyringError, create_keyring_file, read_keyring
from zerotouch.domain.errors import Unavailable
from zerotouch.services import keys
from zerotouch.services.runtime import MqttEndpoints, OcpiIdentity, Runtime
from zerotouch.settings import ConfigurationError, Settings
from zerotouch.store.db import Database


def open_database(settings: Settings) -> Database:
    """The database, migrated to the newest schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    try:
        db = Database(url, pool_size=settings.db_pool_size)
    except Exception as exc:  # A URL SQLAlchemy cannot use (bad scheme, unknown driver).
        raise ConfigurationError(f"ZEROTOUCH_DATABASE_URL: {exc}") from None
    try:
        db.upgrade()
    except Unavailable as exc:
        db.dispose()
        raise ConfigurationError(
            f"ZEROTOUCH_DATABASE_URL: {_first_line(exc.__cause__ or exc)} "
            f"({db.url.render_as_string(hide_password=True)})"
        ) from None
    return db


def build_runtime(settings: Settings, *, hold_keyring: bool = True, role: str = "serve") -> Runtime:
    """The runtime of a process that uses the keyring. ``hold_keyring``: take the keyring lock
    shared for the process's life (everything but a rotation, which takes it exclusively)."""
    db = open_database(settings)
    try:
        if hold_keyring:
            holder = f"zerotouch {role} on {socket.gethostname()} pid {os.getpid()}"
            db.hold(db.keyring_lock(exclusive=False, holder=holder))
        runtime = _runtime(settings, db)
    except BaseException:
        db.dispose()
        raise
    return runtime


def _runtime(settings: Settings, db: Database) -> Runtime:
    path = settings.data_dir / KEYRING_FILE
    try:
        keyring = read_keyring(settings.master_key, path)
        created = False
        if keyring is None:
            known = keys.database_knows_keys(db)
            if known:
                versions = ", ".join(str(v) for v in known)
                raise ConfigurationError(
                    f"{path} does not exist, but the database holds secrets sealed under "
                    f"master key version {versions}: restore master.key from its backup (or "
                    "set ZEROTOUCH_MASTER_KEY); a new key would not open them"
                )
            keyring, created = create_keyring_file(path)
    except KeyringError as exc:
        raise ConfigurationError(str(exc)) from None
    runtime = Runtime(
        db=db,
        keyring=keyring,
        keyring_path=None if settings.master_key else path,
        keyring_created=created,
        certificate_validity=dt.timedelta(days=settings.certificate_validity_days),
        claim_failure_limit=settings.claim_failure_limit,
        ocpi=OcpiIdentity(
            public_url=settings.resolved_public_url(),
            country_code=settings.ocpi_country_code,
            party_id=settings.ocpi_party_id,
            role=settings.ocpi_role,
            business_name=settings.ocpi_business_name,
            accept_raw_tokens=settings.ocpi_accept_raw_tokens,
            ping_interval=settings.ocpi_ping_interval,
        ),
        mqtt=MqttEndpoints(settings.mqtt_device_url, settings.mqtt_production_url),
    )
    try:
        keys.check_keyring(runtime, source=keys.describe(runtime.keyring_path))
    except keys.KeyringMismatch as exc:
        raise ConfigurationError(str(exc)) from None
    return runtime


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
