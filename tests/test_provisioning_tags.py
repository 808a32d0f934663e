"""Provisioning tags: declared per account, listed, and applied through rules at claim."""

from __future__ import annotations

from tests.conftest import Api


def test_tags_are_declared_listed_and_kept_per_account(api: Api) -> None:
    made = api.call("POST", "/v1/provisioning/tags", json={"tag": "nrf-cloud-onboarding"})
    assert made.status_code == 201, made.text
    assert made.json()["tag"] == "nrf-cloud-onboarding" and made.json()["description"] == ""
    body = {"tag": "fleet-a", "description": "The first fleet"}
    assert api.call("POST", "/v1/provisioning/tags", json=body).status_code == 201
    again = api.call("POST", "/v1/provisioning/tags", json=body)
    assert again.status_code == 409 and again.json()["code"] == "tag_exists"
    listed = api.call("GET", "/v1/provisioning/tags", "viewer").json()
    assert [(t["tag"], t["description"]) for t in listed["items"]] == [
        ("nrf-cloud-onboarding", ""),
        ("fleet-a", "The first fleet"),
    ]
    assert listed["total"] == 2
    assert api.call("GET", "/v1/provisioning/tags", "rival").json()["items"] == []
    first = api.call("GET", "/v1/provisioning/tags?pageLimit=1").json()
    rest = api.call(
        "GET", f"/v1/provisioning/tags?pageLimit=1&pageNextToken={first['pageNextToken']}"
    ).json()
    assert [t["tag"] for t in first["items"] + rest["items"]] == ["nrf-cloud-onboarding", "fleet-a"]


def test_a_bad_tag_is_refused_by_name(api: Api) -> None:
    for body, field in (({"tag": ""}, "tag"), ({"tag": "x" * 65}, "tag"), ({}, "tag")):
        res = api.call("POST", "/v1/provisioning/tags", json=body)
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == field, res.text
    res = api.call("POST", "/v1/provisioning/tags", "viewer", json={"tag": "t"})
    assert res.status_code == 403


def test_claiming_with_a_tag_applies_its_active_rules(api: Api) -> None:
    api.call("POST", "/v1/provisioning/tags", json={"tag": "onboard"})
    rule = {
        "name": "Onboarding",
        "tags": ["onboard"],
        "active": True,
        "commands": [{"request": {"clientPrivateKeyGeneration": {"secTag": 7}}}],
    }
    assert api.call("POST", "/v1/provisioning-rules", json=rule).status_code == 201
    token = api.import_devices({"deviceId": "tagged"})["devices"][0]["ownerToken"]
    res = api.call("POST", "/v1/claimed-devices", json={"claimToken": token, "tags": ["onboard"]})
    assert res.status_code == 201 and res.json()["commands"]["pending"] == 1
