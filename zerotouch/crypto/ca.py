"""An account's certificate authority: generate (EC P-256) or import, and describe it."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
        .serial_number(_random_serial())
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


def _random_serial() -> int:
    # RFC 5280 4.1.2.2: positive, at most 20 octets; 127 random bits.
    return int.from_bytes(secrets.token_bytes(16), "big") >> 1


@dataclass(frozen=True, slots=True)
class Csr:
    """A certificate signing request whose signature verified."""

    request: x509.CertificateSigningRequest
    public_key_pem: str


def load_csr(pem: str) -> Csr:
    """Parse a PEM CSR and check its signature; raises ValueError with the reason."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate signing request") from None
    return checked_csr(csr)


def checked_csr(csr: x509.CertificateSigningRequest) -> Csr:
    """A parsed CSR whose signature verifies, with its key; raises ValueError otherwise."""
    if not csr.is_signature_valid:
        raise ValueError("its signature does not verify")
    public = csr.public_key()
    if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ValueError("must hold an EC or RSA public key")
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return Csr(csr, public_pem)


@dataclass(frozen=True, slots=True)
class _Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key_identifier: x509.AuthorityKeyIdentifier  # What every certificate it signs names.


@functools.lru_cache(maxsize=64)
def _authority(certificate_pem: str, private_key_pem: str) -> _Authority:
    # Parsing the CA costs more than signing with it; an account signs many CSRs.
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    assert isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    return _Authority(
        cert, key, x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    )


@functools.lru_cache(maxsize=256)
def _subject(attributes: str) -> x509.Name:
    # Plans share a handful of subjects; parsing one costs a third of signing.
    return x509.Name.from_rfc4514_string(attributes)


def common_name_of(attributes: str) -> str | None:
    """The CN of a subject in RFC 4514 form (None without one, or when it does not parse)."""
    try:
        names = _subject(attributes).get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return str(names[0].value) if names else None


def sign_csr(
    *,
    ca_certificate_pem: str,
    ca_private_key_pem: str,
    csr: Csr,
    subject: str,
    key_usage: Mapping[str, bool],  # every argument of x509.KeyUsage
    validity: dt.timedelta,
    now: dt.datetime | None = None,
) -> str:
    """A client certificate for the key in ``csr``, issued by the CA.

    The subject and key usage come from the command that asked for the CSR, not from the CSR,
    so a device cannot ask for more than its plan grants. Raises ValueError when the key usage
    is invalid.
    """
    now = now or dt.datetime.now(dt.UTC)
    authority = _authority(ca_certificate_pem, ca_private_key_pem)
    public = csr.request.public_key()
    assert isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    try:
        usage = x509.KeyUsage(**key_usage)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key usage: {exc}") from None
    cert = (
        x509.CertificateBuilder()
        .subject_name(_subject(subject))
        .issuer_name(authority.certificate.subject)
        .public_key(public)
        .serial_number(_random_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(authority.key_identifier, critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True, slots=True)
class ServerMaterial:
    certificate_pem: str
    private_key_pem: str


def issue_server_certificate(
    ca: CaMaterial,
    hosts: list[str],
    *,
    validity: dt.timedelta = dt.timedelta(days=365),
    now: dt.datetime | None = None,
) -> ServerMaterial:
    """A TLS server certificate (EC P-256) for ``hosts`` (DNS names or IP addresses)."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    san = x509.SubjectAlternativeName(names)
    return _issue(ca, hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, san, validity, now)


def issue_client_certificate(
    ca: CaMaterial,
    common_name: str,
    *,
    validity: dt.timedelta = dt.timedelta(days=365),
    now: dt.datetime | None = None,
) -> ServerMaterial:
    """A TLS client certificate (EC P-256) named ``common_name``, for mutual TLS."""
    return _issue(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, None, validity, now)


def _issue(
    ca: CaMaterial,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: x509.SubjectAlternativeName | None,
    validity: dt.timedelta,
    now: dt.datetime | None,
) -> ServerMaterial:
    now = now or dt.datetime.now(dt.UTC)
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.encode(), password=None)
    assert isinstance(ca_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return ServerMaterial(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))
