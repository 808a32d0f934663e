"""Hashes for high-entropy bearer secrets (owner tokens, API keys) and constant-time checks.

The secrets hashed here carry at least 128 random bits, so a plain SHA-256 is enough: there is
nothing to brute-force, and the hash can be an index key for lookups.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "zt_"


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def matches(stored_hash: str, candidate: str) -> bool:
    """Constant-time comparison of a stored hash with the hash of a presented secret."""
    return hmac.compare_digest(stored_hash, secret_hash(candidate))


def new_owner_token() -> str:
    """128 random bits as 32 uppercase hex digits."""
    return secrets.token_hex(16).upper()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)
