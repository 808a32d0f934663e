"""End to end: import, claim, rule, then real agents over HTTP on loopback until PROVISIONED."""

from __future__ import annotations

import asyncio
import stat
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import Api
from tests.device_fleet import SEC_TAG, make_fleet
from tests.live import live_server
from zerotouch.agent.simulate import simulate
from zerotouch.services.runtime import Runtime


def test_agents_provision_every_device(api: Api, rt: Runtime, tmp_path: Path) -> None:
    fleet = make_fleet(api, 8)
    with live_server(rt) as base:
        result = asyncio.run(
            simulate(fleet.identities, {"server-url": base, "long-poll": 5}, tmp_path)
        )
    assert result.errors == {}
    assert len(result.seconds) == 8
    listed = api.call("GET", "/v1/claimed-devices", params={"status": "PROVISIONED"}).json()
    assert listed["total"] == 8
    ca = x509.load_pem_x509_certificate(fleet.ca_pem.encode())
    for identity in fleet.identities:
        folder = tmp_path / identity.device_id
        cert = x509.load_pem_x509_certificate((folder / str(SEC_TAG) / "client.pem").read_bytes())
        cert.verify_directly_issued_by(ca)  # Raises unless the account CA signed it.
        key_file = folder / str(SEC_TAG) / "private.pem"
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert cert.public_key().public_bytes(
            serialization.Encoding.DER, spki
        ) == key.public_key().public_bytes(serialization.Encoding.DER, spki)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (folder / str(SEC_TAG) / "ca.pem").read_text() == fleet.ca_pem
        settings = tomllib.loads((folder / "agent.toml").read_text())
        assert settings["provisioned"] is True and settings["enabled"] is False
        commands = api.call("GET", f"/v1/claimed-devices/{identity.device_id}/provisioning").json()[
            "items"
        ]
        types = [next(iter(c["request"])) for c in commands]
        assert types == [
            "clientPrivateKeyGeneration",
            "certificateSigningRequest",
            "clientCertificate",
            "serverCertificate",
            "config",
            "finished",
        ]
        assert {c["status"] for c in commands} == {"SUCCEEDED"}
