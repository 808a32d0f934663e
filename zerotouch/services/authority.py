"""The account's certificate authority: generated (EC P-256) or imported; key sealed at rest."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from zerotouch.crypto import ca
from zerotouch.domain.errors import InvalidArgument, NotFound
from zerotouch.domain.values import Permission
from zerotouch.domain.views import CaView
from zerotouch.services.audit import audit_event
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store import authorities

KEY_PURPOSE = "certificate_authorities.private_key"
COMMON_NAME_MAX = 64  # RFC 5280 upper bound for commonName.


@dataclass(frozen=True, slots=True)
class NewAuthority:
    """A CA to make (``common_name``) or to import (``certificate`` and ``private_key``, PEM)."""

    common_name: str | None = None
    certificate: str | None = None
    private_key: str | None = None

    def material(self) -> ca.CaMaterial:
        if self.common_name is not None:
            if self.certificate is not None or self.private_key is not None:
                raise InvalidArgument.for_field(
                    "commonName", "give commonName or certificate and privateKey, not both"
                )
            if not 1 <= len(self.common_name) <= COMMON_NAME_MAX:
                raise InvalidArgument.for_field(
                    "commonName", f"must be a string of 1-{COMMON_NAME_MAX} characters"
                )
            return ca.generate_ca(self.common_name)
        if self.certificate is None:
            raise InvalidArgument.for_field(
                "certificate", "is required (or give commonName to generate one)"
            )
        if self.private_key is None:
            raise InvalidArgument.for_field(
                "privateKey", "is required (or give commonName to generate one)"
            )
        try:
            return ca.import_ca(self.certificate, self.private_key)
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            raise InvalidArgument.for_field(field, reason) from None


def create_authority(rt: Runtime, *, principal: Principal, new: NewAuthority) -> CaView:
    principal.require(Permission.WRITE_DEVICES)
    material = new.material()
    now = rt.clock()
    with rt.db.write() as conn:
        authorities.add(
            conn,
            account_id=principal.account_id,
            certificate_pem=material.certificate_pem,
            private_key_sealed=rt.keyring.seal(material.private_key_pem, KEY_PURPOSE),
            fingerprint=material.fingerprint,
            now=now,
        )
        kind = "generated" if new.common_name is not None else "imported"
        audit_event(
            conn,
            principal,
            at=now,
            event=(f"certificate_authority.{kind}", None, {"fingerprint": material.fingerprint}),
        )
    return CaView(material.certificate_pem, material.fingerprint, now)


def get_authority(rt: Runtime, *, principal: Principal) -> CaView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        row = authorities.find(conn, principal.account_id)
    if row is None:
        raise NotFound(
            "This account has no certificate authority.", code="certificate_authority_not_found"
        )
    return CaView(row.certificate_pem, row.fingerprint, row.created_at)


def issue_broker_certificate(
    rt: Runtime, *, principal: Principal, hosts: list[str], days: int
) -> tuple[ca.ServerMaterial, str]:
    """A TLS server certificate for an MQTT broker that serves this account, from the account
    CA (its devices check the broker against that CA alone); and the CA's certificate."""
    principal.require(Permission.MANAGE_PLATFORM)
    with rt.db.read() as conn:
        row = authorities.find(conn, principal.account_id)
    if row is None:
        raise NotFound(
            "This account has no certificate authority.", code="certificate_authority_not_found"
        )
    authority = ca.CaMaterial(
        row.certificate_pem,
        rt.keyring.open_text(row.private_key_sealed, KEY_PURPOSE),
        row.fingerprint,
    )
    validity = dt.timedelta(days=days)
    return ca.issue_server_certificate(authority, hosts, validity=validity), row.certificate_pem
