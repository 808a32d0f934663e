"""The command plan: all eight request types, limits, order, delete, reset and skip."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import device_reports, encrypted_key, self_signed
from zerotouch.services.runtime import Runtime

CERT, _ = self_signed("server")
VALID_REQUESTS: list[dict[str, Any]] = [
    {"clientPrivateKeyGeneration": {"secTag": 16842753}},
    {
        "certificateSigningRequest": {
            "secTag": 1,
            "attributes": "C=NO,O=Acme,CN=dev-1",
            "keyUsage": "101010000",
        }
    },
    {
        "certificateSigningRequest": {
            "secTag": 1,
            "attributes": "CN=dev-1",
            "keyUsage": "100000000",
            "sign": True,
        }
    },
    {"serverCertificate": {"secTag": 2, "content": CERT}},
    {"clientCertificate": {"secTag": 3, "content": CERT}},
    {"clientPrivateKey": {"secTag": 4, "content": encrypted_key("pw"), "password": "pw"}},
    {"preSharedKey": {"secTag": 5, "identity": "dev-1", "secret": "00112233aabbccdd"}},
    {"config": {"mqtt.host": "broker.local", "interval": "60"}},
    {"finished": {}},
]

INVALID_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"reboot": {}}, "request.reboot"),
    ({}, "request"),
    ({"finished": {}, "config": {"a": "b"}}, "request"),
    ({"finished": []}, "request.finished"),
    ({"finished": {"x": 1}}, "request.finished.x"),
    ({"clientPrivateKeyGeneration": {}}, "request.clientPrivateKeyGeneration.secTag"),
    ({"clientPrivateKeyGeneration": {"secTag": -1}}, "request.clientPrivateKeyGeneration.secTag"),
    (
        {"clientPrivateKeyGeneration": {"secTag": 2147483648}},
        "request.clientPrivateKeyGeneration.secTag",
    ),
    ({"clientPrivateKeyGeneration": {"secTag": "1"}}, "request.clientPrivateKeyGeneration.secTag"),
    (
        {"certificateSigningRequest": {"secTag": 1, "attributes": "not a dn", "keyUsage": "1"}},
        "request.certificateSigningRequest.attributes",
    ),
    (
        {"certificateSigningRequest": {"secTag": 1, "attributes": "CN=x", "keyUsage": "12"}},
        "request.certificateSigningRequest.keyUsage",
    ),
    (
        {
            "certificateSigningRequest": {
                "secTag": 1,
                "attributes": "CN=x",
                "keyUsage": "100000000",
                "sign": "yes",
            }
        },
        "request.certificateSigningRequest.sign",
    ),
    (
        {
            "serverCertificate": {
                "secTag": 2,
                "content": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            }
        },
        "request.serverCertificate.content",
    ),
    ({"clientCertificate": {"secTag": 2, "content": "hello"}}, "request.clientCertificate.content"),
    (
        {"clientPrivateKey": {"secTag": 4, "content": encrypted_key("pw"), "password": "wrong"}},
        "request.clientPrivateKey.content",
    ),
    (
        {"clientPrivateKey": {"secTag": 4, "content": self_signed()[1], "password": "pw"}},
        "request.clientPrivateKey.content",
    ),
    (
        {"clientPrivateKey": {"secTag": 4, "content": encrypted_key("pw")}},
        "request.clientPrivateKey.password",
    ),
    (
        {"preSharedKey": {"secTag": 5, "identity": "x", "secret": "xyz"}},
        "request.preSharedKey.secret",
    ),
    ({"preSharedKey": {"secTag": 5, "secret": "00"}}, "request.preSharedKey.identity"),
    ({"config": {}}, "request.config"),
    ({"config": {"a": 1}}, "request.config.a"),
]


@pytest.mark.parametrize("request_body", VALID_REQUESTS, ids=lambda r: next(iter(r)))
def test_each_request_type_is_accepted(api: Api, request_body: dict[str, Any]) -> None:
    api.claimed("d1")
    res = api.call(
        "POST",
        "/v1/claimed-devices/d1/provisioning",
        json={"description": "step", "request": request_body},
    )
    assert res.status_code == 201, res.text
    command = res.json()
    assert command["status"] == "PENDING" and command["response"] is None
    assert command["description"] == "step"
    assert set(command) == {
        "id",
        "description",
        "request",
        "status",
        "createdAt",
        "updatedAt",
        "response",
    }
    assert api.call("GET", f"/v1/claimed-devices/d1/provisioning/{command['id']}").json() == command


@pytest.mark.parametrize(
    ("request_body", "field"), INVALID_REQUESTS, ids=[f for _, f in INVALID_REQUESTS]
)
def test_bad_requests_name_the_field(api: Api, request_body: dict[str, Any], field: str) -> None:
    api.claimed("d1")
    res = api.call("POST", "/v1/claimed-devices/d1/provisioning", json={"request": request_body})
    assert res.status_code == 422, res.text
    problem = res.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert api.call("GET", "/v1/claimed-devices/d1").json()["commands"]["total"] == 0


def test_secret_fields_are_write_only(api: Api) -> None:
    api.claimed("d1")
    key = encrypted_key("hunter2")
    for body in (
        {"clientPrivateKey": {"secTag": 4, "content": key, "password": "hunter2"}},
        {"preSharedKey": {"secTag": 5, "identity": "id", "secret": "DEADBEEF"}},
    ):
        res = api.call("POST", "/v1/claimed-devices/d1/provisioning", json={"request": body})
        assert "hunter2" not in res.text and "DEADBEEF" not in res.text
    listed = api.call("GET", "/v1/claimed-devices/d1/provisioning").json()["items"]
    assert listed[0]["request"] == {
        "clientPrivateKey": {"secTag": 4, "content": "***", "password": "***"}
    }
    assert listed[1]["request"] == {
        "preSharedKey": {"secTag": 5, "identity": "id", "secret": "***"}
    }


def test_twenty_commands_at_most(api: Api) -> None:
    api.claimed("d1")
    for i in range(20):
        res = api.call(
            "POST",
            "/v1/claimed-devices/d1/provisioning",
            json={"request": {"config": {"n": str(i)}}},
        )
        assert res.status_code == 201
    res = api.call(
        "POST", "/v1/claimed-devices/d1/provisioning", json={"request": {"finished": {}}}
    )
    assert res.status_code == 409 and res.json()["code"] == "command_limit_reached"
    plan = api.call("GET", "/v1/claimed-devices/d1/provisioning").json()["items"]
    assert [c["request"]["config"]["n"] for c in plan] == [str(i) for i in range(20)]


def test_unknown_device_or_command(api: Api) -> None:
    api.claimed("d1")
    api.claimed("r1", role="rival")
    res = api.call(
        "POST", "/v1/claimed-devices/r1/provisioning", json={"request": {"finished": {}}}
    )
    assert res.status_code == 404
    assert api.call("GET", "/v1/claimed-devices/r1/provisioning").status_code == 404
    res = api.call("GET", "/v1/claimed-devices/d1/provisioning/nope")
    assert res.status_code == 404 and res.json()["code"] == "command_not_found"
    missing_request = api.call("POST", "/v1/claimed-devices/d1/provisioning", json={})
    assert missing_request.status_code == 422
    assert missing_request.json()["errors"][0]["field"] == "request"


def _plan(api: Api, n: int) -> list[str]:
    return [
        api.call(
            "POST",
            "/v1/claimed-devices/d1/provisioning",
            json={"request": {"config": {"n": str(i)}}},
        ).json()["id"]
        for i in range(n)
    ]


def test_delete_only_pending(api: Api, rt: Runtime) -> None:
    api.claimed("d1")
    first, second = _plan(api, 2)
    assert api.call("DELETE", f"/v1/claimed-devices/d1/provisioning/{first}").status_code == 204
    assert api.call("GET", f"/v1/claimed-devices/d1/provisioning/{first}").status_code == 404
    device_reports(rt, "d1", {second: "IN_PROGRESS"}, "PROVISIONING")
    res = api.call("DELETE", f"/v1/claimed-devices/d1/provisioning/{second}")
    assert res.status_code == 409 and res.json()["code"] == "illegal_transition"


def test_reset_failed_command_lifts_error(api: Api, rt: Runtime) -> None:
    api.claimed("d1")
    done, failed, later = _plan(api, 3)
    device_reports(rt, "d1", {done: "SUCCEEDED", failed: "FAILED"}, "ERROR")
    res = api.call("POST", f"/v1/claimed-devices/d1/provisioning/{later}/reset")
    assert res.status_code == 409
    res = api.call("POST", f"/v1/claimed-devices/d1/provisioning/{failed}/reset")
    assert res.status_code == 200 and res.json()["status"] == "PENDING"
    device = api.call("GET", "/v1/claimed-devices/d1").json()
    assert device["status"] == "PROVISIONING"
    assert device["commands"] == {"total": 3, "pending": 2, "succeeded": 1, "failed": 0}
    trail = api.call("GET", "/v1/events?deviceId=d1").json()["items"]
    assert [e["type"] for e in trail[-2:]] == ["command.pending", "device.resumed"]


def test_skip_pending_and_failed(api: Api, rt: Runtime) -> None:
    api.claimed("d1")
    done, failed, later = _plan(api, 3)
    device_reports(rt, "d1", {done: "SUCCEEDED", failed: "FAILED"}, "ERROR")
    assert api.call("POST", f"/v1/claimed-devices/d1/provisioning/{done}/skip").status_code == 409
    res = api.call("POST", f"/v1/claimed-devices/d1/provisioning/{later}/skip")
    assert res.json()["status"] == "SKIPPED"
    assert api.call("GET", "/v1/claimed-devices/d1").json()["status"] == "ERROR"
    res = api.call("POST", f"/v1/claimed-devices/d1/provisioning/{failed}/skip")
    assert res.json()["status"] == "SKIPPED"
    assert api.call("GET", "/v1/claimed-devices/d1").json()["status"] == "PROVISIONING"


def test_reset_while_blocked_restores_to_provisioning(api: Api, rt: Runtime) -> None:
    api.claimed("d1")
    (failed,) = _plan(api, 1)
    device_reports(rt, "d1", {failed: "FAILED"}, "ERROR")
    api.call("POST", "/v1/claimed-devices/d1/block")
    api.call("POST", f"/v1/claimed-devices/d1/provisioning/{failed}/reset")
    assert api.call("POST", "/v1/claimed-devices/d1/unblock").json()["status"] == "PROVISIONING"
