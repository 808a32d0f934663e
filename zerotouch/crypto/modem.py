"""What an nRF91 modem's ``%KEYGEN`` answers, for the simulated modem (agent/nrf_modem.py):
the DER of a new key's public half or of a CSR for it, and the COSE_Sign1 the modem adds, signed
by its identity key (ES256, RFC 9052), in the form Nordic's modem_credentials_parser reads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from zerotouch.crypto import device_side

# COSE: ES256 in the protected header; the identity key in the unprotected one.
_COSE_ALG_ES256, _IDENTITY_KEY = -7, -2
PUBLIC_KEY_MESSAGE, CSR_MESSAGE = 8, 9


def public_key_der(key: device_side.EcPrivateKey) -> bytes:
    """The key's public half as SubjectPublicKeyInfo DER."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def csr_der(key: device_side.EcPrivateKey, subject: str, key_usage: Mapping[str, bool]) -> bytes:
    """A CSR for the key (subject RFC 4514, the key usage asked for), as DER."""
    pem = device_side.build_csr(key, subject, key_usage)
    return x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)


def cose_sign1(
    identity: device_side.EcPrivateKey, message: int, uuid: str, sec_tag: int, body: bytes
) -> bytes:
    """The modem's COSE_Sign1 over its attestation of ``body``: the message kind, the device
    UUID, the secTag, the body's SHA-256 and a nonce."""
    protected = cbor2.dumps({1: _COSE_ALG_ES256})
    payload = cbor2.dumps(
        [
            message,
            bytes.fromhex(uuid.replace("-", "")),
            cbor2.dumps(sec_tag),
            hashlib.sha256(body).digest(),
            os.urandom(16),
        ]
    )
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(identity.sign(to_sign, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    unprotected = {4: cbor2.dumps(_IDENTITY_KEY)}
    return bytes(cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature])))
