"""Claiming and the owner's hold on devices: every call and each error code of API.md."""

from __future__ import annotations

from tests.conftest import Api
from tests.helpers import device_reports
from zerotouch.services.runtime import Runtime

LORA = {"devEui": "0011223344556677", "joinEui": "70B3D57ED0000000", "profileId": "AABB1122"}


def _token(api: Api, device_id: str = "dev-1", **fields: object) -> str:
    token: str = api.import_devices({"deviceId": device_id, **fields})["devices"][0]["ownerToken"]
    return token


def test_claim_answers_device(api: Api) -> None:
    token = _token(api, serial="S-1", imei="356938035643809", tags=["factory"])
    res = api.call(
        "POST",
        "/v1/claimed-devices",
        json={"ownerToken": token.lower(), "tags": ["fleet", "factory"]},
    )
    assert res.status_code == 201
    device = res.json()
    assert device["deviceId"] == "dev-1" and device["status"] == "READY"
    assert device["tags"] == ["factory", "fleet"]
    assert device["claimedAt"].endswith("Z")
    assert device["identifiers"] == {
        "devEui": None,
        "joinEui": None,
        "vin": None,
        "imei": "356938035643809",
        "serial": "S-1",
        "mac": None,
    }
    assert device["commands"] == {"total": 0, "pending": 0, "succeeded": 0, "failed": 0}


def test_claim_by_qr(api: Api) -> None:
    qr = api.import_devices({"deviceId": "lora", **LORA})["devices"][0]["qr"]
    res = api.call("POST", "/v1/claimed-devices", json={"qr": qr})
    assert res.status_code == 201 and res.json()["deviceId"] == "lora"
    zt_qr = api.import_devices({"deviceId": "plain"})["devices"][0]["qr"]
    assert api.call("POST", "/v1/claimed-devices", json={"qr": zt_qr}).status_code == 201


def test_qr_must_match_its_device(api: Api) -> None:
    api.import_devices({"deviceId": "lora", **LORA})
    other = api.import_devices({"deviceId": "other"})["devices"][0]["ownerToken"]
    forged = f"LW:D0:70B3D57ED0000000:0011223344556677:AABB1122:O{other}"
    res = api.call("POST", "/v1/claimed-devices", json={"qr": forged})
    assert res.status_code == 403 and res.json()["code"] == "invalid_owner_token"


def test_claim_errors(api: Api) -> None:
    token = _token(api)
    unknown = api.call("POST", "/v1/claimed-devices", json={"ownerToken": "0" * 32})
    assert unknown.status_code == 403 and unknown.json()["code"] == "invalid_owner_token"
    malformed = api.call("POST", "/v1/claimed-devices", json={"ownerToken": "xyz"})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "ownerToken"
    both = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token, "qr": "x"})
    assert both.status_code == 422
    bad_qr = api.call("POST", "/v1/claimed-devices", json={"qr": "LW:D0:12"})
    assert bad_qr.status_code == 422 and bad_qr.json()["errors"][0]["field"] == "qr"
    bad_tags = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token, "tags": [""]})
    assert bad_tags.status_code == 422 and bad_tags.json()["errors"][0]["field"] == "tags[0]"
    extra = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token, "owner": 1})
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "owner"
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201
    again = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token})
    assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    rival = api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": token})
    assert rival.status_code == 409 and rival.json()["code"] == "already_claimed"


def test_get_and_list(api: Api) -> None:
    api.claimed("d1", tags=["t1"])
    api.claimed("d2")
    api.claimed("d3", role="rival")
    assert api.call("GET", "/v1/claimed-devices/d1").json()["deviceId"] == "d1"
    for missing in ("d3", "nope"):
        res = api.call("GET", f"/v1/claimed-devices/{missing}")
        assert res.status_code == 404 and res.json()["code"] == "device_not_found"
    listed = api.call("GET", "/v1/claimed-devices").json()
    assert [d["deviceId"] for d in listed["items"]] == ["d1", "d2"]
    assert listed["total"] == 2 and listed["pageNextToken"] is None
    by_tag = api.call("GET", "/v1/claimed-devices?tag=t1").json()
    assert [d["deviceId"] for d in by_tag["items"]] == ["d1"]
    api.call("POST", "/v1/claimed-devices/d2/block")
    blocked = api.call("GET", "/v1/claimed-devices?status=BLOCKED").json()
    assert [d["deviceId"] for d in blocked["items"]] == ["d2"]
    bad = api.call("GET", "/v1/claimed-devices?status=LOST")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"


