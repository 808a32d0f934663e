"""Master key rotation: every sealed value is sealed again under a new key version."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from zerotouch.crypto.envelope import Keyring, sealed_version, write_keyring_file
from zerotouch.services.runtime import Runtime
from zerotouch.store.schema import SEALED_COLUMNS

BATCH = 1000


@dataclass(frozen=True, slots=True)
class Rotation:
    version: int
    resealed: int
    keyring: Keyring


def reseal_all(rt: Runtime, keyring: Keyring) -> int:
    """Seal every stored secret under ``keyring``'s newest key, all in one transaction."""
    count = 0
    with rt.db.write() as conn:
        for table, column, purpose in SEALED_COLUMNS:
            col = table.c[column]
            pk = next(iter(table.primary_key.columns))
            rows = conn.execute(sa.select(pk, col).where(col.is_not(None))).all()
            updates = [
                {"_pk": key, "_value": keyring.reseal(value, purpose)}
                for key, value in rows
                if sealed_version(value) != keyring.current_version
            ]
            for start in range(0, len(updates), BATCH):
                conn.execute(
                    table.update()
                    .where(pk == sa.bindparam("_pk"))
                    .values({column: sa.bindparam("_value")}),
                    updates[start : start + BATCH],
                )
            count += len(updates)
    return count


def rotate_master(rt: Runtime) -> Rotation:
    """Add a new key version, reseal everything under it, then retire the old versions.

    With a keyring file the order keeps every value readable through a crash at any point:
    the file first gains the new key, the database moves in one transaction, and only then does
    the file drop the old keys. A keyring from the environment is returned for the operator to
    set; it keeps the old keys too until they set the value that holds only the new one.
    """
    grown = rt.keyring.with_new_key()
    if rt.keyring_path is not None:
        write_keyring_file(rt.keyring_path, grown)
    resealed = reseal_all(rt, grown)
    final = grown.only_current()
    if rt.keyring_path is not None:
        write_keyring_file(rt.keyring_path, final)
    rt.keyring = final
    return Rotation(version=final.current_version, resealed=resealed, keyring=final)
