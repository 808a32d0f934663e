"""Bad input gets a clear 4xx naming the field, on both databases, and loses nothing else."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Api
from zerotouch.crypto import device_tokens

SECRET = "A1" * 16
# JSON text with what no database stores: an escaped NUL and an escaped lone surrogate.
UNSTORABLE = ["\\u0000", "\\ud800"]


def _post_raw(api: Api, path: str, text: str, role: str = "owner") -> Any:
    return api.call(
        "POST", path, role, content=text.encode(), headers={"Content-Type": "application/json"}
    )


def _field(res: Any) -> str:
    assert res.status_code == 422, res.text
    assert res.headers["content-type"] == "application/problem+json"
    field: str = res.json()["errors"][0]["field"]
    return field


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_unstorable_text_in_a_body_names_its_field(api: Api, bad: str) -> None:
    token = api.import_devices({"deviceId": "dev-1"})["devices"][0]["ownerToken"]
    claim = f'{{"ownerToken": "{token}", "tags": ["ok", "a{bad}b"]}}'
    assert _field(_post_raw(api, "/v1/claimed-devices", claim)) == "tags[1]"
    rule = f'{{"name": "r{bad}", "tags": ["t"], "commands": [{{"request": {{"finished": {{}}}}}}]}}'
    assert _field(_post_raw(api, "/v1/provisioning-rules", rule)) == "name"
    # Nothing was half-done: the device claims cleanly afterwards.
    res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token})
    assert res.status_code == 201
    command = f'{{"description": "x{bad}", "request": {{"finished": {{}}}}}}'
    path = "/v1/claimed-devices/dev-1/provisioning"
    assert _field(_post_raw(api, path, command)) == "description"
    config = f'{{"request": {{"config": {{"k{bad}": "v"}}}}}}'
    assert _field(_post_raw(api, path, config)) == "request.config"


@pytest.mark.parametrize("bad", ["%00", "%ED%A0%80", "%FF"])
def test_unstorable_path_and_query_parameters_are_named(api: Api, bad: str) -> None:
    assert _field(api.call("GET", f"/v1/claimed-devices/dev{bad}")) == "path"
    assert _field(api.call("GET", f"/v1/claimed-devices?status=READY{bad}")) == "status"
    assert _field(api.call("GET", f"/v1/events?deviceId=d{bad}")) == "deviceId"


def test_numbers_beyond_the_database_are_refused_by_name(api: Api) -> None:
    assert _field(api.call("GET", "/v1/events?after=9223372036854775808")) == "after"
    assert api.call("GET", "/v1/events?after=9223372036854775807").status_code == 200
    huge = "aTkyMjMzNzIwMzY4NTQ3NzU4MDg"  # "i9223372036854775808", base64url
    assert _field(api.call("GET", f"/v1/claimed-devices?pageNextToken={huge}")) == "pageNextToken"


def test_a_badly_encoded_or_deep_json_body_names_the_body(api: Api) -> None:
    res = api.call(
        "POST",
        "/v1/claimed-devices",
        content=b'{"ownerToken": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert _field(res) == "body" and "UTF-8" in res.json()["errors"][0]["message"]
    assert _field(_post_raw(api, "/v1/claimed-devices", '{"ownerToken": ')) == "body"
    assert _field(_post_raw(api, "/v1/claimed-devices", '{"tags": NaN}')) == "body"
    deep = '{"devices": [{"deviceId": "d", "serial": ' + "[" * 1000 + "]" * 1000 + "}]}"
    res = _post_raw(api, "/v1/manufacturing/devices", deep, role="manufacturer")
    assert _field(res) == "body" and "deeper" in res.json()["errors"][0]["message"]


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_a_bad_record_in_an_import_is_rejected_alone(api: Api, bad: str) -> None:
    body = (
        '{"devices": [{"deviceId": "good-1"}, '
        f'{{"deviceId": "bad", "serial": "s{bad}"}}, '
        f'{{"deviceId": "bad-2", "tags": ["t{bad}"]}}, {{"deviceId": "good-2"}}]}}'
    )
    res = _post_raw(api, "/v1/manufacturing/devices", body, role="manufacturer")
    assert res.status_code == 200, res.text
    answer = res.json()
    assert answer["imported"] == 2
    assert [(r["row"], r["code"]) for r in answer["rejected"]] == [
        (2, "validation_failed"),
        (3, "validation_failed"),
    ]
    assert answer["rejected"][0]["message"].startswith("devices[1].serial:")


def _csv(api: Api, text: str) -> Any:
    return api.call(
        "POST",
        "/v1/manufacturing/devices",
        "manufacturer",
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )


def test_csv_rows_the_reader_cannot_take_are_rejected_alone(api: Api) -> None:
    long_key = "x" * 131_073
    text = (
        "deviceId,serial,publicKey\n"
        "csv-1,s1,\n"
        f"csv-2,s2,{long_key}\n"
        "csv-3,s3,,extra\n"
        "csv-4,s\x004,\n"
        "csv-5,s5,\n"
    )
    res = _csv(api, text)
    assert res.status_code == 200, res.text
    answer = res.json()
    assert sorted(d["deviceId"] for d in answer["devices"]) == ["csv-1", "csv-5"]
    rejected = {r["row"]: r["message"] for r in answer["rejected"]}
    assert sorted(rejected) == [2, 3, 4]
    assert rejected[2].startswith("devices[1].publicKey:")
    assert "3 columns" in rejected[3]
    assert rejected[4].startswith("devices[3]")


def test_a_csv_header_that_repeats_a_column_is_refused(api: Api) -> None:
    res = _csv(api, "deviceId,serial,serial\nd1,a,b\n")
    assert _field(res) == "header" and "more than once" in res.json()["detail"]
    assert api.call("GET", "/v1/manufacturing/devices/d1/label", "manufacturer").status_code == 404


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_unstorable_device_results_are_refused_by_name(api: Api, bad: str) -> None:
    api.claimed("dev-1", deviceSecret=SECRET)
    res = api.call(
        "POST", "/v1/claimed-devices/dev-1/provisioning", json={"request": {"config": {"a": "1"}}}
    )
    command_id = res.json()["id"]

    def auth() -> dict[str, str]:
        token = device_tokens.issue("dev-1", secret=bytes.fromhex(SECRET), now=time.time())
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    assert api.client.get("/device/v1/commands", headers=auth()).status_code == 200
    body = json.dumps({"responses": [{"id": command_id, "error": {"message": "x"}}]})
    body = body.replace('"x"', f'"x{bad}"')
    res = api.client.post("/device/v1/responses", content=body.encode(), headers=auth())
    assert _field(res) == "body.responses[0].error.message"
    # The command is still the device's to report on.
    ok = {"responses": [{"id": command_id, "result": {}}]}
    res = api.client.post("/device/v1/responses", json=ok, headers=auth())
    assert res.json() == {"accepted": 1}


@pytest.mark.parametrize(
    ("path", "role"),
    [("/v1/claimed-devices", "owner"), ("/v1/manufacturing/devices", "manufacturer")],
)
def test_a_body_streamed_past_the_cap_is_cut_off_with_413(
    api: Api,
    rt: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    role: str,
) -> None:
    import httpx

    from tests.live import live_server

    monkeypatch.setenv("ZEROTOUCH_MAX_IMPORT_BYTES", "65536")

    def chunks() -> Any:
        for _ in range(32):
            yield b'{"pad": "' + b"x" * 65_536 + b'"},'

    with live_server(rt) as base:
        res = httpx.post(
            f"{base}{path}",
            content=chunks(),  # No Content-Length: chunked, so only the count can stop it.
            headers={**api.headers(role), "Content-Type": "application/json"},
            timeout=30,
        )
    assert res.status_code == 413, res.text
    assert res.json()["code"] == "body_too_large"
    assert not [r for r in caplog.records if r.exc_info]  # Not an unexpected error.
