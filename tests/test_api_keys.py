"""API keys: listed, made with an expiry, revoked, through the API and the command line; a
revoked or expired key is refused at once, by every server on the database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Api
from tests.helpers import zerotouch
from zerotouch.adapters.http.app import create_app
from zerotouch.services.core import Core
from zerotouch.services.runtime import Runtime
from zerotouch.store.db import Database


def test_owners_list_create_and_revoke_keys(api: Api) -> None:
    res = api.call("POST", "/v1/api-keys", json={"role": "viewer"})
    assert res.status_code == 201, res.text
    made = res.json()
    assert made["key"].startswith("zt_") and made["role"] == "viewer" and made["revokedAt"] is None
    viewer = {"Authorization": f"Bearer {made['key']}"}
    assert api.client.get("/v1/claimed-devices", headers=viewer).status_code == 200
    listed = api.call("GET", "/v1/api-keys", "admin").json()
    assert made["id"] in [k["id"] for k in listed["items"]]
    assert all("key" not in k for k in listed["items"])
    assert api.call("DELETE", f"/v1/api-keys/{made['id']}").status_code == 204
    refused = api.client.get("/v1/claimed-devices", headers=viewer)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    shown = {k["id"]: k for k in api.call("GET", "/v1/api-keys").json()["items"]}
    assert shown[made["id"]]["revokedAt"] is not None


def test_roles_and_accounts_bound_key_management(api: Api) -> None:
    for role in ("editor", "viewer", "manufacturer"):
        assert api.call("GET", "/v1/api-keys", role).status_code == 403
        assert api.call("POST", "/v1/api-keys", role, json={"role": "viewer"}).status_code == 403
    # An admin makes no key above its own role; no account sees or revokes another's keys.
    assert api.call("POST", "/v1/api-keys", "admin", json={"role": "owner"}).status_code == 403
    theirs = api.call("POST", "/v1/api-keys", "rival", json={"role": "viewer"}).json()
    assert theirs["id"] not in [k["id"] for k in api.call("GET", "/v1/api-keys").json()["items"]]
    assert api.call("DELETE", f"/v1/api-keys/{theirs['id']}").status_code == 404
    res = api.call("POST", "/v1/api-keys", json={"role": "god"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "role"
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    res = api.call("POST", "/v1/api-keys", json={"role": "viewer", "expiresAt": past})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "expiresAt"


def test_an_expired_key_is_refused(api: Api, rt: Runtime) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    made = api.call(
        "POST", "/v1/api-keys", json={"role": "viewer", "expiresAt": soon.isoformat()}
    ).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    assert api.client.get("/v1/claimed-devices", headers=headers).status_code == 200
    rt.clock = lambda: soon + dt.timedelta(seconds=1)
    assert api.client.get("/v1/claimed-devices", headers=headers).status_code == 401


def test_a_revoked_key_is_refused_at_once_on_every_node(
    api: Api, rt: Runtime, database_url: str
) -> None:
    made = api.call("POST", "/v1/api-keys", json={"role": "viewer"}).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    other = Runtime(db=Database(database_url), keyring=rt.keyring)
    try:
        with TestClient(create_app(Core(other))) as node_2:
            assert node_2.get("/v1/claimed-devices", headers=headers).status_code == 200
            assert api.call("DELETE", f"/v1/api-keys/{made['id']}").status_code == 204
            assert node_2.get("/v1/claimed-devices", headers=headers).status_code == 401
    finally:
        other.db.dispose()


def _last(done: Any) -> str:
    assert done.returncode == 0, done.stderr
    line: str = done.stdout.strip().splitlines()[-1]
    return line


def test_keys_list_and_revoke_on_the_command_line(env: dict[str, str]) -> None:
    key = _last(zerotouch(env, "keys", "create", "--role", "viewer", "--expires", "30d"))
    listed = zerotouch(env, "keys", "list")
    assert listed.returncode == 0 and "viewer" in listed.stdout and key not in listed.stdout
    key_id = next(
        line.split("│")[1].strip() for line in listed.stdout.splitlines() if "viewer" in line
    )
    done = zerotouch(env, "keys", "revoke", key_id)
    assert done.returncode == 0 and "revoked" in done.stderr
    assert zerotouch(env, "keys", "revoke", "no-such-key").returncode == 2
    bad = zerotouch(env, "keys", "create", "--role", "viewer", "--expires", "tomorrow")
    assert bad.returncode == 2 and "--expires" in bad.stderr
