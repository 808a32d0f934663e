"""Provisioning over MQTT against a real Mosquitto (README, "Provisioning over MQTT")."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mqtt_stack import Node, node, with_endpoints
from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.agent import runner
from zerotouch.agent.keystore import Keystore
from zerotouch.agent.mqtt import MqttDeviceApi
from zerotouch.agent.settings import AgentSettings
from zerotouch.crypto import ca
from zerotouch.services.accounts import create_api_key
from zerotouch.services.runtime import Runtime

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto")

SECRET = "A1B2C3D4E5F60718293A4B5C6D7E8F90"


@pytest.fixture
def authority() -> ca.CaMaterial:
    return ca.generate_ca("acme devices")


@pytest.fixture
def broker(tmp_path: Path, authority: ca.CaMaterial) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", [authority]) as running:
        yield running


@pytest.fixture
def keys(rt: Runtime) -> dict[str, str]:
    return {
        "owner": create_api_key(rt, role="owner", account_name="acme")[1],
        "factory": create_api_key(rt, role="manufacturer", account_name="acme")[1],
    }


@pytest.fixture
def zt(rt: Runtime, broker: Broker) -> Iterator[Node]:
    with node(with_endpoints(rt, broker), broker) as running:
        yield running


def plan(client_id: str, authority: ca.CaMaterial) -> list[dict[str, Any]]:
    return [
        {"request": {"serverCertificate": {"secTag": 7, "content": authority.certificate_pem}}},
        {"request": {"clientPrivateKeyGeneration": {"secTag": 7}}},
        {
            "request": {
                "certificateSigningRequest": {
                    "secTag": 7,
                    "attributes": f"CN={client_id}",
                    "keyUsage": "101010000",
                    "sign": True,
                }
            }
        },
        {"request": {"finished": {}}},
    ]


def prepared(
    zt: Node,
    keys: dict[str, str],
    authority: ca.CaMaterial,
    device_id: str = "gw-1",
    mac: str = "0011223344AA",
) -> str:
    """A device imported, claimed and given a plan that ends in its MQTT identity."""
    owner = keys["owner"]
    if zt.call("GET", "/v1/certificate-authority", owner).status_code == 404:
        res = zt.call(
            "POST",
            "/v1/certificate-authority",
            owner,
            json={
                "certificate": authority.certificate_pem,
                "privateKey": authority.private_key_pem,
            },
        )
        assert res.status_code == 201, res.text
    res = zt.call(
        "POST",
        "/v1/manufacturing/devices",
        keys["factory"],
        json={
            "devices": [
                {"deviceId": device_id, "mac": mac, "serial": "SN1", "deviceSecret": SECRET}
            ]
        },
    )
    assert res.status_code == 200, res.text
    token = res.json()["devices"][0]["ownerToken"]
    res = zt.call("POST", "/v1/claimed-devices", owner, json={"ownerToken": token})
    assert res.status_code == 201, res.text
    for command in plan(mac, authority):
        res = zt.call("POST", f"/v1/claimed-devices/{device_id}/provisioning", owner, json=command)
        assert res.status_code == 201, res.text
    return device_id


def agent_settings(answer: dict[str, Any], keystore: Path, **extra: Any) -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "transport": "mqtt",
            "broker-url": answer["brokerUrl"],
            "account-name": answer["accountName"],
            "username": answer["username"],
            "password": answer["password"],
            "client-id": answer["clientId"],
            "device-id": answer["deviceId"],
            "keystore": str(keystore),
            "retry-interval": 0.1,
            "retry-max-attempts": 3,
            "timeout": 5,
            "long-poll": 1,
            **extra,
        }
    )


async def provision(settings: AgentSettings) -> MqttDeviceApi:
    keystore = Keystore(settings.keystore, durable=False)
    api = MqttDeviceApi(settings, keystore)
    report = await runner.run(settings, api, keystore, settings_path=None)
    assert report.outcome is runner.Outcome.PROVISIONED
    return api


def test_the_whole_esf_journey(
    zt: Node, keys: dict[str, str], authority: ca.CaMaterial, tmp_path: Path
) -> None:
    device_id = prepared(zt, keys, authority)
    res = zt.call(
        "POST",
        f"/v1/claimed-devices/{device_id}/provision-requests",
        keys["owner"],
        json={"activationKey": SECRET},
    )
    assert res.status_code == 201, res.text
    answer = res.json()
    assert answer["username"] == "0011223344AA-SN1" and answer["clientId"] == "0011223344AA"
    settings = agent_settings(answer, tmp_path / "ks", **{"activation-key": SECRET})

    async def go() -> None:
        api = await provision(settings)
        assert api.production is not None and api.production.up
        await api.close()
        await api.production.close()

    asyncio.run(go())
    device = zt.call("GET", f"/v1/claimed-devices/{device_id}", keys["owner"]).json()
    assert device["status"] == "PROVISIONED"
    listed = zt.call(
        "GET", f"/v1/claimed-devices/{device_id}/provision-requests", keys["owner"]
    ).json()["items"]
    assert [item["state"] for item in listed] == ["SUCCEEDED"]
    assert "password" not in listed[0] or listed[0]["password"] is None
