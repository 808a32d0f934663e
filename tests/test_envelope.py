"""Sealed secrets: AES-GCM under a versioned keyring, bound to their purpose."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from zerotouch.crypto.envelope import Keyring, KeyringError, create_keyring_file, read_keyring


def test_seal_open_and_purpose_binding() -> None:
    keyring = Keyring.generate()
    sealed = keyring.seal("00112233", "devices.app_key")
    assert sealed.startswith("v1.") and "00112233" not in sealed
    assert keyring.open_text(sealed, "devices.app_key") == "00112233"
    with pytest.raises(KeyringError):
        keyring.open(sealed, "devices.iccid")
    with pytest.raises(KeyringError):
        Keyring.generate().open(sealed, "devices.app_key")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(KeyringError):
        keyring.open(tampered, "devices.app_key")


def test_rotation_reseals_under_new_version() -> None:
    old = Keyring.generate()
    sealed = old.seal(b"secret", "p")
    grown = old.with_new_key()
    assert grown.current_version == 2
    resealed = grown.reseal(sealed, "p")
    assert resealed.startswith("v2.")
    assert grown.only_current().open(resealed, "p") == b"secret"
    with pytest.raises(KeyringError, match="version 1"):
        grown.only_current().open(sealed, "p")


def test_parse_and_format() -> None:
    keyring = Keyring.generate().with_new_key()
    assert Keyring.parse(keyring.format()).keys == keyring.keys
    bare = Keyring.parse(keyring.format().split(",")[0].split(":")[1])
    assert bare.current_version == 1
    for bad in ("", "1:notbase64!", "1:" + "QUJD", "x:QUJD"):
        with pytest.raises(KeyringError):
            Keyring.parse(bad)


def test_generated_on_first_start_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    assert read_keyring(None, path) is None
    keyring, made = create_keyring_file(path)
    assert made and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_keyring(None, path)
    assert again is not None and again.keys == keyring.keys
    second, made_again = create_keyring_file(path)  # Made already: the file's is kept.
    assert not made_again and second.keys == keyring.keys
    from_env = read_keyring(keyring.format(), tmp_path / "elsewhere")
    assert from_env is not None and from_env.keys == keyring.keys
