"""Device API: authentication, dispatch, responses, failure paths, CBOR, long polling."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
from cryptography import x509
from fastapi.testclient import TestClient

from tests.conftest import Api
from tests.device_fleet import SEC_TAG, make_fleet
from zerotouch.agent.executor import execute
from zerotouch.agent.keystore import Keystore
from zerotouch.crypto import device_side, device_tokens
from zerotouch.domain.commands import KEY_USAGE_BITS
from zerotouch.domain.errors import Unauthenticated
from zerotouch.services import dispatch
from zerotouch.services.device_auth import DeviceCredentials, load_credentials, purge_token_ids
from zerotouch.services.runtime import Runtime
from zerotouch.store.fast import FastStatement
from zerotouch.store.schema import device_token_ids

SECRET = "A1" * 16


class Device:
    """A device talking to the Device API with HS256 tokens (or ES256 with ``key``)."""

    def __init__(self, client: TestClient, device_id: str, secret: str = SECRET) -> None:
        self.client, self.device_id, self.secret = client, device_id, bytes.fromhex(secret)
        self.key: str | None = None

    def token(self, *, now: float | None = None, lifetime: int = 60) -> str:
        return device_tokens.issue(
            self.device_id,
            private_key_pem=self.key,
            secret=None if self.key else self.secret,
            now=time.time() if now is None else now,
            lifetime=lifetime,
        )

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token()}"}

    def fetch(self, token: str | None = None, **params: Any) -> Any:
        return self.client.get("/device/v1/commands", params=params, headers=self.auth(token))

    def respond(self, *responses: dict[str, Any], token: str | None = None) -> Any:
        return self.client.post(
            "/device/v1/responses", json={"responses": list(responses)}, headers=self.auth(token)
        )


def _claimed(api: Api, device_id: str = "dev-1", **fields: Any) -> Device:
    api.claimed(device_id, deviceSecret=SECRET, **fields)
    return Device(api.client, device_id)


def _add(api: Api, device_id: str, request: dict[str, Any]) -> str:
    res = api.call(
        "POST",
        f"/v1/claimed-devices/{device_id}/provisioning",
        json={"description": "step", "request": request},
    )
    assert res.status_code == 201, res.text
    command_id: str = res.json()["id"]
    return command_id


def _status(api: Api, device_id: str = "dev-1") -> str:
    status: str = api.call("GET", f"/v1/claimed-devices/{device_id}").json()["status"]
    return status


def _commands(api: Api, device_id: str = "dev-1") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.call(
        "GET", f"/v1/claimed-devices/{device_id}/provisioning"
    ).json()["items"]
    return items


CONFIG = {"config": {"a": "1"}}
FINISHED: dict[str, Any] = {"finished": {}}


def test_fetch_marks_in_progress_and_device_provisioning(api: Api) -> None:
    device = _claimed(api)
    first = _add(api, "dev-1", CONFIG)
    second = _add(api, "dev-1", FINISHED)
    res = device.fetch()
    assert res.status_code == 200
    assert [c["id"] for c in res.json()["commands"]] == [first, second]
    assert res.json()["commands"][0] == {"id": first, "type": "config", "params": {"a": "1"}}
    assert _status(api) == "PROVISIONING"
    assert {c["status"] for c in _commands(api)} == {"IN_PROGRESS"}
    res = device.respond({"id": first, "result": {}}, {"id": second, "result": {}})
    assert res.json() == {"accepted": 2}
    assert _status(api) == "PROVISIONED"
    assert device.fetch().status_code == 204
    events = api.call("GET", "/v1/events", params={"deviceId": "dev-1"}).json()["items"]
    mine = [(e["type"], e["data"]) for e in events if e["actor"] == "device:dev-1"]
    assert mine == [
        (
            "commands.dispatched",
            {"commandIds": [first, second], "from": "READY", "to": "PROVISIONING"},
        ),
        ("command.succeeded", {"commandId": first}),
        ("command.succeeded", {"commandId": second}),
        ("device.provisioned", {"from": "PROVISIONING", "to": "PROVISIONED"}),
    ]


def test_cursor_and_limit(api: Api) -> None:
    device = _claimed(api)
    ids = [_add(api, "dev-1", {"config": {"n": str(i)}}) for i in range(4)]
    assert [c["id"] for c in device.fetch(limit=2).json()["commands"]] == ids[:2]
    assert [c["id"] for c in device.fetch(after=ids[1]).json()["commands"]] == ids[2:]
    assert device.fetch(limit=21).status_code == 422
    res = device.fetch(after="no-such-command")
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "after"


def test_everything_done_without_finished_is_awaiting(api: Api) -> None:
    device = _claimed(api)
    command = _add(api, "dev-1", CONFIG)
    device.fetch()
    device.respond({"id": command, "result": {}})
    assert _status(api) == "AWAITING"
    _add(api, "dev-1", FINISHED)
    assert device.fetch().status_code == 200
    assert _status(api) == "PROVISIONING"


def test_failure_holds_device_in_error_until_reset(api: Api) -> None:
    device = _claimed(api)
    ids = [_add(api, "dev-1", CONFIG), _add(api, "dev-1", CONFIG), _add(api, "dev-1", FINISHED)]
    device.fetch()
    res = device.respond(
        {"id": ids[0], "result": {}}, {"id": ids[1], "error": {"message": "flash full"}}
    )
    assert res.json() == {"accepted": 2}
    assert _status(api) == "ERROR"
    statuses = [c["status"] for c in _commands(api)]
    assert statuses == ["SUCCEEDED", "FAILED", "PENDING"]  # Later commands untouched.
    assert _commands(api)[1]["response"] == {"error": {"message": "flash full"}}
    assert device.fetch(after=ids[0]).status_code == 204  # ERROR: nothing until reset.
    reset = api.call("POST", f"/v1/claimed-devices/dev-1/provisioning/{ids[1]}/reset")
    assert reset.status_code == 200
    assert _status(api) == "PROVISIONING"
    again = device.fetch(after=ids[0]).json()["commands"]
    assert [c["id"] for c in again] == ids[1:]
    device.respond({"id": ids[1], "result": {}}, {"id": ids[2], "result": {}})
    assert _status(api) == "PROVISIONED"


def test_crash_between_fetch_and_response_redelivers(api: Api) -> None:
    device = _claimed(api)
    ids = [_add(api, "dev-1", CONFIG), _add(api, "dev-1", FINISHED)]
    assert [c["id"] for c in device.fetch().json()["commands"]] == ids
    # The device restarts without having answered: it gets the same commands again.
    assert [c["id"] for c in device.fetch().json()["commands"]] == ids
    answers = ({"id": ids[0], "result": {}}, {"id": ids[1], "result": {}})
    assert device.respond(*answers).json() == {"accepted": 2}
    # At least once: the same answers again change nothing and count nothing.
    assert device.respond(*answers).json() == {"accepted": 0}
    assert _status(api) == "PROVISIONED"


def test_response_for_another_devices_command_is_ignored(api: Api) -> None:
    mine = _claimed(api, "dev-1")
    _claimed(api, "dev-2")
    theirs = _add(api, "dev-2", CONFIG)
    Device(api.client, "dev-2").fetch()
    assert mine.respond({"id": theirs, "result": {}}).json() == {"accepted": 0}
    assert _commands(api, "dev-2")[0]["status"] == "IN_PROGRESS"


def test_pending_command_answer_is_ignored(api: Api) -> None:
    device = _claimed(api)
    command = _add(api, "dev-1", CONFIG)
    assert device.respond({"id": command, "result": {}}).json() == {"accepted": 0}
    assert _commands(api)[0]["status"] == "PENDING"


def test_expired_token_is_refused(api: Api) -> None:
    device = _claimed(api)
    old = device.token(now=time.time() - 400, lifetime=300)
    res = device.fetch(token=old)
    assert res.status_code == 401
    assert res.headers["www-authenticate"].startswith("Bearer")


def test_token_longer_than_five_minutes_is_refused(api: Api) -> None:
    device = _claimed(api)
    assert device.fetch(token=device.token(lifetime=301)).status_code == 401


def test_replayed_token_is_refused(api: Api) -> None:
    device = _claimed(api)
    _add(api, "dev-1", CONFIG)
    token = device.token()
    assert device.fetch(token=token).status_code == 200
    res = device.fetch(token=token)
    assert res.status_code == 401
    assert res.json()["code"] == "token_replayed"


def test_wrong_secret_unknown_or_unclaimed_device_get_401(api: Api) -> None:
    device = _claimed(api)
    assert Device(api.client, "dev-1", "B2" * 16).fetch().status_code == 401
    assert Device(api.client, "nobody").fetch().status_code == 401
    api.import_devices({"deviceId": "fresh", "deviceSecret": SECRET})
    assert Device(api.client, "fresh").fetch().status_code == 401
    assert api.client.get("/device/v1/commands").status_code == 401
    res = api.client.get("/device/v1/commands", headers={"Authorization": "Bearer x.y.z"})
    assert res.status_code == 401
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJkZXYtMSJ9."
    assert device.fetch(token=unsigned).status_code == 401


def test_authentication_comes_before_checking_the_request(api: Api) -> None:
    device = _claimed(api)
    bad = Device(api.client, "dev-1", "B2" * 16)
    assert bad.fetch(limit="many").status_code == 401
    res = api.client.post("/device/v1/responses", content=b"not json", headers=bad.auth())
    assert res.status_code == 401
    assert device.fetch(limit="many").status_code == 422


def test_device_routes_are_counted_documented_and_fail_cleanly(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = _claimed(api)
    assert device.fetch().status_code == 204
    assert device.fetch(token="not-a-jwt").status_code == 401
    metrics = api.client.get("/metrics").text
    for status in (204, 401):
        label = f'method="GET",route="/device/v1/commands",status="{status}"'
        assert f"zerotouch_http_requests_total{{{label}}} 1.0" in metrics
    # Other methods go on to the application, which documents both routes.
    refused = api.client.put("/device/v1/commands", headers=device.auth())
    assert (refused.status_code, refused.json()["code"]) == (405, "method_not_allowed")
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/device/v1/commands", "/device/v1/responses"} <= set(paths)

    def broken(*_args: Any) -> None:
        raise RuntimeError("a fault inside the server")

    monkeypatch.setattr(dispatch, "fetch_commands", broken)
    failed = device.fetch()
    assert (failed.status_code, failed.json()["code"]) == (500, "internal_error")
    assert "fault" not in failed.text


def test_blocked_device_gets_403(api: Api) -> None:
    device = _claimed(api)
    api.call("POST", "/v1/claimed-devices/dev-1/block")
    res = device.fetch()
    assert res.status_code == 403
    assert res.json()["code"] == "device_blocked"


def test_unblocked_device_is_let_in_at_once(api: Api) -> None:
    """Credentials are cached for minutes; the hold is checked on the device row every call."""
    device = _claimed(api)
    _add(api, "dev-1", CONFIG)
    api.call("POST", "/v1/claimed-devices/dev-1/block")  # Before its credentials are read.
    assert device.fetch().json()["code"] == "device_blocked"
    api.call("POST", "/v1/claimed-devices/dev-1/unblock")
    assert device.fetch(limit=1).status_code == 200  # Its credentials are cached now.
    api.call("POST", "/v1/claimed-devices/dev-1/block")
    assert device.fetch().json()["code"] == "device_blocked"
    api.call("POST", "/v1/claimed-devices/dev-1/unblock")
    assert device.fetch().status_code == 200


def test_device_claimed_again_works_for_its_new_owner(api: Api) -> None:
    token = api.import_devices({"deviceId": "dev-1", "deviceSecret": SECRET})["devices"][0][
        "ownerToken"
    ]
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201
    device = Device(api.client, "dev-1")
    assert device.fetch().status_code == 204  # Cached: claimed by 'acme'.
    assert api.call("DELETE", "/v1/claimed-devices/dev-1").status_code == 204
    res = device.fetch()
    assert res.status_code == 401 and res.json()["code"] == "device_not_claimed"
    res = api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": token})
    assert res.status_code == 201
    command = api.call(
        "POST",
        "/v1/claimed-devices/dev-1/provisioning",
        "rival",
        json={"request": CONFIG},
    ).json()["id"]
    assert [c["id"] for c in device.fetch().json()["commands"]] == [command]
    events = api.call("GET", "/v1/events?deviceId=dev-1", "rival").json()["items"]
    assert "commands.dispatched" in [e["type"] for e in events]
    assert api.call("GET", "/v1/claimed-devices/dev-1", "owner").status_code == 404


def test_es256_with_factory_key_and_with_generated_key(api: Api, tmp_path: Any) -> None:
    factory = device_side.generate_key_pair()
    api.claimed("dev-1", publicKey=factory.public_key_pem)
    device = Device(api.client, "dev-1")
    device.key = factory.private_key_pem
    command = _add(api, "dev-1", {"clientPrivateKeyGeneration": {"secTag": 7}})
    _add(api, "dev-1", CONFIG)
    fetched = device.fetch(limit=1).json()["commands"]
    keystore = Keystore(tmp_path)
    result = execute(keystore, fetched[0]["type"], fetched[0]["params"])
    assert device.respond({"id": command, "result": result}).json() == {"accepted": 1}
    device.key = keystore.read(7, "private.pem")  # The new key is registered now.
    assert device.fetch(after=command).status_code == 200
    device.key = device_side.generate_key_pair().private_key_pem  # Never registered.
    assert device.fetch(after=command).status_code == 401


def test_credentials_of_devices_that_call_together_are_read_at_once(
    api: Api, rt: Runtime, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = device_side.generate_key_pair()
    api.claimed("dev-k", publicKey=factory.public_key_pem)
    keyed = Device(api.client, "dev-k")
    keyed.key = factory.private_key_pem
    command = _add(api, "dev-k", {"clientPrivateKeyGeneration": {"secTag": 7}})
    (fetched,) = keyed.fetch().json()["commands"]
    keystore = Keystore(tmp_path)
    keyed.respond({"id": command, "result": execute(keystore, fetched["type"], fetched["params"])})
    _claimed(api, "dev-s")
    _claimed(api, "dev-b")
    api.call("POST", "/v1/claimed-devices/dev-b/block")
    rt.device_credentials.clear()
    sent: list[FastStatement] = []
    send = FastStatement.send

    def record(statement: FastStatement, conn: sa.Connection, params: Any) -> Any:
        sent.append(statement)
        return send(statement, conn, params)

    monkeypatch.setattr(FastStatement, "send", record)
    found = load_credentials(rt, ["dev-s", "nobody", "dev-k", "dev-s", "dev-b"])
    monkeypatch.undo()
    # One statement for the devices and their generated keys, however many devices.
    assert len(sent) == 1
    secret, nobody, keys, again, blocked = found
    assert isinstance(nobody, Unauthenticated)
    assert isinstance(secret, DeviceCredentials) and secret.secret == bytes.fromhex(SECRET)
    assert again == secret
    generated = keystore.read(7, "public.pem")
    assert isinstance(keys, DeviceCredentials) and keys.secret is None
    assert keys.public_keys == (factory.public_key_pem, generated)
    assert isinstance(blocked, DeviceCredentials) and blocked.status == "BLOCKED"
    # Blocked devices are read every time: only the other two are kept.
    assert sorted(rt.device_credentials) == ["dev-k", "dev-s"]


def test_bad_key_generation_result_fails_the_command(api: Api) -> None:
    device = _claimed(api)
    command = _add(api, "dev-1", {"clientPrivateKeyGeneration": {"secTag": 7}})
    device.fetch()
    device.respond({"id": command, "result": {"publicKey": "garbage"}})
    (row,) = _commands(api)
    assert row["status"] == "FAILED"
    assert "publicKey" in row["response"]["error"]["message"]
    assert _status(api) == "ERROR"


def test_signed_csr_queues_the_certificate_next(api: Api, rt: Runtime, tmp_path: Any) -> None:
    fleet = make_fleet(api, 1)
    device = Device(api.client, fleet.identities[0].device_id, fleet.identities[0].device_secret)
    keystore = Keystore(tmp_path)
    batch = device.fetch(limit=20).json()["commands"]
    # The CSR the CA signs ends the batch.
    assert [c["type"] for c in batch] == ["clientPrivateKeyGeneration", "certificateSigningRequest"]
    generated = execute(keystore, batch[0]["type"], batch[0]["params"])
    # The device asks for more than its plan grants: another subject, every key usage.
    greedy = device_side.build_csr(
        keystore.read(SEC_TAG, "private.pem") or "",
        "CN=root of everything",
        dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                       "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"), True)
        | {"encipher_only": False, "decipher_only": False},
    )  # fmt: skip
    answers = [
        {"id": batch[0]["id"], "result": generated},
        {"id": batch[1]["id"], "result": {"csr": greedy}},
    ]
    assert device.respond(*answers).json() == {"accepted": 2}
    nxt = device.fetch(after=batch[-1]["id"]).json()["commands"]
    assert [c["type"] for c in nxt] == [
        "clientCertificate",
        "serverCertificate",
        "config",
        "finished",
    ]
    certificate = nxt[0]["params"]["content"]
    assert nxt[0]["params"]["secTag"] == SEC_TAG
    # Subject and key usage come from the command (not the CSR); validity from the settings.
    cert = x509.load_pem_x509_certificate(certificate.encode())
    assert cert.subject == x509.Name.from_rfc4514_string("O=zerotouch demo,CN=fleet device")
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_encipherment, usage.key_agreement) == (
        True, True, True
    )  # fmt: skip
    assert not usage.content_commitment and not usage.key_cert_sign
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == rt.certificate_validity + dt.timedelta(minutes=5)
    assert device_side.certificate_matches_key(cert, keystore.read(SEC_TAG, "private.pem") or "")


def test_csr_to_sign_without_a_ca_fails(api: Api, tmp_path: Any) -> None:
    device = _claimed(api)
    keystore = Keystore(tmp_path)
    ids = [
        _add(api, "dev-1", {"clientPrivateKeyGeneration": {"secTag": 1}}),
        _add(api, "dev-1", {"certificateSigningRequest": {
            "secTag": 1, "attributes": "CN=x", "keyUsage": "101000000", "sign": True}}),
    ]  # fmt: skip
    batch = device.fetch().json()["commands"]
    answers = [{"id": c["id"], "result": execute(keystore, c["type"], c["params"])} for c in batch]
    device.respond(*answers)
    rows = _commands(api)
    assert [r["status"] for r in rows] == ["SUCCEEDED", "FAILED"]
    assert "no certificate authority" in rows[1]["response"]["error"]["message"]
    assert rows[1]["id"] == ids[1]


def test_csr_for_a_key_the_device_never_registered_fails(api: Api) -> None:
    fleet = make_fleet(api, 1)
    identity = fleet.identities[0]
    device = Device(api.client, identity.device_id, identity.device_secret)
    batch = device.fetch().json()["commands"]
    stranger = device_side.generate_key_pair()
    keystore_key = device_side.generate_key_pair()
    usage = dict.fromkeys(KEY_USAGE_BITS, False)
    usage["digital_signature"] = True
    csr = device_side.build_csr(stranger.private_key_pem, "CN=x", usage)
    device.respond(
        {"id": batch[0]["id"], "result": {"publicKey": keystore_key.public_key_pem}},
        {"id": batch[1]["id"], "result": {"csr": csr}},
    )
    rows = _commands(api, identity.device_id)
    assert rows[1]["status"] == "FAILED"
    assert "not a key this device registered" in rows[1]["response"]["error"]["message"]


def test_results_that_hold_no_key_or_csr_fail_with_the_reason(api: Api) -> None:
    """Keys and CSRs are checked before the report's transaction; a result without one, or
    with one that does not parse, fails its command all the same."""
    fleet = make_fleet(api, 1)
    identity = fleet.identities[0]
    device = Device(api.client, identity.device_id, identity.device_secret)
    batch = device.fetch().json()["commands"]
    device.respond({"id": batch[0]["id"], "result": {"public": "no publicKey field"}})
    rows = _commands(api, identity.device_id)
    assert rows[0]["status"] == "FAILED"
    assert "publicKey: must be a PEM string" in rows[0]["response"]["error"]["message"]
    reset = api.call(
        "POST", f"/v1/claimed-devices/{identity.device_id}/provisioning/{rows[0]['id']}/reset"
    )
    assert reset.status_code == 200
    batch = device.fetch().json()["commands"]
    key = device_side.generate_key_pair()
    device.respond(
        {"id": batch[0]["id"], "result": {"publicKey": key.public_key_pem}},
        {"id": batch[1]["id"], "result": {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA"}},
    )
    rows = _commands(api, identity.device_id)
    assert [r["status"] for r in rows[:2]] == ["SUCCEEDED", "FAILED"]
    message = rows[1]["response"]["error"]["message"]
    assert "csr: is not a PEM certificate signing request" in message


def test_secret_params_reach_the_device_but_never_the_operator(api: Api) -> None:
    device = _claimed(api)
    _add(api, "dev-1", {"preSharedKey": {"secTag": 3, "identity": "me", "secret": "0A0B0C0D"}})
    (command,) = device.fetch().json()["commands"]
    assert command["params"]["secret"] == "0A0B0C0D"
    assert _commands(api)[0]["request"]["preSharedKey"]["secret"] == "***"


def test_cbor_and_json_give_the_same_result(api: Api) -> None:
    json_device = _claimed(api, "dev-j")
    cbor_device = _claimed(api, "dev-c")
    for device_id in ("dev-j", "dev-c"):
        _add(api, device_id, CONFIG)
        _add(api, device_id, FINISHED)
    as_json = json_device.fetch().json()["commands"]
    res = api.client.get(
        "/device/v1/commands", headers={**cbor_device.auth(), "Accept": "application/cbor"}
    )
    assert res.headers["content-type"] == "application/cbor"
    as_cbor = cbor2.loads(res.content)["commands"]
    assert [(c["type"], c["params"]) for c in as_cbor] == [
        (c["type"], c["params"]) for c in as_json
    ]
    json_device.respond(*({"id": c["id"], "result": {}} for c in as_json))
    body = cbor2.dumps({"responses": [{"id": c["id"], "result": {}} for c in as_cbor]})
    res = api.client.post(
        "/device/v1/responses",
        content=body,
        headers={
            **cbor_device.auth(),
            "Content-Type": "application/cbor",
            "Accept": "application/cbor",
        },
    )
    assert cbor2.loads(res.content) == {"accepted": 2}
    assert _status(api, "dev-j") == _status(api, "dev-c") == "PROVISIONED"
    strip = ("id", "createdAt", "updatedAt")
    assert [{k: v for k, v in c.items() if k not in strip} for c in _commands(api, "dev-j")] == [
        {k: v for k, v in c.items() if k not in strip} for c in _commands(api, "dev-c")
    ]


def test_bad_response_bodies_name_the_field(api: Api) -> None:
    device = _claimed(api)
    cases = [
        ({"responses": "x"}, "responses"),
        ({"responses": [{"id": "a"}]}, "responses[0]"),
        ({"responses": [{"id": "a", "error": {}}]}, "responses[0].error.message"),
        ({"responses": [{"id": 5, "result": {}}]}, "responses[0].id"),
    ]
    for body, field in cases:
        res = api.client.post("/device/v1/responses", json=body, headers=device.auth())
        assert res.status_code == 422, body
        assert res.json()["errors"][0]["field"] == field
    res = api.client.post(
        "/device/v1/responses",
        content=b"\xff\xff",
        headers={**device.auth(), "Content-Type": "application/cbor"},
    )
    assert res.status_code == 422


def test_long_poll_returns_when_a_command_is_queued(api: Api) -> None:
    device = _claimed(api)
    timer = threading.Timer(0.3, _add, args=(api, "dev-1", CONFIG))
    started = time.monotonic()
    timer.start()
    try:
        res = device.fetch(wait=10)
    finally:
        timer.join()
    assert res.status_code == 200
    assert time.monotonic() - started < 5
    assert device.fetch(wait=61).status_code == 422


def test_expired_token_ids_are_forgotten(api: Api, rt: Runtime) -> None:
    device = _claimed(api)
    _add(api, "dev-1", CONFIG)
    token = device.token()
    assert device.fetch(token=token).status_code == 200
    with rt.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(device_token_ids)).scalar() == 1
    assert purge_token_ids(rt) == 0  # Still inside its lifetime: kept, and still refused.
    assert device.fetch(token=token).status_code == 401
    later = rt.clock() + dt.timedelta(seconds=600)
    assert purge_token_ids(Runtime(db=rt.db, keyring=rt.keyring, clock=lambda: later)) == 1


def test_long_poll_gives_204_after_the_wait(api: Api) -> None:
    device = _claimed(api)
    started = time.monotonic()
    assert device.fetch(wait=1).status_code == 204
    assert time.monotonic() - started >= 1
