"""The account's certificate authority: generated (EC P-256) or imported; key sealed at rest."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from zerotouch.crypto import ca
from zerotouch.domain.errors import AlreadyExists, FieldError, InvalidArgument, NotFound
from zerotouch.domain.values import Permission
from zerotouch.domain.views import CaView
from zerotouch.services.runtime import Principal, Runtime
from zerotouch.store.queries import record_event, unique_violation_as
from zerotouch.store.schema import certificate_authorities

KEY_PURPOSE = "certificate_authorities.private_key"
COMMON_NAME_MAX = 64  # RFC 5280 upper bound for commonName.


def _material(body: Any) -> ca.CaMaterial:
    if not isinstance(body, dict):
        raise InvalidArgument.for_field("body", "must be an object")
    unknown = [k for k in body if k not in ("commonName", "certificate", "privateKey")]
    if unknown:
        raise InvalidArgument(
            f"{unknown[0]}: is not a known field",
            errors=[FieldError(k, "is not a known field") for k in unknown],
        )
    if "commonName" in body:
        if "certificate" in body or "privateKey" in body:
            raise InvalidArgument.for_field(
                "commonName", "give commonName or certificate and privateKey, not both"
            )
        name = body["commonName"]
        if not isinstance(name, str) or not 1 <= len(name) <= COMMON_NAME_MAX:
            raise InvalidArgument.for_field(
                "commonName", f"must be a string of 1-{COMMON_NAME_MAX} characters"
            )
        return ca.generate_ca(name)
    for field in ("certificate", "privateKey"):
        if not isinstance(body.get(field), str):
            raise InvalidArgument.for_field(
                field, "is required (or give commonName to generate one)"
            )
    try:
        return ca.import_ca(body["certificate"], body["privateKey"])
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InvalidArgument.for_field(field, reason) from None


def create_authority(rt: Runtime, *, principal: Principal, body: Any) -> CaView:
    principal.require(Permission.WRITE_DEVICES)
    material = _material(body)
    now = rt.clock()
    with rt.db.write() as conn:
        exists = conn.execute(
            sa.select(certificate_authorities.c.account_id).where(
                certificate_authorities.c.account_id == principal.account_id
            )
        ).first()
        if exists:
            raise AlreadyExists("This account has a certificate authority already.")
        with unique_violation_as(
            AlreadyExists("This account has a certificate authority already.")
        ):
            conn.execute(
                certificate_authorities.insert().values(
                    account_id=principal.account_id,
                    certificate_pem=material.certificate_pem,
                    private_key_sealed=rt.keyring.seal(material.private_key_pem, KEY_PURPOSE),
                    fingerprint=material.fingerprint,
                    created_at=now,
                )
            )
        kind = "generated" if "commonName" in body else "imported"
        record_event(
            conn,
            account_id=principal.account_id,
            actor=principal.actor,
            at=now,
            event=(f"certificate_authority.{kind}", None, {"fingerprint": material.fingerprint}),
        )
    return CaView(material.certificate_pem, material.fingerprint, now)


def get_authority(rt: Runtime, *, principal: Principal) -> CaView:
    principal.require(Permission.READ_DEVICES)
    with rt.db.read() as conn:
        row = conn.execute(
            sa.select(certificate_authorities).where(
                certificate_authorities.c.account_id == principal.account_id
            )
        ).first()
    if row is None:
        raise NotFound(
            "This account has no certificate authority.", code="certificate_authority_not_found"
        )
    return CaView(row.certificate_pem, row.fingerprint, row.created_at)
