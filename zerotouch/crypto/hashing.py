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


# An owner token's digest: the first 128 bits of its SHA-256, as 32 hex digits. The token is
# 128 random bits, so the digest can be no weaker than the token; its index is half the size of
# a whole SHA-256's, and the index is what a factory import of a million devices pays for most
# (its keys are random: each dirties a page).
OWNER_TOKEN_DIGEST_HEX = 32


def owner_token_digest(token: str) -> str:
    return secret_hash(token)[:OWNER_TOKEN_DIGEST_HEX]


def owner_token_matches(stored: str, candidate: str) -> bool:
    """Constant-time comparison of a stored owner token digest with a presented token's."""
    return hmac.compare_digest(stored, owner_token_digest(candidate))


def new_owner_token() -> str:
    """128 random bits as 32 uppercase hex digits."""
    return secrets.token_hex(16).upper()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)
