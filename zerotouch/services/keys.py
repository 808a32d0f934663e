"""The master keyring and the database: a check that they belong together, and rotation.

Every master key version that sealed values may be under is recorded in the database with a
check value (a known text sealed under it). A process refuses to start with a keyring that
cannot open them, so a missing, wrong or stale key is one clear line instead of secrets that
stop opening one by one. Rotation seals every stored secret under a new version; it runs only
while no server runs on the database (they hold the keyring lock shared), since a server would
go on sealing new secrets under the key being retired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zerotouch.crypto.envelope import (
    Keyring,
    KeyringError,
    check_value,
    opens_check,
    sealed_version,
    write_keyring_file,
)
from zerotouch.services.runtime import Runtime
from zerotouch.store import master_keys
from zerotouch.store.db import Connection, Database, KeyringBusy


class KeyringMismatch(Exception):
    """The keyring cannot open what the database holds (or the rotation cannot run); the
    message is one line that says which and what to do."""


def database_knows_keys(db: Database) -> list[int]:
    """The versions whose secrets the database holds, as far as it can tell: recorded ones, or
    those of its sealed values (a database from before the records)."""
    with db.read() as conn:
        known = sorted(master_keys.registered(conn))
        if known:
            return known
        return sorted({sealed_version(v) for _, _, v in master_keys.sealed_samples(conn)})


def check_keyring(rt: Runtime, *, source: str) -> None:
    """Refuse (KeyringMismatch) a keyring that cannot open what the database holds; record
    its newest version when the database holds nothing yet. ``source``: where the keyring
    came from, for the message."""
    keyring = rt.keyring
    with rt.db.write() as conn:
        known = master_keys.registered(conn)
        if not known:
            for where, purpose, value in master_keys.sealed_samples(conn):
                try:
                    keyring.open(value, purpose)
                except KeyringError:
                    raise KeyringMismatch(
                        f"{source} does not open the secrets this database holds ({where}, "
                        f"master key version {sealed_version(value)}): start with the key they "
                        "were sealed with (restore master.key from its backup, or set "
                        "ZEROTOUCH_MASTER_KEY)"
                    ) from None
            master_keys.register(conn, keyring.current_version, check_value(keyring), rt.clock())
            known = master_keys.registered(conn)
    for version, check in sorted(known.items()):
        if version not in keyring.keys or not opens_check(keyring, check):
            raise KeyringMismatch(
                f"{source} does not hold master key version {version}, which this database's "
                "secrets are sealed with: start with that key (restore master.key from its "
                "backup, or set ZEROTOUCH_MASTER_KEY); a new key would not open them"
            )
    newest = max(known)
    if keyring.current_version != newest:
        raise KeyringMismatch(
            f"{source} seals under master key version {keyring.current_version}, but this "
            f"database's newest is {newest}: use the keyring whose newest version is {newest} "
            "(zerotouch keys rotate-master adds versions)"
        )


@dataclass(frozen=True, slots=True)
class Rotation:
    version: int
    resealed: int
    keyring: Keyring


def reseal_all(conn: Connection, keyring: Keyring) -> int:
    """Seal every stored secret under ``keyring``'s newest key, in the caller's transaction."""
    count = 0
    for where, purpose, values in master_keys.sealed_values(conn):
        updates = []
        for key, value in values:
            if sealed_version(value) == keyring.current_version:
                continue
            try:
                updates.append((key, keyring.reseal(value, purpose)))
            except KeyringError:
                raise KeyringMismatch(
                    f"{where} of {key} does not open with the keyring: nothing was changed"
                ) from None
        master_keys.write_sealed(conn, where, updates)
        count += len(updates)
    return count


def rotate_master(rt: Runtime) -> Rotation:
    """Add a new key version, reseal everything under it, then retire the old versions.

    Runs only while no server runs on the database (the keyring lock, exclusively). With a
    keyring file the order keeps every value readable through a crash at any point: the file
    first gains the new key, the database moves in one transaction, and only then does the
    file drop the old keys; a failure puts the old file back. A keyring from the environment
    is returned for the operator to set.
    """
    try:
        lock = rt.db.keyring_lock(exclusive=True, holder="zerotouch keys rotate-master")
    except KeyringBusy as exc:
        raise KeyringMismatch(
            f"zerotouch servers run on this database ({exc}): stop them, then rotate; a server "
            "running through a rotation would go on sealing new secrets under the retired key"
        ) from None
    try:
        return _rotate(rt)
    finally:
        lock.release()


def _rotate(rt: Runtime) -> Rotation:
    original = rt.keyring
    grown = original.with_new_key()
    if rt.keyring_path is not None:
        write_keyring_file(rt.keyring_path, grown)
    final = grown.only_current()
    try:
        with rt.db.write() as conn:
            master_keys.register(conn, grown.current_version, check_value(grown), rt.clock())
            resealed = reseal_all(conn, grown)
            master_keys.retire(conn, [v for v in grown.keys if v != grown.current_version])
    except BaseException:
        if rt.keyring_path is not None:
            write_keyring_file(rt.keyring_path, original)
        raise
    if rt.keyring_path is not None:
        # Secrets kept in files beside the keyring move too, before the old keys go.
        for path in rt.keyring_path.parent.glob(f"*{SEALED_FILE_SUFFIX}"):
            _reseal_file(path, grown)
        write_keyring_file(rt.keyring_path, final)
    rt.keyring = final
    return Rotation(version=final.current_version, resealed=resealed, keyring=final)


SEALED_FILE_SUFFIX = ".sealed"  # A file of one sealed value: "<purpose>\n<sealed>\n".


def seal_file(path: Path, keyring: Keyring, purpose: str, secret: str) -> None:
    """Write a secret sealed under the master key to a file of its own (mode 0600); key
    rotations reseal it with the database's secrets."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{purpose}\n{keyring.seal(secret, purpose)}\n")
    os.replace(temporary, path)


def open_file(path: Path, keyring: Keyring) -> str:
    purpose, _, sealed = path.read_text().partition("\n")
    return keyring.open_text(sealed.strip(), purpose)


def _reseal_file(path: Path, keyring: Keyring) -> None:
    purpose = path.read_text().partition("\n")[0]
    seal_file(path, keyring, purpose, open_file(path, keyring))


def describe(path: Path | None) -> str:
    return "ZEROTOUCH_MASTER_KEY" if path is None else str(path)
