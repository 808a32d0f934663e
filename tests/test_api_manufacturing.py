"""POST /v1/manufacturing/devices: JSON and CSV, per-row validation, atomic mode, labels."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import ec_public_pem
from zerotouch.protocols import tr005
from zerotouch.store import factory as factory_store

LORA = {
    "devEui": "0011223344556677",
    "joinEui": "70b3d57ed0000000",
    "profileId": "AABB1122",
    "appKey": "00112233445566778899AABBCCDDEEFF",
}


def test_json_import_returns_tokens_and_labels(api: Api) -> None:
    body = api.import_devices(
        {"deviceId": "lora-1", **LORA, "tags": ["a", "b"]},
        {
            "deviceId": "car-1",
            "vin": "5YJRE11B781000001",
            "iccid": "8944501234567890123",
            "imei": "356938035643809",
            "serial": "SN1",
            "mac": "A1B2C3D4E5F6",
            "publicKey": ec_public_pem(),
            "deviceSecret": "ab" * 16,
        },
    )
    assert body["imported"] == 2 and body["rejected"] == []
    lora, car = body["devices"]
    assert len(lora["ownerToken"]) == 32 and lora["ownerToken"] == lora["ownerToken"].upper()
    int(lora["ownerToken"], 16)
    decoded = tr005.decode(lora["qr"])
    assert isinstance(decoded, tr005.Tr005Payload)
    assert decoded.join_eui == "70B3D57ED0000000" and decoded.owner_token == lora["ownerToken"]
    text = f"ZT:D0:{car['ownerToken']}:car-1"
    assert car["qr"] == f"{text}:C{tr005.checksum(text)}"
    assert lora["ownerToken"] != car["ownerToken"]


def test_invalid_rows_are_reported_valid_rows_imported(api: Api) -> None:
    body = api.import_devices(
        {"deviceId": "ok-1"},
        {"deviceId": "bad-1", "devEui": "123"},
        {
            "deviceId": "bad-2",
            "publicKey": "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----",
        },
        {"deviceId": "ok-1"},
        {"serial": "no-id"},
        {"devEui": "0011223344556677"},  # A LoRaWAN device without a deviceId: its DevEUI.
    )
    assert body["imported"] == 2
    assert body["devices"][1]["deviceId"] == "0011223344556677"
    rejected = {r["row"]: r for r in body["rejected"]}
    assert set(rejected) == {2, 3, 4, 5}
    assert rejected[2]["code"] == "validation_failed" and "devEui" in rejected[2]["message"]
    assert "publicKey" in rejected[3]["message"]
    assert rejected[4]["code"] == "already_exists"
    assert "deviceId" in rejected[5]["message"] and rejected[5]["deviceId"] is None


def _claim(api: Api, token: str) -> dict[str, Any]:
    res = api.call("POST", "/v1/claimed-devices", "owner", json={"ownerToken": token})
    assert res.status_code == 201, res.text
    body: dict[str, Any] = res.json()
    return body


def test_a_re_import_is_idempotent(api: Api) -> None:
    """The same record again: unchanged (with its label as printed); a changed record of an
    unclaimed device: refused unless ?update=true; a claimed device is never touched; a device
    another account imported is not this account's to change."""
    first = api.import_devices({"deviceId": "dup", "serial": "s1"}, {"deviceId": "owned"})
    token = first["devices"][0]["ownerToken"]
    _claim(api, first["devices"][1]["ownerToken"])
    again = api.import_devices({"deviceId": "dup", "serial": "s1"}, {"deviceId": "new"})
    assert (again["imported"], again["unchanged"], again["rejected"]) == (1, 1, [])
    assert {d["deviceId"]: d["ownerToken"] for d in again["devices"]}["dup"] == token
    changed = api.import_devices({"deviceId": "dup", "serial": "s2"}, {"deviceId": "owned"})
    assert changed["unchanged"] == 1  # The claimed one, sent unchanged: no label shown.
    assert [d["deviceId"] for d in changed["devices"]] == []
    assert changed["rejected"] == [
        {
            "row": 1,
            "deviceId": "dup",
            "code": "record_changed",
            "message": "devices[0].deviceId: differs from the record it was imported with; "
            "update=true changes it",
        }
    ]
    res = api.call(
        "POST",
        "/v1/manufacturing/devices?update=true",
        "manufacturer",
        json={
            "devices": [{"deviceId": "dup", "serial": "s2"}, {"deviceId": "owned", "serial": "x"}]
        },
    )
    body = res.json()
    assert (body["updated"], body["imported"]) == (1, 0)
    assert [(r["deviceId"], r["code"]) for r in body["rejected"]] == [("owned", "already_claimed")]
    listed = api.call("GET", "/v1/manufacturing/devices", "manufacturer").json()["items"]
    assert {d["deviceId"]: d["identifiers"]["serial"] for d in listed}["dup"] == "s2"
    # The owner token did not change with the update.
    assert _claim(api, token)["deviceId"] == "dup"
    rival = api.import_devices({"deviceId": "new"}, role="rival")
    assert rival["rejected"][0]["code"] == "already_exists"


def test_atomic_rejects_everything(api: Api) -> None:
    res = api.call(
        "POST",
        "/v1/manufacturing/devices?atomic=true",
        "manufacturer",
        json={"devices": [{"deviceId": "a1"}, {"deviceId": "a2", "imei": "1"}]},
    )
    assert res.status_code == 422
    problem = res.json()
    assert res.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "validation_failed"
    assert problem["errors"] == [{"field": "devices[1].imei", "message": "must be 15 digits"}]
    ok = api.call(
        "POST",
        "/v1/manufacturing/devices?atomic=true",
        "manufacturer",
        json={"devices": [{"deviceId": "a1"}]},
    )
    assert ok.status_code == 200 and ok.json()["imported"] == 1


