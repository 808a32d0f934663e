"""No response and no log line ever carries a secret field's value."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Api
from tests.helpers import encrypted_key

APP_KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
ICCID = "8944501234567890123"
DEVICE_SECRET = "F00DBABE" * 6
PSK = "5EC12E7C0FFEE0DDBA11"
KEY_PASSWORD = "correct-horse-battery"


def test_secrets_never_leave(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    def call(
        method: str, path: str, role: str = "owner", *, expect: int = 200, **kw: object
    ) -> dict[str, object]:
        res = api.call(method, path, role, **kw)
        # Each step must have done what it is there for, or the checks below prove nothing.
        assert res.status_code == expect, (method, path, res.status_code, res.text)
        bodies.append(res.text)
        bodies.append(str(res.headers))
        return res.json() if res.content else {}

    imported = call(
        "POST",
        "/v1/manufacturing/devices",
        "manufacturer",
        json={
            "devices": [
                {
                    "deviceId": "s1",
                    "appKey": APP_KEY,
                    "iccid": ICCID,
                    "deviceSecret": DEVICE_SECRET,
                    "devEui": "0011223344556677",
                    "joinEui": "70B3D57ED0000000",
                    "profileId": "AABB1122",
                },
                {
                    "deviceId": "bad",
                    "appKey": APP_KEY,
                    "iccid": "12",
                    "deviceSecret": DEVICE_SECRET,
                },
            ]
        },
    )
    token = imported["devices"][0]["ownerToken"]  # type: ignore[index]
    assert [r["deviceId"] for r in imported["rejected"]] == ["bad"]  # type: ignore[attr-defined]
    call(
        "POST",
        "/v1/manufacturing/devices?atomic=true",
        "manufacturer",
        expect=422,
        json={
            "devices": [
                {"deviceId": "bad2", "appKey": APP_KEY, "iccid": ICCID + "X", "deviceSecret": "zz"}
            ]
        },
    )
    call("POST", "/v1/claimed-devices", expect=201, json={"ownerToken": token})
    call(
        "POST",
        "/v1/claimed-devices/s1/provisioning",
        expect=201,
        json={"request": {"preSharedKey": {"secTag": 1, "identity": "i", "secret": PSK}}},
    )
    call(
        "POST",
        "/v1/claimed-devices/s1/provisioning",
        expect=201,
        json={
            "request": {
                "clientPrivateKey": {
                    "secTag": 2,
                    "content": encrypted_key(KEY_PASSWORD),
                    "password": KEY_PASSWORD,
                }
            }
        },
    )
    call(  # A wrong password: refused, and the refusal names neither it nor the key.
        "POST",
        "/v1/claimed-devices/s1/provisioning",
        expect=422,
        json={
            "request": {
                "clientPrivateKey": {
                    "secTag": 2,
                    "content": encrypted_key(KEY_PASSWORD),
                    "password": KEY_PASSWORD + "!",
                }
            }
        },
    )
    call(
        "POST",
        "/v1/provisioning-rules",
        expect=201,
        json={
            "name": "r",
            "tags": ["t"],
            "commands": [
                {"request": {"preSharedKey": {"secTag": 1, "identity": "i", "secret": PSK}}}
            ],
        },
    )
    call("POST", "/v1/certificate-authority", expect=201, json={"commonName": "CA"})
    call("GET", "/v1/claimed-devices/s1")
    call("GET", "/v1/claimed-devices")
    call("GET", "/v1/claimed-devices/s1/provisioning")
    call("GET", "/v1/provisioning-rules")
    call("GET", "/v1/certificate-authority")
    call("GET", "/v1/events")
    call("GET", "/v1/events?deviceId=s1")
    metrics = api.client.get("/metrics")
    assert metrics.status_code == 200
    bodies.append(metrics.text)

    seen = "\n".join(bodies) + "\n" + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (APP_KEY, ICCID, DEVICE_SECRET, PSK, KEY_PASSWORD, "PRIVATE KEY"):
        assert secret not in seen
        assert secret.lower() not in seen.lower()
    # The owner token appears in the import answer (as itself and in the QR payload), nowhere after.
    assert bodies[0].count(token) == 2
    assert seen.count(token) == 2


def test_secrets_are_sealed_at_rest(api: Api) -> None:
    from zerotouch.store.schema import metadata

    imported = api.import_devices(
        {"deviceId": "s1", "appKey": APP_KEY, "iccid": ICCID, "deviceSecret": DEVICE_SECRET}
    )
    token = imported["devices"][0]["ownerToken"]
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201
    added = api.call(
        "POST",
        "/v1/claimed-devices/s1/provisioning",
        json={"request": {"preSharedKey": {"secTag": 1, "identity": "i", "secret": PSK}}},
    )
    assert added.status_code == 201, added.text
    made = api.call("POST", "/v1/certificate-authority", json={"commonName": "CA"})
    assert made.status_code == 201, made.text
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    with rt.db.read() as conn:
        dump = "\n".join(
            repr(row) for table in metadata.sorted_tables for row in conn.execute(table.select())
        )
    for secret in (APP_KEY, ICCID, DEVICE_SECRET, PSK, token, api.keys["owner"], "PRIVATE KEY"):
        assert secret not in dump
