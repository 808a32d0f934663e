"""``zerotouch demo``: the whole journey on one machine, on the embedded default.

A server is started on a free loopback port; factory records are imported, a CA and a rule by
tag are created, the devices claimed (the rule queues their plan), and simulated agents provision
themselves. The pieces are reused by bench/provision.py.
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from zerotouch.agent.nrf_modem import new_modem
from zerotouch.agent.simulate import Identity
from zerotouch.bootstrap import build_runtime
from zerotouch.crypto import device_side
from zerotouch.domain.lifecycle import CLAIMED_STATUSES
from zerotouch.services.accounts import create_api_key
from zerotouch.settings import Settings

TAG = "demo"
DEVICE_API, NRF = "device", "nrf"  # The protocols simulated devices speak.
SEC_TAG = 16842753  # The secTag nRF Cloud examples use for a device's credentials.
IMPORT_BATCH = 1000
START_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class Keys:
    manufacturer: str
    owner: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_keys(env: Mapping[str, str]) -> Keys:
    """A manufacturer and an owner key, straight on the database (as ``keys create`` does)."""
    settings = Settings(
        data_dir=Path(env["ZEROTOUCH_DATA_DIR"]),
        database_url=env.get("ZEROTOUCH_DATABASE_URL") or None,
    )
    runtime = build_runtime(settings, role="demo")
    try:
        return Keys(
            create_api_key(runtime, role="manufacturer", account_name="demo")[1],
            create_api_key(runtime, role="owner", account_name="demo")[1],
        )
    finally:
        runtime.db.dispose()


@dataclass(frozen=True, slots=True)
class Tls:
    """What ``zerotouch certs server`` wrote: the server's certificate and key, and the CA."""

    certificate: Path
    key: Path
    ca: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Tls:
        return cls(directory / "server.pem", directory / "server.key", directory / "ca.pem")


@contextlib.contextmanager
def server(
    env: Mapping[str, str],
    *,
    workers: int = 1,
    tls: Tls | None = None,
    ovms_port: int = 0,
    ovms_tls_port: int = 0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``zerotouch serve`` in a child process on a free loopback port; yields (URL, process).
    The OVMS listeners are off unless their ports are given."""
    port = free_port()
    command = [sys.executable, "-m", "zerotouch", "serve", "--port", str(port)]
    command += ["--log-level", "warning", "--workers", str(workers)]
    command += ["--ovms-port", str(ovms_port), "--ovms-tls-port", str(ovms_tls_port)]
    if tls is not None:
        command += ["--tls-cert", str(tls.certificate), "--tls-key", str(tls.key)]
    process = subprocess.Popen(command, env=dict(env))  # noqa: S603 - this interpreter, fixed args
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify = trust(tls.ca) if tls else True
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("zerotouch serve did not start")
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def plan(ca_pem: str, common_name: str = "zerotouch demo device") -> list[dict[str, Any]]:
    """Key generation, a CSR the account CA signs, the CA to trust, config, finished."""
    return [
        {
            "description": "Generate the device key",
            "request": {"clientPrivateKeyGeneration": {"secTag": SEC_TAG}},
        },
        {
            "description": "Certificate signing request, signed by the account CA",
            "request": {
                "certificateSigningRequest": {
                    "secTag": SEC_TAG,
                    "attributes": f"O=zerotouch demo,CN={common_name}",
                    "keyUsage": "101010000",
                    "sign": True,
                }
            },
        },
        {
            "description": "The CA the device must trust",
            "request": {"serverCertificate": {"secTag": SEC_TAG, "content": ca_pem}},
        },
        {
            "description": "Where to connect",
            "request": {"config": {"mqttHost": "mqtt.example.com", "mqttPort": "8883"}},
        },
        {"description": "Provisioning finished", "request": {"finished": {}}},
    ]


def checked(response: httpx.Response, expected: int) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"HTTP {response.status_code} {response.text[:300]}")  # fmt: skip
    body: dict[str, Any] = response.json()
    return body


def trust(ca: Path) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca`` (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca))


def prepare_fleet(
    base: str,
    keys: Keys,
    count: int,
    *,
    prefix: str = "demo",
    verify: ssl.SSLContext | bool = True,
    protocol: str = DEVICE_API,
) -> list[Identity]:
    """CA and rule first, then import and claim ``count`` devices: each gets the plan. For
    ``protocol`` "nrf": nRF91 modems, named by UUID, each with its identity key (the factory
    record carries its public key)."""
    owner = {"Authorization": f"Bearer {keys.owner}"}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    with httpx.Client(base_url=base, timeout=120, verify=verify) as http:
        # A demo run again on the same directory keeps the CA and rule it made before.
        made = http.post(
            "/v1/certificate-authority", json={"commonName": "zerotouch demo CA"}, headers=owner
        )
        if made.status_code == 409:
            ca = checked(http.get("/v1/certificate-authority", headers=owner), 200)
        else:
            ca = checked(made, 201)
        rule = {
            "name": f"{prefix} plan",
            "description": "key, signed certificate, trusted CA, config, finished",
            "tags": [TAG],
            "commands": plan(ca["certificate"]),
            "active": True,
        }
        created = http.post("/v1/provisioning-rules", json=rule, headers=owner)
        if created.status_code != 409:
            checked(created, 201)
        run = secrets.token_hex(3)
        if protocol == NRF:
            identities = [_modem_identity() for _ in range(count)]
        else:
            identities = [
                Identity(f"{prefix}-{run}-{i:05d}", secrets.token_hex(16).upper())
                for i in range(count)
            ]
        tokens: list[str] = []
        for start in range(0, count, IMPORT_BATCH):
            records = [_record(i) for i in identities[start : start + IMPORT_BATCH]]
            answer = checked(
                http.post("/v1/manufacturing/devices", json={"devices": records}, headers=factory),
                200,
            )
            tokens += [d["ownerToken"] for d in answer["devices"]]
        for token in tokens:
            checked(
                http.post("/v1/claimed-devices", json={"ownerToken": token}, headers=owner), 201
            )
    return identities


def _modem_identity() -> Identity:
    modem = new_modem()
    return Identity(modem.uuid, None, modem.identity.private_key_pem)


def _record(identity: Identity) -> dict[str, Any]:
    record: dict[str, Any] = {"deviceId": identity.device_id, "tags": [TAG]}
    if identity.jwt_key is not None:
        record["publicKey"] = device_side.key_pair(identity.jwt_key).public_key_pem
    else:
        record["deviceSecret"] = identity.device_secret
    return record


def write_identities(path: Path, identities: list[Identity]) -> None:
    """``deviceId,deviceSecret`` (or, for nRF91 modems, ``deviceId,jwtKey``) for ``zerotouch
    agent --simulate`` (secrets: mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as out:
        writer = csv.writer(out)
        if any(i.jwt_key for i in identities):
            writer.writerow(["deviceId", "jwtKey"])
            writer.writerows((i.device_id, i.jwt_key) for i in identities)
        else:
            writer.writerow(["deviceId", "deviceSecret"])
            writer.writerows((i.device_id, i.device_secret) for i in identities)


def status_counts(base: str, keys: Keys) -> dict[str, int]:
    owner = {"Authorization": f"Bearer {keys.owner}"}
    counts = {}
    with httpx.Client(base_url=base, timeout=30) as http:
        for status in sorted(s.value for s in CLAIMED_STATUSES):
            page = checked(
                http.get(
                    "/v1/claimed-devices", params={"status": status, "pageLimit": 1}, headers=owner
                ),
                200,
            )
            counts[status] = int(page["total"])
    return counts
