"""A fleet for device-side tests: factory records with device secrets, a CA, and the demo's rule."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tests.conftest import Api
from zerotouch.agent.simulate import Identity

TAG = "fleet"
SEC_TAG = 16842753
SUBJECT = "O=Acme,CN=fleet-device"
KEY_USAGE = "101010000"


@dataclass
class Fleet:
    identities: list[Identity]
    ca_pem: str


def demo_plan(ca_pem: str) -> list[dict[str, Any]]:
    """The demo's plan: key, CSR signed by the account CA, the CA to trust, config, finished."""
    return [
        {"description": "Generate the device key", "request": {
            "clientPrivateKeyGeneration": {"secTag": SEC_TAG}}},
        {"description": "CSR, signed by the account CA", "request": {
            "certificateSigningRequest": {
                "secTag": SEC_TAG, "attributes": SUBJECT, "keyUsage": KEY_USAGE, "sign": True}}},
        {"description": "Trust the account CA", "request": {
            "serverCertificate": {"secTag": SEC_TAG, "content": ca_pem}}},
        {"description": "Settings", "request": {"config": {"mqttHost": "broker.example"}}},
        {"description": "Done", "request": {"finished": {}}},
    ]  # fmt: skip


def make_fleet(api: Api, count: int, *, rule: bool = True, prefix: str = "dev") -> Fleet:
    """Import and claim ``count`` devices; with ``rule``, a CA and the demo rule come first."""
    ca = api.call("POST", "/v1/certificate-authority", json={"commonName": "Acme Device CA"})
    assert ca.status_code == 201, ca.text
    ca_pem = ca.json()["certificate"]
    if rule:
        res = api.call(
            "POST",
            "/v1/provisioning-rules",
            json={"name": "demo", "description": "the demo plan", "tags": [TAG],
                  "commands": demo_plan(ca_pem), "active": True},
        )  # fmt: skip
        assert res.status_code == 201, res.text
    identities = [
        Identity(f"{prefix}-{i:04d}", secrets.token_hex(16).upper()) for i in range(count)
    ]
    imported = api.import_devices(
        *({"deviceId": i.device_id, "deviceSecret": i.device_secret, "tags": [TAG]}
          for i in identities)
    )  # fmt: skip
    for device in imported["devices"]:
        res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": device["ownerToken"]})
        assert res.status_code == 201, res.text
    return Fleet(identities, ca_pem)
