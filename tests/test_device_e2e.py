"""End to end: import, claim, rule, then real agents over HTTP on loopback until PROVISIONED."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

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
    metrics = api.client.get("/metrics").text
    assert "zerotouch_certificates_issued_total 8.0" in metrics
    assert 'zerotouch_device_calls_total{call="respond",outcome="ok"}' in metrics
    assert "process_resident_memory_bytes" in metrics
    listed = api.call("GET", "/v1/claimed-devices", params={"status": "PROVISIONED"}).json()
    assert listed["total"] == 8
    ca = x509.load_pem_x509_certificate(fleet.ca_pem.encode())
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    for identity in fleet.identities:
        folder = tmp_path / identity.device_id
        cert = x509.load_pem_x509_certificate((folder / str(SEC_TAG) / "client.pem").read_bytes())
        cert.verify_directly_issued_by(ca)  # Raises unless the account CA signed it.
        issuer_id = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert issuer_id.key_identifier == ca_key_id  # Chain builders find the CA by it.
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


def test_a_failing_command_holds_the_device_until_reset(
    api: Api, rt: Runtime, tmp_path: Path
) -> None:
    """The agent's command fails on the device; the operator resets it after the cause is gone,
    and the agent, long-polling, picks the plan up again and finishes."""
    fleet = make_fleet(api, 1, rule=False)
    identity = fleet.identities[0]
    device_id = identity.device_id
    ca_pem = fleet.ca_pem
    for request in (
        {"config": {"a": "1"}},
        {"serverCertificate": {"secTag": 7, "content": ca_pem}},
        {"finished": {}},
    ):
        res = api.call(
            "POST",
            f"/v1/claimed-devices/{device_id}/provisioning",
            json={"description": "step", "request": request},
        )
        assert res.status_code == 201, res.text
    blocker = tmp_path / device_id / "7"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the secTag folder should be")

    def statuses() -> list[str]:
        items = api.call("GET", f"/v1/claimed-devices/{device_id}/provisioning").json()["items"]
        return [c["status"] for c in items]

    outcome: list[Any] = []
    with live_server(rt) as base:
        agent = threading.Thread(
            target=lambda: outcome.append(
                asyncio.run(
                    simulate(fleet.identities, {"server-url": base, "long-poll": 2}, tmp_path)
                )
            )
        )
        agent.start()
        deadline = time.monotonic() + 20
        while statuses()[1] != "FAILED":
            assert time.monotonic() < deadline, statuses()
            time.sleep(0.05)
        device = api.call("GET", f"/v1/claimed-devices/{device_id}").json()
        assert device["status"] == "ERROR"
        assert statuses() == ["SUCCEEDED", "FAILED", "PENDING"]  # Later commands untouched.
        blocker.unlink()
        failed = api.call("GET", f"/v1/claimed-devices/{device_id}/provisioning").json()["items"][1]
        reset = api.call(
            "POST", f"/v1/claimed-devices/{device_id}/provisioning/{failed['id']}/reset"
        )
        assert reset.status_code == 200
        agent.join(30)
    assert not agent.is_alive()
    assert outcome[0].errors == {}
    assert statuses() == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]
    assert api.call("GET", f"/v1/claimed-devices/{device_id}").json()["status"] == "PROVISIONED"


def test_nordic_onboarding_plan_with_the_device_s_own_subject(
    api: Api, rt: Runtime, tmp_path: Path
) -> None:
    """nRF Cloud's onboarding rule (two key generations in one secTag, a server certificate)
    then a CSR with empty attributes: signed for CN=<deviceId>, both keys registered."""
    fleet = make_fleet(api, 2, rule=False, prefix="nrf")
    for identity in fleet.identities:
        path = f"/v1/claimed-devices/{identity.device_id}/provisioning"
        for request in (
            {"clientPrivateKeyGeneration": {"secTag": SEC_TAG}},
            {"cloudAccessKeyGeneration": {"secTag": SEC_TAG}},
            {"serverCertificate": {"secTag": SEC_TAG, "content": fleet.ca_pem}},
            {
                "certificateSigningRequest": {
                    "secTag": SEC_TAG,
                    "attributes": "",
                    "keyUsage": "101010000",
                    "sign": True,
                }
            },
            {"finished": {}},
        ):
            res = api.call("POST", path, json={"request": request})
            assert res.status_code == 201, res.text
    with live_server(rt) as base:
        result = asyncio.run(
            simulate(fleet.identities, {"server-url": base, "long-poll": 5}, tmp_path)
        )
    assert result.errors == {}
    for identity in fleet.identities:
        device = api.call("GET", f"/v1/claimed-devices/{identity.device_id}").json()
        assert device["status"] == "PROVISIONED"
        folder = tmp_path / identity.device_id / str(SEC_TAG)
        cert = x509.load_pem_x509_certificate((folder / "client.pem").read_bytes())
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert [n.value for n in names] == [identity.device_id]
        assert (folder / "cloud-access-key.pem").exists()
        commands = api.call("GET", f"/v1/claimed-devices/{identity.device_id}/provisioning")
        generated = [
            c for c in commands.json()["items"] if "KeyGeneration" in next(iter(c["request"]))
        ]
        assert [c["status"] for c in generated] == ["SUCCEEDED", "SUCCEEDED"]
        keys = {next(iter(c["response"].values()))["publicKey"] for c in generated}
        assert len(keys) == 2  # Two keys, each its own.
