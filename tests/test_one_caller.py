"""One caller never breaks another: a poisoned call among real ones fails alone, a failed group
leaves no lock behind, and two nodes serving one device take their locks in one order."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND, Api
from tests.live import live_server
from zerotouch.crypto import device_tokens
from zerotouch.domain.errors import Unavailable
from zerotouch.services import claims
from zerotouch.services.accounts import authenticate
from zerotouch.services.batching import GroupCommit
from zerotouch.services.device_auth import authenticate_device, load_credentials
from zerotouch.services.device_calls import DeviceWork, run_device_calls
from zerotouch.services.dispatch import fetch_commands
from zerotouch.services.runtime import Runtime
from zerotouch.store.db import Database

SECRET = "A1" * 16
# What the database cannot store: PostgreSQL refuses NUL, SQLite's driver a lone surrogate.
POISON = "\x00" if BACKEND == "postgresql" else "\ud800"


def test_a_group_that_fails_is_handled_item_by_item() -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int | Exception]:
        calls.append(items)
        if 13 in items:
            raise RuntimeError("poisoned")
        return [i * 10 for i in items]

    async def main() -> list[Any]:
        group: GroupCommit[int, int] = GroupCommit(handle)
        try:
            return await asyncio.gather(*(group(i) for i in (1, 13, 2)), return_exceptions=True)
        finally:
            group.close()

    results = asyncio.run(main())
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], RuntimeError)
    assert calls == [[1, 13, 2], [1], [13], [2]]


def test_groups_run_off_the_event_loop() -> None:
    """While a group waits on the database, the loop goes on serving others."""
    release = threading.Event()

    def slow(items: list[int]) -> list[int | Exception]:
        release.wait(5)
        return list(items)

    async def main() -> bool:
        group: GroupCommit[int, int] = GroupCommit(slow)
        pending = asyncio.ensure_future(group(1))
        await asyncio.sleep(0.05)  # The loop turns while the group is held.
        alive = not pending.done()
        release.set()
        assert await pending == 1
        group.close()
        return alive

    assert asyncio.run(main())


def _unsigned(sub: str) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 60, "jti": "x"}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_poisoned_device_token_among_first_calls_fails_alone(api: Api, rt: Runtime) -> None:
    ids = [f"fleet-{i:03d}" for i in range(40)]
    imported = api.import_devices(*({"deviceId": d, "deviceSecret": SECRET} for d in ids))
    for device in imported["devices"]:
        res = api.call("POST", "/v1/claimed-devices", json={"ownerToken": device["ownerToken"]})
        assert res.status_code == 201
    rt.device_credentials.clear()  # Every device's first call in this process.

    async def main(base: str) -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def fetch(token: str) -> int:
                res = await http.get(
                    "/device/v1/commands", headers={"Authorization": f"Bearer {token}"}
                )
                return res.status_code

            real = [
                fetch(device_tokens.issue(d, secret=bytes.fromhex(SECRET), now=time.time()))
                for d in ids
            ]
            poisoned = [fetch(_unsigned(f"fleet-{POISON}{i}")) for i in range(5)]
            results = await asyncio.gather(*real[:20], *poisoned, *real[20:])
            return results[:20] + results[25:], results[20:25]

    with live_server(rt) as base:
        real, poisoned = asyncio.run(main(base))
    assert real == [204] * len(ids)
    assert poisoned == [401] * 5


def test_a_claim_group_that_fails_leaves_no_lock_behind(
    api: Api, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = [d["ownerToken"] for d in api.import_devices(
        *({"deviceId": f"c-{i}"} for i in range(6))
    )["devices"]]  # fmt: skip
    owner = authenticate(rt, api.keys["owner"])
    poisoned = tokens[3]
    statement_params = claims._Claim.statement_params

    def poison(claim: Any) -> Any:
        statement, params = statement_params(claim)
        if claim.token == poisoned:
            params = {**params, "hash": params["hash"] + POISON}
        return statement, params

    monkeypatch.setattr(claims._Claim, "statement_params", poison)
    outcomes = claims.claim_devices(rt, [claims.ClaimRequest(owner, owner_token=t) for t in tokens])
    assert isinstance(outcomes[3], Exception)
    assert [getattr(o, "status", None) for i, o in enumerate(outcomes) if i != 3] == ["READY"] * 5
    # The same connection serves the next writer at once (no statement left holding a lock).
    started = time.monotonic()
    api.import_devices({"deviceId": "after"})
    assert time.monotonic() - started < 5


@pytest.mark.postgresql_only
@pytest.mark.skipif(BACKEND != "postgresql", reason="row locks across connections")
def test_two_nodes_fetching_one_device_do_not_deadlock(
    api: Api, rt: Runtime, database_url: str
) -> None:
    ids = [f"pair-{i}" for i in range(10)]
    imported = api.import_devices(*({"deviceId": d, "deviceSecret": SECRET} for d in ids))
    for device in imported["devices"]:
        api.call("POST", "/v1/claimed-devices", json={"ownerToken": device["ownerToken"]})
    nodes = [Runtime(db=Database(database_url), keyring=rt.keyring) for _ in range(2)]
    failures: list[BaseException] = []

    def fetch(node: Runtime, device_id: str, barrier: threading.Barrier) -> None:
        async def caller() -> Any:
            async def load(device_id: str) -> Any:
                (found,) = load_credentials(node, [device_id])
                return found

            token = device_tokens.issue(device_id, secret=bytes.fromhex(SECRET), now=time.time())
            return await authenticate_device(node, token, load)

        device = asyncio.run(caller())
        barrier.wait(5)
        work = DeviceWork(device, lambda call: fetch_commands(node, None, 10, call))
        (outcome,) = run_device_calls(node, [work])
        if isinstance(outcome, Exception):
            failures.append(outcome)

    try:
        for device_id in ids:
            barrier = threading.Barrier(2)
            threads = [
                threading.Thread(target=fetch, args=(node, device_id, barrier)) for node in nodes
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        for node in nodes:
            node.db.dispose()
    assert not [f for f in failures if isinstance(f, Unavailable)], failures
    assert not failures, failures
