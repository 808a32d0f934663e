"""The OpenAPI document says what the server does: every error declared where it is answered,
and a bounded schemathesis run against a live server finds no 5xx and no response that does
not match the document."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from zerotouch import demo

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


NRF_DEVICE_PATHS = {"/v1/provisioning/commands", "/v1/provisioning/response"}


def test_every_operation_declares_its_errors(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        if not path.startswith("/v1/"):
            continue
        if path in NRF_DEVICE_PATHS:  # The firmware's statuses only, declared by the routes.
            assert set(responses) <= {"200", "204", "400", "401", "403", "500"}, path
            continue
        takes_input = bool(operation.get("parameters")) or "requestBody" in operation
        wanted = {"401", "403"} | ({"422"} if takes_input else set())
        if "requestBody" in operation:
            wanted.add("413")
        if "{" in path:
            wanted.add("404")
        assert wanted <= set(responses), (method, path, sorted(responses))
        for code in wanted:
            assert list(responses[code]["content"]) == ["application/problem+json"], (path, code)
    lists = {p: i["get"] for p, i in document["paths"].items() if "get" in i}
    for path in ("/v1/provisioning-rules", "/v1/ocpi/peers", "/v1/api-keys"):
        names = {p["name"] for p in lists[path]["parameters"]}
        assert {"pageLimit", "pageNextToken"} <= names


def test_rules_and_peers_paginate(api: Api) -> None:
    for i in range(3):
        rule = {"name": f"r{i}", "tags": ["t"], "commands": [{"request": {"finished": {}}}]}
        assert api.call("POST", "/v1/provisioning-rules", json=rule).status_code == 201
    first = api.call("GET", "/v1/provisioning-rules?pageLimit=2").json()
    assert [r["name"] for r in first["items"]] == ["r0", "r1"] and first["total"] == 3
    rest = api.call(
        "GET", f"/v1/provisioning-rules?pageLimit=2&pageNextToken={first['pageNextToken']}"
    ).json()
    assert [r["name"] for r in rest["items"]] == ["r2"] and rest["pageNextToken"] is None
    peers = api.call("GET", "/v1/ocpi/peers?pageLimit=1").json()
    assert peers == {"items": [], "total": 0, "pageNextToken": None}


def _seed(base: str, keys: demo.Keys) -> None:
    owner = {"Authorization": f"Bearer {keys.owner}"}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    ca = httpx.post(f"{base}/v1/certificate-authority", json={"commonName": "CA"}, headers=owner)
    assert ca.status_code == 201, ca.text
    imported = httpx.post(
        f"{base}/v1/manufacturing/devices",
        json={"devices": [{"deviceId": "dev-1", "deviceSecret": "A1" * 16}]},
        headers=factory,
    ).json()
    token = imported["devices"][0]["ownerToken"]
    claim = httpx.post(f"{base}/v1/claimed-devices", json={"ownerToken": token}, headers=owner)
    assert claim.status_code == 201, claim.text


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_error_and_no_mismatch(
    env: dict[str, str], tmp_path: Path
) -> None:
    keys = demo.create_keys(env)
    runner = Path(sys.executable).with_name("schemathesis")
    with demo.server(env) as (base, _):
        _seed(base, keys)
        done = subprocess.run(
            [
                str(runner), "run", f"{base}/openapi.json",
                "--header", f"Authorization: Bearer {keys.owner}",
                "--checks", CHECKS,
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", "25",
                "--seed", "20261203",
                "--workers", "1",
                # Registering with a partner calls whatever URL the request names: a fuzzer
                # would send it off this machine.
                "--exclude-path-regex", "^/v1/ocpi/peers",
            ],
            capture_output=True,
            text=True,
            timeout=540,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "generated" in done.stdout and " passed" in done.stdout
