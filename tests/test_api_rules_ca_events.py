"""Provisioning rules, the certificate authority, the audit trail, health and metrics."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.conftest import Api
from tests.helpers import self_signed

PSK_RULE: dict[str, Any] = {
    "name": "fleet-psk",
    "description": "PSK then finished",
    "tags": ["fleet"],
    "commands": [
        {
            "description": "psk",
            "request": {"preSharedKey": {"secTag": 9, "identity": "i", "secret": "C0FFEE"}},
        },
        {"request": {"finished": {}}},
    ],
}


def test_rule_lifecycle(api: Api) -> None:
    res = api.call("POST", "/v1/provisioning-rules", json=PSK_RULE)
    assert res.status_code == 201, res.text
    rule = res.json()
    assert rule["active"] is False and "C0FFEE" not in res.text
    assert rule["commands"][0]["request"]["preSharedKey"]["secret"] == "***"
    assert api.call("GET", f"/v1/provisioning-rules/{rule['id']}").json() == rule
    assert [r["id"] for r in api.call("GET", "/v1/provisioning-rules").json()["items"]] == [
        rule["id"]
    ]
    dup = api.call("POST", "/v1/provisioning-rules", json=PSK_RULE)
    assert dup.status_code == 409 and dup.json()["code"] == "already_exists"
    patched = api.call("PATCH", f"/v1/provisioning-rules/{rule['id']}", json={"tags": ["f2"]})
    assert patched.status_code == 200 and patched.json()["tags"] == ["f2"]
    active = api.call("POST", f"/v1/provisioning-rules/{rule['id']}/activate").json()
    assert active["active"] is True
    frozen = api.call("PATCH", f"/v1/provisioning-rules/{rule['id']}", json={"tags": ["x"]})
    assert frozen.status_code == 409 and frozen.json()["code"] == "rule_active"
    again = api.call("POST", f"/v1/provisioning-rules/{rule['id']}/deactivate").json()
    assert again["active"] is False
    assert api.call("DELETE", f"/v1/provisioning-rules/{rule['id']}").status_code == 204
    assert api.call("GET", f"/v1/provisioning-rules/{rule['id']}").status_code == 404
    assert api.call("POST", "/v1/provisioning-rules/nope/activate").status_code == 404


def test_rules_are_account_scoped(api: Api) -> None:
    rule = api.call("POST", "/v1/provisioning-rules", json=PSK_RULE).json()
    assert api.call("GET", f"/v1/provisioning-rules/{rule['id']}", "rival").status_code == 404
    assert api.call("GET", "/v1/provisioning-rules", "rival").json()["items"] == []


def test_rule_validation_names_fields(api: Api) -> None:
    bad = {"name": "", "tags": [], "commands": [{"request": {"preSharedKey": {"secTag": 1}}}]}
    res = api.call("POST", "/v1/provisioning-rules", json=bad)
    assert res.status_code == 422
    fields = {e["field"] for e in res.json()["errors"]}
    assert {
        "name",
        "tags",
        "commands[0].request.preSharedKey.identity",
        "commands[0].request.preSharedKey.secret",
    } <= fields
    too_many = {**PSK_RULE, "commands": [{"request": {"finished": {}}}] * 21}
    assert api.call("POST", "/v1/provisioning-rules", json=too_many).status_code == 422
    missing = api.call("POST", "/v1/provisioning-rules", json={"name": "x"})
    assert missing.status_code == 422


def test_active_rules_apply_at_claim_with_secrets(api: Api) -> None:
    api.call("POST", "/v1/provisioning-rules", json={**PSK_RULE, "active": True})
    api.call(
        "POST",
        "/v1/provisioning-rules",
        json={
            "name": "other",
            "tags": ["nope"],
            "active": True,
            "commands": [{"request": {"config": {"a": "b"}}}],
        },
    )
    api.call(
        "POST",
        "/v1/provisioning-rules",
        json={
            "name": "inactive",
            "tags": ["fleet"],
            "commands": [{"request": {"config": {"a": "b"}}}],
        },
    )
    device = api.claimed("d1", tags=["fleet"])
    assert device["commands"]["total"] == 2
    plan = api.call("GET", "/v1/claimed-devices/d1/provisioning").json()["items"]
    assert [c["description"] for c in plan] == ["psk", ""]
    assert plan[0]["request"]["preSharedKey"]["secret"] == "***"
    untagged = api.claimed("d2")
    assert untagged["commands"]["total"] == 0


def test_rules_past_the_limit_refuse_the_claim_whole(api: Api) -> None:
    many = [{"request": {"config": {"n": str(i)}}} for i in range(15)]
    for name in ("r1", "r2"):
        api.call(
            "POST",
            "/v1/provisioning-rules",
            json={"name": name, "tags": ["big"], "active": True, "commands": many},
        )
    token = api.import_devices({"deviceId": "d1", "tags": ["big"]})["devices"][0]["ownerToken"]
    res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token})
    assert res.status_code == 409 and res.json()["code"] == "command_limit_reached"
    assert api.call("GET", "/v1/claimed-devices/d1").status_code == 404


def test_ca_from_a_name_and_a_certificate_field_at_once_is_refused(api: Api) -> None:
    for body in ({"commonName": "CA", "certificate": None}, {"commonName": None}):
        res = api.call("POST", "/v1/certificate-authority", json=body)
        assert res.status_code == 422, res.text
        assert [e["field"] for e in res.json()["errors"]] == ["commonName"]
    assert api.call("GET", "/v1/certificate-authority").status_code == 404


def test_generate_ca(api: Api) -> None:
    assert api.call("GET", "/v1/certificate-authority").status_code == 404
    res = api.call("POST", "/v1/certificate-authority", "editor", json={"commonName": "Acme CA"})
    assert res.status_code == 201
    body = res.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert cert.fingerprint(hashes.SHA256()).hex() == body["fingerprint"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert "PRIVATE" not in res.text
    got = api.call("GET", "/v1/certificate-authority", "viewer").json()
    assert got["fingerprint"] == body["fingerprint"]
    dup = api.call("POST", "/v1/certificate-authority", json={"commonName": "again"})
    assert dup.status_code == 409
    assert api.call("GET", "/v1/certificate-authority", "rival").status_code == 404


def test_import_ca(api: Api) -> None:
    cert, key = self_signed("Imported", ca=True)
    leaf, leaf_key = self_signed("leaf", ca=False)
    other_cert, _ = self_signed("other", ca=True)
    cases = [
        ({"certificate": leaf, "privateKey": leaf_key}, "certificate"),
        ({"certificate": other_cert, "privateKey": key}, "privateKey"),
        ({"certificate": "nope", "privateKey": key}, "certificate"),
        ({"certificate": cert, "privateKey": "nope"}, "privateKey"),
        ({"certificate": cert}, "privateKey"),
        ({"commonName": ""}, "commonName"),
        ({"commonName": "x", "certificate": cert}, "commonName"),
        ({"colour": "x"}, "colour"),
    ]
    for body, field in cases:
        res = api.call("POST", "/v1/certificate-authority", json=body)
        assert res.status_code == 422, (field, res.text)
        assert res.json()["errors"][0]["field"] == field
    res = api.call(
        "POST", "/v1/certificate-authority", json={"certificate": cert, "privateKey": key}
    )
    assert res.status_code == 201
    assert res.json()["certificate"].strip() == cert.strip()
    assert "PRIVATE" not in res.text


def test_events_trail(api: Api) -> None:
    api.claimed("d1")
    api.claimed("d2")
    api.call("POST", "/v1/claimed-devices/d1/block")
    d1 = api.call("GET", "/v1/events?deviceId=d1").json()
    assert [e["type"] for e in d1["items"]] == ["device.claimed", "device.blocked"]
    event = d1["items"][0]
    assert set(event) == {"id", "at", "actor", "type", "deviceId", "data"}
    assert event["actor"].startswith("key:") and event["at"].endswith("Z")
    after = api.call("GET", f"/v1/events?after={event['id']}&deviceId=d1").json()["items"]
    assert [e["type"] for e in after] == ["device.blocked"]
    page = api.call("GET", "/v1/events?pageLimit=1").json()
    assert len(page["items"]) == 1 and page["pageNextToken"]
    nxt = api.call("GET", f"/v1/events?pageLimit=1&pageNextToken={page['pageNextToken']}").json()
    assert nxt["items"][0]["id"] > page["items"][0]["id"]
    assert api.call("GET", "/v1/events", "rival").json()["items"][0]["type"] == "api_key.created"
    # The manufacturer key is in the same account here, so its imports show too.
    imports = [
        e for e in api.call("GET", "/v1/events").json()["items"] if e["type"] == "devices.imported"
    ]
    assert [e["data"] for e in imports] == [
        {"count": 1, "deviceIds": ["d1"]},
        {"count": 1, "deviceIds": ["d2"]},
    ]


def test_health_metrics_docs_need_no_key(api: Api) -> None:
    api.claimed("d1")
    api.call("POST", "/v1/claimed-devices/d1/provisioning", json={"request": {"finished": {}}})
    assert api.client.get("/healthz").json() == {"status": "ok"}
    metrics = api.client.get("/metrics").text
    assert 'zerotouch_claims_total{outcome="claimed"} 1.0' in metrics
    assert 'zerotouch_commands{status="PENDING"} 1.0' in metrics
    assert (
        'zerotouch_http_requests_total{method="POST",route="/v1/claimed-devices",status="201"}'
        in metrics
    )
    spec = api.client.get("/openapi.json").json()
    assert "/v1/claimed-devices/{device_id}/provisioning/{command_id}/reset" in spec["paths"]
    assert api.client.get("/docs").status_code == 200


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    res = api.client.get("/v2/nothing")
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    res = api.call("PUT", "/v1/claimed-devices")
    assert res.status_code == 405 and res.headers["content-type"] == "application/problem+json"
