"""The command line: keys create, db upgrade and master key rotation, as a user runs them."""

from __future__ import annotations

import stat
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import zerotouch
from zerotouch.crypto.envelope import Keyring
from zerotouch.services import claims as claims_service
from zerotouch.services import manufacturing, plans
from zerotouch.services.accounts import authenticate
from zerotouch.services.runtime import Runtime
from zerotouch.store.db import Database
from zerotouch.store.schema import SEALED_COLUMNS, devices


def _runtime(env: dict[str, str], keyring: Keyring) -> Runtime:
    url = (
        env.get("ZEROTOUCH_DATABASE_URL")
        or f"sqlite:///{Path(env['ZEROTOUCH_DATA_DIR']) / 'zerotouch.db'}"
    )
    return Runtime(db=Database(url), keyring=keyring)


def test_keys_create_prints_key_last(env: dict[str, str]) -> None:
    done = zerotouch(env, "keys", "create", "--role", "editor", "--account", "acme")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("zt_")
    keyfile = Path(env["ZEROTOUCH_DATA_DIR"]) / "master.key"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    rt = _runtime(env, Keyring.parse(keyfile.read_text()))
    try:
        assert authenticate(rt, key).role.value == "editor"
    finally:
        rt.db.dispose()
    bad = zerotouch(env, "keys", "create", "--role", "god")
    assert bad.returncode == 2
    assert "role" in bad.stderr


def test_db_upgrade(env: dict[str, str]) -> None:
    done = zerotouch(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "migrated" in done.stderr


def test_rotate_master_with_keyring_file(env: dict[str, str]) -> None:
    key = zerotouch(env, "keys", "create", "--role", "owner").stdout.strip().splitlines()[-1]
    keyfile = Path(env["ZEROTOUCH_DATA_DIR"]) / "master.key"
    old = Keyring.parse(keyfile.read_text())
    rt = _runtime(env, old)
    try:
        principal = authenticate(rt, key)
        result = manufacturing.import_devices(
            rt,
            principal=principal,
            records=[{"deviceId": "d1", "appKey": "AB" * 16, "iccid": "8944501234567890123"}],
        )
        token = result.devices[0].owner_token
        claims_service.claim_device(rt, principal=principal, owner_token=token)
        plans.add_command(
            rt,
            principal=principal,
            device_id="d1",
            description=None,
            request={"preSharedKey": {"secTag": 1, "identity": "i", "secret": "AA"}},
        )
    finally:
        rt.db.dispose()

    done = zerotouch(env, "keys", "rotate-master")
    assert done.returncode == 0, done.stderr
    assert "version 2" in done.stderr
    new = Keyring.parse(keyfile.read_text())
    assert list(new.keys) == [2]
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    rt = _runtime(env, new)
    try:
        with rt.db.read() as conn:
            for table, column, purpose in SEALED_COLUMNS:
                for (value,) in conn.execute(
                    sa.select(table.c[column]).where(table.c[column].is_not(None))
                ):
                    assert value.startswith("v2.")
                    new.open(value, purpose)
            row = conn.execute(sa.select(devices)).one()
        assert new.open_text(row.app_key_sealed, "devices.app_key") == "AB" * 16
        assert new.open_text(row.owner_token_sealed, "devices.owner_token") == token
    finally:
        rt.db.dispose()


def test_rotate_master_from_environment(env: dict[str, str]) -> None:
    keyring = Keyring.generate()
    env = {**env, "ZEROTOUCH_MASTER_KEY": keyring.format()}
    assert zerotouch(env, "keys", "create", "--role", "owner").returncode == 0
    assert not (Path(env["ZEROTOUCH_DATA_DIR"]) / "master.key").exists()
    rt = _runtime(env, keyring)
    try:
        principal = authenticate(
            rt, zerotouch(env, "keys", "create", "--role", "owner").stdout.strip().splitlines()[-1]
        )
        manufacturing.import_devices(rt, principal=principal, records=[{"deviceId": "d1"}])
    finally:
        rt.db.dispose()
    done = zerotouch(env, "keys", "rotate-master")
    assert done.returncode == 0, done.stderr
    printed = Keyring.parse(done.stdout.strip().splitlines()[-1])
    assert printed.current_version == 2
    rt = _runtime(env, printed)
    try:
        with rt.db.read() as conn:
            sealed = conn.execute(sa.select(devices.c.owner_token_sealed)).scalar_one()
        assert printed.open(sealed, "devices.owner_token")
    finally:
        rt.db.dispose()
