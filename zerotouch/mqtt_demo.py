"""``zerotouch demo --transport mqtt``: the ESF journey on one machine.

A Mosquitto of its own (adapters/mqtt/mosquitto.py: dynamic security, a provisioning listener,
a mutual-TLS production listener with a certificate from the demo account's CA) and a server
whose MQTT worker drives it; devices are imported and claimed (a rule by tag queues a key, a
CSR the account CA signs for CN = the client ID, the CA to trust, finished), each gets a
provision request, and simulated gateways provision themselves over MQTT and connect on their
production identity. The pieces are reused by bench/mqtt.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from zerotouch.adapters.mqtt.mosquitto import Broker
from zerotouch.crypto import ca
from zerotouch.demo import IMPORT_BATCH, SEC_TAG, Keys, checked, server

TAG = "demo-mqtt"


def authority(root: Path) -> ca.CaMaterial:
    """The demo account's CA, kept in ``root`` so a run again on it uses the same one."""
    folder = root / "account-ca"
    cert, key = folder / "ca.pem", folder / "ca.key"
    if cert.exists() and key.exists():
        return ca.import_ca(cert.read_text(), key.read_text())
    material = ca.generate_ca("zerotouch demo CA")
    folder.mkdir(parents=True, exist_ok=True)
    cert.write_text(material.certificate_pem)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(material.private_key_pem)
    return material


@contextlib.contextmanager
def stack(
    root: Path, env: Mapping[str, str], *, workers: int = 1
) -> Iterator[tuple[str, Broker, ca.CaMaterial, subprocess.Popen[bytes]]]:
    """A fresh Mosquitto for the demo account's CA, and a server driving it."""
    material = authority(root)
    shutil.rmtree(root / "broker", ignore_errors=True)
    with Broker(root / "broker", [material]) as broker:
        mqtt = {
            "ZEROTOUCH_MQTT_URL": broker.admin_url,
            "ZEROTOUCH_MQTT_DEVICE_URL": broker.device_url,
            "ZEROTOUCH_MQTT_PRODUCTION_URL": broker.production_url(0),
        }
        with server({**env, **mqtt}, workers=workers) as (base, process):
            yield base, broker, material, process


def plan(material: ca.CaMaterial) -> list[dict[str, Any]]:
    """An empty CSR subject is CN=<deviceId>, which is each gateway's client ID here."""
    csr = {"secTag": SEC_TAG, "attributes": "", "keyUsage": "101010000", "sign": True}
    return [
        {"description": "The CA of the brokers", "request": {"serverCertificate": {
            "secTag": SEC_TAG, "content": material.certificate_pem}}},
        {"description": "Generate the gateway key",
         "request": {"clientPrivateKeyGeneration": {"secTag": SEC_TAG}}},
        {"description": "Its production certificate, CN = client ID",
         "request": {"certificateSigningRequest": csr}},
        {"description": "Provisioning finished", "request": {"finished": {}}},
    ]  # fmt: skip


def prepare(base: str, keys: Keys, material: ca.CaMaterial, count: int) -> list[str]:
    """CA and rule, then ``count`` gateways imported and claimed; their device ids."""
    owner = {"Authorization": f"Bearer {keys.owner}"}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    with httpx.Client(base_url=base, timeout=120) as http:
        pem = {"certificate": material.certificate_pem, "privateKey": material.private_key_pem}
        made = http.post("/v1/certificate-authority", json=pem, headers=owner)
        if made.status_code != 409:
            checked(made, 201)
        rule = {"name": "demo mqtt plan", "tags": [TAG], "commands": plan(material), "active": True}
        created = http.post("/v1/provisioning-rules", json=rule, headers=owner)
        if created.status_code != 409:
            checked(created, 201)
        run = secrets.token_hex(3)
        ids = [f"gw{run}{n:06d}" for n in range(count)]
        tokens: list[str] = []
        for start in range(0, count, IMPORT_BATCH):
            records = [{"deviceId": i, "tags": [TAG]} for i in ids[start : start + IMPORT_BATCH]]
            body = {"devices": records}
            answer = checked(
                http.post("/v1/manufacturing/devices", json=body, headers=factory), 200
            )
            tokens += [d["ownerToken"] for d in answer["devices"]]

    def claim(token: str) -> None:
        with httpx.Client(base_url=base, timeout=120) as one:
            checked(one.post("/v1/claimed-devices", json={"ownerToken": token}, headers=owner), 201)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(claim, tokens))
    return ids


@contextlib.asynccontextmanager
async def requester(
    base: str, keys: Keys
) -> AsyncIterator[Callable[[str], Awaitable[dict[str, Any]]]]:
    """Makes a device's provision request (the operator's call); yields the caller."""
    headers = {"Authorization": f"Bearer {keys.owner}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def ask(device_id: str) -> dict[str, Any]:
            path = f"/v1/claimed-devices/{device_id}/provision-requests"
            answer: dict[str, Any] = checked(await http.post(path, json={}, headers=headers), 201)
            return answer

        yield ask
