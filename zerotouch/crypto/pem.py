"""PEM checks for request fields. Each raises ValueError with a message fit for the user."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_PEM_LENGTH = 65_536


def _bytes(pem: object) -> bytes:
    if not isinstance(pem, str) or not pem.strip():
        raise ValueError("must be a PEM string")
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError(f"must be at most {MAX_PEM_LENGTH} characters")
    return pem.encode()


def check_ec_p256_public_key(pem: object) -> str:
    try:
        key = serialization.load_pem_public_key(_bytes(pem))
    except ValueError as exc:
        if "must be" in str(exc):
            raise
        raise ValueError("is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("must be an EC P-256 public key")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def check_certificates(pem: object) -> str:
    """One or more PEM certificates (a chain)."""
    data = _bytes(pem)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("is not a PEM certificate") from None
    if not certs:
        raise ValueError("is not a PEM certificate")
    return str(pem)


def check_encrypted_private_key(pem: object, password: object) -> None:
    data = _bytes(pem)
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:
        pass  # Encrypted, as it must be.
    except ValueError:
        raise ValueError("is not a PEM private key") from None
    else:
        raise ValueError("must be an encrypted PEM private key")
    try:
        serialization.load_pem_private_key(data, password=password.encode())
    except (ValueError, TypeError):
        raise ValueError("does not open with the given password") from None


def check_subject(attributes: object) -> str:
    """An RFC 4514 distinguished name such as ``C=NO,O=Example,CN=device-1``."""
    if not isinstance(attributes, str) or not attributes.strip():
        raise ValueError("must be a distinguished name such as 'O=Example,CN=device-1'")
    try:
        name = x509.Name.from_rfc4514_string(attributes)
    except ValueError:
        raise ValueError("is not a distinguished name such as 'O=Example,CN=device-1'") from None
    if len(name) == 0:
        raise ValueError("must name at least one attribute")
    return attributes


def public_key_from_der(der: bytes) -> str:
    """A DER SubjectPublicKeyInfo as PEM; ValueError when it is not one."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        raise ValueError("is not a DER public key") from None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_base64url(text: str) -> bytes:
    """Unpadded (or padded) base64url; ValueError for anything else."""
    if not text or not all(c.isalnum() or c in "-_=" for c in text):
        raise ValueError("is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ValueError("is not base64url") from None


@dataclass(frozen=True, slots=True)
class CsrForms:
    """A CSR as read, with its PEM and its ``%KEYGEN`` form (the modem's COSE part kept)."""

    csr: x509.CertificateSigningRequest
    pem: str
    keygen: str


def csr_forms(value: object) -> CsrForms:
    """A CSR given as PEM or in the modem's ``%KEYGEN`` form (base64url DER, then optionally
    ``.`` and the COSE part), read once."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a PEM certificate signing request or the modem's form of one")
    if value.lstrip().startswith("-----BEGIN"):
        try:
            csr = x509.load_pem_x509_csr(value.encode())
        except ValueError:
            raise ValueError("is not a PEM certificate signing request") from None
        return CsrForms(csr, value, base64url(csr.public_bytes(serialization.Encoding.DER)))
    body, _, cose = value.partition(".")
    if cose:
        from_base64url(cose)
    try:
        csr = x509.load_der_x509_csr(from_base64url(body))
    except ValueError:
        raise ValueError("is not a certificate signing request") from None
    return CsrForms(csr, csr.public_bytes(serialization.Encoding.PEM).decode(), value)
