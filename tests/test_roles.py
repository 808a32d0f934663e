"""Each role against each call: least privilege, 401 without a key, 403 for a wrong role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ROLES, Api

IMPORT, READ, WRITE = "import", "read", "write"
ALLOWED = {
    IMPORT: {"owner", "admin", "manufacturer"},
    READ: {"owner", "admin", "editor", "viewer"},
    WRITE: {"owner", "admin", "editor"},
}

CALLS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    (IMPORT, "POST", "/v1/manufacturing/devices", {"devices": [{"deviceId": "new"}]}),
    (IMPORT, "GET", "/v1/manufacturing/devices/spare/label", None),
    (WRITE, "POST", "/v1/claimed-devices", {"ownerToken": "{token}"}),
    (READ, "GET", "/v1/claimed-devices", None),
    (READ, "GET", "/v1/claimed-devices/d1", None),
    (WRITE, "DELETE", "/v1/claimed-devices/d1", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/block", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/unblock", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/reprovision", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/provisioning", {"request": {"finished": {}}}),
    (READ, "GET", "/v1/claimed-devices/d1/provisioning", None),
    (READ, "GET", "/v1/claimed-devices/d1/provisioning/{command}", None),
    (WRITE, "DELETE", "/v1/claimed-devices/d1/provisioning/{command}", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/provisioning/{command}/reset", None),
    (WRITE, "POST", "/v1/claimed-devices/d1/provisioning/{command}/skip", None),
    (
        WRITE,
        "POST",
        "/v1/provisioning-rules",
        {"name": "r2", "tags": ["t"], "commands": [{"request": {"finished": {}}}]},
    ),
    (READ, "GET", "/v1/provisioning-rules", None),
    (READ, "GET", "/v1/provisioning-rules/{rule}", None),
    (WRITE, "PATCH", "/v1/provisioning-rules/{rule}", {"description": "changed"}),
    (WRITE, "POST", "/v1/provisioning-rules/{rule}/activate", None),
    (WRITE, "POST", "/v1/provisioning-rules/{rule}/deactivate", None),
    (WRITE, "DELETE", "/v1/provisioning-rules/{rule}", None),
    (WRITE, "POST", "/v1/certificate-authority", {"commonName": "CA"}),
    (READ, "GET", "/v1/certificate-authority", None),
    (READ, "GET", "/v1/events", None),
    (WRITE, "POST", "/v1/provisioning/tags", {"tag": "t"}),
    (READ, "GET", "/v1/provisioning/tags", None),
]


# What the first allowed caller gets where the state _setup makes refuses the call itself:
# d1 is not blocked, the command has not failed, the account has no CA yet.
REFUSED_BY_STATE = {
    ("POST", "/v1/claimed-devices/d1/unblock"): 409,
    ("POST", "/v1/claimed-devices/d1/provisioning/{command}/reset"): 409,
    ("GET", "/v1/certificate-authority"): 404,
}


def _setup(api: Api) -> dict[str, str]:
    api.claimed("d1")
    spare = api.import_devices({"deviceId": "spare"})["devices"][0]["ownerToken"]
    command = api.call(
        "POST", "/v1/claimed-devices/d1/provisioning", json={"request": {"finished": {}}}
    ).json()["id"]
    rule = api.call(
        "POST",
        "/v1/provisioning-rules",
        json={"name": "r", "tags": ["t"], "commands": [{"request": {"finished": {}}}]},
    ).json()["id"]
    return {"token": spare, "command": command, "rule": rule}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(
    ("group", "method", "path", "body"), CALLS, ids=[f"{m} {p}" for _, m, p, _ in CALLS]
)
def test_each_role_against_call(
    api: Api, group: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    ids = _setup(api)
    # Refused roles first: a refusal changes nothing, so the allowed ones still find the state.
    ordered = sorted(ROLES, key=lambda role: role in ALLOWED[group])
    first_allowed = True
    for role in ordered:
        res = api.call(method, _fill(path, ids), role, json=_fill(body, ids))
        if role in ALLOWED[group]:
            # The first allowed caller does what it asked; the others may find it done (a
            # device claimed, a command deleted): a refusal of their own, never an error.
            if first_allowed and (method, path) in REFUSED_BY_STATE:
                assert res.status_code == REFUSED_BY_STATE[method, path], (role, res.text)
            elif first_allowed:
                assert 200 <= res.status_code < 300, (role, res.text)
            else:
                assert res.status_code < 500 and res.status_code not in (401, 403), (role, res.text)
            first_allowed = False
        else:
            assert res.status_code == 403, (role, res.text)
            assert res.json()["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("group", "method", "path", "body"), CALLS, ids=[f"{m} {p}" for _, m, p, _ in CALLS]
)
def test_no_or_unknown_key_is_401(
    api: Api, group: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for headers in ({}, {"Authorization": "Bearer zt_unknown"}, {"Authorization": "Basic eDp5"}):
        res = api.client.request(
            method, path.format(token="0" * 32, command="c", rule="r"), headers=headers, json=body
        )
        assert res.status_code == 401, res.text
        assert res.json()["code"] == "unauthenticated"
        assert res.headers["www-authenticate"] == "Bearer"
