"""Signed control messages: what an account tells its devices over MQTT.

The account's key (Ed25519, or ECDSA P-256 with SHA-256) signs the topic, the request id, the
expiry and the body; the device checks all four against the key it pinned while it provisioned,
refuses one it has seen before, and says why on its reply topic. The signed bytes are::

    b"zerotouch-control-v1\\n" topic "\\n" requestId "\\n" expiresAt "\\n" body

with the body as canonical JSON (sorted keys, no spaces) and ``expiresAt`` in Unix seconds.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

MAX_LIFETIME_S = 3600
_CONTEXT = b"zerotouch-control-v1\n"


class ControlRefused(Exception):
    """Why a device refuses a control message (unsigned, expired, replayed, foreign)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Control:
    request_id: str
    expires_at: int
    body: dict[str, Any]


def new_key() -> tuple[str, str]:
    """A fresh Ed25519 key: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _signed_bytes(topic: str, request_id: str, expires_at: int, body: dict[str, Any]) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _CONTEXT + f"{topic}\n{request_id}\n{expires_at}\n".encode() + canonical.encode()


def sign(
    private_key_pem: str,
    topic: str,
    body: dict[str, Any],
    *,
    now: float,
    lifetime_s: int = 600,
    request_id: str | None = None,
) -> bytes:
    """The message's payload (JSON): ``{"requestId", "expiresAt", "body", "signature"}``."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    request_id = request_id or str(uuid.uuid4())
    expires_at = int(now) + lifetime_s
    data = _signed_bytes(topic, request_id, expires_at, body)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError("a control key is Ed25519 or ECDSA")
    message = {
        "requestId": request_id,
        "expiresAt": expires_at,
        "body": body,
        "signature": base64.b64encode(signature).decode(),
    }
    return json.dumps(message, separators=(",", ":")).encode()


def verify(
    public_key_pem: str, topic: str, payload: bytes, *, now: float, seen: set[str]
) -> Control:
    """The message, once its signature, expiry and request id check out; ControlRefused with
    the reason otherwise. ``seen``: request ids accepted before (the caller adds this one)."""
    try:
        message = json.loads(payload)
        request_id = message["requestId"]
        expires_at = message["expiresAt"]
        body = message["body"]
        raw_signature = message.get("signature")
    except (ValueError, KeyError, TypeError):
        raise ControlRefused("not a control message", "malformed") from None
    if not isinstance(request_id, str) or not isinstance(body, dict):
        raise ControlRefused("not a control message", "malformed")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise ControlRefused("expiresAt must be Unix seconds", "malformed")
    if not isinstance(raw_signature, str) or not raw_signature:
        raise ControlRefused("the message is not signed", "unsigned")
    try:
        signature = base64.b64decode(raw_signature, validate=True)
    except (binascii.Error, ValueError):
        raise ControlRefused("the signature is not base64", "malformed") from None
    key = serialization.load_pem_public_key(public_key_pem.encode())
    data = _signed_bytes(topic, request_id, expires_at, body)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise ControlRefused("the pinned key is neither Ed25519 nor ECDSA", "bad_key")
    except InvalidSignature:
        raise ControlRefused("the signature is not the account's", "foreign_signature") from None
    if expires_at <= now:
        raise ControlRefused("the message has expired", "expired")
    if expires_at > now + MAX_LIFETIME_S:
        raise ControlRefused("the message lives too long", "expired")
    if request_id in seen:
        raise ControlRefused("the message was replayed", "replayed")
    return Control(request_id, expires_at, body)
