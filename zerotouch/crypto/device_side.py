"""What a device does with keys and certificates: the agent's recipes over `cryptography`.

Private keys never leave the device; what goes to the keystore or the service is PEM text. A
private key is taken as PEM or as the key itself (the agent keeps the keys it has loaded:
reading one back from PEM costs as much as signing with it). Failures raise ValueError with a
reason a person can act on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

EcPrivateKey = ec.EllipticCurvePrivateKey  # The key type, for callers outside crypto/.
PrivateKey = str | EcPrivateKey  # PEM text, or the key.


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_key: ec.EllipticCurvePrivateKey
    private_key_pem: str
    public_key_pem: str


def public_pem(key: ec.EllipticCurvePrivateKey | PublicKeyTypes) -> str:
    """The public key (of a private key, or itself) as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def generate_key_pair() -> KeyPair:
    """A new EC P-256 key pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(key, _private_pem(key), public_pem(key))


def key_pair(private_key_pem: str) -> KeyPair:
    """The pair of an unencrypted PEM EC private key; ValueError for anything else."""
    key = _load_private(private_key_pem)
    return KeyPair(key, private_key_pem, public_pem(key))


def load_private_key(key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    """The key, from PEM (unencrypted) or as given."""
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else _load_private(key)


def _load_private(pem: str, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=password)
    except TypeError:
        raise ValueError("the private key is encrypted and no password opens it") from None
    except ValueError:
        raise ValueError("is not a PEM private key, or the password is wrong") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("must be an EC private key")
    return key


def build_csr(private_key: PrivateKey, subject: str, key_usage: Mapping[str, bool]) -> str:
    """A CSR for the key, with the subject (RFC 4514) and key usage the command asks for."""
    key = load_private_key(private_key)
    try:
        name = _name(subject)
        usage = x509.KeyUsage(**key_usage)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the CSR cannot be built: {exc}") from None
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@functools.lru_cache(maxsize=256)
def _name(subject: str) -> x509.Name:
    # A fleet shares a handful of subjects; parsing one costs as much as signing the CSR.
    return x509.Name.from_rfc4514_string(subject)


def decrypt_private_key(pem: str, password: str) -> KeyPair:
    """An encrypted PEM private key opened with its password (kept as unencrypted PKCS#8)."""
    key = _load_private(pem, password.encode())
    return KeyPair(key, _private_pem(key), public_pem(key))


def check_certificates(pem: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate") from None
    if not certs:
        raise ValueError("is not a PEM certificate")
    return certs


def certificate_matches_key(certificate: x509.Certificate, private_key: PrivateKey) -> bool:
    """Whether the certificate is for this key pair (its public key is the key's)."""
    return certificate.public_key() == load_private_key(private_key).public_key()
