"""An account's certificate authority: generate (EC P-256) or import, and describe it."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CA_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class CaMaterial:
    certificate_pem: str
    private_key_pem: str
    fingerprint: str


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def generate_ca(common_name: str, *, now: dt.datetime | None = None) -> CaMaterial:
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CaMaterial(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=_key_pem(key),
        fingerprint=fingerprint(cert),
    )


def import_ca(certificate_pem: str, private_key_pem: str) -> CaMaterial:
    """Check an imported CA: a CA certificate and the private key that matches it.

    Raises ValueError naming the field (``certificate`` or ``privateKey``) and the reason.
    """
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise ValueError("certificate: is not a PEM certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError("certificate: is not a CA certificate (basicConstraints CA is not set)")
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("privateKey: is not an unencrypted PEM private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("privateKey: must be an EC or RSA key")
    public_der = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, public_der
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, public_der):
        raise ValueError("privateKey: does not match the certificate")
    return CaMaterial(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=_key_pem(key),
        fingerprint=fingerprint(cert),
    )
