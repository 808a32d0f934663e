"""OVMS v2 auto-provisioning, protection scheme 0x30 (the reference server's ap_generate.pl):
the digest is HMAC-MD5 keyed by the shared secret (usually the ICCID) over the token, and the
record is RC4-encrypted with the raw 16-byte digest as key after 1024 bytes of keystream are
discarded ("RC4-drop-1024"). RC4 and MD5 are what the car firmware speaks, not a choice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

TOKEN_LENGTH = 22
TOKEN_ALPHABET = string.ascii_letters + string.digits + "+/"  # Base64's, as the reference.
RC4_DROP = 1024


def new_token() -> str:
    """22 characters of the base64 alphabet from a cryptographically secure generator."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def digest(secret: str, token: str) -> bytes:
    """HMAC-MD5(key = the shared secret, message = the token), 16 raw bytes."""
    return hmac.new(secret.encode(), token.encode(), hashlib.md5).digest()


def digest_b64(raw: bytes) -> str:
    """Base64 without '=' padding (22 characters), as the reference stores and sends it."""
    return base64.b64encode(raw).decode().rstrip("=")


def _rc4(key: bytes, data: bytes) -> bytes:
    cipher = Cipher(ARC4(key), mode=None).encryptor()
    cipher.update(bytes(RC4_DROP))  # Discard the first 1024 bytes of keystream.
    return cipher.update(data)


def encrypt_record(key: bytes, record: str) -> str:
    """The record's UTF-8 bytes under RC4-drop-1024 keyed by ``key``, base64 with padding."""
    return base64.b64encode(_rc4(key, record.encode())).decode()


def decrypt_record(key: bytes, ciphertext_b64: str) -> str:
    """The inverse of ``encrypt_record``; raises ValueError on bad base64 or UTF-8."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
    except ValueError:
        raise ValueError("the record is not base64") from None
    try:
        return _rc4(key, data).decode()
    except UnicodeDecodeError:
        raise ValueError("the record does not decrypt to UTF-8 text") from None


def digest_matches(received_b64: str, secret: str, token: str) -> bool:
    """Compare a received digest (padded or not) with the expected one in constant time."""
    expected = digest_b64(digest(secret, token))
    return hmac.compare_digest(received_b64.rstrip("=").encode(), expected.encode())