def test_csv_in_and_out(api: Api) -> None:
    text = (
        "deviceId,devEui,joinEui,profileId,tags\n"
        "c1,0011223344556677,70B3D57ED0000000,AABB1122,x;y\n"
        "c2,,,,\n"
        "c3,zz,,,\n"
    )
    res = api.call(
        "POST",
        "/v1/manufacturing/devices",
        "manufacturer",
        content=text,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    assert res.headers["x-imported-count"] == "2" and res.headers["x-rejected-count"] == "1"
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert [r["deviceId"] for r in rows] == ["c1", "c2"]
    assert rows[0]["qr"].startswith("LW:D0:70B3D57ED0000000:0011223344556677:AABB1122:O")
    token = rows[0]["ownerToken"]
    claimed = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).json()
    assert claimed["tags"] == ["x", "y"]


def test_csv_rows_count_from_one_after_header(api: Api) -> None:
    res = api.call(
        "POST",
        "/v1/manufacturing/devices",
        "manufacturer",
        content="deviceId,imei\nok,356938035643809\nbad,12\n",
        headers={"Content-Type": "text/csv"},
    )
    assert res.json()["rejected"][0]["row"] == 2


def test_bad_bodies(api: Api) -> None:
    cases = [
        ({"content": "{", "headers": {"Content-Type": "application/json"}}, "body"),
        ({"json": {"devices": "x"}}, "devices"),
        ({"content": "imei\n1\n", "headers": {"Content-Type": "text/csv"}}, "header"),
        ({"content": "deviceId,color\n", "headers": {"Content-Type": "text/csv"}}, "header"),
        ({"content": "x", "headers": {"Content-Type": "application/xml"}}, "Content-Type"),
    ]
    for kwargs, field in cases:
        res = api.call("POST", "/v1/manufacturing/devices", "manufacturer", **kwargs)
        assert res.status_code == 422, res.text
        assert res.json()["errors"][0]["field"] == field


def test_label_reprint(api: Api) -> None:
    imported = api.import_devices({"deviceId": "p1", **LORA})["devices"][0]
    label = api.call("GET", "/v1/manufacturing/devices/p1/label", "manufacturer").json()
    assert label == {**imported, "serial": None}
    api.call("POST", "/v1/claimed-devices", json={"ownerToken": imported["ownerToken"]})
    res = api.call("GET", "/v1/manufacturing/devices/p1/label", "manufacturer")
    assert res.status_code == 404 and res.json()["code"] == "device_not_found"
    other = api.call("GET", "/v1/manufacturing/devices/p1/label", "rival")
    assert other.status_code == 404


def test_device_imported_concurrently_is_reported_not_lost(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import takes a deviceId between our check and our insert: the insert fails on
    the unique index, the batch is retried, and only that row is rejected."""
    api.import_devices({"deviceId": "race"}, role="rival")
    real = factory_store.import_states
    calls: list[int] = []

    def blind_first_time(conn: Any, ids: list[str]) -> dict[str, Any]:
        calls.append(1)
        return {} if len(calls) == 1 else real(conn, ids)

    monkeypatch.setattr(factory_store, "import_states", blind_first_time)
    body = api.import_devices({"deviceId": "race"}, {"deviceId": "fresh"})
    assert len(calls) == 2
    assert body["imported"] == 1
    assert [d["deviceId"] for d in body["devices"]] == ["fresh"]
    assert body["rejected"][0]["code"] == "already_exists"


def test_a_retried_batch_that_also_holds_unchanged_rows(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry after a concurrent import writes from the batch's own rows, not from what the
    failed attempt had left of them."""
    api.import_devices({"deviceId": "kept"})
    api.import_devices({"deviceId": "race"}, role="rival")
    real = factory_store.import_states
    calls: list[int] = []

    def blind_to_race_first_time(conn: Any, ids: list[str]) -> dict[str, Any]:
        calls.append(1)
        found = real(conn, ids)
        return {k: v for k, v in found.items() if k != "race"} if len(calls) == 1 else found

    monkeypatch.setattr(factory_store, "import_states", blind_to_race_first_time)
    body = api.import_devices({"deviceId": "kept"}, {"deviceId": "race"}, {"deviceId": "new"})
    assert len(calls) == 2
    assert (body["imported"], body["unchanged"]) == (1, 1)
    assert [r["code"] for r in body["rejected"]] == ["already_exists"]


def test_body_checks_come_after_the_key_and_stop_at_the_limit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerotouch.settings import Settings

    app: Any = api.client.app
    app.state.body_limits = Settings(max_import_bytes=1024)
    big = {"devices": [{"deviceId": f"d{i}"} for i in range(100)]}
    assert api.client.post("/v1/manufacturing/devices", json=big).status_code == 401
    assert api.call("POST", "/v1/manufacturing/devices", "viewer", json=big).status_code == 403
    res = api.call("POST", "/v1/manufacturing/devices", "manufacturer", json=big)
    assert res.status_code == 413
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["errors"] == [{"field": "body", "message": "must be at most 1024 bytes"}]
    small = {"devices": [{"deviceId": "d1"}]}
    assert (
        api.call("POST", "/v1/manufacturing/devices", "manufacturer", json=small).json()["imported"]
        == 1
    )
