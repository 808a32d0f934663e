"""A fleet for device-side tests: factory records with device secrets, a CA, and the demo's rule."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tests.conftest import Api
from zerotouch.agent.simulate import Identity
from zerotouch.demo import SEC_TAG, plan

__all__ = ["SEC_TAG", "Fleet", "make_fleet"]

TAG = "fleet"
SUBJECT_CN = "fleet device"


@dataclass
class Fleet:
    identities: list[Identity]
    ca_pem: str


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
                  "commands": plan(ca_pem, SUBJECT_CN), "active": True},
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
