"""Secrets at rest: AES-256-GCM under a versioned master key, so the key can be rotated.

A sealed value reads ``v<version>.<base64url(nonce || ciphertext || tag)>``. The purpose of the
value (``devices.app_key``, say) is bound in as associated data, so a ciphertext copied into
another column does not open. The keyring holds every version still needed to open old values;
new values are always sealed under the newest.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
KEYRING_FILE = "master.key"


class KeyringError(Exception):
    """The master keyring is missing, malformed or cannot open a value."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[int, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("The master keyring holds no key.")
        for version, key in self.keys.items():
            if version < 1 or len(key) != KEY_BYTES:
                raise KeyringError("Each master key needs a version >= 1 and 32 bytes.")
        object.__setattr__(self, "_aead", {v: AESGCM(k) for v, k in self.keys.items()})

    @property
    def current_version(self) -> int:
        return max(self.keys)

    @classmethod
    def generate(cls, version: int = 1) -> Keyring:
        return cls({version: secrets.token_bytes(KEY_BYTES)})

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Read ``"<version>:<base64 key>,..."``; a bare base64 key is version 1."""
        keys: dict[int, bytes] = {}
        for item in text.strip().split(","):
            version_text, sep, key_text = item.strip().rpartition(":")
            try:
                version = int(version_text) if sep else 1
                keys[version] = base64.b64decode(key_text, validate=True)
            except (ValueError, binascii.Error):
                raise KeyringError("The master key is not '<version>:<base64 key>'.") from None
        return cls(keys)

    def format(self) -> str:
        ordered = sorted(self.keys.items(), reverse=True)
        return ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in ordered)

    def with_new_key(self) -> Keyring:
        return Keyring({**self.keys, self.current_version + 1: secrets.token_bytes(KEY_BYTES)})

    def only_current(self) -> Keyring:
        return Keyring({self.current_version: self.keys[self.current_version]})

    def seal(self, plaintext: str | bytes, purpose: str) -> str:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        version = self.current_version
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[version].encrypt(nonce, data, purpose.encode())  # type: ignore[attr-defined]
        return f"v{version}." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str, purpose: str) -> bytes:
        version = sealed_version(value)
        aead = self._aead.get(version)  # type: ignore[attr-defined]
        if aead is None:
            raise KeyringError(f"No master key of version {version} in the keyring.")
        try:
            raw = base64.urlsafe_b64decode(value.partition(".")[2])
            return bytes(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()))
        except (InvalidTag, ValueError, binascii.Error):
            raise KeyringError(f"A sealed {purpose} value did not open.") from None

    def open_text(self, value: str, purpose: str) -> str:
        return self.open(value, purpose).decode()

    def reseal(self, value: str, purpose: str) -> str:
        """Seal ``value`` again under the newest key (unchanged if it already is)."""
        if sealed_version(value) == self.current_version:
            return value
        return self.seal(self.open(value, purpose), purpose)


def sealed_version(value: str) -> int:
    head, dot, _ = value.partition(".")
    if not dot or not head.startswith("v") or not head[1:].isdigit():
        raise KeyringError("Not a sealed value.")
    return int(head[1:])


CHECK_TEXT = b"zerotouch master key check"
CHECK_PURPOSE = "master_keys.check"


def check_value(keyring: Keyring) -> str:
    """A known text sealed under the keyring's newest key: stored with the data, it tells
    later whether a keyring holds the key the data was sealed with."""
    return keyring.seal(CHECK_TEXT, CHECK_PURPOSE)


def opens_check(keyring: Keyring, value: str) -> bool:
    try:
        return keyring.open(value, CHECK_PURPOSE) == CHECK_TEXT
    except KeyringError:
        return False


def read_keyring(env_value: str | None, path: Path) -> Keyring | None:
    """The keyring from the environment, else from the file at ``path`` (None when there is
    none yet)."""
    if env_value:
        try:
            return Keyring.parse(env_value)
        except KeyringError as exc:
            raise KeyringError(f"ZEROTOUCH_MASTER_KEY: {exc}") from None
    if path.exists():
        try:
            return Keyring.parse(path.read_text())
        except KeyringError as exc:
            raise KeyringError(f"{path}: {exc}") from None
    return None


def create_keyring_file(path: Path) -> tuple[Keyring, bool]:
    """A new keyring in ``path``, unless another process made one first: (keyring, made).

    The file appears whole or not at all, and of two processes racing only one makes it: the
    key is written to a temporary file, which is then linked to ``path`` (a link fails when
    the name exists).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_private(tmp, keyring.format() + "\n")
    try:
        os.link(tmp, path)
        made = True
    except FileExistsError:
        made = False
    finally:
        tmp.unlink()
    if not made:
        return Keyring.parse(path.read_text()), False
    _sync_directory(path.parent)
    return keyring, True


def write_keyring_file(path: Path, keyring: Keyring) -> None:
    """Replace the keyring file atomically; it is readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    _write_private(tmp, keyring.format() + "\n")
    os.replace(tmp, path)
    _sync_directory(path.parent)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o600)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
