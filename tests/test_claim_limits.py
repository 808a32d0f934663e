"""Guessing owner tokens is pointless: failed claims are limited per account and per client
address, across every server on the database, and each failure is an audit event."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import Api
from tests.helpers import zerotouch
from zerotouch import demo
from zerotouch.services.runtime import Runtime

LIMIT = 20


def _guess() -> dict[str, str]:
    return {"ownerToken": secrets.token_hex(16).upper()}


def _token(api: Api, device_id: str) -> str:
    token: str = api.import_devices({"deviceId": device_id})["devices"][0]["ownerToken"]
    return token


def test_failed_claims_past_the_limit_get_429_with_retry_after(api: Api, rt: Runtime) -> None:
    assert rt.claim_failure_limit == LIMIT
    token = _token(api, "limited-1")
    for _ in range(LIMIT):
        res = api.call("POST", "/v1/claimed-devices", json=_guess())
        assert res.status_code == 403 and res.json()["code"] == "invalid_owner_token"
    refused = api.call("POST", "/v1/claimed-devices", json=_guess())
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The limit stops the right token too, for this account and address, until the window ends.
    right = api.call("POST", "/v1/claimed-devices", json={"ownerToken": token})
    assert right.status_code == 429
    dry = api.call("POST", "/v1/claimed-devices?dryrun=true", json={"ownerToken": token})
    assert dry.status_code == 429
    # The address is limited too, for every account (the test client has one address).
    rival = api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": token})
    assert rival.status_code == 429
    items = api.call("GET", "/v1/events", params={"pageLimit": 100}).json()["items"]
    events = [e for e in items if e["type"] == "claim.refused"]
    assert len(events) == LIMIT
    assert events[0]["data"]["code"] == "invalid_owner_token"


def test_refusals_that_are_not_guesses_are_not_counted(api: Api) -> None:
    for _ in range(LIMIT + 5):
        res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": "not a token"})
        assert res.status_code == 422
    token = _token(api, "limited-2")
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201


def test_a_limit_of_zero_turns_it_off(api: Api, rt: Runtime) -> None:
    rt.claim_failure_limit = 0
    for _ in range(LIMIT + 1):
        assert api.call("POST", "/v1/claimed-devices", json=_guess()).status_code == 403


@pytest.mark.timeout(120)
def test_the_limit_holds_across_two_servers_and_per_address(env: dict[str, str]) -> None:
    keys = demo.create_keys(env)
    env = {**env, "ZEROTOUCH_CLAIM_FAILURE_LIMIT": "6"}
    owner = {"Authorization": f"Bearer {keys.owner}"}
    factory = {"Authorization": f"Bearer {keys.manufacturer}"}
    with demo.server(env) as (first, _), demo.server(env) as (second, _):
        imported = httpx.post(
            f"{first}/v1/manufacturing/devices",
            json={"devices": [{"deviceId": "limited-3"}]},
            headers=factory,
        ).json()
        token = imported["devices"][0]["ownerToken"]
        # Three failures from one address on each server: six, the limit, across the two.
        spoofed = {**owner, "X-Forwarded-For": "198.51.100.7"}
        for base in (first, second, first, second, first, second):
            res = httpx.post(f"{base}/v1/claimed-devices", json=_guess(), headers=spoofed)
            assert res.status_code == 403
        for base in (first, second):
            res = httpx.post(f"{base}/v1/claimed-devices", json=_guess(), headers=spoofed)
            assert res.status_code == 429 and "Retry-After" in res.headers
        # The account is limited from any address; a correct token still works for another
        # account from another address.
        other = httpx.post(
            f"{second}/v1/claimed-devices",
            json={"ownerToken": token},
            headers={**owner, "X-Forwarded-For": "203.0.113.9"},
        )
        assert other.status_code == 429
        made = zerotouch(env, "keys", "create", "--role", "owner", "--account", "rival")
        rival = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
        claimed = httpx.post(
            f"{first}/v1/claimed-devices",
            json={"ownerToken": token},
            headers={**rival, "X-Forwarded-For": "203.0.113.9"},
        )
        assert claimed.status_code == 201, claimed.text


def test_a_device_claimed_already_is_no_guess(api: Api) -> None:
    token = _token(api, "limited-4")
    assert api.call("POST", "/v1/claimed-devices", json={"ownerToken": token}).status_code == 201
    for _ in range(LIMIT + 1):
        again = api.call("POST", "/v1/claimed-devices", "rival", json={"ownerToken": token})
        assert again.status_code == 409 and again.json()["code"] == "already_claimed"
    items = api.call("GET", "/v1/events", "rival", params={"pageLimit": 100}).json()["items"]
    assert sum(e["type"] == "claim.refused" for e in items) == LIMIT + 1
