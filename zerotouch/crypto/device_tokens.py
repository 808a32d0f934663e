"""Device tokens: short-lived JWTs signed by the device (ES256) or with its secret (HS256).

A token names its device in ``sub`` (the Device API), or, as the nRF91 modem's own JWT does
(``%JWT`` without a subject, as Nordic's ``nrf_provisioning`` library asks for it), in ``iss``
as ``<chip>.<device UUID>``. Verification raises TokenError; the reason is for the log, the
caller answers 401 without it. The time is passed in, so tests and callers control it.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from zerotouch.crypto import device_side
from zerotouch.domain.values import DeviceId

ALGORITHMS = ("ES256", "HS256")
MAX_LIFETIME_S = 300  # API.md: exp at most 300 s after iat.
# Device clocks drift: a token may be issued this far ahead of our clock. Its exp is not
# stretched: a token is accepted until its exp, at most MAX_LIFETIME_S after its iat.
CLOCK_SKEW_S = 30
JTI_MAX = 128
_JTI_RE = re.compile(f"[\\x21-\\x7e]{{1,{JTI_MAX}}}")
# The modem's issuer: its chip ("nRF9160", "nRF9151", ...), a dot, the device UUID.
_MODEM_ISSUER = re.compile(r"[A-Za-z0-9]{1,16}\.(.+)")


class _FactorySecretHmac(jwt.algorithms.HMACAlgorithm):
    """HS256 keyed by the factory deviceSecret, which API.md allows from 16 bytes (32 hex
    digits) up. PyJWT warns below 32 bytes; 128 random bits are beyond brute force."""

    MIN_KEY_BYTES = 16

    def check_key_length(self, key: bytes) -> str | None:
        if len(key) < self.MIN_KEY_BYTES:
            return f"the HMAC key must be at least {self.MIN_KEY_BYTES} bytes"
        return None


# The signature layer only; the claims are checked here against the time the caller passes.
_jws = jwt.PyJWS(algorithms=["ES256"], options={"enforce_minimum_key_length": True})
_jws.register_algorithm("HS256", _FactorySecretHmac(_FactorySecretHmac.SHA256))


class TokenError(Exception):
    """The token was refused; the message says why (for the log only)."""


@dataclass(frozen=True, slots=True)
class DeviceClaims:
    device_id: str
    jti: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Presented:
    """A token as presented, parsed once but not verified: which device, which algorithm, and
    what ``verify`` checks the signature of."""

    token: str
    algorithm: str
    device_id: str
    claims: dict[str, Any]  # Trusted only once the signature verified.
    signing_input: bytes
    signature: bytes


def presented(token: str) -> Presented:
    """Parse the token without trusting it, to know whose keys verify it.

    The compact form is split and read here, strictly (base64url segments, a JSON object for
    header and payload), as PyJWT's decoder would read it: its check of each segment's
    alphabet, one character at a time, cost more than the ES256 signature check behind it.
    """
    if not isinstance(token, str):
        raise TokenError("not a JWT: not text")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWT: it has not three segments")
    header = _json_object(_segment(parts[0], "header"), "header")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenError(f"algorithm {alg!r} is not accepted (ES256 or HS256)")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("not a JWT: kid must be a string")
    claims = _json_object(_segment(parts[1], "payload"), "payload")
    device_id = _device_named(claims)
    signature = _segment(parts[2], "signature")
    signing_input = token.rsplit(".", 1)[0].encode()
    return Presented(token, alg, device_id, claims, signing_input, signature)


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _segment(text: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenError(f"not a JWT: the {what} is not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise TokenError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"the {what} is not a JSON object")
    return value


def _device_named(claims: dict[str, Any]) -> str:
    """The deviceId in ``sub``, or else the UUID in a modem's ``iss``. Checked before the
    device is looked up: whatever a token carries reaches no query unless it is a deviceId."""
    sub = claims.get("sub")
    if sub is None:
        issuer = claims.get("iss")
        matched = _MODEM_ISSUER.fullmatch(issuer) if isinstance(issuer, str) else None
        if matched is None:
            raise TokenError("no sub claim, and no iss of the form <chip>.<device UUID>")
        sub, name = matched.group(1), "iss"
    else:
        name = "sub"
    if not isinstance(sub, str) or not sub:
        raise TokenError("no sub claim")
    try:
        DeviceId(sub)
    except ValueError:
        raise TokenError(f"{name} does not name a deviceId") from None
    return sub


@functools.lru_cache(maxsize=4096)
def _public_key(pem: str) -> PublicKeyTypes:
    return serialization.load_pem_public_key(pem.encode())


def _es256_keys(pems: Sequence[str]) -> list[ec.EllipticCurvePublicKey]:
    keys = [_public_key(p) for p in pems]
    return [k for k in keys if isinstance(k, ec.EllipticCurvePublicKey)]


@functools.lru_cache(maxsize=4096)
def key_fingerprint(public_key_pem: str) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo, hex: the key's name (and a token's ``kid``)."""
    der = _public_key(public_key_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()


def verify(
    token: Presented, *, public_keys: Sequence[str], secret: bytes | None, now: float
) -> DeviceClaims:
    """Check signature, algorithm, lifetime and the claims API.md requires; raise TokenError."""
    if token.algorithm == "ES256":
        keys: list[Any] = _es256_keys(public_keys)
        if not keys:
            raise TokenError("ES256 token, but the device has no registered public key")
    else:
        if secret is None:
            raise TokenError("HS256 token, but the device has no device secret")
        keys = [secret]
    # The signature of what ``presented`` parsed, checked as PyJWT's decode would check it
    # (without parsing the token a second time).
    algorithm = _jws.get_algorithm_by_name(token.algorithm)
    for key in keys:
        try:
            prepared = algorithm.prepare_key(key)
        except jwt.PyJWTError as exc:
            raise TokenError(f"bad key: {exc}") from None
        if problem := algorithm.check_key_length(prepared):
            raise TokenError(f"bad key: {problem}")
        if algorithm.verify(token.signing_input, prepared, token.signature):
            return _checked(token.device_id, token.claims, now)
    raise TokenError("the signature matches no key of the device")


def _checked(device_id: str, claims: dict[str, Any], now: float) -> DeviceClaims:
    jti, iat, exp = (claims.get(name) for name in ("jti", "iat", "exp"))
    if not isinstance(jti, str) or not _JTI_RE.fullmatch(jti):
        raise TokenError(f"jti must be 1-{JTI_MAX} printable ASCII characters")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise TokenError("iat and exp must be integers")
    if exp - iat > MAX_LIFETIME_S or exp <= iat:
        raise TokenError(f"exp must be after iat and at most {MAX_LIFETIME_S} s after it")
    if iat > now + CLOCK_SKEW_S:
        raise TokenError("issued in the future")
    if exp <= now:
        raise TokenError("expired")
    return DeviceClaims(device_id, jti, iat, exp)


class Signer:
    """Signs one device's tokens: ES256 with its private key, or HS256 with its secret.

    The key is prepared and the header encoded once: a device sends a new token with every
    call, and a simulator thousands of them (PyJWT's ``encode`` prepares the key anew each
    time, which costs more than the signature). The signing itself is PyJWT's algorithm's.
    """

    def __init__(self, *, private_key_pem: str | None = None, secret: bytes | None = None):
        header: dict[str, str] = {"typ": "JWT"}
        self._key: Any
        if private_key_pem is not None:
            key = _private_key(private_key_pem)
            header.update(alg="ES256", kid=key_fingerprint(device_side.public_pem(key)))
            self._algorithm = _jws.get_algorithm_by_name("ES256")
            self._key = key
        elif secret is not None:
            header.update(alg="HS256")
            self._algorithm = _jws.get_algorithm_by_name("HS256")
            self._key = self._algorithm.prepare_key(secret)
            if problem := self._algorithm.check_key_length(self._key):
                raise ValueError(problem)
        else:
            raise ValueError("a private key or a secret is needed")
        # As PyJWT writes it: compact, keys sorted.
        encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
        self._header = jwt.utils.base64url_encode(encoded)

    def issue(
        self, device_id: str, *, now: float, lifetime: int = 120, chip: str | None = None
    ) -> str:
        """A token for ``device_id``; with ``chip``, in the form of the nRF91 modem's own
        (``iss`` ``<chip>.<device UUID>``, no ``sub``)."""
        claims: dict[str, Any]
        if chip is None:
            claims = {"sub": device_id, "jti": secrets.token_urlsafe(16)}
        else:
            issuer = f"{chip}.{device_id}"
            claims = {"iss": issuer, "jti": f"{issuer}.{secrets.token_hex(16)}"}
        claims.update(iat=int(now), exp=int(now) + lifetime)
        payload = json.dumps(claims, separators=(",", ":")).encode()
        signing_input = self._header + b"." + jwt.utils.base64url_encode(payload)
        signature = self._algorithm.sign(signing_input, self._key)
        return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


def issue(
    device_id: str,
    *,
    private_key_pem: str | None = None,
    secret: bytes | None = None,
    now: float,
    lifetime: int = 120,
) -> str:
    """A token for ``device_id``: ES256 with the device's private key, or HS256 with its secret."""
    signer = Signer(private_key_pem=private_key_pem, secret=secret)
    return signer.issue(device_id, now=now, lifetime=lifetime)


@functools.lru_cache(maxsize=64)
def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the JWT key must be an EC P-256 private key")
    return key