def test_pagination(api: Api) -> None:
    for i in range(5):
        api.claimed(f"p{i}")
    seen: list[str] = []
    token = None
    while True:
        query = "pageLimit=2" + (f"&pageNextToken={token}" if token else "")
        page = api.call("GET", f"/v1/claimed-devices?{query}").json()
        assert page["total"] == 5 and len(page["items"]) <= 2
        seen += [d["deviceId"] for d in page["items"]]
        token = page["pageNextToken"]
        if token is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    for query in ("pageLimit=0", "pageLimit=1001", "pageNextToken=%%%"):
        res = api.call("GET", f"/v1/claimed-devices?{query}")
        assert res.status_code == 422, query


def test_unclaim_frees_device_for_the_same_token(api: Api) -> None:
    token = _token(api, tags=["factory"])
    api.call("POST", "/v1/claimed-devices", json={"ownerToken": token, "tags": ["mine"]})
    api.call("POST", "/v1/claimed-devices/dev-1/provisioning", json={"request": {"finished": {}}})
    assert api.call("DELETE", "/v1/claimed-devices/dev-1").status_code == 204
    assert api.call("GET", "/v1/claimed-devices/dev-1").status_code == 404
    assert api.call("DELETE", "/v1/claimed-devices/dev-1").status_code == 404
    res = api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": token})
    assert res.status_code == 201
    assert res.json()["tags"] == ["factory"] and res.json()["commands"]["total"] == 0


def test_block_and_unblock_restore_status(api: Api, rt: Runtime) -> None:
    api.claimed("d1")
    device_reports(rt, "d1", {}, "AWAITING")
    blocked = api.call("POST", "/v1/claimed-devices/d1/block")
    assert blocked.status_code == 200 and blocked.json()["status"] == "BLOCKED"
    twice = api.call("POST", "/v1/claimed-devices/d1/block")
    assert twice.status_code == 409 and twice.json()["code"] == "illegal_transition"
    reprov = api.call("POST", "/v1/claimed-devices/d1/reprovision")
    assert reprov.status_code == 409
    assert api.call("POST", "/v1/claimed-devices/d1/unblock").json()["status"] == "AWAITING"
    assert api.call("POST", "/v1/claimed-devices/d1/unblock").status_code == 409
    assert api.call("POST", "/v1/claimed-devices/nope/block").status_code == 404


def test_reprovision_rebuilds_plan_from_active_rules(api: Api, rt: Runtime) -> None:
    api.claimed("d1", tags=["fleet"])
    api.call("POST", "/v1/claimed-devices/d1/provisioning", json={"request": {"finished": {}}})
    device_reports(rt, "d1", {}, "PROVISIONED")
    rule = {
        "name": "r",
        "tags": ["fleet"],
        "active": True,
        "commands": [{"request": {"config": {"a": "1"}}}, {"request": {"finished": {}}}],
    }
    assert api.call("POST", "/v1/provisioning-rules", json=rule).status_code == 201
    res = api.call("POST", "/v1/claimed-devices/d1/reprovision")
    assert res.status_code == 200
    assert res.json()["status"] == "READY" and res.json()["commands"]["total"] == 2
    plan = api.call("GET", "/v1/claimed-devices/d1/provisioning").json()["items"]
    assert [list(c["request"]) for c in plan] == [["config"], ["finished"]]
    events = api.call("GET", "/v1/events?deviceId=d1").json()["items"]
    types = [e["type"] for e in events]
    assert "device.reprovisioned" in types and types[-1] == "plan.applied"
    reprovisioned = next(e for e in events if e["type"] == "device.reprovisioned")
    assert reprovisioned["data"] == {"from": "PROVISIONED", "to": "READY", "droppedCommands": 1}
